//! G2's keys: the manager's JWKS, loaded at start, refetched when a token's `kid` is unknown
//! (at once when the last fetch is at least a second old, else a second after it, every check
//! waiting then sharing that one fetch), kept when the manager cannot give them again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use connect_manager_core::token::PublicKeys;

use super::{Refusal, Verifier};
use crate::manager::ManagerError;
use crate::metrics::inc;

/// The least time between two JWKS fetches prompted by an unknown `kid`.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

impl Verifier {
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
    pub(super) async fn keys_knowing(&self, kid: &str) -> Result<Arc<PublicKeys>, Refusal> {
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
}
