//! The Connect API stand-in (tests/gateway/connect_standin.py), run as a child process: it
//! serves Connect's paths with one accepted token and records every request that reached it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway/connect_standin.py")
}

pub struct Standin {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The real Connect token it accepts (the gateway's upstream token).
    pub token: String,
    /// `{"vaults": [{"id", "name"}…], "items": [{"vault", "id", "title", "files"}…]}`
    pub fixture: Value,
}

impl Standin {
    pub fn start(token: &str) -> Standin {
        Standin::start_with(token, &[])
    }

    /// With extra arguments, e.g. `["--big-file-bytes", "67108864"]`.
    pub fn start_with(token: &str, args: &[&str]) -> Standin {
        Standin::start_on(token, 0, args)
    }

    fn start_on(token: &str, port: u16, args: &[&str]) -> Standin {
        let mut child = Command::new("python3")
            .arg(script())
            .args(["--token", token, "--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the Connect stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let fixture: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the stand-in's first line {line:?}: {e}"));
        let port = u16::try_from(fixture["port"].as_u64().unwrap()).unwrap();
        Standin {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            fixture,
        }
    }

    /// The ID of the fixture's vault `name` (Production, Staging, Shared).
    pub fn vault(&self, name: &str) -> String {
        self.fixture["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no vault {name}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The fixture item `title` (Database, API Key) in vault `vault_id`.
    pub fn item(&self, vault_id: &str, title: &str) -> Value {
        self.fixture["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["vault"] == vault_id && i["title"] == title)
            .unwrap_or_else(|| panic!("no item {title} in {vault_id}"))
            .clone()
    }

    /// The ID of the file `name` of the item `title` in `vault_id`.
    pub fn file_id(&self, vault_id: &str, title: &str, name: &str) -> String {
        self.item(vault_id, title)["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no file {name} in {title}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every request that reached the stand-in since the last reset.
    pub async fn requests(&self) -> Vec<Value> {
        super::install_crypto();
        reqwest::get(format!("{}/__standin/requests", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn reset(&self) {
        reqwest::Client::new()
            .post(format!("{}/__standin/reset", self.base))
            .send()
            .await
            .unwrap();
    }

    /// Answer `status` to every API request from now on (0: stop failing).
    pub async fn fail(&self, status: u16) {
        reqwest::Client::new()
            .post(format!("{}/__standin/fail?status={status}", self.base))
            .send()
            .await
            .unwrap();
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, with the same token.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            // The port may take a moment to be free again.
            let attempt =
                std::panic::catch_unwind(|| Standin::start_on(&self.token, self.port, &[]));
            match attempt {
                Ok(s) => {
                    *self = s;
                    return;
                }
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop();
    }
}
