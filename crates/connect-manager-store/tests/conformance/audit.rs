//! The audit trail: changes and denials are audited (A5).

use connect_manager_core::audit::NamedKind;
use connect_manager_core::model::VaultType;
use connect_manager_core::page::PageRequest;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{AuditFilter, backend_tests};

use crate::support::*;

async fn a5_changes_and_denials_are_audited(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("Shared"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[]).await.unwrap();
    store.grant_vault(&actor(), &s.id, &v.id).await.unwrap();
    store
        .record_denial(
            &actor(),
            connect_manager_core::audit::AuditAction::VaultCreate,
            connect_manager_core::audit::TargetType::Vault,
            "",
        )
        .await
        .unwrap();
    let events = store
        .list_audit_events(&AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap()
        .items;
    let actions: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("vault.create", "denied"),
            ("vault.grant", "success"),
            ("server.create", "success"),
            ("vault.create", "success"),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.request_id == "req" && e.client_ip == "127.0.0.1")
    );
    let only = store
        .list_audit_events(
            &AuditFilter {
                action: Some("server.create".into()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].target_id, s.id);
}

/// The console shows the trail with names: each kind asked is read by ID, a user by email, a
/// deleted server by the name it kept; what is gone or never was is absent.
async fn a5_the_things_an_event_names_are_read_by_id(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("Shared"), VaultType::Everyone)
        .await
        .unwrap();
    let gone = store
        .create_vault(&actor(), &name("Gone"), VaultType::Everyone)
        .await
        .unwrap();
    store.delete_vault(&actor(), &gone.id).await.unwrap();
    let s = new_server(&store, "web", &[]).await.unwrap();
    let old = new_server(&store, "old", &[]).await.unwrap();
    store.delete_server(&actor(), &old.id).await.unwrap();
    let u = store
        .create_user(&actor(), &name("Dave"), "dave@example.test")
        .await
        .unwrap();
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    let asked = [
        (NamedKind::Vault, v.id.as_str()),
        (NamedKind::Vault, gone.id.as_str()),
        (NamedKind::Server, s.id.as_str()),
        (NamedKind::Server, old.id.as_str()),
        (NamedKind::Server, s.id.as_str()),
        (NamedKind::User, u.id.as_str()),
        (NamedKind::Group, g.id.as_str()),
        // An ID of another kind names nothing here.
        (NamedKind::Token, s.id.as_str()),
        (NamedKind::ApiKey, "nope"),
    ];
    let names = store.names_of(&asked).await.unwrap();
    let mut found: Vec<_> = names
        .iter()
        .map(|((kind, id), name)| (*kind, id.as_str(), name.as_str()))
        .collect();
    found.sort();
    let mut expected = vec![
        (NamedKind::User, u.id.as_str(), "dave@example.test"),
        (NamedKind::Group, g.id.as_str(), "ops"),
        (NamedKind::Vault, v.id.as_str(), "Shared"),
        (NamedKind::Server, s.id.as_str(), "web"),
        (NamedKind::Server, old.id.as_str(), "old"),
    ];
    expected.sort();
    assert_eq!(found, expected);
    assert!(store.names_of(&[]).await.unwrap().is_empty());
}

backend_tests!(
    a5_changes_and_denials_are_audited,
    a5_the_things_an_event_names_are_read_by_id,
);
