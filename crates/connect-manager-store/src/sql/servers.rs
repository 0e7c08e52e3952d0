//! Connect servers ([`ServerStore`]): create with vaults (R3), rename, delete (R4), rotate the
//! secret (C3), grant and revoke vaults (R5, R6), and what introspection reads of a live server.
//! [`lock_live_server`] states the order every change takes its locks in.

use std::collections::BTreeSet;

use async_trait::async_trait;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{Actor, Server, ServerState, ServerVault, VaultAccess};
use connect_manager_core::name::{Name, name_key};
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Principal;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::rows::{SERVER_COLS, ServerRow};
use super::vaults::load_grantable_vault;
use super::{
    Conn, ThisStore, Tx, children_of, commit, managed, matchable, name_match_limit, name_taken,
    require_changed,
};
use crate::sql_backend::{NameTable, SqlBackend};
use crate::{Change, DbResult, NewServer, ServerAccess, ServerCredentials, ServerStore};

/// Loads the servers' vault grants and builds the servers, in the rows' order.
async fn hydrate_servers(conn: &mut Conn, rows: Vec<ServerRow>) -> Result<Vec<Server>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut vaults = children_of(
        conn,
        &ids,
        |ids| {
            format!(
                "SELECT sv.server_id, v.id, v.name FROM server_vaults sv \
                 JOIN vaults v ON v.id = sv.vault_id \
                 WHERE sv.server_id IN ({ids}) ORDER BY v.name_key, v.id"
            )
        },
        |(server_id, id, name): (String, String, String)| {
            let access = VaultAccess::ReadWrite;
            Ok((server_id, ServerVault { id, name, access }))
        },
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let v = vaults.remove(&r.id).unwrap_or_default();
            r.into_server(v)
        })
        .collect()
}

async fn load_server(conn: &mut Conn, server_id: &str) -> Result<Option<Server>> {
    let row: Option<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SERVER_COLS} FROM servers WHERE id = $1"
    )))
    .bind(server_id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    Ok(hydrate_servers(conn, row.into_iter().collect())
        .await?
        .pop())
}

pub(super) async fn load_live_server(conn: &mut Conn, server_id: &str) -> Result<Server> {
    match load_server(conn, server_id).await? {
        Some(s) if s.state == ServerState::Active => Ok(s),
        _ => Err(Error::not_found("server", server_id)),
    }
}

/// Locks the row of the live server `server_id` (PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
/// serialises writers) with `lock` (`LOCK_SERVER_SHARE` or `LOCK_SERVER_UPDATE`), or answers 404
/// when it is not live. A change to a server's grants takes it before it reads or writes a grant,
/// so that a concurrent `delete_server` (which updates that row first) either waits for the grant
/// and then ends it, or is seen by it: R4, no grant survives its server's delete. Without it, read
/// committed let a grant read the server as live, the delete commit meanwhile, and the grant be
/// inserted after the delete had ended every grant (the foreign key check's KEY SHARE lock does
/// not conflict with the delete's update).
///
/// Lock order. Every change takes its locks in this order, so that no two can wait for each
/// other in a cycle (a deadlock, which PostgreSQL breaks by failing one of them):
/// 1. the advisory name lock of a table (`lock_names`: server and vault create and rename, vault delete);
/// 2. the Owners group row (`lock_owners`);
/// 3. server rows (`delete_server`, `rotate_server_secret` and `rename_server` by updating them,
///    `grant_vault` and `revoke_vault` with `LOCK_SERVER_UPDATE`, `grant_group` with
///    `LOCK_SERVER_SHARE`, `delete_vault` by updating the servers it was granted to);
/// 4. vault rows (`delete_vault` and `rename_vault` write them; a vault grant's insert checks
///    its vault, after locking its server);
/// 5. grant rows: `server_vaults` (token create's `LOCK_READ_GRANTS`, vault grant and revoke,
///    `delete_server`), `group_servers` (group grant and revoke, `delete_server`);
/// 6. tokens (`delete_server` revokes them; token create inserts new ones).
///
/// A foreign key check takes KEY SHARE on the parent row; that waits only for a DELETE or a key
/// update of the parent. Nothing deletes a server row or updates its key, so the checks on
/// `servers` (token create, grant inserts) never wait. `delete_vault` deletes a vault row and,
/// by cascade, its grant rows (waiting for a token create's share lock on them); token create
/// takes no lock on a vault row (`token_vaults` has no foreign key to `vaults`), so it never
/// waits for `delete_vault` in turn.
pub(super) async fn lock_live_server(tx: &mut Tx, server_id: &str, lock: &str) -> Result<()> {
    let live: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT id FROM servers WHERE id = $1 AND state = 'ACTIVE'{lock}"
    )))
    .bind(server_id)
    .fetch_optional(&mut **tx)
    .await
    .db()?;
    match live {
        Some(_) => Ok(()),
        None => Err(Error::not_found("server", server_id)),
    }
}

/// Marks the server changed at `now` (its vault grants changed).
async fn touch_server(tx: &mut Tx, server_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE servers SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(server_id)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(())
}

impl ThisStore {
    /// Ends a change to a live server: reads it as changed, commits, and announces the change
    /// (caches drop the server's credentials and grants).
    async fn commit_server_change(&self, mut tx: Tx, server_id: &str) -> Result<Server> {
        let s = load_live_server(&mut tx, server_id).await?;
        self.commit_announcing(tx, Change::Server(server_id.to_owned()))
            .await?;
        Ok(s)
    }
}

#[async_trait]
impl ServerStore for ThisStore {
    async fn create_server(&self, actor: &Actor, new: &NewServer) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        ThisStore::lock_names(&mut tx, NameTable::Servers).await?;
        let vault_ids: BTreeSet<&String> = new.vault_ids.iter().collect();
        for vault_id in &vault_ids {
            load_grantable_vault(&mut tx, vault_id).await?;
        }
        let now = Timestamp::now().micros();
        sqlx::query(
            "INSERT INTO servers (id, name, name_key, state, created_at, updated_at, creator_id, \
             tokens_version, secret_verifier) VALUES ($1, $2, $3, 'ACTIVE', $4, $4, $5, 1, $6)",
        )
        .bind(&new.id)
        .bind(new.name.as_str())
        .bind(name_key(&new.name))
        .bind(now)
        .bind(&actor.user_id)
        .bind(&new.secret_verifier)
        .execute(&mut *tx)
        .await
        .unique(|| name_taken("server", &new.name))?;
        for vault_id in &vault_ids {
            sqlx::query(
                "INSERT INTO server_vaults (server_id, vault_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&new.id)
            .bind(*vault_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        audit!(tx, actor, ServerCreate, Server, &new.id).await?;
        let s = load_live_server(&mut tx, &new.id).await?;
        commit(tx).await?;
        Ok(s)
    }

    async fn list_servers(&self, viewer: &Principal, page: &PageRequest) -> Result<Page<Server>> {
        let (at, id) = page.bounds();
        let mut conn = self.conn().await?;
        // A4: see `managed`.
        let visible = managed("s.id");
        let rows: Vec<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SERVER_COLS} FROM servers s WHERE s.state = 'ACTIVE' AND {visible} \
             AND (s.created_at, s.id) < ($3, $4) \
             ORDER BY s.created_at DESC, s.id DESC LIMIT $5"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        let servers = hydrate_servers(&mut conn, rows).await?;
        Ok(page.finish(servers))
    }

    async fn find_servers(&self, viewer: &Principal, reference: &str) -> Result<Found<Server>> {
        if !matchable(reference) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        // Visibility (A4) in SQL, the same test as the lists': what the viewer may not see is
        // never a candidate, so a server the viewer may not see with the reference as its ID
        // leaves the names to match, as if it did not exist.
        let visible = managed("s.id");
        let by_id: Option<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SERVER_COLS} FROM servers s WHERE s.id = $3 AND s.state = 'ACTIVE' \
             AND {visible}"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        if let Some(row) = by_id {
            return Ok(Found::Id(row.into_server(Vec::new())?));
        }
        let rows: Vec<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SERVER_COLS} FROM servers s WHERE s.name_key = $3 AND s.state = 'ACTIVE' \
             AND {visible} ORDER BY s.created_at DESC, s.id DESC LIMIT $4"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(name_key(reference))
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        if !rows.is_empty() {
            return Ok(Found::Names(
                rows.into_iter()
                    .map(|r| r.into_server(Vec::new()))
                    .collect::<Result<_>>()?,
            ));
        }
        // Nothing visible matched; a match the viewer may not see (the ID first) is a denied
        // attempt.
        let mut hidden = None;
        for (sql, key) in [
            (
                "SELECT id FROM servers WHERE id = $1 AND state = 'ACTIVE'",
                reference.to_owned(),
            ),
            (
                "SELECT id FROM servers WHERE name_key = $1 AND state = 'ACTIVE' LIMIT 1",
                name_key(reference),
            ),
        ] {
            hidden = sqlx::query_scalar(sql)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await
                .db()?;
            if hidden.is_some() {
                break;
            }
        }
        Ok(hidden.map_or(Found::Names(Vec::new()), Found::Hidden))
    }

    async fn get_server(&self, server_id: &str) -> Result<Option<Server>> {
        if !matchable(server_id) {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        load_server(&mut conn, server_id).await
    }

    async fn rename_server(&self, actor: &Actor, server_id: &str, name: &Name) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        ThisStore::lock_names(&mut tx, NameTable::Servers).await?;
        let updated = sqlx::query(
            "UPDATE servers SET name = $1, name_key = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'ACTIVE'",
        )
        .bind(name.as_str())
        .bind(name_key(name))
        .bind(Timestamp::now().micros())
        .bind(server_id)
        .execute(&mut *tx)
        .await
        .unique(|| name_taken("server", name))?
        .rows_affected();
        require_changed(updated, "server", server_id)?;
        audit!(tx, actor, ServerRename, Server, server_id).await?;
        let s = load_live_server(&mut tx, server_id).await?;
        commit(tx).await?;
        Ok(s)
    }

    async fn delete_server(&self, actor: &Actor, server_id: &str) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE servers SET state = 'DELETED', secret_verifier = '', updated_at = $1 \
             WHERE id = $2 AND state = 'ACTIVE'",
        )
        .bind(Timestamp::now().micros())
        .bind(server_id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        require_changed(updated, "server", server_id)?;
        for sql in [
            "DELETE FROM server_vaults WHERE server_id = $1",
            "DELETE FROM group_servers WHERE server_id = $1",
            // Issue 18: its trust policies go with it (their scopes by cascade).
            "DELETE FROM trust_policies WHERE server_id = $1",
        ] {
            sqlx::query(sql)
                .bind(server_id)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        // R4: every token of the server is revoked with it.
        let revoked = sqlx::query(
            "UPDATE tokens SET state = 'REVOKED', revoked_at = $1 \
             WHERE server_id = $2 AND state = 'ACTIVE'",
        )
        .bind(Timestamp::now().micros())
        .bind(server_id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        audit!(tx, actor, ServerDelete, Server, server_id).await?;
        self.commit_announcing(tx, Change::Server(server_id.to_owned()))
            .await?;
        Ok(revoked)
    }

    async fn rotate_server_secret(
        &self,
        actor: &Actor,
        server_id: &str,
        secret_verifier: &str,
    ) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE servers SET secret_verifier = $1, tokens_version = tokens_version + 1, \
             updated_at = $2 WHERE id = $3 AND state = 'ACTIVE'",
        )
        .bind(secret_verifier)
        .bind(Timestamp::now().micros())
        .bind(server_id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        require_changed(updated, "server", server_id)?;
        audit!(tx, actor, ServerCredentialsRotate, Server, server_id).await?;
        self.commit_server_change(tx, server_id).await
    }

    async fn grant_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        // R4: see `lock_live_server`. An update lock, not a share lock: the grant updates the
        // row below, and two grants holding share locks would each wait for the other's.
        lock_live_server(&mut tx, server_id, ThisStore::LOCK_SERVER_UPDATE).await?;
        load_grantable_vault(&mut tx, vault_id).await?;
        let now = Timestamp::now().micros();
        let added = sqlx::query(
            "INSERT INTO server_vaults (server_id, vault_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (server_id, vault_id) DO NOTHING",
        )
        .bind(server_id)
        .bind(vault_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if added > 0 {
            touch_server(&mut tx, server_id, now).await?;
            let target = format!("{server_id}/{vault_id}");
            audit!(tx, actor, VaultGrant, ServerVault, &target).await?;
        }
        self.commit_server_change(tx, server_id).await
    }

    async fn revoke_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        // The server row before the grant row, like a grant (see `lock_live_server`): a revoke
        // that deleted the grant row first and then waited for the server row would deadlock
        // with a grant of the same vault holding the server row and waiting for the grant row.
        lock_live_server(&mut tx, server_id, ThisStore::LOCK_SERVER_UPDATE).await?;
        let removed =
            sqlx::query("DELETE FROM server_vaults WHERE server_id = $1 AND vault_id = $2")
                .bind(server_id)
                .bind(vault_id)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
        require_changed(
            removed,
            "vault grant",
            format!("{vault_id} on server {server_id}"),
        )?;
        touch_server(&mut tx, server_id, Timestamp::now().micros()).await?;
        let target = format!("{server_id}/{vault_id}");
        audit!(tx, actor, VaultRevoke, ServerVault, &target).await?;
        self.commit_server_change(tx, server_id).await
    }

    async fn server_access(&self, server_id: &str) -> Result<Option<ServerAccess>> {
        if !matchable(server_id) {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT id, secret_verifier, tokens_version FROM servers \
             WHERE id = $1 AND state = 'ACTIVE'",
        )
        .bind(server_id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        let Some((server_id, secret_verifier, tokens_version)) = row else {
            return Ok(None);
        };
        let vault_ids: Vec<String> =
            sqlx::query_scalar("SELECT vault_id FROM server_vaults WHERE server_id = $1")
                .bind(&server_id)
                .fetch_all(&mut *conn)
                .await
                .db()?;
        Ok(Some(ServerAccess {
            credentials: ServerCredentials {
                server_id,
                secret_verifier,
                tokens_version,
            },
            vault_ids,
        }))
    }
}
