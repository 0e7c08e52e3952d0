//! R1 lookups of vaults, servers, groups and users: an ID, else a name.

use connect_manager_core::lookup::Found;
use connect_manager_core::model::VaultType;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::{TestDb, name};

use crate::support::*;

async fn r1_find_matches_id_or_name_key(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("Prod Secrets"), VaultType::UserCreated)
        .await
        .unwrap();
    assert_eq!(
        store.find_vaults("prod secrets").await.unwrap(),
        Found::Names(vec![v.clone()])
    );
    assert_eq!(
        store.find_vaults(&v.id).await.unwrap(),
        Found::Id(v.clone())
    );
    assert_eq!(
        store.find_vaults("nope").await.unwrap(),
        Found::Names(vec![])
    );
    let s = new_server(&store, "Web", &[]).await.unwrap();
    assert_eq!(
        store
            .find_servers(&everyone(), "WEB")
            .await
            .unwrap()
            .into_vec()
            .len(),
        1
    );
    assert!(matches!(
        store.find_servers(&everyone(), &s.id).await.unwrap(),
        Found::Id(found) if found.id == s.id
    ));
}

/// R1 for vaults, groups and users: an ID wins over a name equal to it.
async fn r1_exact_id_wins_over_a_name_equal_to_it(db: TestDb) {
    let store = db.open().await;
    let v1 = store
        .create_vault(&actor(), &name("one"), VaultType::Everyone)
        .await
        .unwrap();
    let v2 = store
        .create_vault(&actor(), &name(&v1.id), VaultType::Everyone)
        .await
        .unwrap();
    assert_eq!(store.find_vaults(&v1.id).await.unwrap(), Found::Id(v1));
    assert_eq!(
        store.find_vaults(&v2.name.to_uppercase()).await.unwrap(),
        Found::Names(vec![v2])
    );
    let g1 = store.create_group(&actor(), &name("one")).await.unwrap();
    let g2 = store.create_group(&actor(), &name(&g1.id)).await.unwrap();
    assert!(matches!(
        store.find_groups(&g1.id).await.unwrap(),
        Found::Id(g) if g.id == g1.id
    ));
    assert!(matches!(
        store.find_groups(&g1.id.to_uppercase()).await.unwrap(),
        Found::Names(g) if g.len() == 1 && g[0].id == g2.id
    ));
    let u = store
        .create_user(&actor(), &name("Ann"), "ann@example.test")
        .await
        .unwrap();
    assert_eq!(store.find_users(&u.id).await.unwrap(), Found::Id(u.clone()));
    assert_eq!(
        store.find_users("ANN@example.test").await.unwrap(),
        Found::Names(vec![u])
    );
}

backend_tests!(
    r1_find_matches_id_or_name_key,
    r1_exact_id_wins_over_a_name_equal_to_it,
);
