//! The SQL both backends run, written once. This folder is compiled into `sqlite` and `postgres`
//! (`#[path]`), where `super::ThisStore` is that backend's store; the only name taken from the
//! backend module. Everything the two databases do differently is reached through
//! [`SqlBackend`] (`crate::sql_backend`): its `Db`, how a write begins, the row locks, notify.
//!
//! One file per resource, each with its trait's `impl` for the store: `install.rs` (settings,
//! first start, authentication, signing keys, the master key), `users.rs` (with API keys),
//! `groups.rs`, `vaults.rs`, `servers.rs`, `tokens.rs`, `audit.rs`; `rows.rs` the rows as read.
//! Here: the plumbing they share, and [`Store`]'s own methods.
//!
//! Placeholders are `$n` (both databases accept them), timestamps are `BIGINT` microseconds, and
//! every change runs in one transaction with its audit event (A5).

/// A successful change's audit event (A5), in the change's transaction: `audit!(tx, actor,
/// UserCreate, User, &id)` is [`audit`]`(&mut tx, actor, AuditAction::UserCreate,
/// TargetType::User, &id)`, a future to await. One short line at each of the changes.
macro_rules! audit {
    ($tx:ident, $actor:expr, $action:ident, $target_type:ident, $target_id:expr) => {
        super::audit(
            &mut $tx,
            $actor,
            connect_manager_core::audit::AuditAction::$action,
            connect_manager_core::audit::TargetType::$target_type,
            $target_id,
        )
    };
}

mod audit;
mod groups;
mod install;
mod rows;
mod servers;
mod sessions;
mod tokens;
mod trust;
mod users;
mod vaults;

use std::collections::HashMap;

use async_trait::async_trait;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::{Found, MAX_NAME_MATCHES};
use connect_manager_core::model::{Actor, Outcome, audit_target};
use connect_manager_core::page::PageRequest;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::ThisStore;
use crate::sql_backend::SqlBackend;
use crate::{Backend, Change, DbResult, Store};

type Db = <ThisStore as SqlBackend>::Db;
type Tx = crate::sql_backend::Tx<ThisStore>;
type Conn = <Db as sqlx::Database>::Connection;

/// Every user's group grants as rows `(user_id, scope, server_id)`: scope `OWNER` (a member of
/// Owners), `MANAGER`, `ALL_SERVERS`, or `SERVER` with the server's ID (else ''). Joined to the
/// API key (`authenticate_key`) or the session (`session`) being looked up, so a principal is
/// one round trip.
const USER_GRANTS: &str = "SELECT m.user_id AS user_id, 'OWNER' AS scope, '' AS server_id \
     FROM group_members m JOIN groups g ON g.id = m.group_id \
     WHERE g.builtin = 'owners' \
     UNION ALL \
     SELECT m.user_id, r.role, '' FROM group_members m \
     JOIN group_roles r ON r.group_id = m.group_id \
     UNION ALL \
     SELECT m.user_id, 'SERVER', s.server_id FROM group_members m \
     JOIN group_servers s ON s.group_id = m.group_id";

/// The principal of `user_id` from its grants as [`USER_GRANTS`] reads them (scope, server ID;
/// a user in no group has one row of `NULL`s): the API key lookup and the console's session
/// lookup both fold their rows through it.
fn principal_of(
    user_id: String,
    grants: impl IntoIterator<Item = (Option<String>, Option<String>)>,
) -> connect_manager_core::principal::Principal {
    let mut p = connect_manager_core::principal::Principal {
        user_id,
        ..Default::default()
    };
    for (scope, server_id) in grants {
        match scope.as_deref() {
            Some("OWNER") => p.owner = true,
            Some("MANAGER") => p.manager = true,
            Some("ALL_SERVERS") => p.all_servers = true,
            Some(_) => p.servers.extend(server_id),
            None => {}
        }
    }
    p
}

/// `$first, $first+1, …` for `n` values.
///
/// What is formatted into SQL text in this folder, and nothing else:
/// - these `$n` placeholders, and the multi-row `VALUES ($1, $2, $3), …` lists built the same
///   way from numbers (`create_token`, `record_token_usage`);
/// - the `*_COLS` column lists of `rows.rs`, and the `SELECT <cols> FROM <table>` and column
///   names passed to [`page_rows`], [`find_rows`] and [`children_of`] (string literals at every
///   call);
/// - [`managed`]'s column name and [`api_key_live`]'s alias and placeholder (literals at every
///   call);
/// - the backend's `LOCK_*` row-lock clauses (constants of `SqlBackend`);
/// - fixed SQL chosen by a `match` (`list_tokens`).
///
/// All are constants of this crate or numbers: the text of a statement never depends on a value
/// a caller passed, and every value is bound to a placeholder. That is what makes each
/// `AssertSqlSafe` here true.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a successful change's audit event (A5), in the change's transaction.
async fn audit(
    tx: &mut Tx,
    actor: &Actor,
    action: AuditAction,
    target_type: TargetType,
    target_id: &str,
) -> Result<()> {
    record_event(tx, actor, action, target_type, target_id, Outcome::Success).await
}

/// Writes an audit event with its outcome. `target_id` is stored as `audit_target` makes it.
async fn record_event(
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
    .db()?;
    Ok(())
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.db()
}

/// A change by ID that changed no row: the `kind` named `reference` does not exist (404).
fn require_changed(rows: u64, kind: &'static str, reference: impl Into<String>) -> Result<()> {
    if rows == 0 {
        return Err(Error::not_found(kind, reference));
    }
    Ok(())
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

/// A4 in SQL, the one place it is stated: whether the server in `column` is one the viewer may
/// manage, with `$1` bound to `viewer.manages_all_servers()` and `$2` to `viewer.user_id`.
/// The same rule as `connect_manager_core::principal::Principal::may_manage_server` (its
/// in-memory form): every list and lookup that shows only what the viewer may manage (servers,
/// tokens) filters with this, so what it cannot see is never a candidate.
fn managed(column: &str) -> String {
    format!(
        "($1 OR {column} IN (SELECT gs.server_id FROM group_servers gs \
         JOIN group_members m ON m.group_id = gs.group_id WHERE m.user_id = $2))"
    )
}

/// Whether the API key row `alias` (`api_keys <alias>`) authenticates at `now`, a placeholder
/// bound to the time in microseconds: the ONE place that says when an API key has expired. The
/// principal lookup (`authenticate_key`) and the key list (`expired`) read it, and so must
/// anything else that accepts an API key or something derived from one (a console session).
/// A key expires at `expires_at`: from that instant on it is refused.
fn api_key_live(alias: &str, now: &str) -> String {
    format!("({alias}.expires_at IS NULL OR {alias}.expires_at > {now})")
}

/// A row type the shared SQL reads (`rows.rs`).
trait Row: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin {}
impl<R: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin> Row for R {}

/// One page of `select` (`SELECT <cols> FROM <table>`), newest first: the lists without a filter.
async fn page_rows<R: Row>(conn: &mut Conn, select: &str, page: &PageRequest) -> Result<Vec<R>> {
    let (at, id) = page.bounds();
    sqlx::query_as(AssertSqlSafe(format!(
        "{select} WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(at)
    .bind(id)
    .bind(page.fetch())
    .fetch_all(&mut *conn)
    .await
    .db()
}

/// R1 in SQL, for what every owner sees (vaults, groups, users; servers and tokens add A4):
/// the row of `select` whose ID is `reference`, else those whose `key_column` equals `key`
/// (newest first, at most [`name_match_limit`]).
async fn find_rows<R: Row>(
    conn: &mut Conn,
    select: &str,
    reference: &str,
    key_column: &str,
    key: String,
) -> Result<Found<R>> {
    if !matchable(reference) {
        return Ok(Found::Names(Vec::new()));
    }
    let by_id: Option<R> = sqlx::query_as(AssertSqlSafe(format!("{select} WHERE id = $1")))
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    if let Some(row) = by_id {
        return Ok(Found::Id(row));
    }
    let rows = sqlx::query_as(AssertSqlSafe(format!(
        "{select} WHERE {key_column} = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(key)
    .bind(name_match_limit())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(Found::Names(rows))
}

/// What belongs to several rows (a server's vaults, a token's scope, a group's members), read in
/// one round trip and grouped by the owning row's ID: `sql(ids)` is the query, `ids` being the
/// placeholders `$1, …` of `keys` (bound in order), and `child` splits each row read into the
/// owner's ID and the child.
async fn children_of<R: Row, C>(
    conn: &mut Conn,
    keys: &[&str],
    sql: impl FnOnce(&str) -> String,
    child: impl Fn(R) -> Result<(String, C)>,
) -> Result<HashMap<String, Vec<C>>> {
    let mut by_owner: HashMap<String, Vec<C>> = HashMap::new();
    if keys.is_empty() {
        return Ok(by_owner);
    }
    let mut q = sqlx::query_as(AssertSqlSafe(sql(&placeholders(1, keys.len()))));
    for key in keys {
        q = q.bind(*key);
    }
    let rows: Vec<R> = q.fetch_all(&mut *conn).await.db()?;
    for row in rows {
        let (owner, c) = child(row)?;
        by_owner.entry(owner).or_default().push(c);
    }
    Ok(by_owner)
}

fn name_taken(kind: &str, name: &str) -> Error {
    Error::conflict(
        "name_taken",
        format!("a {kind} named '{name}' already exists"),
    )
}

/// The plumbing every resource's methods share: a connection, a write transaction, a commit
/// that announces the change.
impl ThisStore {
    /// A pooled connection, unless the database is known to be down: then 503 at once, also for
    /// a call already waiting for a connection (see `crate::availability`).
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
        self.availability()
            .guard(async { SqlBackend::pool(self).acquire().await.db() })
            .await
    }

    /// A write transaction, begun the backend's way, on the same terms as [`Self::conn`].
    async fn write_tx(&self) -> Result<Tx> {
        self.availability().guard(self.begin_write()).await
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
        .db()?;
        sqlx::query("DELETE FROM audit_events WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .db()?;
        commit(tx).await
    }

    /// Commits and announces what changed: to other replicas in the transaction (PostgreSQL),
    /// to this process once committed, so its caches drop the old state before the caller is
    /// answered.
    async fn commit_announcing(&self, mut tx: Tx, change: Change) -> Result<()> {
        ThisStore::notify(&mut tx, &change).await?;
        commit(tx).await?;
        self.listeners().announce(&change);
        Ok(())
    }
}

#[async_trait]
impl Store for ThisStore {
    fn backend(&self) -> Backend {
        ThisStore::BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await
            .db()?;
        self.availability()
            .storage()
            .check(self.probe_write())
            .await
    }

    async fn close(&self) {
        self.shutdown().await;
        SqlBackend::pool(self).close().await;
    }

    fn pool_state(&self) -> crate::PoolState {
        let pool = SqlBackend::pool(self);
        crate::PoolState {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }

    fn subscribe(&self, listener: std::sync::Arc<dyn crate::ChangeListener>) {
        self.listeners().add(listener);
    }
}
