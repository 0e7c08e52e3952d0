//! Helpers shared by the gateway's tests: the manager (`manager`), the Connect stand-in
//! (`standin`) and the gateway (`gateway`), each a real process with its log in a file, stopped
//! when dropped.

#![allow(dead_code)]

pub mod gateway;
pub mod manager;
pub mod standin;

use std::process::{Command, Stdio};

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
