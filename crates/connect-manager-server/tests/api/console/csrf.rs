//! CSRF: every POST needs the session's token; without it (or with another session's) the
//! answer is 403 "Request refused" and nothing changes.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use super::Browser;
use crate::harness::{OWNER_KEY, TestApp, items};

async fn a_post_without_its_csrf_token_is_refused_and_changes_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let other = Browser::signed_in(&app, OWNER_KEY).await;
    let other_token = other.get("/ui/vaults").await.hidden("csrf_token").unwrap();
    for token in [None, Some(""), Some("0000"), Some(other_token.as_str())] {
        let mut fields = vec![("name", "Refused"), ("type", "USER_CREATED")];
        if let Some(t) = token {
            fields.push(("csrf_token", t));
        }
        let page = b.post_raw("/ui/vaults", &fields).await.expect(403);
        assert_eq!(page.h1(), "Request refused", "token {token:?}");
        assert!(page.html.contains(r#"role="alert""#));
    }
    assert!(items(&app.get("/v1/vaults").await.expect(200)).is_empty());
    // The page's own token works.
    b.get("/ui/vaults").await.expect(200);
    b.post(
        "/ui/vaults",
        &[("name", "Accepted"), ("type", "USER_CREATED")],
    )
    .await
    .expect_redirect("/ui/vaults");
    assert_eq!(items(&app.get("/v1/vaults").await.expect(200)).len(), 1);
}

async fn csrf_token_is_derived_from_the_session_not_stored(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let id = b.cookie("__Host-cm_session").unwrap();
    let token = b.get("/ui/").await.hidden("csrf_token").unwrap();
    assert_eq!(token, connect_manager_server::console::csrf_token_of(&id));
    assert_ne!(
        token,
        connect_manager_server::console::session_hash_of(&id),
        "the database's hash of the session is not the token"
    );
}

backend_tests!(
    a_post_without_its_csrf_token_is_refused_and_changes_nothing,
    csrf_token_is_derived_from_the_session_not_stored,
);
