//! A child process with its log in a file, reached over HTTP: wait until it answers, stop it
//! with SIGTERM (it must exit 0), killed when a test fails before stopping it. `serve` (the
//! binary target's service), the manager and the gateway are each one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{command, free_port, http, sigterm};

pub struct Running {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its stderr.
    pub log: PathBuf,
    /// What it is, for panics: `serve`, `the manager`, `the gateway`.
    what: &'static str,
}

impl Running {
    /// Spawns `cmd`, its stderr to `stderr` (the file `log`, created or appended by the caller),
    /// reached at `base`.
    pub fn spawn(
        mut cmd: Command,
        what: &'static str,
        base: String,
        log: PathBuf,
        stderr: File,
    ) -> Running {
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        Running {
            child,
            base,
            log,
            what,
        }
    }

    /// `serve` on a free port.
    pub fn start(cmd: Command, dir: &Path) -> Running {
        let port = free_port();
        Running::start_on(cmd, dir, &format!("127.0.0.1:{port}"), port)
    }

    /// `serve` on `bind`, reached on 127.0.0.1:`port`.
    pub fn start_on(mut cmd: Command, dir: &Path, bind: &str, port: u16) -> Running {
        let log = dir.join(format!("serve-{port}.log"));
        cmd.arg("serve").env("CONNECT_MANAGER_BIND", bind);
        let stderr = File::create(&log).unwrap();
        Running::spawn(
            cmd,
            "serve",
            format!("http://127.0.0.1:{port}"),
            log,
            stderr,
        )
    }

    /// A ready service on SQLite in `dir` whose first owner has the API key `owner_key`.
    pub async fn ready_with_owner(dir: &Path, owner_key: &str) -> Running {
        let mut cmd = command(dir);
        cmd.env("CONNECT_MANAGER_BOOTSTRAP_KEY", owner_key);
        let mut app = Running::start(cmd, dir);
        app.wait_ready().await;
        app
    }

    /// Waits until `serve`'s `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        self.wait_until_ok("/readyz").await;
    }

    /// Waits until `path` answers 200; panics when the process exits first, or after 30 s.
    pub async fn wait_until_ok(&mut self, path: &str) {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}{path}", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}: {}", self.what, self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not become ready: {}", self.what, self.stderr());
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (unless it has exited already); it must exit 0.
    pub fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            sigterm(self.child.id());
        }
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{} did not exit 0 on SIGTERM: {status}",
            self.what
        );
    }

    /// [`Self::terminate`], then its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.stderr()
    }
}

/// A test that fails before `stop` must not leave its process running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
