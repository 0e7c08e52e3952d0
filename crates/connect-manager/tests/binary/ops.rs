//! Running it for real: the container's start-up path, its files, log hygiene at trace level,
//! and graceful shutdown with a request in flight.
//!
//! Here: the Dockerfile, the container's start-up path and health check, graceful shutdown;
//! `ops/compose.rs`: the compose file; `ops/logs.rs`: secrets kept out of the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{BIN, Running, command, free_port, sigterm};

mod compose;
mod logs;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()
}

fn serve_help() -> String {
    let dir = tempfile::tempdir().unwrap();
    String::from_utf8(
        command(dir.path())
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

/// The Dockerfile as built here could not be run (no Docker engine): its settings are checked
/// against what the binary knows, and the next test runs the binary exactly as it would.
#[test]
fn dockerfile_runs_the_tested_start_up_path_as_non_root() {
    let dockerfile = read("Dockerfile");
    let has = |line: &str| dockerfile.lines().any(|l| l.trim() == line);
    assert!(has("USER 10001:10001"), "non-root user");
    assert!(has(r#"ENTRYPOINT ["connect-manager"]"#) && has(r#"CMD ["serve"]"#));
    assert!(has("EXPOSE 8080") && has(r#"VOLUME ["/data"]"#));
    assert!(
        has(r#"CMD ["connect-manager", "healthcheck"]"#),
        "health check by the binary itself"
    );
    assert!(dockerfile.contains("CONNECT_MANAGER_BIND=0.0.0.0:8080"));
    assert!(dockerfile.contains("org.opencontainers.image.title"));
    assert!(
        dockerfile.contains("AS build") && dockerfile.contains("COPY --from=build"),
        "multi-stage"
    );
    // The dependency layer copies every crate's manifest: none forgotten when a crate is added.
    for entry in std::fs::read_dir(format!("{ROOT}/crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            dockerfile.contains(&format!("COPY crates/{name}/Cargo.toml crates/{name}/")),
            "Dockerfile does not copy crates/{name}/Cargo.toml"
        );
    }
    let help = serve_help();
    for var in [
        "CONNECT_MANAGER_BIND",
        "CONNECT_MANAGER_DATA_DIR",
        "LOG_FORMAT",
    ] {
        assert!(dockerfile.contains(var) && help.contains(var), "{var}");
    }
}

/// The container's command with the container's environment: serve on 0.0.0.0, data in a fresh
/// directory, JSON logs; its health check passes while it runs and fails once it stopped.
#[tokio::test]
async fn container_start_up_path_and_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let healthcheck = |dir: &std::path::Path| {
        command(dir)
            .arg("healthcheck")
            .env("CONNECT_MANAGER_BIND", format!("0.0.0.0:{port}"))
            .status()
            .unwrap()
    };
    let mut cmd = command(dir.path());
    cmd.env("CONNECT_MANAGER_DATA_DIR", &data)
        .env("LOG_FORMAT", "json");
    let mut app = Running::start_on(cmd, dir.path(), &format!("0.0.0.0:{port}"), port);
    app.wait_ready().await;
    assert!(healthcheck(dir.path()).success());
    let log = app.stop();
    assert!(!healthcheck(dir.path()).success());
    assert!(data.join("connect-manager.db").exists() && data.join("master.key").exists());
    for line in log.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("LOG_FORMAT=json lines are JSON");
    }
}

/// The gateway's container checks its own /-/healthz (it has no /healthz): the health check
/// takes the path to ask, and only a plain absolute path.
#[tokio::test]
async fn healthcheck_asks_the_path_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let check = |path: &str| {
        command(dir.path())
            .args(["healthcheck", "--bind", &bind, "--path", path])
            .output()
            .unwrap()
    };
    let mut app = Running::start_on(command(dir.path()), dir.path(), &bind, port);
    app.wait_ready().await;
    assert!(check("/readyz").status.success(), "serve answers /readyz");
    let missing = check("/-/healthz");
    assert_eq!(missing.status.code(), Some(1), "serve has no /-/healthz");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/-/healthz answered 404"));
    for bad in ["healthz", "//evil.example/healthz", "/healthz?x", "/a%2fb"] {
        assert_eq!(check(bad).status.code(), Some(2), "{bad} is refused");
    }
    app.stop();
}

/// SIGTERM with a request in flight: no new connections, the request finishes, exit 0.
#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let key = "shutdown-test-key-0123456789abcdefghijkl";
    let mut app = Running::ready_with_owner(dir.path(), key).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"name": "in-flight", "type": "EVERYONE"}"#;
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/vaults HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    sigterm(app.child.id());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_err(),
        "no new connections once stopping"
    );
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = app.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() < Duration::from_secs(15));
    assert!(
        std::fs::read_to_string(&app.log)
            .unwrap()
            .contains("connect-manager stopped")
    );
    let _ = BIN;
}
