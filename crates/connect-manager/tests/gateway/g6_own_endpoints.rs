//! G6: the gateway's own endpoints (health, readiness, metrics) and its log: one event per
//! request with the operation, vault, item, jti, decision, status and latency, never a token.

use std::time::{Duration, Instant};

use crate::support::gateway::{Scene, UPSTREAM_TOKEN};
use crate::support::manager::metric_value;

async fn readyz(s: &Scene) -> (u16, serde_json::Value) {
    let r = s
        .client
        .get(s.gateway.url("/-/readyz"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn wait_readyz(s: &Scene, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz(s).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_readiness_goes_false_when_the_manager_or_the_upstream_stops() {
    let mut s = Scene::start().await;
    let healthz = s.gateway.url("/-/healthz");
    let body = wait_readyz(&s, 200).await;
    assert_eq!(body["checks"]["jwks"], true);
    s.standin.stop();
    let body = wait_readyz(&s, 503).await;
    assert_eq!(
        (&body["checks"]["upstream"], &body["checks"]["manager"]),
        (&serde_json::json!(false), &serde_json::json!(true)),
        "{body}"
    );
    assert_eq!(s.client.get(&healthz).send().await.unwrap().status(), 200);
    s.standin.restart();
    wait_readyz(&s, 200).await;
    s.manager.stop();
    let body = wait_readyz(&s, 503).await;
    assert_eq!(body["checks"]["manager"], false, "{body}");
    assert_eq!(s.client.get(&healthz).send().await.unwrap().status(), 200);
    s.manager.restart().await;
    wait_readyz(&s, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_metrics_count_requests_by_operation_and_decision() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read")]).await;
    for _ in 0..3 {
        assert_eq!(
            s.call("GET", &format!("/v1/vaults/{p}"), Some(&t.jwt), None)
                .await
                .0,
            200
        );
    }
    assert_eq!(
        s.call(
            "GET",
            &format!("/v1/vaults/{}", s.staging),
            Some(&t.jwt),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(s.call("GET", "/v1/vaults", None, None).await.0, 401);
    let text = s
        .client
        .get(s.gateway.url("/-/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |op: &str, decision: &str| {
        metric_value(
            &text,
            &format!(
                "connect_manager_gateway_requests_total{{operation=\"{op}\",decision=\"{decision}\"}}"
            ),
        )
    };
    assert_eq!(series("GET /v1/vaults/{v}", "allowed"), 3.0, "{text}");
    assert_eq!(series("GET /v1/vaults/{v}", "forbidden"), 1.0, "{text}");
    assert_eq!(series("GET /v1/vaults", "unauthorized"), 1.0, "{text}");
    assert_eq!(
        metric_value(
            &text,
            "connect_manager_gateway_upstream_latency_seconds_count"
        ),
        3.0,
        "{text}"
    );
    // One token, checked four times within max-staleness: one introspection, the rest cached.
    let calls = metric_value(&text, "connect_manager_gateway_introspection_calls_total");
    let hits = metric_value(
        &text,
        "connect_manager_gateway_introspection_cache_hits_total",
    );
    assert!(calls >= 1.0 && hits >= 1.0 && calls + hits >= 4.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_one_log_event_per_request_carries_the_jti_and_never_a_token() {
    let s = Scene::start().await;
    let p = s.production.clone();
    let t = s.token(&[(&p, "read")]).await;
    let item = s.standin.item(&p, "Database")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = s.gateway.request_events().len();
    let path = format!("/v1/vaults/{p}/items/{item}");
    assert_eq!(s.call("GET", &path, Some(&t.jwt), None).await.0, 200);
    assert_eq!(s.call("DELETE", &path, Some(&t.jwt), None).await.0, 403);
    assert_eq!(
        s.call("GET", &path, Some("forged.jwt.value"), None).await.0,
        401
    );
    // The log is written as the answer goes; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = s.gateway.request_events();
    let events = &events[before..];
    assert_eq!(events.len(), 3, "{events:?}");
    let want = [
        (
            "GET /v1/vaults/{v}/items/{i}",
            "allowed",
            200,
            t.id.as_str(),
        ),
        (
            "DELETE /v1/vaults/{v}/items/{i}",
            "forbidden",
            403,
            t.id.as_str(),
        ),
        ("GET /v1/vaults/{v}/items/{i}", "unauthorized", 401, ""),
    ];
    for (e, (op, decision, status, jti)) in events.iter().zip(want) {
        assert_eq!(e["operation"], op, "{e}");
        assert_eq!(e["decision"], decision, "{e}");
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(e["jti"], jti, "{e}");
        assert_eq!(e["vault"], p.as_str(), "{e}");
        assert_eq!(e["item"], item.as_str(), "{e}");
        assert!(e["latency_ms"].as_f64().is_some(), "{e}");
    }
    let log = s.gateway.log();
    assert!(!log.contains(&t.jwt), "a token in the log");
    assert!(
        !log.contains("forged.jwt.value"),
        "a presented token in the log"
    );
    assert!(
        !log.contains(UPSTREAM_TOKEN),
        "the upstream token in the log"
    );
}
