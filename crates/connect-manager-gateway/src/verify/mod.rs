//! G2: the checks on a request's token.
//!
//! Local checks first, so that a forged or foreign token never costs a call to the manager:
//! ES256 only, a `kid` in the manager's JWKS (refetched when unknown, at most once a second),
//! `aud`, `iss` (the manager's public URL), `sub` (this server's ID), `exp`. Then the live answer
//! of `POST /v1/introspect`, cached at most max-staleness (measured from when the question was
//! sent), one call in flight per token, inactive answers cached too. No answer young enough and
//! the manager unreachable: [`Refusal::Unavailable`]; the gateway fails closed.
//!
//! What lives where:
//! - here: [`Access`], [`Refusal`], the [`Verifier`] and its [`Verifier::check`], which holds
//!   the order of G2's checks: the `Bearer` value, the cache's slot of the very same JWT, the
//!   local checks (`iss`, `sub`, `exp` here; the signature and `aud` in core's
//!   `PublicKeys::verify`), then the live answer.
//! - `jwks.rs`: the manager's JWKS, loaded at start, refetched when a `kid` is unknown (at most
//!   once a second, shared by the checks waiting), kept when the manager fails.
//! - `cache.rs`: the introspection cache: one slot per JWT, answers kept at most max-staleness,
//!   one call in flight per token (single flight), a failed call's waiters share its failure,
//!   the cache bounded ([`CACHE_CAP`]) and swept.
//! - `tests.rs`: these checks against a stand-in manager (the gateway test target checks them
//!   against the real one).

mod cache;
mod jwks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use connect_manager_core::token::{KeySet, PublicKeys};

use crate::manager::{Manager, ManagerError};
use crate::metrics::{Metrics, inc};

pub use cache::CACHE_CAP;
use cache::Cache;

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

/// The longest JWT looked at (a connect-manager token is well under 2 KiB even with many vaults).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

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
