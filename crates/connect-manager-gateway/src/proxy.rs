//! G3–G6: one decision per request (the operation, the token, the bits), then either the
//! forwarded request (G4), the forward-auth answer (G5) or the gateway's own endpoints (G6).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Upstream;
use crate::conn::UpstreamConn;
use crate::metrics::Metrics;
use crate::operation::{self, Operation, Route, Unmatched};
use crate::request_metrics::RequestMetrics;
use crate::verify::{Access, Refusal};
use hyper::client::conn::http1::SendRequest;

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

/// The most bytes of request headers accepted (names, values and separators): beyond, 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most bytes of `GET /v1/vaults` read to cut it to the token's vaults.
pub const MAX_VAULT_LIST_BYTES: usize = 8 * 1024 * 1024;
/// How long `/-/readyz` waits for the upstream's `/heartbeat`.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The message of every 401 (G4: one message for all).
pub const UNAUTHORIZED_MESSAGE: &str = "Invalid token";

/// Headers that ask a server to treat a request as another method: refused, whatever the
/// upstream makes of them.
const METHOD_OVERRIDES: [&str; 4] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-http-method",
];

/// RFC 9110 §7.6.1 hop-by-hop headers, dropped in both directions (as are the ones a
/// `Connection` header names).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

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

/// A decision against a request, in Connect's error shape.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
    decision: &'static str,
}

impl Refused {
    fn new(status: StatusCode, decision: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
            decision,
        }
    }

    fn from_unmatched(u: Unmatched) -> Refused {
        match u {
            Unmatched::Malformed => Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "Invalid request path: refused by the gateway",
            ),
            Unmatched::TooLong => Refused::new(
                StatusCode::URI_TOO_LONG,
                "malformed",
                "Request URI too long",
            ),
            Unmatched::BadQuery => Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "Unsupported query parameter: refused by the gateway",
            ),
            Unmatched::NotFound => Refused::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found: not an operation the gateway forwards",
            ),
        }
    }

    fn from_refusal(r: Refusal) -> Refused {
        match r {
            Refusal::Unauthorized => Refused::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                UNAUTHORIZED_MESSAGE,
            ),
            Refusal::Unavailable => Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The token cannot be checked now: the manager is unreachable",
            ),
        }
    }

    fn response(&self) -> Response<Body> {
        connect_error(self.status, &self.message)
    }
}

/// Connect's error body: `{"status": N, "message": "…"}`.
pub fn connect_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "status": status.as_u16(), "message": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
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

/// Checks on the request's headers that do not depend on the operation.
fn check_headers(headers: &HeaderMap) -> Result<(), Refused> {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(Refused::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "malformed",
            "Request headers too large",
        ));
    }
    if let Some(name) = METHOD_OVERRIDES.iter().find(|n| headers.contains_key(**n)) {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("The {name} header is refused by the gateway"),
        ));
    }
    // A request with both Content-Length and Transfer-Encoding is how requests are smuggled past
    // a front proxy. hyper resolves it (chunked wins) and drops Content-Length before a handler
    // can see both, so any Transfer-Encoding is refused: Connect's clients send Content-Length.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "Transfer-Encoding in a request is refused by the gateway: send Content-Length",
        ));
    }
    if headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "More than one Content-Length: refused by the gateway",
        ));
    }
    Ok(())
}

/// Drops hop-by-hop headers and the ones `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
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

    /// G4: the decision, then the request forwarded.
    async fn proxy(
        &self,
        request: Request<Incoming>,
        remote: SocketAddr,
        conn: &UpstreamConn,
    ) -> (Response<Body>, Outcome) {
        let mut outcome = Outcome {
            decision: "malformed",
            ..Outcome::default()
        };
        if let Err(r) = check_headers(request.headers()) {
            return (r.response(), outcome);
        }
        let Some(upstream) = &self.upstream else {
            outcome.decision = "not_found";
            return (
                connect_error(
                    StatusCode::NOT_FOUND,
                    "This gateway has no upstream: it answers only /v1/forward-auth",
                ),
                outcome,
            );
        };
        let authorization = match single_authorization(request.headers()) {
            Ok(a) => a,
            Err(r) => return (r.response(), outcome),
        };
        let decided = self
            .decide(
                request.method().as_str(),
                request.uri().path(),
                request.uri().query(),
                authorization,
                &mut outcome,
            )
            .await;
        let (op, access) = match decided {
            Ok(d) => d,
            Err(r) => {
                outcome.decision = r.decision;
                return (r.response(), outcome);
            }
        };
        outcome.decision = "allowed";
        if let Some(access) = &access {
            self.usage.record(&access.jti, remote.ip());
        }
        let response = self
            .forward(upstream, conn, request, &op, access.as_deref())
            .await;
        if response.status() == StatusCode::BAD_GATEWAY
            && response.headers().contains_key(GATEWAY_ERROR)
        {
            outcome.decision = "upstream_unreachable";
        }
        let mut response = response;
        response.headers_mut().remove(GATEWAY_ERROR);
        (response, outcome)
    }

    async fn forward(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
        request: Request<Incoming>,
        op: &Operation,
        access: Option<&Access>,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::AUTHORIZATION);
        // hyper answered any `Expect: 100-continue` to the client; its client does not do it
        // upstream.
        headers.remove(header::EXPECT);
        if op.route.needs_token() {
            let Some(value) = upstream.authorization() else {
                return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream token");
            };
            headers.insert(header::AUTHORIZATION, value.clone());
        }
        let cut = op.route == Route::ListVaults;
        if cut {
            // The list is read to be cut: ask for it uncompressed.
            headers.remove(header::ACCEPT_ENCODING);
        }
        let Some(host) = upstream.host() else {
            return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream host");
        };
        headers.insert(header::HOST, host.clone());
        let uri = upstream.origin(&op.upstream_path_and_query());
        let mut out = match Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(Body::new(body))
        {
            Ok(r) => r,
            Err(_) => return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream request"),
        };
        *out.headers_mut() = headers;
        let sent = Instant::now();
        let answer = self.send(upstream, conn, out).await;
        self.requests.upstream_latency(sent.elapsed());
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "the upstream cannot be reached");
                let mut r = connect_error(
                    StatusCode::BAD_GATEWAY,
                    "The Connect server cannot be reached",
                );
                r.headers_mut()
                    .insert(GATEWAY_ERROR, HeaderValue::from_static("1"));
                return r;
            }
        };
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if cut && parts.status == StatusCode::OK {
            let Some(access) = access else {
                return connect_error(StatusCode::BAD_GATEWAY, "No access to cut the list");
            };
            return match cut_vault_list(body, access).await {
                Ok(bytes) => {
                    parts.headers.remove(header::ETAG);
                    parts.headers.remove(header::CONTENT_ENCODING);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    Response::from_parts(parts, Body::from(bytes))
                }
                Err(why) => {
                    tracing::warn!(why, "the upstream's vault list cannot be cut");
                    connect_error(
                        StatusCode::BAD_GATEWAY,
                        "The Connect server's vault list cannot be read",
                    )
                }
            };
        }
        Response::from_parts(parts, Body::new(body))
    }

    /// Sends `out` on the client connection's upstream connection (a new one when there is none
    /// or it was closed). A request the connection closed before sending is sent once more on a
    /// new connection, as hyper-util's pooled client did.
    async fn send(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
        mut out: Request<Body>,
    ) -> Result<Response<Incoming>, String> {
        let mut last = String::new();
        for _ in 0..2 {
            let mut sender = match conn.take() {
                Some(s) => s,
                None => self.connect(upstream, conn).await?,
            };
            if let Err(e) = sender.ready().await {
                last = e.to_string();
                continue;
            }
            let answer = sender.try_send_request(out);
            conn.put(sender);
            match answer.await {
                Ok(a) => return Ok(a),
                Err(mut e) => match e.take_message() {
                    Some(again) => {
                        last = e.error().to_string();
                        out = again;
                    }
                    None => return Err(e.error().to_string()),
                },
            }
        }
        Err(last)
    }

    /// A new upstream connection for `conn`: its driver installed there, its sender returned.
    async fn connect(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
    ) -> Result<SendRequest<Body>, String> {
        let root = upstream.root().ok_or("bad upstream URL")?.clone();
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(|e| e.to_string())?;
        let io = tower_service::Service::call(&mut connector, root)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        conn.install(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// G5: the same decision for a proxy that forwards by itself.
    async fn forward_auth(&self, request: &Request<Incoming>) -> (Response<Body>, Outcome) {
        let mut outcome = Outcome {
            decision: "malformed",
            ..Outcome::default()
        };
        let h = request.headers();
        if let Err(r) = check_headers(h) {
            return (r.response(), outcome);
        }
        // Proxies set one pair and pass the client's other headers on: a client could add the
        // pair its proxy does not set, describing another request. Every value of both pairs
        // must agree, or nothing is decided.
        let (method, uri) = match (
            original(h, ["x-forwarded-method", "x-original-method"]),
            original(h, ["x-forwarded-uri", "x-original-uri"]),
        ) {
            (Ok(Some(method)), Ok(Some(uri))) => (method, uri),
            (Err(()), _) | (_, Err(())) => {
                return (
                    connect_error(
                        StatusCode::BAD_REQUEST,
                        "Forward-auth got the original method or URI twice, with different \
                         values: the proxy must set one pair (X-Forwarded-* or X-Original-*) and \
                         drop the client's copies",
                    ),
                    outcome,
                );
            }
            _ => {
                return (
                    connect_error(
                        StatusCode::BAD_REQUEST,
                        "Forward-auth needs X-Forwarded-Method and X-Forwarded-Uri (or X-Original-Method \
                         and X-Original-URI)",
                    ),
                    outcome,
                );
            }
        };
        let uri: hyper::Uri = match uri.parse() {
            Ok(u) => u,
            Err(_) => {
                let r = Refused::from_unmatched(Unmatched::Malformed);
                return (r.response(), outcome);
            }
        };
        let authorization = match single_authorization(h) {
            Ok(a) => a,
            Err(r) => return (r.response(), outcome),
        };
        let decided = self
            .decide(
                &method.to_ascii_uppercase(),
                uri.path(),
                uri.query(),
                authorization,
                &mut outcome,
            )
            .await;
        match decided {
            Ok(_) => {
                outcome.decision = "allowed";
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::OK;
                (r, outcome)
            }
            Err(r) => {
                outcome.decision = r.decision;
                (r.response(), outcome)
            }
        }
    }

    /// G6: `/-/healthz`, `/-/readyz`, `/-/metrics`.
    async fn own(&self, path: &str, method: &Method) -> Response<Body> {
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

/// A marker the forwarding puts on its own 502 (removed before the answer leaves).
const GATEWAY_ERROR: &str = "x-connect-manager-gateway-error";

/// The request's one `Authorization` header (two are refused as a bad token).
fn single_authorization(headers: &HeaderMap) -> Result<Option<&str>, Refused> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(Refused::from_refusal(Refusal::Unauthorized));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Refused::from_refusal(Refusal::Unauthorized)),
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

/// `GET /v1/vaults` cut to the vaults the token may see: read at most
/// [`MAX_VAULT_LIST_BYTES`], keep the entries whose `id` has access bits.
async fn cut_vault_list(body: Incoming, access: &Access) -> Result<Vec<u8>, &'static str> {
    let bytes = http_body_util::Limited::new(body, MAX_VAULT_LIST_BYTES)
        .collect()
        .await
        .map_err(|_| "too large or unreadable")?
        .to_bytes();
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| "not a JSON array")?;
    let kept: Vec<serde_json::Value> = list
        .into_iter()
        .filter(|v| {
            v.get("id")
                .and_then(|id| id.as_str())
                .is_some_and(|id| access.bits(id) != 0)
        })
        .collect();
    serde_json::to_vec(&kept).map_err(|_| "cannot encode")
}

/// The original method or URI a proxy sent under either of its two names (G5): `None` when
/// absent, `Err` when the values disagree (or are not text).
fn original(h: &hyper::HeaderMap, names: [&str; 2]) -> Result<Option<String>, ()> {
    let mut found: Option<&str> = None;
    for name in names {
        for value in h.get_all(name) {
            let value = value.to_str().map_err(|_| ())?;
            match found {
                Some(seen) if seen != value => return Err(()),
                _ => found = Some(value),
            }
        }
    }
    Ok(found.map(str::to_string))
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

    #[test]
    fn g4_hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn g4_method_overrides_both_lengths_and_big_headers_are_refused() {
        for name in METHOD_OVERRIDES {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("DELETE"));
            assert_eq!(check_headers(&h).unwrap_err().status, 400, "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("3"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert_eq!(check_headers(&h).unwrap_err().status, 400);
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(MAX_HEADER_BYTES)).unwrap(),
        );
        assert_eq!(check_headers(&h).unwrap_err().status, 431);
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert!(check_headers(&h).is_ok());
    }
}
