-- wrk: POST /v1/introspect cycling through many tokens, authenticated as their server.
-- INTROSPECT_AUTH: base64 "server_id:secret"; INTROSPECT_TOKENS: a file with one JWT per line.
local tokens = {}
for line in io.lines(os.getenv("INTROSPECT_TOKENS")) do
  tokens[#tokens + 1] = '{"token":"' .. line .. '"}'
end
local auth = "Basic " .. os.getenv("INTROSPECT_AUTH")
local i = 0

function setup(thread)
  thread:set("offset", math.random(#tokens))
end

function request()
  i = i + 1
  local body = tokens[((i + (offset or 0)) % #tokens) + 1]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
