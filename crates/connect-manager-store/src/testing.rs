//! Test databases: every test gets its own fresh SQLite file or PostgreSQL database, removed
//! afterwards. PostgreSQL tests run when `TEST_DATABASE_URL` names a server where the test user
//! may create databases (`scripts/test` starts one). Without it they are skipped, except under
//! `CI=true`, where a PostgreSQL test that cannot reach its database fails.

use sqlx::Connection;

use crate::{Backend, DynStore};

pub struct TestDb {
    pub backend: Backend,
    /// The URL a store or a `serve` process opens.
    pub url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDb {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            dir,
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (test skipped) when none is configured outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if in_ci() => {
                panic!("CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests must run")
            }
            _ => {
                eprintln!("skipped: TEST_DATABASE_URL is not set (scripts/test sets it)");
                return None;
            }
        };
        let name = format!("cm_test_{}", connect_manager_core::id::new_lower());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("TEST_DATABASE_URL ends in /<database>");
        let url = match base.split_once('?') {
            Some(_) => panic!("TEST_DATABASE_URL must not carry query parameters"),
            None => format!("{base}/{name}"),
        };
        Some(TestDb {
            backend: Backend::Postgres,
            url,
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: Some((admin, name)),
        })
    }

    pub async fn for_backend(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite().await),
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    /// A scratch directory that lives as long as the database (data dir, files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn open(&self) -> DynStore {
        crate::open(&self.url).await.expect("open test store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread removes the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A TCP proxy in front of a test database, to take it away and bring it back: `cut` stops
/// listening and drops every connection it carries (as a stopped PostgreSQL would), `restore`
/// listens again on the same address, `go_silent` keeps every connection open but passes nothing
/// (a dead host, a partition).
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    pub upstream: std::net::SocketAddr,
    accept: Option<tokio::task::JoinHandle<()>>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    silent: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let mut proxy = TcpProxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            accept: None,
            links: Default::default(),
            silent: tokio::sync::watch::channel(false).0,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (upstream, links, silent) = (self.upstream, self.links.clone(), self.silent.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut quiet = silent.subscribe();
                let link = tokio::spawn(async move {
                    if *quiet.borrow() {
                        // Accepted by the kernel, never answered.
                        let _held = client;
                        return std::future::pending().await;
                    }
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let silenced = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                            r = quiet.wait_for(|s| *s) => r.is_ok(),
                        };
                        if silenced {
                            // Both sockets stay open; nothing passes any more.
                            let _held = (client, server);
                            std::future::pending::<()>().await;
                        }
                    }
                });
                links.lock().expect("proxy links").push(link);
            }
        }));
    }

    /// The database host vanishes without a word (a dead machine, a partition): connections
    /// stay open but nothing passes either way, and new ones are accepted but never answered.
    pub fn go_silent(&self) {
        self.silent.send_replace(true);
    }

    /// The database goes away: nothing listens on the proxy's port, every connection is cut.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for link in self.links.lock().expect("proxy links").drain(..) {
            link.abort();
        }
    }

    /// The database is back, on the same address.
    pub async fn restore(&mut self) {
        let listener = loop {
            // The aborted accept task drops its listener asynchronously.
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

impl TcpProxy {
    /// A proxy to the PostgreSQL server of `url`; returns it and `url` through it.
    pub async fn to_postgres(url: &str) -> (TcpProxy, String) {
        let (upstream, _) = through(url, |a| a.to_string()).await;
        let proxy = TcpProxy::start(upstream).await;
        let (_, url) = through(url, |_| proxy.addr.to_string()).await;
        (proxy, url)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `postgres://user@host:port/db` -> (host:port resolved, the URL with `proxy` in its place).
pub async fn through(
    url: &str,
    proxy: impl Fn(std::net::SocketAddr) -> String,
) -> (std::net::SocketAddr, String) {
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

/// Runs each listed `async fn name(db: TestDb)` once per backend, as `sqlite::name` and
/// `postgres::name`, so the test output counts each backend's tests.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite().await;
                    super::$name(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::testing::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// A valid name for a test (panics on an invalid one, which is the test's mistake).
pub fn name(text: impl AsRef<str>) -> connect_manager_core::name::Name {
    connect_manager_core::name::Name::parse("name", text.as_ref()).expect("a valid test name")
}

/// The actor of the store's tests: a user ID no user has, a request ID, a client address.
pub fn actor() -> connect_manager_core::model::Actor {
    connect_manager_core::model::Actor {
        user_id: "UTESTACTOR0000000000000000".into(),
        request_id: "req".into(),
        client_ip: "127.0.0.1".into(),
    }
}

/// A new server for a test: a fresh ID, `name`, a stand-in verifier, `vault_ids` granted.
pub fn server_spec(name: &str, vault_ids: &[&str]) -> crate::NewServer {
    crate::NewServer {
        id: connect_manager_core::id::new_upper(),
        name: self::name(name),
        secret_verifier: "$argon2id$test".into(),
        vault_ids: vault_ids.iter().map(|v| v.to_string()).collect(),
    }
}

/// Records the changes a store announces (a [`crate::ChangeListener`]).
#[derive(Default)]
pub struct Recorder(std::sync::Mutex<Vec<crate::Change>>);

impl crate::ChangeListener for Recorder {
    fn changed(&self, change: &crate::Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

impl Recorder {
    /// What was announced since the last `take`.
    pub fn take(&self) -> Vec<crate::Change> {
        std::mem::take(&mut self.0.lock().unwrap())
    }

    /// `change` was announced before the changing call returned. (On PostgreSQL this process
    /// also hears its own NOTIFY a moment later; a repeat is harmless and allowed.)
    #[track_caller]
    pub fn expect(&self, change: crate::Change) {
        let got = self.take();
        assert!(
            !got.is_empty() && got.iter().all(|c| *c == change),
            "{got:?} != {change:?}"
        );
    }

    /// Waits out late repeats, then forgets them.
    pub async fn settle(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.take();
    }

    /// Waits until `change` has been announced, at most `within`.
    pub async fn wait_for(&self, change: &crate::Change, within: std::time::Duration) {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if self.0.lock().unwrap().contains(change) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "{change:?} not announced within {within:?}; got {:?}",
            self.0.lock().unwrap()
        );
    }
}
