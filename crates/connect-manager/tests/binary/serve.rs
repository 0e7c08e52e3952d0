//! The built binary, run as an operator would: start-up on a fresh machine, configuration errors,
//! recovery keys, and several replicas starting at once on one PostgreSQL.

use connect_manager_store::testing::TestDb;

use crate::common::{Running, command, run};

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
    let r = crate::common::http()
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

#[tokio::test]
async fn a_different_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("CONNECT_MANAGER_MASTER_KEY", "a".repeat(40));
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    app.stop();
    let mut cmd = command(dir.path());
    cmd.arg("serve")
        .env("CONNECT_MANAGER_MASTER_KEY", "b".repeat(40));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key does not match"));
}

#[tokio::test]
async fn a1_admin_owner_key_mints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing to recover yet: a clear error, no database created.
    let out = run(command(dir.path()).args(["admin", "owner-key"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!dir.path().join("data/connect-manager.db").exists());

    let mut cmd = command(dir.path());
    cmd.env(
        "CONNECT_MANAGER_BOOTSTRAP_KEY",
        "lost-key-lost-key-lost-key-lost-key",
    );
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    // Beside the running service (SQLite WAL allows it).
    let out = run(command(dir.path()).args(["admin", "owner-key"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("cmk_"));
    let r = crate::common::http()
        .get(format!("{}/v1/audit/events", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the new key is an owner's");
    let events: serde_json::Value = r.json().await.unwrap();
    assert!(events.to_string().contains("system:admin-owner-key"));
    app.stop();
}

/// T3: `admin rotate-key` beside a running SQLite service: the service signs with the new key
/// from the next token on and publishes it.
#[tokio::test]
async fn t3_admin_rotate_key_takes_effect_on_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let key = "rotate-test-key-rotate-test-key-0123";
    let app = Running::ready_with_owner(dir.path(), key).await;
    let client = crate::common::http();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", app.base))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    post(
        "/v1/vaults",
        serde_json::json!({"name": "v", "type": "EVERYONE"}),
    )
    .await
    .unwrap();
    post(
        "/v1/connect/servers",
        serde_json::json!({"name": "web", "vaults": ["v"]}),
    )
    .await
    .unwrap();
    let kid_of = |jwt: &str| -> String {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let token = |name: &'static str| {
        post(
            "/v1/connect/servers/web/tokens",
            serde_json::json!({"name": name, "vaults": [{"vault": "v"}]}),
        )
    };
    let first: serde_json::Value = token("before").await.unwrap().json().await.unwrap();
    let out = run(command(dir.path()).args(["admin", "rotate-key"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_ne!(kid_of(first["token"].as_str().unwrap()), new_kid);
    // The running service compares with the database's newest key at most once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let next: serde_json::Value = token("after").await.unwrap().json().await.unwrap();
        if kid_of(next["token"].as_str().unwrap()) == new_kid {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never signed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let jwks: serde_json::Value = client
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    app.stop();
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
    let port = crate::common::free_port();
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
    let r = crate::common::http()
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

/// Issue 12, item 14: during a database outage the log says so once, then counts the 503s once
/// per interval, instead of an ERROR line per request (hundreds a second under load). The
/// transitions are logged once each. The outage: a TCP proxy between the service and PostgreSQL,
/// cut, then restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_logs_a_count_per_interval_not_an_error_per_503() {
    use connect_manager_store::testing::TcpProxy;
    use std::time::{Duration, Instant};
    const REQUESTS: usize = 1_000;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (mut proxy, url) = TcpProxy::to_postgres(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let key = "outage-key-outage-key-outage-key-0123";
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &url)
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", key)
        .env("NO_COLOR", "1");
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let client = crate::common::http();
    let get = move |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let errors = |log: &str| log.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors(&app.stderr()), 0, "{}", app.stderr());

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(format!("{}/readyz", app.base)).await != 503 {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (get, url) = (get.clone(), format!("{}/v1/users", app.base));
            tokio::spawn(async move {
                for _ in 0..REQUESTS / 8 {
                    assert_eq!(get(url.clone()).await, 503);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    proxy.restore().await;
    app.wait_ready().await;
    // The count of the interval follows within it.
    let interval = connect_manager_server::unavailable_log::INTERVAL;
    let deadline = Instant::now() + interval + Duration::from_secs(5);
    while !app.stderr().contains("more requests in the last") {
        assert!(Instant::now() < deadline, "no count line: {}", app.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = app.stop();
    let error_lines: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    // The first 503 (a /readyz probe) at once, then a count per interval: one or two intervals.
    assert!(
        (2..=3).contains(&error_lines.len()),
        "{}",
        error_lines.join("\n")
    );
    assert!(error_lines[0].contains("database unavailable: answering 503"));
    let counted: usize = error_lines[1..]
        .iter()
        .map(|l| {
            l.split("answered 503 to ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("a count: {l}"))
        })
        .sum();
    assert!(counted >= REQUESTS, "{}", error_lines.join("\n"));
    assert_eq!(log.matches("database down").count(), 1, "{log}");
    assert_eq!(log.matches("database back").count(), 1, "{log}");
    eprintln!(
        "{} 503s in the outage: {} ERROR lines",
        counted + 1,
        error_lines.len()
    );
}

#[test]
fn credentials_show_hides_the_secret_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let payload = connect_manager_core_payload();
    let file = connect_manager_core::credentials::seal(&payload);
    std::fs::write(
        dir.path().join("1password-credentials.json"),
        serde_json::to_string(&file).unwrap(),
    )
    .unwrap();
    let out = run(command(dir.path()).args(["credentials", "show"]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        stdout.contains(&payload.server_id) && !stdout.contains(&payload.secret),
        "{stdout}"
    );
    let out = run(command(dir.path()).args(["credentials", "show", "--reveal"]));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains(&payload.secret)
    );
    std::fs::write(dir.path().join("bad.json"), "{}").unwrap();
    let out = run(command(dir.path()).args(["credentials", "show", "bad.json"]));
    assert_eq!(out.status.code(), Some(1));
}

fn connect_manager_core_payload() -> connect_manager_core::credentials::CredentialsPayload {
    connect_manager_core::credentials::CredentialsPayload {
        server_id: connect_manager_core::id::new_upper(),
        secret: connect_manager_core::secret::new_server_secret(),
        url: "http://localhost:8080".into(),
    }
}

/// S1/S2: several replicas starting at once on one fresh PostgreSQL database apply each migration
/// once and make one owner.
#[tokio::test]
async fn postgres_replicas_starting_together_migrate_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Running> = (0..3)
        .map(|_| {
            let mut cmd = command(dir.path());
            cmd.env("DATABASE_URL", &db.url)
                .env("CONNECT_MANAGER_MASTER_KEY", "m".repeat(40));
            Running::start(cmd, dir.path())
        })
        .collect();
    for r in &mut replicas {
        r.wait_ready().await;
    }
    let logs: Vec<String> = replicas.into_iter().map(Running::stop).collect();
    let created = logs
        .iter()
        .filter(|l| l.contains("created the first owner"))
        .count();
    assert_eq!(created, 1, "exactly one replica created the first owner");
    assert!(logs.iter().all(|l| !l.contains("cmk_")), "{logs:?}");
    assert!(dir.path().join("data/owner.key").exists());
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(applied as usize, files);
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owners, 1);
}
