//! G3: the operation table against the real manager and the Connect stand-in. Every row is
//! allowed with its bits and refused without them; hostile requests are refused and never reach
//! the stand-in.

use serde_json::json;

use crate::support::gateway::{Scene, raw_http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_every_row_is_allowed_with_its_bits_and_refused_without() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let db = s.standin.item(&p, "Database");
    let item = db["id"].as_str().unwrap().to_string();
    let file = db["files"][0]["id"].as_str().unwrap().to_string();
    let read = s.token(&[(&p, "read")]).await;
    let write = s.token(&[(&p, "write")]).await;
    let reads = [
        format!("/v1/vaults/{p}"),
        format!("/v1/vaults/{p}/items"),
        format!("/v1/vaults/{p}/items?filter=title%20eq%20%22Database%22"),
        format!("/v1/vaults/{p}/items/"),
        format!("/v1/vaults/{p}/items/{item}"),
        format!("/v1/vaults/{p}/items/{item}/files"),
        format!("/v1/vaults/{p}/items/{item}/files/{file}"),
        format!("/v1/vaults/{p}/items/{item}/files/{file}/content"),
    ];
    for path in &reads {
        let (status, body) = s.call("GET", path, Some(&read.jwt), None).await;
        assert_eq!(status, 200, "read token, GET {path}: {body}");
        let (status, body) = s.call("GET", path, Some(&write.jwt), None).await;
        assert_eq!(status, 403, "write token, GET {path}: {body}");
        assert_eq!(body["status"], 403);
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&p) && message.contains("view_items"),
            "{message}"
        );
    }
    let new_item = json!({"title": "New", "category": "LOGIN", "vault": {"id": p}});
    let writes: Vec<(&str, String, &str)> = vec![
        ("POST", format!("/v1/vaults/{p}/items"), "create_items"),
        ("PUT", format!("/v1/vaults/{p}/items/{item}"), "edit_items"),
        (
            "PATCH",
            format!("/v1/vaults/{p}/items/{item}"),
            "edit_items",
        ),
        (
            "DELETE",
            format!("/v1/vaults/{p}/items/{item}"),
            "delete_items",
        ),
    ];
    for (method, path, bit) in &writes {
        let (status, body) = s
            .call(method, path, Some(&read.jwt), Some(new_item.clone()))
            .await;
        assert_eq!(status, 403, "read token, {method} {path}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&p) && message.contains(bit), "{message}");
    }
    for (method, path, _) in &writes {
        let body = (*method != "DELETE").then(|| new_item.clone());
        let (status, answer) = s.call(method, path, Some(&write.jwt), body).await;
        assert!(
            status == 200 || status == 204,
            "write token, {method} {path}: {status} {answer}"
        );
    }
    // A vault out of the token's scope: 403 naming it, whatever the bits elsewhere.
    let staging = s.staging.clone();
    let (status, body) = s
        .call(
            "GET",
            &format!("/v1/vaults/{staging}"),
            Some(&read.jwt),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert!(body["message"].as_str().unwrap().contains(&staging));
    // GET /v1/activity: refused even to a token that may read everything.
    let all = s
        .token(&[(&p, "read_write"), (&staging, "read_write")])
        .await;
    let (status, body) = s.call("GET", "/v1/activity", Some(&all.jwt), None).await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (403, Some(403)),
        "{body}"
    );
    let reached = s.reached().await;
    assert!(
        reached
            .iter()
            .all(|r| !r.contains("/v1/activity") && !r.contains(&staging)),
        "refused requests reached the upstream: {reached:?}"
    );
    // Allowed reads (8) and writes (4) reached it, refused ones did not.
    assert_eq!(reached.len(), reads.len() + writes.len(), "{reached:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_vault_list_is_cut_to_the_tokens_vaults() {
    let s = Scene::start().await;
    let t = s
        .token(&[(&s.production, "read"), (&s.shared, "write")])
        .await;
    for path in ["/v1/vaults", "/v1/vaults/"] {
        let (status, body) = s.call("GET", path, Some(&t.jwt), None).await;
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut want = vec![s.production.as_str(), s.shared.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "{path}");
    }
    // With a filter, still cut: Staging matches the filter but is not the token's.
    let (status, body) = s
        .call(
            "GET",
            "/v1/vaults?filter=name%20eq%20%22Staging%22",
            Some(&t.jwt),
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_hostile_requests_are_refused_and_never_reach_the_upstream() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let st = s.staging.clone();
    let t = s.token(&[(&p, "read_write")]).await;
    let upper = p.to_uppercase();
    let long = "a".repeat(5000);
    for path in [
        format!("/v1/vaults/{p}/../{st}"),
        format!("/v1/vaults/{p}/items/..%2f..%2f{st}"),
        format!("/v1/vaults/{p}/%2e%2e/{st}"),
        format!("/v1/vaults/{p}%2F..%2F{st}"),
        format!("/v1/vaults//{st}"),
        format!("//v1/vaults/{p}"),
        format!("/v1/vaults/{upper}"),
        format!("/v1/vaults/{p}/items/{long}"),
        format!("/v1/vaults?filter={long}"),
        "/__standin/requests".to_string(),
        "/v1/vaults/x".to_string(),
    ] {
        // reqwest would normalise `..`: send the request line as is.
        let answer = raw_http(
            s.gateway.port,
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                t.jwt
            )
            .as_bytes(),
        )
        .await;
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.contains(" 400 ")
                || status_line.contains(" 404 ")
                || status_line.contains(" 414 "),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("\"status\":"),
            "{path}: not Connect's shape: {answer}"
        );
    }
    let item = s.standin.item(&p, "Database")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for header in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let answer = raw_http(
            s.gateway.port,
            format!(
                "GET /v1/vaults/{p}/items/{item} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{header}: DELETE\r\nConnection: close\r\n\r\n",
                t.jwt
            )
            .as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{header}: {answer}");
    }
    // Both Content-Length and Transfer-Encoding (request smuggling).
    let answer = raw_http(
        s.gateway.port,
        format!(
            "POST /v1/vaults/{p}/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n",
            t.jwt
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "CL+TE: {answer}");
    // Oversized headers: over the gateway's limit (Connect's shape), and over hyper's buffer.
    for size in [20 * 1024, 100 * 1024] {
        let answer = raw_http(
            s.gateway.port,
            format!(
                "GET /v1/vaults/{p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                t.jwt,
                "b".repeat(size)
            )
            .as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{size}: {answer}");
    }
    let reached = s.reached().await;
    assert!(
        reached.is_empty(),
        "hostile requests reached the upstream: {reached:?}"
    );
    // And the gateway still serves the legitimate request.
    let (status, _) = s
        .call(
            "GET",
            &format!("/v1/vaults/{p}/items/{item}"),
            Some(&t.jwt),
            None,
        )
        .await;
    assert_eq!(status, 200);
}
