//! Servers in the console: A4 as the API has it, creation with the credentials file downloaded
//! once, vault grants, rotation, deletion by name, and the audit trail of console actions.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::Value;

use super::{Browser, Page};
use crate::harness::{OWNER_KEY, TestApp, items, secret_of};

fn server_id_of(page: &Page) -> String {
    let at = page.html.find("/ui/servers/").unwrap() + "/ui/servers/".len();
    page.html[at..at + 26].to_owned()
}

async fn a4_a_server_grant_manager_sees_only_that_server(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (mine, _) = app.server("mine", &[]).await;
    let (theirs, _) = app.server("theirs", &[]).await;
    let mine = mine["id"].as_str().unwrap();
    let theirs = theirs["id"].as_str().unwrap();
    let (_, key) = app
        .user_with("carol", Some(&format!("servers/{mine}")))
        .await;
    let b = Browser::signed_in(&app, &key).await;
    let list = b.get("/ui/servers").await.expect(200);
    assert!(list.html.contains(mine) && !list.html.contains(theirs));
    let overview = b.get("/ui/").await.expect(200);
    assert!(overview.html.contains(mine) && !overview.html.contains(theirs));
    b.get(&format!("/ui/servers/{mine}")).await.expect(200);
    let hidden = b.get(&format!("/ui/servers/{theirs}")).await.expect(404);
    assert_eq!(hidden.h1(), "Not found");
    // Actions on it are not found either, and change nothing.
    b.get(&format!("/ui/servers/{mine}")).await;
    let page = b
        .post(&format!("/ui/servers/{theirs}/credentials"), &[])
        .await
        .expect(404);
    assert_eq!(page.h1(), "Not found");
    let server: Value = app
        .get(&format!("/v1/connect/servers/{theirs}"))
        .await
        .expect(200);
    assert_eq!(server["tokens_version"], 1);
    // Owner-only pages: the API's 403, audited as the API audits a denial.
    let page = b.get("/ui/users").await.expect(403);
    assert!(
        page.alert().unwrap().contains("only owners"),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains(r#"href="/ui/users""#),
        "no Users link for a manager"
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&("user.list".into(), "denied".into())));
}

async fn creating_a_server_offers_its_credentials_file_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let vault = app.vault("Prod", "USER_CREATED").await;
    let vault_id = vault["id"].as_str().unwrap();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let form = b.get("/ui/servers/new").await.expect(200);
    assert!(form.html.contains(vault_id));
    let created = b
        .post("/ui/servers", &[("name", "web"), ("vaults", vault_id)])
        .await
        .expect(200);
    assert_eq!(created.h1(), "Server created");
    assert_eq!(created.headers["cache-control"], "no-store");
    assert!(created.html.contains(r#"id="download-credentials""#));
    assert!(created.html.contains("only time"), "the warning");
    let id = server_id_of(&created);
    let file = created.hidden("credentials").unwrap();
    let download = b
        .post("/ui/credentials-file", &[("credentials", &file)])
        .await
        .expect(200);
    assert_eq!(
        download.headers["content-disposition"],
        "attachment; filename=\"1password-credentials.json\""
    );
    assert_eq!(download.headers["cache-control"], "no-store");
    let json: Value = serde_json::from_str(&download.html).unwrap();
    let secret = secret_of(&json);
    // The file authenticates as the new server, which has the vault.
    let server = app
        .get_as_server("/v1/connect/self", &id, &secret)
        .await
        .expect(200);
    assert_eq!(server["name"], "web");
    assert_eq!(server["vaults"][0]["id"], vault_id);
    // A duplicate name: the API's message, inline, the form kept.
    let again = b.post("/ui/servers", &[("name", "web")]).await.expect(409);
    assert!(again.alert().is_some(), "{}", again.html);
    assert!(again.html.contains(r#"value="web""#));
}

async fn vault_grants_rotation_and_deletion_by_name(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = app.vault("a", "USER_CREATED").await;
    let a = a["id"].as_str().unwrap().to_owned();
    app.vault("private", "PRIVATE").await;
    let (server, secret) = app.server("web", &[]).await;
    let id = server["id"].as_str().unwrap().to_owned();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let page = b.get(&format!("/ui/servers/{id}")).await.expect(200);
    assert!(page.html.contains("may reach no vault yet"), "empty state");
    assert!(
        !page.html.contains(">private<"),
        "built-in vaults are not offered"
    );
    b.post(&format!("/ui/servers/{id}/vaults"), &[("vault", &a)])
        .await
        .expect_redirect(&format!("/ui/servers/{id}"));
    let s = app
        .get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect(200);
    assert_eq!(s["vaults"][0]["id"], a.as_str());
    // R5 through the console: the API's refusal, inline.
    let page = b
        .post(&format!("/ui/servers/{id}/vaults"), &[("vault", "private")])
        .await
        .expect(422);
    assert!(page.alert().unwrap().contains("built-in"), "{}", page.html);
    b.post(&format!("/ui/servers/{id}/vaults/{a}/revoke"), &[])
        .await
        .expect_redirect(&format!("/ui/servers/{id}"));
    let s = app
        .get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect(200);
    assert!(s["vaults"].as_array().unwrap().is_empty());
    // Rotation: a new file; the old secret stops working.
    let rotated = b
        .post(&format!("/ui/servers/{id}/credentials"), &[])
        .await
        .expect(200);
    assert_eq!(rotated.h1(), "Credentials rotated");
    app.get_as_server("/v1/connect/self", &id, &secret)
        .await
        .expect(401);
    // Deletion asks for the name.
    b.get(&format!("/ui/servers/{id}")).await;
    let page = b
        .post(
            &format!("/ui/servers/{id}/delete"),
            &[("confirm_name", "wrong")],
        )
        .await
        .expect(422);
    assert!(page.alert().unwrap().contains("web"));
    app.get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect(200);
    b.post(
        &format!("/ui/servers/{id}/delete"),
        &[("confirm_name", "web")],
    )
    .await
    .expect_redirect("/ui/servers");
    app.get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect(404);
}

async fn an_action_through_the_console_shows_in_the_audit_trail_like_the_apis(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("a", "USER_CREATED").await;
    let (user, key) = app.user_with("dave", Some("manager")).await;
    let (server, _) = app.server("web", &[]).await;
    let id = server["id"].as_str().unwrap();
    let b = Browser::signed_in(&app, &key).await;
    b.get(&format!("/ui/servers/{id}")).await.expect(200);
    b.post(&format!("/ui/servers/{id}/vaults"), &[("vault", "a")])
        .await
        .expect_redirect(&format!("/ui/servers/{id}"));
    let events = app
        .get("/v1/audit/events?action=vault.grant")
        .await
        .expect(200);
    let e = &items(&events)[0];
    assert_eq!(e["actor_id"], user.as_str());
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["target_type"], "server_vault");
    assert!(!e["request_id"].as_str().unwrap().is_empty());
    assert_eq!(e["client_ip"], "127.0.0.1");
    // The owner's audit page shows it, filtered by action and actor.
    let o = Browser::signed_in(&app, OWNER_KEY).await;
    let page = o
        .get(&format!("/ui/audit?action=vault.grant&actor={user}"))
        .await
        .expect(200);
    assert!(page.html.contains(r#"<td class="nowrap">vault.grant</td>"#));
    assert!(
        !page
            .html
            .contains(r#"<td class="nowrap">vault.create</td>"#)
    );
    // It names who and what: the actor by email, the server and the vault by name, with their
    // IDs on hover, and the filter takes the actor's email as well as the ID.
    let vault = app.get("/v1/vaults/a").await.expect(200);
    let vault_id = vault["id"].as_str().unwrap();
    let by_email = o
        .get("/ui/audit?action=vault.grant&actor=Dave%40example.test")
        .await
        .expect(200);
    for html in [&page.html, &by_email.html] {
        assert!(
            html.contains(&format!(
                r#"<a href="/ui/users/{user}" title="{user}">dave@example.test</a>"#
            )),
            "{html}"
        );
        assert!(html.contains(&format!(
            r#"<span class="muted">server</span> <a href="/ui/servers/{id}" title="{id}">web</a>"#
        )));
        assert!(html.contains(&format!(
            r#"<span class="muted">vault</span> <span title="{vault_id}">a</span>"#
        )));
    }
    // A user deleted since is shown by the ID the trail keeps.
    app.delete(&format!("/v1/users/{user}")).await.expect(204);
    let after = o.get("/ui/audit?action=vault.grant").await.expect(200);
    assert!(
        after
            .html
            .contains(&format!(r#"<td class="word">{user}</td>"#)),
        "{}",
        after.html
    );
}

/// Issue 18's trust policies are shown on the server's page, in the order the exchange tries
/// them, with what they bind and grant; deleting one there goes through the API (audited).
async fn trust_policies_are_shown_on_the_server_and_deleted_there(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Prod", "USER_CREATED").await;
    let (server, _) = app.server("web", &["Prod"]).await;
    let server_id = server["id"].as_str().unwrap();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let path = format!("/ui/servers/{server_id}");
    assert!(
        b.get(&path)
            .await
            .expect(200)
            .html
            .contains("No trust policies")
    );
    app.post(
        "/v1/issuers",
        serde_json::json!({"issuer": "https://token.actions.githubusercontent.com", "name": "github"}),
    )
    .await
    .expect(201);
    let policy = app
        .post(
            "/v1/connect/servers/web/trust-policies",
            serde_json::json!({
                "name": "deploy-main",
                "issuer": "github",
                "audience": "https://cm.example.test",
                "subject": "repo:acme/api:ref:refs/heads/main",
                "claims": {"environment": "production"},
                "vaults": [{"vault": "Prod", "access": "read"}],
                "ttl": "10m",
            }),
        )
        .await
        .expect(201);
    let page = b.get(&path).await.expect(200);
    for shown in [
        "deploy-main",
        "repo:acme/api:ref:refs/heads/main",
        "environment=production",
        "Prod (view_items, view_and_copy_passwords)",
        "10 min",
    ] {
        assert!(page.html.contains(shown), "{shown} not on the page");
    }
    let policy_id = policy["id"].as_str().unwrap();
    b.post(&format!("{path}/trust-policies/{policy_id}/delete"), &[])
        .await
        .expect_redirect(&path);
    assert!(b.get(&path).await.html.contains("No trust policies"));
    let listed = app
        .get("/v1/connect/servers/web/trust-policies")
        .await
        .expect(200);
    assert!(items(&listed).is_empty());
    assert!(
        app.audit_actions()
            .await
            .contains(&("trust_policy.delete".into(), "success".into()))
    );
}

backend_tests!(
    trust_policies_are_shown_on_the_server_and_deleted_there,
    a4_a_server_grant_manager_sees_only_that_server,
    creating_a_server_offers_its_credentials_file_once,
    vault_grants_rotation_and_deletion_by_name,
    an_action_through_the_console_shows_in_the_audit_trail_like_the_apis,
);
