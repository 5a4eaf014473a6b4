//! Per-run budgets: tokens, cost, number of LLM calls and wall time.
//!
//! The session checks the budget before every request (refusing when a limit is reached or the
//! prompt alone would cross it) and accounts the usage after. The request that crosses a limit
//! still returns its answer (it has been paid for); the next one is refused with
//! [`BudgetExhausted`], which the engine turns into a clean stop between steps. Limits can be
//! raised and the run continued; [`BudgetState`] is what a checkpoint stores.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Usage;
use super::pricing::{Micros, format_usd};

/// The limits of one run. `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetLimits {
    /// Prompt plus completion tokens.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Cost in micro-dollars.
    #[serde(default)]
    pub cost_micros: Option<Micros>,
    /// LLM calls (a parse re-ask is a call; a transport retry of the same call is not).
    #[serde(default)]
    pub calls: Option<u64>,
    /// Wall time of the run in milliseconds (time spent while the clock is paused excluded).
    #[serde(default)]
    pub wall_time_ms: Option<u64>,
}

impl BudgetLimits {
    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Limits the tokens.
    pub fn with_tokens(mut self, tokens: u64) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Limits the cost (micro-dollars).
    pub fn with_cost_micros(mut self, micros: Micros) -> Self {
        self.cost_micros = Some(micros);
        self
    }

    /// Limits the number of calls.
    pub fn with_calls(mut self, calls: u64) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Limits the wall time.
    pub fn with_wall_time(mut self, wall_time: Duration) -> Self {
        self.wall_time_ms = Some(u64::try_from(wall_time.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

/// What a run has used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUsage {
    /// Tokens (prompt plus completion).
    pub tokens: u64,
    /// Cost in micro-dollars.
    pub cost_micros: Micros,
    /// Calls started.
    pub calls: u64,
    /// Wall time in milliseconds.
    pub wall_time_ms: u64,
}

/// The serialisable budget of a run: stored with each checkpoint, restored on resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The limits.
    pub limits: BudgetLimits,
    /// The usage.
    pub used: BudgetUsage,
}

/// Which limit was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetResource {
    /// Tokens.
    Tokens,
    /// Cost (micro-dollars).
    Cost,
    /// Number of calls.
    Calls,
    /// Wall time (milliseconds).
    WallTime,
}

/// A budget limit was reached (or the next request would cross it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct BudgetExhausted {
    /// Which limit.
    pub resource: BudgetResource,
    /// Used so far (micro-dollars for cost, milliseconds for wall time).
    pub used: i64,
    /// The limit, in the same unit.
    pub limit: i64,
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource {
            BudgetResource::Tokens => {
                write!(
                    f,
                    "token budget exhausted: {} of {} tokens",
                    self.used, self.limit
                )
            }
            BudgetResource::Cost => write!(
                f,
                "cost budget exhausted: {} of {}",
                format_usd(self.used),
                format_usd(self.limit)
            ),
            BudgetResource::Calls => {
                write!(
                    f,
                    "call budget exhausted: {} of {} LLM calls",
                    self.used, self.limit
                )
            }
            BudgetResource::WallTime => write!(
                f,
                "time budget exhausted: {}s of {}s",
                self.used / 1000,
                self.limit / 1000
            ),
        }
    }
}

#[derive(Debug)]
struct Inner {
    limits: BudgetLimits,
    used: BudgetUsage,
    /// Wall time accumulated before the clock last started.
    wall_before: Duration,
    /// When the clock last started; `None` while paused.
    clock_started: Option<Instant>,
}

impl Inner {
    fn wall_time(&self) -> Duration {
        self.wall_before + self.clock_started.map(|s| s.elapsed()).unwrap_or_default()
    }

    fn snapshot(&self) -> BudgetState {
        let mut used = self.used;
        used.wall_time_ms = u64::try_from(self.wall_time().as_millis()).unwrap_or(u64::MAX);
        BudgetState {
            limits: self.limits,
            used,
        }
    }
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The live budget of a run, shared by every request of it (cheap to clone).
///
/// ```
/// use samokoder_core::llm::{Budget, BudgetLimits, BudgetResource, Usage};
///
/// let budget = Budget::new(BudgetLimits::unlimited().with_tokens(1_000));
/// budget.admit(100, 0).unwrap();
/// budget.account(&Usage { prompt_tokens: 900, completion_tokens: 200, ..Usage::default() }, 0);
/// let refused = budget.admit(10, 0).unwrap_err();
/// assert_eq!(refused.resource, BudgetResource::Tokens);
///
/// // Raise the limit and carry on.
/// budget.raise(BudgetLimits::unlimited().with_tokens(5_000));
/// assert!(budget.admit(10, 0).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Budget {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(BudgetLimits::unlimited())
    }
}

impl Budget {
    /// A fresh budget; the wall clock starts now.
    pub fn new(limits: BudgetLimits) -> Self {
        Self::restore(BudgetState {
            limits,
            used: BudgetUsage::default(),
        })
    }

    /// A budget continuing from a stored state (a resumed run); the wall clock continues from
    /// the stored wall time.
    pub fn restore(state: BudgetState) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                limits: state.limits,
                used: state.used,
                wall_before: Duration::from_millis(state.used.wall_time_ms),
                clock_started: Some(Instant::now()),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters half-updated (each update is
        // a single assignment), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state, for a checkpoint.
    pub fn snapshot(&self) -> BudgetState {
        self.lock().snapshot()
    }

    /// Replaces the limits (usually raising them so a stopped run can continue).
    pub fn raise(&self, limits: BudgetLimits) {
        self.lock().limits = limits;
    }

    /// Stops the wall clock (the run waits for a human, say).
    pub fn pause_clock(&self) {
        let mut inner = self.lock();
        if let Some(started) = inner.clock_started.take() {
            inner.wall_before += started.elapsed();
        }
    }

    /// Restarts the wall clock.
    pub fn resume_clock(&self) {
        let mut inner = self.lock();
        if inner.clock_started.is_none() {
            inner.clock_started = Some(Instant::now());
        }
    }

    /// The first limit already reached, if any. The engine asks this between steps.
    pub fn exhausted(&self) -> Option<BudgetExhausted> {
        let inner = self.lock();
        Self::first_exhausted(&inner.snapshot(), 0, 0)
    }

    fn first_exhausted(
        state: &BudgetState,
        extra_tokens: u64,
        extra_cost: Micros,
    ) -> Option<BudgetExhausted> {
        let BudgetState { limits, used } = state;
        if let Some(limit) = limits.tokens {
            let would = used.tokens.saturating_add(extra_tokens);
            if used.tokens >= limit || would > limit {
                return Some(BudgetExhausted {
                    resource: BudgetResource::Tokens,
                    used: sat_i64(used.tokens),
                    limit: sat_i64(limit),
                });
            }
        }
        if let Some(limit) = limits.cost_micros {
            let would = used.cost_micros.saturating_add(extra_cost);
            if used.cost_micros >= limit || would > limit {
                return Some(BudgetExhausted {
                    resource: BudgetResource::Cost,
                    used: used.cost_micros,
                    limit,
                });
            }
        }
        if let Some(limit) = limits.calls
            && used.calls >= limit
        {
            return Some(BudgetExhausted {
                resource: BudgetResource::Calls,
                used: sat_i64(used.calls),
                limit: sat_i64(limit),
            });
        }
        if let Some(limit) = limits.wall_time_ms
            && used.wall_time_ms >= limit
        {
            return Some(BudgetExhausted {
                resource: BudgetResource::WallTime,
                used: sat_i64(used.wall_time_ms),
                limit: sat_i64(limit),
            });
        }
        None
    }

    /// Admits one call: refuses when a limit is reached or when the prompt alone
    /// (`prompt_tokens`, costing `prompt_cost`) would cross the token or cost limit; otherwise
    /// counts the call. Counting at admission keeps the call limit exact under concurrency.
    pub fn admit(&self, prompt_tokens: u64, prompt_cost: Micros) -> Result<(), BudgetExhausted> {
        let mut inner = self.lock();
        if let Some(exhausted) =
            Self::first_exhausted(&inner.snapshot(), prompt_tokens, prompt_cost)
        {
            return Err(exhausted);
        }
        inner.used.calls += 1;
        Ok(())
    }

    /// Refuses when a limit is already reached, without counting a call (before a retry).
    pub fn check(&self) -> Result<(), BudgetExhausted> {
        match self.exhausted() {
            Some(exhausted) => Err(exhausted),
            None => Ok(()),
        }
    }

    /// Adds what a request used.
    pub fn account(&self, usage: &Usage, cost: Micros) {
        let mut inner = self.lock();
        inner.used.tokens = inner.used.tokens.saturating_add(usage.total());
        inner.used.cost_micros = inner.used.cost_micros.saturating_add(cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(total: u64) -> Usage {
        Usage {
            prompt_tokens: total,
            ..Usage::default()
        }
    }

    #[test]
    fn refuses_when_the_prompt_alone_would_cross_the_limit() {
        let budget = Budget::new(BudgetLimits::unlimited().with_tokens(100));
        assert!(budget.admit(60, 0).is_ok());
        budget.account(&usage(60), 0);
        let err = budget.admit(50, 0).unwrap_err();
        assert_eq!(err.resource, BudgetResource::Tokens);
        assert_eq!((err.used, err.limit), (60, 100));
        assert!(budget.admit(40, 0).is_ok());
    }

    #[test]
    fn calls_and_cost_limits() {
        let budget = Budget::new(
            BudgetLimits::unlimited()
                .with_calls(2)
                .with_cost_micros(1_000),
        );
        budget.admit(0, 0).unwrap();
        budget.account(&usage(1), 600);
        // The prompt's estimated cost would cross the limit: refused before sending.
        assert_eq!(
            budget.admit(0, 500).unwrap_err().resource,
            BudgetResource::Cost
        );
        budget.admit(0, 0).unwrap();
        budget.account(&usage(1), 400);
        assert_eq!(
            budget.admit(0, 0).unwrap_err().resource,
            BudgetResource::Cost
        );
        budget.raise(BudgetLimits::unlimited().with_calls(2));
        assert_eq!(
            budget.admit(0, 0).unwrap_err().resource,
            BudgetResource::Calls
        );
        assert!(budget.exhausted().is_some());
        budget.raise(BudgetLimits::unlimited());
        assert!(budget.exhausted().is_none());
    }

    #[test]
    fn state_round_trips_and_keeps_wall_time() {
        let budget = Budget::new(BudgetLimits::unlimited().with_wall_time(Duration::from_secs(60)));
        budget.admit(10, 5).unwrap();
        budget.account(&usage(10), 5);
        let mut state = budget.snapshot();
        state.used.wall_time_ms = 59_999;
        let json = serde_json::to_string(&state).unwrap();
        let restored = Budget::restore(serde_json::from_str(&json).unwrap());
        let snap = restored.snapshot();
        assert_eq!(snap.used.tokens, 10);
        assert_eq!(snap.used.calls, 1);
        assert!(snap.used.wall_time_ms >= 59_999);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            restored.exhausted().unwrap().resource,
            BudgetResource::WallTime
        );
    }

    #[test]
    fn paused_clock_does_not_count() {
        let budget =
            Budget::new(BudgetLimits::unlimited().with_wall_time(Duration::from_millis(20)));
        budget.pause_clock();
        std::thread::sleep(Duration::from_millis(40));
        assert!(budget.exhausted().is_none());
        budget.resume_clock();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            budget.exhausted().unwrap().resource,
            BudgetResource::WallTime
        );
    }
}
