//! Group grants (R11).

use connect_manager_core::Error;
use connect_manager_core::model::{GrantScope, GroupGrant};
use connect_manager_store::backend_tests;
use connect_manager_store::testing::{TestDb, name};

use crate::support::*;

async fn r11_group_grants_are_idempotent_and_revocable(db: TestDb) {
    let store = db.open().await;
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    let s = new_server(&store, "web", &[]).await.unwrap();
    let grants = [
        GroupGrant {
            scope: GrantScope::Manager,
            server_id: None,
        },
        GroupGrant {
            scope: GrantScope::AllServers,
            server_id: None,
        },
        GroupGrant {
            scope: GrantScope::Server,
            server_id: Some(s.id.clone()),
        },
    ];
    for grant in &grants {
        store.grant_group(&actor(), &g.id, grant).await.unwrap();
        let twice = store.grant_group(&actor(), &g.id, grant).await.unwrap();
        assert_eq!(twice.grants.iter().filter(|x| *x == grant).count(), 1);
    }
    assert_eq!(
        store.find_groups("OPS").await.unwrap().into_vec()[0]
            .grants
            .len(),
        3
    );
    for grant in &grants {
        store.revoke_group(&actor(), &g.id, grant).await.unwrap();
        assert!(matches!(
            store.revoke_group(&actor(), &g.id, grant).await,
            Err(Error::NotFound { .. })
        ));
    }
}

backend_tests!(r11_group_grants_are_idempotent_and_revocable,);
