//! `connect-manager gateway`, run as an operator would: the built binary on a credentials file
//! and an upstream (the stand-in), its log in a file, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::manager::{Server, TestManager, Token};
use super::standin::Standin;
use super::{Running, free_port};

/// `connect-manager gateway` with a clean environment, run in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut c = super::command(dir);
    c.env("RUST_LOG", "info").arg("gateway");
    c
}

/// Runs the gateway with `cmd` to completion (for settings that must fail).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// What a gateway is started with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub credentials_file: PathBuf,
    /// The upstream's base URL and token.
    pub upstream: Option<(String, String)>,
    pub max_staleness: String,
    pub log_json: bool,
}

impl Settings {
    pub fn new(credentials_file: &Path, upstream: Option<(&str, &str)>) -> Settings {
        Settings {
            credentials_file: credentials_file.to_path_buf(),
            upstream: upstream.map(|(u, t)| (u.to_string(), t.to_string())),
            max_staleness: "1s".into(),
            log_json: true,
        }
    }
}

pub struct Gateway {
    running: Running,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    pub log: PathBuf,
    dir: PathBuf,
    settings: Settings,
}

impl Gateway {
    /// Starts a gateway in `dir` and waits until it answers `/-/healthz`.
    pub async fn start(dir: &Path, settings: Settings) -> Gateway {
        Gateway::start_on(dir, settings, free_port()).await
    }

    async fn start_on(dir: &Path, settings: Settings, port: u16) -> Gateway {
        super::install_crypto();
        let log = dir.join(format!("gateway-{port}.log"));
        let mut cmd = command(dir);
        cmd.env("CONNECT_MANAGER_GATEWAY_BIND", format!("127.0.0.1:{port}"))
            .env(
                "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
                &settings.credentials_file,
            )
            .env(
                "CONNECT_MANAGER_GATEWAY_MAX_STALENESS",
                &settings.max_staleness,
            )
            .env(
                "LOG_FORMAT",
                if settings.log_json { "json" } else { "text" },
            );
        if let Some((url, token)) = &settings.upstream {
            cmd.env("CONNECT_MANAGER_GATEWAY_UPSTREAM", url)
                .env("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN", token);
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut running = Running::spawn(cmd, "the gateway", base.clone(), log.clone(), stderr);
        running.wait_until_ok("/-/healthz").await;
        Gateway {
            running,
            base,
            port,
            log,
            dir: dir.to_path_buf(),
            settings,
        }
    }

    /// Waits until `/-/readyz` answers 200 (JWKS loaded, manager and upstream reachable).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/-/readyz", self.base)).await {
                if r.status() == 200 {
                    return;
                }
                last = r.text().await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway did not become ready: {last}\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.running.child.id()
    }

    /// The most resident memory the process has used, in bytes (Linux's VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.running.stderr()
    }

    /// The log's JSON events about requests (one per request, G6).
    pub fn request_events(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["message"] == "request")
            .collect()
    }

    /// SIGTERM; the gateway must exit 0. Returns its log.
    pub fn stop(mut self) -> String {
        self.running.terminate();
        self.log()
    }

    /// Stops it and starts it again on the same port with the same settings.
    pub async fn restart(&mut self) {
        self.running.terminate();
        let again = Gateway::start_on(&self.dir.clone(), self.settings.clone(), self.port).await;
        *self = again;
    }
}

/// The real Connect token the stand-in accepts and the gateway holds.
pub const UPSTREAM_TOKEN: &str = "connect-upstream-token-7f3a9c1e5b2d4f6a8c0e";

/// A manager, the Connect stand-in whose three vaults (Production, Staging, Shared) are in the
/// manager's registry under their real IDs (G8), a server granted all three, and a gateway for
/// that server in front of the stand-in.
pub struct Scene {
    pub manager: TestManager,
    pub standin: Standin,
    pub server: Server,
    pub gateway: Gateway,
    /// Vault name → ID.
    pub production: String,
    pub staging: String,
    pub shared: String,
    pub client: reqwest::Client,
}

impl Scene {
    pub async fn start() -> Scene {
        Scene::start_with(TestManager::start().await, &[], "1s").await
    }

    pub async fn start_with(manager: TestManager, standin_args: &[&str], staleness: &str) -> Scene {
        let standin = Standin::start_with(UPSTREAM_TOKEN, standin_args);
        for v in standin.fixture["vaults"].as_array().unwrap() {
            let (status, body) = manager
                .owner(
                    reqwest::Method::POST,
                    "/v1/vaults",
                    Some(json!({"id": v["id"], "name": v["name"], "type": "USER_CREATED"})),
                )
                .await;
            assert_eq!(status, 201, "vault {v}: {body}");
        }
        let (production, staging, shared) = (
            standin.vault("Production"),
            standin.vault("Staging"),
            standin.vault("Shared"),
        );
        let server = manager
            .create_server("gw", &[&production, &staging, &shared])
            .await;
        let mut settings =
            Settings::new(&server.credentials, Some((&standin.base, UPSTREAM_TOKEN)));
        settings.max_staleness = staleness.to_string();
        let gateway = Gateway::start(manager.data_dir(), settings).await;
        gateway.wait_ready().await;
        Scene {
            manager,
            standin,
            server,
            gateway,
            production,
            staging,
            shared,
            client: super::http(),
        }
    }

    /// A scene whose stand-in serves `size` bytes as the Production vault's Database item's
    /// `backup.tar`.
    pub async fn with_big_file(size: u64) -> Scene {
        let size = size.to_string();
        Scene::start_with(
            TestManager::start().await,
            &["--big-file-bytes", &size],
            "1s",
        )
        .await
    }

    /// That file's content asked for through the gateway with a read token on Production: the
    /// answer, its body not read yet.
    pub async fn download_big_file(&self) -> reqwest::Response {
        let p = &self.production;
        let t = self.token(&[(p, "read")]).await;
        let item = self.standin.item(p, "Database");
        let file = self.standin.file_id(p, "Database", "backup.tar");
        self.client
            .get(self.gateway.url(&format!(
                "/v1/vaults/{p}/items/{}/files/{file}/content",
                item["id"].as_str().unwrap()
            )))
            .bearer_auth(&t.jwt)
            .send()
            .await
            .unwrap()
    }

    /// A token of the scene's server on `vaults` (vault ID, `read`/`write`/`read_write`).
    pub async fn token(&self, vaults: &[(&str, &str)]) -> Token {
        self.manager
            .create_token(&self.server.id, "t", vaults, None)
            .await
    }

    /// A request through the gateway with `jwt` (None: no Authorization).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        jwt: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            self.gateway.url(path),
        );
        if let Some(jwt) = jwt {
            req = req.bearer_auth(jwt);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        super::status_and_json(req.send().await.unwrap()).await
    }

    /// The paths of the requests that reached the stand-in.
    pub async fn reached(&self) -> Vec<String> {
        self.standin
            .requests()
            .await
            .iter()
            .filter(|r| r["raw_path"] != "/heartbeat")
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["raw_path"].as_str().unwrap()
                )
            })
            .collect()
    }
}

/// Sends `raw` bytes on a new connection to `port` and returns what came back (until close or
/// a short silence).
pub async fn raw_http(port: u16, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
