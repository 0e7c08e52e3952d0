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
//!   so a key rotated or retired on any replica takes effect everywhere without a restart. The
//!   key IDs are also compared with the database's once a second, which covers `admin
//!   rotate-key` and `admin retire-key` beside a running service.
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
use connect_manager_core::{Error, Result, Timestamp};
use connect_manager_store::{Change, ChangeListener, DynStore, RetiredKey, ServerAccess};

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
            // A retired key's tokens were revoked with it.
            Change::Keys => {
                tokens.clear();
            }
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

/// The signing keys (T3): the newest signs, all verify; retired keys are not loaded at all.
///
/// Every key is opened at load and its public half derived from its private half (a row
/// planted without the master key is refused at start and left out at a reload, never
/// verifying a token). A `Keys` change (a key made or retired on any replica) marks the ring
/// stale and drops every verified signature; the next use reloads. Beside that, the key IDs in
/// the database are compared at most once a second, which covers `admin rotate-key` and
/// `admin retire-key` beside a running SQLite service, which hears of no change.
pub struct KeyRing {
    master: MasterKey,
    /// Tokens whose signature verified, by SHA-256 of the JWT: the hot path verifies each
    /// distinct token once. Dropped whenever the keys change (a retired key's tokens must stop
    /// verifying at once). State (revoked, expired, scope) is never taken from here.
    verified: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
    /// Bumped by every key change, so a verification that raced with one is not remembered.
    generation: AtomicU64,
    keys: RwLock<Arc<KeySet>>,
    /// The key IDs the database listed at the last load, newest first.
    loaded_kids: Mutex<Vec<String>>,
    stale: AtomicBool,
    last_reload: Mutex<Instant>,
    jwks: Mutex<Option<(Instant, Arc<Jwks>)>>,
    /// When the key IDs were last compared, in milliseconds since `epoch`.
    kids_checked: AtomicU64,
    epoch: Instant,
}

/// How often the key IDs in the database are compared with the loaded ones.
const KEY_CHECK: Duration = Duration::from_secs(1);

/// How long a computed JWKS document is reused.
const JWKS_TTL: Duration = Duration::from_secs(5);

impl KeyRing {
    /// Loads the keys, making the first one on a new installation. Refuses (one line naming the
    /// key) if any stored key does not open bound to its ID and public key.
    pub async fn load(store: &DynStore, master: MasterKey) -> Result<KeyRing> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            let key = generate_key(&master);
            store.add_signing_key(&Actor::system("start"), &key).await?;
            keys = store.signing_keys().await?;
        }
        let set = KeySet::open(&master, &keys).map_err(|e| match e {
            Error::Internal { detail } => Error::internal(format!("refusing to start: {detail}")),
            other => other,
        })?;
        Ok(KeyRing {
            master,
            verified: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            keys: RwLock::new(Arc::new(set)),
            loaded_kids: Mutex::new(keys.into_iter().map(|k| k.kid).collect()),
            stale: AtomicBool::new(false),
            last_reload: Mutex::new(Instant::now()),
            jwks: Mutex::new(None),
            kids_checked: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    async fn reload(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        self.stale.store(false, Ordering::SeqCst);
        let keys = store.signing_keys().await?;
        let (set, refused) = KeySet::open_skipping(&self.master, &keys);
        for e in refused {
            // Left out: it verifies nothing. A restart refuses to start until it is removed.
            tracing::error!(error = %detail(&e), "a stored signing key was refused");
        }
        let set = Arc::new(set);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.verified.lock().expect("verified lock").clear();
        *self.keys.write().expect("keys lock") = set.clone();
        *self.loaded_kids.lock().expect("keys lock") = keys.into_iter().map(|k| k.kid).collect();
        *self.last_reload.lock().expect("reload lock") = Instant::now();
        *self.jwks.lock().expect("jwks lock") = None;
        Ok(set)
    }

    /// The keys in force: reloaded first if a change was announced, or if the database's key
    /// IDs (read at most once a second) are not the ones loaded.
    pub async fn current(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        if self.stale.load(Ordering::SeqCst) {
            return self.reload(store).await;
        }
        // One caller a second claims the comparison; the others go on with the keys in force.
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.kids_checked.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= KEY_CHECK.as_millis() as u64
            && self
                .kids_checked
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
        if due {
            // Best effort (announcements cover every change but one made beside a running SQLite
            // service): a failed read does not fail the request.
            match store.signing_kids().await {
                Ok(kids) if *self.loaded_kids.lock().expect("keys lock") != kids => {
                    return self.reload(store).await;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not compare the signing key IDs"),
            }
        }
        Ok(self.keys.read().expect("keys lock").clone())
    }

    /// The keys to sign with (the newest key not retired).
    pub async fn for_signing(&self, store: &DynStore) -> Result<Arc<KeySet>> {
        self.current(store).await
    }

    /// Verifies a token's signature and audience; an unknown `kid` reloads the keys at most once
    /// a second (a key made on another replica whose notice has not arrived yet).
    pub async fn verify(&self, store: &DynStore, jwt: &str) -> Result<Option<Arc<Claims>>> {
        let mut set = self.current(store).await?;
        let generation = self.generation.load(Ordering::SeqCst);
        let digest = connect_manager_core::secret::fingerprint(jwt);
        if let Some(claims) = self.verified.lock().expect("verified lock").get(&digest) {
            return Ok(Some(claims.clone()));
        }
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
        // Checked under the lock: a key change after this point drops what is inserted here.
        if self.generation.load(Ordering::SeqCst) == generation
            && !self.stale.load(Ordering::SeqCst)
        {
            if verified.len() >= MAX_ENTRIES {
                verified.clear();
            }
            verified.insert(digest, claims.clone());
        }
        Ok(Some(claims))
    }

    /// Makes a new key; it signs from now on, here and on every replica.
    pub async fn rotate(&self, store: &DynStore, actor: &Actor) -> Result<String> {
        self.make_key(store, actor, None)
            .await?
            .ok_or_else(|| Error::internal("an unconditional rotation made no key"))
    }

    /// Scheduled rotation: makes a new key, as [`Self::rotate`], if the newest key is older
    /// than `interval`; decided by the store under the signing-key lock, so of replicas racing,
    /// one makes it. The new key's ID, or `None` when the newest key is young enough.
    pub async fn rotate_if_older(
        &self,
        store: &DynStore,
        actor: &Actor,
        interval: Duration,
    ) -> Result<Option<String>> {
        let seconds = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX / 2_000_000);
        let cutoff = Timestamp::now().plus_seconds(-seconds);
        self.make_key(store, actor, Some(cutoff)).await
    }

    /// The one way the service makes a signing key: manual (`cutoff` None) or scheduled (only
    /// if the newest key was made before `cutoff`).
    async fn make_key(
        &self,
        store: &DynStore,
        actor: &Actor,
        cutoff: Option<Timestamp>,
    ) -> Result<Option<String>> {
        let key: SealedKey = generate_key(&self.master);
        match cutoff {
            None => store.add_signing_key(actor, &key).await?,
            Some(cutoff) => {
                if !store
                    .add_signing_key_if_newest_before(actor, &key, cutoff)
                    .await?
                {
                    return Ok(None);
                }
            }
        }
        self.reload(store).await?;
        Ok(Some(key.kid))
    }

    /// Retires a key: out of the JWKS, and its tokens stop verifying, here at once and on every
    /// replica as soon as it hears (the store announces the change).
    pub async fn retire(&self, store: &DynStore, actor: &Actor, kid: &str) -> Result<RetiredKey> {
        let retired = store.retire_signing_key(actor, kid).await?;
        self.reload(store).await?;
        Ok(retired)
    }

    /// T3: the newest key and every key that can still verify a live token, as their private
    /// halves give them.
    pub async fn jwks(&self, store: &DynStore) -> Result<Arc<Jwks>> {
        if let Some((at, doc)) = self.jwks.lock().expect("jwks lock").as_ref()
            && at.elapsed() < JWKS_TTL
            && !self.stale.load(Ordering::SeqCst)
        {
            return Ok(doc.clone());
        }
        let set = self.current(store).await?;
        let live = store.live_token_kids(Timestamp::now()).await?;
        let doc = Arc::new(Jwks {
            keys: set
                .public_keys()
                .iter()
                .enumerate()
                .filter(|(i, k)| *i == 0 || live.contains(&k.kid))
                .map(|(_, k)| k.clone())
                .collect(),
        });
        *self.jwks.lock().expect("jwks lock") = Some((Instant::now(), doc.clone()));
        Ok(doc)
    }
}

fn detail(e: &Error) -> String {
    match e {
        Error::Internal { detail } => detail.clone(),
        other => other.to_string(),
    }
}

impl ChangeListener for KeyRing {
    fn changed(&self, change: &Change) {
        if matches!(change, Change::Keys | Change::All | Change::Unreliable) {
            self.stale.store(true, Ordering::SeqCst);
            let mut verified = self.verified.lock().expect("verified lock");
            self.generation.fetch_add(1, Ordering::SeqCst);
            verified.clear();
        }
        // A revocation may retire a key from the JWKS; recompute it on the next request.
        *self.jwks.lock().expect("jwks lock") = None;
    }
}
