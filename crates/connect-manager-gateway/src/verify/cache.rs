//! G2's live answers: the manager's `POST /v1/introspect` answer about each token, cached at
//! most max-staleness (measured from when the question was sent), inactive answers too; one
//! call in flight per token, the checks arriving meanwhile waiting for it (single flight) and
//! sharing its failure; at most [`CACHE_CAP`] tokens, swept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_manager_core::access::PERMISSIONS;
use connect_manager_core::api::tokens::Introspection;

use super::{Access, Refusal, Verifier};
use crate::metrics::inc;

/// The most tokens whose answers are kept. Beyond, answers of new tokens are not cached (each
/// check asks the manager) until the sweep makes room: memory stays bounded whatever clients send.
pub const CACHE_CAP: usize = 10_000;

/// The manager's answer about one token.
#[derive(Clone)]
pub(super) enum Answer {
    Active(Arc<Access>),
    Inactive,
}

impl Answer {
    pub(super) fn into_result(self) -> Result<Arc<Access>, Refusal> {
        match self {
            Answer::Active(access) => Ok(access),
            Answer::Inactive => Err(Refusal::Unauthorized),
        }
    }
}

/// One token's slot in the cache.
#[derive(Default)]
pub(super) struct Slot {
    /// The token's `jti` and `exp`: a slot exists only for a JWT that passed the local checks,
    /// so a check of the very same JWT needs only `exp` again, not the signature.
    pub(super) jti: String,
    pub(super) exp: Option<i64>,
    /// Held across a call to the manager about this token: the checks that need an answer
    /// meanwhile wait for that call instead of making their own.
    call: tokio::sync::Mutex<()>,
    /// Read without waiting for a call in flight.
    state: Mutex<SlotState>,
}

impl Slot {
    /// The last answer and its age.
    pub(super) fn answer(&self) -> Option<(Duration, Answer)> {
        let state = self.state.lock().expect("slot lock");
        let (asked_at, answer) = state.answer.as_ref()?;
        Some((asked_at.elapsed(), answer.clone()))
    }
}

#[derive(Default)]
struct SlotState {
    /// The last answer and when its question was sent.
    answer: Option<(Instant, Answer)>,
    /// When the last failed call ended: checks that were already waiting for it share its
    /// failure instead of each trying again in turn.
    failed_at: Option<Instant>,
}

pub(super) struct Cache {
    pub(super) slots: HashMap<Arc<str>, Arc<Slot>>,
    pub(super) swept_at: Instant,
}

impl Verifier {
    /// The slot of exactly this JWT, when it passed the local checks before: its signature
    /// and claims need no second look (ES256 verification is most of a check's cost).
    pub(super) fn known(&self, jwt: &str) -> Option<Arc<Slot>> {
        self.cache
            .lock()
            .expect("cache lock")
            .slots
            .get(jwt)
            .cloned()
    }

    /// The manager's answer about a token that passed the local checks: from the cache when
    /// young enough, else from one call shared by every check of that token meanwhile.
    pub(super) async fn live(
        &self,
        jwt: &str,
        jti: &str,
        exp: Option<i64>,
    ) -> Result<Answer, Refusal> {
        let arrived = Instant::now();
        let slot = self.slot(jwt, jti, exp);
        // No refresh ahead of time: an answer is asked again only once it is max-staleness old,
        // so a busy token costs the manager at most one call per max-staleness window (the
        // issue's bound); the checks arriving while that call is out wait for it (one round trip).
        if let Some((age, answer)) = slot.answer()
            && age < self.max_staleness
        {
            inc(&self.metrics.introspection_cache_hits);
            return Ok(answer);
        }
        let _call = slot.call.lock().await;
        let waited = {
            let state = slot.state.lock().expect("slot lock");
            match &state.answer {
                Some((asked_at, answer)) if asked_at.elapsed() < self.max_staleness => {
                    Some(Ok(answer.clone()))
                }
                // The call this check waited for failed a moment ago: fail with it.
                _ if state.failed_at.is_some_and(|at| at >= arrived) => {
                    Some(Err(Refusal::Unavailable))
                }
                _ => None,
            }
        };
        match waited {
            Some(Ok(answer)) => {
                inc(&self.metrics.introspection_cache_hits);
                Ok(answer)
            }
            Some(Err(refusal)) => Err(refusal),
            None => self.ask(&slot, jwt, jti).await,
        }
    }

    /// Asks the manager about a token and keeps its answer; the caller holds the slot's call lock.
    async fn ask(&self, slot: &Slot, jwt: &str, jti: &str) -> Result<Answer, Refusal> {
        let asked_at = Instant::now();
        inc(&self.metrics.introspection_calls);
        let result = self.manager.introspect(jwt).await;
        let mut state = slot.state.lock().expect("slot lock");
        match result {
            Ok(answer) => {
                self.recovered();
                let answer = self.answer(answer, jti);
                state.answer = Some((asked_at, answer.clone()));
                state.failed_at = None;
                Ok(answer)
            }
            Err(e) => {
                self.failing(&e, "introspecting a token");
                // When it failed, not when it was asked: every check that arrived meanwhile
                // waited for this call and shares its failure.
                state.failed_at = Some(Instant::now());
                Err(Refusal::Unavailable)
            }
        }
    }

    /// What an introspection says, checked against what we asked about.
    fn answer(&self, answer: Introspection, jti: &str) -> Answer {
        if !answer.active
            || answer.jti.as_deref() != Some(jti)
            || answer.sub.as_deref() != Some(self.manager.server_id())
        {
            return Answer::Inactive;
        }
        let vaults = answer
            .vaults
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let bits = PERMISSIONS
                    .iter()
                    .filter(|(_, name)| v.acl.iter().any(|a| a == name))
                    .fold(0u32, |bits, (bit, _)| bits | *bit as u32);
                (v.id, bits)
            })
            .collect();
        Answer::Active(Arc::new(Access {
            jti: jti.to_owned(),
            vaults,
        }))
    }

    /// The token's cache slot; a slot of its own, not kept, when the cache is full.
    fn slot(&self, jwt: &str, jti: &str, exp: Option<i64>) -> Arc<Slot> {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(slot) = cache.slots.get(jwt) {
            return slot.clone();
        }
        let sweep_every = self.max_staleness.max(Duration::from_secs(1)) * 2;
        if cache.slots.len() >= CACHE_CAP || cache.swept_at.elapsed() >= sweep_every {
            self.sweep(&mut cache);
        }
        let slot = Arc::new(Slot {
            jti: jti.to_owned(),
            exp,
            ..Slot::default()
        });
        if cache.slots.len() < CACHE_CAP {
            cache.slots.insert(Arc::from(jwt), slot.clone());
        }
        slot
    }

    /// Drops the slots whose answer is too old to serve and that no check is using.
    fn sweep(&self, cache: &mut Cache) {
        let max_staleness = self.max_staleness;
        cache.slots.retain(|_, slot| {
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            if slot.call.try_lock().is_err() {
                return true;
            }
            match &slot.state.lock().expect("slot lock").answer {
                Some((at, _)) => at.elapsed() < max_staleness,
                None => false,
            }
        });
        cache.swept_at = Instant::now();
    }

    /// The number of tokens whose answers are kept now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.lock().expect("cache lock").slots.len()
    }
}
