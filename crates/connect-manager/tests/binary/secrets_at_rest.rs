//! Secrets at rest and at start-up, through the built binary (issue 12, items 6, 9 and 10): the
//! first owner's key goes to a 0600 file, never to the log; a signing key row planted in the
//! database stops start-up; `admin retire-key`; the database password from a file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::{generate_key, key_binding, seal_key};
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::support::{Running, command, http, run};

/// SQLite in `dir`'s default data directory, and PostgreSQL when the tests have one.
async fn backends(dir: &Path) -> Vec<(Option<TestDb>, std::process::Command)> {
    let mut out = vec![(None, command(dir))];
    if let Some(db) = TestDb::postgres().await {
        let mut cmd = command(dir);
        cmd.env("DATABASE_URL", &db.url)
            .env("CONNECT_MANAGER_MASTER_KEY", MasterKey::generate_text());
        out.push((Some(db), cmd));
    }
    out
}

fn clone(cmd: &std::process::Command) -> std::process::Command {
    let mut c = command(Path::new(cmd.get_current_dir().unwrap()));
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// Item 10: with no bootstrap key, the first owner's key is written to `owner.key` (0600) in the
/// data directory, on both backends; the log (what a container's log shipper keeps) says where,
/// never what. A second start writes nothing.
#[tokio::test]
async fn defect_first_owner_key_goes_to_owner_key_0600_never_to_the_log() {
    let base = tempfile::tempdir().unwrap();
    for (db, cmd) in backends(base.path()).await {
        let dir = base.path().join(if db.is_some() { "pg" } else { "sqlite" });
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = clone(&cmd);
        cmd.current_dir(&dir);
        let mut app = Running::start(clone(&cmd), &dir);
        app.wait_ready().await;
        let file = dir.join("data/owner.key");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        assert!(key.starts_with("cmk_"));
        let r = http()
            .get(format!("{}/v1/users", app.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the file's key is the owner's");
        let log = app.stop();
        assert!(!log.contains(&key), "the key reached the log: {log}");
        assert!(!log.contains("cmk_"), "{log}");
        assert!(log.contains("owner.key"), "the log says where it is: {log}");
        // A second start: no new owner, the file untouched, nothing said.
        let mut again = Running::start(clone(&cmd), &dir);
        again.wait_ready().await;
        let log = again.stop();
        assert!(!log.contains("created the first owner"), "{log}");
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
        drop(db);
    }
}

/// Waits for a `serve` that must refuse to start; returns its stderr.
async fn refused(mut app: Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = app.child.try_wait().unwrap() {
            assert!(!status.success(), "{}", app.stderr());
            return app.stderr();
        }
        assert!(Instant::now() < deadline, "serve started: {}", app.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 6: someone with write access to the database but not the master key plants a signing
/// key row (their own public key; sealed garbage, or a real key's sealed private half): the next
/// start refuses, with one line naming the key, on both backends.
#[tokio::test]
async fn defect_a_planted_signing_key_row_stops_start_up() {
    let base = tempfile::tempdir().unwrap();
    for (db, cmd) in backends(base.path()).await {
        let dir = base.path().join(if db.is_some() { "pg" } else { "sqlite" });
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = clone(&cmd);
        cmd.current_dir(&dir).env(
            "CONNECT_MANAGER_BOOTSTRAP_KEY",
            "planted-test-key-planted-test-key-01",
        );
        let mut app = Running::start(clone(&cmd), &dir);
        app.wait_ready().await;
        app.stop();
        let url = match &db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.join("data/connect-manager.db").display()),
        };
        let store = connect_manager_store::open(&url).await.unwrap();
        let real = store.signing_keys().await.unwrap().remove(0);
        let theirs = MasterKey::random();
        let made = generate_key(&theirs);
        let der = theirs
            .open(
                &key_binding(&made.kid, &made.x, &made.y),
                &made.sealed_private,
            )
            .unwrap();
        for (i, sealed_private) in [
            MasterKey::random().seal(b"", b"garbage"),
            real.sealed_private.clone(),
        ]
        .into_iter()
        .enumerate()
        {
            let kid = connect_manager_core::id::new_lower();
            let planted = connect_manager_core::token::SealedKey {
                sealed_private,
                ..seal_key(&theirs, &kid, &der).unwrap()
            };
            store
                .add_signing_key(&connect_manager_core::model::Actor::system("x"), &planted)
                .await
                .unwrap();
            let stderr = refused(Running::start(clone(&cmd), &dir)).await;
            let last = stderr.trim().lines().last().unwrap_or_default();
            assert!(
                last.contains("refusing to start") && last.contains(&kid),
                "case {i}: {stderr}"
            );
            // The operator removes the row (after finding out who could write it): starts again.
            let ok = store
                .retire_signing_key(&connect_manager_core::model::Actor::system("x"), &kid)
                .await;
            assert!(
                ok.is_err(),
                "the planted key is the newest: it cannot be retired"
            );
            match &db {
                Some(db) => {
                    use sqlx::Connection;
                    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                    sqlx::query("DELETE FROM audit_events WHERE target_id = $1")
                        .bind(&kid)
                        .execute(&mut c)
                        .await
                        .unwrap();
                    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                        .bind(&kid)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                None => {
                    use sqlx::Connection;
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                        .bind(&kid)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
            }
            let mut app = Running::start(clone(&cmd), &dir);
            app.wait_ready().await;
            app.stop();
        }
        store.close().await;
    }
}

/// T3: `admin retire-key` beside a running SQLite service: the key leaves the JWKS and its
/// tokens stop verifying within a second; the key that signs is refused (rotate first).
#[tokio::test]
async fn t3_admin_retire_key_takes_a_key_out_of_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let key = "retire-test-key-retire-test-key-0123";
    let app = Running::ready_with_owner(dir.path(), key).await;
    let client = http();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{}{path}", app.base))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    post("/v1/vaults", json!({"name": "v", "type": "EVERYONE"}))
        .await
        .unwrap();
    let server: Value = post(
        "/v1/connect/servers",
        json!({"name": "web", "vaults": ["v"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let file: connect_manager_core::credentials::CredentialsFile =
        serde_json::from_value(server["credentials"].clone()).unwrap();
    let creds = connect_manager_core::credentials::open(&file).unwrap();
    let token: Value = post(
        "/v1/connect/servers/web/tokens",
        json!({"name": "t", "vaults": [{"vault": "v"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let jwt = token["token"].as_str().unwrap();
    let introspect = || async {
        client
            .post(format!("{}/v1/introspect", app.base))
            .basic_auth(&creds.server_id, Some(&creds.secret))
            .json(&json!({"token": jwt}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(introspect().await["active"], true);
    let jwks = || async {
        client
            .get(format!("{}/.well-known/jwks.json", app.base))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let old_kid = jwks().await["keys"][0]["kid"].as_str().unwrap().to_owned();

    let out = run(command(dir.path()).args(["admin", "retire-key", &old_kid]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rotate first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run(command(dir.path()).args(["admin", "rotate-key"]))
            .status
            .success()
    );
    let out = run(command(dir.path()).args(["admin", "retire-key", &old_kid]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), old_kid);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let answer = introspect().await;
        let published = jwks().await.to_string();
        if answer == json!({"active": false}) && !published.contains(&old_kid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still verifies: {answer} {published}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = run(command(dir.path()).args(["admin", "retire-key", "nosuchkey"]));
    assert_eq!(out.status.code(), Some(1));
    app.stop();
}

/// Compose passes the PostgreSQL password as a file: DATABASE_PASSWORD_FILE fills in the password
/// of a DATABASE_URL written without one; with no PostgreSQL URL it is a configuration error.
#[tokio::test]
async fn database_password_file_supplies_the_postgres_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-password");
    std::fs::write(&file, "s3cret/with:odd@chars\n").unwrap();
    let out = run(command(dir.path())
        .arg("serve")
        .env("CONNECT_MANAGER_BIND", "127.0.0.1:0")
        .env("DATABASE_PASSWORD_FILE", &file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_PASSWORD_FILE"), "{stderr}");
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("DATABASE_PASSWORD_FILE", &file)
        .env("CONNECT_MANAGER_MASTER_KEY", MasterKey::generate_text());
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let log = app.stop();
    assert!(!log.contains("s3cret"), "{log}");
}
