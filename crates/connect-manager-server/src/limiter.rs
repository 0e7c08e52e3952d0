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

/// A bucket of failures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Budget {
    Addr(IpAddr),
    Server(String),
}

/// Why an attempt is refused before its credential is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until the bucket holds a unit again.
    pub retry_after: u64,
    /// The bucket that is empty.
    pub server_budget: bool,
}

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

/// The bucket an address is charged to: itself, or for IPv6 its /64.
pub fn budget_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
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

    /// (burst, refill) of a bucket.
    fn shape(&self, budget: &Budget) -> (f64, Duration) {
        match budget {
            Budget::Addr(_) => (self.burst, self.refill),
            Budget::Server(_) => (
                self.burst * f64::from(SERVER_BUDGET_FACTOR),
                self.refill / SERVER_BUDGET_FACTOR,
            ),
        }
    }

    fn level(&self, budget: &Budget, (tokens, since): (f64, Instant), now: Instant) -> f64 {
        let (burst, refill) = self.shape(budget);
        (tokens + now.duration_since(since).as_secs_f64() / refill.as_secs_f64()).min(burst)
    }

    /// Takes one unit from every bucket in `budgets`, or none if one is empty.
    fn charge(&self, state: &mut State, budgets: &[Budget]) -> Result<(), Refused> {
        let now = Instant::now();
        if state.buckets.len() >= MAX_TRACKED {
            state
                .buckets
                .retain(|b, v| self.level(b, *v, now) < self.shape(b).0);
        }
        let mut levels = Vec::with_capacity(budgets.len());
        for budget in budgets {
            let (burst, refill) = self.shape(budget);
            let level = state
                .buckets
                .get(budget)
                .map_or(burst, |v| self.level(budget, *v, now));
            if level < 1.0 {
                return Err(Refused {
                    retry_after: ((1.0 - level) * refill.as_secs_f64()).ceil().max(1.0) as u64,
                    server_budget: matches!(budget, Budget::Server(_)),
                });
            }
            levels.push(level);
        }
        for (budget, level) in budgets.iter().zip(levels) {
            state.buckets.insert(budget.clone(), (level - 1.0, now));
        }
        Ok(())
    }

    fn refund(&self, state: &mut State, budgets: &[Budget]) {
        let now = Instant::now();
        for budget in budgets {
            if let Some(v) = state.buckets.get(budget).copied() {
                let level = (self.level(budget, v, now) + 1.0).min(self.shape(budget).0);
                state.buckets.insert(budget.clone(), (level, now));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn a_burst_of_failures_blocks_unknown_credentials_only() {
        let limiter = AuthLimiter::new(10);
        let a = ip("10.0.0.1");
        let (good, bad) = ([1u8; 32], [2u8; 32]);
        limiter
            .admit(a, &good, Target::Other)
            .await
            .unwrap()
            .succeeded();
        for _ in 0..10 {
            limiter
                .admit(a, &bad, Target::Other)
                .await
                .expect("within budget")
                .failed();
        }
        let refused = limiter
            .admit(a, &bad, Target::Other)
            .await
            .err()
            .expect("blocked");
        assert!((1..=6).contains(&refused.retry_after), "{refused:?}");
        assert!(!refused.server_budget);
        assert!(
            limiter.admit(a, &good, Target::Other).await.is_ok(),
            "known-good credentials pass"
        );
        assert!(
            limiter
                .admit(ip("10.0.0.2"), &bad, Target::Other)
                .await
                .is_ok()
        );
        assert!(limiter.admit(None, &bad, Target::Other).await.is_ok());
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            off.admit(a, &bad, Target::Other).await.unwrap().failed();
        }
        assert!(
            off.admit(a, &bad, Target::Other).await.is_ok(),
            "0 turns limiting off"
        );
    }

    #[tokio::test]
    async fn attempts_in_flight_hold_their_unit_and_give_it_back_unless_they_fail() {
        let limiter = AuthLimiter::new(3);
        let a = ip("10.0.0.1");
        // Three different guesses at once exhaust the budget before any has an answer.
        let mut held = Vec::new();
        for i in 0..3u8 {
            held.push(limiter.admit(a, &[i; 32], Target::Other).await.unwrap());
        }
        assert!(limiter.admit(a, &[7; 32], Target::Other).await.is_err());
        // One succeeds, one could not be checked (dropped): both units come back.
        let mut held = held.into_iter();
        held.next().unwrap().succeeded();
        drop(held.next());
        held.next().unwrap().failed();
        limiter
            .admit(a, &[7; 32], Target::Other)
            .await
            .unwrap()
            .failed();
        limiter
            .admit(a, &[8; 32], Target::Other)
            .await
            .unwrap()
            .failed();
        assert!(limiter.admit(a, &[9; 32], Target::Other).await.is_err());
    }

    #[tokio::test]
    async fn ipv6_clients_share_one_budget_per_64() {
        let limiter = AuthLimiter::new(2);
        for i in 0..2u8 {
            limiter
                .admit(ip(&format!("2001:db8:1:2::{i}")), &[i; 32], Target::Other)
                .await
                .unwrap()
                .failed();
        }
        assert!(
            limiter
                .admit(ip("2001:db8:1:2:ffff::9"), &[9; 32], Target::Other)
                .await
                .is_err()
        );
        assert!(
            limiter
                .admit(ip("2001:db8:1:3::1"), &[9; 32], Target::Other)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_server_budget_holds_guesses_from_many_addresses() {
        let limiter = AuthLimiter::new(1);
        let server = Target::Server("S");
        for i in 0..SERVER_BUDGET_FACTOR {
            let addr = ip(&format!("10.0.0.{i}"));
            limiter
                .admit(addr, &[i as u8; 32], server)
                .await
                .unwrap()
                .failed();
        }
        let refused = limiter
            .admit(ip("10.0.1.1"), &[99; 32], server)
            .await
            .err()
            .expect("the server's budget is spent");
        assert!(refused.server_budget);
        // Other servers are not affected; nor is a credential known good for this one.
        assert!(
            limiter
                .admit(ip("10.0.1.1"), &[99; 32], Target::Server("T"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn known_good_credentials_are_forgotten_when_their_server_changes() {
        let limiter = AuthLimiter::new(1);
        let a = ip("10.0.0.1");
        let (old, other) = ([1u8; 32], [2u8; 32]);
        limiter
            .admit(a, &old, Target::Server("S"))
            .await
            .unwrap()
            .succeeded();
        limiter
            .admit(a, &other, Target::Server("T"))
            .await
            .unwrap()
            .succeeded();
        limiter.changed(&Change::Server("S".into()));
        // The old secret is charged again: one failure spends the whole budget of 1.
        limiter
            .admit(a, &old, Target::Server("S"))
            .await
            .unwrap()
            .failed();
        assert!(limiter.admit(a, &old, Target::Server("S")).await.is_err());
        assert!(limiter.admit(a, &other, Target::Server("T")).await.is_ok());
        limiter.changed(&Change::All);
        assert!(limiter.admit(a, &other, Target::Server("T")).await.is_err());
    }

    #[tokio::test]
    async fn a_known_good_api_key_is_forgotten_when_it_fails() {
        let limiter = AuthLimiter::new(1);
        let a = ip("10.0.0.1");
        limiter
            .admit(a, &[1; 32], Target::Other)
            .await
            .unwrap()
            .succeeded();
        limiter
            .admit(a, &[1; 32], Target::Other)
            .await
            .unwrap()
            .failed();
        limiter
            .admit(a, &[1; 32], Target::Other)
            .await
            .unwrap()
            .failed();
        assert!(limiter.admit(a, &[1; 32], Target::Other).await.is_err());
    }

    #[tokio::test]
    async fn a_check_that_began_before_a_change_does_not_make_its_credential_known_good() {
        let limiter = AuthLimiter::new(1);
        let a = ip("10.0.0.1");
        let attempt = limiter
            .admit(a, &[1; 32], Target::Server("S"))
            .await
            .unwrap();
        limiter.changed(&Change::Server("S".into()));
        attempt.succeeded();
        limiter
            .admit(a, &[1; 32], Target::Server("S"))
            .await
            .unwrap()
            .failed();
        assert!(
            limiter
                .admit(a, &[1; 32], Target::Server("S"))
                .await
                .is_err()
        );
    }

    /// Item 0 at the unit level: concurrent attempts with one credential take one unit between them.
    #[tokio::test]
    async fn concurrent_attempts_with_one_credential_wait_for_the_first_verdict() {
        let limiter = std::sync::Arc::new(AuthLimiter::new(1));
        let a = ip("10.0.0.1");
        let first = limiter.admit(a, &[1; 32], Target::Other).await.unwrap();
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter
                        .admit(a, &[1; 32], Target::Other)
                        .await
                        .map(|attempt| attempt.succeeded())
                        .is_ok()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.succeeded();
        for w in waiters {
            assert!(w.await.unwrap(), "admitted on the first one's verdict");
        }
        // A wrong credential: the waiters try again one at a time, each charged.
        let first = limiter
            .admit(ip("10.0.0.2"), &[2; 32], Target::Other)
            .await
            .unwrap();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter
                    .admit(ip("10.0.0.2"), &[2; 32], Target::Other)
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.failed();
        assert!(
            !waiter.await.unwrap(),
            "the budget of 1 was spent by the first"
        );
    }
}
