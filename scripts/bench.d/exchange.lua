-- wrk: POST /v1/token-exchange (RFC 8693, issue 18) cycling through many subject tokens.
-- EXCHANGE_TOKENS: a file with one subject JWT per line; EXCHANGE_RESOURCE: the server.
local bodies = {}
local resource = os.getenv("EXCHANGE_RESOURCE")
for line in io.lines(os.getenv("EXCHANGE_TOKENS")) do
  bodies[#bodies + 1] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
    .. "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
    .. "&resource=" .. resource .. "&subject_token=" .. line
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(#bodies))
end

function request()
  i = i + 1
  local body = bodies[((i + (offset or 0)) % #bodies) + 1]
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
