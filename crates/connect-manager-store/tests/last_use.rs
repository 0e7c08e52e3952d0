//! G7, last use, on both backends: a server's gateways report when its tokens were last used;
//! the store keeps the latest, to the minute, and only for that server's own tokens.

use connect_manager_core::Timestamp;
use connect_manager_core::api::usage::TokenUsage;
use connect_manager_core::model::VaultType;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::token::generate_key;
use connect_manager_store::testing::{TestDb, actor, name, server_spec};
use connect_manager_store::{AuditFilter, DynStore, NewToken, backend_tests};

/// Two servers with one token each; returns ((server, token) of A, (server, token) of B).
async fn two_servers_with_a_token_each(store: &DynStore) -> ((String, String), (String, String)) {
    let key = generate_key(&MasterKey::random());
    store.add_signing_key(&actor(), &key).await.unwrap();
    let v = store
        .create_vault(&actor(), &name("v"), VaultType::Everyone)
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in ["a", "b"] {
        let s = store
            .create_server(&actor(), &server_spec(name, &[&v.id]))
            .await
            .unwrap();
        let t = store
            .create_token(
                &actor(),
                &NewToken {
                    id: connect_manager_core::id::new_lower(),
                    server_id: s.id.clone(),
                    name: connect_manager_store::testing::name("t"),
                    issuer: "https://cm.test".into(),
                    kid: key.kid.clone(),
                    created_at: Timestamp::now(),
                    expires_at: None,
                    vaults: connect_manager_core::scope::TokenScope::new(vec![(v.id.clone(), 48)])
                        .unwrap(),
                    exchange: None,
                },
            )
            .await
            .unwrap();
        out.push((s.id, t.id));
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    (a, b)
}

fn used(id: &str, at: Timestamp, ip: &str) -> TokenUsage {
    TokenUsage {
        id: id.into(),
        last_used_at: at,
        last_used_ip: Some(ip.into()),
    }
}

async fn last_use(store: &DynStore, token_id: &str) -> (Option<Timestamp>, Option<String>) {
    let t = store.token(token_id).await.unwrap().unwrap();
    (t.last_used_at, t.last_used_ip)
}

/// A whole number of seconds before now (so that a row written at it reads back the same).
fn minutes_ago(minutes: i64) -> Timestamp {
    Timestamp::now().plus_seconds(-60 * minutes)
}

async fn g7_usage_is_recorded_for_the_servers_own_tokens_only(db: TestDb) {
    let store = db.open().await;
    let ((a, ta), (_b, tb)) = two_servers_with_a_token_each(&store).await;
    assert_eq!(last_use(&store, &ta).await, (None, None), "null until used");
    let audit_before = store
        .list_audit_events(&AuditFilter::default(), &Default::default())
        .await
        .unwrap()
        .items
        .len();
    let at = minutes_ago(10);
    // A's gateway reports its token, B's token and an ID that is no token: only A's is written,
    // and nothing says the other two were skipped.
    let written = store
        .record_token_usage(
            &a,
            &[
                used(&ta, at, "192.0.2.7"),
                used(&tb, at, "192.0.2.8"),
                used("nosuchtoken000000000000000", at, "192.0.2.9"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(written, 1);
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(at), Some("192.0.2.7".into()))
    );
    assert_eq!(
        last_use(&store, &tb).await,
        (None, None),
        "another server's token"
    );
    // Telemetry, not a management action: no audit event.
    let audit_after = store
        .list_audit_events(&AuditFilter::default(), &Default::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(audit_before, audit_after);
}

async fn g7_last_use_never_moves_back(db: TestDb) {
    let store = db.open().await;
    let ((a, ta), _) = two_servers_with_a_token_each(&store).await;
    let recent = minutes_ago(5);
    store
        .record_token_usage(&a, &[used(&ta, recent, "192.0.2.1")])
        .await
        .unwrap();
    // A slower gateway's report of an older use arrives later: ignored.
    let written = store
        .record_token_usage(&a, &[used(&ta, minutes_ago(30), "192.0.2.2")])
        .await
        .unwrap();
    assert_eq!(written, 0);
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(recent), Some("192.0.2.1".into()))
    );
    // A time in the future (a gateway clock ahead) is taken as now, so it cannot pin the last
    // use ahead of every later report.
    let before = Timestamp::now();
    store
        .record_token_usage(
            &a,
            &[used(
                &ta,
                Timestamp::now().plus_seconds(86_400),
                "192.0.2.3",
            )],
        )
        .await
        .unwrap();
    let (at, _) = last_use(&store, &ta).await;
    let at = at.unwrap();
    assert!(at >= before && at <= Timestamp::now(), "clamped to now");
}

async fn g7_a_tokens_row_is_written_at_most_once_a_minute(db: TestDb) {
    let store = db.open().await;
    let ((a, ta), _) = two_servers_with_a_token_each(&store).await;
    let first = minutes_ago(10);
    assert_eq!(
        store
            .record_token_usage(&a, &[used(&ta, first, "192.0.2.1")])
            .await
            .unwrap(),
        1
    );
    // Other gateways of the same server report uses within the same minute: no write.
    for (seconds, ip) in [(1, "192.0.2.2"), (30, "192.0.2.3"), (59, "192.0.2.4")] {
        assert_eq!(
            store
                .record_token_usage(&a, &[used(&ta, first.plus_seconds(seconds), ip)])
                .await
                .unwrap(),
            0,
            "{seconds} s later"
        );
    }
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(first), Some("192.0.2.1".into()))
    );
    // A minute later: written.
    let later = first.plus_seconds(60);
    assert_eq!(
        store
            .record_token_usage(&a, &[used(&ta, later, "192.0.2.5")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(later), Some("192.0.2.5".into()))
    );
    // One report naming a token twice keeps the latest use.
    let latest = later.plus_seconds(120);
    store
        .record_token_usage(
            &a,
            &[
                used(&ta, latest, "192.0.2.6"),
                used(&ta, later.plus_seconds(61), "192.0.2.7"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(latest), Some("192.0.2.6".into()))
    );
    // The list shows it too.
    let listed = store
        .list_tokens(
            &connect_manager_core::principal::Principal {
                owner: true,
                ..Default::default()
            },
            &connect_manager_store::TokenFilter::server(Some(&a)),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items[0].last_used_at, Some(latest));
}

async fn g7_a_report_of_a_thousand_tokens_is_one_call(db: TestDb) {
    let store = db.open().await;
    let ((a, ta), _) = two_servers_with_a_token_each(&store).await;
    let at = minutes_ago(3);
    let mut usage: Vec<TokenUsage> = (0..999)
        .map(|i| used(&format!("unknown{i:019}"), at, "2001:db8::1"))
        .collect();
    usage.push(used(&ta, at, "2001:db8::2"));
    assert_eq!(store.record_token_usage(&a, &usage).await.unwrap(), 1);
    assert_eq!(
        last_use(&store, &ta).await,
        (Some(at), Some("2001:db8::2".into()))
    );
}

backend_tests!(
    g7_usage_is_recorded_for_the_servers_own_tokens_only,
    g7_last_use_never_moves_back,
    g7_a_tokens_row_is_written_at_most_once_a_minute,
    g7_a_report_of_a_thousand_tokens_is_one_call,
);
