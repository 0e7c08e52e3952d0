//! G2's live answers: the manager's answer about a token, cached at most max-staleness and
//! asked once per token at a time; the gateway fails closed when no answer is young enough and
//! recovers when the manager is back.

use std::time::{Duration, Instant};

use connect_manager_gateway::verify::Refusal;

use super::{bearer, calls, hits, setup, verifier};
use crate::support::manager::TestManager;

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
    // The answer is stamped when its question was sent: between `asked` and now.
    let answered = asked.elapsed();
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
        // The verifier decides between the call and its return; on a loaded machine the return
        // can come well after. An allow is wrong for a check begun when even the latest possible
        // stamp of the answer (its return) is older than max-staleness.
        let began = asked.elapsed();
        match v.check(Some(&bearer(&t.jwt))).await {
            Ok(_) => assert!(
                began < answered + max_staleness,
                "allowed a check begun {began:?} after the question (max-staleness {max_staleness:?})"
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
