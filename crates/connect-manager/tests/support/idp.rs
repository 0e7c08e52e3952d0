//! A real OpenID provider for the token exchange tests: `oidc-provider` (npm, pinned in
//! tests/idp/package.json) started by tests/idp/provider.mjs on 127.0.0.1 at a free port. It
//! issues JWT access tokens through client_credentials with resource indicators: the `resource`
//! asked for is the token's `aud`, the client ID its `sub`. Its clients (see provider.mjs):
//! `deploy-es256` and `deploy-rs256` (claim `environment=production`), `deploy-staging`
//! (`environment=staging`).
//!
//! [`Provider::start`] needs node and tests/idp's packages (`npm ci` there; `.ci/run` does it):
//! without them it returns `None` with a message, and under `CI=true` it panics instead.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{http, sigterm};

/// The secret of every client of the provider (test-only).
const CLIENT_SECRET: &str = "idp-test-client-secret-0123456789";

pub struct Provider {
    child: Child,
    /// `http://127.0.0.1:PORT`, as its tokens' `iss` and its discovery document say.
    pub issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// tests/idp in the repository.
fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Why the provider cannot run here, if it cannot: node missing, or tests/idp's packages not
/// installed.
fn missing() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not installed".into());
    }
    if !idp_dir()
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return Some("tests/idp's packages are not installed (cd tests/idp && npm ci)".into());
    }
    None
}

impl Provider {
    /// The provider, ready; `None` (with a message) when node or its packages are missing,
    /// outside CI. Under `CI=true` their absence fails the test.
    pub fn start() -> Option<Provider> {
        if let Some(why) = missing() {
            assert!(
                !in_ci(),
                "CI=true but {why}: the identity provider tests must run (.ci/run installs them)"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("provider.log");
        let mut child = Command::new("node")
            .arg(idp_dir().join("provider.mjs"))
            .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
            // Its standard input open while it runs: it stops when it closes (the test died).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting node tests/idp/provider.mjs");
        // Its first line is its issuer URL, once it listens.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let issuer = line.trim().to_owned();
        let mut provider = Provider {
            child,
            issuer,
            log,
            _dir: dir,
        };
        if !provider.issuer.starts_with("http://127.0.0.1:") {
            let _ = provider.child.kill();
            panic!(
                "the identity provider did not start: {:?}\n{}",
                provider.issuer,
                provider.stderr()
            );
        }
        Some(provider)
    }

    /// Its log (stderr).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An access token (a JWT) for `client` with `aud` = `audience` (an absolute URI: a resource
    /// indicator), from the provider's token endpoint (client_credentials, client_secret_basic).
    pub async fn access_token(&self, client: &str, audience: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&resource={}",
            form_encode(audience)
        );
        let r = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let json: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "the provider's token endpoint: {json}");
        assert_eq!(json["token_type"], "Bearer", "{json}");
        json["access_token"].as_str().unwrap().to_owned()
    }

    /// Stops it with SIGTERM; it must exit 0.
    pub fn stop(mut self) {
        sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the identity provider did not exit 0 on SIGTERM: {status}\n{}",
            self.stderr()
        );
    }
}

/// A test that fails before `stop` must not leave the provider running.
impl Drop for Provider {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `application/x-www-form-urlencoded` for one value (RFC 3986 unreserved kept).
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The header of a JWT (not verified).
pub fn header(jwt: &str) -> Value {
    part(jwt, 0)
}

/// The claims of a JWT (its payload, not verified): what the provider put in it.
pub fn claims(jwt: &str) -> Value {
    part(jwt, 1)
}

fn part(jwt: &str, i: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(i).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}
