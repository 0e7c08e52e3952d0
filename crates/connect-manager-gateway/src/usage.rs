//! G7: last use, reported to the manager in batches, at most once a minute per token.
//!
//! The proxy calls [`Usage::record`] for each allowed request: one short lock and a map write.
//! A background task ([`Usage::start`]) sends what was recorded every few seconds in one
//! `POST /v1/connect/self/usage`, leaving out the tokens reported less than a minute ago (they
//! wait for their minute: the last use seen by then is what is sent). A failed report is put back
//! and sent with the next batch; memory stays bounded by [`MAX_TOKENS`] whatever happens.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_manager_core::Timestamp;
use connect_manager_core::api::usage::{TokenUsage, UsageReport};

use crate::manager::Manager;
use crate::metrics::{Metrics, inc};

/// SPEC G7: at most one report per token in this long.
pub const REPORT_PERIOD: Duration = Duration::from_secs(60);
/// The most tokens whose last use waits to be reported; the uses of further tokens are dropped
/// (and counted) until a report makes room.
pub const MAX_TOKENS: usize = 10_000;
/// The most tokens in one report (the manager takes at most 1000).
pub const MAX_BATCH: usize = 1000;

pub struct Usage {
    manager: Arc<Manager>,
    metrics: Arc<Metrics>,
    period: Duration,
    flush_every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Token ID → its last use not yet reported.
    pending: HashMap<String, (Timestamp, IpAddr)>,
    /// Token ID → when it was last reported (kept for one period, then swept).
    reported_at: HashMap<String, Instant>,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Usage {
    /// A reporter with SPEC G7's period: at most one report per token per minute.
    pub fn new(manager: Arc<Manager>, metrics: Arc<Metrics>) -> Usage {
        Usage::with_period(manager, metrics, REPORT_PERIOD)
    }

    /// A reporter that reports each token at most once per `period` (tests shorten it), sending
    /// a batch every twelfth of it (every 5 s for a minute), at least every 100 ms.
    pub fn with_period(manager: Arc<Manager>, metrics: Arc<Metrics>, period: Duration) -> Usage {
        Usage {
            manager,
            metrics,
            period,
            flush_every: (period / 12).clamp(Duration::from_millis(100), Duration::from_secs(5)),
            state: Mutex::new(State::default()),
        }
    }

    /// Notes that a request with token `jti` from `ip` was let through now.
    pub fn record(&self, jti: &str, ip: IpAddr) {
        let now = Timestamp::now();
        let mut state = self.state.lock().expect("usage lock");
        if let Some(last) = state.pending.get_mut(jti) {
            *last = (now, ip);
        } else if state.pending.len() < MAX_TOKENS {
            state.pending.insert(jti.to_owned(), (now, ip));
        } else {
            drop(state);
            inc(&self.metrics.usage_dropped);
        }
    }

    /// The number of tokens whose last use waits to be reported.
    pub fn pending(&self) -> usize {
        self.state.lock().expect("usage lock").pending.len()
    }

    /// Sends what is due: every pending token not reported within the period, at most
    /// [`MAX_BATCH`]. On failure, or when this future is dropped before the manager answered
    /// (a shutdown), they are pending again (a newer use recorded meanwhile wins).
    pub async fn flush(&self) {
        let batch = InFlight {
            usage: self,
            batch: self.due(),
        };
        if batch.batch.is_empty() {
            return;
        }
        let report = UsageReport {
            tokens: batch
                .batch
                .iter()
                .map(|(id, (at, ip))| TokenUsage {
                    id: id.clone(),
                    last_used_at: *at,
                    last_used_ip: Some(ip.to_string()),
                })
                .collect(),
        };
        match self.manager.report_usage(&report).await {
            Ok(()) => {
                inc(&self.metrics.usage_reports);
                let now = Instant::now();
                let mut state = self.state.lock().expect("usage lock");
                for (id, _) in batch.done() {
                    state.reported_at.insert(id, now);
                }
            }
            Err(e) => {
                inc(&self.metrics.usage_report_failures);
                tracing::warn!(error = %e, tokens = batch.batch.len(), "usage report failed; it is sent again with the next batch");
                // Dropping `batch` puts it back.
            }
        }
    }

    /// Puts uses that were not reported back, unless a newer use of the token was recorded.
    fn put_back(&self, batch: Vec<(String, (Timestamp, IpAddr))>) {
        let mut state = self.state.lock().expect("usage lock");
        for (id, used) in batch {
            if state.pending.len() < MAX_TOKENS || state.pending.contains_key(&id) {
                state.pending.entry(id).or_insert(used);
            }
        }
    }

    /// Takes the pending uses that are due out of the map.
    fn due(&self) -> Vec<(String, (Timestamp, IpAddr))> {
        let period = self.period;
        let mut state = self.state.lock().expect("usage lock");
        state.reported_at.retain(|_, at| at.elapsed() < period);
        let State {
            pending,
            reported_at,
        } = &mut *state;
        let due: Vec<String> = pending
            .keys()
            .filter(|id| !reported_at.contains_key(*id))
            .take(MAX_BATCH)
            .cloned()
            .collect();
        due.into_iter()
            .filter_map(|id| pending.remove_entry(&id))
            .collect()
    }

    /// Starts the reporter: a batch every few seconds until `shutdown`, then a last one (still
    /// at most one report per token per period). The handle ends after that last report.
    pub fn start(
        self: &Arc<Self>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let usage = self.clone();
        tokio::spawn(async move {
            let mut shutdown = std::pin::pin!(shutdown);
            let mut tick = tokio::time::interval(usage.flush_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = tick.tick() => {}
                }
                // Not raced with the shutdown: a report under way finishes.
                usage.flush().await;
            }
            usage.flush().await;
        })
    }
}

/// A batch being reported: put back when dropped before [`InFlight::done`].
struct InFlight<'a> {
    usage: &'a Usage,
    batch: Vec<(String, (Timestamp, IpAddr))>,
}

impl InFlight<'_> {
    fn done(mut self) -> Vec<(String, (Timestamp, IpAddr))> {
        std::mem::take(&mut self.batch)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.usage.put_back(std::mem::take(&mut self.batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_manager_core::credentials::CredentialsPayload;

    fn unreachable() -> (Usage, Arc<Metrics>) {
        crate::manager::tests::install_crypto();
        let manager = Manager::new(CredentialsPayload {
            server_id: "SERVER".into(),
            secret: "secret".into(),
            // Nothing listens on port 1: every report fails at once.
            url: "http://127.0.0.1:1".into(),
        })
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        (Usage::new(Arc::new(manager), metrics.clone()), metrics)
    }

    #[tokio::test]
    async fn g7_memory_stays_bounded_while_reports_fail() {
        let (u, metrics) = unreachable();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..MAX_TOKENS + 50 {
            u.record(&format!("token{i}"), ip);
        }
        assert_eq!(u.pending(), MAX_TOKENS);
        assert_eq!(
            metrics
                .usage_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            50
        );
        // A token already waiting still has its last use updated.
        u.record("token0", "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            u.flush().await;
            assert_eq!(u.pending(), MAX_TOKENS, "put back, not grown");
        }
        let failures = metrics
            .usage_report_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(failures, 3);
        let state = u.state.lock().unwrap();
        assert_eq!(state.pending["token0"].1.to_string(), "192.0.2.2");
        assert!(state.reported_at.is_empty());
    }

    #[tokio::test]
    async fn g7_a_report_cut_short_by_shutdown_is_not_lost() {
        crate::manager::tests::install_crypto();
        // A manager that accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let manager = Manager::new(CredentialsPayload {
            server_id: "SERVER".into(),
            secret: "secret".into(),
            url,
        })
        .unwrap();
        let u = Arc::new(Usage::new(Arc::new(manager), Arc::new(Metrics::default())));
        u.record("t1", "192.0.2.1".parse().unwrap());
        let task = u.start(std::future::pending());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(u.pending(), 0, "taken out for the report under way");
        task.abort();
        let _ = task.await;
        assert_eq!(u.pending(), 1, "put back when the report was dropped");
    }
}
