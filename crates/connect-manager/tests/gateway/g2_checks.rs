//! G2: the gateway's checks on a token, driven through its `Verifier` against the real manager.
//! Local checks refuse what is forged or foreign without a call to the manager; the manager's
//! answer is cached at most max-staleness, asked once per token at a time, and the gateway fails
//! closed when no answer is young enough.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_gateway::manager::Manager;
use connect_manager_gateway::metrics::Metrics;
use connect_manager_gateway::verify::{Refusal, Verifier};

use crate::support::install_crypto;
use crate::support::manager::{Server, TestManager};

/// A verifier for `server`, as the gateway builds it from the server's credentials file.
fn verifier(server: &Server, max_staleness: Duration) -> (Arc<Verifier>, Arc<Metrics>) {
    install_crypto();
    let manager = Manager::from_credentials_file(&server.credentials).unwrap();
    let metrics = Arc::new(Metrics::default());
    let v = Verifier::new(Arc::new(manager), max_staleness, metrics.clone());
    (Arc::new(v), metrics)
}

fn calls(metrics: &Metrics) -> u64 {
    metrics
        .introspection_calls
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn hits(metrics: &Metrics) -> u64 {
    metrics
        .introspection_cache_hits
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn jwks_fetches(metrics: &Metrics) -> u64 {
    metrics
        .jwks_fetches
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// A manager with vaults `prod` and `shared`, a server `web` granted both.
async fn setup(m: &TestManager) -> (Server, String, String) {
    let prod = m.create_vault("prod").await;
    let shared = m.create_vault("shared").await;
    let web = m.create_server("web", &["prod", "shared"]).await;
    (web, prod, shared)
}

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

/// Polls `refused` until it holds; the time it took.
async fn lag_until(mut refused: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if refused().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still allowed 20 s later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_revoked_token_is_refused_within_max_staleness() {
    let max_staleness = Duration::from_secs(1);
    let bound = max_staleness + Duration::from_secs(1);
    let m = TestManager::start().await;
    let (web, prod, shared) = setup(&m).await;
    let spare = m.create_vault("spare").await;
    m.grant_vault("web", "spare").await;
    let (v, _metrics) = verifier(&web, max_staleness);

    // Token revoke.
    let t = m.create_token("web", "t", &[("prod", "read")], None).await;
    assert!(v.check(Some(&bearer(&t.jwt))).await.is_ok());
    m.revoke_token(&t.id, "web").await;
    let lag =
        lag_until(async || v.check(Some(&bearer(&t.jwt))).await == Err(Refusal::Unauthorized))
            .await;
    println!("token revoke refused after {lag:?} (max-staleness {max_staleness:?})");
    assert!(lag <= bound, "token revoke: {lag:?}");

    // Vault revoke: the token keeps its other vault, loses this one.
    let t = m
        .create_token(
            "web",
            "t2",
            &[("prod", "read"), ("shared", "read_write")],
            None,
        )
        .await;
    let access = v.check(Some(&bearer(&t.jwt))).await.unwrap();
    assert_eq!((access.bits(&prod), access.bits(&shared)), (48, 1008));
    m.revoke_vault("web", "shared").await;
    let lag = lag_until(async || {
        let a = v.check(Some(&bearer(&t.jwt))).await.unwrap();
        a.bits(&shared) == 0 && a.bits(&prod) == 48
    })
    .await;
    println!("vault revoke refused after {lag:?}");
    assert!(lag <= bound, "vault revoke: {lag:?}");

    // Vault delete.
    let t = m
        .create_token("web", "t3", &[("prod", "read"), ("spare", "read")], None)
        .await;
    assert_eq!(
        v.check(Some(&bearer(&t.jwt))).await.unwrap().bits(&spare),
        48
    );
    m.delete_vault(&spare).await;
    let lag =
        lag_until(async || v.check(Some(&bearer(&t.jwt))).await.unwrap().bits(&spare) == 0).await;
    println!("vault delete refused after {lag:?}");
    assert!(lag <= bound, "vault delete: {lag:?}");

    // Server delete: its credentials stop working; nothing is allowed after.
    let t = m.create_token("web", "t4", &[("prod", "read")], None).await;
    assert!(v.check(Some(&bearer(&t.jwt))).await.is_ok());
    m.delete_server("web").await;
    let lag = lag_until(async || v.check(Some(&bearer(&t.jwt))).await.is_err()).await;
    println!("server delete refused after {lag:?}");
    assert!(lag <= bound, "server delete: {lag:?}");
    for _ in 0..5 {
        assert!(v.check(Some(&bearer(&t.jwt))).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_cold_burst_of_one_token_makes_one_introspection() {
    let m = TestManager::start().await;
    let (web, prod, _) = setup(&m).await;
    let t = m.create_token("web", "t", &[("prod", "read")], None).await;
    let (v, metrics) = verifier(&web, Duration::from_secs(5));
    v.refresh_jwks().await.unwrap();
    let before = m.introspections().await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let v = v.clone();
        let header = bearer(&t.jwt);
        burst.spawn(async move { v.check(Some(&header)).await });
    }
    while let Some(r) = burst.join_next().await {
        assert_eq!(r.unwrap().unwrap().bits(&prod), 48);
    }
    assert_eq!(calls(&metrics), 1, "one call in flight per token");
    assert_eq!(hits(&metrics), 99);
    assert_eq!(
        m.introspections().await - before,
        1.0,
        "as the manager counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_inactive_answers_are_cached() {
    let m = TestManager::start().await;
    let (web, _, _) = setup(&m).await;
    let t = m.create_token("web", "t", &[("prod", "read")], None).await;
    m.revoke_token(&t.id, "web").await;
    let (v, metrics) = verifier(&web, Duration::from_secs(5));
    for _ in 0..20 {
        assert_eq!(
            v.check(Some(&bearer(&t.jwt))).await,
            Err(Refusal::Unauthorized)
        );
    }
    assert_eq!(
        calls(&metrics),
        1,
        "the inactive answer is kept like an active one"
    );
    assert_eq!(hits(&metrics), 19);
}

/// Manager stopped: answers younger than max-staleness still serve, then 503, never an allow;
/// the manager back: checks pass again without restarting anything.
async fn manager_outage_fails_closed_and_recovers(mut m: TestManager) {
    let max_staleness = Duration::from_secs(3);
    let (web, prod, _) = setup(&m).await;
    let t = m.create_token("web", "t", &[("prod", "read")], None).await;
    let cold = m
        .create_token("web", "cold", &[("prod", "read")], None)
        .await;
    let (v, _metrics) = verifier(&web, max_staleness);
    v.refresh_jwks().await.unwrap();
    let asked = Instant::now();
    assert!(v.check(Some(&bearer(&t.jwt))).await.is_ok());
    m.stop();
    let stopped = asked.elapsed();
    // Served from the cache while young enough (the bound is from before the question was sent).
    if stopped < max_staleness - Duration::from_millis(500) {
        assert_eq!(
            v.check(Some(&bearer(&t.jwt))).await.unwrap().bits(&prod),
            48
        );
    }
    assert_eq!(
        v.check(Some(&bearer(&cold.jwt))).await,
        Err(Refusal::Unavailable),
        "a token never seen: nothing to serve"
    );
    // Past max-staleness: never an allow.
    let mut unavailable_at = None;
    while asked.elapsed() < max_staleness + Duration::from_secs(2) {
        match v.check(Some(&bearer(&t.jwt))).await {
            Ok(_) => assert!(
                asked.elapsed() < max_staleness,
                "allowed {:?} after the last answer",
                asked.elapsed()
            ),
            Err(r) => {
                assert_eq!(r, Refusal::Unavailable);
                unavailable_at.get_or_insert(asked.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at = unavailable_at.expect("refused once stale");
    println!(
        "with the manager stopped: 503 from {at:?} after the last answer (max-staleness {max_staleness:?})"
    );
    assert!(at <= max_staleness + Duration::from_millis(500), "{at:?}");

    m.restart().await;
    assert_eq!(
        v.check(Some(&bearer(&t.jwt))).await.unwrap().bits(&prod),
        48
    );
    assert!(v.check(Some(&bearer(&cold.jwt))).await.is_ok());
    assert!(v.manager_reachable().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_manager_stopped_serves_young_answers_then_fails_closed_and_recovers() {
    manager_outage_fails_closed_and_recovers(TestManager::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_manager_stopped_fails_closed_and_recovers_on_postgres() {
    let Some(m) = TestManager::start_postgres().await else {
        return;
    };
    manager_outage_fails_closed_and_recovers(m).await;
}

/// Through the gateway binary (forward-auth, G5): a manager outage is a 503 once answers are
/// older than max-staleness, logged once per episode with its reason and never with the token;
/// the gateway recovers when the manager is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_manager_outage_is_logged_once_per_episode_never_with_the_token() {
    use crate::support::gateway::{Gateway, Settings};

    let mut m = TestManager::start().await;
    let (web, _, _) = setup(&m).await;
    let t = m.create_token("web", "t", &[("prod", "read")], None).await;
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(dir.path(), Settings::new(&web.credentials, None)).await;
    g.wait_ready().await;
    let client = crate::support::http();
    let decide = async || {
        client
            .get(g.url("/v1/forward-auth"))
            .header("Authorization", bearer(&t.jwt))
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", "/v1/vaults")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(decide().await, 200);
    let episode_lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains("the manager fails"))
            .count()
    };

    for episode in 1..=2 {
        m.stop();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..10 {
            assert_eq!(decide().await, 503, "fails closed (episode {episode})");
        }
        assert_eq!(
            episode_lines(&g.log()),
            episode,
            "once per episode: {}",
            g.log()
        );
        m.restart().await;
        let back = lag_until(async || decide().await == 200).await;
        println!("episode {episode}: allowed again {back:?} after the manager was back");
    }
    let log = g.stop();
    assert!(log.contains("the manager answers again"), "{log}");
    let signature = t.jwt.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "the token is never logged: {log}");
    let secret: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&web.credentials).unwrap()).unwrap();
    assert!(!log.contains(secret["uniqueKey"]["k"].as_str().unwrap()));
}
