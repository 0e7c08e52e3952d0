//! G6: the proxy's own counters (requests by operation and decision, upstream latency) and the
//! Prometheus text of `GET /-/metrics`, with the token-check counters of [`crate::metrics`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;

/// Upstream latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// (operation, decision) → requests.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Cumulative counts per bucket, then +Inf.
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

impl RequestMetrics {
    pub fn request(&self, operation: &'static str, decision: &'static str) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((operation, decision)).or_default() += 1;
    }

    pub fn upstream_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_buckets[BUCKETS.len()].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, shared: &Metrics) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP connect_manager_gateway_requests_total Requests by operation and decision.\n\
             # TYPE connect_manager_gateway_requests_total counter\n",
        );
        let map = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((operation, decision), n) in map {
            let _ = writeln!(
                out,
                "connect_manager_gateway_requests_total{{operation=\"{operation}\",decision=\"{decision}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP connect_manager_gateway_upstream_latency_seconds Time to the upstream's \
             answer head.\n\
             # TYPE connect_manager_gateway_upstream_latency_seconds histogram\n",
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "connect_manager_gateway_upstream_latency_seconds_bucket{{le=\"{le}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "connect_manager_gateway_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             connect_manager_gateway_upstream_latency_seconds_sum {}\n\
             connect_manager_gateway_upstream_latency_seconds_count {count}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        for (name, help, value) in [
            (
                "connect_manager_gateway_introspection_calls_total",
                "POST /v1/introspect calls made to the manager.",
                &shared.introspection_calls,
            ),
            (
                "connect_manager_gateway_introspection_cache_hits_total",
                "Token checks answered from the cache.",
                &shared.introspection_cache_hits,
            ),
            (
                "connect_manager_gateway_jwks_fetches_total",
                "JWKS fetches from the manager.",
                &shared.jwks_fetches,
            ),
            (
                "connect_manager_gateway_usage_reports_total",
                "Usage reports sent to the manager.",
                &shared.usage_reports,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g6_metrics_count_requests_by_operation_and_decision() {
        let m = RequestMetrics::default();
        m.request("GET /v1/vaults", "allowed");
        m.request("GET /v1/vaults", "allowed");
        m.request("GET /v1/vaults/{v}", "forbidden");
        m.upstream_latency(Duration::from_millis(3));
        let shared = Metrics::default();
        crate::metrics::inc(&shared.introspection_calls);
        let text = m.render(&shared);
        assert!(text.contains(
            "connect_manager_gateway_requests_total{operation=\"GET /v1/vaults\",decision=\"allowed\"} 2"
        ));
        assert!(text.contains("decision=\"forbidden\"} 1"));
        assert!(
            text.contains(
                "connect_manager_gateway_upstream_latency_seconds_bucket{le=\"0.005\"} 1"
            )
        );
        assert!(
            text.contains(
                "connect_manager_gateway_upstream_latency_seconds_bucket{le=\"0.0025\"} 0"
            )
        );
        assert!(text.contains("connect_manager_gateway_upstream_latency_seconds_count 1"));
        assert!(text.contains("connect_manager_gateway_introspection_calls_total 1"));
    }
}
