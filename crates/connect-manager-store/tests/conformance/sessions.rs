//! Console sessions (issue 17): opened with an API key, looked up by the SHA-256 of their ID,
//! ended by idle or absolute expiry, by sign-out, and by deleting their key or user.

use connect_manager_core::Timestamp;
use connect_manager_core::audit::AuditAction;
use connect_manager_core::model::{Actor, GrantScope, GroupGrant};
use connect_manager_core::page::PageRequest;
use connect_manager_store::testing::{TestDb, name};
use connect_manager_store::{AuditFilter, DynStore, NewApiKey, SessionLimits, backend_tests};

use crate::support::*;

const MINUTE: i64 = 60_000_000;

fn limits() -> SessionLimits {
    SessionLimits {
        idle_micros: 60 * MINUTE,
        max_age_micros: 12 * 60 * MINUTE,
    }
}

/// A user with one API key (hash `key-<name>`), and the actor they sign in as.
async fn user_with_key(store: &DynStore, who: &str) -> (Actor, String) {
    let u = store
        .create_user(&actor(), &name(who), &format!("{who}@example.test"))
        .await
        .unwrap();
    let key = store
        .create_api_key(&actor(), &u.id, &format!("key-{who}"))
        .await
        .unwrap();
    let signed_in = Actor {
        user_id: u.id,
        ..actor()
    };
    (signed_in, key.id)
}

async fn actions(store: &DynStore, action: AuditAction) -> Vec<String> {
    store
        .list_audit_events(
            &AuditFilter {
                action: Some(action.as_str().into()),
                ..Default::default()
            },
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.target_id)
        .collect()
}

async fn session_opens_with_its_key_and_reads_the_users_principal(db: TestDb) {
    let store = db.open().await;
    let (alice, key_id) = user_with_key(&store, "alice").await;
    let server = new_server(&store, "one", &[]).await.unwrap();
    let g = store.create_group(&actor(), &name("ops")).await.unwrap();
    store
        .add_member(&actor(), &g.id, &alice.user_id)
        .await
        .unwrap();
    store
        .grant_group(
            &actor(),
            &g.id,
            &GroupGrant {
                scope: GrantScope::Server,
                server_id: Some(server.id.clone()),
            },
        )
        .await
        .unwrap();
    let opened = store
        .create_session(&alice, "key-alice", "session-1")
        .await
        .unwrap();
    assert_eq!(opened.user_id, alice.user_id);
    assert_eq!(opened.api_key_id, key_id);
    let found = store
        .session("session-1", Timestamp::now(), limits())
        .await
        .unwrap()
        .expect("the session is live");
    assert_eq!(found.principal.user_id, alice.user_id);
    assert!(found.principal.servers.contains(&server.id));
    assert!(!found.principal.owner);
    // Another ID, or a key of another user, opens nothing.
    assert!(
        store
            .session("session-2", Timestamp::now(), limits())
            .await
            .unwrap()
            .is_none()
    );
    let (bob, _) = user_with_key(&store, "bob").await;
    assert!(
        store
            .create_session(&bob, "key-alice", "session-3")
            .await
            .is_err()
    );
    // Sign-in is audited, naming the key.
    assert_eq!(actions(&store, AuditAction::SessionCreate).await, [key_id]);
}

async fn session_expires_when_idle_and_at_its_absolute_age(db: TestDb) {
    let store = db.open().await;
    let (alice, _) = user_with_key(&store, "alice").await;
    let opened = store
        .create_session(&alice, "key-alice", "idle")
        .await
        .unwrap();
    let t0 = opened.created_at;
    let at = |minutes: i64| Timestamp(t0.micros() + minutes * MINUTE);
    // Used every 50 minutes, it outlives the idle timeout ...
    for m in [50, 100, 150] {
        let s = store.session("idle", at(m), limits()).await.unwrap();
        assert!(s.is_some(), "used at {m} min");
        assert_eq!(s.unwrap().last_seen_at, at(m), "marked used at {m} min");
    }
    // ... until 61 minutes without a use.
    assert!(
        store
            .session("idle", at(211), limits())
            .await
            .unwrap()
            .is_none()
    );
    // And it is gone for good: an earlier time does not bring it back.
    assert!(
        store
            .session("idle", at(160), limits())
            .await
            .unwrap()
            .is_none()
    );

    // Absolute: used every 50 minutes, still over after 12 hours.
    let opened = store
        .create_session(&alice, "key-alice", "old")
        .await
        .unwrap();
    let t0 = opened.created_at;
    let at = |minutes: i64| Timestamp(t0.micros() + minutes * MINUTE);
    let mut m = 50;
    while m < 12 * 60 {
        assert!(
            store
                .session("old", at(m), limits())
                .await
                .unwrap()
                .is_some()
        );
        m += 50;
    }
    assert!(
        store
            .session("old", at(12 * 60), limits())
            .await
            .unwrap()
            .is_none()
    );
}

async fn session_is_marked_used_at_most_once_a_minute(db: TestDb) {
    let store = db.open().await;
    let (alice, _) = user_with_key(&store, "alice").await;
    let t0 = store
        .create_session(&alice, "key-alice", "s")
        .await
        .unwrap()
        .created_at;
    let later = Timestamp(t0.micros() + 30_000_000);
    let s = store.session("s", later, limits()).await.unwrap().unwrap();
    assert_eq!(s.last_seen_at, t0, "30 s later: not written");
    let later = Timestamp(t0.micros() + MINUTE);
    let s = store.session("s", later, limits()).await.unwrap().unwrap();
    assert_eq!(s.last_seen_at, later, "a minute later: written");
}

async fn sign_out_ends_the_session_at_once_and_is_audited(db: TestDb) {
    let store = db.open().await;
    let (alice, key_id) = user_with_key(&store, "alice").await;
    store
        .create_session(&alice, "key-alice", "s")
        .await
        .unwrap();
    store.delete_session(&alice, "s").await.unwrap();
    assert!(
        store
            .session("s", Timestamp::now(), limits())
            .await
            .unwrap()
            .is_none()
    );
    // Twice is not an error, and audits once.
    store.delete_session(&alice, "s").await.unwrap();
    assert_eq!(actions(&store, AuditAction::SessionDelete).await, [key_id]);
}

async fn deleting_the_key_or_the_user_ends_their_sessions(db: TestDb) {
    let store = db.open().await;
    let (alice, alice_key) = user_with_key(&store, "alice").await;
    let (bob, _) = user_with_key(&store, "bob").await;
    store
        .create_session(&alice, "key-alice", "a")
        .await
        .unwrap();
    store.create_session(&bob, "key-bob", "b").await.unwrap();
    let live = |s: &'static str| {
        let store = store.clone();
        async move {
            store
                .session(s, Timestamp::now(), limits())
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(live("a").await && live("b").await);
    store
        .delete_api_key(&actor(), &alice.user_id, &alice_key)
        .await
        .unwrap();
    assert!(!live("a").await, "the key's session ended");
    assert!(live("b").await);
    store.delete_user(&actor(), &bob.user_id).await.unwrap();
    assert!(!live("b").await, "the user's session ended");
}

async fn an_expired_key_ends_its_sessions_and_opens_none(db: TestDb) {
    let store = db.open().await;
    let u = store
        .create_user(&actor(), &name("alice"), "alice@example.test")
        .await
        .unwrap();
    let soon = Timestamp(Timestamp::now().micros() + 60 * MINUTE);
    store
        .create_named_api_key(
            &actor(),
            &u.id,
            &NewApiKey {
                key_hash: "key-alice".into(),
                name: name("laptop"),
                expires_at: Some(soon),
            },
        )
        .await
        .unwrap();
    let alice = Actor {
        user_id: u.id.clone(),
        ..actor()
    };
    store
        .create_session(&alice, "key-alice", "s")
        .await
        .unwrap();
    let long = SessionLimits {
        idle_micros: 24 * 60 * MINUTE,
        max_age_micros: 24 * 60 * MINUTE,
    };
    let before = Timestamp(soon.micros() - 1);
    assert!(store.session("s", before, long).await.unwrap().is_some());
    assert!(
        store.session("s", soon, long).await.unwrap().is_none(),
        "the key expired: the session is over"
    );
    // And an expired key opens no session (the service checks the key first; this is the
    // store's own guard).
    store
        .create_named_api_key(
            &actor(),
            &u.id,
            &NewApiKey {
                key_hash: "key-old".into(),
                name: name("old"),
                expires_at: Some(Timestamp(1)),
            },
        )
        .await
        .unwrap();
    assert!(store.create_session(&alice, "key-old", "t").await.is_err());
}

async fn expired_sessions_are_swept(db: TestDb) {
    let store = db.open().await;
    let (alice, _) = user_with_key(&store, "alice").await;
    let t0 = store
        .create_session(&alice, "key-alice", "old")
        .await
        .unwrap()
        .created_at;
    store
        .create_session(&alice, "key-alice", "new")
        .await
        .unwrap();
    let now = Timestamp(t0.micros() + 30 * MINUTE);
    assert_eq!(
        store.delete_expired_sessions(now, limits()).await.unwrap(),
        0
    );
    let short = SessionLimits {
        idle_micros: MINUTE,
        ..limits()
    };
    assert_eq!(store.delete_expired_sessions(now, short).await.unwrap(), 2);
    assert!(store.session("new", t0, limits()).await.unwrap().is_none());
}

backend_tests!(
    session_opens_with_its_key_and_reads_the_users_principal,
    session_expires_when_idle_and_at_its_absolute_age,
    session_is_marked_used_at_most_once_a_minute,
    sign_out_ends_the_session_at_once_and_is_audited,
    deleting_the_key_or_the_user_ends_their_sessions,
    an_expired_key_ends_its_sessions_and_opens_none,
    expired_sessions_are_swept,
);
