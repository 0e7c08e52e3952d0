//! Tokens in the console: vaults × access and expiry, the JWT shown once, revoke.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use super::Browser;
use crate::harness::{OWNER_KEY, TestApp};

async fn a_token_made_in_the_console_is_active_with_the_chosen_scope(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = app.vault("a", "USER_CREATED").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_vault = app.vault("b", "USER_CREATED").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (server, secret) = app.server("web", &["a", "b"]).await;
    let id = server["id"].as_str().unwrap().to_owned();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let form = b
        .get(&format!("/ui/servers/{id}/tokens/new"))
        .await
        .expect(200);
    assert!(form.html.contains(&format!(r#"name="access.{a}""#)));
    // No vault chosen: the API's message, inline.
    let refused = b
        .post(&format!("/ui/servers/{id}/tokens"), &[("name", "ci")])
        .await
        .expect(422);
    assert!(refused.alert().is_some(), "{}", refused.html);
    let access_a = format!("access.{a}");
    let access_b = format!("access.{b_vault}");
    let created = b
        .post(
            &format!("/ui/servers/{id}/tokens"),
            &[
                ("name", "ci"),
                (&access_a, "read"),
                (&access_b, "none"),
                ("expires_in", "30d"),
            ],
        )
        .await
        .expect(200);
    assert_eq!(created.headers["cache-control"], "no-store");
    assert!(created.html.contains(r#"id="copy-token""#));
    let jwt = created.by_id("new-token").unwrap();
    let answer = app.introspect(&id, &secret, &jwt).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["vaults"].as_array().unwrap().len(), 1);
    assert_eq!(answer["vaults"][0]["id"], a.as_str());
    assert_eq!(
        answer["vaults"][0]["acl"],
        serde_json::json!(["view_items", "view_and_copy_passwords"])
    );
    assert!(answer["exp"].is_i64());
    // Shown once: the server's page lists the token, never the JWT.
    let page = b.get(&format!("/ui/servers/{id}")).await.expect(200);
    assert!(page.html.contains(">ci<") && !page.html.contains(&jwt));
    assert!(page.html.contains("Active"));
    // Revoke: it is listed as revoked and no longer valid.
    let token_id = answer["jti"].as_str().unwrap();
    b.post(&format!("/ui/tokens/{token_id}/revoke"), &[])
        .await
        .expect_redirect(&format!("/ui/servers/{id}"));
    assert_eq!(app.introspect(&id, &secret, &jwt).await["active"], false);
    let page = b.get(&format!("/ui/servers/{id}")).await.expect(200);
    assert!(page.html.contains("Revoked"));
    assert!(!page.html.contains(&format!("/ui/tokens/{token_id}/revoke")));
}

async fn a_hidden_servers_token_cannot_be_revoked_from_the_console(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("a", "USER_CREATED").await;
    let (mine, _) = app.server("mine", &["a"]).await;
    let (theirs, _) = app.server("theirs", &["a"]).await;
    let (token, _) = app
        .token(
            theirs["id"].as_str().unwrap(),
            serde_json::json!({"name": "t", "vaults": [{"vault": "a"}]}),
        )
        .await;
    let (_, key) = app
        .user_with(
            "erin",
            Some(&format!("servers/{}", mine["id"].as_str().unwrap())),
        )
        .await;
    let b = Browser::signed_in(&app, &key).await;
    let page = b
        .post(
            &format!("/ui/tokens/{}/revoke", token["id"].as_str().unwrap()),
            &[],
        )
        .await
        .expect(404);
    assert_eq!(page.h1(), "Not found");
    let list = app
        .get(&format!(
            "/v1/connect/tokens?server={}",
            theirs["id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(list["items"][0]["state"], "ACTIVE");
}

async fn the_overview_shows_tokens_expiring_soon_and_unused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("a", "USER_CREATED").await;
    let (server, _) = app.server("web", &["a"]).await;
    let id = server["id"].as_str().unwrap();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let page = b.get("/ui/").await.expect(200);
    assert!(page.html.contains("No live token expires within 7 days."));
    assert!(
        page.html
            .contains("Every live token was used within 30 days.")
    );
    app.token(
        id,
        serde_json::json!({"name": "soon", "vaults": [{"vault": "a"}], "expires_in": "2d"}),
    )
    .await;
    app.token(
        id,
        serde_json::json!({"name": "later", "vaults": [{"vault": "a"}], "expires_in": "30d"}),
    )
    .await;
    let page = b.get("/ui/").await.expect(200);
    let section = |heading: &str| {
        let start = page.html.find(heading).unwrap();
        let end = page.html[start..].find("</section>").unwrap();
        page.html[start..start + end].to_owned()
    };
    let expiring = section("Tokens expiring within 7 days");
    assert!(expiring.contains(">soon<") && !expiring.contains(">later<"));
    // Neither was ever used.
    let unused = section("Tokens never used or unused for 30 days");
    assert!(unused.contains(">soon<") && unused.contains(">later<"));
}

backend_tests!(
    the_overview_shows_tokens_expiring_soon_and_unused,
    a_token_made_in_the_console_is_active_with_the_chosen_scope,
    a_hidden_servers_token_cannot_be_revoked_from_the_console,
);
