-- G8, real vault IDs: a vault may be created with an ID of its own (a Connect vault's), but never
-- with the ID of a vault that was deleted, so that nothing recorded about the old vault (token
-- scopes, audit events) comes to name a new one. A deleted vault's ID is kept here; the vaults
-- deleted before this migration are taken from the audit trail.
CREATE TABLE deleted_vaults (
    id         TEXT PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);
INSERT INTO deleted_vaults (id, deleted_at)
SELECT target_id, MAX(at) FROM audit_events
WHERE action = 'vault.delete' AND target_type = 'vault' AND outcome = 'success'
GROUP BY target_id;
