//! The audit trail: changes and denials are audited (A5).

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

backend_tests!(a5_changes_and_denials_are_audited,);
