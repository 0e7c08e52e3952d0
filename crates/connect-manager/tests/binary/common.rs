//! Helpers: run the built binary as an operator would.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_connect-manager");

pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

/// An HTTP client for the tests (rustls with ring, as the binary uses).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Running {
    pub child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Running {
    pub fn start(cmd: Command, dir: &Path) -> Running {
        let port = free_port();
        Running::start_on(cmd, dir, &format!("127.0.0.1:{port}"), port)
    }

    /// Serves on `bind`, reached on 127.0.0.1:`port`.
    pub fn start_on(mut cmd: Command, dir: &Path, bind: &str, port: u16) -> Running {
        let log = dir.join(format!("serve-{port}.log"));
        let child = cmd
            .arg("serve")
            .env("CONNECT_MANAGER_BIND", bind)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// A ready service on SQLite in `dir` whose first owner has the API key `owner_key`.
    pub async fn ready_with_owner(dir: &Path, owner_key: &str) -> Running {
        let mut cmd = command(dir);
        cmd.env("CONNECT_MANAGER_BOOTSTRAP_KEY", owner_key);
        let mut app = Running::start(cmd, dir);
        app.wait_ready().await;
        app
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http().get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited with {status}: {}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("serve did not become ready: {}", self.stderr());
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(mut self) -> String {
        sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "serve did not exit 0 on SIGTERM: {status}"
        );
        self.stderr()
    }
}

/// A test that fails before `stop` must not leave its service running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn sigterm(pid: u32) {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}
