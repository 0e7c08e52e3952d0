//! Every refusal of the exchange as a named test (issue 18): each answers an RFC 6749 §5.2
//! error saying what did not match, never echoing the token; none issues a token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{TestIssuer, exchange, exchange_form, expect_refusal, now, setup};
use crate::harness::{TestApp, items};

/// No token was issued.
async fn none_issued(app: &TestApp) {
    let tokens = items(&app.get("/v1/connect/tokens").await.expect(200));
    assert!(tokens.is_empty(), "{tokens:?}");
}

async fn wrong_audience_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let token = issuer.token_with(|c| c["aud"] = json!(["sts.amazonaws.com", "other"]));
    let why = expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "aud",
    );
    assert!(why.contains("deploy"), "names the policy: {why}");
    assert!(!why.contains(&token), "never the token");
    none_issued(&app).await;
    app.stop().await;
}

async fn expired_token_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    // Expired 61 s ago: past the 60 s of skew allowed.
    let token = issuer.token_with(|c| {
        c["exp"] = json!(now() - 61);
        c["iat"] = json!(now() - 400);
        c["nbf"] = json!(now() - 400);
    });
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "expired",
    );
    // Within the skew: accepted.
    let token = issuer.token_with(|c| c["exp"] = json!(now() - 30));
    exchange(&app, &token, "web").await.expect(200);
    app.stop().await;
}

async fn nbf_in_the_future_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let token = issuer.token_with(|c| c["nbf"] = json!(now() + 120));
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "nbf",
    );
    let token = issuer.token_with(|c| c["iat"] = json!(now() + 120));
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "iat",
    );
    none_issued(&app).await;
    app.stop().await;
}

async fn alg_none_is_refused_before_any_key_is_fetched(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": issuer.kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(issuer.claims().to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        expect_refusal(
            exchange(&app, &token, "web").await,
            400,
            "invalid_grant",
            "algorithm",
        );
    }
    assert!(issuer.fetched().is_empty(), "{:?}", issuer.fetched());
    none_issued(&app).await;
    app.stop().await;
}

async fn hs256_signed_with_the_issuers_public_key_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    // Algorithm confusion: HMAC keyed with what the JWKS publishes.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(issuer.kid.clone());
    for secret in [
        issuer.jwk.to_string(),
        issuer.jwk["x"].as_str().unwrap().to_owned(),
    ] {
        let token = jsonwebtoken::encode(
            &header,
            &issuer.claims(),
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap();
        expect_refusal(
            exchange(&app, &token, "web").await,
            400,
            "invalid_grant",
            "algorithm",
        );
    }
    assert!(issuer.fetched().is_empty(), "refused before any key lookup");
    none_issued(&app).await;
    app.stop().await;
}

async fn a_signature_by_another_key_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    let impostor = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let mut claims = issuer.claims();
    claims["iss"] = json!(issuer.url);
    let token = impostor.sign_with_kid(&claims, &issuer.kid);
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "signature",
    );
    assert!(impostor.fetched().is_empty());
    none_issued(&app).await;
    app.stop().await;
}

async fn unknown_kid_flood_fetches_the_jwks_at_most_once_a_minute(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    // A flood of made-up kids, all at once, before any key was fetched: one fetch between them.
    let flood = (0..40).map(|i| {
        let token = issuer.sign_with_kid(&issuer.claims(), &format!("made-up-{i}"));
        let app = &app;
        async move { exchange(app, &token, "web").await }
    });
    for reply in futures_util::future::join_all(flood).await {
        expect_refusal(reply, 400, "invalid_grant", "kid");
    }
    assert_eq!(issuer.fetched(), ["discovery", "jwks"]);
    // The real kid is in the set fetched: no fetch needed.
    exchange(&app, &issuer.sign(&issuer.claims()), "web")
        .await
        .expect(200);
    // More made-up kids within the minute: nothing fetched.
    for i in 0..10 {
        let token = issuer.sign_with_kid(&issuer.claims(), &format!("again-{i}"));
        expect_refusal(
            exchange(&app, &token, "web").await,
            400,
            "invalid_grant",
            "kid",
        );
    }
    assert_eq!(issuer.fetched(), ["discovery", "jwks"]);
    app.stop().await;
}

async fn untrusted_issuer_is_refused_and_nothing_is_fetched(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let trusted = TestIssuer::start().await;
    let stranger = TestIssuer::start().await;
    setup(&app, &trusted).await;
    let token = stranger.sign(&stranger.claims());
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "not trusted",
    );
    // `iss` is matched exactly: a trailing slash is another issuer.
    let mut claims = stranger.claims();
    claims["iss"] = json!(format!("{}/", trusted.url));
    expect_refusal(
        exchange(&app, &stranger.sign(&claims), "web").await,
        400,
        "invalid_grant",
        "not trusted",
    );
    assert!(stranger.fetched().is_empty(), "{:?}", stranger.fetched());
    assert!(trusted.fetched().is_empty(), "{:?}", trusted.fetched());
    none_issued(&app).await;
    app.stop().await;
}

async fn subject_mismatch_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let token = issuer.token_with(|c| c["sub"] = json!("repo:evil/api:environment:production"));
    let why = expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "sub",
    );
    assert!(
        !why.contains("evil"),
        "the claim's value is not echoed: {why}"
    );
    none_issued(&app).await;
    app.stop().await;
}

async fn claim_mismatch_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let token = issuer.token_with(|c| c["environment"] = json!("staging-secret-value"));
    let why = expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "claim environment",
    );
    assert!(!why.contains("staging-secret-value"), "{why}");
    let token = issuer.token_with(|c| {
        c.as_object_mut().unwrap().remove("environment");
    });
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "claim environment",
    );
    let token = issuer.token_with(|c| c["environment"] = json!({"name": "production"}));
    expect_refusal(
        exchange(&app, &token, "web").await,
        400,
        "invalid_grant",
        "claim environment",
    );
    none_issued(&app).await;
    app.stop().await;
}

async fn revoked_vault_grant_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    let (server_id, secret) = setup(&app, &issuer).await;
    let body = exchange(&app, &issuer.sign(&issuer.claims()), "web")
        .await
        .expect(200);
    let jwt = body["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect(&server_id, &secret, jwt).await["vaults"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.delete("/v1/connect/servers/web/vaults/prod")
        .await
        .expect(200);
    // R6: the issued token reaches nothing any more.
    let seen = app.introspect(&server_id, &secret, jwt).await;
    assert_eq!(seen["vaults"], json!([]), "{seen}");
    // And the policy issues nothing while its vault is not granted.
    expect_refusal(
        exchange(&app, &issuer.sign(&issuer.claims()), "web").await,
        400,
        "invalid_grant",
        "no longer granted",
    );
    assert_eq!(
        items(&app.get("/v1/connect/tokens").await.expect(200)).len(),
        1
    );
    app.stop().await;
}

async fn one_megabyte_subject_token_is_refused_early(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let huge = format!("eyJ{}", "A".repeat(1024 * 1024));
    let reply = exchange(&app, &huge, "web").await;
    expect_refusal(reply, 413, "invalid_request", "KiB");
    // Over the subject token's limit, under the form's.
    let big = issuer.token_with(|c| c["padding"] = json!("x".repeat(20 * 1024)));
    expect_refusal(
        exchange(&app, &big, "web").await,
        400,
        "invalid_request",
        "subject_token is over 16 KiB",
    );
    assert!(issuer.fetched().is_empty());
    none_issued(&app).await;
    app.stop().await;
}

async fn unknown_server_is_an_invalid_target(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    expect_refusal(
        exchange(&app, &issuer.sign(&issuer.claims()), "nope").await,
        400,
        "invalid_target",
        "resource",
    );
    // A server without a policy for the issuer.
    app.server("other", &["prod"]).await;
    expect_refusal(
        exchange(&app, &issuer.sign(&issuer.claims()), "other").await,
        400,
        "invalid_grant",
        "no trust policy",
    );
    none_issued(&app).await;
    app.stop().await;
}

async fn malformed_requests_are_invalid_requests(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let token = issuer.sign(&issuer.claims());
    let grant = (
        "grant_type",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    );
    let jwt_type = ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt");
    expect_refusal(
        exchange_form(&app, &[("grant_type", "client_credentials")]).await,
        400,
        "unsupported_grant_type",
        "grant_type",
    );
    expect_refusal(
        exchange_form(&app, &[grant, jwt_type, ("resource", "web")]).await,
        400,
        "invalid_request",
        "subject_token is missing",
    );
    expect_refusal(
        exchange_form(
            &app,
            &[
                grant,
                ("subject_token", &token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
                ("resource", "web"),
            ],
        )
        .await,
        400,
        "invalid_request",
        "subject_token_type",
    );
    expect_refusal(
        exchange_form(&app, &[grant, ("subject_token", &token), jwt_type]).await,
        400,
        "invalid_request",
        "resource",
    );
    expect_refusal(
        exchange_form(
            &app,
            &[
                grant,
                ("subject_token", "not-a-jwt"),
                jwt_type,
                ("resource", "web"),
            ],
        )
        .await,
        400,
        "invalid_request",
        "not a JWT",
    );
    // JSON is not the form RFC 8693 speaks.
    let reply = app
        .send(
            reqwest::Method::POST,
            "/v1/token-exchange",
            None,
            Some(json!({"grant_type": grant.1, "subject_token": token})),
        )
        .await;
    expect_refusal(reply, 400, "invalid_request", "x-www-form-urlencoded");
    none_issued(&app).await;
    app.stop().await;
}

async fn failed_exchanges_are_rate_limited_per_address(db: TestDb) {
    let app = TestApp::spawn_limited(db, 3).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    for i in 0..3 {
        let token = issuer.token_with(|c| c["sub"] = json!(format!("repo:evil/x{i}")));
        expect_refusal(
            exchange(&app, &token, "web").await,
            400,
            "invalid_grant",
            "sub",
        );
    }
    let reply = exchange(&app, &issuer.sign(&issuer.claims()), "web").await;
    assert!(reply.headers.contains_key("retry-after"));
    expect_refusal(reply, 429, "invalid_request", "too many failed exchanges");
    // Another address is not held back.
    let other = TestApp::client_from("127.0.0.2");
    let body = serde_urlencoded::to_string([
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", &issuer.sign(&issuer.claims())),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ("resource", "web"),
    ])
    .unwrap();
    let status = other
        .post(format!("{}/v1/token-exchange", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    app.stop().await;
}

backend_tests!(
    wrong_audience_is_refused,
    expired_token_is_refused,
    nbf_in_the_future_is_refused,
    alg_none_is_refused_before_any_key_is_fetched,
    hs256_signed_with_the_issuers_public_key_is_refused,
    a_signature_by_another_key_is_refused,
    unknown_kid_flood_fetches_the_jwks_at_most_once_a_minute,
    untrusted_issuer_is_refused_and_nothing_is_fetched,
    subject_mismatch_is_refused,
    claim_mismatch_is_refused,
    revoked_vault_grant_is_refused,
    one_megabyte_subject_token_is_refused_early,
    unknown_server_is_an_invalid_target,
    malformed_requests_are_invalid_requests,
    failed_exchanges_are_rate_limited_per_address,
);
