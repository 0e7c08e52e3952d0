//! Tokens: create (R7), revoke (R8), a server delete revokes them (R4), lists and lookups by what the viewer manages (R10, R1, A4).

use connect_manager_core::Error;
use connect_manager_core::lookup::{Found, MAX_NAME_MATCHES};
use connect_manager_core::model::{GrantScope, GroupGrant, TokenState, VaultType};
use connect_manager_core::page::PageRequest;
use connect_manager_core::principal::Principal;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{Change, TokenFilter, TokenGauges, backend_tests};

use crate::support::*;

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
    let all = everyone();
    assert!(
        store
            .list_tokens(&all, &TokenFilter::default(), &PageRequest::default())
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
    let all = everyone();
    assert!(
        store
            .list_tokens(&all, &TokenFilter::default(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let kept = store
        .list_tokens(
            &all,
            &TokenFilter::server(Some(&s.id)),
            &PageRequest::default(),
        )
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
    let all = everyone();
    let page = store
        .list_tokens(&all, &TokenFilter::default(), &PageRequest::default())
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
            .list_tokens(&only_web, &TokenFilter::default(), &PageRequest::default())
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
        .list_tokens(&viewer, &TokenFilter::default(), &PageRequest::default())
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

/// Issue 18's expiry views: `expiring_within` lists live tokens expiring within the window,
/// `unused_for` live tokens never used or last used before it; neither shows revoked or
/// expired tokens, and both combine with the server filter and with each other.
async fn token_expiry_views_list_live_tokens_expiring_soon_or_unused(db: TestDb) {
    use connect_manager_core::Timestamp;
    use connect_manager_core::api::usage::TokenUsage;
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let other = new_server(&store, "api", &[&v.id]).await.unwrap();
    let now = Timestamp::now();
    let day = 86_400;
    let make = async |server: &str, label: &str, expires_in: Option<i64>| {
        let mut t = new_token(server, &kid, label, &[(&v.id, 48)]);
        t.expires_at = expires_in.map(|s| now.plus_seconds(s));
        store.create_token(&actor(), &t).await.unwrap().id
    };
    let soon = make(&s.id, "soon", Some(2 * day)).await;
    let later = make(&s.id, "later", Some(30 * day)).await;
    let never = make(&s.id, "never-expires", None).await;
    make(&s.id, "expired", Some(-60)).await;
    let revoked = make(&s.id, "revoked", Some(day)).await;
    let elsewhere = make(&other.id, "elsewhere", Some(day)).await;
    store.revoke_token(&actor(), &revoked).await.unwrap();
    // `later` was used an hour ago, `never` forty days ago; the rest never.
    let used = |id: &str, ago: i64| TokenUsage {
        id: id.into(),
        last_used_at: now.plus_seconds(-ago),
        last_used_ip: None,
    };
    store
        .record_token_usage(&s.id, &[used(&later, 3600), used(&never, 40 * day)])
        .await
        .unwrap();
    let all = Principal {
        owner: true,
        ..Default::default()
    };
    let list = async |filter: TokenFilter| -> Vec<String> {
        let mut ids: Vec<String> = store
            .list_tokens(&all, &filter, &PageRequest::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.id)
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<&String>| {
        ids.sort();
        ids.into_iter().cloned().collect::<Vec<_>>()
    };
    let week = Some(7 * day);
    let month = Some(30 * day);
    assert_eq!(
        list(TokenFilter {
            expiring_within: week,
            ..TokenFilter::default()
        })
        .await,
        sorted(vec![&soon, &elsewhere])
    );
    assert_eq!(
        list(TokenFilter {
            expiring_within: week,
            ..TokenFilter::server(Some(&s.id))
        })
        .await,
        sorted(vec![&soon])
    );
    assert_eq!(
        list(TokenFilter {
            unused_for: month,
            ..TokenFilter::server(Some(&s.id))
        })
        .await,
        sorted(vec![&soon, &never])
    );
    assert_eq!(
        list(TokenFilter {
            expiring_within: Some(60 * day),
            unused_for: month,
            ..TokenFilter::server(Some(&s.id))
        })
        .await,
        sorted(vec![&soon])
    );
    // Without a view the list still shows everything (R10), expired and revoked included.
    assert_eq!(list(TokenFilter::server(Some(&s.id))).await.len(), 5);
}

/// The `/metrics` gauges: live tokens (active, unexpired) of live servers only, expiring within
/// the window, and never used.
async fn token_gauges_count_live_tokens_expiring_soon_and_never_used(db: TestDb) {
    use connect_manager_core::Timestamp;
    use connect_manager_core::api::usage::TokenUsage;
    let store = db.open().await;
    let kid = signing_key(&store).await;
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let s = new_server(&store, "web", &[&v.id]).await.unwrap();
    let gone = new_server(&store, "gone", &[&v.id]).await.unwrap();
    let now = Timestamp::now();
    let day = 86_400;
    let make = async |server: &str, label: &str, expires_in: Option<i64>| {
        let mut t = new_token(server, &kid, label, &[(&v.id, 48)]);
        t.expires_at = expires_in.map(|s| now.plus_seconds(s));
        store.create_token(&actor(), &t).await.unwrap().id
    };
    let week = 7 * day;
    assert_eq!(
        store.token_gauges(now, week).await.unwrap(),
        TokenGauges::default()
    );
    make(&s.id, "soon", Some(2 * day)).await; // expiring, never used
    let used_soon = make(&s.id, "used-soon", Some(6 * day)).await; // expiring, used
    make(&s.id, "later", Some(8 * day)).await; // never used
    make(&s.id, "forever", None).await; // never used
    make(&s.id, "expired", Some(-60)).await; // not live
    let revoked = make(&s.id, "revoked", Some(day)).await; // not live
    make(&gone.id, "of-a-deleted-server", Some(day)).await; // server not live
    store.revoke_token(&actor(), &revoked).await.unwrap();
    store.delete_server(&actor(), &gone.id).await.unwrap();
    store
        .record_token_usage(
            &s.id,
            &[TokenUsage {
                id: used_soon,
                last_used_at: now,
                last_used_ip: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store.token_gauges(now, week).await.unwrap(),
        TokenGauges {
            expiring: 2,
            never_used: 3
        }
    );
    // The window moves with `now`: three days on, `soon` has expired and `later` expires within
    // a week; seven days on, `used-soon` has expired too.
    assert_eq!(
        store
            .token_gauges(now.plus_seconds(3 * day), week)
            .await
            .unwrap(),
        TokenGauges {
            expiring: 2,
            never_used: 2
        }
    );
    assert_eq!(
        store
            .token_gauges(now.plus_seconds(7 * day), week)
            .await
            .unwrap(),
        TokenGauges {
            expiring: 1,
            never_used: 2
        }
    );
}

backend_tests!(
    token_gauges_count_live_tokens_expiring_soon_and_never_used,
    token_expiry_views_list_live_tokens_expiring_soon_or_unused,
    r7_tokens_need_granted_vaults_on_a_live_server,
    r8_revoke_is_idempotent_and_announced,
    r4_server_delete_revokes_every_token,
    r10_token_lists_show_what_the_viewer_manages,
    r1_exact_token_id_wins_over_150_tokens_named_with_it,
);
