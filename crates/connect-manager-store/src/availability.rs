//! Whether the database answers, so that a store call fails fast (503, E1) while it does not.
//!
//! Without this, sqlx's pool meets a stopped PostgreSQL by retrying the connection until its
//! acquire timeout: every request would hang for seconds before its 503. Instead the backend's
//! watch (PostgreSQL: `postgres::watch_database`) decides: it pings the database now and then,
//! and at once on a fresh connection when something suspects an outage (the change feed, whose
//! connection drops the moment PostgreSQL goes away). When the database does not answer, it is
//! marked down: from then on store calls answer 503 at once, and calls already waiting for a
//! connection are released with 503 too. The watch probes with a fresh connection a few times a
//! second and marks the database up at the first answer.
//! SQLite is a file in the process: it is never marked down.

use std::future::Future;
use std::sync::Arc;

use connect_manager_core::{Error, Result};
use tokio::sync::{Notify, watch};

#[derive(Clone, Default)]
pub(crate) struct Availability(Arc<Inner>);

struct Inner {
    up: watch::Sender<bool>,
    suspect: Notify,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            up: watch::channel(true).0,
            suspect: Notify::new(),
        }
    }
}

fn unavailable() -> Error {
    Error::Unavailable {
        detail: "the database did not answer the last probe; waiting for it to come back".into(),
    }
}

impl Availability {
    pub(crate) fn is_up(&self) -> bool {
        *self.0.up.borrow()
    }

    /// Asks the watch to probe now, on a fresh connection. Nothing is refused on a suspicion
    /// alone (one dropped connection is not an outage); calls waiting meanwhile are released as
    /// soon as the probe fails.
    pub(crate) fn suspect(&self, why: &str) {
        tracing::debug!(reason = why, "database suspected down: probing");
        self.0.suspect.notify_one();
    }

    /// Resolves when someone suspects an outage (at once if someone did since the last time).
    pub(crate) async fn suspected(&self) {
        self.0.suspect.notified().await;
    }

    /// Returns whether this changed anything (the first report of an outage).
    pub(crate) fn mark_down(&self, why: &str) -> bool {
        let changed = self
            .0
            .up
            .send_if_modified(|up| std::mem::replace(up, false));
        if changed {
            tracing::warn!(
                reason = why,
                "database down: answering 503 until it is back"
            );
        }
        changed
    }

    pub(crate) fn mark_up(&self) {
        if self
            .0
            .up
            .send_if_modified(|up| !std::mem::replace(up, true))
        {
            tracing::info!("database back: serving again");
        }
    }

    /// Resolves once the database is marked down (at once if it is).
    pub(crate) async fn went_down(&self) {
        let mut rx = self.0.up.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = rx.wait_for(|up| !*up).await;
    }

    /// Runs `op` (e.g. taking a pool connection) unless the database is down, and gives up on
    /// it with 503 as soon as the database is marked down meanwhile.
    pub(crate) async fn guard<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        if !self.is_up() {
            return Err(unavailable());
        }
        tokio::select! {
            biased;
            r = op => r,
            () = self.went_down() => Err(unavailable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_marked_down_database_fails_at_once_and_waiters_are_released() {
        let a = Availability::default();
        assert_eq!(a.guard(async { Ok(7) }).await.unwrap(), 7);
        // A call waiting (here: forever) for a connection is released when the database is
        // marked down.
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.guard(std::future::pending::<Result<()>>()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(a.mark_down("test"));
        assert!(!a.mark_down("again"), "the second report changes nothing");
        let released = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released at once")
            .unwrap();
        assert!(matches!(released, Err(Error::Unavailable { .. })));
        // While down, nothing runs.
        let ran = std::sync::atomic::AtomicBool::new(false);
        let r = a
            .guard(async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(Error::Unavailable { .. })));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        a.mark_up();
        assert!(a.guard(async { Ok(()) }).await.is_ok());
    }
}
