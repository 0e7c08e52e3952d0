//! G2's local checks: a forged or foreign token is refused without an introspection; an
//! unknown `kid` refetches the manager's JWKS, at most once a second.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_gateway::verify::Refusal;

use super::{bearer, calls, jwks_fetches, setup, verifier};
use crate::support::manager::TestManager;

/// The same JWT with its header replaced (the signature no longer matches it).
fn with_header(jwt: &str, header: &str) -> String {
    let mut parts = jwt.splitn(3, '.');
    let (_, payload, sig) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    format!("{}.{payload}.{sig}", URL_SAFE_NO_PAD.encode(header))
}

fn kid_of(jwt: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .decode(jwt.split('.').next().unwrap())
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&header).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_forged_and_foreign_tokens_are_refused_without_an_introspection() {
    let mut m = TestManager::start().await;
    let (web, _prod, _shared) = setup(&m).await;
    let api = m.create_server("api", &["prod"]).await;
    let good = m
        .create_token("web", "good", &[("prod", "read")], None)
        .await;
    let other_server = m
        .create_token("api", "api", &[("prod", "read")], None)
        .await;
    let kid = kid_of(&good.jwt);

    // The same manager's key, announcing another public URL: a token whose `iss` is not ours.
    m.restart_with_public_url(Some("https://elsewhere.example"))
        .await;
    let foreign_iss = m
        .create_token("web", "elsewhere", &[("prod", "read")], None)
        .await;
    assert_eq!(kid_of(&foreign_iss.jwt), kid, "same key, other issuer");
    m.restart_with_public_url(None).await;

    // Another installation's token for a server of the same name: a kid this manager never had.
    let other = TestManager::start().await;
    setup(&other).await;
    let foreign_kid = other
        .create_token("web", "good", &[("prod", "read")], None)
        .await;

    // Made last: it expires 4 s from now.
    let short = m
        .create_token("web", "short", &[("prod", "read")], Some("4s"))
        .await;
    let (v, metrics) = verifier(&web, Duration::from_secs(1));
    assert!(v.check(Some(&bearer(&good.jwt))).await.is_ok());
    assert!(v.check(Some(&bearer(&short.jwt))).await.is_ok());
    assert_eq!(calls(&metrics), 2);
    let manager_calls = m.introspections().await;

    let payload = good.jwt.split('.').nth(1).unwrap();
    let hs256 = with_header(
        &good.jwt,
        &format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#),
    );
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#))
    );
    let rs256 = with_header(
        &good.jwt,
        &format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#),
    );
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["1password.com/vts"][0]["a"] = serde_json::json!(1008);
    let tampered = {
        let mut parts: Vec<String> = good.jwt.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts.join(".")
    };
    // Let the short token expire.
    let short_claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(short.jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let exp =
        std::time::UNIX_EPOCH + Duration::from_secs(short_claims["exp"].as_u64().expect("exp"));
    if let Ok(wait) = exp.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }
    let cases = [
        ("no header", None),
        ("not bearer", Some(format!("Basic {}", good.jwt))),
        ("garbage", Some(bearer("not.a.jwt"))),
        ("alg none", Some(bearer(&none))),
        ("alg HS256", Some(bearer(&hs256))),
        ("alg RS256", Some(bearer(&rs256))),
        ("tampered claims", Some(bearer(&tampered))),
        ("foreign kid", Some(bearer(&foreign_kid.jwt))),
        ("wrong iss", Some(bearer(&foreign_iss.jwt))),
        ("another server's token", Some(bearer(&other_server.jwt))),
        ("expired", Some(bearer(&short.jwt))),
    ];
    for (what, header) in &cases {
        assert_eq!(
            v.check(header.as_deref()).await,
            Err(Refusal::Unauthorized),
            "{what}"
        );
    }
    assert_eq!(calls(&metrics), 2, "no introspection for any of them");
    assert_eq!(
        m.introspections().await,
        manager_calls,
        "the manager was not asked"
    );
    // The other server's token is good for its own gateway: it was refused for its sub only.
    let (api_v, _) = verifier(&api, Duration::from_secs(1));
    assert!(api_v.check(Some(&bearer(&other_server.jwt))).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_unknown_kid_refetches_the_jwks_at_most_once_a_second() {
    let m = TestManager::start().await;
    let (web, _, _) = setup(&m).await;
    let good = m
        .create_token("web", "good", &[("prod", "read")], None)
        .await;
    let other = TestManager::start().await;
    setup(&other).await;
    let foreign = other
        .create_token("web", "x", &[("prod", "read")], None)
        .await;

    let (v, metrics) = verifier(&web, Duration::from_secs(1));
    assert!(!v.jwks_loaded());
    assert!(v.check(Some(&bearer(&good.jwt))).await.is_ok());
    assert!(v.jwks_loaded());
    assert_eq!(jwks_fetches(&metrics), 1, "loaded for the first token");
    // 250 checks of a kid the manager never had, one every 10 ms, each on its own.
    let start = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..250u64 {
        let (v, header) = (v.clone(), bearer(&foreign.jwt));
        flood.spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            let t = Instant::now();
            assert_eq!(v.check(Some(&header)).await, Err(Refusal::Unauthorized));
            t.elapsed()
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(took) = flood.join_next().await {
        slowest = slowest.max(took.unwrap());
    }
    let elapsed = start.elapsed();
    let fetched = jwks_fetches(&metrics) - 1;
    println!(
        "250 checks of an unknown kid over {elapsed:?}: {fetched} JWKS fetches, the slowest refused after {slowest:?}"
    );
    assert!(
        fetched >= 1 && fetched as f64 <= elapsed.as_secs_f64().ceil() + 1.0,
        "at most once a second: {fetched} fetches in {elapsed:?}"
    );
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    assert_eq!(calls(&metrics), 1, "no introspection for an unknown kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_a_signing_key_rotated_in_just_after_a_jwks_fetch_is_learned_without_a_refusal() {
    let m = TestManager::start().await;
    let (web, _, _) = setup(&m).await;
    let old = m
        .create_token("web", "old", &[("prod", "read")], None)
        .await;
    let (v, metrics) = verifier(&web, Duration::from_secs(1));
    assert!(v.check(Some(&bearer(&old.jwt))).await.is_ok());
    let (status, rotated) = m
        .owner(reqwest::Method::POST, "/v1/keys/rotate", None)
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new = m
        .create_token("web", "new", &[("prod", "read")], None)
        .await;
    assert_ne!(kid_of(&new.jwt), kid_of(&old.jwt));
    let t = Instant::now();
    assert!(
        v.check(Some(&bearer(&new.jwt))).await.is_ok(),
        "the new key is fetched a second after the last fetch, not refused"
    );
    println!(
        "a token of a key rotated in just after the JWKS fetch passed after {:?}",
        t.elapsed()
    );
    assert_eq!(jwks_fetches(&metrics), 2);
    assert!(
        v.check(Some(&bearer(&old.jwt))).await.is_ok(),
        "the old key still verifies"
    );
}
