//! G2's checks against a stand-in manager: the local checks cost no introspection, the
//! effective access comes from the live answer, the cache (single flight, max-staleness, the
//! bound and the sweep) and failing closed.

use std::sync::atomic::{AtomicU16, AtomicU64};

use connect_manager_core::access::VaultAcl;
use connect_manager_core::api::tokens::Introspection;
use connect_manager_core::credentials::CredentialsPayload;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::{AUDIENCE, Claims, Jwks, generate_key, random_token_value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cache::Slot;
use super::*;

#[test]
fn g2_only_a_bearer_authorization_carries_a_token() {
    assert_eq!(bearer(Some("Bearer a.b.c")), Some("a.b.c"));
    assert_eq!(bearer(Some("bearer  a.b.c ")), Some("a.b.c"));
    assert_eq!(bearer(Some("Basic a.b.c")), None);
    assert_eq!(bearer(Some("Bearer ")), None);
    assert_eq!(bearer(Some("a.b.c")), None);
    assert_eq!(bearer(None), None);
    let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(bearer(Some(&long)), None);
}

/// A stand-in manager: serves a JWKS, answers introspections with `status` and `answer`,
/// counts them. One request per connection.
struct Fake {
    url: String,
    introspections: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    answer: Arc<Mutex<Introspection>>,
    /// How long an introspection takes to answer, in milliseconds.
    delay_ms: Arc<AtomicU64>,
}

async fn fake(jwks: Jwks) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let introspections = Arc::new(AtomicU64::new(0));
    let status = Arc::new(AtomicU16::new(200));
    let answer = Arc::new(Mutex::new(Introspection::default()));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (calls, st, ans) = (introspections.clone(), status.clone(), answer.clone());
    let delay = delay_ms.clone();
    let jwks = serde_json::to_string(&jwks).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (calls, st, ans, jwks) = (calls.clone(), st.clone(), ans.clone(), jwks.clone());
            let delay = delay.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let (status, body) = if head.starts_with("get /.well-known/jwks.json") {
                    (200, jwks)
                } else {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let ms = delay.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let answer = ans.lock().unwrap().clone();
                    (
                        st.load(Ordering::SeqCst),
                        serde_json::to_string(&answer).unwrap(),
                    )
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    Fake {
        url,
        introspections,
        status,
        answer,
        delay_ms,
    }
}

struct Setup {
    fake: Fake,
    keys: KeySet,
    verifier: Verifier,
    metrics: Arc<Metrics>,
}

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let master = MasterKey::random();
    let key = generate_key(&master);
    let keys = KeySet::open(&master, std::slice::from_ref(&key)).unwrap();
    let fake = fake(Jwks {
        keys: keys.public_keys().to_vec(),
    })
    .await;
    let manager = Manager::new(CredentialsPayload {
        server_id: "SERVER".into(),
        secret: "secret".into(),
        url: fake.url.clone(),
    })
    .unwrap();
    let metrics = Arc::new(Metrics::default());
    let verifier = Verifier::new(Arc::new(manager), Duration::from_secs(5), metrics.clone());
    Setup {
        fake,
        keys,
        verifier,
        metrics,
    }
}

impl Setup {
    fn claims(&self) -> Claims {
        Claims {
            iss: self.fake.url.clone(),
            aud: vec![AUDIENCE.into()],
            sub: "SERVER".into(),
            jti: "tokenid".into(),
            iat: connect_manager_core::Timestamp::now().unix_seconds(),
            exp: None,
            account_uuid: "ACCOUNT".into(),
            token: random_token_value(),
            features: vec!["vaultaccess".into()],
            vaults: vec![],
        }
    }

    fn bearer(&self, claims: &Claims) -> String {
        format!("Bearer {}", self.keys.sign(claims).unwrap())
    }

    fn active(&self, jti: &str, vaults: Vec<VaultAcl>) {
        *self.fake.answer.lock().unwrap() = Introspection {
            active: true,
            jti: Some(jti.into()),
            sub: Some("SERVER".into()),
            vaults: Some(vaults),
            ..Introspection::default()
        };
    }
}

#[tokio::test]
async fn g2_claims_signed_by_the_managers_key_but_not_for_this_gateway_cost_no_introspection() {
    let s = setup().await;
    s.active("tokenid", vec![]);
    let good = s.claims();
    assert!(s.verifier.check(Some(&s.bearer(&good))).await.is_ok());
    assert_eq!(s.fake.introspections.load(Ordering::SeqCst), 1);
    let now = connect_manager_core::Timestamp::now().unix_seconds();
    let cases = [
        (
            "wrong aud",
            Claims {
                aud: vec!["com.example".into()],
                ..good.clone()
            },
        ),
        (
            "wrong iss",
            Claims {
                iss: "https://elsewhere.example".into(),
                ..good.clone()
            },
        ),
        (
            "iss with a trailing slash",
            Claims {
                iss: format!("{}/", good.iss),
                ..good.clone()
            },
        ),
        (
            "another server",
            Claims {
                sub: "OTHER".into(),
                ..good.clone()
            },
        ),
        (
            "expired",
            Claims {
                exp: Some(now - 1),
                jti: "other".into(),
                ..good.clone()
            },
        ),
        (
            "expires now",
            Claims {
                exp: Some(now),
                jti: "other2".into(),
                ..good.clone()
            },
        ),
    ];
    for (what, claims) in &cases {
        assert_eq!(
            s.verifier.check(Some(&s.bearer(claims))).await,
            Err(Refusal::Unauthorized),
            "{what}"
        );
    }
    assert_eq!(
        s.fake.introspections.load(Ordering::SeqCst),
        1,
        "none asked"
    );
    // Not yet expired: asked.
    let later = Claims {
        exp: Some(now + 60),
        jti: "later".into(),
        ..good.clone()
    };
    s.active("later", vec![]);
    assert!(s.verifier.check(Some(&s.bearer(&later))).await.is_ok());
    assert_eq!(s.fake.introspections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn g2_the_effective_access_comes_from_the_introspection_not_the_token() {
    let s = setup().await;
    let acl = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    s.active(
        "tokenid",
        vec![
            VaultAcl {
                id: "v1".into(),
                acl: acl(&["view_items", "view_and_copy_passwords"]),
            },
            VaultAcl {
                id: "v2".into(),
                acl: acl(&["create_items", "delete_items", "unknown"]),
            },
        ],
    );
    let mut claims = s.claims();
    claims.vaults = vec![connect_manager_core::token::VaultScope {
        u: "v3".into(),
        a: 1008,
    }];
    let access = s.verifier.check(Some(&s.bearer(&claims))).await.unwrap();
    assert_eq!(access.jti, "tokenid");
    assert_eq!(
        (access.bits("v1"), access.bits("v2"), access.bits("v3")),
        (48, 576, 0)
    );

    // An answer about another token, or for another server, is no answer: refused.
    for (jti, sub) in [("elsewhere", "SERVER"), ("t2", "OTHER")] {
        *s.fake.answer.lock().unwrap() = Introspection {
            active: true,
            jti: Some(jti.into()),
            sub: Some(sub.into()),
            ..Introspection::default()
        };
        let c = Claims {
            jti: "t2".into(),
            token: random_token_value(),
            ..s.claims()
        };
        assert_eq!(
            s.verifier.check(Some(&s.bearer(&c))).await,
            Err(Refusal::Unauthorized)
        );
    }
}

#[tokio::test]
async fn g2_manager_errors_fail_closed_and_recover() {
    let s = setup().await;
    s.active("tokenid", vec![]);
    let header = s.bearer(&s.claims());
    for status in [500, 503, 401, 403, 404] {
        s.fake.status.store(status, Ordering::SeqCst);
        assert_eq!(
            s.verifier.check(Some(&header)).await,
            Err(Refusal::Unavailable),
            "{status}"
        );
    }
    assert!(
        s.verifier.degraded.load(Ordering::SeqCst),
        "an episode is open"
    );
    s.fake.status.store(200, Ordering::SeqCst);
    assert!(s.verifier.check(Some(&header)).await.is_ok());
    assert!(!s.verifier.degraded.load(Ordering::SeqCst), "and closed");
    assert_eq!(s.metrics.introspection_calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn g2_checks_waiting_on_a_failed_call_share_its_failure() {
    let s = Arc::new(setup().await);
    s.active("tokenid", vec![]);
    s.verifier.refresh_jwks().await.unwrap();
    s.fake.status.store(503, Ordering::SeqCst);
    // Slow enough that every check of the burst arrives while the call is in flight.
    s.fake.delay_ms.store(300, Ordering::SeqCst);
    let header = s.bearer(&s.claims());
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (s, header) = (s.clone(), header.clone());
        burst.spawn(async move { s.verifier.check(Some(&header)).await });
    }
    while let Some(r) = burst.join_next().await {
        assert_eq!(r.unwrap(), Err(Refusal::Unavailable));
    }
    assert_eq!(
        s.fake.introspections.load(Ordering::SeqCst),
        1,
        "one failed call, not fifty in a row"
    );
    // A check arriving after the failure tries again.
    s.fake.status.store(200, Ordering::SeqCst);
    assert!(s.verifier.check(Some(&header)).await.is_ok());
}

#[tokio::test]
async fn g2_a_token_that_expires_while_its_answer_is_cached_is_refused() {
    let s = setup().await;
    let now = connect_manager_core::Timestamp::now().unix_seconds();
    let c = Claims {
        jti: "soon".into(),
        exp: Some(now + 2),
        ..s.claims()
    };
    s.active("soon", vec![]);
    let header = s.bearer(&c);
    assert!(s.verifier.check(Some(&header)).await.is_ok());
    assert!(
        s.verifier.check(Some(&header)).await.is_ok(),
        "from the cache"
    );
    let expired_at = std::time::UNIX_EPOCH + Duration::from_secs((now + 2) as u64);
    if let Ok(wait) = expired_at.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.verifier.check(Some(&header)).await,
        Err(Refusal::Unauthorized),
        "expired, though the manager's answer (max-staleness 5 s) is still young"
    );
    assert_eq!(s.fake.introspections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_a_busy_token_costs_at_most_one_introspection_per_max_staleness_window() {
    let mut s = setup().await;
    s.verifier = Verifier::new(
        s.verifier.manager.clone(),
        Duration::from_secs(1),
        s.metrics.clone(),
    );
    let s = Arc::new(s);
    s.active("tokenid", vec![]);
    let header = s.bearer(&s.claims());
    // Each introspection takes 20 ms, so that checks pile up behind a call.
    s.fake.delay_ms.store(20, Ordering::SeqCst);
    let start = Instant::now();
    let mut checkers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (s, header) = (s.clone(), header.clone());
        checkers.spawn(async move {
            let mut checks = 0;
            while start.elapsed() < Duration::from_millis(3500) {
                assert!(s.verifier.check(Some(&header)).await.is_ok());
                checks += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            checks
        });
    }
    let mut checks = 0;
    while let Some(r) = checkers.join_next().await {
        checks += r.unwrap();
    }
    let elapsed = start.elapsed();
    let calls = s.fake.introspections.load(Ordering::SeqCst);
    let windows = elapsed.as_secs() + 1;
    println!(
        "{checks} checks by 4 clients over {elapsed:?}, max-staleness 1 s: {calls} calls, bound {windows}"
    );
    assert!(calls >= 3, "asked again as answers aged: {calls}");
    assert!(
        calls as u64 <= windows,
        "at most one call per max-staleness window: {calls} calls in {elapsed:?}"
    );
}

#[tokio::test]
async fn g2_the_cache_is_bounded_and_swept() {
    let s = setup().await;
    s.active("tokenid", vec![]);
    let header = s.bearer(&s.claims());
    assert!(s.verifier.check(Some(&header)).await.is_ok());
    assert_eq!(s.verifier.cached_tokens(), 1);
    {
        let mut cache = s.verifier.cache.lock().unwrap();
        for i in 0..CACHE_CAP {
            cache
                .slots
                .insert(Arc::from(format!("filler{i}")), Arc::new(Slot::default()));
        }
    }
    // Full: a new token is still answered, and the sweep drops the slots with no live answer.
    let c = Claims {
        jti: "new".into(),
        ..s.claims()
    };
    s.active("new", vec![]);
    assert!(s.verifier.check(Some(&s.bearer(&c))).await.is_ok());
    assert!(
        s.verifier.cached_tokens() <= 2,
        "{}",
        s.verifier.cached_tokens()
    );
}
