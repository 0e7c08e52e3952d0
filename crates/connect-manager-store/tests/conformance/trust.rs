//! Workload identity (issue 18): trusted issuers, servers' trust policies (scope as R7, deleted
//! with their server, R4), and an exchanged token's provenance.

use std::collections::BTreeMap;

use connect_manager_core::Error;
use connect_manager_core::api::trust::TokenExchangeOrigin;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{Actor, VaultType};
use connect_manager_core::page::PageRequest;
use connect_manager_core::scope::TokenScope;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{AuditFilter, DynStore, NewIssuer, NewTrustPolicy, backend_tests};

use crate::support::*;

async fn issuer(store: &DynStore, n: &str, url: &str) -> String {
    store
        .create_issuer(
            &actor(),
            &NewIssuer {
                name: name(n),
                issuer: url.into(),
            },
        )
        .await
        .unwrap()
        .id
}

fn policy(server_id: &str, issuer_id: &str, n: &str, vaults: &[&str]) -> NewTrustPolicy {
    NewTrustPolicy {
        server_id: server_id.into(),
        issuer_id: issuer_id.into(),
        name: name(n),
        audience: "connect-manager".into(),
        subject: "repo:acme/*".into(),
        claims: BTreeMap::from([("environment".into(), "production".into())]),
        vaults: TokenScope::new(vaults.iter().map(|v| (v.to_string(), 16))).unwrap(),
        ttl_seconds: 900,
    }
}

async fn vault(store: &DynStore, n: &str) -> String {
    store
        .create_vault(&actor(), &name(n), VaultType::Everyone)
        .await
        .unwrap()
        .id
}

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

async fn actions(store: &DynStore) -> Vec<String> {
    store
        .list_audit_events(&AuditFilter::default(), &page())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn issuers_are_unique_by_url_and_by_name(db: TestDb) {
    let store = db.open().await;
    let id = issuer(
        &store,
        "github",
        "https://token.actions.githubusercontent.com",
    )
    .await;
    let same_url = store
        .create_issuer(
            &actor(),
            &NewIssuer {
                name: name("gh2"),
                issuer: "https://token.actions.githubusercontent.com".into(),
            },
        )
        .await;
    assert!(
        matches!(
            same_url,
            Err(Error::Conflict {
                code: "issuer_taken",
                ..
            })
        ),
        "{same_url:?}"
    );
    let same_name = store
        .create_issuer(
            &actor(),
            &NewIssuer {
                name: name("GitHub"),
                issuer: "https://gitlab.com".into(),
            },
        )
        .await;
    assert!(
        matches!(
            same_name,
            Err(Error::Conflict {
                code: "name_taken",
                ..
            })
        ),
        "{same_name:?}"
    );
    assert!(matches!(store.find_issuers(&id).await.unwrap(), Found::Id(i) if i.name == "github"));
    assert!(
        matches!(store.find_issuers("GITHUB").await.unwrap(), Found::Names(v) if v.len() == 1 && v[0].id == id)
    );
    let by_url = store
        .issuer_by_url("https://token.actions.githubusercontent.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_url.id, id);
    assert_eq!(by_url.creator_id, actor().user_id);
    assert!(
        store
            .issuer_by_url("https://token.actions.githubusercontent.com/")
            .await
            .unwrap()
            .is_none(),
        "iss is matched exactly"
    );
    assert_eq!(store.list_issuers(&page()).await.unwrap().items.len(), 1);
    assert!(actions(&store).await.contains(&"issuer.create".to_owned()));
}

async fn an_issuer_named_by_a_policy_is_not_deleted(db: TestDb) {
    let store = db.open().await;
    let v = vault(&store, "prod").await;
    let s = new_server(&store, "web", &[&v]).await.unwrap();
    let i = issuer(&store, "github", "https://issuer.example").await;
    let p = store
        .create_trust_policy(&actor(), &policy(&s.id, &i, "deploy", &[&v]))
        .await
        .unwrap();
    let refused = store.delete_issuer(&actor(), &i).await;
    assert!(
        matches!(
            refused,
            Err(Error::Conflict {
                code: "issuer_in_use",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        store
            .issuer_by_url("https://issuer.example")
            .await
            .unwrap()
            .is_some()
    );
    store
        .delete_trust_policy(&actor(), &s.id, &p.id)
        .await
        .unwrap();
    store.delete_issuer(&actor(), &i).await.unwrap();
    assert!(
        store
            .issuer_by_url("https://issuer.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.delete_issuer(&actor(), &i).await,
        Err(Error::NotFound { .. })
    ));
    let done = actions(&store).await;
    for a in [
        "trust_policy.create",
        "trust_policy.delete",
        "issuer.delete",
    ] {
        assert!(done.contains(&a.to_owned()), "{a}: {done:?}");
    }
}

async fn trust_policies_reach_only_vaults_granted_to_a_live_server(db: TestDb) {
    let store = db.open().await;
    let granted = vault(&store, "granted").await;
    let other = vault(&store, "other").await;
    let s = new_server(&store, "web", &[&granted]).await.unwrap();
    let i = issuer(&store, "github", "https://issuer.example").await;
    let before = audit_count(&store).await;
    let err = store
        .create_trust_policy(&actor(), &policy(&s.id, &i, "p", &[&granted, &other]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                code: "vault_not_granted",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .create_trust_policy(&actor(), &policy(&s.id, "nope", "p", &[&granted]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { kind: "issuer", .. }),
        "{err:?}"
    );
    assert_eq!(audit_count(&store).await, before, "refusals change nothing");
    let p = store
        .create_trust_policy(&actor(), &policy(&s.id, &i, "p", &[&granted]))
        .await
        .unwrap();
    assert_eq!(p.vaults, vec![(granted.clone(), 16)]);
    assert_eq!(p.issuer, "https://issuer.example");
    assert_eq!(p.claims["environment"], "production");
    store.delete_server(&actor(), &s.id).await.unwrap();
    let err = store
        .create_trust_policy(&actor(), &policy(&s.id, &i, "q", &[&granted]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { kind: "server", .. }),
        "{err:?}"
    );
}

async fn policy_names_are_unique_per_server(db: TestDb) {
    let store = db.open().await;
    let v = vault(&store, "prod").await;
    let a = new_server(&store, "a", &[&v]).await.unwrap();
    let b = new_server(&store, "b", &[&v]).await.unwrap();
    let i = issuer(&store, "github", "https://issuer.example").await;
    store
        .create_trust_policy(&actor(), &policy(&a.id, &i, "deploy", &[&v]))
        .await
        .unwrap();
    let dup = store
        .create_trust_policy(&actor(), &policy(&a.id, &i, "DEPLOY", &[&v]))
        .await;
    assert!(
        matches!(
            dup,
            Err(Error::Conflict {
                code: "name_taken",
                ..
            })
        ),
        "{dup:?}"
    );
    store
        .create_trust_policy(&actor(), &policy(&b.id, &i, "deploy", &[&v]))
        .await
        .unwrap();
    let Found::Names(found) = store.find_trust_policies(&a.id, "Deploy").await.unwrap() else {
        panic!("by name")
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].server_id, a.id);
    assert!(
        matches!(
            store.find_trust_policies(&b.id, &found[0].id).await.unwrap(),
            Found::Names(v) if v.is_empty()
        ),
        "another server's policy is not found by ID"
    );
    assert!(matches!(
        store
            .delete_trust_policy(&actor(), &b.id, &found[0].id)
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn exchange_policies_are_tried_oldest_first_per_issuer(db: TestDb) {
    let store = db.open().await;
    let v = vault(&store, "prod").await;
    let s = new_server(&store, "web", &[&v]).await.unwrap();
    let i = issuer(&store, "github", "https://issuer.example").await;
    let j = issuer(&store, "gitlab", "https://gitlab.example").await;
    let mut made = Vec::new();
    for n in ["first", "second", "third"] {
        made.push(
            store
                .create_trust_policy(&actor(), &policy(&s.id, &i, n, &[&v]))
                .await
                .unwrap()
                .id,
        );
    }
    store
        .create_trust_policy(&actor(), &policy(&s.id, &j, "other", &[&v]))
        .await
        .unwrap();
    let tried: Vec<String> = store
        .exchange_policies(&s.id, &i)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(tried, made);
    let listed: Vec<String> = store
        .list_trust_policies(&s.id, &page())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        listed,
        ["first", "second", "third", "other"],
        "listed in the order they are tried"
    );
    let two = store
        .list_trust_policies(
            &s.id,
            &PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(two.items.len(), 2);
    let rest = store
        .list_trust_policies(
            &s.id,
            &PageRequest::parse(Some(2), two.next_cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
    let paged: Vec<String> = two
        .items
        .iter()
        .chain(&rest.items)
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(paged, listed, "pages follow without gaps");
    assert!(rest.next_cursor.is_none());
}

async fn r4_a_deleted_servers_policies_go_with_it(db: TestDb) {
    let store = db.open().await;
    let v = vault(&store, "prod").await;
    let s = new_server(&store, "web", &[&v]).await.unwrap();
    let i = issuer(&store, "github", "https://issuer.example").await;
    store
        .create_trust_policy(&actor(), &policy(&s.id, &i, "deploy", &[&v]))
        .await
        .unwrap();
    store.delete_server(&actor(), &s.id).await.unwrap();
    assert!(store.exchange_policies(&s.id, &i).await.unwrap().is_empty());
    assert!(
        store
            .list_trust_policies(&s.id, &page())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Nothing names the issuer any more.
    store.delete_issuer(&actor(), &i).await.unwrap();
}

async fn an_exchanged_token_records_its_origin_and_is_audited_as_an_exchange(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = vault(&store, "prod").await;
    let s = new_server(&store, "web", &[&v]).await.unwrap();
    let origin = TokenExchangeOrigin {
        issuer: "https://issuer.example".into(),
        subject: "repo:acme/api:ref:refs/heads/main".into(),
        policy_id: "p1".into(),
    };
    let workload = Actor {
        user_id: "exchange:p1:https://issuer.example#repo:acme/api:ref:refs/heads/main".into(),
        ..actor()
    };
    let mut new = new_token(&s.id, &kid, "deploy", &[(&v, 16)]);
    new.exchange = Some(origin.clone());
    let t = store.create_token(&workload, &new).await.unwrap();
    assert_eq!(t.exchange.as_ref(), Some(&origin));
    assert_eq!(
        store.token(&t.id).await.unwrap().unwrap().exchange,
        Some(origin)
    );
    let plain = store
        .create_token(&actor(), &new_token(&s.id, &kid, "plain", &[(&v, 16)]))
        .await
        .unwrap();
    assert_eq!(
        store.token(&plain.id).await.unwrap().unwrap().exchange,
        None
    );
    let events = store
        .list_audit_events(
            &AuditFilter {
                target_id: Some(t.id.clone()),
                ..Default::default()
            },
            &page(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "token.exchange");
    assert_eq!(events[0].actor_id, workload.user_id);
}

backend_tests!(
    issuers_are_unique_by_url_and_by_name,
    an_issuer_named_by_a_policy_is_not_deleted,
    trust_policies_reach_only_vaults_granted_to_a_live_server,
    policy_names_are_unique_per_server,
    exchange_policies_are_tried_oldest_first_per_issuer,
    r4_a_deleted_servers_policies_go_with_it,
    an_exchanged_token_records_its_origin_and_is_audited_as_an_exchange,
);
