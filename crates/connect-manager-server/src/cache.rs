//! The introspection hot path's caches (T4, C2, S2).
//!
//! Design. Introspection must not pay a database round trip or an argon2 verification per call
//! when nothing has changed, yet a revocation, vault revoke, server delete or credentials
//! rotation must take effect at once on the replica that made it and within a second on every
//! other replica. So:
//!
//! * [`AccessCache`] keeps what introspection reads — a live server's credentials verifier and
//!   granted vaults, and token records by `jti` — in memory, filled on a miss from the store.
//! * Every change that could make an entry wrong is announced by the store (`Change`): to this
//!   process synchronously, after the commit and before the changing request is answered; to other
//!   replicas by PostgreSQL NOTIFY, sent in the changing transaction and so delivered exactly when
//!   it commits. The cache drops the named entry (or everything, for `All`).
//! * A miss that raced with a change must not put the old state back: every change bumps a
//!   generation counter, and a loaded entry is only kept if the generation did not move while it
//!   was loaded.
//! * If the change feed is down (`Unreliable`), the cache bypasses itself until the feed is back
//!   and has flushed it (`All`): stale answers are never served for want of a notification.
//! * [`KeyRing`] holds the signing keys; a `Keys` change marks it stale and the next use reloads,
//!   so a key rotated on any replica signs everywhere without a restart. Signing also compares
//!   with the database's newest key, which covers `admin rotate-key` beside a running service.
//!
//! Argon2 stays out of the hot path through `ServerSecretCache` (state.rs): a secret that verified
//! against the verifier the cache holds now is remembered by its SHA-256.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use connect_manager_core::model::{Actor, TokenRecord};
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::{Claims, Jwks, KeySet, SealedKey, generate_key};
use connect_manager_core::{Result, Timestamp};
use connect_manager_store::{Change, ChangeListener, DynStore, ServerAccess};

const MAX_ENTRIES: usize = 100_000;

pub struct AccessCache {
    generation: AtomicU64,
    reliable: AtomicBool,
    servers: RwLock<HashMap<String, Arc<ServerAccess>>>,
    tokens: RwLock<HashMap<String, Arc<TokenRecord>>>,
}

impl Default for AccessCache {
    fn default() -> Self {
        AccessCache {
            generation: AtomicU64::new(0),
            reliable: AtomicBool::new(true),
            servers: RwLock::default(),
            tokens: RwLock::default(),
        }
    }
}

impl AccessCache {
    /// A live server's credentials and grants.
    pub async fn server(&self, store: &DynStore, id: &str) -> Result<Option<Arc<ServerAccess>>> {
        if let Some(hit) = self.get(&self.servers, id) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = store.server_access(id).await?.map(Arc::new);
        if let Some(entry) = &loaded {
            self.keep(&self.servers, id, entry.clone(), generation);
        }
        Ok(loaded)
    }

    /// A token record by `jti`.
    pub async fn token(&self, store: &DynStore, jti: &str) -> Result<Option<Arc<TokenRecord>>> {
        if let Some(hit) = self.get(&self.tokens, jti) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = store.token(jti).await?.map(Arc::new);
        if let Some(entry) = &loaded {
            self.keep(&self.tokens, jti, entry.clone(), generation);
        }
        Ok(loaded)
    }

    fn get<T>(&self, map: &RwLock<HashMap<String, Arc<T>>>, key: &str) -> Option<Arc<T>> {
        if !self.reliable.load(Ordering::SeqCst) {
            return None;
        }
        map.read().expect("cache lock").get(key).cloned()
    }

    fn keep<T>(
        &self,
        map: &RwLock<HashMap<String, Arc<T>>>,
        key: &str,
        value: Arc<T>,
        loaded_at: u64,
    ) {
        let mut map = map.write().expect("cache lock");
        // Checked under the lock: a change after this point removes what is inserted here.
        if !self.reliable.load(Ordering::SeqCst)
            || self.generation.load(Ordering::SeqCst) != loaded_at
        {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key.to_owned(), value);
    }
}

impl ChangeListener for AccessCache {
    fn changed(&self, change: &Change) {
        // Each map's write lock is held while the generation moves, so `keep` sees either the old
        // generation and an entry this removes, or the new one and keeps nothing.
        let mut servers = self.servers.write().expect("cache lock");
        let mut tokens = self.tokens.write().expect("cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Token(id) => {
                tokens.remove(id);
            }
            Change::Server(id) => {
                servers.remove(id);
            }
            Change::Keys => {}
            Change::All => {
                servers.clear();
                tokens.clear();
                self.reliable.store(true, Ordering::SeqCst);
            }
            Change::Unreliable => {
                self.reliable.store(false, Ordering::SeqCst);
                servers.clear();
                tokens.clear();
            }
        }
    }
}

/// The signing keys (T3): the newest signs, all verify.
pub struct KeyRing {
    master: MasterKey,
    /// Tokens whose signature verified, by SHA-256 of the JWT: a signature's validity never
    /// changes (keys are never deleted), so the hot path verifies each distinct token once.
    /// State (revoked, expired, scope) is never taken from here.
    verified: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
    keys: RwLock<Arc<KeySet>>,
    stale: AtomicBool,
    last_reload: Mutex<Instant>,
    jwks: Mutex<Option<(Instant, Arc<Jwks>)>>,
    newest_checked: Mutex<Option<Instant>>,
}

/// How often signing compares its key with the database's newest.
const NEWEST_KEY_CHECK: Duration = Duration::from_secs(1);

/// How long a computed JWKS document is reused.
const JWKS_TTL: Duration = Duration::from_secs(5);

impl KeyRing {
    /// Loads the keys, making the first one on a new installation.
    pub async fn load(store: &DynStore, master: MasterKey) -> Result<KeyRing> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            let key = generate_key(&master);
            store.add_signing_key(&Actor::system("start"), &key).await?;
            keys = store.signing_keys().await?;
        }
        let set = KeySet::open(&master, &keys)?;
        Ok(KeyRing {
            master,
            verified: Mutex::new(HashMap::new()),
            keys: RwLock::new(Arc::new(set)),
            stale: AtomicBool::new(false),
            last_reload: Mutex::new(Instant::now()),
            jwks: Mutex::new(None),
            newest_checked: Mutex::new(None),
        })
    }

    async fn reload(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        self.stale.store(false, Ordering::SeqCst);
        let set = Arc::new(KeySet::open(&self.master, &store.signing_keys().await?)?);
        *self.keys.write().expect("keys lock") = set.clone();
        *self.last_reload.lock().expect("reload lock") = Instant::now();
        *self.jwks.lock().expect("jwks lock") = None;
        Ok(set)
    }

    /// The keys in force, reloaded first if a rotation was announced.
    pub async fn current(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        if self.stale.load(Ordering::SeqCst) {
            return self.reload(store).await;
        }
        Ok(self.keys.read().expect("keys lock").clone())
    }

    /// The keys to sign with, checked against the database's newest key at most once a second
    /// (one indexed read), so a key made by `admin rotate-key` beside a running SQLite service,
    /// which hears of no change, signs within a second.
    pub async fn for_signing(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        let set = self.current(store).await?;
        {
            let mut checked = self.newest_checked.lock().expect("keys lock");
            if checked.is_some_and(|at| at.elapsed() < NEWEST_KEY_CHECK) {
                return Ok(set);
            }
            *checked = Some(Instant::now());
        }
        let newest = store.newest_signing_kid().await?;
        if newest.is_some() && newest.as_deref() != set.signing_kid() {
            return self.reload(store).await;
        }
        Ok(set)
    }

    /// Verifies a token's signature and audience; an unknown `kid` reloads the keys at most once
    /// a second (a key made on another replica whose notice has not arrived yet).
    pub async fn verify(&self, store: &DynStore, jwt: &str) -> Result<Option<Arc<Claims>>> {
        let digest = connect_manager_core::secret::fingerprint(jwt);
        if let Some(claims) = self.verified.lock().expect("verified lock").get(&digest) {
            return Ok(Some(claims.clone()));
        }
        let mut set = self.current(store).await?;
        if let Some(kid) = KeySet::kid_of(jwt)
            && !set.knows(&kid)
        {
            let due =
                self.last_reload.lock().expect("reload lock").elapsed() >= Duration::from_secs(1);
            if due {
                set = self.reload(store).await?;
            }
        }
        let Some(claims) = set.verify(jwt).map(Arc::new) else {
            return Ok(None);
        };
        let mut verified = self.verified.lock().expect("verified lock");
        if verified.len() >= MAX_ENTRIES {
            verified.clear();
        }
        verified.insert(digest, claims.clone());
        Ok(Some(claims))
    }

    /// Makes a new key; it signs from now on, here and on every replica.
    pub async fn rotate(&self, store: &DynStore, actor: &Actor) -> Result<String> {
        let key: SealedKey = generate_key(&self.master);
        store.add_signing_key(actor, &key).await?;
        self.reload(store).await?;
        Ok(key.kid)
    }

    /// T3: the newest key and every key that can still verify a live token.
    pub async fn jwks(&self, store: &DynStore) -> Result<Arc<Jwks>> {
        if let Some((at, doc)) = self.jwks.lock().expect("jwks lock").as_ref()
            && at.elapsed() < JWKS_TTL
            && !self.stale.load(Ordering::SeqCst)
        {
            return Ok(doc.clone());
        }
        let keys = store.signing_keys().await?;
        let live = store.live_token_kids(Timestamp::now()).await?;
        let doc = Arc::new(Jwks {
            keys: keys
                .iter()
                .enumerate()
                .filter(|(i, k)| *i == 0 || live.contains(&k.kid))
                .map(|(_, k)| k.jwk())
                .collect(),
        });
        *self.jwks.lock().expect("jwks lock") = Some((Instant::now(), doc.clone()));
        Ok(doc)
    }
}

impl ChangeListener for KeyRing {
    fn changed(&self, change: &Change) {
        if matches!(change, Change::Keys | Change::All | Change::Unreliable) {
            self.stale.store(true, Ordering::SeqCst);
        }
        // A revocation may retire a key from the JWKS; recompute it on the next request.
        *self.jwks.lock().expect("jwks lock") = None;
    }
}
