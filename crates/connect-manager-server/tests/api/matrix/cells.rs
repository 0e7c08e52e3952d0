//! The matrix's cells: the objects every cell shares (made once by the owner), and each cell's
//! request, built from its row's label and its column's caller.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::Who;
use crate::harness::{OWNER_KEY, TestApp};

/// Everything the cells share, made once by the owner.
pub(super) struct Fixture {
    pub(super) keys: HashMap<Who, Option<String>>,
    x: String,
    y: String,
    grantee_group: String,
    nobody: String,
    token_x: String,
    token_y: String,
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

impl Fixture {
    pub(super) async fn new(app: &TestApp) -> Fixture {
        app.vault("shared", "EVERYONE").await;
        let (x, _) = app.server("x", &["shared"]).await;
        let (y, _) = app.server("y", &["shared"]).await;
        let (x, y) = (id(&x), id(&y));
        let (_, manager) = app.user_with("manager", Some("manager")).await;
        let (_, all) = app.user_with("all", Some("all-servers")).await;
        let (_, grantee) = app
            .user_with("grantee", Some(&format!("servers/{x}")))
            .await;
        let (nobody, nobody_key) = app.user_with("nobody", None).await;
        let (revoked_user, _) = app.user_with("revoked", None).await;
        let k = app
            .post(&format!("/v1/users/{revoked_user}/keys"), json!({}))
            .await
            .expect(201);
        app.delete(&format!("/v1/users/{revoked_user}/keys/{}", id(&k)))
            .await
            .expect(204);
        let revoked = k["key"].as_str().unwrap().to_owned();
        let grantee_group = id(&app.get("/v1/groups/grantee-group").await.expect(200));
        let (tx, _) = app
            .token("x", json!({"name": "tx", "vaults": [{"vault": "shared"}]}))
            .await;
        let (ty, _) = app
            .token("y", json!({"name": "ty", "vaults": [{"vault": "shared"}]}))
            .await;
        app.post(
            "/v1/issuers",
            json!({"issuer": "https://token.actions.githubusercontent.com", "name": "gh"}),
        )
        .await
        .expect(201);
        app.post(
            &format!("/v1/connect/servers/{x}/trust-policies"),
            json!({"name": "p", "issuer": "gh", "audience": "cm", "subject": "*",
                "vaults": [{"vault": "shared"}]}),
        )
        .await
        .expect(201);
        let keys = HashMap::from([
            (Who::NoKey, None),
            (Who::BadKey, Some("cmk_this-is-not-a-key".to_owned())),
            (Who::RevokedKey, Some(revoked)),
            (Who::Owner, Some(OWNER_KEY.to_owned())),
            (Who::Manager, Some(manager)),
            (Who::AllServers, Some(all)),
            (Who::GranteeOnX, Some(grantee.clone())),
            (Who::GranteeOnY, Some(grantee)),
            (Who::NoGroup, Some(nobody_key)),
        ]);
        Fixture {
            keys,
            x,
            y,
            grantee_group,
            nobody,
            token_x: id(&tx),
            token_y: id(&ty),
        }
    }
}

/// Builds cell `n`'s request, making (as the owner) whatever fresh objects it consumes, so every
/// successful change in the matrix is a real change.
pub(super) async fn request(
    app: &TestApp,
    fx: &Fixture,
    label: &str,
    who: Who,
    n: usize,
) -> (Method, String, Option<Value>) {
    let (server, server_name, token) = if who == Who::GranteeOnY {
        (fx.y.clone(), "y", fx.token_y.clone())
    } else {
        (fx.x.clone(), "x", fx.token_x.clone())
    };
    let fresh_vault = async || id(&app.vault(&format!("v{n}"), "EVERYONE").await);
    let fresh_group = async || {
        id(&app
            .post("/v1/groups", json!({"name": format!("g{n}")}))
            .await
            .expect(201))
    };
    let nobody = &fx.nobody;
    let (method, path) = label.split_once(' ').unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let none = None;
    let (path, body) = match label {
        "POST /v1/vaults" => (
            path.to_owned(),
            Some(json!({"name": format!("v{n}"), "type": "EVERYONE"})),
        ),
        "GET /v1/vaults/{vault}" => ("/v1/vaults/shared".to_owned(), none),
        "PATCH /v1/vaults/{vault}" => (
            format!("/v1/vaults/{}", fresh_vault().await),
            Some(json!({"name": format!("renamed{n}")})),
        ),
        "DELETE /v1/vaults/{vault}" => (format!("/v1/vaults/{}", fresh_vault().await), none),
        "POST /v1/users" => (
            path.to_owned(),
            Some(json!({"name": "u", "email": format!("u{n}@example.test")})),
        ),
        "GET /v1/users/{user}" | "POST /v1/users/{user}/keys" | "GET /v1/users/{user}/keys" => (
            path.replace("{user}", nobody),
            Some(json!({})).filter(|_| label.starts_with("POST")),
        ),
        "DELETE /v1/users/{user}" => {
            let u = app
                .post(
                    "/v1/users",
                    json!({"name": "d", "email": format!("d{n}@example.test")}),
                )
                .await
                .expect(201);
            (format!("/v1/users/{}", id(&u)), none)
        }
        "DELETE /v1/users/{user}/keys/{key_id}" => {
            let k = app
                .post(&format!("/v1/users/{nobody}/keys"), json!({}))
                .await
                .expect(201);
            (format!("/v1/users/{nobody}/keys/{}", id(&k)), none)
        }
        "POST /v1/groups" => (path.to_owned(), Some(json!({"name": format!("g{n}")}))),
        "GET /v1/groups/{group}" => (format!("/v1/groups/{}", fx.grantee_group), none),
        "DELETE /v1/groups/{group}" => (format!("/v1/groups/{}", fresh_group().await), none),
        "PUT /v1/groups/{group}/members/{user}" => (
            format!("/v1/groups/{}/members/{nobody}", fresh_group().await),
            none,
        ),
        "DELETE /v1/groups/{group}/members/{user}" => {
            let g = fresh_group().await;
            app.put(&format!("/v1/groups/{g}/members/{nobody}"))
                .await
                .expect(200);
            (format!("/v1/groups/{g}/members/{nobody}"), none)
        }
        "PUT /v1/connect/groups/{group}/grants/manager"
        | "PUT /v1/connect/groups/{group}/grants/all-servers"
        | "PUT /v1/connect/groups/{group}/grants/servers/{server}" => (
            path.replace("{group}", &fresh_group().await)
                .replace("{server}", &fx.x),
            none,
        ),
        "DELETE /v1/connect/groups/{group}/grants/manager"
        | "DELETE /v1/connect/groups/{group}/grants/all-servers"
        | "DELETE /v1/connect/groups/{group}/grants/servers/{server}" => {
            let p = path
                .replace("{group}", &fresh_group().await)
                .replace("{server}", &fx.x);
            app.put(&p).await.expect(200);
            (p, none)
        }
        "POST /v1/connect/servers" => (path.to_owned(), Some(json!({"name": format!("s{n}")}))),
        "GET /v1/connect/servers/{server}" => (format!("/v1/connect/servers/{server}"), none),
        "PATCH /v1/connect/servers/{server}" => (
            format!("/v1/connect/servers/{server}"),
            Some(json!({"name": server_name})),
        ),
        "DELETE /v1/connect/servers/{server}" => {
            let (s, _) = app.server(&format!("d{n}"), &[]).await;
            let s = id(&s);
            if who == Who::GranteeOnX {
                app.put(&format!(
                    "/v1/connect/groups/{}/grants/servers/{s}",
                    fx.grantee_group
                ))
                .await
                .expect(200);
            }
            (format!("/v1/connect/servers/{s}"), none)
        }
        "POST /v1/connect/servers/{server}/credentials" => (
            format!("/v1/connect/servers/{server}/credentials"),
            Some(json!({})),
        ),
        "PUT /v1/connect/servers/{server}/vaults/{vault}" => (
            format!(
                "/v1/connect/servers/{server}/vaults/{}",
                fresh_vault().await
            ),
            none,
        ),
        "DELETE /v1/connect/servers/{server}/vaults/{vault}" => {
            let v = fresh_vault().await;
            app.put(&format!("/v1/connect/servers/{server}/vaults/{v}"))
                .await
                .expect(200);
            (format!("/v1/connect/servers/{server}/vaults/{v}"), none)
        }
        "POST /v1/connect/servers/{server}/tokens" => (
            format!("/v1/connect/servers/{server}/tokens"),
            Some(json!({"name": format!("t{n}"), "vaults": [{"vault": "shared"}]})),
        ),
        "PATCH /v1/connect/tokens/{token}" => (
            format!("/v1/connect/tokens/{token}"),
            Some(json!({"name": format!("{server_name}-token")})),
        ),
        "DELETE /v1/connect/tokens/{token}" => {
            let (t, _) = app
                .token(
                    &server,
                    json!({"name": format!("t{n}"), "vaults": [{"vault": "shared"}]}),
                )
                .await;
            (format!("/v1/connect/tokens/{}", id(&t)), none)
        }
        "POST /v1/introspect" => (path.to_owned(), Some(json!({"token": "x"}))),
        "POST /v1/connect/self/usage" => (path.to_owned(), Some(json!({"tokens": []}))),
        "POST /v1/keys/rotate" => (path.to_owned(), Some(json!({}))),
        "POST /v1/keys/{kid}/retire" => {
            // A key that no longer signs: made, then followed by a newer one.
            let old = app.post("/v1/keys/rotate", json!({})).await.expect(201)["kid"]
                .as_str()
                .unwrap()
                .to_owned();
            app.post("/v1/keys/rotate", json!({})).await.expect(201);
            (format!("/v1/keys/{old}/retire"), none)
        }
        "POST /v1/issuers" => (
            path.to_owned(),
            Some(json!({"issuer": format!("https://i{n}.example"), "name": format!("i{n}")})),
        ),
        "GET /v1/issuers/{issuer}" => ("/v1/issuers/gh".to_owned(), none),
        "DELETE /v1/issuers/{issuer}" => {
            let i = app
                .post(
                    "/v1/issuers",
                    json!({"issuer": format!("https://d{n}.example"), "name": format!("d{n}")}),
                )
                .await
                .expect(201);
            (format!("/v1/issuers/{}", id(&i)), none)
        }
        "POST /v1/connect/servers/{server}/trust-policies" => (
            format!("/v1/connect/servers/{server}/trust-policies"),
            Some(
                json!({"name": format!("p{n}"), "issuer": "gh", "audience": "cm",
                "subject": "*", "vaults": [{"vault": "shared"}]}),
            ),
        ),
        "GET /v1/connect/servers/{server}/trust-policies" => {
            (format!("/v1/connect/servers/{server}/trust-policies"), none)
        }
        "GET /v1/connect/servers/{server}/trust-policies/{policy}" => (
            format!("/v1/connect/servers/{server}/trust-policies/p"),
            none,
        ),
        "DELETE /v1/connect/servers/{server}/trust-policies/{policy}" => {
            let p = app
                .post(
                    &format!("/v1/connect/servers/{server}/trust-policies"),
                    json!({"name": format!("d{n}"), "issuer": "gh", "audience": "cm",
                        "subject": "*", "vaults": [{"vault": "shared"}]}),
                )
                .await
                .expect(201);
            (
                format!("/v1/connect/servers/{server}/trust-policies/{}", id(&p)),
                none,
            )
        }
        _ => (path.to_owned(), none),
    };
    (method, path, body)
}
