//! G3–G6: one decision per request (the operation, the token, the bits), then either the
//! forwarded request (G4), the forward-auth answer (G5) or the gateway's own endpoints (G6).
//!
//! What lives where:
//! - here: the [`Gateway`], its seams to G2 ([`TokenCheck`]) and G7 ([`UsageRecord`]), the
//!   request's log event ([`Gateway::handle`]) and the one decision (G3 operation, G2 token, T2
//!   bits) that forwarding and forward-auth share.
//! - `refused.rs`: the refusals in Connect's error shape (G4: one 401 message for all), and the
//!   header checks made before any decision (size, method overrides, request smuggling, one
//!   `Authorization`).
//! - `forward.rs`: G4, the allowed request sent upstream on the client connection's own upstream
//!   connection, hop-by-hop headers dropped both ways, the upstream token put in.
//! - `vault_list.rs`: G4's cut of `GET /v1/vaults` to the vaults the token may see.
//! - `forward_auth.rs`: G5, the same decision for a proxy that forwards by itself (the
//!   `X-Forwarded-*`/`X-Original-*` pairs must agree).
//! - `own.rs`: G6, `/-/healthz`, `/-/readyz`, `/-/metrics`.

mod forward;
mod forward_auth;
mod own;
mod refused;
mod vault_list;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Upstream;
use crate::conn::UpstreamConn;
use crate::metrics::Metrics;
use crate::operation::{self, Operation, Route};
use crate::request_metrics::RequestMetrics;
use crate::verify::{Access, Refusal};

pub use refused::{MAX_HEADER_BYTES, UNAUTHORIZED_MESSAGE, connect_error};
pub use vault_list::MAX_VAULT_LIST_BYTES;

use refused::Refused;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the proxy needs of token verification (G2): implemented by [`crate::verify::Verifier`].
pub trait TokenCheck: Send + Sync + 'static {
    /// The token's effective access, or why it is refused.
    fn check<'a>(
        &'a self,
        authorization: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Arc<Access>, Refusal>>;
    /// Whether the manager's JWKS has been loaded (readiness).
    fn jwks_loaded(&self) -> bool;
    /// Whether the manager answers now (readiness).
    fn manager_reachable(&self) -> BoxFuture<'_, bool>;
}

/// Where allowed requests are recorded for G7: implemented by [`crate::usage::Usage`].
pub trait UsageRecord: Send + Sync + 'static {
    fn record(&self, jti: &str, ip: IpAddr);
}

/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

pub struct Gateway {
    checker: Arc<dyn TokenCheck>,
    usage: Arc<dyn UsageRecord>,
    upstream: Option<Upstream>,
    client: UpstreamClient,
    connector: HttpsConnector<HttpConnector>,
    metrics: Arc<Metrics>,
    requests: RequestMetrics,
}

/// What one request was, for its log event and the metrics.
#[derive(Default)]
struct Outcome {
    operation: Option<&'static str>,
    vault: Option<String>,
    item: Option<String>,
    /// The token's access (its `jti` is logged): shared with the verifier's cache, not copied.
    access: Option<Arc<Access>>,
    decision: &'static str,
}

impl Outcome {
    fn of(op: &Operation) -> Outcome {
        Outcome {
            operation: Some(op.route.template()),
            vault: op.vault.clone(),
            item: op.item.clone(),
            ..Outcome::default()
        }
    }
}

impl Gateway {
    pub fn new(
        checker: Arc<dyn TokenCheck>,
        usage: Arc<dyn UsageRecord>,
        upstream: Option<Upstream>,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, String> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
        let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)
            .map_err(|e| format!("TLS: the platform's certificate verifier: {e}"))?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector.clone());
        Ok(Gateway {
            checker,
            usage,
            upstream,
            client,
            connector,
            metrics,
            requests: RequestMetrics::default(),
        })
    }

    /// Answers one request from `remote`; logs it once and counts it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        remote: SocketAddr,
        conn: &UpstreamConn,
    ) -> Response<Body> {
        let start = Instant::now();
        let path = request.uri().path();
        let (response, outcome) = if let Some(own) = path.strip_prefix("/-/") {
            let own = own.to_string();
            (self.own(&own, request.method()).await, None)
        } else if path == "/v1/forward-auth" || path == "/v1/forward-auth/" {
            let (r, o) = self.forward_auth(&request).await;
            (r, Some(o))
        } else {
            let (r, o) = self.proxy(request, remote, conn).await;
            (r, Some(o))
        };
        if let Some(o) = outcome {
            let latency = start.elapsed();
            let status = response.status().as_u16();
            let operation = o.operation.unwrap_or("unknown");
            self.requests.request(operation, o.decision);
            tracing::info!(
                target: "connect_manager_gateway::request",
                operation,
                vault = o.vault.as_deref().unwrap_or(""),
                item = o.item.as_deref().unwrap_or(""),
                jti = o.access.as_deref().map_or("", |a| a.jti.as_str()),
                decision = o.decision,
                status,
                latency_ms = latency.as_secs_f64() * 1000.0,
                client_ip = %remote.ip(),
                "request"
            );
        }
        response
    }

    /// The decision (G3, G2, T2) on `method` + `path?query` with `authorization`: the operation
    /// and, when it needs a token, the token's access.
    async fn decide(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
        outcome: &mut Outcome,
    ) -> Result<(Operation, Option<Arc<Access>>), Refused> {
        let op = operation::parse(method, path, query).map_err(Refused::from_unmatched)?;
        *outcome = Outcome::of(&op);
        if !op.route.needs_token() {
            return Ok((op, None));
        }
        let access = self
            .checker
            .check(authorization)
            .await
            .map_err(Refused::from_refusal)?;
        outcome.access = Some(access.clone());
        if op.route == Route::Activity {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "GET /v1/activity is refused by the gateway: it shows every token's requests",
            ));
        }
        let needs = op.route.needs();
        if let Some(vault) = &op.vault {
            let has = access.bits(vault);
            let missing = needs & !has;
            if missing != 0 {
                let scope = if has == 0 {
                    " (the vault is out of the token's scope)"
                } else {
                    ""
                };
                return Err(Refused::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "The token lacks {} on vault {vault}{scope}",
                        operation::bit_names(missing).join(" and ")
                    ),
                ));
            }
        }
        Ok((op, Some(access)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token check that answers one fixed access (the real one is tested in g2_checks).
    struct Fixed(u32);
    const V: &str = "abcdefghijklmnopqrstuvwxyz";
    const I: &str = "0123456789abcdefghijklmnop";
    const F: &str = "zyxwvutsrqponmlkjihgfedcba";

    impl TokenCheck for Fixed {
        fn check<'a>(
            &'a self,
            authorization: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Arc<Access>, Refusal>> {
            let bits = self.0;
            Box::pin(async move {
                match authorization {
                    Some("Bearer good") => Ok(Arc::new(Access {
                        jti: "jti".into(),
                        vaults: [(V.to_string(), bits)].into_iter().collect(),
                    })),
                    _ => Err(Refusal::Unauthorized),
                }
            })
        }
        fn jwks_loaded(&self) -> bool {
            true
        }
        fn manager_reachable(&self) -> BoxFuture<'_, bool> {
            Box::pin(async { true })
        }
    }

    struct NoUsage;
    impl UsageRecord for NoUsage {
        fn record(&self, _: &str, _: IpAddr) {}
    }

    fn gateway(bits: u32) -> Gateway {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Gateway::new(
            Arc::new(Fixed(bits)),
            Arc::new(NoUsage),
            None,
            Arc::new(Metrics::default()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn g3_each_row_is_allowed_with_exactly_its_bits_and_refused_with_one_less() {
        let rows = [
            ("GET", format!("/v1/vaults/{V}"), 16),
            ("GET", format!("/v1/vaults/{V}/items"), 16),
            ("GET", format!("/v1/vaults/{V}/items/{I}/files"), 16),
            ("GET", format!("/v1/vaults/{V}/items/{I}"), 48),
            ("GET", format!("/v1/vaults/{V}/items/{I}/files/{F}"), 48),
            (
                "GET",
                format!("/v1/vaults/{V}/items/{I}/files/{F}/content"),
                48,
            ),
            ("POST", format!("/v1/vaults/{V}/items"), 64),
            ("PUT", format!("/v1/vaults/{V}/items/{I}"), 128),
            ("PATCH", format!("/v1/vaults/{V}/items/{I}"), 128),
            ("DELETE", format!("/v1/vaults/{V}/items/{I}"), 512),
        ];
        for (method, path, bits) in rows {
            let mut o = Outcome::default();
            let allowed = gateway(bits)
                .decide(method, &path, None, Some("Bearer good"), &mut o)
                .await;
            assert!(allowed.is_ok(), "{method} {path} with {bits}");
            // Every other bit but one of the needed ones: refused, naming the missing bit.
            let mut needed = bits;
            while needed != 0 {
                let bit = needed & needed.wrapping_neg();
                needed &= !bit;
                let has = 1008 & !bit;
                let refused = gateway(has)
                    .decide(method, &path, None, Some("Bearer good"), &mut o)
                    .await
                    .unwrap_err();
                assert_eq!(refused.status, 403, "{method} {path} without {bit}");
                assert!(
                    refused.message.contains(V)
                        && refused.message.contains(operation::bit_names(bit)[0]),
                    "{}",
                    refused.message
                );
            }
            let refused = gateway(bits)
                .decide(method, &path, None, Some("Bearer bad"), &mut o)
                .await
                .unwrap_err();
            assert_eq!(refused.status, 401);
        }
        // The vault list and the health endpoints need no bits; activity is refused to all.
        let mut o = Outcome::default();
        let g = gateway(0);
        assert!(
            g.decide("GET", "/v1/vaults", None, Some("Bearer good"), &mut o)
                .await
                .is_ok()
        );
        assert!(
            g.decide("GET", "/heartbeat", None, None, &mut o)
                .await
                .is_ok()
        );
        let r = gateway(1008)
            .decide("GET", "/v1/activity", None, Some("Bearer good"), &mut o)
            .await
            .unwrap_err();
        assert_eq!(r.status, 403);
    }
}
