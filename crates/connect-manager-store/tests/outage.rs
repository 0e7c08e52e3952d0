//! A PostgreSQL outage (E1 503, S2; issue 8): while the database cannot be reached, store calls
//! fail at once with `Unavailable` instead of waiting out sqlx's connect retries (up to the
//! pool's 5 s acquire timeout), and once it is back the store serves again and its change feed
//! listens again, by itself. The outage is a TCP proxy between the store and the test database
//! that stops listening and cuts every connection it carries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_manager_core::Error;
use connect_manager_core::model::Actor;
use connect_manager_store::testing::TestDb;
use connect_manager_store::{Change, ChangeListener, NewServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    accept: Option<JoinHandle<()>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Proxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            accept: None,
            links: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let (upstream, links) = (self.upstream, self.links.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links.lock().unwrap().push(link);
            }
        }));
    }

    /// The database goes away: nothing listens on the proxy's port, every connection is cut.
    fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// The database is back, on the same address.
    async fn restore(&mut self) {
        let listener = loop {
            // The aborted accept task drops its listener asynchronously.
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Change>>);

impl ChangeListener for Recorder {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

impl Recorder {
    async fn wait_for(&self, change: &Change, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.0.lock().unwrap().contains(change) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{change:?} not announced within {within:?}; got {:?}",
            self.0.lock().unwrap()
        );
    }
}

fn actor() -> Actor {
    Actor {
        user_id: "UTESTACTOR0000000000000000".into(),
        request_id: "req".into(),
        client_ip: "127.0.0.1".into(),
    }
}

/// `postgres://user@host:port/db` -> (host:port resolved, the URL with `proxy` in its place).
async fn through(url: &str, proxy: impl Fn(SocketAddr) -> String) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (hostport, db) = rest.split_once('/').expect("database");
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let upstream = tokio::net::lookup_host(&hostport)
        .await
        .expect("resolve database host")
        .next()
        .expect("database address");
    let at = if userinfo.is_empty() { "" } else { "@" };
    (
        upstream,
        format!("{scheme}://{userinfo}{at}{}/{db}", proxy(upstream)),
    )
}

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
        .create_server(
            &actor(),
            &NewServer {
                id: connect_manager_core::id::new_upper(),
                name: "after-outage".into(),
                secret_verifier: "$argon2id$test".into(),
                vault_ids: vec![],
            },
        )
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
