//! Running the client commands: the service started for them, a user's environment (the service's URL and a key, nothing else),
//! what a command did (exit code, stdout, stderr), and reading its table output and the
//! credentials file it writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use connect_manager_store::testing::TestDb;

use crate::support::{BIN, Running, command};

pub(super) const OWNER: &str = "cli-owner-key-0123456789abcdefghijklmn";

/// The service on `db`, with the owner key [`OWNER`], and a user in a working directory of its
/// own beside it. Keep the directory until the end: the service's data is in it.
pub(super) async fn start(db: &TestDb) -> (tempfile::TempDir, Running, Cli) {
    start_with(db, &[]).await
}

/// [`start`], the service with `env` set too.
pub(super) async fn start_with(
    db: &TestDb,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Running, Cli) {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = command(dir.path());
    serve
        .env("DATABASE_URL", &db.url)
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", OWNER)
        .env("CONNECT_MANAGER_DATA_DIR", dir.path().join("data"))
        .env("CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE", "0");
    for (k, v) in env {
        serve.env(k, v);
    }
    let mut app = Running::start(serve, dir.path());
    app.wait_ready().await;
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let cli = Cli {
        dir: work,
        url: app.base.clone(),
        key: OWNER.into(),
    };
    (dir, app, cli)
}

pub(super) struct Cli {
    pub(super) dir: PathBuf,
    pub(super) url: String,
    pub(super) key: String,
}

/// What a command did.
pub(super) struct Ran {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Ran {
    #[track_caller]
    pub(super) fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        assert!(self.stderr.is_empty(), "unexpected stderr: {}", self.stderr);
        self.stdout
    }

    #[track_caller]
    pub(super) fn json(self) -> Value {
        serde_json::from_str(&self.ok()).expect("JSON on stdout")
    }

    /// Failed with exit code 1 and the API's message on stderr.
    #[track_caller]
    pub(super) fn fails(self, message: &str) -> String {
        assert_eq!(
            self.code, 1,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        assert!(self.stderr.starts_with("[ERROR] "), "{}", self.stderr);
        assert!(
            self.stderr.contains(message),
            "{:?} lacks {message:?}",
            self.stderr
        );
        self.stderr
    }
}

impl Cli {
    pub(super) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONNECT_MANAGER_URL", &self.url)
            .env("CONNECT_MANAGER_TOKEN", &self.key)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub(super) fn output(mut c: Command) -> Ran {
        let out: Output = c.output().unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    pub(super) fn run(&self, args: &[&str]) -> Ran {
        Cli::output(self.cmd(args))
    }

    pub(super) fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Cli::output(c)
    }

    pub(super) fn run_stdin(&self, args: &[&str], input: &str) -> Ran {
        Cli::output_stdin(self.cmd(args), input)
    }

    /// What `c` did with `input` piped on its standard input.
    pub(super) fn output_stdin(mut c: Command, input: &str) -> Ran {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    pub(super) fn credentials(&self) -> PathBuf {
        self.dir.join("1password-credentials.json")
    }
}

/// `connect-manager completion <shell>`'s script.
pub(super) fn completion(shell: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

pub(super) fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip(1)
        .map(|l| {
            l.split("    ")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

pub(super) fn credentials_server_id(path: &Path) -> String {
    let file = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    connect_manager_core::credentials::open(&file)
        .unwrap()
        .server_id
}
