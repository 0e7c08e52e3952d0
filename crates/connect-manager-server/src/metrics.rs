//! `GET /metrics` in Prometheus text format: requests by method, matched route (never the raw
//! path) and status with a latency histogram; tokens issued and revoked; introspections by
//! result; failed authentications; the database pool; build info. Counters live in this process
//! (each replica is scraped on its own). Two gauges come from the database, the same on every
//! replica: live tokens expiring within 7 days and live tokens never used (issue 18), read by
//! one COUNT statement at a scrape and reused for 10 s ([`TOKEN_GAUGES_TTL`]).
//!
//! Every label takes its value from a fixed set, so nothing a client sends can add a series:
//! the method is one of the nine standard methods or `OTHER`, the route is a template of the
//! router or `unmatched`, and the status is one the service itself answered. `/metrics` therefore
//! has a bounded size however it is probed (`metrics_stay_the_same_size_under_random_methods_and_paths`).
//! Rendering copies the series under the lock and formats the copy after releasing it, so a
//! scrape holds the lock that every request takes for a copy of a few hundred entries at most
//! (no allocation but the copy's vector), never for the formatting; a request allocates under
//! it only the first time its route is seen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use connect_manager_core::Timestamp;
use connect_manager_store::TokenGauges;

use crate::state::AppState;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone, Copy)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// A route's series by (method label, status).
type ByMethodAndStatus = BTreeMap<(&'static str, u16), Series>;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Arc<str>, ByMethodAndStatus>>,
    pub tokens_issued: AtomicU64,
    pub tokens_revoked: AtomicU64,
    pub introspections_active: AtomicU64,
    pub introspections_inactive: AtomicU64,
    pub auth_failures_user: AtomicU64,
    /// Failed authentications with an API key that expired (not in `auth_failures_user`).
    pub auth_failures_user_expired: AtomicU64,
    pub auth_failures_server: AtomicU64,
    pub auth_rate_limited: AtomicU64,
    /// G7 usage reports accepted, the entries they carried, and the tokens' rows written.
    pub usage_reports: AtomicU64,
    pub usage_entries: AtomicU64,
    pub usage_written: AtomicU64,
    /// The token gauges as last read, and when (see [`TOKEN_GAUGES_TTL`]).
    token_gauges: tokio::sync::Mutex<Option<(Instant, TokenGauges)>>,
}

/// The route label of a request that matched no route (whatever its path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: a standard method by its name, anything else `OTHER` (HTTP lets a client
/// invent methods, and each would otherwise be a new series).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

pub fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().expect("metrics lock");
        if !requests.contains_key(route) {
            requests.insert(route.into(), BTreeMap::new());
        }
        let s = requests
            .get_mut(route)
            .expect("inserted above")
            .entry((method, status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, pool: connect_manager_store::PoolState, backend: &str) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "# HELP connect_manager_build_info Build information.");
        let _ = writeln!(w, "# TYPE connect_manager_build_info gauge");
        let _ = writeln!(
            w,
            "connect_manager_build_info{{version=\"{}\",backend=\"{backend}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            w,
            "# HELP connect_manager_http_requests_total HTTP requests answered."
        );
        let _ = writeln!(w, "# TYPE connect_manager_http_requests_total counter");
        // The snapshot: copied under the lock, sorted and formatted without it.
        let mut requests: Vec<(&'static str, Arc<str>, u16, Series)> = {
            let requests = self.requests.lock().expect("metrics lock");
            let mut copy = Vec::with_capacity(requests.values().map(BTreeMap::len).sum());
            for (route, by_method) in requests.iter() {
                for (&(method, status), series) in by_method {
                    copy.push((method, route.clone(), status, *series));
                }
            }
            copy
        };
        requests.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        for (m, r, s, series) in &requests {
            let _ = writeln!(
                w,
                "connect_manager_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {}",
                series.count
            );
        }
        let _ = writeln!(
            w,
            "# HELP connect_manager_http_request_duration_seconds Time to answer an HTTP request."
        );
        let _ = writeln!(
            w,
            "# TYPE connect_manager_http_request_duration_seconds histogram"
        );
        for (m, r, s, series) in &requests {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{s}\"");
            for (le, n) in BUCKETS.iter().zip(series.buckets) {
                let _ = writeln!(
                    w,
                    "connect_manager_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                w,
                "connect_manager_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                series.count
            );
            let _ = writeln!(
                w,
                "connect_manager_http_request_duration_seconds_sum{{{labels}}} {}",
                series.sum
            );
            let _ = writeln!(
                w,
                "connect_manager_http_request_duration_seconds_count{{{labels}}} {}",
                series.count
            );
        }
        let counter = |w: &mut String, name: &str, help: &str, values: &[(&str, u64)]| {
            let _ = writeln!(w, "# HELP {name} {help}");
            let _ = writeln!(w, "# TYPE {name} counter");
            for (labels, v) in values {
                if labels.is_empty() {
                    let _ = writeln!(w, "{name} {v}");
                } else {
                    let _ = writeln!(w, "{name}{{{labels}}} {v}");
                }
            }
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            w,
            "connect_manager_tokens_issued_total",
            "Tokens issued.",
            &[("", get(&self.tokens_issued))],
        );
        counter(
            w,
            "connect_manager_tokens_revoked_total",
            "Tokens revoked: by token delete, and with their server by server delete.",
            &[("", get(&self.tokens_revoked))],
        );
        counter(
            w,
            "connect_manager_introspections_total",
            "Token introspections by result.",
            &[
                ("result=\"active\"", get(&self.introspections_active)),
                ("result=\"inactive\"", get(&self.introspections_inactive)),
            ],
        );
        counter(
            w,
            "connect_manager_auth_failures_total",
            "Failed authentications by kind of credential (an unknown API key, an expired one, a server's).",
            &[
                ("kind=\"api_key\"", get(&self.auth_failures_user)),
                (
                    "kind=\"expired_api_key\"",
                    get(&self.auth_failures_user_expired),
                ),
                ("kind=\"server\"", get(&self.auth_failures_server)),
            ],
        );
        counter(
            w,
            "connect_manager_auth_rate_limited_total",
            "Requests refused (429) for too many failed authentications from their address.",
            &[("", get(&self.auth_rate_limited))],
        );
        counter(
            w,
            "connect_manager_usage_reports_total",
            "Token usage reports (G7) accepted from gateways.",
            &[("", get(&self.usage_reports))],
        );
        counter(
            w,
            "connect_manager_usage_entries_total",
            "Entries of token usage reports: all received, and those that wrote a token's last use \
             (the rest named another server's token or no token, or were within a minute of the \
             stored last use).",
            &[
                ("result=\"received\"", get(&self.usage_entries)),
                ("result=\"written\"", get(&self.usage_written)),
            ],
        );
        let _ = writeln!(
            w,
            "# HELP connect_manager_db_pool_connections Database pool connections by state."
        );
        let _ = writeln!(w, "# TYPE connect_manager_db_pool_connections gauge");
        let _ = writeln!(
            w,
            "connect_manager_db_pool_connections{{state=\"idle\"}} {}",
            pool.idle
        );
        let _ = writeln!(
            w,
            "connect_manager_db_pool_connections{{state=\"in_use\"}} {}",
            pool.size.saturating_sub(pool.idle)
        );
        let _ = writeln!(
            w,
            "# HELP connect_manager_db_pool_max_connections The pool's limit."
        );
        let _ = writeln!(w, "# TYPE connect_manager_db_pool_max_connections gauge");
        let _ = writeln!(w, "connect_manager_db_pool_max_connections {}", pool.max);
        out
    }
}

/// Counts every request under its matched route.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    state.metrics.observe(
        method,
        route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus metrics of this replica (no authentication; bind or proxy accordingly).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format.", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state
        .metrics
        .render(state.store.pool_state(), state.store.backend().as_str());
    if let Some(gauges) = state.metrics.token_gauges(&state.store).await {
        render_token_gauges(&mut text, gauges);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The window of `connect_manager_tokens_expiring`: seven days.
pub const EXPIRING_WITHIN_SECONDS: i64 = 7 * 86_400;

/// How long the token gauges read at a scrape are reused: scrapes (unauthenticated) cost at
/// most one COUNT statement per this long, however many arrive.
pub const TOKEN_GAUGES_TTL: Duration = Duration::from_secs(10);

impl Metrics {
    /// The token gauges, read from the database (one statement, `Store::token_gauges`) at most
    /// once per [`TOKEN_GAUGES_TTL`]; concurrent scrapes wait for the one read in flight. `None`
    /// when the database cannot answer: the scrape goes on without them (the pool and request
    /// series still say what is wrong).
    async fn token_gauges(&self, store: &connect_manager_store::DynStore) -> Option<TokenGauges> {
        let mut cached = self.token_gauges.lock().await;
        if let Some((at, gauges)) = *cached
            && at.elapsed() < TOKEN_GAUGES_TTL
        {
            return Some(gauges);
        }
        match store
            .token_gauges(Timestamp::now(), EXPIRING_WITHIN_SECONDS)
            .await
        {
            Ok(gauges) => {
                *cached = Some((Instant::now(), gauges));
                Some(gauges)
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not read the token gauges");
                None
            }
        }
    }
}

fn render_token_gauges(w: &mut String, gauges: TokenGauges) {
    let _ = writeln!(
        w,
        "# HELP connect_manager_tokens_expiring Active tokens (not revoked, not expired, of a live \
         server) that expire within 7 days."
    );
    let _ = writeln!(w, "# TYPE connect_manager_tokens_expiring gauge");
    let _ = writeln!(
        w,
        "connect_manager_tokens_expiring{{within=\"7d\"}} {}",
        gauges.expiring
    );
    let _ = writeln!(
        w,
        "# HELP connect_manager_tokens_never_used Active tokens (not revoked, not expired, of a \
         live server) that no gateway has reported a use of (G7)."
    );
    let _ = writeln!(w, "# TYPE connect_manager_tokens_never_used gauge");
    let _ = writeln!(w, "connect_manager_tokens_never_used {}", gauges.never_used);
}
