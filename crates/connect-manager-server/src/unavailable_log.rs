//! The log of 503s during a database outage: one line when they start, then one line per interval
//! with how many there were, instead of an ERROR per request (hundreds a second per replica under
//! load, burying everything else). The store logs the transitions themselves once each
//! ("database down", "database back"); the request log still has every request.
//!
//! The first 503 after a quiet interval is logged at once, with its cause. The ones after it are
//! counted; a task started with that first line logs the count every [`INTERVAL`] while there is
//! one, and ends after an interval without any.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the count of 503s is logged during an outage.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The process's log of 503s (the handlers' error mapping has no state to reach).
pub static UNAVAILABLE: UnavailableLog = UnavailableLog::new(INTERVAL);

pub struct UnavailableLog {
    interval: Duration,
    state: Mutex<State>,
}

struct State {
    /// Whether a line was logged in the current interval (a reporting task is running).
    reporting: bool,
    /// 503s since the last line.
    count: u64,
    /// The latest cause, for the next line.
    detail: String,
    since: Option<Instant>,
}

impl UnavailableLog {
    pub const fn new(interval: Duration) -> Self {
        UnavailableLog {
            interval,
            state: Mutex::new(State {
                reporting: false,
                count: 0,
                detail: String::new(),
                since: None,
            }),
        }
    }

    /// Notes one 503 `unavailable` answered because of `detail`.
    pub fn record(&'static self, detail: &str) {
        let mut state = self.state.lock().expect("unavailable log lock");
        if state.reporting {
            state.count += 1;
            if state.detail != detail {
                detail.clone_into(&mut state.detail);
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(state);
            tracing::error!(error = %detail, "database unavailable: answered 503");
            return;
        };
        state.reporting = true;
        state.count = 0;
        state.since = Some(Instant::now());
        drop(state);
        tracing::error!(
            error = %detail,
            interval_s = self.interval.as_secs_f64(),
            "database unavailable: answering 503; further 503s are counted and logged once per interval"
        );
        runtime.spawn(self.report());
    }

    /// Logs the count once per interval while there is one; ends after a quiet interval.
    async fn report(&'static self) {
        loop {
            tokio::time::sleep(self.interval).await;
            let mut state = self.state.lock().expect("unavailable log lock");
            if state.count == 0 {
                state.reporting = false;
                return;
            }
            let count = std::mem::take(&mut state.count);
            let detail = std::mem::take(&mut state.detail);
            let seconds = state
                .since
                .replace(Instant::now())
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            drop(state);
            tracing::error!(
                error = %detail,
                count,
                "database unavailable: answered 503 to {count} more requests in the last {seconds:.0} s"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex as StdMutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<StdMutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// 5,000 503s in an outage are three lines: the first, the count, and nothing after it ends.
    #[tokio::test(flavor = "current_thread")]
    async fn an_outage_logs_a_line_per_interval_with_a_count_not_one_per_503() {
        static LOG: UnavailableLog = UnavailableLog::new(Duration::from_millis(300));
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        for _ in 0..5_000 {
            LOG.record("connection refused");
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("ERROR") && lines[0].contains("connection refused"));
        assert!(
            lines[1].contains("answered 503 to 4999 more requests"),
            "{text}"
        );
        // After a quiet interval, the next outage is reported at once again.
        LOG.record("connection reset");
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().nth(2).unwrap().contains("connection reset"));
    }
}
