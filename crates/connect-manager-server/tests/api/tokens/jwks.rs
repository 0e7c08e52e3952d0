//! `GET /.well-known/jwks.json` and key rotation (T3); a token verified by an independent JWT
//! library against it (T1).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use super::{decode_part, setup, vault_id};
use crate::harness::TestApp;

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

backend_tests!(
    t3_jwks_publishes_live_keys_and_rotation_switches_signing,
    t1_token_verifies_with_pyjwt_against_the_jwks,
);
