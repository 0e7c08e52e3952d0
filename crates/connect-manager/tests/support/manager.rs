//! The manager: a real `connect-manager serve` (SQLite by default, PostgreSQL on request), an
//! owner's client for it, and what the gateway's tests do to it: vaults, servers with their
//! credentials files, tokens, revocations, deletions, its metrics; stop and restart on the same
//! port and data.

use std::path::{Path, PathBuf};

use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::{Running, command, free_port, http};

pub const OWNER_KEY: &str = "cmk_gateway_tests_owner_key_0123456789abcdef";
const MASTER_KEY: &str = "gateway-tests-master-key-0123456789abcdefgh";

pub struct TestManager {
    /// The data directory, the logs and the credentials files.
    pub dir: tempfile::TempDir,
    /// Its public URL (what tokens carry in `iss`), without a trailing `/`.
    pub base: String,
    port: u16,
    running: Option<Running>,
    database_url: Option<String>,
    /// Kept for the manager's lifetime: dropping it drops the PostgreSQL database.
    _db: Option<TestDb>,
    starts: u32,
    /// `CONNECT_MANAGER_PUBLIC_URL` when set (else the manager's default, `base`).
    public_url: Option<String>,
    /// More of the manager's environment (`CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS`, …).
    env: Vec<(String, String)>,
    client: reqwest::Client,
}

/// A server made on the manager, with its credentials file.
#[derive(Debug, Clone)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub credentials: PathBuf,
}

/// A token made on the manager: its ID (`jti`) and the JWT.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub jwt: String,
}

impl TestManager {
    /// A ready manager on SQLite.
    pub async fn start() -> TestManager {
        TestManager::launch(None).await
    }

    /// A ready manager on its own PostgreSQL database, when `TEST_DATABASE_URL` is set (under
    /// CI=true its absence fails the test).
    pub async fn start_postgres() -> Option<TestManager> {
        let db = TestDb::postgres().await?;
        Some(TestManager::launch(Some(db)).await)
    }

    /// A ready manager on SQLite with `env` set too.
    pub async fn start_with_env(env: &[(&str, &str)]) -> TestManager {
        TestManager::launch_with(None, env).await
    }

    async fn launch(db: Option<TestDb>) -> TestManager {
        TestManager::launch_with(db, &[]).await
    }

    async fn launch_with(db: Option<TestDb>, env: &[(&str, &str)]) -> TestManager {
        let mut m = TestManager {
            dir: tempfile::tempdir().unwrap(),
            base: String::new(),
            port: free_port(),
            running: None,
            database_url: db.as_ref().map(|db| db.url.clone()),
            _db: db,
            starts: 0,
            public_url: None,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            client: http(),
        };
        m.base = format!("http://127.0.0.1:{}", m.port);
        m.spawn().await;
        m
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("manager-{}.log", self.starts))
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let mut cmd = command(self.dir.path());
        cmd.arg("serve")
            .env("CONNECT_MANAGER_BIND", format!("127.0.0.1:{}", self.port))
            .env("CONNECT_MANAGER_BOOTSTRAP_KEY", OWNER_KEY)
            .env("CONNECT_MANAGER_MASTER_KEY", MASTER_KEY);
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        if let Some(url) = &self.public_url {
            cmd.env("CONNECT_MANAGER_PUBLIC_URL", url);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let log = self.log_path();
        let stderr = std::fs::File::create(&log).unwrap();
        let mut running = Running::spawn(cmd, "the manager", self.base.clone(), log, stderr);
        running.wait_until_ok("/readyz").await;
        self.running = Some(running);
    }

    /// Stops the manager (SIGTERM); its data stays for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    /// Starts the manager again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Starts the manager again on the same port and data, announcing `public_url` (`None`: the
    /// default, its own address): tokens it issues then carry that `iss`.
    pub async fn restart_with_public_url(&mut self, public_url: Option<&str>) {
        self.public_url = public_url.map(str::to_owned);
        self.restart().await;
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A request as the owner; the answer's status and JSON body (`Null` when empty).
    pub async fn owner(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(OWNER_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        super::status_and_json(req.send().await.unwrap()).await
    }

    async fn owner_ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path}");
        let (status, json) = self.owner(method, path, body).await;
        assert!((200..300).contains(&status), "{shown}: {status} {json}");
        json
    }

    /// A registry vault; its ID.
    pub async fn create_vault(&self, name: &str) -> String {
        let v = self
            .owner_ok(
                reqwest::Method::POST,
                "/v1/vaults",
                Some(json!({"name": name, "type": "USER_CREATED"})),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// A server granted `vaults` (names or IDs), its credentials file written in the data dir.
    pub async fn create_server(&self, name: &str, vaults: &[&str]) -> Server {
        let v = self
            .owner_ok(
                reqwest::Method::POST,
                "/v1/connect/servers",
                Some(json!({"name": name, "vaults": vaults})),
            )
            .await;
        let credentials = self.dir.path().join(format!("{name}-credentials.json"));
        std::fs::write(&credentials, v["credentials"].to_string()).unwrap();
        Server {
            id: v["server"]["id"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            credentials,
        }
    }

    /// A token of `server` on `vaults` (vault, access: `read`, `write` or `read_write`).
    pub async fn create_token(
        &self,
        server: &str,
        name: &str,
        vaults: &[(&str, &str)],
        expires_in: Option<&str>,
    ) -> Token {
        let vaults: Vec<Value> = vaults
            .iter()
            .map(|(vault, access)| json!({"vault": vault, "access": access}))
            .collect();
        let mut body = json!({"name": name, "vaults": vaults});
        if let Some(e) = expires_in {
            body["expires_in"] = json!(e);
        }
        let v = self
            .owner_ok(
                reqwest::Method::POST,
                &format!("/v1/connect/servers/{server}/tokens"),
                Some(body),
            )
            .await;
        Token {
            id: v["id"].as_str().unwrap().to_owned(),
            jwt: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// The token as the API's list shows it.
    pub async fn token(&self, token_id: &str, server: &str) -> Value {
        let list = self
            .owner_ok(
                reqwest::Method::GET,
                &format!("/v1/connect/tokens?server={server}&limit=1000"),
                None,
            )
            .await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == token_id)
            .unwrap_or_else(|| panic!("token {token_id} not listed: {list}"))
            .clone()
    }

    pub async fn revoke_token(&self, token: &str, server: &str) {
        self.owner_ok(
            reqwest::Method::DELETE,
            &format!("/v1/connect/tokens/{token}?server={server}"),
            None,
        )
        .await;
    }

    pub async fn grant_vault(&self, server: &str, vault: &str) {
        self.owner_ok(
            reqwest::Method::PUT,
            &format!("/v1/connect/servers/{server}/vaults/{vault}"),
            None,
        )
        .await;
    }

    pub async fn revoke_vault(&self, server: &str, vault: &str) {
        self.owner_ok(
            reqwest::Method::DELETE,
            &format!("/v1/connect/servers/{server}/vaults/{vault}"),
            None,
        )
        .await;
    }

    pub async fn delete_vault(&self, vault: &str) {
        self.owner_ok(
            reqwest::Method::DELETE,
            &format!("/v1/vaults/{vault}"),
            None,
        )
        .await;
    }

    pub async fn delete_server(&self, server: &str) {
        self.owner_ok(
            reqwest::Method::DELETE,
            &format!("/v1/connect/servers/{server}"),
            None,
        )
        .await;
    }

    /// The manager's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series of `/metrics` (`name{labels}` as written there), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    /// Introspections the manager has answered, active and inactive.
    pub async fn introspections(&self) -> f64 {
        let text = self.metrics().await;
        metric_value(
            &text,
            "connect_manager_introspections_total{result=\"active\"}",
        ) + metric_value(
            &text,
            "connect_manager_introspections_total{result=\"inactive\"}",
        )
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The value of `series` in a Prometheus text exposition, 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// A test that fails before `stop` must not leave its manager running (killed before its data
/// directory and database go).
impl Drop for TestManager {
    fn drop(&mut self) {
        drop(self.running.take());
    }
}
