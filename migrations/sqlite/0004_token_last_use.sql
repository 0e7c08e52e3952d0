-- G7, last use: when a gateway last let a request with the token through, and the client address
-- it saw. Null until the token is used. Written from the gateways' usage reports at most once a
-- minute per token, so last use is accurate to a minute; a report never moves it back.
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN last_used_ip TEXT;
