//! An installation made by the release before issue 12 (fixtures made by that release's binary,
//! see tests/fixtures/upgrade-a2352db/README.md) starts under today's code with no step from the
//! operator and reads everything back: keys, servers, tokens and their signatures, grants,
//! audit. Its master key check is upgraded (Argon2id for a passphrase) and every signing key
//! re-sealed bound to its ID and public key, once.

use std::path::Path;

use connect_manager_core::credentials::{CredentialsFile, open as open_credentials};
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::support::{Running, command, http, run};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/upgrade-a2352db"
);
const PASSPHRASE: &str = "correct horse battery staple, fixture passphrase";

fn expected(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/{name}/expected.json")).unwrap(),
    )
    .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// (server ID, secret) from a credentials file as the fixture saved it.
fn basic(credentials: &Value) -> (String, String) {
    let file: CredentialsFile = serde_json::from_value(credentials.clone()).unwrap();
    let payload = open_credentials(&file).unwrap();
    (payload.server_id, payload.secret)
}

async fn call(app: &Running, key: &str, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = http()
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn introspect(app: &Running, credentials: &Value, jwt: &str) -> (u16, Value) {
    let (id, secret) = basic(credentials);
    let r = http()
        .post(format!("{}/v1/introspect", app.base))
        .basic_auth(id, Some(secret))
        .json(&json!({"token": jwt}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn sorted_keys(jwks: &Value) -> Vec<Value> {
    let mut keys = jwks["keys"].as_array().unwrap().clone();
    keys.sort_by_key(|k| k["kid"].as_str().unwrap().to_owned());
    keys
}

/// Everything the old release made reads back through today's service.
async fn reads_back(app: &Running, e: &Value) {
    use reqwest::Method;
    let owner = e["owner_key"].as_str().unwrap();
    let ann = e["ann"]["key"].as_str().unwrap();
    let token = |name: &str| e["tokens"][name]["jwt"].as_str().unwrap().to_owned();
    let vault = |name: &str| e["vaults"][name].as_str().unwrap().to_owned();

    // API keys: the owner's and a manager's.
    let (status, users) = call(app, owner, Method::GET, "/v1/users").await;
    assert_eq!(status, 200, "{users}");
    assert!(users.to_string().contains("ann@example.com"));
    let (status, servers) = call(app, ann, Method::GET, "/v1/connect/servers").await;
    assert_eq!(status, 200, "{servers}");
    let names: Vec<&str> = servers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alpha"], "Ann manages alpha through group Ops");

    // Servers and grants (beta's Staging grant was revoked; gamma was deleted).
    let grants = |s: &Value| -> Vec<String> {
        let mut v: Vec<String> = s["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let (_, alpha) = call(app, owner, Method::GET, "/v1/connect/servers/alpha").await;
    assert_eq!(grants(&alpha), vec!["Production", "Staging"]);
    let (_, beta) = call(app, owner, Method::GET, "/v1/connect/servers/beta").await;
    assert_eq!(grants(&beta), vec!["Production"]);
    assert_eq!(beta["tokens_version"], 2);
    let (status, _) = call(app, owner, Method::GET, "/v1/connect/servers/gamma").await;
    assert_eq!(status, 404);

    // Tokens and their signatures, with each server's credentials file.
    let alpha_file = &e["credentials"]["alpha"];
    let beta_file = &e["credentials"]["beta"];
    let (status, live) = introspect(app, alpha_file, &token("alpha-live")).await;
    assert_eq!(status, 200);
    assert_eq!(live["active"], true, "{live}");
    assert_eq!(live["jti"], e["tokens"]["alpha-live"]["id"]);
    let vaults = live["vaults"].as_array().unwrap();
    assert_eq!(vaults.len(), 2, "{live}");
    let acl = |id: &str| {
        vaults.iter().find(|v| v["id"] == id).unwrap()["acl"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(acl(&vault("Production")), 6, "read and write");
    assert_eq!(acl(&vault("Staging")), 2, "read only");
    let (_, expiring) = introspect(app, alpha_file, &token("alpha-expiring")).await;
    assert_eq!(expiring["active"], true, "{expiring}");
    assert!(expiring["exp"].is_i64());
    let (_, rotated) = introspect(app, alpha_file, &token("alpha-after-rotate")).await;
    assert_eq!(
        rotated["active"], true,
        "signed by the second key: {rotated}"
    );
    for dead in ["alpha-revoked", "alpha-expired"] {
        let (_, answer) = introspect(app, alpha_file, &token(dead)).await;
        assert_eq!(answer, json!({"active": false}), "{dead}");
    }
    // R6 held across the upgrade: beta's token lost Staging with the grant.
    let (_, beta_live) = introspect(app, beta_file, &token("beta-live")).await;
    assert_eq!(beta_live["active"], true, "{beta_live}");
    assert_eq!(
        beta_live["vaults"],
        json!([{"id": vault("Production"), "acl": live["vaults"].as_array().unwrap().iter().find(|v| v["id"] == vault("Production").as_str()).unwrap()["acl"]}])
    );
    // Rotated-away and deleted servers' credentials stay dead.
    for (file, jwt) in [
        (&e["rotated_away_beta_credentials"], token("beta-live")),
        (&e["credentials"]["gamma"], token("gamma-live")),
    ] {
        assert_eq!(introspect(app, file, &jwt).await.0, 401);
    }

    // The JWKS publishes the same live keys as the old release did.
    let (_, jwks) = call(app, owner, Method::GET, "/.well-known/jwks.json").await;
    assert_eq!(sorted_keys(&jwks), sorted_keys(&e["jwks"]));

    // The audit trail, whole, and the upgrade recorded in it.
    let (_, events) = call(app, owner, Method::GET, "/v1/audit/events?limit=1000").await;
    let ids: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for id in e["audit_event_ids"].as_array().unwrap() {
        assert!(ids.contains(&id.as_str().unwrap()), "audit event {id} lost");
    }
    assert!(events.to_string().contains("master_key.upgrade"));
}

/// New work after the upgrade: a token signed and verified, and the old keys retire.
async fn works_on(app: &Running, e: &Value) {
    use reqwest::Method;
    let owner = e["owner_key"].as_str().unwrap();
    let r = http()
        .post(format!("{}/v1/connect/servers/alpha/tokens", app.base))
        .bearer_auth(owner)
        .json(&json!({"name": "after-upgrade", "vaults": [{"vault": "Production"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let jwt = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, answer) = introspect(app, &e["credentials"]["alpha"], &jwt).await;
    assert_eq!(answer["active"], true);
    let first_kid = e["kids"][0].as_str().unwrap();
    let (status, retired) = call(
        app,
        owner,
        Method::POST,
        &format!("/v1/keys/{first_kid}/retire"),
    )
    .await;
    assert_eq!(status, 200, "{retired}");
    let (_, answer) = introspect(
        app,
        &e["credentials"]["alpha"],
        e["tokens"]["alpha-live"]["jwt"].as_str().unwrap(),
    )
    .await;
    assert_eq!(answer, json!({"active": false}), "its key was retired");
}

async fn settings(url: &str) -> (String, Option<String>, Vec<String>) {
    use sqlx::Connection;
    macro_rules! read {
        ($conn:expr) => {{
            let mut conn = $conn;
            let check: String =
                sqlx::query_scalar("SELECT value FROM settings WHERE key = 'master_key_check'")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            let kdf: Option<String> =
                sqlx::query_scalar("SELECT value FROM settings WHERE key = 'master_key_kdf'")
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
            let sealed: Vec<String> = sqlx::query_scalar("SELECT sealed_private FROM signing_keys")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            (check, kdf, sealed)
        }};
    }
    if url.starts_with("postgres") {
        read!(sqlx::PgConnection::connect(url).await.unwrap())
    } else {
        read!(sqlx::SqliteConnection::connect(url).await.unwrap())
    }
}

/// The at-rest formats after the upgrade: a v2 check, (for a passphrase) an Argon2id salt, every
/// signing key sealed in the bound format.
async fn upgraded(url: &str, passphrase: bool) {
    let (check, kdf, sealed) = settings(url).await;
    assert!(check.starts_with("v2:"), "{check}");
    assert_eq!(
        kdf.as_deref()
            .is_some_and(|k| k.starts_with("argon2id$m=65536,t=3,p=1$")),
        passphrase,
        "{kdf:?}"
    );
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|s| s.starts_with("v2.")), "{sealed:?}");
}

async fn legacy(url: &str) {
    let (check, kdf, sealed) = settings(url).await;
    assert_eq!(check.len(), 64, "the fixture is in the old format");
    assert!(kdf.is_none() && sealed.iter().all(|s| !s.starts_with("v2.")));
}

#[tokio::test]
async fn upgrade_from_a2352db_sqlite_with_the_generated_key_file_reads_everything_back() {
    let e = expected("sqlite-file-key");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&Path::new(FIXTURES).join("sqlite-file-key/data"), &data);
    let url = format!("sqlite://{}", data.join("connect-manager.db").display());
    legacy(&url).await;
    let start = || {
        let mut cmd = command(dir.path());
        cmd.env(
            "CONNECT_MANAGER_PUBLIC_URL",
            e["public_url"].as_str().unwrap(),
        );
        cmd
    };
    let mut app = Running::start(start(), dir.path());
    app.wait_ready().await;
    reads_back(&app, &e).await;
    let log = app.stop();
    assert!(log.contains("upgraded the master key check"), "{log}");
    upgraded(&url, false).await;
    // A second start: already upgraded, nothing to do, the same answers.
    let mut again = Running::start(start(), dir.path());
    again.wait_ready().await;
    reads_back(&again, &e).await;
    works_on(&again, &e).await;
    let log = again.stop();
    assert!(!log.contains("upgraded the master key check"), "{log}");
    assert!(
        !data.join("owner.key").exists(),
        "no new owner on an existing installation"
    );
}

/// Loads the PostgreSQL fixture (plain SQL from pg_dump) into `url`.
async fn load_dump(url: &str) {
    use sqlx::Connection;
    let dump = std::fs::read_to_string(format!("{FIXTURES}/postgres-passphrase/dump.sql")).unwrap();
    // psql's meta-commands (\restrict) are not SQL.
    let sql: String = dump
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn upgrade_from_a2352db_postgres_with_a_passphrase_reads_everything_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let e = expected("postgres-passphrase");
    load_dump(&db.url).await;
    legacy(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |key: &str| {
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", &db.url)
            .env("CONNECT_MANAGER_MASTER_KEY", key)
            .env(
                "CONNECT_MANAGER_PUBLIC_URL",
                e["public_url"].as_str().unwrap(),
            );
        cmd
    };
    // A wrong passphrase is refused before anything is changed.
    let out = run(start(&format!("{PASSPHRASE}!")).arg("serve"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key does not match"));
    legacy(&db.url).await;
    // Two replicas start at once: one upgrades, both serve.
    let mut replicas: Vec<Running> = (0..2)
        .map(|_| Running::start(start(PASSPHRASE), dir.path()))
        .collect();
    for r in &mut replicas {
        r.wait_ready().await;
    }
    for r in &replicas {
        reads_back(r, &e).await;
    }
    let logs: Vec<String> = replicas.into_iter().map(Running::stop).collect();
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("upgraded the master key check"))
            .count(),
        1,
        "one replica upgraded: {logs:?}"
    );
    upgraded(&db.url, true).await;
    let mut again = Running::start(start(PASSPHRASE), dir.path());
    again.wait_ready().await;
    works_on(&again, &e).await;
    again.stop();
    // After the upgrade the passphrase is still the key; another one is still refused.
    let out = run(start(&format!("{PASSPHRASE}!")).arg("serve"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
