//! Signing keys and the master key at rest (issue 12, items 6 and 9), on both backends: keys
//! retire, and the master key check is replaced once, with every key re-sealed in the same
//! transaction, however many replicas start together.

use std::sync::{Arc, Mutex};

use connect_manager_core::Error;
use connect_manager_core::Timestamp;
use connect_manager_core::model::{TokenState, VaultType};
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::{KeySet, SealedKey, generate_key, reseal_legacy_key};
use connect_manager_store::testing::{TestDb, actor, name, server_spec};
use connect_manager_store::{Change, ChangeListener, DynStore, NewToken, backend_tests};

async fn key(store: &DynStore, master: &MasterKey) -> String {
    let key = generate_key(master);
    store.add_signing_key(&actor(), &key).await.unwrap();
    // Keys are ordered by creation time in microseconds: keep them apart.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    key.kid
}

async fn token(store: &DynStore, server_id: &str, vault_id: &str, kid: &str) -> String {
    let t = store
        .create_token(
            &actor(),
            &NewToken {
                id: connect_manager_core::id::new_lower(),
                server_id: server_id.into(),
                name: connect_manager_store::testing::name("t"),
                issuer: "https://cm.test".into(),
                kid: kid.into(),
                created_at: Timestamp::now(),
                expires_at: None,
                vaults: connect_manager_core::scope::TokenScope::new(vec![(vault_id.into(), 48)])
                    .unwrap(),
                exchange: None,
            },
        )
        .await
        .unwrap();
    t.id
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Change>>);

impl ChangeListener for Recorder {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

async fn t3_retire_takes_a_key_out_and_revokes_its_tokens(db: TestDb) {
    let store = db.open().await;
    let master = MasterKey::random();
    let old = key(&store, &master).await;
    let newest = key(&store, &master).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = store
        .create_server(&actor(), &server_spec("web", &[&v.id]))
        .await
        .unwrap();
    let old_token = token(&store, &s.id, &v.id, &old).await;
    let new_token = token(&store, &s.id, &v.id, &newest).await;
    let recorder = Arc::new(Recorder::default());
    store.subscribe(recorder.clone());

    // The key that signs is refused: rotate first.
    let err = store
        .retire_signing_key(&actor(), &newest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                code: "signing_key_in_use",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .retire_signing_key(&actor(), "nosuchkey")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    let retired = store.retire_signing_key(&actor(), &old).await.unwrap();
    assert_eq!(
        (retired.kid.as_str(), retired.tokens_revoked),
        (old.as_str(), 1)
    );
    assert!(
        recorder.0.lock().unwrap().contains(&Change::Keys),
        "announced before the call returned"
    );
    let kids: Vec<String> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![newest.clone()]);
    assert_eq!(store.signing_kids().await.unwrap(), vec![newest.clone()]);
    assert_eq!(
        store.token(&old_token).await.unwrap().unwrap().state,
        TokenState::Revoked
    );
    assert_eq!(
        store.token(&new_token).await.unwrap().unwrap().state,
        TokenState::Active
    );
    // Again: nothing changes.
    let again = store.retire_signing_key(&actor(), &old).await.unwrap();
    assert_eq!(
        (again.tokens_revoked, again.retired_at),
        (0, retired.retired_at)
    );
    // The only key left is the newest: it cannot be retired.
    assert!(store.retire_signing_key(&actor(), &newest).await.is_err());
}

/// A key as installations made before issue 12 sealed it: no associated data, under the
/// legacy master key.
fn legacy_key(old: &MasterKey) -> SealedKey {
    let fresh_master = MasterKey::random();
    let fresh = generate_key(&fresh_master);
    let der = fresh_master
        .open(
            &connect_manager_core::token::key_binding(&fresh.kid, &fresh.x, &fresh.y),
            &fresh.sealed_private,
        )
        .unwrap();
    let sealed = old.seal(b"", &der);
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed.strip_prefix("v2.").unwrap())
        .unwrap();
    SealedKey {
        sealed_private: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        ..fresh
    }
}

async fn defect_master_key_upgrade_reseals_every_key_once_under_concurrent_starts(db: TestDb) {
    let store = db.open().await;
    let old = MasterKey::legacy_v1(&"p".repeat(40)).unwrap();
    let new = MasterKey::random();
    // As a release before issue 12 left it: a v1 check, keys sealed without associated data.
    let legacy_check = old.legacy_check_value();
    assert_eq!(
        store
            .init_setting("master_key_check", &legacy_check)
            .await
            .unwrap(),
        legacy_check
    );
    let keys = [legacy_key(&old), legacy_key(&old), legacy_key(&old)];
    for k in &keys {
        store.add_signing_key(&actor(), k).await.unwrap();
    }
    // Several replicas start at once: each tries; exactly one re-seals.
    let resealed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let attempts = (0..4).map(|_| {
        let store = store.clone();
        let (old, new, resealed) = (old.clone(), new.clone(), resealed.clone());
        let legacy_check = legacy_check.clone();
        tokio::spawn(async move {
            let check = new.check_value();
            let reseal = move |k: &SealedKey| {
                resealed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                reseal_legacy_key(&old, &new, k)
            };
            store
                .replace_master_key_check(
                    Some(&legacy_check),
                    &check,
                    &[(
                        "master_key_kdf",
                        "argon2id$m=8,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA",
                    )],
                    &reseal,
                )
                .await
                .unwrap()
        })
    });
    let won: Vec<bool> = futures_join(attempts.collect()).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert_eq!(
        resealed.load(std::sync::atomic::Ordering::SeqCst),
        keys.len()
    );
    assert_eq!(
        store.setting("master_key_check").await.unwrap().unwrap(),
        new.check_value()
    );
    assert!(store.setting("master_key_kdf").await.unwrap().is_some());
    // Every key opens under the new master key, bound to its ID and public key.
    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), keys.len());
    let set = KeySet::open(&new, &stored).unwrap();
    for k in &keys {
        assert!(set.knows(&k.kid));
        assert!(set.public_keys().iter().any(|j| j.x == k.x && j.y == k.y));
    }
    // A failed re-seal (a key that does not open) changes nothing.
    let stranger = MasterKey::random();
    let err = store
        .replace_master_key_check(
            Some(&new.check_value()),
            &stranger.check_value(),
            &[],
            &|k| reseal_legacy_key(&stranger, &stranger, k),
        )
        .await;
    assert!(err.is_err());
    assert_eq!(
        store.setting("master_key_check").await.unwrap().unwrap(),
        new.check_value(),
        "rolled back whole"
    );
    // A fresh database: the check is set once.
    let first = MasterKey::random();
    let fresh = TestDb::for_backend(store.backend()).await.unwrap();
    let fresh_store = fresh.open().await;
    let none = |_: &SealedKey| -> connect_manager_core::Result<SealedKey> { unreachable!() };
    assert!(
        fresh_store
            .replace_master_key_check(None, &first.check_value(), &[], &none)
            .await
            .unwrap()
    );
    assert!(
        !fresh_store
            .replace_master_key_check(None, &new.check_value(), &[], &none)
            .await
            .unwrap()
    );
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<bool>>) -> Vec<bool> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

backend_tests!(
    t3_retire_takes_a_key_out_and_revokes_its_tokens,
    defect_master_key_upgrade_reseals_every_key_once_under_concurrent_starts,
);
