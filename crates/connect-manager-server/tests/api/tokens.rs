//! Tokens over HTTP: create, list, edit, revoke, introspect, JWKS, key rotation (R7–R10, R12,
//! T1–T4), and two replicas on one PostgreSQL.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestApp, ids, items, secret_of};

fn decode_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A server `web` granted vaults `a` and `b`; returns (server id, secret).
async fn setup(app: &TestApp) -> (String, String) {
    app.vault("a", "USER_CREATED").await;
    app.vault("b", "EVERYONE").await;
    let (s, secret) = app.server("web", &["a", "b"]).await;
    (s["id"].as_str().unwrap().to_owned(), secret)
}

async fn vault_id(app: &TestApp, name: &str) -> String {
    app.get(&format!("/v1/vaults/{name}")).await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn t1_token_claims_mirror_connect(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, _) = setup(&app).await;
    let (a, b) = (vault_id(&app, "a").await, vault_id(&app, "b").await);
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a"}, {"vault": "b", "access": "read"}], "expires_in": "1w2d"}),
        )
        .await;
    // The token object (SPEC "Resources").
    assert_eq!(token["name"], "ci");
    assert_eq!(token["state"], "ACTIVE");
    assert_eq!(token["issuer"], "https://cm.example.test");
    assert_eq!(token["audience"], json!(["com.1password.connect"]));
    assert_eq!(token["features"], json!(["vaultaccess"]));
    assert_eq!(token["integration_id"], server_id.as_str());
    assert_eq!(token["expired"], false);
    assert!(token["revoked_at"].is_null());
    assert!(token["expires_at"].is_string());
    let acl_of = |id: &str| {
        token["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .unwrap()["acl"]
            .clone()
    };
    assert_eq!(acl_of(&a).as_array().unwrap().len(), 6);
    assert_eq!(acl_of(&b), json!(["view_items", "view_and_copy_passwords"]));
    // The JWT (T1).
    let header = decode_part(&jwt, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].is_string());
    let claims = decode_part(&jwt, 1);
    assert_eq!(claims["iss"], "https://cm.example.test");
    assert_eq!(claims["aud"], json!(["com.1password.connect"]));
    assert_eq!(claims["sub"], server_id.as_str());
    assert_eq!(claims["jti"], token["id"]);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 9 * 86_400);
    let auuid = claims["1password.com/auuid"].as_str().unwrap();
    assert!(
        auuid.len() == 26
            && auuid
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(claims["1password.com/token"].as_str().unwrap().len(), 32);
    assert_eq!(claims["1password.com/fts"], json!(["vaultaccess"]));
    let mut vts = claims["1password.com/vts"].as_array().unwrap().clone();
    vts.sort_by_key(|v| v["u"].as_str().unwrap().to_owned());
    let mut want = vec![json!({"u": a, "a": 1008}), json!({"u": b, "a": 48})];
    want.sort_by_key(|v| v["u"].as_str().unwrap().to_owned());
    assert_eq!(vts, want);
    // No expiry: no exp claim, expires_at null.
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "forever", "vaults": [{"vault": "a", "access": "write"}]}),
        )
        .await;
    assert!(decode_part(&jwt, 1).get("exp").is_none());
    assert!(token["expires_at"].is_null());
    assert_eq!(decode_part(&jwt, 1)["1password.com/vts"][0]["a"], 960);
    // The same account on every token; a fresh token value each time.
    assert_eq!(decode_part(&jwt, 1)["1password.com/auuid"], auuid);
    app.stop().await;
}

async fn r7_bad_token_requests_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.vault("ungranted", "EVERYONE").await;
    app.vault("mine", "PERSONAL").await;
    let post = |body: Value| app.post("/v1/connect/servers/web/tokens", body);
    for bad in ["0", "-5m", "5x", "99999999w", "", "0s", "1.5h"] {
        let body = post(json!({"name": "t", "vaults": [{"vault": "a"}], "expires_in": bad}))
            .await
            .expect_error(422, "invalid_field");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("1w2d"),
            "{body}"
        );
    }
    post(json!({"name": "t", "vaults": []}))
        .await
        .expect_error(422, "invalid_field");
    post(json!({"name": "", "vaults": [{"vault": "a"}]}))
        .await
        .expect_error(422, "invalid_field");
    post(json!({"name": "t", "vaults": [{"vault": "ungranted"}]}))
        .await
        .expect_error(422, "vault_not_granted");
    post(json!({"name": "t", "vaults": [{"vault": "mine"}]}))
        .await
        .expect_error(422, "vault_not_grantable");
    post(json!({"name": "t", "vaults": [{"vault": "ghost"}]}))
        .await
        .expect_error(404, "not_found");
    post(json!({"name": "t", "vaults": [{"vault": "a", "access": "admin"}]}))
        .await
        .expect_error(400, "invalid_body");
    post(json!({"name": "t"}))
        .await
        .expect_error(400, "invalid_body");
    app.post(
        "/v1/connect/servers/ghost/tokens",
        json!({"name": "t", "vaults": [{"vault": "a"}]}),
    )
    .await
    .expect_error(404, "not_found");
    assert!(
        items(&app.get("/v1/connect/tokens").await.expect(200)).is_empty(),
        "nothing written"
    );
    app.stop().await;
}

async fn r8_revoked_token_is_never_valid_again(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (token, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let id = token["id"].as_str().unwrap();
    let active = app.introspect(&server_id, &secret, &jwt).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["jti"], id);
    assert_eq!(active["sub"], server_id.as_str());
    assert_eq!(active["name"], "ci");
    let revoked = app
        .delete(&format!("/v1/connect/tokens/{id}"))
        .await
        .expect(200);
    assert_eq!(revoked["state"], "REVOKED");
    assert!(revoked["revoked_at"].is_string());
    // At once, on the replica that revoked (its cache had the token).
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await,
        json!({"active": false})
    );
    let again = app.delete("/v1/connect/tokens/ci").await.expect(200);
    assert_eq!(
        again["revoked_at"], revoked["revoked_at"],
        "revoking twice changes nothing"
    );
    let list = app.get("/v1/connect/tokens").await.expect(200);
    assert_eq!(items(&list)[0]["state"], "REVOKED", "still listed");
    app.stop().await;
}

async fn r9_token_edit_renames_only(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a", "access": "read"}]}),
        )
        .await;
    let id = token["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &format!("/v1/connect/tokens/{id}"),
            json!({"name": "deploy"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "deploy");
    assert_eq!(renamed["vaults"], token["vaults"]);
    app.patch(
        "/v1/connect/tokens/deploy",
        json!({"name": "x", "vaults": []}),
    )
    .await
    .expect_error(400, "invalid_body");
    app.patch("/v1/connect/tokens/deploy", json!({"expires_in": "1d"}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["name"],
        "deploy",
        "the cache saw the rename"
    );
    app.stop().await;
}

async fn r10_token_list_is_newest_first_paged_and_filtered(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.server("api", &["a"]).await;
    let mut made = Vec::new();
    for (server, name) in [
        ("web", "t1"),
        ("api", "t2"),
        ("web", "t3"),
        ("api", "t4"),
        ("web", "t5"),
    ] {
        let (t, _) = app
            .token(server, json!({"name": name, "vaults": [{"vault": "a"}]}))
            .await;
        made.push(t["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    assert_eq!(ids(&app.get("/v1/connect/tokens").await.expect(200)), made);
    let web: Vec<_> = items(&app.get("/v1/connect/tokens?server=WEB").await.expect(200))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(web, ["t5", "t3", "t1"]);
    let seen: Vec<String> = app
        .all_items("/v1/connect/tokens?limit=2")
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, made);
    app.get("/v1/connect/tokens?server=ghost")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn r1_token_names_may_repeat_and_are_then_ambiguous(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.server("api", &["a"]).await;
    let (one, _) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let (two, _) = app
        .token("api", json!({"name": "CI", "vaults": [{"vault": "a"}]}))
        .await;
    let body = app
        .delete("/v1/connect/tokens/ci")
        .await
        .expect_error(409, "ambiguous");
    let mut candidates: Vec<_> = body["error"]["details"]["candidates"]
        .as_array()
        .unwrap()
        .clone();
    candidates.sort_by_key(|c| c.as_str().unwrap().to_owned());
    let mut want = vec![one["id"].clone(), two["id"].clone()];
    want.sort_by_key(|c| c.as_str().unwrap().to_owned());
    assert_eq!(candidates, want);
    assert!(body["error"]["message"].as_str().unwrap().contains("ID"));
    let narrowed = app
        .delete("/v1/connect/tokens/ci?server=api")
        .await
        .expect(200);
    assert_eq!(narrowed["id"], two["id"]);
    app.stop().await;
}

async fn r12_expired_token_stays_active_and_is_never_valid(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (_, jwt) = app
        .token(
            "web",
            json!({"name": "short", "vaults": [{"vault": "a"}], "expires_in": "1s"}),
        )
        .await;
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["active"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await,
        json!({"active": false})
    );
    let t = &items(&app.get("/v1/connect/tokens").await.expect(200))[0];
    assert_eq!(t["state"], "ACTIVE");
    assert_eq!(t["expired"], true);
    app.stop().await;
}

async fn r4_server_delete_revokes_its_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, _) = setup(&app).await;
    app.token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    app.token("web", json!({"name": "cd", "vaults": [{"vault": "b"}]}))
        .await;
    app.delete("/v1/connect/servers/web").await.expect(204);
    assert!(items(&app.get("/v1/connect/tokens").await.expect(200)).is_empty());
    let kept = items(
        &app.get(&format!("/v1/connect/tokens?server={server_id}"))
            .await
            .expect(200),
    );
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .all(|t| t["state"] == "REVOKED" && t["revoked_at"].is_string())
    );
    app.stop().await;
}

async fn r6_introspection_uses_the_live_grants(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (a, b) = (vault_id(&app, "a").await, vault_id(&app, "b").await);
    let (_, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a"}, {"vault": "b", "access": "read"}]}),
        )
        .await;
    let vaults = |v: &Value| {
        let mut ids: Vec<String> = v["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        both
    );
    app.delete("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    let now = app.introspect(&server_id, &secret, &jwt).await;
    assert_eq!(now["active"], true);
    assert_eq!(vaults(&now), vec![b.clone()]);
    assert_eq!(
        now["vaults"][0]["acl"],
        json!(["view_items", "view_and_copy_passwords"])
    );
    app.put("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        both,
        "scope ∩ grants, not a copy"
    );
    app.delete("/v1/vaults/b").await.expect(204);
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        vec![a]
    );
    app.stop().await;
}

async fn t4_introspection_says_inactive_and_nothing_more(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (other, other_secret) = app.server("other", &["a"]).await;
    let other_id = other["id"].as_str().unwrap();
    let (_, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let inactive = json!({"active": false});
    // Another server learns nothing about this server's token.
    assert_eq!(
        app.introspect(other_id, &other_secret, &jwt).await,
        inactive
    );
    // Garbage, alg none, a foreign key, a tampered claim.
    let payload = jwt.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let master = connect_manager_core::secret::MasterKey::random();
    let foreign_key = connect_manager_core::token::generate_key(&master);
    let foreign_set = connect_manager_core::token::KeySet::open(&master, &[foreign_key]).unwrap();
    let claims: connect_manager_core::token::Claims =
        serde_json::from_value(decode_part(&jwt, 1)).unwrap();
    let foreign = foreign_set.sign(&claims).unwrap();
    let mut tampered_claims = decode_part(&jwt, 1);
    tampered_claims["1password.com/vts"][0]["a"] = json!(1008);
    tampered_claims["sub"] = json!(other_id);
    let parts: Vec<&str> = jwt.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    for bad in [
        "",
        "garbage",
        "a.b.c",
        none.as_str(),
        foreign.as_str(),
        tampered.as_str(),
        &"x".repeat(10_000),
    ] {
        assert_eq!(
            app.introspect(&server_id, &secret, bad).await,
            inactive,
            "{bad:.40}"
        );
    }
    // Bad server credentials are 401, not an answer.
    app.post_as_server("/v1/introspect", &server_id, "wrong", json!({"token": jwt}))
        .await
        .expect_error(401, "unauthorized");
    app.send(
        Method::POST,
        "/v1/introspect",
        None,
        Some(json!({"token": jwt})),
    )
    .await
    .expect_error(401, "unauthorized");
    app.post_as_server("/v1/introspect", &server_id, &secret, json!({"jwt": jwt}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["active"],
        true
    );
    app.stop().await;
}

async fn c3_credentials_rotation_keeps_tokens_valid(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, old) = setup(&app).await;
    let (_, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    assert_eq!(app.introspect(&server_id, &old, &jwt).await["active"], true);
    let rotated = app
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    let new = secret_of(&rotated["credentials"]);
    app.post_as_server("/v1/introspect", &server_id, &old, json!({"token": jwt}))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(app.introspect(&server_id, &new, &jwt).await["active"], true);
    app.stop().await;
}

async fn t3_jwks_publishes_live_keys_and_rotation_switches_signing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let r = app.get_as(None, "/.well-known/jwks.json").await;
    assert!(
        r.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let jwks = r.expect(200);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let first = jwks["keys"][0].clone();
    assert_eq!(first["kty"], "EC");
    assert_eq!(first["crv"], "P-256");
    assert_eq!(first["alg"], "ES256");
    assert_eq!(first["use"], "sig");
    let (old_token, old_jwt) = app
        .token("web", json!({"name": "old", "vaults": [{"vault": "a"}]}))
        .await;
    assert_eq!(decode_part(&old_jwt, 0)["kid"], first["kid"]);

    let (_, manager) = app.user_with("manager", Some("manager")).await;
    app.as_user(&manager, Method::POST, "/v1/keys/rotate")
        .await
        .expect_error(403, "forbidden");
    let rotated = app.post("/v1/keys/rotate", json!({})).await.expect(201);
    let (_, new_jwt) = app
        .token("web", json!({"name": "new", "vaults": [{"vault": "a"}]}))
        .await;
    assert_eq!(decode_part(&new_jwt, 0)["kid"], rotated["kid"]);
    // Both verify; both published while the old key still verifies a live token.
    assert_eq!(
        app.introspect(&server_id, &secret, &old_jwt).await["active"],
        true
    );
    assert_eq!(
        app.introspect(&server_id, &secret, &new_jwt).await["active"],
        true
    );
    let kids = |j: Value| -> Vec<Value> {
        j["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect()
    };
    let published = kids(app.get_as(None, "/.well-known/jwks.json").await.expect(200));
    assert!(published.contains(&first["kid"]) && published.contains(&rotated["kid"]));
    // Once no live token needs the old key, it leaves the JWKS.
    app.delete(&format!(
        "/v1/connect/tokens/{}",
        old_token["id"].as_str().unwrap()
    ))
    .await
    .expect(200);
    let published = kids(app.get_as(None, "/.well-known/jwks.json").await.expect(200));
    assert_eq!(published, vec![rotated["kid"].clone()]);
    app.stop().await;
}

/// The token verifies with an independent JWT library (Python PyJWT + cryptography) against our
/// JWKS, claim by claim. Needs python3 with PyJWT (`requirements-ci.txt`); in CI it must run.
async fn t1_token_verifies_with_pyjwt_against_the_jwks(db: TestDb) {
    let available = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but python3 with PyJWT is missing (requirements-ci.txt)"
        );
        eprintln!(
            "skipped: python3 with PyJWT is not installed (pip install -r requirements-ci.txt)"
        );
        return;
    }
    let app = TestApp::spawn(db).await;
    let (server_id, _) = setup(&app).await;
    let (token, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}, {"vault": "b", "access": "read"}], "expires_in": "30d"}))
        .await;
    let (a, b) = (vault_id(&app, "a").await, vault_id(&app, "b").await);
    let jwks = app.get_as(None, "/.well-known/jwks.json").await.expect(200);
    let claims = decode_part(&jwt, 1);
    let expected = json!({
        "iss": "https://cm.example.test",
        "sub": server_id,
        "jti": token["id"],
        "auuid": claims["1password.com/auuid"],
        "expires": true,
        "vts": [{"u": a, "a": 1008}, {"u": b, "a": 48}],
    });
    let dir = app.db.dir().to_owned();
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    std::fs::write(dir.join("token.jwt"), &jwt).unwrap();
    std::fs::write(dir.join("expected.json"), expected.to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/verify_token.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.join("jwks.json"))
        .arg(dir.join("token.jwt"))
        .arg(dir.join("expected.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT refused the token:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

/// S2 on PostgreSQL (SQLite serves one process): two replicas on one database. What one does,
/// the other sees within a second, though its caches were warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_s2_replicas_see_each_others_changes_within_a_second() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (server_id, secret) = setup(&a).await;
    let (t1, jwt1) = a
        .token(
            "web",
            json!({"name": "one", "vaults": [{"vault": "a"}, {"vault": "b"}]}),
        )
        .await;
    let (_, jwt2) = a
        .token("web", json!({"name": "two", "vaults": [{"vault": "a"}]}))
        .await;
    // Warm B's caches.
    assert_eq!(
        b.introspect(&server_id, &secret, &jwt1).await["active"],
        true
    );
    assert_eq!(
        b.introspect(&server_id, &secret, &jwt2).await["active"],
        true
    );

    async fn within_a_second(check: impl AsyncFn() -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if check().await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the other replica did not see the change within 1 s");
    }

    // Revocation.
    a.delete(&format!(
        "/v1/connect/tokens/{}",
        t1["id"].as_str().unwrap()
    ))
    .await
    .expect(200);
    within_a_second(async || b.introspect(&server_id, &secret, &jwt1).await["active"] == false)
        .await;
    // Vault revoke.
    a.delete("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    within_a_second(async || b.introspect(&server_id, &secret, &jwt2).await["vaults"] == json!([]))
        .await;
    // Key rotation: B's next token carries the new kid.
    let kid = a.post("/v1/keys/rotate", json!({})).await.expect(201)["kid"].clone();
    within_a_second(async || {
        let (_, jwt) = b
            .token("web", json!({"name": "b", "vaults": [{"vault": "b"}]}))
            .await;
        decode_part(&jwt, 0)["kid"] == kid
    })
    .await;
    // Credentials rotation: the old secret stops working on B.
    let rotated = a
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    let new_secret = secret_of(&rotated["credentials"]);
    within_a_second(async || {
        b.post_as_server(
            "/v1/introspect",
            &server_id,
            &secret,
            json!({"token": jwt2}),
        )
        .await
        .status
            == 401
    })
    .await;
    assert_eq!(
        b.introspect(&server_id, &new_secret, &jwt2).await["active"],
        true
    );
    // Server delete.
    a.delete("/v1/connect/servers/web").await.expect(204);
    within_a_second(async || {
        b.post_as_server(
            "/v1/introspect",
            &server_id,
            &new_secret,
            json!({"token": jwt2}),
        )
        .await
        .status
            == 401
    })
    .await;
    b.stop().await;
    a.stop().await;
}

async fn metrics_count_requests_by_route_tokens_and_introspections(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (t, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    app.introspect(&server_id, &secret, &jwt).await;
    app.delete(&format!("/v1/connect/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .expect(200);
    app.delete(&format!("/v1/connect/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .expect(200);
    app.introspect(&server_id, &secret, &jwt).await;
    app.get(&format!("/v1/connect/servers/{server_id}"))
        .await
        .expect(200);
    app.get_as(Some("cmk_bad"), "/v1/vaults").await.expect(401);
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for line in [
        "connect_manager_tokens_issued_total 1",
        "connect_manager_tokens_revoked_total 1",
        "connect_manager_introspections_total{result=\"active\"} 1",
        "connect_manager_introspections_total{result=\"inactive\"} 1",
        "connect_manager_auth_failures_total{kind=\"api_key\"} 1",
        "connect_manager_http_requests_total{method=\"GET\",route=\"/v1/connect/servers/{server}\",status=\"200\"} 1",
        "connect_manager_http_requests_total{method=\"GET\",route=\"/v1/vaults\",status=\"401\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(text.contains("connect_manager_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/introspect\",status=\"200\",le=\"+Inf\"} 2"));
    assert!(text.contains("connect_manager_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("connect_manager_build_info{version="));
    // Route labels are templates, never raw paths with IDs or names.
    assert!(
        !text.contains(&server_id) && !text.contains("/web"),
        "a raw path in a label"
    );
    app.stop().await;
}

backend_tests!(
    metrics_count_requests_by_route_tokens_and_introspections,
    t1_token_claims_mirror_connect,
    r7_bad_token_requests_are_refused,
    r8_revoked_token_is_never_valid_again,
    r9_token_edit_renames_only,
    r10_token_list_is_newest_first_paged_and_filtered,
    r1_token_names_may_repeat_and_are_then_ambiguous,
    r12_expired_token_stays_active_and_is_never_valid,
    r4_server_delete_revokes_its_tokens,
    r6_introspection_uses_the_live_grants,
    t4_introspection_says_inactive_and_nothing_more,
    c3_credentials_rotation_keeps_tokens_valid,
    t3_jwks_publishes_live_keys_and_rotation_switches_signing,
    t1_token_verifies_with_pyjwt_against_the_jwks,
);
