//! Sessions: sign-in with an API key, expiry (idle and absolute), sign-out at once, and deleting
//! the key or the user ends them.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use super::Browser;
use crate::harness::{OWNER_KEY, Setup, TestApp};

const SESSION: &str = "__Host-cm_session";

async fn console_pages_without_a_session_go_to_sign_in(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::new(&app);
    for path in ["/ui/", "/ui/servers", "/ui/audit", "/ui/vaults"] {
        b.get(path).await.expect_redirect("/ui/sign-in");
    }
    // POSTs too, with or without a token.
    b.post_raw("/ui/vaults", &[("name", "x"), ("type", "USER_CREATED")])
        .await
        .expect_redirect("/ui/sign-in");
    b.post_raw("/ui/sign-out", &[])
        .await
        .expect_redirect("/ui/sign-in");
    let page = b.get("/ui/sign-in").await.expect(200);
    assert_eq!(page.h1(), "Sign in");
    assert!(page.html.contains(r#"name="api_key" type="password""#));
}

async fn sign_in_opens_a_session_and_a_bad_key_does_not(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::new(&app);
    let page = b.sign_in("not-a-key").await.expect(401);
    assert_eq!(page.alert().as_deref(), Some("the API key is not valid"));
    assert!(b.cookie(SESSION).is_none());
    b.sign_in(OWNER_KEY).await.expect_redirect("/ui/");
    assert!(b.cookie(SESSION).is_some());
    let page = b.get("/ui/").await.expect(200);
    assert_eq!(page.h1(), "Overview");
    // Sign-in is audited as the user.
    let actions = app.audit_actions().await;
    assert!(actions.contains(&("session.create".into(), "success".into())));
}

async fn sign_in_without_its_double_submit_token_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::new(&app);
    // No sign-in cookie at all (a cross-site form, say).
    let page = b
        .post_raw(
            "/ui/sign-in",
            &[("api_key", OWNER_KEY), ("csrf_token", "x")],
        )
        .await
        .expect(403);
    assert_eq!(page.h1(), "Request refused");
    // A cookie, but a form token that does not match it.
    b.get("/ui/sign-in").await.expect(200);
    b.post_raw(
        "/ui/sign-in",
        &[("api_key", OWNER_KEY), ("csrf_token", "another-token")],
    )
    .await
    .expect(403);
    assert!(b.cookie(SESSION).is_none());
}

async fn sign_out_ends_the_session_at_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let stolen = b.cookie(SESSION).unwrap();
    b.post("/ui/sign-out", &[])
        .await
        .expect_redirect("/ui/sign-in");
    assert!(b.cookie(SESSION).is_none(), "the cookie is cleared");
    // The old cookie, replayed, opens nothing: the session is gone on the server.
    let replay = Browser::new(&app);
    replay.set_cookie(SESSION, &stolen);
    replay.get("/ui/").await.expect_redirect("/ui/sign-in");
    let actions = app.audit_actions().await;
    assert!(actions.contains(&("session.delete".into(), "success".into())));
}

async fn an_idle_session_expires(db: TestDb) {
    let app = TestApp::spawn_console(
        db,
        Setup {
            idle_timeout: "2s",
            ..Setup::default()
        },
    )
    .await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    b.get("/ui/").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    b.get("/ui/").await.expect_redirect("/ui/sign-in");
}

async fn a_session_ends_at_its_absolute_age_however_busy(db: TestDb) {
    let app = TestApp::spawn_console(
        db,
        Setup {
            max_age: "3s",
            ..Setup::default()
        },
    )
    .await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        b.get("/ui/").await.expect(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    b.get("/ui/").await.expect_redirect("/ui/sign-in");
}

async fn deleting_the_key_or_the_user_ends_their_sessions(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (alice, alice_key) = app.user_with("alice", Some("all-servers")).await;
    let (bob, bob_key) = app.user_with("bob", Some("all-servers")).await;
    let a = Browser::signed_in(&app, &alice_key).await;
    let b = Browser::signed_in(&app, &bob_key).await;
    let keys = app
        .get(&format!("/v1/users/{alice}/keys"))
        .await
        .expect(200);
    let key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/users/{alice}/keys/{key_id}"))
        .await
        .expect(204);
    a.get("/ui/").await.expect_redirect("/ui/sign-in");
    b.get("/ui/").await.expect(200);
    app.delete(&format!("/v1/users/{bob}")).await.expect(204);
    b.get("/ui/").await.expect_redirect("/ui/sign-in");
}

backend_tests!(
    console_pages_without_a_session_go_to_sign_in,
    sign_in_opens_a_session_and_a_bad_key_does_not,
    sign_in_without_its_double_submit_token_is_refused,
    sign_out_ends_the_session_at_once,
    an_idle_session_expires,
    a_session_ends_at_its_absolute_age_however_busy,
    deleting_the_key_or_the_user_ends_their_sessions,
);
