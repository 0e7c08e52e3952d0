//! The token buckets of failed authentications: one per client address (IPv6 by /64), one per
//! target server ([`super::SERVER_BUDGET_FACTOR`] times larger). Each holds up to its burst and
//! refills one unit per interval.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{AuthLimiter, MAX_TRACKED, SERVER_BUDGET_FACTOR, State};

/// A bucket of failures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Budget {
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

/// The bucket an address is charged to: itself, or for IPv6 its /64.
pub fn budget_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl AuthLimiter {
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
    pub(super) fn charge(&self, state: &mut State, budgets: &[Budget]) -> Result<(), Refused> {
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

    pub(super) fn refund(&self, state: &mut State, budgets: &[Budget]) {
        let now = Instant::now();
        for budget in budgets {
            if let Some(v) = state.buckets.get(budget).copied() {
                let level = (self.level(budget, v, now) + 1.0).min(self.shape(budget).0);
                state.buckets.insert(budget.clone(), (level, now));
            }
        }
    }
}
