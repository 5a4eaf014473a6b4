//! A run's budget: what the request asks for, the deployment's defaults for what it leaves
//! out, and the plan's maxima over both.
//!
//! Every limit of a stored run is set: an unset default means "up to the plan's maximum".

use samokoder_core::api::FieldError;
use samokoder_core::api::runs::RunBudget;
use samokoder_core::llm::BudgetLimits;

use crate::config::BudgetDefaults;
use crate::quota::RunBudgetCaps;
use crate::validation;

/// The error code of a budget above the plan's maximum.
pub const BUDGET_OVER_PLAN: &str = "budget_over_plan";

/// One limit: its wire field, the cap, and what was asked (or the fallback).
fn limit(
    field: &str,
    asked: Option<u64>,
    fallback: Option<u64>,
    cap: u64,
    errors: &mut Vec<FieldError>,
) -> u64 {
    match asked {
        Some(0) => {
            errors.push(validation::field_error(
                &format!("budget.{field}"),
                "out_of_range",
                "Must be at least 1.",
            ));
            0
        }
        Some(value) if value > cap => {
            errors.push(validation::field_error(
                &format!("budget.{field}"),
                "above_plan_maximum",
                format!("Your plan allows at most {cap}."),
            ));
            0
        }
        Some(value) => value,
        None => fallback.map_or(cap, |value| value.min(cap)),
    }
}

/// The limits of a new run: `asked` where given, else `defaults`, each at most `caps`. Field
/// errors for a zero or a value above the plan's maximum.
pub fn resolve(
    asked: Option<&RunBudget>,
    defaults: &BudgetDefaults,
    caps: &RunBudgetCaps,
) -> Result<BudgetLimits, Vec<FieldError>> {
    let asked = asked.copied().unwrap_or_default();
    merge(&asked, &to_wire_defaults(defaults), caps)
}

/// The limits after a resume: `asked` where given, else the run's `current` ones, each at most
/// `caps` (a plan that shrank meanwhile caps the kept limits too).
pub fn raise(
    asked: Option<&RunBudget>,
    current: &BudgetLimits,
    caps: &RunBudgetCaps,
) -> Result<BudgetLimits, Vec<FieldError>> {
    let asked = asked.copied().unwrap_or_default();
    merge(&asked, &to_wire(current), caps)
}

fn merge(
    asked: &RunBudget,
    fallback: &RunBudget,
    caps: &RunBudgetCaps,
) -> Result<BudgetLimits, Vec<FieldError>> {
    let mut errors = Vec::new();
    let wire = RunBudget {
        tokens: Some(limit(
            "tokens",
            asked.tokens,
            fallback.tokens,
            caps.tokens,
            &mut errors,
        )),
        cost_micros: Some(limit(
            "cost_micros",
            asked.cost_micros,
            fallback.cost_micros,
            caps.cost_micros,
            &mut errors,
        )),
        llm_calls: Some(limit(
            "llm_calls",
            asked.llm_calls,
            fallback.llm_calls,
            caps.llm_calls,
            &mut errors,
        )),
        wall_time_secs: Some(limit(
            "wall_time_secs",
            asked.wall_time_secs,
            fallback.wall_time_secs,
            caps.wall_time_secs,
            &mut errors,
        )),
    };
    if errors.is_empty() {
        Ok(to_limits(&wire))
    } else {
        Err(errors)
    }
}

fn to_wire_defaults(defaults: &BudgetDefaults) -> RunBudget {
    RunBudget {
        tokens: defaults.tokens,
        cost_micros: defaults.cost_micros,
        llm_calls: defaults.llm_calls,
        wall_time_secs: defaults.wall_time_secs,
    }
}

/// The engine's limits as the wire shows them (wall time in whole seconds).
pub fn to_wire(limits: &BudgetLimits) -> RunBudget {
    RunBudget {
        tokens: limits.tokens,
        cost_micros: limits
            .cost_micros
            .map(|micros| u64::try_from(micros).unwrap_or(0)),
        llm_calls: limits.calls,
        wall_time_secs: limits.wall_time_ms.map(|ms| ms / 1000),
    }
}

/// The wire limits in the engine's terms.
pub fn to_limits(budget: &RunBudget) -> BudgetLimits {
    BudgetLimits {
        tokens: budget.tokens,
        cost_micros: budget
            .cost_micros
            .map(|micros| i64::try_from(micros).unwrap_or(i64::MAX)),
        calls: budget.llm_calls,
        wall_time_ms: budget.wall_time_secs.map(|secs| secs.saturating_mul(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: RunBudgetCaps = RunBudgetCaps {
        tokens: 1000,
        cost_micros: 5_000_000,
        llm_calls: 50,
        wall_time_secs: 600,
    };

    #[test]
    fn defaults_fill_in_and_caps_bound_them() {
        let defaults = BudgetDefaults {
            tokens: Some(5000),
            cost_micros: Some(1_000_000),
            llm_calls: None,
            wall_time_secs: Some(60),
        };
        let asked = RunBudget {
            llm_calls: Some(10),
            ..RunBudget::default()
        };
        let limits = resolve(Some(&asked), &defaults, &CAPS).unwrap();
        assert_eq!(limits.tokens, Some(1000), "the default is capped");
        assert_eq!(limits.cost_micros, Some(1_000_000));
        assert_eq!(limits.calls, Some(10), "asked");
        assert_eq!(limits.wall_time_ms, Some(60_000));
        let unset = resolve(None, &BudgetDefaults::default(), &CAPS).unwrap();
        assert_eq!(unset.calls, Some(50), "no default: the plan's maximum");
    }

    #[test]
    fn zero_and_above_the_plan_are_field_errors() {
        let asked = RunBudget {
            tokens: Some(0),
            llm_calls: Some(51),
            ..RunBudget::default()
        };
        let errors = resolve(Some(&asked), &BudgetDefaults::default(), &CAPS).unwrap_err();
        let fields: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("budget.tokens", "out_of_range"),
                ("budget.llm_calls", "above_plan_maximum")
            ]
        );
    }

    #[test]
    fn raising_keeps_what_is_not_asked() {
        let current = to_limits(&RunBudget {
            tokens: Some(100),
            cost_micros: Some(10),
            llm_calls: Some(3),
            wall_time_secs: Some(60),
        });
        let raised = raise(
            Some(&RunBudget {
                llm_calls: Some(40),
                ..RunBudget::default()
            }),
            &current,
            &CAPS,
        )
        .unwrap();
        assert_eq!(raised.calls, Some(40));
        assert_eq!(raised.tokens, Some(100));
        assert_eq!(to_wire(&raised).wall_time_secs, Some(60));
    }
}
