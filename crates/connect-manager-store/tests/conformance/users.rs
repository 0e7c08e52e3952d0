//! Users, their API keys and memberships; the last owner stays (A2).

use connect_manager_core::lookup::Found;
use connect_manager_core::page::PageRequest;
use connect_manager_core::{Error, Timestamp};
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{Bootstrap, KeyAuth, NewApiKey, backend_tests};

use crate::support::*;

async fn a2_last_owner_stays(db: TestDb) {
    let store = db.open().await;
    let Bootstrap::Created(owner) = store
        .bootstrap_owner(&name("Owner"), "o@x", "h")
        .await
        .unwrap()
    else {
        panic!()
    };
    let owners = store
        .find_groups("owners")
        .await
        .unwrap()
        .into_vec()
        .remove(0);
    assert!(matches!(
        store.delete_user(&actor(), &owner.id).await,
        Err(Error::Conflict {
            code: "last_owner",
            ..
        })
    ));
    assert!(matches!(
        store.remove_member(&actor(), &owners.id, &owner.id).await,
        Err(Error::Conflict {
            code: "last_owner",
            ..
        })
    ));
    assert!(matches!(
        store.delete_group(&actor(), &owners.id).await,
        Err(Error::Conflict { .. })
    ));
    let second = store
        .create_user(&actor(), &name("Second"), "second@x")
        .await
        .unwrap();
    store
        .add_member(&actor(), &owners.id, &second.id)
        .await
        .unwrap();
    store
        .remove_member(&actor(), &owners.id, &owner.id)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_user(&actor(), &second.id).await,
        Err(Error::Conflict { .. })
    ));
}

async fn users_keys_and_memberships_cascade(db: TestDb) {
    let store = db.open().await;
    let u = store
        .create_user(&actor(), &name("Ann"), "Ann@Example.com")
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_user(&actor(), &name("Ann 2"), "ann@example.COM")
            .await,
        Err(Error::Conflict {
            code: "email_taken",
            ..
        })
    ));
    assert_eq!(
        store.find_users("ann@example.com").await.unwrap(),
        Found::Names(vec![u.clone()])
    );
    let k = store
        .create_api_key(&actor(), &u.id, "hash-ann")
        .await
        .unwrap();
    assert_eq!(
        store
            .list_api_keys(&u.id, &PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![k.clone()]
    );
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    store.add_member(&actor(), &g.id, &u.id).await.unwrap();
    assert_eq!(
        store
            .add_member(&actor(), &g.id, &u.id)
            .await
            .unwrap()
            .members,
        vec![u.id.clone()]
    );
    assert!(store.principal_for_key("hash-ann").await.unwrap().is_some());
    store.delete_api_key(&actor(), &u.id, &k.id).await.unwrap();
    assert!(store.principal_for_key("hash-ann").await.unwrap().is_none());
    store
        .create_api_key(&actor(), &u.id, "hash-ann-2")
        .await
        .unwrap();
    store.delete_user(&actor(), &u.id).await.unwrap();
    assert!(
        store
            .principal_for_key("hash-ann-2")
            .await
            .unwrap()
            .is_none(),
        "keys go with the user"
    );
    assert!(
        store.find_groups("ops").await.unwrap().into_vec()[0]
            .members
            .is_empty()
    );
    assert!(matches!(
        store.create_api_key(&actor(), &u.id, "h").await,
        Err(Error::NotFound { kind: "user", .. })
    ));
}

/// An API key authenticates until `expires_at` and from that instant is refused as expired (not
/// unknown), the same whether the lookup or the list asks.
async fn api_key_expiry_is_decided_at_expires_at(db: TestDb) {
    let store = db.open().await;
    let u = store
        .create_user(&actor(), &name("Ann"), "ann@x")
        .await
        .unwrap();
    let at = Timestamp::now().plus_seconds(3600);
    let key = NewApiKey {
        key_hash: "hash-exp".into(),
        name: name("ci"),
        expires_at: Some(at),
    };
    let info = store
        .create_named_api_key(&actor(), &u.id, &key)
        .await
        .unwrap();
    assert_eq!(info.name, "ci");
    let before = Timestamp(at.micros() - 1);
    assert!(matches!(
        store.authenticate_key("hash-exp", before).await.unwrap(),
        KeyAuth::Valid { ref key_id, last_used_at: None, .. } if *key_id == info.id
    ));
    assert_eq!(
        store.authenticate_key("hash-exp", at).await.unwrap(),
        KeyAuth::Expired {
            key_id: info.id.clone(),
            expired_at: at
        }
    );
    assert_eq!(
        store.authenticate_key("nope", at).await.unwrap(),
        KeyAuth::Unknown
    );
    let listed = store
        .list_api_keys(&u.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items[0].expires_at, Some(at));
    assert!(!listed.items[0].expired, "an hour to go");
    // A key without an expiry never expires.
    store
        .create_api_key(&actor(), &u.id, "hash-forever")
        .await
        .unwrap();
    assert!(matches!(
        store
            .authenticate_key("hash-forever", Timestamp(i64::MAX / 2))
            .await
            .unwrap(),
        KeyAuth::Valid { .. }
    ));
}

/// `last_used_at` is written when absent or a minute old, never moved back, and the lookup
/// returns it (so the caller decides without a write).
async fn api_key_last_use_is_written_at_most_once_a_minute(db: TestDb) {
    let store = db.open().await;
    let u = store
        .create_user(&actor(), &name("Ann"), "ann@x")
        .await
        .unwrap();
    let info = store
        .create_api_key(&actor(), &u.id, "hash-use")
        .await
        .unwrap();
    let t0 = Timestamp::now();
    assert!(store.touch_api_key(&info.id, t0).await.unwrap());
    assert!(
        !store
            .touch_api_key(&info.id, t0.plus_seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .touch_api_key(&info.id, t0.plus_seconds(-120))
            .await
            .unwrap()
    );
    let KeyAuth::Valid { last_used_at, .. } = store.authenticate_key("hash-use", t0).await.unwrap()
    else {
        panic!("valid")
    };
    assert_eq!(last_used_at, Some(t0));
    assert!(
        store
            .touch_api_key(&info.id, t0.plus_seconds(60))
            .await
            .unwrap()
    );
    let listed = store
        .list_api_keys(&u.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items[0].last_used_at, Some(t0.plus_seconds(60)));
    assert!(!store.touch_api_key("no-such-key", t0).await.unwrap());
}

backend_tests!(
    a2_last_owner_stays,
    users_keys_and_memberships_cascade,
    api_key_expiry_is_decided_at_expires_at,
    api_key_last_use_is_written_at_most_once_a_minute,
);
