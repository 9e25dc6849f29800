-- wrk script of the django-ciba benchmark: form POSTs whose body carries one value from a file
-- (an auth_req_id, or a login_hint), checked answers, and a JSON summary written by done().
--
-- Configured through the environment (benchmarks/load.py sets it):
--   BENCH_PATH           request path, e.g. /o/token/
--   BENCH_AUTH           Authorization header value (client_secret_basic)
--   BENCH_BODY           form body; "{id}" is replaced by a value from BENCH_IDS
--   BENCH_IDS            file with one value per line (optional when BENCH_BODY has no "{id}")
--   BENCH_OFFSET         index of the first value to use (the harness rotates through the file)
--   BENCH_ONCE           "1": every value is used at most once (approved polls); when the values
--                        run out, the thread stops (and counts the shortfall as "exhausted")
--   BENCH_THREADS        wrk's -t (values are dealt to threads round-robin)
--   BENCH_EXPECT_STATUS  the answer's expected status
--   BENCH_EXPECT_BODY    a string the expected answer's body contains ("" for any)
--   BENCH_OUT            where done() writes its JSON
-- Everything else counts as unexpected; the first few unexpected answers are kept as samples.

local path = os.getenv("BENCH_PATH") or "/"
local auth = os.getenv("BENCH_AUTH")
local template = os.getenv("BENCH_BODY") or ""
local ids_file = os.getenv("BENCH_IDS")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local once = os.getenv("BENCH_ONCE") == "1"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local expect_status = tonumber(os.getenv("BENCH_EXPECT_STATUS") or "200")
local expect_body = os.getenv("BENCH_EXPECT_BODY") or ""
local out = os.getenv("BENCH_OUT")
local MAX_SAMPLES = 3

-- ---- main state: one entry per thread -----------------------------------------------------
local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

-- ---- thread state ------------------------------------------------------------------------
local values = {}
local cursor = 0
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local prefix, suffix = template, nil
counts = { expected = 0, unexpected = 0, exhausted = 0, sent = 0 }
statuses = {}
samples = {}
local stopping = false

function init(args)
  if auth and auth ~= "" then headers["Authorization"] = auth end
  local at = string.find(template, "{id}", 1, true)
  if at then
    prefix, suffix = string.sub(template, 1, at - 1), string.sub(template, at + 4)
    local all = {}
    for line in io.lines(ids_file) do
      if line ~= "" then table.insert(all, line) end
    end
    -- Deal the values round-robin: thread k gets all[k+1], all[k+1+n], ... from `offset` on.
    local n = #all
    local count = once and (n - offset) or n
    for i = 0, count - 1 do
      if i % nthreads == tid then
        table.insert(values, all[((offset + i) % n) + 1])
      end
    end
  end
end

function request()
  counts.sent = counts.sent + 1
  local body = prefix
  if suffix then
    if once and cursor >= #values then
      body = prefix .. "exhausted" .. suffix
      counts.exhausted = counts.exhausted + 1
    elseif #values == 0 then
      body = prefix .. "no-values" .. suffix
    else
      body = prefix .. values[(cursor % #values) + 1] .. suffix
    end
    cursor = cursor + 1
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == expect_status and (expect_body == "" or string.find(body or "", expect_body, 1, true)) then
    counts.expected = counts.expected + 1
  else
    counts.unexpected = counts.unexpected + 1
    if #samples < MAX_SAMPLES then
      table.insert(samples, key .. " " .. string.sub(body or "", 1, 300))
    end
  end
  if once and cursor >= #values and not stopping then
    stopping = true
    wrk.thread:stop()
  end
end

-- ---- JSON --------------------------------------------------------------------------------
local function quote(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

local function encode(value)
  local kind = type(value)
  if kind == "table" then
    if #value > 0 or next(value) == nil then
      local parts = {}
      for _, item in ipairs(value) do table.insert(parts, encode(item)) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local parts = {}
    for k, v in pairs(value) do table.insert(parts, quote(tostring(k)) .. ":" .. encode(v)) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "number" then
    return string.format("%.17g", value)
  elseif kind == "boolean" then
    return value and "true" or "false"
  elseif value == nil then
    return "null"
  end
  return quote(tostring(value))
end

function done(summary, latency, requests)
  local total = { expected = 0, unexpected = 0, exhausted = 0, sent = 0 }
  local all_statuses, all_samples = {}, {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts") or {}
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    for k, v in pairs(thread:get("statuses") or {}) do all_statuses[k] = (all_statuses[k] or 0) + v end
    for _, s in ipairs(thread:get("samples") or {}) do
      if #all_samples < MAX_SAMPLES then table.insert(all_samples, s) end
    end
  end
  local pct = {}
  for _, p in ipairs({ 50, 90, 95, 99, 99.9 }) do
    pct[tostring(p)] = latency:percentile(p)
  end
  -- The quantile function (0.5 % steps, finer in the tail) lets the harness pool several runs.
  local quantiles = {}
  local points = {}
  for step = 1, 198 do table.insert(points, step * 0.5) end
  for _, p in ipairs({ 99.1, 99.2, 99.3, 99.4, 99.5, 99.6, 99.7, 99.8, 99.9, 99.95, 99.99, 100 }) do
    table.insert(points, p)
  end
  for _, p in ipairs(points) do
    table.insert(quantiles, { p, latency:percentile(p) })
  end
  local result = {
    duration_us = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    socket_errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      timeout = summary.errors.timeout,
    },
    latency_us = {
      min = latency.min, max = latency.max, mean = latency.mean, stdev = latency.stdev, percentiles = pct,
      quantiles = quantiles,
    },
    counts = total,
    statuses = all_statuses,
    samples = all_samples,
  }
  local file = assert(io.open(out, "w"))
  file:write(encode(result))
  file:close()
end
