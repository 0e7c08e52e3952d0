//! The owners' pages: the vault registry, groups (members, the three grant scopes), users and
//! their API keys (a new key shown once), the audit trail's paging; no secret in any URL.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use super::Browser;
use crate::harness::{OWNER_KEY, TestApp, items};

async fn owners_manage_vaults_groups_users_and_keys(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let empty = b.get("/ui/vaults").await.expect(200);
    assert!(empty.html.contains("The registry is empty."));
    b.post("/ui/vaults", &[("name", "Prod"), ("type", "USER_CREATED")])
        .await
        .expect_redirect("/ui/vaults");
    let dup = b
        .post("/ui/vaults", &[("name", "prod"), ("type", "USER_CREATED")])
        .await
        .expect(409);
    assert!(dup.alert().is_some());
    let (server, _) = app.server("web", &["Prod"]).await;
    let server_id = server["id"].as_str().unwrap();
    // A user, a key shown once.
    let created = b
        .post(
            "/ui/users",
            &[("name", "Frank"), ("email", "frank@example.test")],
        )
        .await;
    assert_eq!(created.status.as_u16(), 303);
    let user_path = created.location().to_owned();
    let user_id = user_path.rsplit('/').next().unwrap().to_owned();
    b.get(&user_path).await.expect(200);
    let with_key = b.post(&format!("{user_path}/keys"), &[]).await.expect(200);
    assert_eq!(with_key.headers["cache-control"], "no-store");
    let key = with_key.by_id("new-key").unwrap();
    assert!(!b.get(&user_path).await.html.contains(&key), "shown once");
    // A group with the user, granted the server: the user now sees it.
    let group = b.post("/ui/groups", &[("name", "ops")]).await;
    let group_path = group.location().to_owned();
    b.get(&group_path).await.expect(200);
    b.post(
        &format!("{group_path}/members"),
        &[("user", "frank@example.test")],
    )
    .await
    .expect_redirect(&group_path);
    b.post(
        &format!("{group_path}/grants"),
        &[("scope", "SERVER"), ("server", "web")],
    )
    .await
    .expect_redirect(&group_path);
    let page = b.get(&group_path).await.expect(200);
    assert!(page.html.contains(&user_id) && page.html.contains(server_id));
    // Members by email and servers by name, the IDs on hover and in the forms.
    assert!(
        page.html.contains(&format!(
            r#"<a href="/ui/users/{user_id}" title="{user_id}">frank@example.test</a>"#
        )),
        "{}",
        page.html
    );
    assert!(page.html.contains("server web (SERVER)"));
    assert!(page.html.contains(&format!(
        r#"<input type="hidden" name="server" value="{server_id}">"#
    )));
    let list = b.get("/ui/groups").await.expect(200);
    assert!(
        list.html.contains("<td>server web (SERVER)</td>"),
        "{}",
        list.html
    );
    let frank = Browser::signed_in(&app, &key).await;
    assert!(frank.get("/ui/servers").await.html.contains(server_id));
    // Revoking the grant: the next page shows the server no more.
    b.post(
        &format!("{group_path}/grants/revoke"),
        &[("scope", "SERVER"), ("server", server_id)],
    )
    .await
    .expect_redirect(&group_path);
    assert!(!frank.get("/ui/servers").await.html.contains(server_id));
    frank
        .get(&format!("/ui/servers/{server_id}"))
        .await
        .expect(404);
    // The API agrees with everything the console did.
    let groups = app.get("/v1/groups").await.expect(200);
    assert!(items(&groups).iter().any(|g| g["name"] == "ops"));
}

async fn audit_pages_follow_the_apis_cursor(db: TestDb) {
    let app = TestApp::spawn(db).await;
    for i in 0..5 {
        app.vault(&format!("v{i}"), "USER_CREATED").await;
    }
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let first = b
        .get("/ui/audit?action=vault.create&limit=3")
        .await
        .expect(200);
    assert_eq!(
        first
            .html
            .matches(r#"<td class="nowrap">vault.create</td>"#)
            .count(),
        3
    );
    let next = super::unescape(
        first
            .html
            .split(r#"rel="next""#)
            .next()
            .unwrap()
            .rsplit("href=\"")
            .next()
            .unwrap()
            .trim_end_matches("\" "),
    );
    assert!(
        next.starts_with("/ui/audit?limit=3&action=vault.create&cursor="),
        "{next}"
    );
    let second = b.get(&next).await.expect(200);
    assert_eq!(
        second
            .html
            .matches(r#"<td class="nowrap">vault.create</td>"#)
            .count(),
        2
    );
    assert!(!second.html.contains(r#"rel="next""#));
}

async fn no_secret_appears_in_a_console_url(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("a", "USER_CREATED").await;
    let b = Browser::new(&app);
    b.get("/ui/sign-in").await;
    let signed = b.post("/ui/sign-in", &[("api_key", OWNER_KEY)]).await;
    let session = b.cookie("__Host-cm_session").unwrap();
    b.get("/ui/").await.expect(200);
    let mut locations = vec![signed.location().to_owned()];
    let created = b
        .post("/ui/servers", &[("name", "web"), ("vaults", "a")])
        .await
        .expect(200);
    let file = created.hidden("credentials").unwrap();
    let at = created.html.find("/ui/servers/").unwrap() + 12;
    let id = created.html[at..at + 26].to_owned();
    b.post(
        &format!("/ui/servers/{id}/tokens"),
        &[("name", "t"), ("access.a", "read")],
    )
    .await;
    locations.push(b.post("/ui/sign-out", &[]).await.location().to_owned());
    // Every link, form action and redirect the console produced.
    let mut urls: Vec<String> = locations;
    for page in [&created.html] {
        for part in page
            .split("href=\"")
            .skip(1)
            .chain(page.split("action=\"").skip(1))
        {
            urls.push(part.split('"').next().unwrap().to_owned());
        }
    }
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    let secret = crate::harness::secret_of(&json);
    for url in &urls {
        for s in [OWNER_KEY, session.as_str(), secret.as_str()] {
            assert!(!url.contains(s), "{url}");
        }
    }
}

async fn g8_vaults_import_from_a_pasted_connect_answer(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let existing = app.vault("Old name", "USER_CREATED").await;
    let existing_id = existing["id"].as_str().unwrap();
    let new_id = "abcdefghijklmnopqrstuvwxyz";
    let pasted = serde_json::json!([
        {"id": new_id, "name": "Kubernetes", "type": "USER_CREATED", "contentVersion": 3},
        {"id": existing_id, "name": "New name", "type": "USER_CREATED"},
        {"id": "NOT-AN-ID", "name": "Bad", "type": "USER_CREATED"},
    ])
    .to_string();
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    b.get("/ui/vaults/import").await.expect(200);
    let page = b
        .post("/ui/vaults/import", &[("connect_vaults", &pasted)])
        .await
        .expect(200);
    assert!(page.html.contains("<td>created</td>"), "{}", page.html);
    assert!(page.html.contains("renamed (was Old name)"));
    assert!(page.html.contains("not imported: not a vault ID"));
    let created = app.get(&format!("/v1/vaults/{new_id}")).await.expect(200);
    assert_eq!(created["name"], "Kubernetes");
    let renamed = app
        .get(&format!("/v1/vaults/{existing_id}"))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "New name");
    // Not JSON: the form again, with the reason.
    let bad = b
        .post("/ui/vaults/import", &[("connect_vaults", "not json")])
        .await
        .expect(422);
    assert!(bad.alert().is_some());
    // A manager is refused by the API, vault by vault, and nothing changes.
    let (_, key) = app.user_with("gina", Some("manager")).await;
    let m = Browser::signed_in(&app, &key).await;
    m.get("/ui/vaults/import").await.expect(200);
    let other = serde_json::json!([{"id": "zyxwvutsrqponmlkjihgfedcba", "name": "X"}]).to_string();
    let page = m
        .post("/ui/vaults/import", &[("connect_vaults", &other)])
        .await
        .expect(200);
    assert!(
        page.html.contains("not imported: only owners"),
        "{}",
        page.html
    );
    app.get("/v1/vaults/zyxwvutsrqponmlkjihgfedcba")
        .await
        .expect(404);
}

backend_tests!(
    g8_vaults_import_from_a_pasted_connect_answer,
    owners_manage_vaults_groups_users_and_keys,
    audit_pages_follow_the_apis_cursor,
    no_secret_appears_in_a_console_url,
);
