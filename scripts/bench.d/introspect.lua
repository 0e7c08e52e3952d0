-- wrk script: POST /v1/introspect with one token, authenticated as its server.
-- Reads INTROSPECT_AUTH (base64 "server_id:secret") and INTROSPECT_TOKEN from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("INTROSPECT_AUTH")
wrk.body = '{"token":"' .. os.getenv("INTROSPECT_TOKEN") .. '"}'
