//! The installation: migrations, the first start (A1), settings, who an API key belongs to (A3), signing keys (T3).

use connect_manager_core::Timestamp;
use connect_manager_core::model::{GrantScope, GroupGrant, VaultType};
use connect_manager_core::page::PageRequest;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{Bootstrap, backend_tests};

use crate::support::*;

async fn s1_migrations_run_and_ping_answers(db: TestDb) {
    let store = db.open().await;
    store.ping().await.unwrap();
    // Opening again runs the migrations again: a no-op.
    let again = db.open().await;
    again.ping().await.unwrap();
    assert_eq!(store.backend(), db.backend);
}

async fn a1_bootstrap_creates_one_owner_once(db: TestDb) {
    let store = db.open().await;
    let created = store
        .bootstrap_owner(&name("Owner"), "owner@localhost", "hash-1")
        .await
        .unwrap();
    let Bootstrap::Created(owner) = created else {
        panic!("expected a new owner")
    };
    assert_eq!(
        store
            .bootstrap_owner(&name("Other"), "o@x", "hash-2")
            .await
            .unwrap(),
        Bootstrap::AlreadyDone
    );
    let p = store.principal_for_key("hash-1").await.unwrap().unwrap();
    assert_eq!(p.user_id, owner.id);
    assert!(p.owner);
    assert!(store.principal_for_key("hash-2").await.unwrap().is_none());
    assert_eq!(store.owners().await.unwrap(), vec![owner]);
}

async fn a1_concurrent_first_starts_make_one_owner(db: TestDb) {
    let stores = [db.open().await, db.open().await, db.open().await];
    let mut tasks = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.bootstrap_owner(&name("Owner"), &format!("o{i}@x"), &format!("key-{i}"))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        if let Bootstrap::Created(_) = t.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(stores[0].owners().await.unwrap().len(), 1);
}

async fn init_setting_keeps_the_first_value(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.init_setting("k", "a").await.unwrap(), "a");
    assert_eq!(store.init_setting("k", "b").await.unwrap(), "a");
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("a"));
    assert_eq!(store.setting("missing").await.unwrap(), None);
}

async fn a3_principal_carries_group_grants(db: TestDb) {
    let store = db.open().await;
    let u = store
        .create_user(&actor(), &name("Ann"), "ann@x")
        .await
        .unwrap();
    store.create_api_key(&actor(), &u.id, "k").await.unwrap();
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    store.add_member(&actor(), &g.id, &u.id).await.unwrap();
    let s = new_server(&store, "web", &[]).await.unwrap();
    let other = new_server(&store, "api", &[]).await.unwrap();
    store
        .grant_group(
            &actor(),
            &g.id,
            &GroupGrant {
                scope: GrantScope::Server,
                server_id: Some(s.id.clone()),
            },
        )
        .await
        .unwrap();
    let p = store.principal_for_key("k").await.unwrap().unwrap();
    assert!(!p.owner && !p.manager && !p.all_servers);
    assert!(p.servers.contains(&s.id));
    let page = store
        .list_servers(&p, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&s.id]
    );
    store
        .grant_group(
            &actor(),
            &g.id,
            &GroupGrant {
                scope: GrantScope::AllServers,
                server_id: None,
            },
        )
        .await
        .unwrap();
    let p = store.principal_for_key("k").await.unwrap().unwrap();
    assert!(p.all_servers);
    let page = store
        .list_servers(&p, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.items.iter().any(|x| x.id == other.id));
}

async fn t3_signing_keys_newest_first_and_live_kids(db: TestDb) {
    let store = db.open().await;
    let first = signing_key(&store).await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let second = signing_key(&store).await;
    let kids: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![second.clone(), first.clone()]);
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let t = store
        .create_token(&actor(), &new_token(&s.id, &first, "old", &[(&v.id, 48)]))
        .await
        .unwrap();
    let mut expired = new_token(&s.id, &second, "expired", &[(&v.id, 48)]);
    expired.expires_at = Some(Timestamp(1));
    store.create_token(&actor(), &expired).await.unwrap();
    assert_eq!(
        store.live_token_kids(Timestamp::now()).await.unwrap(),
        vec![first.clone()]
    );
    store.revoke_token(&actor(), &t.id).await.unwrap();
    assert!(
        store
            .live_token_kids(Timestamp::now())
            .await
            .unwrap()
            .is_empty()
    );
}

backend_tests!(
    s1_migrations_run_and_ping_answers,
    a1_bootstrap_creates_one_owner_once,
    a1_concurrent_first_starts_make_one_owner,
    init_setting_keeps_the_first_value,
    a3_principal_carries_group_grants,
    t3_signing_keys_newest_first_and_live_kids,
);
