//! Secrets never stored in clear: the raw rows of every table are searched for every secret the
//! scenario saw (API keys, server secrets, credentials files' keys, the master key).

use connect_manager_store::Backend;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;
use sqlx::{Connection, Row};

use crate::harness::{OWNER_KEY, TestApp};

const TABLES: &[&str] = &[
    "settings",
    "users",
    "api_keys",
    "groups",
    "group_members",
    "group_roles",
    "vaults",
    "servers",
    "server_vaults",
    "group_servers",
    "audit_events",
];

/// Every value of every row, as text.
async fn dump(db: &TestDb) -> String {
    let mut out = String::new();
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for t in TABLES {
                for row in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
                {
                    for i in 0..row.columns().len() {
                        let v: Option<String> = row.try_get(i).ok().flatten().or_else(|| {
                            row.try_get::<Option<i64>, _>(i)
                                .ok()
                                .flatten()
                                .map(|n| n.to_string())
                        });
                        out.push_str(&v.unwrap_or_default());
                        out.push('\n');
                    }
                }
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            for t in TABLES {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text FROM {t} t"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for row in rows {
                    out.push_str(&row.get::<String, _>(0));
                    out.push('\n');
                }
            }
        }
    }
    out
}

async fn database_holds_no_secret_in_clear(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Shared", "EVERYONE").await;
    let created = app
        .post(
            "/v1/connect/servers",
            json!({"name": "web", "vaults": ["shared"]}),
        )
        .await
        .expect(201);
    let rotated = app
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    let (_, user_key) = app.user_with("ann", None).await;
    let token = app
        .post(
            "/v1/connect/servers/web/tokens",
            json!({"name": "ci", "vaults": [{"vault": "shared"}]}),
        )
        .await
        .expect(201);
    let jwt = token["token"].as_str().unwrap().to_owned();
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let master_key = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    let mut secrets = vec![
        OWNER_KEY.to_owned(),
        user_key,
        master_key.trim().to_owned(),
        jwt.clone(),
        jwt.split('.').nth(2).unwrap().to_owned(),
        claims["1password.com/token"].as_str().unwrap().to_owned(),
    ];
    // The signing key's private half, in the encodings it could be stored in.
    let store = app.db.open().await;
    let master = connect_manager_core::secret::MasterKey::from_text(&master_key).unwrap();
    for key in store.signing_keys().await.unwrap() {
        let der = master.open(&key.sealed_private).unwrap();
        use base64::Engine;
        secrets.push(base64::engine::general_purpose::STANDARD.encode(&der));
        secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der));
        // And as hex.
        secrets.push(connect_manager_core::secret::hex(&der));
    }
    for body in [&created, &rotated] {
        let creds = &body["credentials"];
        secrets.push(crate::harness::secret_of(creds));
        secrets.push(creds["uniqueKey"]["k"].as_str().unwrap().to_owned());
        secrets.push(creds["encCredentials"]["data"].as_str().unwrap().to_owned());
    }
    let dump = dump(&app.db).await;
    assert!(dump.contains("$argon2id$"), "the verifier is there");
    assert!(dump.len() > 1000, "the dump read the rows");
    for s in &secrets {
        assert!(s.len() >= 32);
        assert!(!dump.contains(s.as_str()), "a secret is stored in clear");
    }
    app.stop().await;
}

backend_tests!(database_holds_no_secret_in_clear);
