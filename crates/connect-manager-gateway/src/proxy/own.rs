//! G6: the gateway's own endpoints under `/-/` (`healthz`, `readyz`, `metrics`); they need no
//! token and are not forwarded.

use std::time::Duration;

use axum::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{Gateway, connect_error};

/// How long `/-/readyz` waits for the upstream's `/heartbeat`.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

impl Gateway {
    /// G6: `/-/healthz`, `/-/readyz`, `/-/metrics`.
    pub(super) async fn own(&self, path: &str, method: &Method) -> Response<Body> {
        if method != Method::GET {
            return connect_error(StatusCode::NOT_FOUND, "Not found");
        }
        match path {
            "healthz" => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
            "readyz" => {
                let jwks = self.checker.jwks_loaded();
                let (manager, upstream) =
                    tokio::join!(self.checker.manager_reachable(), self.upstream_reachable());
                let ready = jwks && manager && upstream.unwrap_or(true);
                json(
                    if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    },
                    serde_json::json!({
                        "ready": ready,
                        "checks": { "jwks": jwks, "manager": manager, "upstream": upstream },
                    }),
                )
            }
            "metrics" => {
                let mut r = Response::new(Body::from(self.requests.render(&self.metrics)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            _ => connect_error(StatusCode::NOT_FOUND, "Not found"),
        }
    }

    /// The upstream's `GET /heartbeat` answers 2xx; None without an upstream.
    async fn upstream_reachable(&self) -> Option<bool> {
        let upstream = self.upstream.as_ref()?;
        let request = Request::get(upstream.uri("/heartbeat"))
            .body(Body::empty())
            .ok()?;
        Some(matches!(
            tokio::time::timeout(HEARTBEAT_TIMEOUT, self.client.request(request)).await,
            Ok(Ok(r)) if r.status().is_success()
        ))
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
