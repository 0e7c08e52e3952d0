//! Test support shared by the two targets that run the built binary as an operator would:
//! tests/binary (`serve` and the client commands) and tests/gateway (the manager, the gateway
//! and the Connect stand-in). Each pulls this folder in with a `#[path]` attribute in its
//! main.rs (tests/binary as `common`, tests/gateway as `support`), so a fix lands once.
//!
//! - here: the binary with a clean environment, an HTTP client, free ports, SIGTERM.
//! - `running.rs`: a child process with its log in a file: wait until it answers, stop it with
//!   SIGTERM (it must exit 0), killed when dropped; `serve` started that way.
//! - `manager.rs`: the manager (`serve`) as the gateway's tests drive it: vaults, servers and
//!   their credentials files, tokens, its metrics; stop and restart on the same port and data.
//! - `gateway.rs`: `connect-manager gateway` and the gateway tests' scene.
//! - `idp.rs`: a real OpenID provider (oidc-provider on Node, tests/idp) issuing JWT access
//!   tokens, for the token exchange.
//! - `standin.rs`: the Connect API stand-in (tests/gateway/connect_standin.py), used by the
//!   gateway's tests and by `vault import`'s.

// Each target uses a different part of this module.
#![allow(dead_code)]

pub mod gateway;
pub mod idp;
pub mod manager;
pub mod running;
pub mod standin;

use std::process::{Command, Output, Stdio};

pub use running::Running;

pub const BIN: &str = env!("CARGO_BIN_EXE_connect-manager");

/// The binary, with a clean environment, run in `dir`.
pub fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

/// An HTTP client for the tests (rustls with ring, as the binary uses).
pub fn http() -> reqwest::Client {
    install_crypto();
    reqwest::Client::new()
}

/// rustls's ring provider, as the binary installs it (the gateway's manager client needs one).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An answer's status and JSON body (`Null` when empty or not JSON).
pub async fn status_and_json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sigterm(pid: u32) {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}
