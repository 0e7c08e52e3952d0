//! Failed authentication is rate limited (A5, issues 4 and 12): token buckets of failures, one per
//! client address and one per target server. While a bucket an attempt needs is empty, the
//! attempt is answered 429 with `Retry-After` *before* its credential is checked, so a brute-force
//! loop learns nothing more.
//!
//! * **Per client address**, the address [`crate::client`] resolves (behind trusted proxies, the
//!   forwarded client). IPv6 clients share one bucket per /64, the smallest network one
//!   subscriber is normally given: a client holding a /64 cannot get a fresh budget per address.
//! * **Per target server**, keyed by the server ID in the HTTP Basic credential, so guesses at one
//!   server's secret from many addresses are limited too. Its budget is
//!   [`SERVER_BUDGET_FACTOR`] times an address's: one noisy client (or a few) never exhausts it,
//!   while a distributed guesser is held to that many guesses per minute in all. It cannot be used
//!   to lock a working server out cheaply: credentials that succeeded on this replica
//!   (*known-good*) are never charged nor refused, and concurrent attempts with one credential
//!   share one charge (below). What an attacker holding at least `SERVER_BUDGET_FACTOR`
//!   addresses can still do is delay the *first* success of a credential new to this replica
//!   (just after a restart or a rotation) for as long as they keep the bucket empty.
//! * **Single flight per credential.** An attempt is charged when it is admitted, not when it has
//!   failed, so a concurrent flood cannot slip more guesses past the check than the budget holds.
//!   Concurrent attempts with the *same* credential (same fingerprint) do not each take a unit:
//!   the first is checked, the others wait for its verdict. A right credential then passes them all
//!   (it is known-good), a wrong one lets them try again one at a time, each charged.
//! * **Known-good credentials are forgotten** when the store announces that their server changed
//!   (rotation C3, deletion R4, or anything, for `All`), and an API key as soon as it fails (its
//!   key or user was deleted). A rotated-away secret is then a guess like any other.
//!
//! The limit is per replica and kept in memory; nothing about it needs to be consistent.
//!
//! Here: [`AuthLimiter`] and its attempts (admission, single flight, known-good credentials);
//! `budget.rs`: the token buckets themselves (what an attempt is charged to, and the arithmetic).

mod budget;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use connect_manager_store::{Change, ChangeListener};
use tokio::sync::watch;

/// The default budget: failures an address may make in a burst, and per minute after it.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;
/// A server's budget, in addresses' budgets.
pub const SERVER_BUDGET_FACTOR: u32 = 10;
const MAX_TRACKED: usize = 100_000;

/// What an attempt authenticates as.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A Connect server, by the (well-formed) ID in its credential.
    Server(&'a str),
    /// A user's API key, or a credential naming no server.
    Other,
}

use budget::Budget;
pub use budget::{Refused, budget_address};

#[derive(Default)]
struct State {
    buckets: HashMap<Budget, (f64, Instant)>,
    /// Credentials that succeeded here, with the server they authenticate (None: an API key).
    known_good: HashMap<[u8; 32], Option<String>>,
    /// Credentials being checked now; waiters subscribe and wake when the sender is dropped.
    flights: HashMap<[u8; 32], watch::Sender<()>>,
    /// Moves on every forgetting change: a check that started before one must not make its
    /// credential known-good again afterwards.
    generation: u64,
}

pub struct AuthLimiter {
    /// Failures an address may make in a burst; 0 turns limiting off.
    burst: f64,
    /// One more failure allowed per this interval, per address.
    refill: Duration,
    state: Mutex<State>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(DEFAULT_FAILURES_PER_MINUTE)
    }
}

impl AuthLimiter {
    /// `per_minute` failures in a burst and per minute after it, per address (a server's budget is
    /// [`SERVER_BUDGET_FACTOR`] times that); 0 turns limiting off.
    pub fn new(per_minute: u32) -> Self {
        AuthLimiter {
            burst: f64::from(per_minute),
            refill: Duration::from_secs(60) / per_minute.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("limiter lock")
    }

    /// Admits an authentication attempt from `ip` with `credential` (a fingerprint) at `target`,
    /// or refuses it with the seconds to wait. A credential known to be good passes uncharged. If
    /// an attempt with the same credential is being checked, this one waits for its verdict.
    /// Otherwise the attempt takes one unit of its address's budget (and its server's) at once,
    /// under the lock, and is given it back when it is dropped without [`Attempt::failed`] (it
    /// succeeded, or the database could not answer).
    pub async fn admit(
        &self,
        ip: Option<IpAddr>,
        credential: &[u8; 32],
        target: Target<'_>,
    ) -> Result<Attempt<'_>, Refused> {
        let server = match target {
            Target::Server(id) => Some(id.to_owned()),
            Target::Other => None,
        };
        loop {
            let mut flight_over = {
                let mut state = self.lock();
                let generation = state.generation;
                let attempt = |leader, charged| Attempt {
                    limiter: self,
                    credential: *credential,
                    server: server.clone(),
                    generation,
                    charged,
                    leader,
                    verdict: None,
                };
                if state.known_good.contains_key(credential) {
                    return Ok(attempt(false, Vec::new()));
                }
                match state.flights.get(credential) {
                    Some(flight) => flight.subscribe(),
                    None => {
                        let mut charged = Vec::new();
                        if self.burst > 0.0 {
                            charged.extend(ip.map(|ip| Budget::Addr(budget_address(ip))));
                            charged.extend(server.clone().map(Budget::Server));
                        }
                        // Charged before the attempt exists: a refused one must not be dropped
                        // (and so finished) under the lock.
                        self.charge(&mut state, &charged)?;
                        state.flights.insert(*credential, watch::channel(()).0);
                        return Ok(attempt(true, charged));
                    }
                }
            };
            // Err: the sender was dropped, the flight is over. Look again.
            let _ = flight_over.changed().await;
        }
    }

    /// Forgets known-good credentials of `server` (every one, for None).
    fn forget(&self, server: Option<&str>) {
        let mut state = self.lock();
        state.generation += 1;
        match server {
            Some(id) => state.known_good.retain(|_, s| s.as_deref() != Some(id)),
            None => state.known_good.clear(),
        }
    }

    fn finish(&self, attempt: &mut Attempt<'_>) {
        let mut state = self.lock();
        match attempt.verdict {
            Some(true) if state.generation == attempt.generation => {
                if state.known_good.len() >= MAX_TRACKED {
                    state.known_good.clear();
                }
                state
                    .known_good
                    .insert(attempt.credential, attempt.server.take());
            }
            Some(false) => {
                state.known_good.remove(&attempt.credential);
                // A failure's units stay spent.
                attempt.charged.clear();
            }
            _ => {}
        }
        self.refund(&mut state, &attempt.charged);
        if attempt.leader {
            // Dropping the sender wakes every waiter.
            state.flights.remove(&attempt.credential);
        }
    }
}

impl ChangeListener for AuthLimiter {
    fn changed(&self, change: &Change) {
        match change {
            Change::Server(id) => self.forget(Some(id)),
            Change::All | Change::Unreliable => self.forget(None),
            Change::Token(_) | Change::Keys => {}
        }
    }
}

/// An admitted authentication attempt; see [`AuthLimiter::admit`].
#[must_use = "an attempt gives its unit back when dropped unless it failed"]
pub struct Attempt<'a> {
    limiter: &'a AuthLimiter,
    credential: [u8; 32],
    server: Option<String>,
    generation: u64,
    /// The buckets charged.
    charged: Vec<Budget>,
    /// Whether others with the same credential wait for this one.
    leader: bool,
    verdict: Option<bool>,
}

impl Attempt<'_> {
    /// The credential was wrong: the units taken stay spent, and the credential is no longer
    /// known-good if it was.
    pub fn failed(mut self) {
        self.verdict = Some(false);
    }

    /// The credential was right: remembered, so its holder is not slowed by others' failures.
    pub fn succeeded(mut self) {
        self.verdict = Some(true);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let limiter = self.limiter;
        limiter.finish(self);
    }
}
