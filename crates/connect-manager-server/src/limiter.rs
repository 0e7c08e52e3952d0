//! Failed authentication is rate limited per client IP (A5, issue 4): a token bucket of failures.
//! While an IP is over its budget its requests are answered 429 with `Retry-After` *before* any
//! credential is checked, so a brute-force loop learns nothing more, except for credentials this
//! process has seen succeed recently: valid callers behind the same address are not slowed.
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

    /// `Some(seconds to wait)` when `ip` is over its failure budget and `credential` (a
    /// fingerprint) has not succeeded here recently.
    pub fn refuse(&self, ip: Option<IpAddr>, credential: &[u8; 32]) -> Option<u64> {
        let ip = ip.filter(|_| self.burst > 0.0)?;
        let buckets = self.buckets.lock().expect("limiter lock");
        let (tokens, since) = *buckets.get(&ip)?;
        let level = self.level(tokens, since, Instant::now());
        if level >= 1.0
            || self
                .known_good
                .lock()
                .expect("limiter lock")
                .contains(credential)
        {
            return None;
        }
        Some(((1.0 - level) * self.refill.as_secs_f64()).ceil().max(1.0) as u64)
    }

    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip.filter(|_| self.burst > 0.0) else {
            return;
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, (t, s)| self.level(*t, *s, now) < self.burst);
        }
        let entry = buckets.entry(ip).or_insert((self.burst, now));
        let level = self.level(entry.0, entry.1, now);
        *entry = ((level - 1.0).max(0.0), now);
    }

    pub fn succeeded(&self, credential: [u8; 32]) {
        let mut good = self.known_good.lock().expect("limiter lock");
        if good.len() >= MAX_TRACKED {
            good.clear();
        }
        good.insert(credential);
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
        limiter.succeeded(good);
        for _ in 0..10 {
            assert_eq!(limiter.refuse(ip, &bad), None);
            limiter.failed(ip);
        }
        let wait = limiter.refuse(ip, &bad).expect("blocked");
        assert!((1..=6).contains(&wait), "{wait}");
        assert_eq!(
            limiter.refuse(ip, &good),
            None,
            "known-good credentials pass"
        );
        assert_eq!(
            limiter.refuse(Some("10.0.0.2".parse().unwrap()), &bad),
            None
        );
        assert_eq!(limiter.refuse(None, &bad), None);
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            off.failed(ip);
        }
        assert_eq!(off.refuse(ip, &bad), None, "0 turns limiting off");
    }
}
