//! The built binary, run as an operator would: start-up on a fresh machine, configuration errors,
//! recovery keys, and several replicas starting at once on one PostgreSQL.
//!
//! Here: start-up on a fresh machine, configuration errors, one `serve` per SQLite data directory;
//! `serve/keys.rs`: the master key, the admin commands and `credentials show`;
//! `serve/postgres.rs`: an outage's log and replicas starting together.

use crate::support::{Running, command, run};

mod keys;
mod postgres;

#[tokio::test]
async fn fresh_start_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Running::start(command(dir.path()), dir.path());
    app.wait_ready().await;
    // Defaults: ./data with the database, a 0600 master key and the owner's key in owner.key.
    let data = dir.path().join("data");
    assert!(data.join("connect-manager.db").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(data.join("owner.key"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("cmk_"));
    let r = crate::support::http()
        .get(format!("{}/v1/users", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = app.stop();
    assert!(!log.contains(&key), "the key never reaches the log: {log}");

    // A second start on the same data: no new owner, no key printed.
    let mut again = Running::start(command(dir.path()), dir.path());
    again.wait_ready().await;
    let log = again.stop();
    assert!(!log.contains("cmk_"), "{log}");
}

#[test]
fn config_errors_stop_startup_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("DATABASE_URL", "mysql://db/x".into())],
            "DATABASE_URL",
        ),
        (
            vec![("CONNECT_MANAGER_BOOTSTRAP_KEY", "too-short".into())],
            "CONNECT_MANAGER_BOOTSTRAP_KEY",
        ),
        (
            vec![(
                "CONNECT_MANAGER_DATA_DIR",
                file.join("sub").display().to_string(),
            )],
            "CONNECT_MANAGER_DATA_DIR",
        ),
        (
            vec![("CONNECT_MANAGER_BIND", "not-an-address".into())],
            "CONNECT_MANAGER_BIND",
        ),
        (
            vec![("CONNECT_MANAGER_MASTER_KEY", "short".into())],
            "CONNECT_MANAGER_MASTER_KEY",
        ),
        (
            vec![("CONNECT_MANAGER_PUBLIC_URL", "ftp://x".into())],
            "CONNECT_MANAGER_PUBLIC_URL",
        ),
        (
            vec![(
                "CONNECT_MANAGER_BOOTSTRAP_KEY_FILE",
                dir.path().join("missing").display().to_string(),
            )],
            "CONNECT_MANAGER_BOOTSTRAP_KEY_FILE",
        ),
        (
            vec![(
                "CONNECT_MANAGER_TRUSTED_PROXIES",
                "10.0.0.0/8,10.1.0.0/33".into(),
            )],
            "CONNECT_MANAGER_TRUSTED_PROXIES",
        ),
        // Issue 18: scheduled rotation, below its minimum and nonsense.
        (
            vec![("CONNECT_MANAGER_KEY_ROTATION_INTERVAL", "30m".into())],
            "minimum of 1h",
        ),
        (
            vec![("CONNECT_MANAGER_KEY_ROTATION_INTERVAL", "monthly".into())],
            "CONNECT_MANAGER_KEY_ROTATION_INTERVAL",
        ),
        (
            vec![("CONNECT_MANAGER_KEY_ROTATION_INTERVAL", "0d".into())],
            "CONNECT_MANAGER_KEY_ROTATION_INTERVAL",
        ),
    ];
    for (env, mentions) in cases {
        let mut cmd = command(dir.path());
        cmd.arg("serve").env("CONNECT_MANAGER_BIND", "127.0.0.1:0");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(mentions), "{env:?}: {stderr}");
    }
}

/// Issue 12: the PostgreSQL connection settings and a multi-host `DATABASE_URL` that cannot
/// work are refused at start like every other setting: one line, exit code 2, and the URL's
/// password never shown.
#[test]
fn db_connection_settings_and_multi_host_url_errors_stop_startup_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "CONNECT_MANAGER_DB_STATEMENT_TIMEOUT",
            "45s",
            "request timeout",
        ),
        ("CONNECT_MANAGER_DB_STATEMENT_TIMEOUT", "20", "duration"),
        (
            "CONNECT_MANAGER_DB_KEEPALIVES_IDLE",
            "1500ms",
            "whole number of seconds",
        ),
        ("CONNECT_MANAGER_DB_KEEPALIVES_INTERVAL", "soon", "seconds"),
        ("CONNECT_MANAGER_DB_KEEPALIVES_COUNT", "-1", "number"),
        (
            "DATABASE_URL",
            "postgres://cm:hunter2@127.0.0.1:1,127.0.0.1:2/cm?target_session_attrs=standby",
            "target_session_attrs",
        ),
        (
            "DATABASE_URL",
            "postgres://cm:hunter2@127.0.0.1:1,[::1/cm",
            "IPv6",
        ),
    ];
    for (var, value, mentions) in cases {
        let mut cmd = command(dir.path());
        cmd.arg("serve")
            .env("CONNECT_MANAGER_BIND", "127.0.0.1:0")
            .env(var, value);
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(mentions),
            "{var}={value}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
}

/// Issue 12, item 8: two processes on one SQLite database would never hear of each other's
/// changes (a token revoked through one stays active on the other). A second `serve` on the same
/// data directory stops at start with exit code 2, naming the holder; the admin commands still run
/// beside the service; once the first stops, a new one starts.
#[tokio::test]
async fn second_serve_on_one_sqlite_data_dir_exits_2_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let key = "lock-test-key-lock-test-key-0123456789";
    let first = Running::ready_with_owner(dir.path(), key).await;
    let holder = format!(
        "pid {}, listening on {}",
        first.child.id(),
        first.base.trim_start_matches("http://")
    );
    let port = crate::support::free_port();
    let mut second = Running::start_on(
        command(dir.path()),
        dir.path(),
        &format!("127.0.0.1:{port}"),
        port,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a second serve on the same data directory kept running: {}",
            second.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let stderr = second.stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&holder), "the holder is named: {stderr}");
    assert!(stderr.contains("connect-manager.db"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    // The admin commands are short-lived and serve no cache: they still run beside it.
    let out = run(command(dir.path()).args(["admin", "rotate-key"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first one served on, undisturbed.
    let r = crate::support::http()
        .get(format!("{}/v1/users", first.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    first.stop();
    // Free again: a new one starts on the same data.
    let again = Running::ready_with_owner(dir.path(), key).await;
    again.stop();
}
