//! R1 over HTTP: an exact ID wins whatever the names, among what the caller may see (A4); a name
//! shared by more tokens than R1 lists is refused as such, never answered with a cut list.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestApp;

/// Servers `a` and `b` granted vault `shared`, a token on `b`, and a manager of each server:
/// returns (token on b, a's manager's key, b's manager's key).
async fn two_servers(app: &TestApp) -> (Value, String, String) {
    app.vault("shared", "EVERYONE").await;
    let (a, _) = app.server("a", &["shared"]).await;
    let (b, _) = app.server("b", &["shared"]).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (on_b, _) = app
        .token(
            b,
            json!({"name": "deploy", "vaults": [{"vault": "shared"}]}),
        )
        .await;
    let (_, a_manager) = app
        .user_with("amanager", Some(&format!("servers/{a}")))
        .await;
    let (_, b_manager) = app
        .user_with("bmanager", Some(&format!("servers/{b}")))
        .await;
    (on_b, a_manager, b_manager)
}

/// `n` tokens on server `a` named `name`, made by `key`.
async fn name_tokens(app: &TestApp, key: &str, name: &str, n: usize) {
    for _ in 0..n {
        app.post_as(
            key,
            "/v1/connect/servers/a/tokens",
            json!({"name": name, "vaults": [{"vault": "shared"}]}),
        )
        .await
        .expect(201);
    }
}

/// A manager of server A who has seen a token of server B (its ID is the JWT's `jti`) names 150
/// tokens of A with that ID. B's manager and an owner still revoke it by its ID.
async fn r1_exact_id_wins_over_150_tokens_named_with_it(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (on_b, a_manager, b_manager) = two_servers(&app).await;
    let id = on_b["id"].as_str().unwrap();
    name_tokens(&app, &a_manager, id, 150).await;

    let revoked = app
        .as_user(
            &b_manager,
            Method::DELETE,
            &format!("/v1/connect/tokens/{id}"),
        )
        .await
        .expect(200);
    assert_eq!(revoked["id"], id, "b's manager revoked b's token");
    assert_eq!(revoked["state"], "REVOKED");
    // The owner sees all 151; the ID still wins (revoking again is not an error, R8).
    let again = app
        .delete(&format!("/v1/connect/tokens/{id}"))
        .await
        .expect(200);
    assert_eq!(again["id"], id, "the owner resolved the ID, not a name");
    let named = app
        .delete(&format!("/v1/connect/tokens/{id}?server=b"))
        .await
        .expect(200);
    assert_eq!(named["id"], id);
    // For A's manager, who may not see B's token, the reference is only a name of 150 tokens.
    app.as_user(
        &a_manager,
        Method::DELETE,
        &format!("/v1/connect/tokens/{id}"),
    )
    .await
    .expect_error(409, "too_many_matches");
    app.stop().await;
}

/// A name matching more tokens than R1 lists is a 409 that says so and asks for an ID, not a
/// silently cut candidate list; at most the cap, the candidates are listed.
async fn r1_a_name_matching_more_tokens_than_listed_says_so(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (_, a_manager, _) = two_servers(&app).await;
    let cap = connect_manager_core::lookup::MAX_NAME_MATCHES;
    name_tokens(&app, &a_manager, "ci", cap).await;
    let listed = app
        .delete("/v1/connect/tokens/ci")
        .await
        .expect_error(409, "ambiguous");
    assert_eq!(
        listed["error"]["details"]["candidates"]
            .as_array()
            .unwrap()
            .len(),
        cap
    );
    name_tokens(&app, &a_manager, "ci", 1).await;
    let refused = app
        .delete("/v1/connect/tokens/CI")
        .await
        .expect_error(409, "too_many_matches");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("more than {cap} tokens")) && message.contains("use an ID"),
        "{message}"
    );
    // With ?server= the name is looked up among that server's tokens only: b has none.
    app.delete("/v1/connect/tokens/ci?server=b")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

backend_tests!(
    r1_exact_id_wins_over_150_tokens_named_with_it,
    r1_a_name_matching_more_tokens_than_listed_says_so,
);
