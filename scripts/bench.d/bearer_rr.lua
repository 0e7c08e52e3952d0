-- wrk: GET one path with a bearer token, cycling through the tokens of a file (one per line).
-- BENCH_TOKENS: the file. One token in it is the same request every time; many are round-robin
-- (each wrk thread starts at its own offset).
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  tokens[#tokens + 1] = "Bearer " .. line
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(#tokens))
end

function request()
  i = i + 1
  local auth = tokens[((i + (offset or 0)) % #tokens) + 1]
  return wrk.format("GET", nil, {["Authorization"] = auth})
end
