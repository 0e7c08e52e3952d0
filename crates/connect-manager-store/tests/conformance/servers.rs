//! Servers: create (R3), delete (R4), vault grants (R5, R6), secret rotation (C3).

use connect_manager_core::Error;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{GrantScope, GroupGrant, ServerState, VaultType};
use connect_manager_core::page::PageRequest;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::{TestDb, name};

use crate::support::*;

async fn r3_server_create_is_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    let ok = store
        .create_vault(&actor(), &name("Shared"), VaultType::Everyone)
        .await
        .unwrap();
    let personal = store
        .create_vault(&actor(), &name("Mine"), VaultType::Personal)
        .await
        .unwrap();
    let before = audit_count(&store).await;
    let err = new_server(&store, "web", &[&ok.id, &personal.id])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                code: "vault_not_grantable",
                ..
            }
        ),
        "{err:?}"
    );
    let err = new_server(&store, "web", &[&ok.id, "nosuchvault0000000000000000"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { kind: "vault", .. }),
        "{err:?}"
    );
    let all = everyone();
    assert!(
        store
            .list_servers(&all, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        audit_count(&store).await,
        before,
        "a failed change leaves no event"
    );
    let s = new_server(&store, "web", &[&ok.id, &ok.id]).await.unwrap();
    assert_eq!(s.vaults.len(), 1);
    assert_eq!(s.vaults[0].id, ok.id);
    assert_eq!(s.state, ServerState::Active);
    assert_eq!(s.tokens_version, 1);
}

async fn r4_server_delete_frees_name_ends_grants_keeps_row(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("Shared"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    let grant = GroupGrant {
        scope: GrantScope::Server,
        server_id: Some(s.id.clone()),
    };
    store.grant_group(&actor(), &g.id, &grant).await.unwrap();
    assert!(store.server_access(&s.id).await.unwrap().is_some());
    assert_eq!(
        store.delete_server(&actor(), &s.id).await.unwrap(),
        0,
        "no token to revoke"
    );
    assert!(
        store.server_access(&s.id).await.unwrap().is_none(),
        "credentials dead"
    );
    assert_eq!(
        store.find_servers(&everyone(), "web").await.unwrap(),
        Found::Names(vec![])
    );
    let kept = store.get_server(&s.id).await.unwrap().unwrap();
    assert_eq!(kept.state, ServerState::Deleted);
    assert!(kept.vaults.is_empty(), "vault grants end");
    assert!(
        store.find_groups(&g.id).await.unwrap().into_vec()[0]
            .grants
            .is_empty(),
        "group grants end"
    );
    new_server(&store, "web", &[])
        .await
        .expect("the name is free again");
    assert!(matches!(
        store.delete_server(&actor(), &s.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn r5_grant_checks_vault_and_is_idempotent(db: TestDb) {
    let store = db.open().await;
    let s = new_server(&store, "web", &[]).await.unwrap();
    for t in [VaultType::Personal, VaultType::Private, VaultType::Employee] {
        let v = store
            .create_vault(&actor(), &name(t.as_str()), t)
            .await
            .unwrap();
        let err = store.grant_vault(&actor(), &s.id, &v.id).await.unwrap_err();
        assert!(matches!(
            err,
            Error::Invalid {
                code: "vault_not_grantable",
                ..
            }
        ));
    }
    let v = store
        .create_vault(&actor(), &name("Shared"), VaultType::Transfer)
        .await
        .unwrap();
    store.grant_vault(&actor(), &s.id, &v.id).await.unwrap();
    let again = store.grant_vault(&actor(), &s.id, &v.id).await.unwrap();
    assert_eq!(again.vaults.len(), 1);
    assert!(matches!(
        store
            .grant_vault(&actor(), &s.id, "nosuchvault0000000000000000")
            .await,
        Err(Error::NotFound { kind: "vault", .. })
    ));
}

async fn r6_revoke_ends_grant_and_404s_without_one(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("Shared"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let after = store.revoke_vault(&actor(), &s.id, &v.id).await.unwrap();
    assert!(after.vaults.is_empty());
    assert!(matches!(
        store.revoke_vault(&actor(), &s.id, &v.id).await,
        Err(Error::NotFound { .. })
    ));
    // Deleting a vault ends its grants too.
    let s2 = new_server(&store, "api", &[&v.id]).await.unwrap();
    assert_eq!(s2.vaults.len(), 1);
    store.delete_vault(&actor(), &v.id).await.unwrap();
    assert!(
        store
            .get_server(&s2.id)
            .await
            .unwrap()
            .unwrap()
            .vaults
            .is_empty()
    );
}

async fn c3_rotation_replaces_verifier_and_bumps_version(db: TestDb) {
    let store = db.open().await;
    let s = new_server(&store, "web", &[]).await.unwrap();
    let rotated = store
        .rotate_server_secret(&actor(), &s.id, "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(rotated.tokens_version, 2);
    let creds = store
        .server_access(&s.id)
        .await
        .unwrap()
        .unwrap()
        .credentials;
    assert_eq!(creds.secret_verifier, "$argon2id$new");
    assert_eq!(creds.tokens_version, 2);
}

backend_tests!(
    r3_server_create_is_all_or_nothing,
    r4_server_delete_frees_name_ends_grants_keeps_row,
    r5_grant_checks_vault_and_is_idempotent,
    r6_revoke_ends_grant_and_404s_without_one,
    c3_rotation_replaces_verifier_and_bumps_version,
);
