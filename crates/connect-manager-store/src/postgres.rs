//! PostgreSQL (S1, S2): for scale and for several replicas sharing one database. Migrations take
//! sqlx's advisory lock, so replicas starting together apply each migration once.

use std::str::FromStr;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Backend, CHANGE_CHANNEL, Change, Listeners, db_err};
use std::sync::Arc;

use tokio::sync::watch;

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Pool = sqlx::PgPool;
pub(crate) type ThisStore = PostgresStore;
pub(crate) const BACKEND: Backend = Backend::Postgres;

// One SQL source for both backends, compiled once per backend (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;
use sql::NameTable;

pub struct PostgresStore {
    pool: Pool,
    listeners: Arc<Listeners>,
    stop: watch::Sender<bool>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and runs the migrations in `migrations/postgres`.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            connect_manager_core::Error::bad_request(format!(
                "DATABASE_URL: {}",
                crate::redact_url(&e.to_string())
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| connect_manager_core::Error::internal(format!("migrations: {e}")))?;
        let listeners = Arc::new(Listeners::default());
        let stop = watch::channel(false).0;
        let listener = listen(&pool).await?;
        tokio::spawn(follow_changes(
            pool.clone(),
            listener,
            listeners.clone(),
            stop.subscribe(),
        ));
        Ok(PostgresStore {
            pool,
            listeners,
            stop,
        })
    }

    fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    async fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Relays other replicas' changes (S2). While the listening connection is down nothing can be
/// trusted to arrive, so caches are told `Unreliable` and bypass themselves; once a new connection
/// listens again they are told `All` (anything may have changed meanwhile) and trust the feed.
async fn follow_changes(
    pool: Pool,
    mut listener: sqlx::postgres::PgListener,
    listeners: Arc<Listeners>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            _ = stop.changed() => return,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(n)) => {
                listeners.announce(&Change::decode(n.payload()));
                continue;
            }
            Ok(None) => tracing::warn!("change feed lost its connection"),
            Err(e) => tracing::warn!(error = %e, "change feed failed"),
        }
        listeners.announce(&Change::Unreliable);
        listener = loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            match listen(&pool).await {
                Ok(l) => break l,
                Err(e) => tracing::debug!(error = %e, "change feed still down"),
            }
        };
        tracing::info!("change feed back; caches flushed");
        listeners.announce(&Change::All);
    }
}

async fn listen(pool: &Pool) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .map_err(db_err)?;
    listener.listen(CHANGE_CHANNEL).await.map_err(db_err)?;
    Ok(listener)
}

/// Tells every replica, on commit (NOTIFY is transactional).
async fn notify(tx: &mut sqlx::Transaction<'static, Db>, change: &Change) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGE_CHANNEL)
        .bind(change.encode())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await.map_err(db_err)
}

/// Serialises the changes that write a unique name of `table` (create and rename). Two renames
/// that swap names (or a longer cycle through creates) would otherwise each wait, inside the
/// unique index, for the other's uncommitted old name: a deadlock PostgreSQL breaks by failing
/// one of them. One transaction-scoped advisory lock per table, taken before any row lock,
/// leaves no cycle to form.
async fn lock_names(tx: &mut sqlx::Transaction<'static, Db>, table: NameTable) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(ADVISORY_NAMESPACE)
        .bind(table as i32)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The first key of this service's advisory locks ("cm").
const ADVISORY_NAMESPACE: i32 = 0x636d;

/// Token create reads the server's state and grants, then writes: a share lock on the server row,
/// held to the end of the transaction, makes a concurrent vault revoke or server delete (both
/// update that row) either wait for the token or be seen by it. Without it, read committed
/// lets a token be issued on a grant revoked meanwhile, or stay ACTIVE on a deleted server.
async fn lock_server_for_tokens(
    tx: &mut sqlx::Transaction<'static, Db>,
    server_id: &str,
) -> Result<()> {
    sqlx::query("SELECT id FROM servers WHERE id = $1 FOR SHARE")
        .bind(server_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Serialises changes to the Owners group (A2's last-owner check) across connections and
/// replicas: a row lock on the group, held to the end of the transaction.
async fn lock_owners(tx: &mut sqlx::Transaction<'static, Db>) -> Result<()> {
    sqlx::query("SELECT id FROM groups WHERE builtin = 'owners' FOR UPDATE")
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}
