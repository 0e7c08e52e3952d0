//! PostgreSQL (S1, S2): for scale and for several replicas sharing one database. Migrations take
//! sqlx's advisory lock, so replicas starting together apply each migration once.

use std::sync::Arc;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::availability::Availability;
use crate::pg_hosts::{ConnectionSettings, Hosts};
use crate::sql_backend::{NameTable, SqlBackend, Tx};
use crate::{Backend, CHANGE_CHANNEL, Change, DbResult, Listeners};

type Pool = sqlx::PgPool;
/// The store the shared SQL is compiled for in this module.
type ThisStore = PostgresStore;

// One SQL source for both backends, compiled once per backend (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub struct PostgresStore {
    pool: Pool,
    listeners: Arc<Listeners>,
    availability: Availability,
    stop: watch::Sender<bool>,
}

/// How often the watch pings the database while it is up (to notice an outage the change feed
/// does not see, e.g. a silent network), and how often it probes while the database is down.
/// One host may take `pg_hosts::HOST_TIMEOUT` to answer a probe.
const HEARTBEAT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) with the default [`ConnectionSettings`] and runs the
    /// migrations in `migrations/postgres`.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &ConnectionSettings::default()).await
    }

    /// Connects to `url` and runs the migrations. `url` may name several hosts
    /// (`postgres://u:pw@h1:5432,h2:5432/db?target_session_attrs=read-write`): the store uses
    /// the first that accepts writes (see `crate::pg_hosts`), and moves to another by itself
    /// when that one stops answering or accepting writes (a failover). Every connection carries
    /// `settings`.
    pub async fn open_with(url: &str, settings: &ConnectionSettings) -> Result<Self> {
        let list = crate::pg_url::parse(url).map_err(connect_manager_core::Error::bad_request)?;
        let hosts = Arc::new(Hosts::new(list, settings));
        let (index, conn) = hosts
            .select()
            .await
            .map_err(|detail| connect_manager_core::Error::Unavailable { detail })?;
        {
            use sqlx::Connection;
            let _ = conn.close().await;
        }
        hosts.switch_to(index);
        // Migrations (which may wait for another replica's migration lock) run on the selected
        // host without the statement timeout (a later `-c` wins).
        let migrating = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                hosts
                    .options(index)
                    .clone()
                    .options([("statement_timeout", "0")]),
            )
            .await
            .db()?;
        let migrated = sqlx::migrate!("../../migrations/postgres")
            .run(&migrating)
            .await
            .map_err(|e| connect_manager_core::Error::internal(format!("migrations: {e}")));
        migrating.close().await;
        migrated?;
        let availability = Availability::default();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            // A new connection must lead to a host that accepts the session (it could be a
            // standby, the old primary having gone since the selection): else it is refused,
            // and the watch looks for the host that does.
            .after_connect({
                let (hosts, availability) = (hosts.clone(), availability.clone());
                move |conn, _| {
                    let (hosts, availability) = (hosts.clone(), availability.clone());
                    Box::pin(async move {
                        if hosts.attrs() == crate::pg_url::SessionAttrs::Any {
                            return Ok(());
                        }
                        match hosts.refuses(conn).await? {
                            None => Ok(()),
                            Some(why) => {
                                availability.suspect("a new connection's host refuses writes");
                                Err(sqlx::Error::Protocol(format!(
                                    "the database host is {why}; looking for the one that accepts writes"
                                )))
                            }
                        }
                    })
                }
            })
            // A connection made before the pool moved to another host is not used again: not
            // taken from the pool, and closed when it comes back, without the ping sqlx would
            // otherwise send on it first (which, to a host that vanished without closing its
            // sockets, waits as long as TCP keeps retrying: minutes, holding a pool slot).
            // And an idle connection is pinged before use (sqlx's own test, moved here to come
            // after that check and to be bounded: sqlx's waits as long as TCP does).
            .test_before_acquire(false)
            .before_acquire({
                let hosts = hosts.clone();
                move |conn, meta| {
                    let keep = !hosts.predates_switch(meta.age);
                    Box::pin(async move {
                        if !keep {
                            return Ok(false);
                        }
                        use sqlx::Connection;
                        match tokio::time::timeout(crate::pg_hosts::HOST_TIMEOUT, conn.ping())
                            .await
                        {
                            Ok(r) => r.map(|()| true),
                            Err(_) => Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())),
                        }
                    })
                }
            })
            // Nor is one that comes back still inside a transaction (a failed commit or
            // rollback): sqlx counts a dropped transaction's queued ROLLBACK as done when it
            // queues it.
            .after_release({
                let hosts = hosts.clone();
                move |conn, meta| {
                    let keep = !hosts.predates_switch(meta.age) && crate::fit_for_reuse(&*conn);
                    Box::pin(async move { Ok(keep) })
                }
            })
            .connect_with(hosts.options(index).clone())
            .await
            .db()?;
        let listeners = Arc::new(Listeners::default());
        let stop = watch::channel(false).0;
        let listener = listen(&hosts).await?;
        tokio::spawn(follow_changes(
            hosts.clone(),
            listener,
            listeners.clone(),
            availability.clone(),
            hosts.switches(),
            stop.subscribe(),
        ));
        tokio::spawn(watch_database(
            hosts,
            pool.clone(),
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

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Relays other replicas' changes (S2). While the listening connection is down nothing can be
/// trusted to arrive, so caches are told `Unreliable` and bypass themselves; once a new connection
/// listens again they are told `All` (anything may have changed meanwhile) and trust the feed.
/// The feed is also the first to see PostgreSQL go away (its connection drops at once), so it
/// has [`watch_database`] probe at once. When the pool moves to another host, the feed listens
/// again there (the other replicas write, and notify, on that host).
async fn follow_changes(
    hosts: Arc<Hosts>,
    mut listener: sqlx::postgres::PgListener,
    listeners: Arc<Listeners>,
    availability: Availability,
    mut switches: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            _ = stop.changed() => return,
            _ = switches.changed() => Err(None),
            next = listener.try_recv() => next.map_err(Some),
        };
        match next {
            Ok(Some(n)) => {
                listeners.announce(&Change::decode(n.payload()));
                continue;
            }
            Ok(None) => {
                tracing::warn!("change feed lost its connection");
                availability.suspect("the change feed lost its connection");
            }
            Err(Some(e)) => {
                tracing::warn!(error = %e, "change feed failed");
                availability.suspect("the change feed lost its connection");
            }
            Err(None) => tracing::info!("the database host changed: the change feed follows"),
        }
        listeners.announce(&Change::Unreliable);
        drop(listener);
        listener = loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            switches.mark_unchanged();
            match listen(&hosts).await {
                // Not when the pool moved meanwhile: this one may listen on the old host.
                Ok(l) if !switches.has_changed().unwrap_or(false) => break l,
                Ok(_) => tracing::debug!("the database host changed while the feed reconnected"),
                Err(e) => tracing::debug!(error = %e, "change feed still down"),
            }
        };
        tracing::info!("change feed back; caches flushed");
        listeners.announce(&Change::All);
    }
}

/// Decides whether the database is up (see `crate::availability`), and which host it is on
/// (see `crate::pg_hosts`). It checks the host in use on its own connection every [`HEARTBEAT`]
/// while the database is up (a ping; with `target_session_attrs=read-write`, that it still
/// accepts writes), every [`PROBE_INTERVAL`] while it is down, and at once when an outage is
/// suspected (the change feed lost its connection, a new connection's host refused writes).
/// A probe that follows a suspicion, or whose connection fails its check, selects a host anew
/// on fresh connections: the host in use first, then the others in the URL's order, one connect
/// each, no retries, so a database that is shutting down or refusing connections fails it at
/// once. The first host that accepts the session marks the database up (and, if it is another
/// host, the pool moves there); when none does, the database is marked down.
async fn watch_database(
    hosts: Arc<Hosts>,
    pool: Pool,
    availability: Availability,
    mut stop: watch::Receiver<bool>,
) {
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
        if let Some(c) = conn.as_mut()
            && matches!(
                tokio::time::timeout(crate::pg_hosts::HOST_TIMEOUT, hosts.refuses(c)).await,
                Ok(Ok(None))
            )
        {
            availability.mark_up();
            continue;
        }
        conn = None;
        match hosts.select().await {
            Ok((index, c)) => {
                conn = Some(c);
                if index != hosts.current() {
                    // The pool's options first: a connection made after the switch leads there.
                    pool.set_connect_options(hosts.options(index).clone());
                    hosts.switch_to(index);
                    tracing::warn!(
                        host = hosts.label(index),
                        "database host changed: now using this one"
                    );
                }
                availability.mark_up();
            }
            Err(why) => {
                if availability.mark_down("no database host accepts the session") {
                    tracing::warn!(error = %why, "database probe failed");
                } else {
                    tracing::debug!(error = %why, "database still down");
                }
            }
        }
    }
}

/// A listener on the host in use, on a connection of its own (a pool of one, as sqlx's
/// `PgListener::connect` makes): not a slot of the store's pool, which a listener dropped on a
/// host that went silent would hold for as long as TCP retries (sqlx sends it `UNLISTEN *`
/// first, and waits for the answer).
async fn listen(hosts: &Hosts) -> Result<sqlx::postgres::PgListener> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(crate::pg_hosts::HOST_TIMEOUT)
        .connect_lazy_with(hosts.options(hosts.current()).clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await.db()?;
    // A lost connection is reported at once (and re-established by `follow_changes`), not after
    // sqlx has tried to reconnect for up to the pool's acquire timeout.
    listener.eager_reconnect(false);
    listener.listen(CHANGE_CHANNEL).await.db()?;
    Ok(listener)
}

/// The first key of this service's advisory locks ("cm").
const ADVISORY_NAMESPACE: i32 = 0x636d;

/// Read committed lets two transactions interleave between a read and a write: the locks below
/// order the changes that must not (see `sql::servers::lock_live_server` for the order they are
/// taken in).
impl SqlBackend for PostgresStore {
    type Db = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;

    /// Token create reads which of its vaults the server is granted, then writes the token: a
    /// share lock on those grant rows, held to the end of the transaction, makes a concurrent
    /// vault revoke or server delete (both delete grant rows) either wait for the token or be
    /// seen by it. Without it, read committed let a token be issued on a grant revoked
    /// meanwhile, or stay ACTIVE on a deleted server.
    const LOCK_READ_GRANTS: &'static str = " FOR SHARE OF sv";

    /// A change to a server's grants against a concurrent delete of the server (R4): see
    /// `sql::servers::lock_live_server` for why. A share lock where the change does not update
    /// the server row (a group's SERVER grant), a no-key update lock where it does (vault grant
    /// and revoke).
    const LOCK_SERVER_SHARE: &'static str = " FOR SHARE";
    const LOCK_SERVER_UPDATE: &'static str = " FOR NO KEY UPDATE";

    /// A vault being granted against a concurrent delete of the vault: see
    /// `sql::vaults::load_grantable_vault`. A key share lock, the one the grant's foreign key
    /// takes anyway, taken at the read instead of at the insert.
    const LOCK_VAULT_KEY: &'static str = " FOR KEY SHARE";
    const LOCK_ISSUER_SHARE: &'static str = " FOR SHARE";
    const LOCK_ISSUER_UPDATE: &'static str = " FOR UPDATE";

    fn pool(&self) -> &Pool {
        &self.pool
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

    async fn begin_write(&self) -> Result<Tx<Self>> {
        self.pool.begin().await.db()
    }

    /// Two renames that swap names (or a longer cycle through creates) would otherwise each
    /// wait, inside the unique index, for the other's uncommitted old name: a deadlock
    /// PostgreSQL breaks by failing one of them. One transaction-scoped advisory lock per
    /// table, taken before any row lock, leaves no cycle to form.
    async fn lock_names(tx: &mut Tx<Self>, table: NameTable) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(ADVISORY_NAMESPACE)
            .bind(table as i32)
            .execute(&mut **tx)
            .await
            .db()?;
        Ok(())
    }

    /// Across connections and replicas: a row lock on the group, held to the end of the
    /// transaction.
    async fn lock_owners(tx: &mut Tx<Self>) -> Result<()> {
        sqlx::query("SELECT id FROM groups WHERE builtin = 'owners' FOR UPDATE")
            .execute(&mut **tx)
            .await
            .db()?;
        Ok(())
    }

    /// No key may be added or retired while the keys are re-sealed under a new master key (a key
    /// sealed under the old master key would not open afterwards).
    async fn lock_signing_keys(tx: &mut Tx<Self>) -> Result<()> {
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut **tx)
            .await
            .db()?;
        Ok(())
    }

    /// NOTIFY is transactional: every replica hears of the change on commit.
    async fn notify(tx: &mut Tx<Self>, change: &Change) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(change.encode())
            .execute(&mut **tx)
            .await
            .db()?;
        Ok(())
    }
}
