//! G4: answers. Refusals in Connect's error body; the client's token never reaches the upstream
//! and the upstream token never reaches a client; hop-by-hop headers dropped; a file's content
//! streams; an upstream that is down is a 502 in Connect's shape.

use std::time::Duration;

use serde_json::Value;

use crate::support::gateway::{Scene, UPSTREAM_TOKEN, raw_http};
use crate::support::manager::TestManager;

fn connect_shape(status: u16, body: &Value) -> String {
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    body["message"].as_str().expect("a message").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_every_bad_token_is_one_401_in_connects_shape() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let path = format!("/v1/vaults/{p}");
    let good = s.token(&[(&p, "read")]).await;
    let revoked = s.token(&[(&p, "read")]).await;
    let expiring = s
        .manager
        .create_token(&s.server.id, "short", &[(&p, "read")], Some("1s"))
        .await;
    let other = s.manager.create_server("other", &[&p]).await;
    let foreign = s
        .manager
        .create_token(&other.id, "foreign", &[(&p, "read")], None)
        .await;
    s.manager.revoke_token(&revoked.id, &s.server.id).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut messages = Vec::new();
    for jwt in [
        None,
        Some(""),
        Some("not-a-jwt"),
        Some("a.b.c"),
        Some(foreign.jwt.as_str()),
        Some(revoked.jwt.as_str()),
        Some(expiring.jwt.as_str()),
    ] {
        let (status, body) = s.call("GET", &path, jwt, None).await;
        assert_eq!(status, 401, "{jwt:?}: {body}");
        messages.push(connect_shape(401, &body));
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one message for every bad token: {messages:?}"
    );
    // A Basic header, two Authorization headers: the same.
    for auth in [
        "Authorization: Basic dXNlcjpwYXNz\r\n".to_string(),
        format!(
            "Authorization: Bearer {0}\r\nAuthorization: Bearer {0}\r\n",
            good.jwt
        ),
    ] {
        let answer = raw_http(
            s.gateway.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{auth}: {answer}");
        assert!(answer.contains(&messages[0]), "{answer}");
    }
    // 403 names the vault and the bit; 404 for what is not in the table.
    let (status, body) = s
        .call(
            "DELETE",
            &format!("{path}/items/{}", "a".repeat(26)),
            Some(&good.jwt),
            None,
        )
        .await;
    let m = connect_shape(status, &body);
    assert!(
        status == 403 && m.contains(&p) && m.contains("delete_items"),
        "{m}"
    );
    let (status, body) = s.call("GET", "/v1/nothing", Some(&good.jwt), None).await;
    assert_eq!(status, 404);
    connect_shape(404, &body);
    assert!(s.reached().await.is_empty());
    // The good token passes.
    assert_eq!(s.call("GET", &path, Some(&good.jwt), None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_manager_down_and_no_young_answer_is_503_in_connects_shape() {
    let mut s = Scene::start().await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read")]).await;
    s.manager.stop();
    // Past max-staleness (1s): nothing young enough is left.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = s
        .call("GET", &format!("/v1/vaults/{p}"), Some(&t.jwt), None)
        .await;
    assert_eq!(status, 503, "{body}");
    connect_shape(503, &body);
    assert!(s.reached().await.is_empty());
    s.manager.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = s
            .call("GET", &format!("/v1/vaults/{p}"), Some(&t.jwt), None)
            .await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_client_token_never_upstream_and_upstream_token_never_in_an_answer() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read_write")]).await;
    let item = s.standin.item(&p, "Database")["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.standin.reset().await;
    let mut answers = String::new();
    for (method, path) in [
        ("GET", "/v1/vaults".to_string()),
        ("GET", format!("/v1/vaults/{p}/items")),
        ("GET", format!("/v1/vaults/{p}/items/{item}")),
        ("GET", "/health".to_string()),
        ("GET", "/heartbeat".to_string()),
        ("GET", format!("/v1/vaults/{}", s.staging)),
        ("GET", "/v1/activity".to_string()),
        ("POST", format!("/v1/vaults/{p}/items")),
    ] {
        let answer = raw_http(
            s.gateway.port,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Connection: close, X-Hop-Secret\r\nX-Hop-Secret: hop\r\nKeep-Alive: timeout=5\r\n\
                 Proxy-Authorization: Basic c2VjcmV0\r\nX-End-To-End: kept\r\n\
                 Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
                t.jwt
            )
            .as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 "), "{path}: {answer}");
        answers.push_str(&answer);
    }
    assert!(
        !answers.contains(UPSTREAM_TOKEN),
        "the upstream token reached a client"
    );
    let record = s.standin.requests().await;
    assert!(record.len() >= 5, "{record:?}");
    let text = serde_json::to_string(&record).unwrap();
    assert!(
        !text.contains(&t.jwt),
        "the client's token reached the upstream"
    );
    for r in &record {
        let h = &r["headers"];
        let path = r["raw_path"].as_str().unwrap();
        if path.starts_with("/v1/") {
            assert_eq!(
                h["authorization"],
                format!("Bearer {UPSTREAM_TOKEN}"),
                "{r}"
            );
        } else {
            assert!(h.get("authorization").is_none(), "{r}");
        }
        for hop in ["x-hop-secret", "keep-alive", "proxy-authorization"] {
            assert!(h.get(hop).is_none(), "{hop} was forwarded: {r}");
        }
        assert_eq!(h["x-end-to-end"], "kept", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_file_content_streams_through_without_being_held_whole() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let s = Scene::with_big_file(SIZE).await;
    let before = s.gateway.peak_rss();
    let mut r = s.download_big_file().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(SIZE));
    let mut received = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        received += chunk.len() as u64;
    }
    assert_eq!(received, SIZE);
    let grown = s.gateway.peak_rss().saturating_sub(before);
    // Held whole, the peak would grow by the file's size; streamed, by buffers only.
    assert!(
        grown < SIZE / 8,
        "the gateway's peak memory grew by {grown} bytes for a {SIZE}-byte file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_upstream_down_is_502_in_connects_shape_and_heals() {
    let mut s = Scene::start().await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read")]).await;
    let path = format!("/v1/vaults/{p}");
    s.standin.stop();
    let (status, body) = s.call("GET", &path, Some(&t.jwt), None).await;
    assert_eq!(status, 502, "{body}");
    connect_shape(502, &body);
    s.standin.restart();
    assert_eq!(s.call("GET", &path, Some(&t.jwt), None).await.0, 200);
    // An upstream error is the upstream's answer, unchanged.
    s.standin.fail(500).await;
    let (status, body) = s.call("GET", &path, Some(&t.jwt), None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (500, Some("stand-in told to fail"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_gateway_runs_on_a_postgres_manager() {
    let Some(m) = TestManager::start_postgres().await else {
        return;
    };
    let s = Scene::start_with(m, &[], "1s").await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read")]).await;
    let (status, body) = s.call("GET", "/v1/vaults", Some(&t.jwt), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    s.manager.revoke_token(&t.id, &s.server.id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.call("GET", "/v1/vaults", Some(&t.jwt), None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_allowed_requests_are_recorded_for_last_use_refused_ones_are_not() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let used = s.token(&[(&p, "read")]).await;
    let refused = s.token(&[(&p, "read")]).await;
    assert_eq!(
        s.call("GET", &format!("/v1/vaults/{p}"), Some(&used.jwt), None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/vaults/{p}/items/{}", "a".repeat(26)),
            Some(&refused.jwt),
            None
        )
        .await
        .0,
        403
    );
    // Reports go every few seconds (G7).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = s.manager.token(&used.id, &s.server.id).await;
        if !t["last_used_at"].is_null() {
            assert_eq!(t["last_used_ip"], "127.0.0.1", "{t}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reported: {t}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let t = s.manager.token(&refused.id, &s.server.id).await;
    assert!(
        t["last_used_at"].is_null(),
        "a refused request counted as use: {t}"
    );
}
