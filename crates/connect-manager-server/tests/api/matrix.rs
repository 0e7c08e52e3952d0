//! The authorisation matrix (A1–A5): every endpoint of the API × every kind of caller, with the
//! status each must get, written as one table. The same table is `docs/AUTHORIZATION.md`
//! (a test fails when the two differ; `UPDATE_DOCS=1` rewrites the document).
//!
//! Every cell also checks the audit trail by its request ID: a change that succeeded left a
//! success event, a refusal (403, or 404 for a server or token the caller may not see) left a
//! denied event, and a failed authentication or a read left none.
//!
//! Here: the table, the run over every cell and the document; `matrix/cells.rs`: the objects the
//! cells share and the request each cell sends.

use std::collections::HashMap;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::harness::{OWNER_KEY, TestApp};

mod cells;
use cells::{Fixture, request};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Who {
    NoKey,
    BadKey,
    RevokedKey,
    Owner,
    Manager,
    AllServers,
    /// A member of a group granted server X, acting on X.
    GranteeOnX,
    /// The same member, acting on server Y (not granted).
    GranteeOnY,
    NoGroup,
}

const WHO: [Who; 9] = [
    Who::NoKey,
    Who::BadKey,
    Who::RevokedKey,
    Who::Owner,
    Who::Manager,
    Who::AllServers,
    Who::GranteeOnX,
    Who::GranteeOnY,
    Who::NoGroup,
];

const COLUMNS: [&str; 9] = [
    "no key",
    "bad key",
    "revoked key",
    "owner",
    "manager",
    "all-servers",
    "grantee of X on X",
    "grantee of X on Y",
    "no group",
];

const PUBLIC: [u16; 9] = [200; 9];
const SERVER_AUTH: [u16; 9] = [401; 9];
const READ: [u16; 9] = [401, 401, 401, 200, 200, 200, 200, 200, 200];
const EXCHANGE: [u16; 9] = [400; 9];
const CREATE_SERVER: [u16; 9] = [401, 401, 401, 201, 201, 403, 403, 403, 403];

const fn owner(ok: u16) -> [u16; 9] {
    [401, 401, 401, ok, 403, 403, 403, 403, 403]
}

const fn manage(ok: u16) -> [u16; 9] {
    [401, 401, 401, ok, ok, ok, ok, 404, 404]
}

/// The policy: each endpoint and the status each caller gets.
const MATRIX: &[(&str, [u16; 9])] = &[
    ("GET /healthz", PUBLIC),
    ("GET /readyz", PUBLIC),
    ("GET /openapi.yaml", PUBLIC),
    ("GET /metrics", PUBLIC),
    ("GET /.well-known/jwks.json", PUBLIC),
    ("POST /v1/vaults", owner(201)),
    ("GET /v1/vaults", READ),
    ("GET /v1/vaults/{vault}", READ),
    ("PATCH /v1/vaults/{vault}", owner(200)),
    ("DELETE /v1/vaults/{vault}", owner(204)),
    ("POST /v1/users", owner(201)),
    ("GET /v1/users", owner(200)),
    ("GET /v1/users/{user}", owner(200)),
    ("DELETE /v1/users/{user}", owner(204)),
    ("POST /v1/users/{user}/keys", owner(201)),
    ("GET /v1/users/{user}/keys", owner(200)),
    ("DELETE /v1/users/{user}/keys/{key_id}", owner(204)),
    ("POST /v1/groups", owner(201)),
    ("GET /v1/groups", owner(200)),
    ("GET /v1/groups/{group}", owner(200)),
    ("DELETE /v1/groups/{group}", owner(204)),
    ("PUT /v1/groups/{group}/members/{user}", owner(200)),
    ("DELETE /v1/groups/{group}/members/{user}", owner(200)),
    ("PUT /v1/connect/groups/{group}/grants/manager", owner(200)),
    (
        "DELETE /v1/connect/groups/{group}/grants/manager",
        owner(200),
    ),
    (
        "PUT /v1/connect/groups/{group}/grants/all-servers",
        owner(200),
    ),
    (
        "DELETE /v1/connect/groups/{group}/grants/all-servers",
        owner(200),
    ),
    (
        "PUT /v1/connect/groups/{group}/grants/servers/{server}",
        owner(200),
    ),
    (
        "DELETE /v1/connect/groups/{group}/grants/servers/{server}",
        owner(200),
    ),
    ("POST /v1/connect/servers", CREATE_SERVER),
    ("GET /v1/connect/servers", READ),
    ("GET /v1/connect/servers/{server}", manage(200)),
    ("PATCH /v1/connect/servers/{server}", manage(200)),
    ("DELETE /v1/connect/servers/{server}", manage(204)),
    ("POST /v1/connect/servers/{server}/credentials", manage(201)),
    (
        "PUT /v1/connect/servers/{server}/vaults/{vault}",
        manage(200),
    ),
    (
        "DELETE /v1/connect/servers/{server}/vaults/{vault}",
        manage(200),
    ),
    ("POST /v1/connect/servers/{server}/tokens", manage(201)),
    ("GET /v1/connect/tokens", READ),
    ("PATCH /v1/connect/tokens/{token}", manage(200)),
    ("DELETE /v1/connect/tokens/{token}", manage(200)),
    ("GET /v1/connect/self", SERVER_AUTH),
    ("POST /v1/introspect", SERVER_AUTH),
    ("POST /v1/connect/self/usage", SERVER_AUTH),
    ("POST /v1/keys/rotate", owner(201)),
    ("POST /v1/keys/{kid}/retire", owner(200)),
    ("GET /v1/audit/events", owner(200)),
    ("POST /v1/issuers", owner(201)),
    ("GET /v1/issuers", READ),
    ("GET /v1/issuers/{issuer}", READ),
    ("DELETE /v1/issuers/{issuer}", owner(204)),
    (
        "POST /v1/connect/servers/{server}/trust-policies",
        manage(201),
    ),
    (
        "GET /v1/connect/servers/{server}/trust-policies",
        manage(200),
    ),
    (
        "GET /v1/connect/servers/{server}/trust-policies/{policy}",
        manage(200),
    ),
    (
        "DELETE /v1/connect/servers/{server}/trust-policies/{policy}",
        manage(204),
    ),
    // No credential: the subject token is one. The cells send no form: 400 for everyone.
    ("POST /v1/token-exchange", EXCHANGE),
];

async fn authorization_matrix(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fx = Fixture::new(&app).await;
    let mut cells = Vec::new();
    let mut n = 0;
    for (label, expected) in MATRIX {
        for (i, who) in WHO.into_iter().enumerate() {
            n += 1;
            let (method, path, body) = request(&app, &fx, label, who, n).await;
            let request_id = format!("matrix-{n}");
            let mut req = app
                .client
                .request(method.clone(), format!("{}{path}", app.base))
                .header("x-request-id", &request_id);
            if let Some(key) = &fx.keys[&who] {
                req = req.bearer_auth(key);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let status = req.send().await.unwrap().status().as_u16();
            assert_eq!(status, expected[i], "{label} as {}: {path}", COLUMNS[i]);
            cells.push((*label, method, status, request_id));
        }
    }
    assert_eq!(cells.len(), MATRIX.len() * WHO.len());

    // Changes that fail leave no event either.
    for (method, path, body, status) in [
        (
            Method::POST,
            "/v1/vaults",
            json!({"name": "shared", "type": "EVERYONE"}),
            409,
        ),
        (
            Method::POST,
            "/v1/connect/servers",
            json!({"name": "p", "vaults": ["nope"]}),
            404,
        ),
        (
            Method::POST,
            "/v1/connect/servers/x/tokens",
            json!({"name": "t", "vaults": []}),
            422,
        ),
    ] {
        n += 1;
        let request_id = format!("matrix-{n}");
        let r = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .bearer_auth(OWNER_KEY)
            .header("x-request-id", &request_id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        cells.push(("failed change", method, status, request_id));
    }

    // The audit trail, by request ID.
    let mut events: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for e in app.all_items("/v1/audit/events?limit=1000").await {
        events
            .entry(e["request_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            ));
    }
    let server_auth = [
        "GET /v1/connect/self",
        "POST /v1/introspect",
        "POST /v1/connect/self/usage",
    ];
    for (label, method, status, request_id) in &cells {
        let got = events.get(request_id).cloned().unwrap_or_default();
        let outcomes: Vec<&str> = got.iter().map(|(_, o)| o.as_str()).collect();
        let public =
            MATRIX.iter().any(|(l, e)| l == label && *e == PUBLIC) || server_auth.contains(label);
        match status {
            200..=299 if *method != Method::GET && !public => {
                assert!(
                    outcomes.contains(&"success"),
                    "{label} ({request_id}): no success event: {got:?}"
                )
            }
            403 | 404 if *label != "failed change" => {
                assert!(
                    outcomes.contains(&"denied"),
                    "{label} ({request_id}): no denied event: {got:?}"
                )
            }
            _ => assert!(
                got.is_empty(),
                "{label} ({request_id}, {status}): unexpected events {got:?}"
            ),
        }
    }
    app.stop().await;
}

/// The policy as a document: `docs/AUTHORIZATION.md` is this table.
#[test]
fn authorization_matrix_is_documented() {
    let mut doc = String::from(
        "# Who may do what\n\n\
         Generated from the authorisation matrix test \
         (`crates/connect-manager-server/tests/api/matrix.rs`), which checks every cell on SQLite \
         and PostgreSQL; `UPDATE_DOCS=1 cargo test -p connect-manager-server --test api matrix` \
         rewrites this file.\n\n\
         Callers: no `Authorization` header; a key that was never issued; a key that was deleted; \
         a member of the built-in Owners group; a member of a group with the `MANAGER` grant; of a \
         group with `ALL_SERVERS`; a member of a group granted server X acting on X, and the same \
         member acting on server Y; a user in no group.\n\n\
         Reading the table: 401 is a missing or bad key (with `WWW-Authenticate`); 403 is an \
         action the caller may see but not take; 404 is an object the caller may not see (its \
         existence does not leak). `/v1/connect/self`, `/v1/connect/self/usage` and \
         `/v1/introspect` take a Connect server's credentials (HTTP Basic), never a user's key. Every 403 and every 404 on an \
         existing server or token leaves a `denied` audit event; every change leaves a `success` \
         event in the same transaction; failed authentications are rate limited per client IP \
         (429) and logged, not audited one by one.\n\n",
    );
    doc.push_str(&format!("| endpoint | {} |\n", COLUMNS.join(" | ")));
    doc.push_str(&format!("|---|{}\n", "---|".repeat(COLUMNS.len())));
    for (label, statuses) in MATRIX {
        let cells: Vec<String> = statuses.iter().map(u16::to_string).collect();
        doc.push_str(&format!("| `{label}` | {} |\n", cells.join(" | ")));
    }
    doc.push_str(&format!(
        "\n{} endpoints × {} callers = {} cells, on each backend.\n",
        MATRIX.len(),
        WHO.len(),
        MATRIX.len() * WHO.len()
    ));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/AUTHORIZATION.md");
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &doc).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/AUTHORIZATION.md is stale: run with UPDATE_DOCS=1 and commit it"
    );
}

/// Every operation of the API is in the matrix.
#[test]
fn the_matrix_covers_every_operation() {
    let (_, api) = connect_manager_server::openapi::split();
    let mut operations = Vec::new();
    for (path, item) in &api.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                operations.push(format!("{method} {path}"));
            }
        }
    }
    let in_matrix: Vec<String> = MATRIX.iter().map(|(l, _)| l.to_string()).collect();
    for op in &operations {
        assert!(
            in_matrix.contains(op),
            "{op} is not in the authorisation matrix"
        );
    }
    assert_eq!(operations.len(), MATRIX.len());
}

backend_tests!(authorization_matrix);
