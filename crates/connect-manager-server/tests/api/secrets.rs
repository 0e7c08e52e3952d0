//! Secrets never stored in clear: the raw rows of every table (and, on SQLite, the raw files) are
//! searched for every secret the scenario saw (API keys, server secrets, credentials files' keys,
//! the master key, the JWT and its `1password.com/token`, the signing key's private half).

use connect_manager_store::Backend;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;
use sqlx::{Connection, Row};

use crate::harness::{OWNER_KEY, TestApp};

/// Every value of every row of every table the migrations made (read from the catalog, so a new
/// table is never missed), as text; for SQLite also the raw bytes of the database and WAL files,
/// which would show a secret a row once held.
async fn dump(db: &TestDb) -> (String, usize) {
    let mut out = String::new();
    let tables;
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            tables = names.len();
            for t in &names {
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
            let file = db.url.trim_start_matches("sqlite://").to_owned();
            for path in [file.clone(), format!("{file}-wal")] {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            tables = names.len();
            for t in &names {
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
    (out, tables)
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
    // A console session (issue 17): its ID and its CSRF token are secrets too.
    let browser = crate::console::Browser::signed_in(&app, OWNER_KEY).await;
    let session = browser.cookie("__Host-cm_session").unwrap();
    let csrf = connect_manager_server::console::csrf_token_of(&session);
    let master_key = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    let mut secrets = vec![
        session,
        csrf,
        OWNER_KEY.to_owned(),
        user_key,
        master_key.trim().to_owned(),
        jwt.clone(),
        jwt.split('.').nth(2).unwrap().to_owned(),
        claims["1password.com/token"].as_str().unwrap().to_owned(),
    ];
    // The signing key's private half, in the encodings it could be stored in.
    let store = app.db.open().await;
    let master = connect_manager_core::secret::MasterKeyText::parse(&master_key)
        .unwrap()
        .derive(None)
        .unwrap();
    for key in store.signing_keys().await.unwrap() {
        let binding = connect_manager_core::token::key_binding(&key.kid, &key.x, &key.y);
        let der = master.open(&binding, &key.sealed_private).unwrap();
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
    let (dump, tables) = dump(&app.db).await;
    // settings, users, api_keys, groups, group_members, group_roles, vaults, servers,
    // server_vaults, group_servers, audit_events, signing_keys, tokens, token_vaults,
    // console_sessions, and sqlx's migrations table.
    assert!(tables >= 16, "{tables} tables");
    assert!(
        dump.contains(&connect_manager_server::console::session_hash_of(
            browser.cookie("__Host-cm_session").as_deref().unwrap()
        )),
        "the session's hash is there"
    );
    assert!(dump.contains("$argon2id$"), "the verifier is there");
    assert!(dump.len() > 1000, "the dump read the rows");
    for s in &secrets {
        assert!(s.len() >= 32);
        assert!(!dump.contains(s.as_str()), "a secret is stored in clear");
    }
    app.stop().await;
}

backend_tests!(database_holds_no_secret_in_clear);
