//! A running service per test, on its own database, and a small client for it.

use std::path::PathBuf;

use connect_manager_server::config::{ConsoleArgs, LogFormat, StorageArgs};
use connect_manager_server::{ServeArgs, launch};
use connect_manager_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const OWNER_KEY: &str = "test-owner-key-0123456789abcdefghijklmnop";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A response: status, headers and JSON body (Null when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts the error envelope (E1) with this status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(body["error"]["details"].is_object(), "{body}");
        assert!(
            body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{body}"
        );
        body
    }
}

impl TestApp {
    /// A service with failed-authentication limiting off (tests make many bad requests).
    pub async fn spawn(db: TestDb) -> TestApp {
        TestApp::spawn_limited(db, 0).await
    }

    /// A service allowing `per_minute` failed authentications per client IP.
    pub async fn spawn_limited(db: TestDb, per_minute: u32) -> TestApp {
        TestApp::spawn_with(db, per_minute, "").await
    }

    /// A service allowing `per_minute` failed authentications per client, believing the
    /// `X-Forwarded-For` of the proxies in `trusted_proxies` (a CIDR list).
    pub async fn spawn_with(db: TestDb, per_minute: u32, trusted_proxies: &str) -> TestApp {
        let data_dir = db.dir().join("data");
        let url = db.url.clone();
        TestApp::start(db, url, data_dir, per_minute, trusted_proxies, None).await
    }

    /// Stops this service and starts a new one on the same database, data directory and port
    /// settings: a restart, with nothing of the old process's memory (caches, limiter) left.
    pub async fn restart(&mut self, per_minute: u32) {
        self.restart_with(per_minute, None).await;
    }

    /// A restart with scheduled signing-key rotation at `interval`
    /// (`CONNECT_MANAGER_KEY_ROTATION_INTERVAL`).
    pub async fn restart_rotating(&mut self, interval: &str) {
        self.restart_with(0, Some(interval)).await;
    }

    async fn restart_with(&mut self, per_minute: u32, key_rotation_interval: Option<&str>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let (base, tx, task) = launch_service(
            self.db.url.clone(),
            self.data_dir.clone(),
            per_minute,
            "",
            key_rotation_interval,
            &Setup::default(),
        )
        .await;
        self.base = base;
        self.shutdown = Some(tx);
        self.task = Some(task);
        self.get_as(None, "/readyz").await.expect(200);
    }

    /// Another replica on the same database and data directory (so the same master key).
    pub async fn replica(&self) -> TestApp {
        self.replica_with(None).await
    }

    /// Another replica, rotating signing keys on schedule at `interval`.
    pub async fn replica_rotating(&self, interval: &str) -> TestApp {
        self.replica_with(Some(interval)).await
    }

    async fn replica_with(&self, key_rotation_interval: Option<&str>) -> TestApp {
        let db = TestDb::for_backend(self.db.backend)
            .await
            .expect("a database for the replica");
        TestApp::start(
            db,
            self.db.url.clone(),
            self.data_dir.clone(),
            0,
            "",
            key_rotation_interval,
        )
        .await
    }

    /// A service with these public URL and console session settings (the console's tests).
    pub async fn spawn_console(db: TestDb, setup: Setup) -> TestApp {
        let data_dir = db.dir().join("data");
        let url = db.url.clone();
        TestApp::start_with(db, url, data_dir, 0, "", None, &setup).await
    }

    async fn start(
        db: TestDb,
        url: String,
        data_dir: PathBuf,
        per_minute: u32,
        trusted_proxies: &str,
        key_rotation_interval: Option<&str>,
    ) -> TestApp {
        TestApp::start_with(
            db,
            url,
            data_dir,
            per_minute,
            trusted_proxies,
            key_rotation_interval,
            &Setup::default(),
        )
        .await
    }

    async fn start_with(
        db: TestDb,
        url: String,
        data_dir: PathBuf,
        per_minute: u32,
        trusted_proxies: &str,
        key_rotation_interval: Option<&str>,
        setup: &Setup,
    ) -> TestApp {
        let (base, tx, task) = launch_service(
            url,
            data_dir.clone(),
            per_minute,
            trusted_proxies,
            key_rotation_interval,
            setup,
        )
        .await;
        let app = TestApp {
            base,
            client: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
            }
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap(),
            db,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        };
        app.get_as(None, "/readyz").await.expect(200);
        app
    }

    /// A client whose connections come from `source` (any 127.0.0.0/8 address on loopback), so
    /// that tests can play several clients.
    pub fn client_from(source: &str) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .local_address(Some(source.parse().expect("an address")))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(OWNER_KEY), None).await
    }
    pub async fn get_as(&self, key: Option<&str>, path: &str) -> Reply {
        self.send(Method::GET, path, key, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(OWNER_KEY), Some(body))
            .await
    }
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(key), Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(OWNER_KEY), Some(body))
            .await
    }
    pub async fn put(&self, path: &str) -> Reply {
        self.send(Method::PUT, path, Some(OWNER_KEY), None).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(OWNER_KEY), None).await
    }
    pub async fn as_user(&self, key: &str, method: Method, path: &str) -> Reply {
        self.send(method, path, Some(key), None).await
    }

    /// POST as a Connect server (HTTP Basic with its ID and secret).
    pub async fn post_as_server(
        &self,
        path: &str,
        server_id: &str,
        secret: &str,
        body: Value,
    ) -> Reply {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(server_id, Some(secret))
            .json(&body);
        reply(req.send().await.expect("request sent")).await
    }

    /// Introspects `jwt` as the server (T4).
    pub async fn introspect(&self, server_id: &str, secret: &str, jwt: &str) -> Value {
        self.post_as_server("/v1/introspect", server_id, secret, json!({"token": jwt}))
            .await
            .expect(200)
    }

    /// Creates a token on `server`; returns (token object, JWT).
    pub async fn token(&self, server: &str, body: Value) -> (Value, String) {
        let created = self
            .post(&format!("/v1/connect/servers/{server}/tokens"), body)
            .await
            .expect(201);
        let jwt = created["token"].as_str().unwrap().to_owned();
        (created, jwt)
    }

    /// GET as a Connect server (HTTP Basic with its ID and secret).
    pub async fn get_as_server(&self, path: &str, server_id: &str, secret: &str) -> Reply {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .basic_auth(server_id, Some(secret));
        reply(req.send().await.expect("request sent")).await
    }

    // ---- fixtures ----------------------------------------------------------------------------

    pub async fn vault(&self, name: &str, vault_type: &str) -> Value {
        self.post("/v1/vaults", json!({"name": name, "type": vault_type}))
            .await
            .expect(201)
    }

    /// Creates a server; returns (server, secret from its credentials file).
    pub async fn server(&self, name: &str, vaults: &[&str]) -> (Value, String) {
        let body = self
            .post(
                "/v1/connect/servers",
                json!({"name": name, "vaults": vaults}),
            )
            .await
            .expect(201);
        let secret = secret_of(&body["credentials"]);
        (body["server"].clone(), secret)
    }

    /// A user in a new group with the given grant path (`manager`, `all-servers`,
    /// `servers/<id>`, or None for no group); returns (user id, API key).
    pub async fn user_with(&self, name: &str, grant: Option<&str>) -> (String, String) {
        let user = self
            .post(
                "/v1/users",
                json!({"name": name, "email": format!("{name}@example.test")}),
            )
            .await
            .expect(201);
        let id = user["id"].as_str().unwrap().to_owned();
        let key = self
            .post(&format!("/v1/users/{id}/keys"), json!({}))
            .await
            .expect(201)["key"]
            .as_str()
            .unwrap()
            .to_owned();
        if let Some(grant) = grant {
            let group = self
                .post("/v1/groups", json!({"name": format!("{name}-group")}))
                .await
                .expect(201);
            let gid = group["id"].as_str().unwrap();
            self.put(&format!("/v1/groups/{gid}/members/{id}"))
                .await
                .expect(200);
            self.put(&format!("/v1/connect/groups/{gid}/grants/{grant}"))
                .await
                .expect(200);
        }
        (id, key)
    }

    /// Every item of a list, following `next_cursor` page by page. `path` carries a query
    /// (at least `?limit=`) to which the cursor is added.
    pub async fn all_items(&self, path: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut next = path.to_owned();
        loop {
            let page = self.get(&next).await.expect(200);
            all.extend(items(&page));
            match page["next_cursor"].as_str() {
                Some(c) => next = format!("{path}&cursor={c}"),
                None => return all,
            }
        }
    }

    pub async fn audit_actions(&self) -> Vec<(String, String)> {
        let events = self.get("/v1/audit/events?limit=1000").await.expect(200);
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// The settings a test may choose: the public URL (https by default: `Secure` `__Host-` console
/// cookies; http: plain ones) and the console's session lifetimes.
pub struct Setup {
    pub public_url: &'static str,
    pub idle_timeout: &'static str,
    pub max_age: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            public_url: "https://cm.example.test",
            idle_timeout: "1h",
            max_age: "12h",
        }
    }
}

/// Starts the service; returns its base URL, its shutdown trigger and its task.
async fn launch_service(
    url: String,
    data_dir: PathBuf,
    per_minute: u32,
    trusted_proxies: &str,
    key_rotation_interval: Option<&str>,
    setup: &Setup,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let args = ServeArgs {
        bind: "127.0.0.1:0".into(),
        storage: StorageArgs {
            data_dir,
            database_url: Some(url),
            database_password_file: None,
            master_key: None,
            master_key_file: None,
            connection: Default::default(),
        },
        bootstrap_key: Some(OWNER_KEY.into()),
        bootstrap_key_file: None,
        public_url: Some(setup.public_url.into()),
        log_format: LogFormat::Text,
        auth_failures_per_minute: per_minute,
        trusted_proxies: trusted_proxies.into(),
        forwarded_header: Default::default(),
        key_rotation_interval: key_rotation_interval.map(str::to_owned),
        console: ConsoleArgs {
            idle_timeout: setup.idle_timeout.into(),
            max_age: setup.max_age.into(),
        },
        // The exchange tests' issuers serve plain HTTP on 127.0.0.1.
        allow_insecure_issuers: true,
    };
    let config = args.validate().expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        launch(config, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("service runs");
    });
    (base, tx, task)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// The server secret inside a credentials file (C1), decrypted as its holder would.
pub fn secret_of(credentials: &Value) -> String {
    let file: connect_manager_core::credentials::CredentialsFile =
        serde_json::from_value(credentials.clone()).expect("a credentials file");
    connect_manager_core::credentials::open(&file)
        .expect("opens")
        .secret
}

pub fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("a list page").clone()
}

pub fn ids(page: &Value) -> Vec<String> {
    items(page)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}
