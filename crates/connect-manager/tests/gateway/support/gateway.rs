//! `connect-manager gateway`, run as an operator would: the built binary on a credentials file
//! and an upstream (the stand-in), its log in a file, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_connect-manager");

/// `connect-manager gateway` with a clean environment, run in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .arg("gateway");
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    child: Child,
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
        let log = dir.join(format!("gateway-{port}.log"));
        let mut cmd = command(dir);
        cmd.env("CONNECT_MANAGER_GATEWAY_BIND", format!("127.0.0.1:{port}"))
            .env(
                "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
                &settings.credentials_file,
            )
            .env("CONNECT_MANAGER_GATEWAY_MAX_STALENESS", &settings.max_staleness)
            .env("LOG_FORMAT", if settings.log_json { "json" } else { "text" });
        if let Some((url, token)) = &settings.upstream {
            cmd.env("CONNECT_MANAGER_GATEWAY_UPSTREAM", url)
                .env("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN", token);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let mut g = Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
            dir: dir.to_path_buf(),
            settings,
        };
        g.wait_healthy().await;
        g
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/-/healthz", self.base)).await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the gateway exited with {status}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway did not start: {}", self.log());
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status()
                .unwrap();
            let status = self.child.wait().unwrap();
            assert!(status.success(), "the gateway did not exit 0 on SIGTERM: {status}");
        }
    }

    /// Stops it and starts it again on the same port with the same settings.
    pub async fn restart(&mut self) {
        self.terminate();
        let again = Gateway::start_on(&self.dir.clone(), self.settings.clone(), self.port).await;
        *self = again;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
