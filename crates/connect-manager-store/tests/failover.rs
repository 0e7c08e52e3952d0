//! PostgreSQL with several hosts (issue 12, "A new drill: PostgreSQL failover") and the settings
//! every connection carries (issue 12, item 14). `DATABASE_URL` may name several hosts, libpq's
//! way; the store uses the one that accepts writes and follows by itself when that changes,
//! answering 503 only while no host does. The hosts here are TCP proxies in front of the one
//! test database (a real primary and standby pair is `scripts/drill failover`'s), and a host
//! "becomes a standby" by making the database read-only for new sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_manager_core::Error;
use connect_manager_store::postgres::PostgresStore;
use connect_manager_store::prelude::*;
use connect_manager_store::testing::TestDb;
use connect_manager_store::{Change, ConnectionSettings, NewServer};
use sqlx::Connection;

mod support;
use support::{Proxy, Recorder, actor, through};

fn new_server(name: &str) -> NewServer {
    connect_manager_store::testing::server_spec(name, &[])
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Calls `op` until it succeeds (each failure must be a 503, within 3 s), for at most `within`.
async fn until_ok<T, F, Fut>(within: Duration, op: F) -> (T, Duration, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = connect_manager_core::Result<T>>,
{
    until_ok_failing_within(within, Duration::from_secs(3), op).await
}

async fn until_ok_failing_within<T, F, Fut>(
    within: Duration,
    fail_within: Duration,
    mut op: F,
) -> (T, Duration, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = connect_manager_core::Result<T>>,
{
    let start = Instant::now();
    let mut refused = 0;
    loop {
        let call = Instant::now();
        match op().await {
            Ok(v) => return (v, start.elapsed(), refused),
            Err(e) if start.elapsed() < within => {
                assert!(matches!(e, Error::Unavailable { .. }), "only 503s: {e:?}");
                assert!(
                    call.elapsed() < fail_within,
                    "a refused call took {:?}",
                    call.elapsed()
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("not back within {within:?}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_a_multi_host_url_skips_a_host_that_does_not_answer() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dead = closed_port().await;
    let (_, url) = through(&db.url, |real| format!("127.0.0.1:{dead},{real}")).await;
    let store = connect_manager_store::open(&url)
        .await
        .expect("opens on the second host");
    store
        .create_server(&actor(), &new_server("multi-host"))
        .await
        .expect("writes");
    store.close().await;
}

/// The host in use goes away (the primary is lost): the store moves to the next host that
/// accepts writes by itself, the pool's and the change feed's connections with it, and calls
/// meanwhile are 503s, never anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_the_store_follows_when_the_host_in_use_goes_away() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (upstream, _) = through(&db.url, |a| a.to_string()).await;
    let mut first = Proxy::start(upstream).await;
    let second = Proxy::start(upstream).await;
    let (a, b) = (first.addr, second.addr);
    let (_, url) = through(&db.url, |_| format!("{a},{b}")).await;
    let url = format!("{url}?target_session_attrs=read-write");
    let store = connect_manager_store::open(&url).await.expect("open");
    let recorder = Arc::new(Recorder::default());
    store.subscribe(recorder.clone());
    store
        .create_server(&actor(), &new_server("before"))
        .await
        .unwrap();

    first.cut();
    let (server, took, refused) = until_ok(Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.create_server(&actor(), &new_server("after")).await }
    })
    .await;
    eprintln!("writing again {took:?} after the first host went away ({refused} calls refused)");
    // Every later call is served on the second host, at once.
    for _ in 0..20 {
        store.ping().await.expect("served on the second host");
    }
    assert!(store.get_server(&server.id).await.unwrap().is_some());
    // The change feed listens on the second host: another replica's change reaches it.
    recorder
        .wait_for(&Change::All, Duration::from_secs(5))
        .await;
    let other = db.open().await;
    let s = other
        .create_server(&actor(), &new_server("from-another-replica"))
        .await
        .unwrap();
    other.delete_server(&actor(), &s.id).await.unwrap();
    recorder
        .wait_for(&Change::Server(s.id.clone()), Duration::from_secs(2))
        .await;
    store.close().await;
    other.close().await;
    drop(second);
}

/// The host in use vanishes without closing anything (a dead machine, a partition): the watch's
/// heartbeat times out, the store moves to the next host by itself, and calls that were waiting
/// on the silent host, once their callers give up on them (the service's request timeout), give
/// their pool slots back instead of holding them while TCP retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_the_store_follows_when_the_host_in_use_goes_silent() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (upstream, _) = through(&db.url, |a| a.to_string()).await;
    let first = Proxy::start(upstream).await;
    let second = Proxy::start(upstream).await;
    let (a, b) = (first.addr, second.addr);
    let (_, url) = through(&db.url, |_| format!("{a},{b}")).await;
    let store = Arc::new(
        PostgresStore::open(&format!("{url}?target_session_attrs=read-write"))
            .await
            .expect("open"),
    );
    store.init_setting("k", "v").await.unwrap();
    // Eight calls in flight on the first host when it goes silent: held up by a lock, taken
    // directly on the database, then released, but their answers never get through.
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let stuck: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.setting("k").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.go_silent();
    tx.rollback().await.unwrap();
    // Until the watch's heartbeat has timed out and the next host answered (2 s each at
    // most), a call that takes an idle connection to the silent host waits on sqlx's ping of
    // it: 503 after the pool's 5 s acquire timeout at worst.
    let (_, took, refused) =
        until_ok_failing_within(Duration::from_secs(20), Duration::from_secs(6), || {
            let store = store.clone();
            async move { store.init_setting("after", "v").await }
        })
        .await;
    eprintln!("serving again {took:?} after the first host went silent ({refused} calls refused)");
    for call in &stuck {
        assert!(
            !call.is_finished(),
            "a call on the silent host cannot finish"
        );
    }
    // Their callers give up (the service answers 408 after its request timeout).
    for call in stuck {
        call.abort();
    }
    // Every slot of the pool (16) can be used again, on the second host.
    let mut held = Vec::new();
    for i in 0..16 {
        let conn = tokio::time::timeout(Duration::from_secs(8), store.pool().acquire())
            .await
            .unwrap_or_else(|_| panic!("pool slot {i} still held by a call on the silent host"))
            .unwrap_or_else(|e| panic!("pool slot {i}: {e}"));
        held.push(conn);
    }
    drop(held);
    assert_eq!(store.setting("after").await.unwrap().as_deref(), Some("v"));
    locker.close().await.ok();
    drop((first, second));
}

/// While no host accepts writes (the primary is gone and the standby not yet promoted) the
/// store answers 503, `ping` (`/readyz`) included, although a read-only host answers; once a
/// host accepts writes again it serves by itself. A read-only host is made here by setting
/// `default_transaction_read_only` for the database and ending its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_no_host_accepting_writes_is_503_until_one_does() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = format!("{}?target_session_attrs=read-write", db.url);
    let store = connect_manager_store::open(&url).await.expect("open");
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    // Within a probe or two the store refuses everything, reads and ping too, at once.
    let start = Instant::now();
    loop {
        match store.ping().await {
            Err(Error::Unavailable { .. }) => break,
            other if start.elapsed() < Duration::from_secs(5) => {
                let _ = other;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a read-only database must be unavailable: {other:?}"),
        }
    }
    for _ in 0..3 {
        let started = Instant::now();
        let r = store.create_server(&actor(), &new_server("refused")).await;
        assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "fails fast");
        assert!(matches!(
            store.setting("x").await,
            Err(Error::Unavailable { .. })
        ));
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} RESET default_transaction_read_only"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let (_, took, _) = until_ok(Duration::from_secs(5), || {
        let store = store.clone();
        async move { store.create_server(&actor(), &new_server("accepted")).await }
    })
    .await;
    eprintln!("writing again {took:?} after the database accepted writes");
    admin.close().await.ok();
    store.close().await;
}

async fn show(store: &PostgresStore, setting: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Item 14: every connection carries the statement timeout and TCP keepalives, the defaults
/// or the configured ones. PostgreSQL's `SHOW tcp_keepalives_*` reads the socket's options
/// back (getsockopt on the server's side of this TCP connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_connections_carry_the_statement_timeout_and_tcp_keepalives() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = PostgresStore::open(&db.url).await.expect("open");
    assert_eq!(show(&store, "statement_timeout").await, "20s");
    assert_eq!(show(&store, "tcp_keepalives_idle").await, "30");
    assert_eq!(show(&store, "tcp_keepalives_interval").await, "10");
    assert_eq!(show(&store, "tcp_keepalives_count").await, "3");
    store.close().await;
    let settings = ConnectionSettings {
        statement_timeout: Duration::from_millis(1500),
        keepalives_idle: Duration::from_secs(7),
        keepalives_interval: Duration::from_secs(2),
        keepalives_count: 5,
    };
    let store = PostgresStore::open_with(&db.url, &settings)
        .await
        .expect("open");
    assert_eq!(show(&store, "statement_timeout").await, "1500ms");
    assert_eq!(show(&store, "tcp_keepalives_idle").await, "7");
    assert_eq!(show(&store, "tcp_keepalives_interval").await, "2");
    assert_eq!(show(&store, "tcp_keepalives_count").await, "5");
    store.close().await;
}

/// Item 14: a statement that runs longer than the statement timeout (here: waiting for a lock
/// another session holds) is cancelled by PostgreSQL and answered 503, not left hanging until
/// the request times out, and not 500. The store serves as soon as the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_statement_timeout_cancels_a_stuck_statement_with_503() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let settings = ConnectionSettings {
        statement_timeout: Duration::from_millis(300),
        ..ConnectionSettings::default()
    };
    let store = connect_manager_store::open_with(&db.url, &settings)
        .await
        .expect("open");
    store.init_setting("k", "v").await.unwrap();
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let start = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), store.setting("k"))
        .await
        .expect("the stuck statement is cancelled, not left waiting");
    let took = start.elapsed();
    match read {
        Err(Error::Unavailable { detail }) => {
            assert!(detail.contains("statement timeout"), "{detail}")
        }
        other => panic!("expected 503 unavailable, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let write = tokio::time::timeout(Duration::from_secs(10), store.init_setting("k2", "v"))
        .await
        .expect("cancelled too");
    assert!(matches!(write, Err(Error::Unavailable { .. })), "{write:?}");
    tx.rollback().await.unwrap();
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v"));
    store.ping().await.expect("a timeout is not an outage");
    locker.close().await.ok();
    store.close().await;
}
