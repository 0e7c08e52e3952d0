//! G6: the gateway's counters, shared by every part and rendered at `GET /-/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// `POST /v1/introspect` calls made to the manager.
    pub introspection_calls: AtomicU64,
    /// Token checks answered from the cache without a call.
    pub introspection_cache_hits: AtomicU64,
    /// JWKS fetches from the manager.
    pub jwks_fetches: AtomicU64,
    /// Usage reports sent to the manager (G7).
    pub usage_reports: AtomicU64,
    /// Usage reports the manager did not take (sent again with the next batch).
    pub usage_report_failures: AtomicU64,
    /// Uses not recorded because [`crate::usage::MAX_TOKENS`] tokens already waited.
    pub usage_dropped: AtomicU64,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
