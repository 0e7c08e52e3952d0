//! The SQL both backends run, written once. This file is compiled into `sqlite` and `postgres`
//! (`#[path]`), where `super::Db` is that backend's sqlx database; everything the two databases
//! do differently is a function of the backend module (`begin_write`, the `lock_*` functions).
//!
//! Placeholders are `$n` (both databases accept them), timestamps are `BIGINT` microseconds, and
//! every change runs in one transaction with its audit event (A5).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use connect_manager_core::api::usage::{LAST_USE_RESOLUTION_SECONDS, TokenUsage};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::{Found, MAX_NAME_MATCHES};
use connect_manager_core::model::{
    Actor, ApiKeyInfo, AuditEvent, GrantScope, Group, GroupGrant, Outcome, Server, ServerState,
    ServerVault, TokenRecord, TokenState, User, Vault, VaultAccess, VaultType, audit_target,
    check_grantable,
};
use connect_manager_core::name::Name;
use connect_manager_core::name::name_key;
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Principal;
use connect_manager_core::secret::ct_eq;
use connect_manager_core::token::SealedKey;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::{
    BACKEND, Db, LOCK_READ_GRANTS, LOCK_SERVER_SHARE, LOCK_SERVER_UPDATE, LOCK_VAULT_KEY,
    ThisStore, begin_write, lock_names, lock_owners, lock_signing_keys, notify,
};
use crate::{
    AuditFilter, Backend, Bootstrap, Change, NewServer, NewToken, Reseal, RetiredKey, ServerAccess,
    ServerCredentials, Store, db_err, on_unique,
};

type Tx = sqlx::Transaction<'static, Db>;
type Conn = <Db as sqlx::Database>::Connection;

/// `$first, $first+1, …` for `n` values: the only text ever formatted into SQL here.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn audit(
    tx: &mut Tx,
    actor: &Actor,
    action: AuditAction,
    target_type: TargetType,
    target_id: &str,
    outcome: Outcome,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events \
         (id, at, actor_id, action, target_type, target_id, request_id, client_ip, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_lower())
    .bind(Timestamp::now().micros())
    .bind(&actor.user_id)
    .bind(action.as_str())
    .bind(target_type.as_str())
    .bind(audit_target(target_id).as_ref())
    .bind(&actor.request_id)
    .bind(&actor.client_ip)
    .bind(outcome.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(db_err)
}

impl ThisStore {
    /// A pooled connection, unless the database is known to be down: then 503 at once, also for
    /// a call already waiting for a connection (see `crate::availability`).
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
        self.availability()
            .guard(async { self.pool().acquire().await.map_err(db_err) })
            .await
    }

    /// A write transaction, begun the backend's way, on the same terms as [`Self::conn`].
    async fn write_tx(&self) -> Result<Tx> {
        self.availability().guard(begin_write(self.pool())).await
    }

    /// A write that needs the space a change needs (every change writes an audit event): an
    /// audit row inserted and deleted again in one committed transaction, so the log never
    /// shows it. `/readyz` runs it while writes are suspected to fail for lack of space
    /// (`availability::StorageWatch`).
    async fn probe_write(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let id = format!("probe-{}", new_lower());
        sqlx::query(
            "INSERT INTO audit_events \
             (id, at, actor_id, action, target_type, target_id, request_id, client_ip, outcome) \
             VALUES ($1, 0, '', 'storage.probe', 'storage', '', '', '', 'success')",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM audit_events WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await
    }

    /// Commits and announces what changed: to other replicas in the transaction (PostgreSQL),
    /// to this process once committed, so its caches drop the old state before the caller is
    /// answered.
    async fn commit_announcing(&self, mut tx: Tx, change: Change) -> Result<()> {
        notify(&mut tx, &change).await?;
        commit(tx).await?;
        self.listeners().announce(&change);
        Ok(())
    }
}

// ---- rows -------------------------------------------------------------------------------------

fn sealed_key((kid, sealed_private, x, y): (String, String, String, String)) -> SealedKey {
    SealedKey {
        kid,
        sealed_private,
        x,
        y,
    }
}

type UserRow = (String, String, String, i64);

fn user(r: UserRow) -> User {
    User {
        id: r.0,
        name: r.1,
        email: r.2,
        created_at: Timestamp(r.3),
    }
}

type VaultRow = (String, String, String, i64);

fn vault(r: VaultRow) -> Result<Vault> {
    Ok(Vault {
        vault_type: VaultType::parse(&r.2)
            .ok_or_else(|| Error::internal(format!("vault {} has unknown type {}", r.0, r.2)))?,
        id: r.0,
        name: r.1,
        created_at: Timestamp(r.3),
    })
}

type ServerRow = (String, String, String, i64, i64, String, i64);
const SERVER_COLS: &str = "id, name, state, created_at, updated_at, creator_id, tokens_version";

fn server(r: ServerRow, vaults: Vec<ServerVault>) -> Result<Server> {
    Ok(Server {
        state: ServerState::parse(&r.2)
            .ok_or_else(|| Error::internal(format!("server {} has unknown state {}", r.0, r.2)))?,
        id: r.0,
        name: r.1,
        created_at: Timestamp(r.3),
        updated_at: Timestamp(r.4),
        creator_id: r.5,
        tokens_version: r.6,
        vaults,
    })
}

type GroupRow = (String, String, i64);

type TokenRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);
const TOKEN_COLS: &str = "t.id, t.server_id, t.name, t.state, t.issuer, t.kid, t.created_at, \
     t.expires_at, t.revoked_at, t.last_used_at, t.last_used_ip";

/// Loads the tokens' scopes and builds the records, in the rows' order.
async fn hydrate_tokens(conn: &mut Conn, rows: Vec<TokenRow>) -> Result<Vec<TokenRecord>> {
    let mut scopes: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    if !rows.is_empty() {
        let sql = format!(
            "SELECT token_id, vault_id, access FROM token_vaults WHERE token_id IN ({}) \
             ORDER BY vault_id",
            placeholders(1, rows.len())
        );
        let mut q = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(sql));
        for r in &rows {
            q = q.bind(r.0.clone());
        }
        for (token_id, vault_id, access) in q.fetch_all(&mut *conn).await.map_err(db_err)? {
            scopes.entry(token_id).or_default().push((vault_id, access));
        }
    }
    rows.into_iter()
        .map(|r| {
            Ok(TokenRecord {
                state: TokenState::parse(&r.3)
                    .ok_or_else(|| Error::internal(format!("token {} has state {}", r.0, r.3)))?,
                vaults: scopes.remove(&r.0).unwrap_or_default(),
                id: r.0,
                server_id: r.1,
                name: r.2,
                issuer: r.4,
                kid: r.5,
                created_at: Timestamp(r.6),
                expires_at: r.7.map(Timestamp),
                revoked_at: r.8.map(Timestamp),
                last_used_at: r.9.map(Timestamp),
                last_used_ip: r.10,
            })
        })
        .collect()
}

/// The tables whose live names are unique and can be renamed (see the backend's `lock_names`).
#[derive(Clone, Copy)]
pub(crate) enum NameTable {
    Servers = 1,
    Vaults = 2,
}

/// Whether `text` could equal a stored ID, name, email or filter value. None of those holds a NUL
/// (R2 and the email rule refuse control characters, IDs are base32), and PostgreSQL refuses NUL
/// in text outright: a reference carrying one matches nothing, without a query.
fn matchable(text: &str) -> bool {
    !text.contains('\0')
}

/// How many name matches a lookup reads: one more than R1 lists, so that a name matching too many
/// is refused as such (`lookup::resolve`), never answered with a cut list.
fn name_match_limit() -> i64 {
    i64::try_from(MAX_NAME_MATCHES).unwrap_or(i64::MAX) + 1
}

/// A4 in SQL: whether the server in `column` is one the viewer may manage, with `$1` bound to
/// `viewer.manages_all_servers()` and `$2` to `viewer.user_id` (the same test as the lists').
fn managed(column: &str) -> String {
    format!(
        "($1 OR {column} IN (SELECT gs.server_id FROM group_servers gs \
         JOIN group_members m ON m.group_id = gs.group_id WHERE m.user_id = $2))"
    )
}

async fn load_token(conn: &mut Conn, token_id: &str) -> Result<Option<TokenRecord>> {
    let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $1"
    )))
    .bind(token_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(hydrate_tokens(conn, row.into_iter().collect()).await?.pop())
}

/// Loads the servers' vault grants and builds the servers, in the rows' order.
async fn hydrate_servers(conn: &mut Conn, rows: Vec<ServerRow>) -> Result<Vec<Server>> {
    let mut vaults: HashMap<String, Vec<ServerVault>> = HashMap::new();
    if !rows.is_empty() {
        let sql = format!(
            "SELECT sv.server_id, v.id, v.name FROM server_vaults sv \
             JOIN vaults v ON v.id = sv.vault_id \
             WHERE sv.server_id IN ({}) ORDER BY v.name_key, v.id",
            placeholders(1, rows.len())
        );
        let mut q = sqlx::query_as::<_, (String, String, String)>(AssertSqlSafe(sql));
        for r in &rows {
            q = q.bind(r.0.clone());
        }
        for (server_id, id, name) in q.fetch_all(&mut *conn).await.map_err(db_err)? {
            vaults.entry(server_id).or_default().push(ServerVault {
                id,
                name,
                access: VaultAccess::ReadWrite,
            });
        }
    }
    rows.into_iter()
        .map(|r| {
            let v = vaults.remove(&r.0).unwrap_or_default();
            server(r, v)
        })
        .collect()
}

/// Loads the groups' members and grants and builds the groups, in the rows' order.
async fn hydrate_groups(conn: &mut Conn, rows: Vec<GroupRow>) -> Result<Vec<Group>> {
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    let mut grants: HashMap<String, Vec<GroupGrant>> = HashMap::new();
    if !rows.is_empty() {
        let ids = placeholders(1, rows.len());
        let sql = format!(
            "SELECT group_id, user_id FROM group_members WHERE group_id IN ({ids}) \
             ORDER BY user_id"
        );
        let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
        for r in &rows {
            q = q.bind(r.0.clone());
        }
        for (group_id, user_id) in q.fetch_all(&mut *conn).await.map_err(db_err)? {
            members.entry(group_id).or_default().push(user_id);
        }
        let sql = format!(
            "SELECT group_id, role, '' FROM group_roles WHERE group_id IN ({ids}) \
             UNION ALL \
             SELECT group_id, 'SERVER', server_id FROM group_servers WHERE group_id IN ({ids})"
        );
        let mut q = sqlx::query_as::<_, (String, String, String)>(AssertSqlSafe(sql));
        for r in &rows {
            q = q.bind(r.0.clone());
        }
        for (group_id, scope, server_id) in q.fetch_all(&mut *conn).await.map_err(db_err)? {
            let scope = GrantScope::parse(&scope)
                .ok_or_else(|| Error::internal(format!("unknown grant scope {scope}")))?;
            grants.entry(group_id).or_default().push(GroupGrant {
                scope,
                server_id: (scope == GrantScope::Server).then_some(server_id),
            });
        }
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, created_at)| {
            let mut g = grants.remove(&id).unwrap_or_default();
            g.sort();
            Group {
                members: members.remove(&id).unwrap_or_default(),
                grants: g,
                id,
                name,
                created_at: Timestamp(created_at),
            }
        })
        .collect())
}

async fn load_server(conn: &mut Conn, server_id: &str) -> Result<Option<Server>> {
    let row: Option<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SERVER_COLS} FROM servers WHERE id = $1"
    )))
    .bind(server_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(hydrate_servers(conn, row.into_iter().collect())
        .await?
        .pop())
}

async fn load_live_server(conn: &mut Conn, server_id: &str) -> Result<Server> {
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
async fn lock_live_server(tx: &mut Tx, server_id: &str, lock: &str) -> Result<()> {
    let live: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT id FROM servers WHERE id = $1 AND state = 'ACTIVE'{lock}"
    )))
    .bind(server_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    match live {
        Some(_) => Ok(()),
        None => Err(Error::not_found("server", server_id)),
    }
}

async fn load_group(conn: &mut Conn, group_id: &str) -> Result<Group> {
    let row: Option<GroupRow> =
        sqlx::query_as("SELECT id, name, created_at FROM groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    hydrate_groups(conn, row.into_iter().collect())
        .await?
        .pop()
        .ok_or_else(|| Error::not_found("group", group_id))
}

async fn load_vault(conn: &mut Conn, vault_id: &str) -> Result<Vault> {
    let row: Option<VaultRow> =
        sqlx::query_as("SELECT id, name, type, created_at FROM vaults WHERE id = $1")
            .bind(vault_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    row.map(vault)
        .transpose()?
        .ok_or_else(|| Error::not_found("vault", vault_id))
}

/// A vault about to be granted (R3, R5): it must exist and be grantable, and it stays so until
/// the grant commits. `LOCK_VAULT_KEY` holds the vault row against a concurrent delete, which
/// otherwise could commit between this read and the grant's insert (whose foreign key then
/// failed with a 500); the delete waits, then ends the new grant with the vault (R6).
async fn load_grantable_vault(conn: &mut Conn, vault_id: &str) -> Result<()> {
    let sql =
        format!("SELECT id, name, type, created_at FROM vaults WHERE id = $1{LOCK_VAULT_KEY}");
    let row: Option<VaultRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(vault_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let vault = row
        .map(vault)
        .transpose()?
        .ok_or_else(|| Error::not_found("vault", vault_id))?;
    check_grantable(&vault)
}

async fn is_owners_group(conn: &mut Conn, group_id: &str) -> Result<bool> {
    let builtin: Option<Option<String>> =
        sqlx::query_scalar("SELECT builtin FROM groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    Ok(builtin.flatten().as_deref() == Some("owners"))
}

/// A2: refuses a change that would leave the Owners group without `user_id` when `user_id` is
/// its last member. Call with the owners lock held.
async fn ensure_not_last_owner(tx: &mut Tx, user_id: &str) -> Result<()> {
    let (is_owner, owners): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN m.user_id = $1 THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE g.builtin = 'owners'",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    if is_owner > 0 && owners <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "this is the last owner: add another owner first, so nobody is locked out",
        ));
    }
    Ok(())
}

fn name_taken(kind: &str, name: &str) -> Error {
    Error::conflict(
        "name_taken",
        format!("a {kind} named '{name}' already exists"),
    )
}

fn grant_target(group_id: &str, grant: &GroupGrant) -> String {
    match &grant.server_id {
        Some(s) => format!("{group_id}/{}/{s}", grant.scope.as_str()),
        None => format!("{group_id}/{}", grant.scope.as_str()),
    }
}

impl ThisStore {
    /// A new vault with `id` (fresh, or given by G8's caller): refused when a vault has or had
    /// the ID, or when the name is taken.
    async fn insert_vault(
        &self,
        actor: &Actor,
        id: &str,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        let mut tx = self.write_tx().await?;
        // Also held by vault delete: a vault cannot be deleted between the check and the insert.
        lock_names(&mut tx, NameTable::Vaults).await?;
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT id FROM vaults WHERE id = $1 UNION ALL SELECT id FROM deleted_vaults WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if taken.is_some() {
            return Err(Error::conflict(
                "vault_id_taken",
                format!("vault ID {id} is taken: a vault has it, or had it and was deleted"),
            ));
        }
        let v = Vault {
            id: id.to_owned(),
            name: name.as_str().to_owned(),
            vault_type,
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO vaults (id, name, name_key, type, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&v.id)
        .bind(&v.name)
        .bind(name_key(&v.name))
        .bind(v.vault_type.as_str())
        .bind(v.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, || name_taken("vault", name)))?;
        audit(
            &mut tx,
            actor,
            AuditAction::VaultCreate,
            TargetType::Vault,
            &v.id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        Ok(v)
    }
}

#[async_trait]
impl Store for ThisStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await
            .map_err(db_err)?;
        self.availability()
            .storage()
            .check(self.probe_write())
            .await
    }

    async fn close(&self) {
        self.shutdown().await;
        self.pool().close().await;
    }

    fn pool_state(&self) -> crate::PoolState {
        let pool = self.pool();
        crate::PoolState {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }

    fn subscribe(&self, listener: std::sync::Arc<dyn crate::ChangeListener>) {
        self.listeners().add(listener);
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(db_err)
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        self.setting(key)
            .await?
            .ok_or_else(|| Error::internal(format!("setting {key} vanished")))
    }

    async fn bootstrap_owner(&self, name: &Name, email: &str, key_hash: &str) -> Result<Bootstrap> {
        let mut tx = self.write_tx().await?;
        let now = Timestamp::now().micros();
        // The marker row makes concurrent first starts safe: the second waits on the key and
        // then inserts nothing.
        let marked = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('bootstrapped', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(now.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if marked == 0 || users > 0 {
            commit(tx).await?;
            return Ok(Bootstrap::AlreadyDone);
        }
        let owners_id = new_lower();
        sqlx::query(
            "INSERT INTO groups (id, name, name_key, builtin, created_at) \
             VALUES ($1, $2, $3, 'owners', $4)",
        )
        .bind(&owners_id)
        .bind(connect_manager_core::model::OWNERS_GROUP)
        .bind(name_key(connect_manager_core::model::OWNERS_GROUP))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let owner = User {
            id: connect_manager_core::id::new_upper(),
            name: name.as_str().to_owned(),
            email: email.to_owned(),
            created_at: Timestamp(now),
        };
        sqlx::query(
            "INSERT INTO users (id, name, email, email_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&owner.id)
        .bind(&owner.name)
        .bind(&owner.email)
        .bind(owner.email.to_lowercase())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(&owners_id)
            .bind(&owner.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let key_id = new_lower();
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key_id)
        .bind(&owner.id)
        .bind(key_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let actor = Actor::system("bootstrap");
        audit(
            &mut tx,
            &actor,
            AuditAction::UserCreate,
            TargetType::User,
            &owner.id,
            Outcome::Success,
        )
        .await?;
        audit(
            &mut tx,
            &actor,
            AuditAction::ApiKeyCreate,
            TargetType::ApiKey,
            &key_id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        Ok(Bootstrap::Created(owner))
    }

    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<Principal>> {
        // One round trip: the key's user and every grant of the user's groups.
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT k.user_id, k.key_hash, x.scope, x.server_id FROM api_keys k \
             LEFT JOIN ( \
                 SELECT m.user_id AS user_id, 'OWNER' AS scope, '' AS server_id \
                 FROM group_members m JOIN groups g ON g.id = m.group_id \
                 WHERE g.builtin = 'owners' \
                 UNION ALL \
                 SELECT m.user_id, r.role, '' FROM group_members m \
                 JOIN group_roles r ON r.group_id = m.group_id \
                 UNION ALL \
                 SELECT m.user_id, 'SERVER', s.server_id FROM group_members m \
                 JOIN group_servers s ON s.group_id = m.group_id \
             ) x ON x.user_id = k.user_id \
             WHERE k.key_hash = $1",
        )
        .bind(key_hash)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        let Some((user_id, stored, _, _)) = rows.first() else {
            return Ok(None);
        };
        if !ct_eq(stored, key_hash) {
            return Ok(None);
        }
        let mut p = Principal {
            user_id: user_id.clone(),
            ..Principal::default()
        };
        for (_, _, scope, server_id) in rows {
            match scope.as_deref() {
                Some("OWNER") => p.owner = true,
                Some("MANAGER") => p.manager = true,
                Some("ALL_SERVERS") => p.all_servers = true,
                Some(_) => {
                    p.servers.extend(server_id);
                }
                None => {}
            }
        }
        Ok(Some(p))
    }

    // ---- users ---------------------------------------------------------------------------------

    async fn create_user(&self, actor: &Actor, name: &Name, email: &str) -> Result<User> {
        let mut tx = self.write_tx().await?;
        let u = User {
            id: connect_manager_core::id::new_upper(),
            name: name.as_str().to_owned(),
            email: email.to_owned(),
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO users (id, name, email, email_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.email)
        .bind(u.email.to_lowercase())
        .bind(u.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            on_unique(e, || {
                Error::conflict("email_taken", format!("a user with email '{email}' exists"))
            })
        })?;
        audit(
            &mut tx,
            actor,
            AuditAction::UserCreate,
            TargetType::User,
            &u.id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        Ok(u)
    }

    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        let (at, id) = page.bounds();
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, name, email, created_at FROM users WHERE (created_at, id) < ($1, $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        Ok(page.finish(rows.into_iter().map(user).collect()))
    }

    async fn find_users(&self, reference: &str) -> Result<Found<User>> {
        if !matchable(reference) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        let cols = "SELECT id, name, email, created_at FROM users";
        let by_id: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!("{cols} WHERE id = $1")))
            .bind(reference)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        if let Some(row) = by_id {
            return Ok(Found::Id(user(row)));
        }
        // Emails are unique: at most one.
        let rows: Vec<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{cols} WHERE email_key = $1 LIMIT $2"
        )))
        .bind(reference.trim().to_lowercase())
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(Found::Names(rows.into_iter().map(user).collect()))
    }

    async fn owners(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.created_at FROM users u \
             JOIN group_members m ON m.user_id = u.id JOIN groups g ON g.id = m.group_id \
             WHERE g.builtin = 'owners' ORDER BY u.created_at, u.id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(user).collect())
    }

    async fn delete_user(&self, actor: &Actor, user_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        lock_owners(&mut tx).await?;
        ensure_not_last_owner(&mut tx, user_id).await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::not_found("user", user_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::UserDelete,
            TargetType::User,
            user_id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await
    }

    async fn create_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        key_hash: &str,
    ) -> Result<ApiKeyInfo> {
        let mut tx = self.write_tx().await?;
        let info = ApiKeyInfo {
            id: new_lower(),
            user_id: user_id.to_owned(),
            created_at: Timestamp::now(),
        };
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, user_id, key_hash, created_at) \
             SELECT $1, id, $3, $4 FROM users WHERE id = $2",
        )
        .bind(&info.id)
        .bind(user_id)
        .bind(key_hash)
        .bind(info.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::not_found("user", user_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::ApiKeyCreate,
            TargetType::ApiKey,
            &info.id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        Ok(info)
    }

    async fn list_api_keys(&self, user_id: &str, page: &PageRequest) -> Result<Page<ApiKeyInfo>> {
        let (at, id) = page.bounds();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, user_id, created_at FROM api_keys \
             WHERE user_id = $1 AND (created_at, id) < ($2, $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        let items = rows
            .into_iter()
            .map(|(id, user_id, created_at)| ApiKeyInfo {
                id,
                user_id,
                created_at: Timestamp(created_at),
            })
            .collect();
        Ok(page.finish(items))
    }

    async fn delete_api_key(&self, actor: &Actor, user_id: &str, key_id: &str) -> Result<()> {
        if !matchable(key_id) {
            return Err(Error::not_found("api key", key_id));
        }
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
            .bind(key_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::not_found("api key", key_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::ApiKeyDelete,
            TargetType::ApiKey,
            key_id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await
    }

    // ---- groups --------------------------------------------------------------------------------

    async fn create_group(&self, actor: &Actor, name: &Name) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        let g = Group {
            id: new_lower(),
            name: name.as_str().to_owned(),
            created_at: Timestamp::now(),
            members: vec![],
            grants: vec![],
        };
        sqlx::query("INSERT INTO groups (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&g.id)
            .bind(&g.name)
            .bind(name_key(&g.name))
            .bind(g.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || name_taken("group", name)))?;
        audit(
            &mut tx,
            actor,
            AuditAction::GroupCreate,
            TargetType::Group,
            &g.id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>> {
        let (at, id) = page.bounds();
        let mut conn = self.conn().await?;
        let rows: Vec<GroupRow> = sqlx::query_as(
            "SELECT id, name, created_at FROM groups WHERE (created_at, id) < ($1, $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        let groups = hydrate_groups(&mut conn, rows).await?;
        Ok(page.finish(groups))
    }

    async fn find_groups(&self, reference: &str) -> Result<Found<Group>> {
        if !matchable(reference) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        let cols = "SELECT id, name, created_at FROM groups";
        let by_id: Option<GroupRow> =
            sqlx::query_as(AssertSqlSafe(format!("{cols} WHERE id = $1")))
                .bind(reference)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        if let Some(row) = by_id {
            let mut groups = hydrate_groups(&mut conn, vec![row]).await?;
            return groups
                .pop()
                .map(Found::Id)
                .ok_or_else(|| Error::internal("a group vanished while it was read"));
        }
        let rows: Vec<GroupRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{cols} WHERE name_key = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(name_key(reference))
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(Found::Names(hydrate_groups(&mut conn, rows).await?))
    }

    async fn delete_group(&self, actor: &Actor, group_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if is_owners_group(&mut tx, group_id).await? {
            return Err(Error::conflict(
                "builtin_group",
                "the Owners group cannot be deleted",
            ));
        }
        let deleted = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::not_found("group", group_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::GroupDelete,
            TargetType::Group,
            group_id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await
    }

    async fn add_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(Error::not_found("user", user_id));
        }
        let added = sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if added > 0 {
            let target = format!("{group_id}/{user_id}");
            audit(
                &mut tx,
                actor,
                AuditAction::GroupMemberAdd,
                TargetType::GroupMember,
                &target,
                Outcome::Success,
            )
            .await?;
        }
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn remove_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        if is_owners_group(&mut tx, group_id).await? {
            lock_owners(&mut tx).await?;
            ensure_not_last_owner(&mut tx, user_id).await?;
        }
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if removed == 0 {
            load_group(&mut tx, group_id).await?;
            return Err(Error::not_found("member", user_id));
        }
        let target = format!("{group_id}/{user_id}");
        audit(
            &mut tx,
            actor,
            AuditAction::GroupMemberRemove,
            TargetType::GroupMember,
            &target,
            Outcome::Success,
        )
        .await?;
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn grant_group(
        &self,
        actor: &Actor,
        group_id: &str,
        grant: &GroupGrant,
    ) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let added = match (&grant.scope, &grant.server_id) {
            (GrantScope::Server, Some(server_id)) => {
                // R4: see `lock_live_server`.
                lock_live_server(&mut tx, server_id, LOCK_SERVER_SHARE).await?;
                sqlx::query(
                    "INSERT INTO group_servers (group_id, server_id) VALUES ($1, $2) \
                     ON CONFLICT (group_id, server_id) DO NOTHING",
                )
                .bind(group_id)
                .bind(server_id)
                .execute(&mut *tx)
                .await
            }
            (GrantScope::Manager | GrantScope::AllServers, None) => {
                sqlx::query(
                    "INSERT INTO group_roles (group_id, role) VALUES ($1, $2) \
                     ON CONFLICT (group_id, role) DO NOTHING",
                )
                .bind(group_id)
                .bind(grant.scope.as_str())
                .execute(&mut *tx)
                .await
            }
            _ => {
                return Err(Error::bad_request(
                    "a SERVER grant names one server; others none",
                ));
            }
        }
        .map_err(db_err)?
        .rows_affected();
        if added > 0 {
            let target = grant_target(group_id, grant);
            audit(
                &mut tx,
                actor,
                AuditAction::GroupGrant,
                TargetType::GroupGrant,
                &target,
                Outcome::Success,
            )
            .await?;
        }
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn revoke_group(
        &self,
        actor: &Actor,
        group_id: &str,
        grant: &GroupGrant,
    ) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let removed = match &grant.server_id {
            Some(server_id) => {
                sqlx::query("DELETE FROM group_servers WHERE group_id = $1 AND server_id = $2")
                    .bind(group_id)
                    .bind(server_id)
                    .execute(&mut *tx)
                    .await
            }
            None => {
                sqlx::query("DELETE FROM group_roles WHERE group_id = $1 AND role = $2")
                    .bind(group_id)
                    .bind(grant.scope.as_str())
                    .execute(&mut *tx)
                    .await
            }
        }
        .map_err(db_err)?
        .rows_affected();
        if removed == 0 {
            return Err(Error::not_found("grant", grant_target(group_id, grant)));
        }
        let target = grant_target(group_id, grant);
        audit(
            &mut tx,
            actor,
            AuditAction::GroupRevoke,
            TargetType::GroupGrant,
            &target,
            Outcome::Success,
        )
        .await?;
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    // ---- vaults --------------------------------------------------------------------------------

    async fn create_vault(
        &self,
        actor: &Actor,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        self.insert_vault(actor, &new_lower(), name, vault_type)
            .await
    }

    async fn create_vault_with_id(
        &self,
        actor: &Actor,
        id: &str,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        self.insert_vault(actor, id, name, vault_type).await
    }

    async fn list_vaults(&self, page: &PageRequest) -> Result<Page<Vault>> {
        let (at, id) = page.bounds();
        let rows: Vec<VaultRow> = sqlx::query_as(
            "SELECT id, name, type, created_at FROM vaults WHERE (created_at, id) < ($1, $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        let vaults = rows.into_iter().map(vault).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(vaults))
    }

    async fn find_vaults(&self, reference: &str) -> Result<Found<Vault>> {
        if !matchable(reference) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        let cols = "SELECT id, name, type, created_at FROM vaults";
        let by_id: Option<VaultRow> =
            sqlx::query_as(AssertSqlSafe(format!("{cols} WHERE id = $1")))
                .bind(reference)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        if let Some(row) = by_id {
            return Ok(Found::Id(vault(row)?));
        }
        let rows: Vec<VaultRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{cols} WHERE name_key = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(name_key(reference))
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(Found::Names(
            rows.into_iter().map(vault).collect::<Result<_>>()?,
        ))
    }

    async fn rename_vault(&self, actor: &Actor, vault_id: &str, name: &Name) -> Result<Vault> {
        let mut tx = self.write_tx().await?;
        lock_names(&mut tx, NameTable::Vaults).await?;
        let updated = sqlx::query("UPDATE vaults SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name.as_str())
            .bind(name_key(name))
            .bind(vault_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || name_taken("vault", name)))?
            .rows_affected();
        if updated == 0 {
            return Err(Error::not_found("vault", vault_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::VaultRename,
            TargetType::Vault,
            vault_id,
            Outcome::Success,
        )
        .await?;
        let v = load_vault(&mut tx, vault_id).await?;
        commit(tx).await?;
        Ok(v)
    }

    async fn delete_vault(&self, actor: &Actor, vault_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // Against a concurrent create with this ID (G8; see `insert_vault`).
        lock_names(&mut tx, NameTable::Vaults).await?;
        let now = Timestamp::now().micros();
        sqlx::query(
            "UPDATE servers SET updated_at = $1 \
             WHERE id IN (SELECT server_id FROM server_vaults WHERE vault_id = $2)",
        )
        .bind(now)
        .bind(vault_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let deleted = sqlx::query("DELETE FROM vaults WHERE id = $1")
            .bind(vault_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::not_found("vault", vault_id));
        }
        sqlx::query("INSERT INTO deleted_vaults (id, deleted_at) VALUES ($1, $2)")
            .bind(vault_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        audit(
            &mut tx,
            actor,
            AuditAction::VaultDelete,
            TargetType::Vault,
            vault_id,
            Outcome::Success,
        )
        .await?;
        self.commit_announcing(tx, Change::All).await
    }

    // ---- servers -------------------------------------------------------------------------------

    async fn create_server(&self, actor: &Actor, new: &NewServer) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        lock_names(&mut tx, NameTable::Servers).await?;
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
        .map_err(|e| on_unique(e, || name_taken("server", &new.name)))?;
        for vault_id in &vault_ids {
            sqlx::query(
                "INSERT INTO server_vaults (server_id, vault_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&new.id)
            .bind(*vault_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        audit(
            &mut tx,
            actor,
            AuditAction::ServerCreate,
            TargetType::Server,
            &new.id,
            Outcome::Success,
        )
        .await?;
        let s = load_live_server(&mut tx, &new.id).await?;
        commit(tx).await?;
        Ok(s)
    }

    async fn list_servers(&self, viewer: &Principal, page: &PageRequest) -> Result<Page<Server>> {
        let (at, id) = page.bounds();
        let mut conn = self.conn().await?;
        let rows: Vec<ServerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SERVER_COLS} FROM servers s WHERE s.state = 'ACTIVE' \
             AND ($1 OR s.id IN (SELECT gs.server_id FROM group_servers gs \
                  JOIN group_members m ON m.group_id = gs.group_id WHERE m.user_id = $2)) \
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
        .map_err(db_err)?;
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
        .map_err(db_err)?;
        if let Some(row) = by_id {
            return Ok(Found::Id(server(row, Vec::new())?));
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
        .map_err(db_err)?;
        if !rows.is_empty() {
            return Ok(Found::Names(
                rows.into_iter()
                    .map(|r| server(r, Vec::new()))
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
                .map_err(db_err)?;
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
        lock_names(&mut tx, NameTable::Servers).await?;
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
        .map_err(|e| on_unique(e, || name_taken("server", name)))?
        .rows_affected();
        if updated == 0 {
            return Err(Error::not_found("server", server_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::ServerRename,
            TargetType::Server,
            server_id,
            Outcome::Success,
        )
        .await?;
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
        .map_err(db_err)?
        .rows_affected();
        if updated == 0 {
            return Err(Error::not_found("server", server_id));
        }
        for sql in [
            "DELETE FROM server_vaults WHERE server_id = $1",
            "DELETE FROM group_servers WHERE server_id = $1",
        ] {
            sqlx::query(sql)
                .bind(server_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
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
        .map_err(db_err)?
        .rows_affected();
        audit(
            &mut tx,
            actor,
            AuditAction::ServerDelete,
            TargetType::Server,
            server_id,
            Outcome::Success,
        )
        .await?;
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
        .map_err(db_err)?
        .rows_affected();
        if updated == 0 {
            return Err(Error::not_found("server", server_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::ServerCredentialsRotate,
            TargetType::Server,
            server_id,
            Outcome::Success,
        )
        .await?;
        let s = load_live_server(&mut tx, server_id).await?;
        self.commit_announcing(tx, Change::Server(server_id.to_owned()))
            .await?;
        Ok(s)
    }

    async fn grant_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        // R4: see `lock_live_server`. An update lock, not a share lock: the grant updates the
        // row below, and two grants holding share locks would each wait for the other's.
        lock_live_server(&mut tx, server_id, LOCK_SERVER_UPDATE).await?;
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
        .map_err(db_err)?
        .rows_affected();
        if added > 0 {
            sqlx::query("UPDATE servers SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(server_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let target = format!("{server_id}/{vault_id}");
            audit(
                &mut tx,
                actor,
                AuditAction::VaultGrant,
                TargetType::ServerVault,
                &target,
                Outcome::Success,
            )
            .await?;
        }
        let s = load_live_server(&mut tx, server_id).await?;
        self.commit_announcing(tx, Change::Server(server_id.to_owned()))
            .await?;
        Ok(s)
    }

    async fn revoke_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server> {
        let mut tx = self.write_tx().await?;
        // The server row before the grant row, like a grant (see `lock_live_server`): a revoke
        // that deleted the grant row first and then waited for the server row would deadlock
        // with a grant of the same vault holding the server row and waiting for the grant row.
        lock_live_server(&mut tx, server_id, LOCK_SERVER_UPDATE).await?;
        let removed =
            sqlx::query("DELETE FROM server_vaults WHERE server_id = $1 AND vault_id = $2")
                .bind(server_id)
                .bind(vault_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        if removed == 0 {
            return Err(Error::not_found(
                "vault grant",
                format!("{vault_id} on server {server_id}"),
            ));
        }
        sqlx::query("UPDATE servers SET updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now().micros())
            .bind(server_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let target = format!("{server_id}/{vault_id}");
        audit(
            &mut tx,
            actor,
            AuditAction::VaultRevoke,
            TargetType::ServerVault,
            &target,
            Outcome::Success,
        )
        .await?;
        let s = load_live_server(&mut tx, server_id).await?;
        self.commit_announcing(tx, Change::Server(server_id.to_owned()))
            .await?;
        Ok(s)
    }
    // ---- signing keys and tokens -------------------------------------------------------------

    async fn signing_keys(&self) -> Result<Vec<SealedKey>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT kid, sealed_private, x, y FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(sealed_key).collect())
    }

    async fn signing_kids(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)
    }

    async fn retire_signing_key(&self, actor: &Actor, kid: &str) -> Result<RetiredKey> {
        let mut tx = self.write_tx().await?;
        let retired: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match retired {
            None => return Err(Error::not_found("signing key", kid)),
            Some(Some(at)) => {
                tx.rollback().await.map_err(db_err)?;
                return Ok(RetiredKey {
                    kid: kid.to_owned(),
                    retired_at: Timestamp(at),
                    tokens_revoked: 0,
                });
            }
            Some(None) => {}
        }
        // The newest key signs: retiring it would leave the service signing with an older one
        // (or none). The newest can never be retired, so one key always remains.
        let newest: Option<String> = sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if newest.as_deref() == Some(kid) {
            return Err(Error::conflict(
                "signing_key_in_use",
                format!(
                    "signing key {kid} is the one that signs new tokens: rotate first \
                     (POST /v1/keys/rotate or connect-manager admin rotate-key), then retire it"
                ),
            ));
        }
        let now = Timestamp::now();
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
            .bind(now.micros())
            .bind(kid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let tokens_revoked = sqlx::query(
            "UPDATE tokens SET state = 'REVOKED', revoked_at = $1 \
             WHERE kid = $2 AND state = 'ACTIVE'",
        )
        .bind(now.micros())
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        audit(
            &mut tx,
            actor,
            AuditAction::SigningKeyRetire,
            TargetType::SigningKey,
            kid,
            Outcome::Success,
        )
        .await?;
        // Keys: the ring drops the key and its verified signatures, the access cache the token
        // records (revoked here).
        self.commit_announcing(tx, Change::Keys).await?;
        Ok(RetiredKey {
            kid: kid.to_owned(),
            retired_at: now,
            tokens_revoked,
        })
    }

    async fn replace_master_key_check(
        &self,
        expected: Option<&str>,
        check: &str,
        settings: &[(&str, &str)],
        reseal: &Reseal<'_>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        // Taking the check row decides which replica does the work: a second one waits on the
        // row (PostgreSQL) or the write lock (SQLite), then finds it changed.
        let owned =
            match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO settings (key, value) VALUES ('master_key_check', $1) \
                 ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(check)
                    .execute(&mut *tx)
                    .await
                }
                Some(old) => sqlx::query(
                    "UPDATE settings SET value = $1 WHERE key = 'master_key_check' AND value = $2",
                )
                .bind(check)
                .bind(old)
                .execute(&mut *tx)
                .await,
            }
            .map_err(db_err)?
            .rows_affected();
        if owned == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        lock_signing_keys(&mut tx).await?;
        let keys: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT kid, sealed_private, x, y FROM signing_keys ORDER BY kid")
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        for key in keys.into_iter().map(sealed_key) {
            let new = reseal(&key)?;
            sqlx::query(
                "UPDATE signing_keys SET sealed_private = $1, x = $2, y = $3 WHERE kid = $4",
            )
            .bind(&new.sealed_private)
            .bind(&new.x)
            .bind(&new.y)
            .bind(&key.kid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for (key, value) in settings {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if expected.is_some() {
            audit(
                &mut tx,
                &Actor::system("start"),
                AuditAction::MasterKeyUpgrade,
                TargetType::Installation,
                "master_key_check",
                Outcome::Success,
            )
            .await?;
        }
        self.commit_announcing(tx, Change::Keys).await?;
        Ok(true)
    }

    async fn add_signing_key(&self, actor: &Actor, key: &SealedKey) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_private, x, y, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.sealed_private)
        .bind(&key.x)
        .bind(&key.y)
        .bind(Timestamp::now().micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        audit(
            &mut tx,
            actor,
            AuditAction::SigningKeyCreate,
            TargetType::SigningKey,
            &key.kid,
            Outcome::Success,
        )
        .await?;
        self.commit_announcing(tx, Change::Keys).await
    }

    async fn live_token_kids(&self, now: Timestamp) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT kid FROM tokens WHERE state = 'ACTIVE' \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now.micros())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)
    }

    async fn create_token(&self, actor: &Actor, new: &NewToken) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        // One read checks that the server is live and which of the vaults it is granted, and
        // (PostgreSQL) holds those grants until the token is committed: see LOCK_READ_GRANTS.
        let sql = format!(
            "SELECT sv.vault_id FROM servers s JOIN server_vaults sv ON sv.server_id = s.id \
             WHERE s.id = $1 AND s.state = 'ACTIVE' AND sv.vault_id IN ({}){LOCK_READ_GRANTS}",
            placeholders(2, new.vaults.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(&new.server_id);
        for (vault_id, _) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned());
        }
        let granted: BTreeSet<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        if let Some((vault_id, _)) = new.vaults.iter().find(|(v, _)| !granted.contains(*v)) {
            load_live_server(&mut tx, &new.server_id).await?;
            return Err(Error::Invalid {
                code: "vault_not_granted",
                message: format!(
                    "vault {vault_id} is not granted to server {}: grant it first \
                     (op connect vault grant)",
                    new.server_id
                ),
                details: serde_json::json!({ "vault": vault_id, "server": new.server_id }),
            });
        }
        sqlx::query(
            "INSERT INTO tokens (id, server_id, name, name_key, state, issuer, kid, created_at, \
             expires_at, revoked_at) VALUES ($1, $2, $3, $4, 'ACTIVE', $5, $6, $7, $8, NULL)",
        )
        .bind(&new.id)
        .bind(&new.server_id)
        .bind(new.name.as_str())
        .bind(name_key(&new.name))
        .bind(&new.issuer)
        .bind(&new.kid)
        .bind(new.created_at.micros())
        .bind(new.expires_at.map(Timestamp::micros))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let sql = format!(
            "INSERT INTO token_vaults (token_id, vault_id, access) VALUES {}",
            (0..new.vaults.len())
                .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(&new.id);
        for (vault_id, access) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned()).bind(access);
        }
        q.execute(&mut *tx).await.map_err(db_err)?;
        audit(
            &mut tx,
            actor,
            AuditAction::TokenCreate,
            TargetType::Token,
            &new.id,
            Outcome::Success,
        )
        .await?;
        commit(tx).await?;
        let vaults = new.vaults.to_vec();
        Ok(TokenRecord {
            id: new.id.clone(),
            server_id: new.server_id.clone(),
            name: new.name.as_str().to_owned(),
            state: TokenState::Active,
            issuer: new.issuer.clone(),
            kid: new.kid.clone(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
            vaults,
            last_used_at: None,
            last_used_ip: None,
        })
    }

    async fn token(&self, token_id: &str) -> Result<Option<TokenRecord>> {
        if !matchable(token_id) {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        load_token(&mut conn, token_id).await
    }

    async fn find_tokens(
        &self,
        viewer: &Principal,
        reference: &str,
        server_id: Option<&str>,
    ) -> Result<Found<TokenRecord>> {
        if !matchable(reference) || server_id.is_some_and(|s| !matchable(s)) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        // Visibility (A4) and the server filter in SQL, the same test as the lists': tokens the
        // viewer may not see are never candidates and take no place under the limit.
        let visible = managed("t.server_id");
        // The ID first, alone: however many tokens are named with it, it wins (R1).
        let by_id: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $3 \
             AND ($4 IS NULL OR t.server_id = $4) AND {visible}"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(reference)
        .bind(server_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        if let Some(row) = by_id {
            let mut tokens = hydrate_tokens(&mut conn, vec![row]).await?;
            return tokens
                .pop()
                .map(Found::Id)
                .ok_or_else(|| Error::internal("a token vanished while it was read"));
        }
        let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE t.name_key = $3 \
             AND ($4 IS NULL OR t.server_id = $4) AND {visible} \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $5"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(name_key(reference))
        .bind(server_id)
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        if !rows.is_empty() {
            return Ok(Found::Names(hydrate_tokens(&mut conn, rows).await?));
        }
        // Nothing visible matched; a match the viewer may not see (the ID first) is a denied
        // attempt.
        let mut hidden = None;
        for (sql, key) in [
            (
                "SELECT id FROM tokens WHERE id = $1 AND ($2 IS NULL OR server_id = $2)",
                reference.to_owned(),
            ),
            (
                "SELECT id FROM tokens WHERE name_key = $1 AND ($2 IS NULL OR server_id = $2) \
                 LIMIT 1",
                name_key(reference),
            ),
        ] {
            hidden = sqlx::query_scalar(sql)
                .bind(key)
                .bind(server_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            if hidden.is_some() {
                break;
            }
        }
        Ok(hidden.map_or(Found::Names(Vec::new()), Found::Hidden))
    }

    async fn list_tokens(
        &self,
        viewer: &Principal,
        server_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>> {
        let (at, id) = page.bounds();
        let mut conn = self.conn().await?;
        // Two statements, not one with an OR, so each can walk its own index: one server's
        // tokens by (server_id, created_at, id), all tokens by (created_at, id).
        let visible = "($1 OR t.server_id IN (SELECT gs.server_id FROM group_servers gs \
                       JOIN group_members m ON m.group_id = gs.group_id WHERE m.user_id = $2))";
        let sql = match server_id {
            Some(_) => format!(
                "SELECT {TOKEN_COLS} FROM tokens t WHERE t.server_id = $3 AND {visible} \
                 AND (t.created_at, t.id) < ($4, $5) \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $6"
            ),
            None => format!(
                "SELECT {TOKEN_COLS} FROM tokens t JOIN servers s ON s.id = t.server_id \
                 WHERE s.state = 'ACTIVE' AND $3 IS NULL AND {visible} \
                 AND (t.created_at, t.id) < ($4, $5) \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $6"
            ),
        };
        let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(viewer.manages_all_servers())
            .bind(&viewer.user_id)
            .bind(server_id)
            .bind(at)
            .bind(id)
            .bind(page.fetch())
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        let tokens = hydrate_tokens(&mut conn, rows).await?;
        Ok(page.finish(tokens))
    }

    async fn rename_token(
        &self,
        actor: &Actor,
        token_id: &str,
        name: &Name,
    ) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query("UPDATE tokens SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name.as_str())
            .bind(name_key(name))
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(Error::not_found("token", token_id));
        }
        audit(
            &mut tx,
            actor,
            AuditAction::TokenRename,
            TargetType::Token,
            token_id,
            Outcome::Success,
        )
        .await?;
        let t = load_token(&mut tx, token_id)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id))?;
        self.commit_announcing(tx, Change::Token(token_id.to_owned()))
            .await?;
        Ok(t)
    }

    async fn revoke_token(&self, actor: &Actor, token_id: &str) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        let revoked = sqlx::query(
            "UPDATE tokens SET state = 'REVOKED', revoked_at = $1 WHERE id = $2 AND state = 'ACTIVE'",
        )
        .bind(Timestamp::now().micros())
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let t = load_token(&mut tx, token_id)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id))?;
        if revoked == 0 {
            // Already revoked: not an error, and nothing changed.
            commit(tx).await?;
            return Ok(t);
        }
        audit(
            &mut tx,
            actor,
            AuditAction::TokenRevoke,
            TargetType::Token,
            token_id,
            Outcome::Success,
        )
        .await?;
        self.commit_announcing(tx, Change::Token(token_id.to_owned()))
            .await?;
        Ok(t)
    }

    async fn record_token_usage(&self, server_id: &str, usage: &[TokenUsage]) -> Result<u64> {
        if !matchable(server_id) {
            return Ok(0);
        }
        // One entry per token, its latest use; none later than now (a gateway's clock ahead of
        // ours must not pin a token's last use in the future, where no report could move it).
        let now = Timestamp::now();
        let mut latest: HashMap<&str, (Timestamp, Option<&str>)> = HashMap::new();
        for u in usage.iter().filter(|u| matchable(&u.id)) {
            let at = u.last_used_at.min(now);
            let entry = latest.entry(u.id.as_str()).or_insert((at, None));
            if at >= entry.0 {
                *entry = (at, u.last_used_ip.as_deref().filter(|ip| matchable(ip)));
            }
        }
        if latest.is_empty() {
            return Ok(0);
        }
        let mut entries: Vec<_> = latest.into_iter().collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        let resolution = LAST_USE_RESOLUTION_SECONDS * 1_000_000;
        let mut tx = self.write_tx().await?;
        let mut written = 0;
        // `VALUES` names its columns column1, column2, … in both databases.
        for chunk in entries.chunks(500) {
            let sql = format!(
                "UPDATE tokens SET last_used_at = u.column2, last_used_ip = u.column3 \
                 FROM (VALUES {}) AS u \
                 WHERE tokens.id = u.column1 AND tokens.server_id = $1 \
                 AND (tokens.last_used_at IS NULL OR tokens.last_used_at <= u.column2 - $2)",
                (0..chunk.len())
                    .map(|i| format!("(${}, ${}, ${})", 3 * i + 3, 3 * i + 4, 3 * i + 5))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(server_id)
                .bind(resolution);
            for (id, (at, ip)) in chunk {
                q = q.bind(*id).bind(at.micros()).bind(*ip);
            }
            written += q.execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        }
        commit(tx).await?;
        Ok(written)
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
        .map_err(db_err)?;
        let Some((server_id, secret_verifier, tokens_version)) = row else {
            return Ok(None);
        };
        let vault_ids: Vec<String> =
            sqlx::query_scalar("SELECT vault_id FROM server_vaults WHERE server_id = $1")
                .bind(&server_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
        Ok(Some(ServerAccess {
            credentials: ServerCredentials {
                server_id,
                secret_verifier,
                tokens_version,
            },
            vault_ids,
        }))
    }

    // ---- audit ---------------------------------------------------------------------------------

    async fn record_denial(
        &self,
        actor: &Actor,
        action: AuditAction,
        target_type: TargetType,
        target_id: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        audit(
            &mut tx,
            actor,
            action,
            target_type,
            target_id,
            Outcome::Denied,
        )
        .await?;
        commit(tx).await
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let filters = [&filter.action, &filter.actor_id, &filter.target_id];
        if filters
            .iter()
            .any(|f| f.as_deref().is_some_and(|f| !matchable(f)))
        {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let (at, id) = page.bounds();
        type Row = (
            String,
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, actor_id, action, target_type, target_id, request_id, client_ip, \
             outcome FROM audit_events \
             WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor_id = $2) \
             AND ($3 IS NULL OR target_id = $3) AND ($4 IS NULL OR at >= $4) \
             AND ($5 IS NULL OR at < $5) AND (at, id) < ($6, $7) \
             ORDER BY at DESC, id DESC LIMIT $8",
        )
        .bind(filter.action.as_deref())
        .bind(filter.actor_id.as_deref())
        .bind(filter.target_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db_err)?;
        let events = rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.0,
                at: Timestamp(r.1),
                actor_id: r.2,
                action: r.3,
                target_type: r.4,
                target_id: r.5,
                request_id: r.6,
                client_ip: r.7,
                outcome: r.8,
            })
            .collect();
        Ok(page.finish(events))
    }
}
