//! Failed authentication is rate limited per client IP (A5, issue 4): a token bucket of failures.
//! While an IP is over its budget its requests are answered 429 with `Retry-After` *before* any
//! credential is checked, so a brute-force loop learns nothing more, except for credentials this
//! process has seen succeed recently: valid callers behind the same address are not slowed.
//! An attempt is charged when it is admitted, not when it has failed, so a concurrent flood
//! cannot slip more guesses past the check than the budget holds.
//! The limit is per replica and kept in memory; nothing about it needs to be consistent.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default budget: failures an address may make in a burst, and per minute after it.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;
const MAX_TRACKED: usize = 100_000;

pub struct AuthLimiter {
    /// Failures in a burst; 0 turns limiting off.
    burst: f64,
    /// One more failure allowed per this interval.
    refill: Duration,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    known_good: Mutex<HashSet<[u8; 32]>>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(DEFAULT_FAILURES_PER_MINUTE)
    }
}

impl AuthLimiter {
    /// `per_minute` failures in a burst and per minute after it; 0 turns limiting off.
    pub fn new(per_minute: u32) -> Self {
        AuthLimiter {
            burst: f64::from(per_minute),
            refill: Duration::from_secs(60) / per_minute.max(1),
            buckets: Mutex::default(),
            known_good: Mutex::default(),
        }
    }

    fn level(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        (tokens + now.duration_since(since).as_secs_f64() / self.refill.as_secs_f64())
            .min(self.burst)
    }

    /// Admits an authentication attempt from `ip` with `credential` (a fingerprint), or answers
    /// the seconds to wait. An attempt with a credential that has not succeeded here recently
    /// takes one unit of the failure budget at once, under the lock: concurrent guesses cannot
    /// all pass this check before any has failed. The unit is given back when the attempt is
    /// dropped without [`Attempt::failed`] (it succeeded, or the database could not answer).
    pub fn admit(&self, ip: Option<IpAddr>, credential: &[u8; 32]) -> Result<Attempt<'_>, u64> {
        let uncharged = Attempt {
            limiter: self,
            ip: None,
        };
        let Some(ip) = ip.filter(|_| self.burst > 0.0) else {
            return Ok(uncharged);
        };
        if self
            .known_good
            .lock()
            .expect("limiter lock")
            .contains(credential)
        {
            return Ok(uncharged);
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, (t, s)| self.level(*t, *s, now) < self.burst);
        }
        let entry = buckets.entry(ip).or_insert((self.burst, now));
        let level = self.level(entry.0, entry.1, now);
        if level < 1.0 {
            return Err(((1.0 - level) * self.refill.as_secs_f64()).ceil().max(1.0) as u64);
        }
        *entry = (level - 1.0, now);
        Ok(Attempt {
            limiter: self,
            ip: Some(ip),
        })
    }

    fn refund(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if let Some(entry) = buckets.get_mut(&ip) {
            *entry = (
                (self.level(entry.0, entry.1, now) + 1.0).min(self.burst),
                now,
            );
        }
    }

    fn remember(&self, credential: [u8; 32]) {
        let mut good = self.known_good.lock().expect("limiter lock");
        if good.len() >= MAX_TRACKED {
            good.clear();
        }
        good.insert(credential);
    }
}

/// An admitted authentication attempt; see [`AuthLimiter::admit`].
#[must_use = "an attempt gives its unit back when dropped unless it failed"]
pub struct Attempt<'a> {
    limiter: &'a AuthLimiter,
    /// The address charged, if any.
    ip: Option<IpAddr>,
}

impl Attempt<'_> {
    /// The credential was wrong: the unit taken stays spent.
    pub fn failed(mut self) {
        self.ip = None;
    }

    /// The credential was right: remembered, so its holder is not slowed by others' failures.
    pub fn succeeded(self, credential: [u8; 32]) {
        self.limiter.remember(credential);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.limiter.refund(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_blocks_unknown_credentials_only() {
        let limiter = AuthLimiter::new(10);
        let ip = Some("10.0.0.1".parse().unwrap());
        let (good, bad) = ([1u8; 32], [2u8; 32]);
        limiter.admit(ip, &good).unwrap().succeeded(good);
        for _ in 0..10 {
            limiter.admit(ip, &bad).expect("within budget").failed();
        }
        let wait = limiter.admit(ip, &bad).err().expect("blocked");
        assert!((1..=6).contains(&wait), "{wait}");
        assert!(
            limiter.admit(ip, &good).is_ok(),
            "known-good credentials pass"
        );
        assert!(
            limiter
                .admit(Some("10.0.0.2".parse().unwrap()), &bad)
                .is_ok()
        );
        assert!(limiter.admit(None, &bad).is_ok());
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            off.admit(ip, &bad).unwrap().failed();
        }
        assert!(off.admit(ip, &bad).is_ok(), "0 turns limiting off");
    }

    #[test]
    fn attempts_in_flight_hold_their_unit_and_give_it_back_unless_they_fail() {
        let limiter = AuthLimiter::new(3);
        let ip = Some("10.0.0.1".parse().unwrap());
        let bad = [2u8; 32];
        // Three attempts at once exhaust the budget before any has an answer.
        let held: Vec<_> = (0..3).map(|_| limiter.admit(ip, &bad).unwrap()).collect();
        assert!(limiter.admit(ip, &bad).is_err());
        // One succeeds, one could not be checked (dropped): both units come back.
        let mut held = held.into_iter();
        held.next().unwrap().succeeded([9u8; 32]);
        drop(held.next());
        held.next().unwrap().failed();
        limiter.admit(ip, &bad).unwrap().failed();
        limiter.admit(ip, &bad).unwrap().failed();
        assert!(limiter.admit(ip, &bad).is_err());
    }
}
