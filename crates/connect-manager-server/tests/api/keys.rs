//! Signing keys (T3, issue 12 item 6): a key's public half is its private half's, a row planted
//! without the master key never verifies a token, and keys retire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_core::model::Actor;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::{Claims, KeySet, generate_key, key_binding, seal_key};
use connect_manager_server::cache::KeyRing;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::harness::TestApp;

fn decode_part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A key an attacker made, sealed under their own master key, its row naming `kid`.
fn attacker_key(kid: &str) -> (connect_manager_core::token::SealedKey, KeySet) {
    let theirs = MasterKey::random();
    let made = generate_key(&theirs);
    let der = theirs
        .open(
            &key_binding(&made.kid, &made.x, &made.y),
            &made.sealed_private,
        )
        .unwrap();
    let key = seal_key(&theirs, kid, &der).unwrap();
    let set = KeySet::open(&theirs, std::slice::from_ref(&key)).unwrap();
    (key, set)
}

/// Someone with write access to the database but not the master key plants a signing key row
/// (the public half of their own key, with sealed garbage, or with a sealed blob copied from a
/// real key) and signs a token with the claims of a live one: it never introspects active, and
/// the planted key is never published.
async fn defect_a_planted_signing_key_never_verifies_a_forged_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("shared", "EVERYONE").await;
    let (server, secret) = app.server("web", &["shared"]).await;
    let server_id = server["id"].as_str().unwrap();
    let (_, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "shared"}]}),
        )
        .await;
    assert_eq!(
        app.introspect(server_id, &secret, &jwt).await["active"],
        true
    );
    let claims: Claims = serde_json::from_value(decode_part(&jwt, 1)).unwrap();
    let store = app.db.open().await;
    let real = store.signing_keys().await.unwrap().remove(0);
    let planted_kid = connect_manager_core::id::new_lower();
    let (key, forger) = attacker_key(&planted_kid);
    let forged = forger.sign(&claims).unwrap();
    for sealed_private in [
        key.sealed_private.clone(),
        MasterKey::random().seal(b"", b"garbage"),
        real.sealed_private.clone(),
    ] {
        let kid = connect_manager_core::id::new_lower();
        let (row, forger) = attacker_key(&kid);
        store
            .add_signing_key(
                &Actor::system("attacker"),
                &connect_manager_core::token::SealedKey {
                    sealed_private,
                    ..row
                },
            )
            .await
            .unwrap();
        // The planted key is the newest: the ring reloads (announced, or an unknown kid).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let forged = forger.sign(&claims).unwrap();
        assert_eq!(
            app.introspect(server_id, &secret, &forged).await,
            json!({"active": false}),
            "a token signed by a planted key"
        );
        let published = kids(&app.get("/.well-known/jwks.json").await.expect(200));
        assert!(!published.contains(&kid), "{published:?}");
    }
    assert_eq!(
        app.introspect(server_id, &secret, &forged).await,
        json!({"active": false})
    );
    // The real key still verifies, and still signs.
    assert_eq!(
        app.introspect(server_id, &secret, &jwt).await["active"],
        true
    );
    let (_, newer) = app
        .token(
            "web",
            json!({"name": "ci2", "vaults": [{"vault": "shared"}]}),
        )
        .await;
    assert_eq!(decode_part(&newer, 0)["kid"], real.kid.as_str());
    assert_eq!(
        app.introspect(server_id, &secret, &newer).await["active"],
        true
    );
    app.stop().await;
}

/// POST /v1/keys/{kid}/retire: the key leaves the JWKS and its tokens introspect inactive at
/// once (revoked), here and, on PostgreSQL, on another replica (one process serves a SQLite
/// database: a second is refused at start; `admin retire-key` beside a running SQLite service is
/// the binary test `t3_admin_retire_key_takes_a_key_out_of_a_running_service`); the key that
/// signs is refused (409), an unknown key is 404, and the retirement is audited.
async fn t3_retire_takes_a_key_out_of_the_jwks_and_its_tokens_stop_verifying(db: TestDb) {
    let postgres = db.backend == connect_manager_store::Backend::Postgres;
    let app = TestApp::spawn(db).await;
    let replica = if postgres {
        Some(app.replica().await)
    } else {
        None
    };
    let everywhere = || std::iter::once(&app).chain(replica.as_ref());
    app.vault("shared", "EVERYONE").await;
    let (server, secret) = app.server("web", &["shared"]).await;
    let server_id = server["id"].as_str().unwrap();
    let body = json!({"name": "ci", "vaults": [{"vault": "shared"}]});
    let (old_token, old_jwt) = app.token("web", body.clone()).await;
    let old_kid = decode_part(&old_jwt, 0)["kid"].as_str().unwrap().to_owned();
    let new_kid = app.post("/v1/keys/rotate", json!({})).await.expect(201)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, new_jwt) = app.token("web", body).await;
    for a in everywhere() {
        assert_eq!(
            a.introspect(server_id, &secret, &old_jwt).await["active"],
            true
        );
    }

    app.post(&format!("/v1/keys/{new_kid}/retire"), json!({}))
        .await
        .expect_error(409, "signing_key_in_use");
    app.post("/v1/keys/nosuchkey/retire", json!({}))
        .await
        .expect_error(404, "not_found");
    let retired = app
        .post(&format!("/v1/keys/{old_kid}/retire"), json!({}))
        .await
        .expect(200);
    assert_eq!(retired["kid"], old_kid.as_str());
    assert_eq!(retired["tokens_revoked"], 1);

    // At once on this replica.
    assert_eq!(
        app.introspect(server_id, &secret, &old_jwt).await,
        json!({"active": false})
    );
    assert_eq!(
        kids(&app.get("/.well-known/jwks.json").await.expect(200)),
        vec![new_kid.clone()]
    );
    let listed = app.all_items("/v1/connect/tokens?server=web").await;
    let old = listed.iter().find(|t| t["id"] == old_token["id"]).unwrap();
    assert_eq!(
        old["state"], "REVOKED",
        "listed as revoked, not silently dead"
    );
    // On the other replica: notified, so at once (allowing the notification's round trip).
    if let Some(replica) = &replica {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let answer = replica.introspect(server_id, &secret, &old_jwt).await;
            if answer == json!({"active": false}) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica still verifies it: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!kids(&replica.get("/.well-known/jwks.json").await.expect(200)).contains(&old_kid));
    }
    // The new key's tokens are untouched.
    for a in everywhere() {
        assert_eq!(
            a.introspect(server_id, &secret, &new_jwt).await["active"],
            true
        );
    }
    // Again: nothing changes.
    let again = app
        .post(&format!("/v1/keys/{old_kid}/retire"), json!({}))
        .await
        .expect(200);
    assert_eq!(again["tokens_revoked"], 0);
    assert!(
        app.audit_actions()
            .await
            .contains(&("signing_key.retire".into(), "success".into()))
    );
    if let Some(replica) = replica {
        replica.stop().await;
    }
    app.stop().await;
}

/// The ring's verified-signature cache forgets a retired key's tokens at once: a signature that
/// verified before the retirement never verifies after it.
async fn defect_a_retired_keys_verified_signatures_are_forgotten(db: TestDb) {
    let store = db.open().await;
    let master = MasterKey::random();
    let ring = Arc::new(KeyRing::load(&store, master).await.unwrap());
    store.subscribe(ring.clone());
    let claims = Claims {
        iss: "https://cm.test".into(),
        aud: vec![connect_manager_core::token::AUDIENCE.into()],
        sub: connect_manager_core::id::new_upper(),
        jti: connect_manager_core::id::new_lower(),
        iat: 1_700_000_000,
        exp: None,
        account_uuid: connect_manager_core::id::new_upper(),
        token: connect_manager_core::token::random_token_value(),
        features: vec!["vaultaccess".into()],
        vaults: vec![],
    };
    let jwt = ring
        .for_signing(&store)
        .await
        .unwrap()
        .sign(&claims)
        .unwrap();
    let old_kid = decode_part(&jwt, 0)["kid"].as_str().unwrap().to_owned();
    assert!(ring.verify(&store, &jwt).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2)).await;
    ring.rotate(&store, &Actor::system("test")).await.unwrap();
    assert!(ring.verify(&store, &jwt).await.unwrap().is_some(), "cached");
    // Retired through the store (as `admin retire-key` or another replica would): the ring
    // hears the announcement.
    store
        .retire_signing_key(&Actor::system("test"), &old_kid)
        .await
        .unwrap();
    assert!(
        ring.verify(&store, &jwt).await.unwrap().is_none(),
        "a retired key's signature still verified"
    );
}

backend_tests!(
    defect_a_planted_signing_key_never_verifies_a_forged_token,
    t3_retire_takes_a_key_out_of_the_jwks_and_its_tokens_stop_verifying,
    defect_a_retired_keys_verified_signatures_are_forgotten,
);
