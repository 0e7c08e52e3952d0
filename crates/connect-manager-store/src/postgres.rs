//! PostgreSQL (S1, S2): for scale and for several replicas sharing one database. Migrations take
//! sqlx's advisory lock, so replicas starting together apply each migration once.

use std::str::FromStr;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::availability::Availability;
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
    availability: Availability,
    stop: watch::Sender<bool>,
}

/// How often the watch pings the database while it is up (to notice an outage the change feed
/// does not see, e.g. a silent network), how long a ping or a probe may take, and how often it
/// probes while the database is down.
const HEARTBEAT: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

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
            // sqlx counts a dropped transaction's queued ROLLBACK as done when it queues it.
            .after_release(|conn, _| Box::pin(async move { Ok(crate::fit_for_reuse(&*conn)) }))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| connect_manager_core::Error::internal(format!("migrations: {e}")))?;
        let listeners = Arc::new(Listeners::default());
        let availability = Availability::default();
        let stop = watch::channel(false).0;
        let listener = listen(&pool).await?;
        tokio::spawn(follow_changes(
            pool.clone(),
            listener,
            listeners.clone(),
            availability.clone(),
            stop.subscribe(),
        ));
        tokio::spawn(watch_database(
            options,
            availability.clone(),
            stop.subscribe(),
        ));
        Ok(PostgresStore {
            pool,
            listeners,
            availability,
            stop,
        })
    }

    fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    fn availability(&self) -> &Availability {
        &self.availability
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
/// The feed is also the first to see PostgreSQL go away (its connection drops at once), so it
/// has [`watch_database`] probe at once.
async fn follow_changes(
    pool: Pool,
    mut listener: sqlx::postgres::PgListener,
    listeners: Arc<Listeners>,
    availability: Availability,
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
        availability.suspect("the change feed lost its connection");
        listeners.announce(&Change::Unreliable);
        listener = loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
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

/// Decides whether the database is up (see `crate::availability`). It pings on its own connection
/// every [`HEARTBEAT`] while the database is up, every [`PROBE_INTERVAL`] while it is down, and at
/// once when an outage is suspected (the change feed lost its connection). A probe that follows a
/// suspicion, or whose connection fails its ping, uses a fresh connection: one connect, no
/// retries, so a database that is shutting down or refusing connections fails it at once. Each
/// probe is bounded by [`PROBE_TIMEOUT`]; a failed one marks the database down, an answer marks
/// it up.
async fn watch_database(
    options: PgConnectOptions,
    availability: Availability,
    mut stop: watch::Receiver<bool>,
) {
    use sqlx::Connection;
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        let wait = if availability.is_up() {
            HEARTBEAT
        } else {
            PROBE_INTERVAL
        };
        let suspected = tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => false,
            () = availability.suspected() => true,
        };
        if suspected || !availability.is_up() {
            // The old connection may still answer while PostgreSQL is shutting down.
            conn = None;
        }
        let probe = async {
            if let Some(c) = conn.as_mut()
                && c.ping().await.is_ok()
            {
                return Ok(());
            }
            conn = None;
            let mut c = sqlx::PgConnection::connect_with(&options).await?;
            c.ping().await?;
            conn = Some(c);
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => availability.mark_up(),
            Ok(Err(e)) => {
                conn = None;
                if availability.mark_down("the database did not answer a probe") {
                    tracing::warn!(error = %e, "database probe failed");
                } else {
                    tracing::debug!(error = %e, "database still down");
                }
            }
            Err(_) => {
                conn = None;
                availability.mark_down("a database probe timed out");
            }
        }
    }
}

async fn listen(pool: &Pool) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .map_err(db_err)?;
    // A lost connection is reported at once (and re-established by `follow_changes`), not after
    // sqlx has tried to reconnect for up to the pool's acquire timeout.
    listener.eager_reconnect(false);
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

/// Token create reads which of its vaults the server is granted, then writes the token: a share
/// lock on those grant rows, held to the end of the transaction, makes a concurrent vault revoke
/// or server delete (both delete grant rows) either wait for the token or be seen by it. Without
/// it, read committed let a token be issued on a grant revoked meanwhile, or stay ACTIVE on a
/// deleted server.
const LOCK_READ_GRANTS: &str = " FOR SHARE OF sv";

/// A change to a server's grants against a concurrent delete of the server (R4): see
/// `sql::lock_live_server` for why, and for the order every change takes its locks in. A share
/// lock where the change does not update the server row (a group's SERVER grant), a no-key
/// update lock where it does (vault grant and revoke).
const LOCK_SERVER_SHARE: &str = " FOR SHARE";
const LOCK_SERVER_UPDATE: &str = " FOR NO KEY UPDATE";

/// Serialises changes to the Owners group (A2's last-owner check) across connections and
/// replicas: a row lock on the group, held to the end of the transaction.
async fn lock_owners(tx: &mut sqlx::Transaction<'static, Db>) -> Result<()> {
    sqlx::query("SELECT id FROM groups WHERE builtin = 'owners' FOR UPDATE")
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}
