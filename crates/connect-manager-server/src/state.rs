//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use connect_manager_core::secret::{fingerprint, verify_server_secret};
use connect_manager_store::{DynStore, ServerCredentials};

use crate::cache::{AccessCache, KeyRing};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// The URL written into credentials files (and, later, the token issuer).
    pub public_url: Arc<str>,
    pub server_secrets: Arc<ServerSecretCache>,
    /// Servers' credentials and grants, tokens: the introspection hot path (cache.rs).
    pub access: Arc<AccessCache>,
    pub keys: Arc<KeyRing>,
    /// This installation's account ID (the `1password.com/auuid` claim).
    pub account_id: Arc<str>,
    /// Failed authentications per client IP.
    pub auth_limiter: Arc<crate::limiter::AuthLimiter>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// C2: argon2id runs off the async runtime, a few at a time, and a verified secret is remembered
/// so that the next request with the same secret costs one SHA-256.
///
/// The cache maps a server ID to the SHA-256 of the last secret that verified and the verifier it
/// verified against. A hit needs both to match what the database holds *now* (the caller passes
/// the verifier it just read), so a rotation (C3) or a deletion (R4) on any replica takes effect
/// on the very next request: the verifier changed, or the server is gone. Nothing in it can be
/// turned back into a secret; it lives only in memory and is bounded.
pub struct ServerSecretCache {
    verified: Mutex<HashMap<String, ([u8; 32], String)>>,
    argon2_slots: Semaphore,
}

const MAX_CACHED_SERVERS: usize = 10_000;

impl Default for ServerSecretCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ServerSecretCache {
            verified: Mutex::new(HashMap::new()),
            argon2_slots: Semaphore::new(cores),
        }
    }
}

impl ServerSecretCache {
    pub async fn verify(&self, secret: &str, current: &ServerCredentials) -> bool {
        let fp = fingerprint(secret);
        if let Some((cached_fp, cached_verifier)) = self
            .verified
            .lock()
            .expect("cache lock")
            .get(&current.server_id)
            && cached_verifier == &current.secret_verifier
            && bool::from(cached_fp.ct_eq(&fp))
        {
            return true;
        }
        let Ok(_slot) = self.argon2_slots.acquire().await else {
            return false;
        };
        let (secret, verifier) = (secret.to_owned(), current.secret_verifier.clone());
        let ok = tokio::task::spawn_blocking(move || verify_server_secret(&secret, &verifier))
            .await
            .unwrap_or(false);
        if ok {
            let mut map = self.verified.lock().expect("cache lock");
            if map.len() >= MAX_CACHED_SERVERS {
                map.clear();
            }
            map.insert(
                current.server_id.clone(),
                (fp, current.secret_verifier.clone()),
            );
        }
        ok
    }
}
