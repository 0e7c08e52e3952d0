//! What the conformance tests share: the actor, a viewer, ways to make a server, a token, a
//! signing key and a grantee; and, from `connect_manager_store::testing`, the actor and a listener
//! that records changes.

use connect_manager_core::Error;
use connect_manager_core::Timestamp;
use connect_manager_core::model::{GrantScope, GroupGrant};
use connect_manager_core::page::PageRequest;
use connect_manager_core::principal::Principal;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::generate_key;
use connect_manager_store::testing::server_spec;
pub(crate) use connect_manager_store::testing::{Recorder, actor};
use connect_manager_store::{AuditFilter, DynStore, NewToken};

/// A viewer who may manage every server.
pub(crate) fn everyone() -> Principal {
    Principal {
        owner: true,
        ..Default::default()
    }
}

pub(crate) async fn new_server(
    store: &DynStore,
    name: &str,
    vaults: &[&str],
) -> Result<connect_manager_core::model::Server, Error> {
    store
        .create_server(&actor(), &server_spec(name, vaults))
        .await
}

pub(crate) async fn audit_count(store: &DynStore) -> usize {
    store
        .list_audit_events(
            &AuditFilter::default(),
            &PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .len()
}

pub(crate) fn new_token(
    server_id: &str,
    kid: &str,
    name: &str,
    vaults: &[(&str, i64)],
) -> NewToken {
    NewToken {
        id: connect_manager_core::id::new_lower(),
        server_id: server_id.into(),
        name: connect_manager_store::testing::name(name),
        issuer: "https://cm.test".into(),
        kid: kid.into(),
        created_at: Timestamp::now(),
        expires_at: None,
        vaults: connect_manager_core::scope::TokenScope::new(
            vaults
                .iter()
                .map(|(v, a)| (v.to_string(), *a))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        exchange: None,
    }
}

pub(crate) async fn signing_key(store: &DynStore) -> String {
    let master = MasterKey::random();
    let key = generate_key(&master);
    store.add_signing_key(&actor(), &key).await.unwrap();
    key.kid
}

/// A user in a group granted `server_id` alone (A3), as the store sees them.
pub(crate) async fn grantee_of(store: &DynStore, server_id: &str, name: &str) -> Principal {
    let u = store
        .create_user(
            &actor(),
            &connect_manager_store::testing::name(name),
            &format!("{name}@example.test"),
        )
        .await
        .unwrap();
    let g = store
        .create_group(&actor(), &connect_manager_store::testing::name(name))
        .await
        .unwrap();
    store.add_member(&actor(), &g.id, &u.id).await.unwrap();
    store
        .grant_group(
            &actor(),
            &g.id,
            &GroupGrant {
                scope: GrantScope::Server,
                server_id: Some(server_id.into()),
            },
        )
        .await
        .unwrap();
    let hash = format!("hash-{name}");
    store.create_api_key(&actor(), &u.id, &hash).await.unwrap();
    store.principal_for_key(&hash).await.unwrap().unwrap()
}
