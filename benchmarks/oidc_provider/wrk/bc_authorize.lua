-- POST /backchannel: a new CIBA request for the fixed user each time (answer 200 + auth_req_id).
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

expect(200, "auth_req_id")

function init(args)
  basic_headers()
  local hint = os.getenv("BENCH_LOGIN_HINT") or "alice%40example.com"
  wrk.body = "scope=openid&login_hint=" .. hint
end
