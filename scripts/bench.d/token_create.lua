-- wrk: POST /v1/connect/servers/{server}/tokens as an owner.
-- BENCH_KEY: the API key; BENCH_VAULT: the vault to scope the tokens to.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.body = '{"name":"bench","vaults":[{"vault":"' .. os.getenv("BENCH_VAULT") .. '","access":"read"}]}'
