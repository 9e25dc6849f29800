-- POST /token with the CIBA grant for requests nobody approves: the expected answer is
-- 400 authorization_pending. The auth_req_ids come from the file in BENCH_IDS (one a line);
-- thread k of BENCH_THREADS polls ids k+1, k+1+T, k+1+2T, ... round robin, so the load spreads
-- evenly and every id is polled once per pass through the file.
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

function classify(status, body)
  if status == 400 and string.find(body, '"authorization_pending"', 1, true) then
    return "ok"
  end
  return describe(status, body)
end

local bodies = {}
local n = 0
local i = 0

function init(args)
  basic_headers()
  local path = os.getenv("BENCH_IDS")
  if not path or path == "" then
    error("BENCH_IDS (file of auth_req_ids) is not set")
  end
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local index = 0
  for line in io.lines(path) do
    if line ~= "" then
      if index % nthreads == tid then
        n = n + 1
        bodies[n] = "grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id=" .. line
      end
      index = index + 1
    end
  end
  if n == 0 then
    error("no auth_req_id for thread " .. tostring(tid) .. " in " .. path)
  end
end

function request()
  i = i % n + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
