//! G2: the checks on a request's token.
//!
//! Local checks first, so that a forged or foreign token never costs a call to the manager:
//! ES256 only, a `kid` in the manager's JWKS (refetched when unknown, at most once a second),
//! `aud`, `iss` (the manager's public URL), `sub` (this server's ID), `exp`. Then the live answer
//! of `POST /v1/introspect`, cached at most max-staleness (measured from when the question was
//! sent), one call in flight per token, inactive answers cached too. No answer young enough and
//! the manager unreachable: [`Refusal::Unavailable`]; the gateway fails closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use connect_manager_core::access::PERMISSIONS;
use connect_manager_core::api::tokens::Introspection;
use connect_manager_core::token::{KeySet, PublicKeys};

use crate::manager::{Manager, ManagerError};
use crate::metrics::{Metrics, inc};

/// What a token may do now: its effective scope (the token's scope ∩ the server's live grants,
/// R6) as the manager last said, at most max-staleness ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token's ID (its `jti`), for logs and G7.
    pub jti: String,
    /// Vault ID → access bits (T2).
    pub vaults: BTreeMap<String, u32>,
}

impl Access {
    /// The access bits this token has on `vault` (0 when the vault is out of scope).
    pub fn bits(&self, vault: &str) -> u32 {
        self.vaults.get(vault).copied().unwrap_or(0)
    }
}

/// Why a token was refused (G4 maps it to Connect's error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing, malformed, foreign, revoked or expired: 401, one message for all.
    #[error("invalid token")]
    Unauthorized,
    /// The manager is unreachable and no answer is young enough: 503 (fail closed).
    #[error("the token cannot be checked now")]
    Unavailable,
}

/// The most tokens whose answers are kept. Beyond, answers of new tokens are not cached (each
/// check asks the manager) until the sweep makes room: memory stays bounded whatever clients send.
pub const CACHE_CAP: usize = 10_000;
/// The least time between two JWKS fetches prompted by an unknown `kid`.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// The longest JWT looked at (a connect-manager token is well under 2 KiB even with many vaults).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The manager's answer about one token.
#[derive(Clone)]
enum Answer {
    Active(Arc<Access>),
    Inactive,
}

impl Answer {
    fn into_result(self) -> Result<Arc<Access>, Refusal> {
        match self {
            Answer::Active(access) => Ok(access),
            Answer::Inactive => Err(Refusal::Unauthorized),
        }
    }
}

/// One token's slot in the cache.
#[derive(Default)]
struct Slot {
    /// The token's `jti` and `exp`: a slot exists only for a JWT that passed the local checks,
    /// so a check of the very same JWT needs only `exp` again, not the signature.
    jti: String,
    exp: Option<i64>,
    /// Held across a call to the manager about this token: the checks that need an answer
    /// meanwhile wait for that call instead of making their own.
    call: tokio::sync::Mutex<()>,
    /// Read without waiting for a call in flight.
    state: Mutex<SlotState>,
}

impl Slot {
    /// The last answer and its age.
    fn answer(&self) -> Option<(Duration, Answer)> {
        let state = self.state.lock().expect("slot lock");
        let (asked_at, answer) = state.answer.as_ref()?;
        Some((asked_at.elapsed(), answer.clone()))
    }
}

#[derive(Default)]
struct SlotState {
    /// The last answer and when its question was sent.
    answer: Option<(Instant, Answer)>,
    /// When the last failed call ended: checks that were already waiting for it share its
    /// failure instead of each trying again in turn.
    failed_at: Option<Instant>,
}

pub struct Verifier {
    manager: Arc<Manager>,
    max_staleness: Duration,
    metrics: Arc<Metrics>,
    keys: RwLock<Arc<PublicKeys>>,
    jwks_loaded: AtomicBool,
    /// When the JWKS was last fetched; its lock serialises fetches.
    jwks_fetched_at: tokio::sync::Mutex<Option<Instant>>,
    cache: Mutex<Cache>,
    /// Whether the manager is failing now: its reason is logged once per episode.
    degraded: AtomicBool,
}

struct Cache {
    slots: HashMap<Arc<str>, Arc<Slot>>,
    swept_at: Instant,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("manager", &self.manager)
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(manager: Arc<Manager>, max_staleness: Duration, metrics: Arc<Metrics>) -> Verifier {
        Verifier {
            manager,
            max_staleness,
            metrics,
            keys: RwLock::new(Arc::new(PublicKeys::default())),
            jwks_loaded: AtomicBool::new(false),
            jwks_fetched_at: tokio::sync::Mutex::new(None),
            cache: Mutex::new(Cache {
                slots: HashMap::new(),
                swept_at: Instant::now(),
            }),
            degraded: AtomicBool::new(false),
        }
    }

    /// Whether the manager's JWKS has been loaded at least once (readiness).
    pub fn jwks_loaded(&self) -> bool {
        self.jwks_loaded.load(Ordering::Relaxed)
    }

    /// Whether the manager answers now (readiness): fetches its JWKS, and keeps it.
    pub async fn manager_reachable(&self) -> bool {
        self.refresh_jwks().await.is_ok()
    }

    /// Fetches the manager's JWKS now (at start; whenever a `kid` is unknown, rate-limited).
    pub async fn refresh_jwks(&self) -> Result<(), ManagerError> {
        let mut fetched_at = self.jwks_fetched_at.lock().await;
        self.fetch_jwks(&mut fetched_at).await
    }

    async fn fetch_jwks(&self, fetched_at: &mut Option<Instant>) -> Result<(), ManagerError> {
        inc(&self.metrics.jwks_fetches);
        *fetched_at = Some(Instant::now());
        let jwks = self.manager.jwks().await?;
        let keys = Arc::new(PublicKeys::from_jwks(&jwks));
        *self.keys.write().expect("keys lock") = keys;
        self.jwks_loaded.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn keys(&self) -> Arc<PublicKeys> {
        self.keys.read().expect("keys lock").clone()
    }

    /// The keys, refetched first when they do not know `kid`: at once when the last fetch is at
    /// least a second old, else a second after it (the check waits; every check waiting then
    /// shares that one fetch), so that a key the manager has just rotated in is learned without
    /// a refusal, and a flood of unknown `kid`s costs the manager at most one fetch a second.
    /// `Err` when they have never been loaded and the manager cannot give them.
    async fn keys_knowing(&self, kid: &str) -> Result<Arc<PublicKeys>, Refusal> {
        let keys = self.keys();
        if keys.knows(kid) {
            return Ok(keys);
        }
        let arrived = Instant::now();
        loop {
            let mut fetched_at = self.jwks_fetched_at.lock().await;
            // Another check may have fetched while this one waited.
            let keys = self.keys();
            if keys.knows(kid) {
                return Ok(keys);
            }
            match *fetched_at {
                // A fetch begun after this check arrived did not know it: unknown.
                Some(at) if at >= arrived => {
                    return match self.jwks_loaded() {
                        true => Ok(keys),
                        false => Err(Refusal::Unavailable),
                    };
                }
                Some(at) if at.elapsed() < JWKS_REFETCH_INTERVAL => {
                    if !self.jwks_loaded() {
                        return Err(Refusal::Unavailable);
                    }
                    let wait = JWKS_REFETCH_INTERVAL.saturating_sub(at.elapsed());
                    drop(fetched_at);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                _ => {}
            }
            return match self.fetch_jwks(&mut fetched_at).await {
                Ok(()) => {
                    self.recovered();
                    Ok(self.keys())
                }
                Err(e) => {
                    self.failing(&e, "fetching its JWKS");
                    match self.jwks_loaded() {
                        true => Ok(keys),
                        false => Err(Refusal::Unavailable),
                    }
                }
            };
        }
    }

    /// G2: the effective access of the token in a request's `Authorization` header value.
    pub async fn check(&self, authorization: Option<&str>) -> Result<Arc<Access>, Refusal> {
        let jwt = bearer(authorization).ok_or(Refusal::Unauthorized)?;
        let now = connect_manager_core::Timestamp::now().unix_seconds();
        if let Some(slot) = self.known(jwt) {
            if slot.exp.is_some_and(|exp| exp <= now) {
                return Err(Refusal::Unauthorized);
            }
            if let Some((age, answer)) = slot.answer()
                && age < self.max_staleness
            {
                inc(&self.metrics.introspection_cache_hits);
                return answer.into_result();
            }
            return self.live(jwt, &slot.jti, slot.exp).await?.into_result();
        }
        let kid = KeySet::kid_of(jwt).ok_or(Refusal::Unauthorized)?;
        let keys = self.keys_knowing(&kid).await?;
        let claims = keys.verify(jwt).ok_or(Refusal::Unauthorized)?;
        if claims.iss != self.manager.issuer() || claims.sub != self.manager.server_id() {
            return Err(Refusal::Unauthorized);
        }
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(Refusal::Unauthorized);
        }
        self.live(jwt, &claims.jti, claims.exp).await?.into_result()
    }

    /// The slot of exactly this JWT, when it passed the local checks before: its signature
    /// and claims need no second look (ES256 verification is most of a check's cost).
    fn known(&self, jwt: &str) -> Option<Arc<Slot>> {
        self.cache
            .lock()
            .expect("cache lock")
            .slots
            .get(jwt)
            .cloned()
    }

    /// The manager's answer about a token that passed the local checks: from the cache when
    /// young enough, else from one call shared by every check of that token meanwhile.
    async fn live(&self, jwt: &str, jti: &str, exp: Option<i64>) -> Result<Answer, Refusal> {
        let arrived = Instant::now();
        let slot = self.slot(jwt, jti, exp);
        // No refresh ahead of time: an answer is asked again only once it is max-staleness old,
        // so a busy token costs the manager at most one call per max-staleness window (the
        // issue's bound); the checks arriving while that call is out wait for it (one round trip).
        if let Some((age, answer)) = slot.answer()
            && age < self.max_staleness
        {
            inc(&self.metrics.introspection_cache_hits);
            return Ok(answer);
        }
        let _call = slot.call.lock().await;
        let waited = {
            let state = slot.state.lock().expect("slot lock");
            match &state.answer {
                Some((asked_at, answer)) if asked_at.elapsed() < self.max_staleness => {
                    Some(Ok(answer.clone()))
                }
                // The call this check waited for failed a moment ago: fail with it.
                _ if state.failed_at.is_some_and(|at| at >= arrived) => {
                    Some(Err(Refusal::Unavailable))
                }
                _ => None,
            }
        };
        match waited {
            Some(Ok(answer)) => {
                inc(&self.metrics.introspection_cache_hits);
                Ok(answer)
            }
            Some(Err(refusal)) => Err(refusal),
            None => self.ask(&slot, jwt, jti).await,
        }
    }

    /// Asks the manager about a token and keeps its answer; the caller holds the slot's call lock.
    async fn ask(&self, slot: &Slot, jwt: &str, jti: &str) -> Result<Answer, Refusal> {
        let asked_at = Instant::now();
        inc(&self.metrics.introspection_calls);
        let result = self.manager.introspect(jwt).await;
        let mut state = slot.state.lock().expect("slot lock");
        match result {
            Ok(answer) => {
                self.recovered();
                let answer = self.answer(answer, jti);
                state.answer = Some((asked_at, answer.clone()));
                state.failed_at = None;
                Ok(answer)
            }
            Err(e) => {
                self.failing(&e, "introspecting a token");
                // When it failed, not when it was asked: every check that arrived meanwhile
                // waited for this call and shares its failure.
                state.failed_at = Some(Instant::now());
                Err(Refusal::Unavailable)
            }
        }
    }

    /// What an introspection says, checked against what we asked about.
    fn answer(&self, answer: Introspection, jti: &str) -> Answer {
        if !answer.active
            || answer.jti.as_deref() != Some(jti)
            || answer.sub.as_deref() != Some(self.manager.server_id())
        {
            return Answer::Inactive;
        }
        let vaults = answer
            .vaults
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let bits = PERMISSIONS
                    .iter()
                    .filter(|(_, name)| v.acl.iter().any(|a| a == name))
                    .fold(0u32, |bits, (bit, _)| bits | *bit as u32);
                (v.id, bits)
            })
            .collect();
        Answer::Active(Arc::new(Access {
            jti: jti.to_owned(),
            vaults,
        }))
    }

    /// The token's cache slot; a slot of its own, not kept, when the cache is full.
    fn slot(&self, jwt: &str, jti: &str, exp: Option<i64>) -> Arc<Slot> {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(slot) = cache.slots.get(jwt) {
            return slot.clone();
        }
        let sweep_every = self.max_staleness.max(Duration::from_secs(1)) * 2;
        if cache.slots.len() >= CACHE_CAP || cache.swept_at.elapsed() >= sweep_every {
            self.sweep(&mut cache);
        }
        let slot = Arc::new(Slot {
            jti: jti.to_owned(),
            exp,
            ..Slot::default()
        });
        if cache.slots.len() < CACHE_CAP {
            cache.slots.insert(Arc::from(jwt), slot.clone());
        }
        slot
    }

    /// Drops the slots whose answer is too old to serve and that no check is using.
    fn sweep(&self, cache: &mut Cache) {
        let max_staleness = self.max_staleness;
        cache.slots.retain(|_, slot| {
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            if slot.call.try_lock().is_err() {
                return true;
            }
            match &slot.state.lock().expect("slot lock").answer {
                Some((at, _)) => at.elapsed() < max_staleness,
                None => false,
            }
        });
        cache.swept_at = Instant::now();
    }

    /// The number of tokens whose answers are kept now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.lock().expect("cache lock").slots.len()
    }

    fn failing(&self, e: &ManagerError, doing: &str) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "the manager fails {doing}: tokens without a cached answer younger than max-staleness are refused (503) until it answers");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("the manager answers again");
        }
    }
}

/// The JWT of a `Bearer` authorization (the scheme is case-insensitive, RFC 7235).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, jwt) = value.split_once(' ')?;
    let jwt = jwt.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || jwt.is_empty() || jwt.len() > MAX_TOKEN_BYTES {
        return None;
    }
    Some(jwt)
}

#[cfg(test)]
mod tests {
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

    use std::sync::atomic::{AtomicU16, AtomicU64};

    use connect_manager_core::access::VaultAcl;
    use connect_manager_core::credentials::CredentialsPayload;
    use connect_manager_core::secret::MasterKey;
    use connect_manager_core::token::{AUDIENCE, Claims, Jwks, generate_key, random_token_value};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}
