//! G1: settings, each a flag and an environment variable; a bad one exits 2 with a one-line
//! reason naming it, and never with a secret in it.

use std::path::Path;

use crate::support::gateway::{Scene, command, run};

const SECRET: &str = "upstream-secret-0123456789";

fn refused(dir: &Path, env: &[(&str, &str)], names: &str) {
    let mut cmd = command(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
    let reason = stderr.trim_end();
    assert_eq!(reason.lines().count(), 1, "{env:?}: not one line: {stderr}");
    assert!(
        reason.contains(names),
        "{env:?}: {reason} does not name {names}"
    );
    assert!(
        !stderr.contains(SECRET),
        "{env:?}: the token leaked: {stderr}"
    );
}

#[test]
fn g1_bad_settings_exit_2_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token_file = d.join("token");
    std::fs::write(&token_file, SECRET).unwrap();
    let token_file = token_file.to_str().unwrap();
    let garbage = d.join("garbage.json");
    std::fs::write(&garbage, "not a credentials file").unwrap();
    let garbage = garbage.to_str().unwrap();
    let up = ("CONNECT_MANAGER_GATEWAY_UPSTREAM", "http://127.0.0.1:9");
    let tok = ("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN", SECRET);
    let staleness = "CONNECT_MANAGER_GATEWAY_MAX_STALENESS";
    for (env, names) in [
        (vec![(staleness, "6s")], staleness),
        (vec![(staleness, "5001ms")], staleness),
        (vec![(staleness, "soon")], staleness),
        (
            vec![("CONNECT_MANAGER_GATEWAY_BIND", "nowhere")],
            "CONNECT_MANAGER_GATEWAY_BIND",
        ),
        (
            vec![
                ("CONNECT_MANAGER_GATEWAY_UPSTREAM", "ftp://connect:8080"),
                tok,
            ],
            "CONNECT_MANAGER_GATEWAY_UPSTREAM",
        ),
        (
            vec![
                ("CONNECT_MANAGER_GATEWAY_UPSTREAM", "connect-api:8080"),
                tok,
            ],
            "CONNECT_MANAGER_GATEWAY_UPSTREAM",
        ),
        (
            vec![
                (
                    "CONNECT_MANAGER_GATEWAY_UPSTREAM",
                    &format!("http://x:{SECRET}@h"),
                ),
                tok,
            ],
            "CONNECT_MANAGER_GATEWAY_UPSTREAM",
        ),
        (vec![up], "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN"),
        (vec![tok], "CONNECT_MANAGER_GATEWAY_UPSTREAM"),
        (
            vec![
                up,
                tok,
                ("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE", token_file),
            ],
            "both set",
        ),
        (
            vec![
                up,
                (
                    "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE",
                    "/nonexistent/token",
                ),
            ],
            "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE",
        ),
        (
            vec![(
                "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
                "/nonexistent/creds.json",
            )],
            "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
        ),
        (
            vec![("CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE", garbage)],
            "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
        ),
        // The default credentials file, ./connect-manager-credentials.json, is not there.
        (vec![], "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE"),
    ] {
        refused(d, &env, names);
    }
}

#[test]
fn g1_flags_are_read_like_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(command(dir.path()).args(["--max-staleness", "10s"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONNECT_MANAGER_GATEWAY_MAX_STALENESS"));
    let help = run(command(dir.path()).arg("--help"));
    let help = String::from_utf8_lossy(&help.stdout);
    for name in [
        "CONNECT_MANAGER_GATEWAY_BIND",
        "CONNECT_MANAGER_GATEWAY_UPSTREAM",
        "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN",
        "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE",
        "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
        "CONNECT_MANAGER_GATEWAY_MAX_STALENESS",
        "127.0.0.1:8090",
        "[default: 1s]",
    ] {
        assert!(help.contains(name), "--help lacks {name}: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_sigterm_lets_a_download_in_flight_finish_then_exits_0() {
    const SIZE: u64 = 32 * 1024 * 1024;
    let s = Scene::with_big_file(SIZE).await;
    let mut r = s.download_big_file().await;
    assert_eq!(r.status(), 200);
    let mut received = r.chunk().await.unwrap().map_or(0, |c| c.len() as u64);
    crate::support::sigterm(s.gateway.pid());
    // New connections are refused soon after; the download in flight goes on to its end.
    while let Some(chunk) = r.chunk().await.unwrap() {
        received += chunk.len() as u64;
    }
    assert_eq!(received, SIZE);
    let Scene { gateway, .. } = s;
    let log = gateway.stop();
    assert!(log.contains("shutdown signal received"), "{log}");
}
