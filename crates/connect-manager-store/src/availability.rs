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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connect_manager_core::{Error, Result};
use tokio::sync::{Notify, watch};

#[derive(Clone, Default)]
pub(crate) struct Availability(Arc<Inner>);

struct Inner {
    up: watch::Sender<bool>,
    suspect: Notify,
    storage: StorageWatch,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            up: watch::channel(true).0,
            suspect: Notify::new(),
            storage: StorageWatch::default(),
        }
    }
}

/// The store calls of this process that failed for lack of space (`crate::error::db_err` records
/// them, where the error carries no store): how many, and the last one. A process serves one
/// store; in a test process with several, one store's full database makes the others' readiness
/// check look (and, for [`STORAGE_RECENT`], say writes fail) too.
pub(crate) static STORAGE_FAILURES: StorageFailures = StorageFailures {
    count: AtomicU64::new(0),
    last: std::sync::Mutex::new(None),
};

pub(crate) struct StorageFailures {
    count: AtomicU64,
    last: std::sync::Mutex<Option<(Instant, String)>>,
}

impl StorageFailures {
    pub(crate) fn record(&self, detail: &str) {
        *self.last.lock().expect("storage failures lock") = Some((Instant::now(), detail.into()));
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn last(&self) -> Option<(Instant, String)> {
        self.last.lock().expect("storage failures lock").clone()
    }
}

/// Whether writes fail for lack of space (a full disk: `Error::StorageFull`), for `/readyz`.
///
/// Nothing is refused on its account: every write tries, and writes work again by themselves
/// once there is space. It only tells `/readyz` why writes fail. Once a store call has failed
/// for lack of space, and until this store knows writes to work again, `/readyz` answers 503
/// `storage_full`:
/// - while writes keep failing for lack of space (the last failure is under
///   [`STORAGE_RECENT`] old), without more ado;
/// - otherwise after a write of its own (`sql::probe_write`) failed for lack of space, at most
///   one such probe per [`STORAGE_RECENT`] (`/readyz` is unauthenticated: a flood of it must not
///   become a flood of writes). A probe that commits clears the suspicion. The probe is what
///   brings `/readyz` back when nothing else writes (a load balancer that stopped sending
///   requests to a replica that is not ready).
#[derive(Default)]
pub(crate) struct StorageWatch {
    /// The failure count up to which this store knows writes work again.
    cleared_up_to: AtomicU64,
    /// The last probe that found the storage full: when, and what the database said.
    last_full: tokio::sync::Mutex<Option<(Instant, String)>>,
}

/// How long a write that failed for lack of space stands for.
pub(crate) const STORAGE_RECENT: Duration = Duration::from_secs(1);

impl StorageWatch {
    fn suspected(&self) -> bool {
        STORAGE_FAILURES.count() > self.cleared_up_to.load(Ordering::SeqCst)
    }

    /// `Ok` unless writes fail for lack of space; `probe` is a write that commits (or fails).
    pub(crate) async fn check(&self, probe: impl Future<Output = Result<()>>) -> Result<()> {
        if !self.suspected() {
            return Ok(());
        }
        let recent = |found: Option<(Instant, String)>| {
            found
                .filter(|(at, _)| at.elapsed() < STORAGE_RECENT)
                .map(|(_, detail)| Err(Error::StorageFull { detail }))
        };
        if let Some(full) = recent(STORAGE_FAILURES.last()) {
            return full;
        }
        let mut last = self.last_full.lock().await;
        if let Some(full) = recent(last.clone()) {
            return full;
        }
        let failures = STORAGE_FAILURES.count();
        match probe.await {
            Ok(()) => {
                *last = None;
                self.cleared_up_to.fetch_max(failures, Ordering::SeqCst);
                tracing::info!("database storage: writes work again");
                Ok(())
            }
            Err(Error::StorageFull { detail }) => {
                *last = Some((Instant::now(), detail.clone()));
                Err(Error::StorageFull { detail })
            }
            Err(other) => Err(other),
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

    /// Whether writes fail for lack of space (see [`StorageWatch`]).
    pub(crate) fn storage(&self) -> &StorageWatch {
        &self.0.storage
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
