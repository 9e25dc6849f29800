-- Shared part of the wrk scenarios: per-thread answer counting and a JSON summary line.
--
-- A scenario script sets `classify(status, body)` (returns "ok" for the expected answer, any
-- other string names an unexpected one) and then loads this file with dofile().
-- Environment: BENCH_AUTH (base64 "client_id:client_secret"), BENCH_THREADS (wrk -t value).

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

counts = {}

-- Most scenarios expect one status with one JSON member in the body.
function expect(wanted_status, member)
  classify = function(status, body)
    if status == wanted_status and string.find(body, '"' .. member .. '"', 1, true) then
      return "ok"
    end
    return describe(status, body)
  end
end

function response(status, headers, body)
  local key = classify(status, body or "")
  counts[key] = (counts[key] or 0) + 1
end

function basic_headers()
  local auth = os.getenv("BENCH_AUTH")
  if not auth or auth == "" then
    error("BENCH_AUTH (base64 client_id:client_secret) is not set")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Accept"] = "application/json"
end

-- Names an unexpected answer by status and, when the body has one, the OAuth error code.
function describe(status, body)
  local err = string.match(body, '"error"%s*:%s*"([^"]+)"')
  if err then
    return tostring(status) .. " " .. err
  end
  return tostring(status)
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts") or {}
    for k, v in pairs(c) do
      total[k] = (total[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, json_string(k) .. ":" .. string.format("%d", v))
  end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"mean":%.1f,"stdev":%.1f,"max":%d},' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"answers":{%s}}',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.stdev, latency.max,
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ","))
  io.write("BENCH_JSON " .. out .. "\n")
end
