//! The keys an operator holds: the master key (a different one is refused), `admin owner-key`,
//! `admin rotate-key` beside a running service, and `credentials show`.

use crate::support::{Running, command, run};

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
    let r = crate::support::http()
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
    let client = crate::support::http();
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
