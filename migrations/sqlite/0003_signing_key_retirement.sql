-- Signing keys get an end (issue 12): a retired key is left out of the JWKS and verifies no token.
-- Rows are kept (tokens reference their key) and `retired_at` records when.
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;
