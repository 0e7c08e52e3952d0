//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use connect_manager_core::secret::{fingerprint, server_secret_verifier, verify_server_secret};
use connect_manager_store::{DynStore, ServerCredentials};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::cache::{AccessCache, KeyRing};

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// The URL written into credentials files (and the token issuer).
    pub public_url: Arc<str>,
    pub server_secrets: Arc<ServerSecretCache>,
    /// Servers' credentials and grants, tokens: the introspection hot path (cache.rs).
    pub access: Arc<AccessCache>,
    pub keys: Arc<KeyRing>,
    /// This installation's account ID (the `1password.com/auuid` claim).
    pub account_id: Arc<str>,
    /// Failed authentications per client address and per target server.
    pub auth_limiter: Arc<crate::limiter::AuthLimiter>,
    /// Whose forwarding header names the client (client.rs).
    pub trusted_proxies: Arc<crate::client::TrustedProxies>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The console's session lifetimes and cookie settings (issue 17).
    pub console: crate::console::ConsoleSettings,
    /// Trusted issuers' keys, fetched and cached for the token exchange (issue 18).
    pub issuer_keys: Arc<crate::exchange::IssuerKeys>,
}

enum Job {
    Hash(
        String,
        oneshot::Sender<connect_manager_core::Result<String>>,
    ),
    Verify(String, String, oneshot::Sender<bool>),
}

/// Argon2id (C2) on dedicated threads, one job at a time each. Argon2 is slow and takes
/// 12 MiB per run on purpose; on the async runtime it would stall requests, and on the elastic
/// blocking pool a burst would spread those 19 MiB over as many threads (and allocator arenas)
/// as the burst is wide. Here the memory is bounded by the number of threads.
pub struct Argon2Pool {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Verifications submitted so far.
    verifications: std::sync::atomic::AtomicU64,
}

impl Argon2Pool {
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().expect("argon2 queue").recv();
                        match job {
                            Ok(Job::Hash(secret, reply)) => {
                                let _ = reply.send(server_secret_verifier(&secret));
                            }
                            Ok(Job::Verify(secret, verifier, reply)) => {
                                let _ = reply.send(verify_server_secret(&secret, &verifier));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn an argon2 thread");
        }
        Argon2Pool {
            jobs: tx,
            verifications: Default::default(),
        }
    }

    fn submit(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// The argon2id verifier of a new secret.
    pub async fn hash(&self, secret: String) -> connect_manager_core::Result<String> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Hash(secret, tx));
        rx.await
            .map_err(|_| connect_manager_core::Error::internal("argon2 worker gone"))?
    }

    pub async fn verify(&self, secret: String, verifier: String) -> bool {
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Verify(secret, verifier, tx));
        rx.await.unwrap_or(false)
    }
}

/// C2: a verified secret is remembered, so the next request with the same secret costs one
/// SHA-256 instead of an argon2id run.
///
/// The cache maps a server ID to the SHA-256 of the last secret that verified and the verifier it
/// verified against. A hit needs both to match what the caller read from the store *now*, so a
/// rotation (C3) or a deletion (R4) takes effect on the very next request. Verifications of one
/// server's credentials run one at a time: a burst of requests with a not-yet-verified secret
/// costs one argon2 run, not one per request, and so does a wrong secret sent again against the
/// same verifier (the last few failures are remembered). At most [`MAX_QUEUED_PER_SERVER`] wait for their
/// turn at one server; beyond, [`Busy`] at once (429), so guesses at one server cannot queue
/// without bound in front of its real secret. Nothing in here can be turned back into a secret;
/// it lives only in memory and is bounded.
pub struct ServerSecretCache {
    verified: Mutex<HashMap<String, ([u8; 32], String)>>,
    /// Per server, the verifier and the fingerprints of the last secrets that failed against it:
    /// a wrong secret sent again (a rotated-away one, typically) costs no second argon2 run.
    rejected: Mutex<HashMap<String, Rejected>>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub argon2: Argon2Pool,
}

/// A verifier and the fingerprints of secrets that failed against it.
type Rejected = (String, Vec<[u8; 32]>);

/// Too many verifications are queued for this server already: try again in a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

const MAX_CACHED_SERVERS: usize = 10_000;

/// Argon2 verifications waiting or running for one server. Concurrent requests with one
/// credential take one place between them (the limiter's single flight), so this many distinct
/// secrets are being tried at once, and a real secret waits behind at most this many runs
/// (about 40 ms each in a release build).
pub const MAX_QUEUED_PER_SERVER: usize = 8;

/// Failed fingerprints remembered per server.
const MAX_REJECTED_PER_SERVER: usize = 16;

/// Argon2 threads: each holds its 12 MiB between runs. Verifications are rare once secrets are
/// remembered (one per server and secret), so one thread is enough.
const ARGON2_THREADS: usize = 1;

impl Default for ServerSecretCache {
    fn default() -> Self {
        ServerSecretCache {
            verified: Mutex::default(),
            rejected: Mutex::default(),
            in_flight: Mutex::default(),
            argon2: Argon2Pool::new(ARGON2_THREADS),
        }
    }
}

impl ServerSecretCache {
    fn remembered(&self, fp: &[u8; 32], current: &ServerCredentials) -> bool {
        self.verified
            .lock()
            .expect("cache lock")
            .get(&current.server_id)
            .is_some_and(|(cached_fp, cached_verifier)| {
                cached_verifier == &current.secret_verifier && bool::from(cached_fp.ct_eq(fp))
            })
    }

    fn known_wrong(&self, fp: &[u8; 32], current: &ServerCredentials) -> bool {
        self.rejected
            .lock()
            .expect("cache lock")
            .get(&current.server_id)
            .is_some_and(|(verifier, fps)| {
                verifier == &current.secret_verifier && fps.iter().any(|f| bool::from(f.ct_eq(fp)))
            })
    }

    fn reject(&self, fp: [u8; 32], current: &ServerCredentials) {
        let mut map = self.rejected.lock().expect("cache lock");
        if map.len() >= MAX_CACHED_SERVERS {
            map.clear();
        }
        let entry = map
            .entry(current.server_id.clone())
            .or_insert_with(|| (current.secret_verifier.clone(), Vec::new()));
        if entry.0 != current.secret_verifier {
            *entry = (current.secret_verifier.clone(), Vec::new());
        }
        if entry.1.len() >= MAX_REJECTED_PER_SERVER {
            entry.1.remove(0);
        }
        entry.1.push(fp);
    }

    pub async fn verify(&self, secret: &str, current: &ServerCredentials) -> Result<bool, Busy> {
        let fp = fingerprint(secret);
        if self.remembered(&fp, current) {
            return Ok(true);
        }
        if self.known_wrong(&fp, current) {
            return Ok(false);
        }
        let turn = {
            let mut in_flight = self.in_flight.lock().expect("cache lock");
            if in_flight.len() >= MAX_CACHED_SERVERS {
                in_flight.retain(|_, m| Arc::strong_count(m) > 1);
            }
            let turn = in_flight
                .entry(current.server_id.clone())
                .or_default()
                .clone();
            // The map holds one reference and this request another; the rest are queued.
            if Arc::strong_count(&turn) - 2 >= MAX_QUEUED_PER_SERVER {
                return Err(Busy);
            }
            turn
        };
        let _turn = turn.lock().await;
        // Whoever held the turn may have checked this very secret meanwhile.
        if self.remembered(&fp, current) {
            return Ok(true);
        }
        if self.known_wrong(&fp, current) {
            return Ok(false);
        }
        let ok = self
            .argon2
            .verify(secret.to_owned(), current.secret_verifier.clone())
            .await;
        if !ok {
            self.reject(fp, current);
        } else {
            let mut map = self.verified.lock().expect("cache lock");
            if map.len() >= MAX_CACHED_SERVERS {
                map.clear();
            }
            map.insert(
                current.server_id.clone(),
                (fp, current.secret_verifier.clone()),
            );
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secret_is_checked_by_argon2_once_per_verifier_whether_right_or_wrong() {
        let cache = ServerSecretCache::default();
        let secret = connect_manager_core::secret::new_server_secret();
        let current = ServerCredentials {
            server_id: "S".into(),
            secret_verifier: server_secret_verifier(&secret).unwrap(),
            tokens_version: 1,
        };
        let runs = || {
            cache
                .argon2
                .verifications
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        for _ in 0..3 {
            assert_eq!(cache.verify("wrong", &current).await, Ok(false));
            assert_eq!(cache.verify(&secret, &current).await, Ok(true));
        }
        assert_eq!(runs(), 2);
        // A new verifier (a rotation): both are checked again.
        let rotated = ServerCredentials {
            secret_verifier: server_secret_verifier(&secret).unwrap(),
            ..current
        };
        assert_eq!(cache.verify("wrong", &rotated).await, Ok(false));
        assert_eq!(cache.verify(&secret, &rotated).await, Ok(true));
        assert_eq!(runs(), 4);
    }
}
