-- POST /token grant_type=client_credentials: the same client authentication and token-endpoint
-- path with no CIBA in it, as a baseline (answer 200 + access_token).
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

expect(200, "access_token")

function init(args)
  basic_headers()
  wrk.body = "grant_type=client_credentials"
end
