//! A PostgreSQL outage (E1 503, S2; issue 8): while the database cannot be reached, store calls
//! fail at once with `Unavailable` instead of waiting out sqlx's connect retries (up to the
//! pool's 5 s acquire timeout), and once it is back the store serves again and its change feed
//! listens again, by itself. The outage is a TCP proxy between the store and the test database
//! that stops listening and cuts every connection it carries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_manager_core::Error;
use connect_manager_store::Change;
use connect_manager_store::testing::{TestDb, server_spec};

mod support;
use support::{Proxy, Recorder, actor, through};

async fn ping_within(store: &connect_manager_store::DynStore, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match store.ping().await {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() < within => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the store did not recover within {within:?}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_postgres_outage_fails_fast_and_recovers_by_itself() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (upstream, _) = through(&db.url, |a| a.to_string()).await;
    let mut proxy = Proxy::start(upstream).await;
    let proxy_addr = proxy.addr;
    let (_, url) = through(&db.url, |_| proxy_addr.to_string()).await;
    let store = connect_manager_store::open(&url)
        .await
        .expect("open through the proxy");
    let recorder = Arc::new(Recorder::default());
    store.subscribe(recorder.clone());
    store.ping().await.unwrap();

    proxy.cut();
    // Reads, writes and /readyz's ping, several at once, each answer 503 well within the 5 s
    // the pool would otherwise spend trying to connect.
    for round in 0..3 {
        let start = Instant::now();
        let (ping, setting, write) = tokio::join!(
            store.ping(),
            store.setting("outage-test"),
            store.init_setting("outage-test", "x"),
        );
        let took = start.elapsed();
        assert!(matches!(ping, Err(Error::Unavailable { .. })), "{ping:?}");
        assert!(
            matches!(setting, Err(Error::Unavailable { .. })),
            "{setting:?}"
        );
        assert!(matches!(write, Err(Error::Unavailable { .. })), "{write:?}");
        assert!(
            took < Duration::from_secs(1),
            "round {round}: calls took {took:?} to fail with the database down"
        );
    }
    recorder
        .wait_for(&Change::Unreliable, Duration::from_secs(1))
        .await;

    proxy.restore().await;
    let took = ping_within(&store, Duration::from_secs(5)).await;
    eprintln!("serving again {took:?} after the database came back");
    assert_eq!(
        store.init_setting("outage-test", "y").await.unwrap(),
        "y",
        "writes work again"
    );
    // The change feed listens again: a change made through another connection reaches it.
    recorder
        .wait_for(&Change::All, Duration::from_secs(5))
        .await;
    let other = db.open().await;
    let server = other
        .create_server(&actor(), &server_spec("after-outage", &[]))
        .await
        .unwrap();
    other.delete_server(&actor(), &server.id).await.unwrap();
    recorder
        .wait_for(&Change::Server(server.id.clone()), Duration::from_secs(2))
        .await;
    store.close().await;
    other.close().await;
}

/// One dropped connection is not an outage: when only the change feed's connection is
/// terminated, the feed reconnects and nothing is refused meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_dropped_feed_connection_is_not_an_outage() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.open().await;
    let recorder = Arc::new(Recorder::default());
    store.subscribe(recorder.clone());
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true], "the change feed's connection");
    // Calls keep answering, back to back, while the feed notices and reconnects.
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(500) {
        if let Err(e) = store.ping().await {
            panic!("call {calls} refused after the feed's connection dropped: {e:?}");
        }
        calls += 1;
    }
    recorder
        .wait_for(&Change::Unreliable, Duration::from_secs(1))
        .await;
    recorder
        .wait_for(&Change::All, Duration::from_secs(5))
        .await;
    admin.close().await.ok();
    store.close().await;
}
