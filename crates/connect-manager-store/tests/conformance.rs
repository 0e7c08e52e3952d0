//! The conformance suite: every `Store` implementation passes it, SQLite always and PostgreSQL
//! whenever `TEST_DATABASE_URL` is set (always in CI). Each test has its own fresh database.

use connect_manager_core::Error;
use connect_manager_core::Timestamp;
use connect_manager_core::lookup::{Found, MAX_NAME_MATCHES};
use connect_manager_core::model::{
    Actor, GrantScope, GroupGrant, ServerState, TokenState, VaultType,
};
use connect_manager_core::page::PageRequest;
use connect_manager_core::principal::Principal;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::generate_key;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{
    AuditFilter, Bootstrap, Change, ChangeListener, DynStore, NewServer, NewToken, backend_tests,
};

/// A viewer who may manage every server.
fn everyone() -> Principal {
    Principal {
        owner: true,
        ..Default::default()
    }
}

fn actor() -> Actor {
    Actor {
        user_id: "UTESTACTOR0000000000000000".into(),
        request_id: "req".into(),
        client_ip: "127.0.0.1".into(),
    }
}

async fn new_server(
    store: &DynStore,
    name: &str,
    vaults: &[&str],
) -> Result<connect_manager_core::model::Server, Error> {
    store
        .create_server(
            &actor(),
            &NewServer {
                id: connect_manager_core::id::new_upper(),
                name: connect_manager_store::testing::name(name),
                secret_verifier: "$argon2id$test".into(),
                vault_ids: vaults.iter().map(|v| v.to_string()).collect(),
            },
        )
        .await
}

async fn audit_count(store: &DynStore) -> usize {
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

async fn r2_names_are_unique_case_insensitively(db: TestDb) {
    let store = db.open().await;
    store
        .create_vault(&actor(), &name("Prod"), VaultType::UserCreated)
        .await
        .unwrap();
    let dup = store
        .create_vault(&actor(), &name("PROD"), VaultType::Everyone)
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
    store.create_group(&actor(), &name("Ops")).await.unwrap();
    assert!(matches!(
        store.create_group(&actor(), &name("ops")).await,
        Err(Error::Conflict { .. })
    ));
    new_server(&store, "Web", &[]).await.unwrap();
    assert!(matches!(
        new_server(&store, "wEB", &[]).await,
        Err(Error::Conflict { .. })
    ));
    let v2 = store
        .create_vault(&actor(), &name("Dev"), VaultType::UserCreated)
        .await
        .unwrap();
    assert!(matches!(
        store.rename_vault(&actor(), &v2.id, &name("prod")).await,
        Err(Error::Conflict { .. })
    ));
}

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
    let all = Principal {
        owner: true,
        ..Default::default()
    };
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

async fn lists_page_newest_first_without_gaps(db: TestDb) {
    let store = db.open().await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            store
                .create_vault(&actor(), &name(format!("v{i}")), VaultType::UserCreated)
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::parse(Some(3), None).unwrap();
    loop {
        let p = store.list_vaults(&page).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.into_iter().map(|v| v.id));
        match p.next_cursor {
            Some(c) => page = PageRequest::parse(Some(3), Some(&c)).unwrap(),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);
}

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

// ---- tokens ----------------------------------------------------------------------------------

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Change>>);

impl ChangeListener for Recorder {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut self.0.lock().unwrap())
    }

    /// `change` was announced before the changing call returned. (On PostgreSQL this process
    /// also hears its own NOTIFY a moment later; a repeat is harmless and allowed.)
    #[track_caller]
    fn expect(&self, change: Change) {
        let got = self.take();
        assert!(
            !got.is_empty() && got.iter().all(|c| *c == change),
            "{got:?} != {change:?}"
        );
    }

    /// Waits out late repeats, then forgets them.
    async fn settle(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.take();
    }
}

fn new_token(server_id: &str, kid: &str, name: &str, vaults: &[(&str, i64)]) -> NewToken {
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
    }
}

async fn signing_key(store: &DynStore) -> String {
    let master = MasterKey::random();
    let key = generate_key(&master);
    store.add_signing_key(&actor(), &key).await.unwrap();
    key.kid
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

async fn r7_tokens_need_granted_vaults_on_a_live_server(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let granted = store
        .create_vault(&actor(), &name("granted"), VaultType::Everyone)
        .await
        .unwrap();
    let other = store
        .create_vault(&actor(), &name("other"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&granted.id]).await.unwrap();
    let before = audit_count(&store).await;
    let err = store
        .create_token(
            &actor(),
            &new_token(&s.id, &kid, "t", &[(&granted.id, 48), (&other.id, 48)]),
        )
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
    // A token with no vault cannot reach the store: `NewToken` holds a `TokenScope`, which is
    // never empty (core's `r7_a_scope_needs_at_least_one_vault`).
    assert_eq!(audit_count(&store).await, before);
    let all = Principal {
        owner: true,
        ..Default::default()
    };
    assert!(
        store
            .list_tokens(&all, None, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let t = store
        .create_token(
            &actor(),
            &new_token(&s.id, &kid, "t", &[(&granted.id, 1008)]),
        )
        .await
        .unwrap();
    assert_eq!(t.state, TokenState::Active);
    assert_eq!(t.vaults, vec![(granted.id.clone(), 1008)]);
    assert_eq!(store.token(&t.id).await.unwrap(), Some(t.clone()));
    store.delete_server(&actor(), &s.id).await.unwrap();
    assert!(matches!(
        store
            .create_token(&actor(), &new_token(&s.id, &kid, "t", &[(&granted.id, 48)]))
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn r8_revoke_is_idempotent_and_announced(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let t = store
        .create_token(&actor(), &new_token(&s.id, &kid, "t", &[(&v.id, 48)]))
        .await
        .unwrap();
    let recorder = std::sync::Arc::new(Recorder::default());
    store.subscribe(recorder.clone());
    recorder.settle().await;
    let revoked = store.revoke_token(&actor(), &t.id).await.unwrap();
    assert_eq!(revoked.state, TokenState::Revoked);
    assert!(revoked.revoked_at.is_some());
    recorder.expect(Change::Token(t.id.clone()));
    recorder.settle().await;
    let again = store.revoke_token(&actor(), &t.id).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        recorder.take().is_empty(),
        "nothing changed, nothing announced"
    );
    store
        .rename_token(&actor(), &t.id, &name("renamed"))
        .await
        .unwrap();
    recorder.expect(Change::Token(t.id.clone()));
    recorder.settle().await;
    store.revoke_vault(&actor(), &s.id, &v.id).await.unwrap();
    recorder.expect(Change::Server(s.id.clone()));
    recorder.settle().await;
    store
        .rotate_server_secret(&actor(), &s.id, "$argon2id$x")
        .await
        .unwrap();
    recorder.expect(Change::Server(s.id.clone()));
    recorder.settle().await;
    store.delete_vault(&actor(), &v.id).await.unwrap();
    recorder.expect(Change::All);
    assert!(matches!(
        store
            .revoke_token(&actor(), "nosuchtoken000000000000000")
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn r4_server_delete_revokes_every_token(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let mut last = None;
    for name in ["a", "b", "revoked-before"] {
        last = Some(
            store
                .create_token(&actor(), &new_token(&s.id, &kid, name, &[(&v.id, 48)]))
                .await
                .unwrap(),
        );
    }
    store
        .revoke_token(&actor(), &last.unwrap().id)
        .await
        .unwrap();
    let recorder = std::sync::Arc::new(Recorder::default());
    store.subscribe(recorder.clone());
    recorder.settle().await;
    // It tells how many tokens it revoked (tokens_revoked_total): not the one already revoked.
    assert_eq!(store.delete_server(&actor(), &s.id).await.unwrap(), 2);
    recorder.expect(Change::Server(s.id.clone()));
    let all = Principal {
        owner: true,
        ..Default::default()
    };
    assert!(
        store
            .list_tokens(&all, None, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let kept = store
        .list_tokens(&all, Some(&s.id), &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(kept.len(), 3);
    assert!(
        kept.iter()
            .all(|t| t.state == TokenState::Revoked && t.revoked_at.is_some())
    );
    assert!(store.server_access(&s.id).await.unwrap().is_none());
}

async fn r10_token_lists_show_what_the_viewer_manages(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let web = new_server(&store, "web", &[&v.id]).await.unwrap();
    let api = new_server(&store, "api", &[&v.id]).await.unwrap();
    let mut made = Vec::new();
    for (s, name) in [(&web, "ci"), (&api, "ci"), (&web, "cd")] {
        made.push(
            store
                .create_token(&actor(), &new_token(&s.id, &kid, name, &[(&v.id, 48)]))
                .await
                .unwrap()
                .id,
        );
    }
    made.reverse();
    let all = Principal {
        owner: true,
        ..Default::default()
    };
    let page = store
        .list_tokens(&all, None, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        made
    );
    let only_web = Principal {
        user_id: "U".into(),
        servers: [web.id.clone()].into(),
        ..Default::default()
    };
    // A SERVER grant is read from the database, so this viewer (no group) sees nothing…
    assert!(
        store
            .list_tokens(&only_web, None, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // …and a real grantee sees web's tokens only.
    let u = store
        .create_user(&actor(), &name("Ann"), "ann@x")
        .await
        .unwrap();
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    store.add_member(&actor(), &g.id, &u.id).await.unwrap();
    store
        .grant_group(
            &actor(),
            &g.id,
            &GroupGrant {
                scope: GrantScope::Server,
                server_id: Some(web.id.clone()),
            },
        )
        .await
        .unwrap();
    let viewer = Principal {
        user_id: u.id.clone(),
        servers: [web.id.clone()].into(),
        ..Default::default()
    };
    let seen = store
        .list_tokens(&viewer, None, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|t| t.server_id == web.id));
    assert_eq!(
        store
            .find_tokens(&all, "CI", None)
            .await
            .unwrap()
            .into_vec()
            .len(),
        2,
        "names need not be unique"
    );
}

/// A user in a group granted `server_id` alone (A3), as the store sees them.
async fn grantee_of(store: &DynStore, server_id: &str, name: &str) -> Principal {
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

/// R1: the exact ID is looked up on its own, so no number of tokens named with it (here by a
/// manager of another server) hides it; names are matched among what the viewer may see, the
/// server filter applied in the query, and a name matching more than the cap says so.
async fn r1_exact_token_id_wins_over_150_tokens_named_with_it(db: TestDb) {
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let a = new_server(&store, "a", &[&v.id]).await.unwrap();
    let b = new_server(&store, "b", &[&v.id]).await.unwrap();
    let target = store
        .create_token(&actor(), &new_token(&b.id, &kid, "deploy", &[(&v.id, 48)]))
        .await
        .unwrap();
    for _ in 0..150 {
        store
            .create_token(
                &actor(),
                &new_token(&a.id, &kid, &target.id, &[(&v.id, 48)]),
            )
            .await
            .unwrap();
    }
    let a_manager = grantee_of(&store, &a.id, "amanager").await;
    let b_manager = grantee_of(&store, &b.id, "bmanager").await;
    for (who, viewer, server) in [
        ("owner", &everyone(), None),
        ("owner, ?server=b", &everyone(), Some(b.id.as_str())),
        ("b's manager", &b_manager, None),
        ("b's manager, ?server=b", &b_manager, Some(b.id.as_str())),
    ] {
        match store.find_tokens(viewer, &target.id, server).await.unwrap() {
            Found::Id(t) => assert_eq!(t.id, target.id, "{who}"),
            other => panic!("{who}: {:?}", other.map(|t| t.id)),
        }
    }
    // A's manager cannot see B's token: for them the reference is a name of their own tokens,
    // and 150 of them is more than R1 lists.
    let found = store
        .find_tokens(&a_manager, &target.id, None)
        .await
        .unwrap();
    let Found::Names(names) = found else {
        panic!("a's manager: {found:?}")
    };
    assert_eq!(
        names.len(),
        MAX_NAME_MATCHES + 1,
        "the cap is read, plus one"
    );
    assert!(names.iter().all(|t| t.server_id == a.id));
    // With ?server=a the owner sees the names too; with ?server=b the ID.
    assert!(matches!(
        store.find_tokens(&everyone(), &target.id, Some(&a.id)).await.unwrap(),
        Found::Names(n) if n.len() == MAX_NAME_MATCHES + 1
    ));
    // Only tokens the viewer may not see match: hidden, naming one of them for the audit.
    assert_eq!(
        store.find_tokens(&a_manager, "DEPLOY", None).await.unwrap(),
        Found::Hidden(target.id.clone())
    );
    assert_eq!(
        store.find_tokens(&b_manager, "nope", None).await.unwrap(),
        Found::Names(vec![])
    );
    // Servers: the same order and visibility.
    assert!(matches!(
        store.find_servers(&b_manager, &b.id).await.unwrap(),
        Found::Id(s) if s.id == b.id
    ));
    assert_eq!(
        store.find_servers(&a_manager, &b.id).await.unwrap(),
        Found::Hidden(b.id.clone())
    );
    assert_eq!(
        store.find_servers(&a_manager, "B").await.unwrap(),
        Found::Hidden(b.id.clone())
    );
    assert!(matches!(
        store.find_servers(&a_manager, "A").await.unwrap(),
        Found::Names(s) if s.len() == 1 && s[0].id == a.id
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
    r1_exact_token_id_wins_over_150_tokens_named_with_it,
    r1_exact_id_wins_over_a_name_equal_to_it,
    s1_migrations_run_and_ping_answers,
    a1_bootstrap_creates_one_owner_once,
    a1_concurrent_first_starts_make_one_owner,
    init_setting_keeps_the_first_value,
    r1_find_matches_id_or_name_key,
    r2_names_are_unique_case_insensitively,
    r3_server_create_is_all_or_nothing,
    r4_server_delete_frees_name_ends_grants_keeps_row,
    r5_grant_checks_vault_and_is_idempotent,
    r6_revoke_ends_grant_and_404s_without_one,
    c3_rotation_replaces_verifier_and_bumps_version,
    r11_group_grants_are_idempotent_and_revocable,
    a2_last_owner_stays,
    users_keys_and_memberships_cascade,
    a3_principal_carries_group_grants,
    lists_page_newest_first_without_gaps,
    a5_changes_and_denials_are_audited,
    t3_signing_keys_newest_first_and_live_kids,
    r7_tokens_need_granted_vaults_on_a_live_server,
    r8_revoke_is_idempotent_and_announced,
    r4_server_delete_revokes_every_token,
    r10_token_lists_show_what_the_viewer_manages,
);
