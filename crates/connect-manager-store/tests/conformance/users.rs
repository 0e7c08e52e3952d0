//! Users, their API keys and memberships; the last owner stays (A2).

use connect_manager_core::Error;
use connect_manager_core::lookup::Found;
use connect_manager_core::page::PageRequest;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{Bootstrap, backend_tests};

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

backend_tests!(a2_last_owner_stays, users_keys_and_memberships_cascade,);
