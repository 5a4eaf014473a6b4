//! The plans (the original's tier table) and their enforcement: projects per month and in
//! total, and the monthly counters of previews, exports and pushes. Over a limit the answer is
//! 402 `quota_exceeded` with a detail that names the limit.
//!
//! Monthly periods are UTC calendar months. Project counts come from the projects that exist
//! (so deleting a project frees its place, as in the original); previews, exports and pushes
//! are counted atomically by the store as they are used.

use chrono::Utc;
use http::StatusCode;
use samokoder_core::api::Tier;
use samokoder_core::api::user::{TierFeatures, TierLimits, TierRateLimits};
use samokoder_store::{ProjectCounts, QuotaDecision, QuotaKind, Store, User, month_start};

use crate::error::ApiError;

/// The error code of every quota refusal.
pub const QUOTA_EXCEEDED: &str = "quota_exceeded";

/// One plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The tier.
    pub tier: Tier,
    /// Display name.
    pub name: &'static str,
    /// Price in roubles per month.
    pub price_rub: u32,
    /// Limits (`None` = unlimited).
    pub limits: TierLimits,
    /// Features.
    pub features: TierFeatures,
    /// Advertised request rates (informational).
    pub rate_limits: TierRateLimits,
    /// The most budget one generation run may be given.
    pub max_run_budget: RunBudgetCaps,
}

/// The largest budget limits one run of a plan may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBudgetCaps {
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// LLM requests.
    pub llm_calls: u64,
    /// Wall time in seconds.
    pub wall_time_secs: u64,
}

const fn run_caps(tokens: u64, dollars: u64, llm_calls: u64, hours: u64) -> RunBudgetCaps {
    RunBudgetCaps {
        tokens,
        cost_micros: dollars * 1_000_000,
        llm_calls,
        wall_time_secs: hours * 3600,
    }
}

const fn features(deploy: bool, templates: bool, team: bool, branding: bool) -> TierFeatures {
    TierFeatures {
        create_project: true,
        deploy,
        export: true,
        git_push: true,
        custom_templates: templates,
        team_collaboration: team,
        priority_support: team,
        custom_branding: branding,
    }
}

const fn rates(per_minute: u32, per_hour: u32, per_day: u32) -> TierRateLimits {
    TierRateLimits {
        requests_per_minute: per_minute,
        requests_per_hour: per_hour,
        requests_per_day: per_day,
    }
}

/// The plans, cheapest first (the original's numbers).
pub const PLANS: [Plan; 4] = [
    Plan {
        tier: Tier::Free,
        name: "Free",
        price_rub: 0,
        limits: TierLimits {
            projects_monthly: Some(2),
            projects_total: Some(2),
            deployments_monthly: Some(0),
            exports_monthly: Some(2),
            git_pushes_monthly: Some(5),
        },
        features: features(false, false, false, false),
        rate_limits: rates(30, 1_000, 10_000),
        max_run_budget: run_caps(2_000_000, 5, 500, 1),
    },
    Plan {
        tier: Tier::Starter,
        name: "Starter",
        price_rub: 490,
        limits: TierLimits {
            projects_monthly: Some(10),
            projects_total: Some(100),
            deployments_monthly: Some(10),
            exports_monthly: Some(50),
            git_pushes_monthly: Some(100),
        },
        features: features(true, true, false, false),
        rate_limits: rates(100, 5_000, 50_000),
        max_run_budget: run_caps(10_000_000, 25, 2_000, 4),
    },
    Plan {
        tier: Tier::Pro,
        name: "Pro",
        price_rub: 1_490,
        limits: TierLimits {
            projects_monthly: Some(50),
            projects_total: None,
            deployments_monthly: Some(100),
            exports_monthly: None,
            git_pushes_monthly: None,
        },
        features: features(true, true, true, false),
        rate_limits: rates(200, 10_000, 100_000),
        max_run_budget: run_caps(50_000_000, 100, 10_000, 12),
    },
    Plan {
        tier: Tier::Team,
        name: "Team",
        price_rub: 2_490,
        limits: TierLimits {
            projects_monthly: None,
            projects_total: None,
            deployments_monthly: None,
            exports_monthly: None,
            git_pushes_monthly: None,
        },
        features: features(true, true, true, true),
        rate_limits: rates(500, 20_000, 200_000),
        max_run_budget: run_caps(200_000_000, 500, 50_000, 24),
    },
];

/// The plan of `tier`.
pub fn plan(tier: Tier) -> &'static Plan {
    PLANS
        .iter()
        .find(|plan| plan.tier == tier)
        .unwrap_or(&PLANS[0])
}

/// The wire tier of a stored tier.
pub fn api_tier(tier: samokoder_store::Tier) -> Tier {
    match tier {
        samokoder_store::Tier::Free => Tier::Free,
        samokoder_store::Tier::Starter => Tier::Starter,
        samokoder_store::Tier::Pro => Tier::Pro,
        samokoder_store::Tier::Team => Tier::Team,
    }
}

/// The stored tier of a wire tier.
pub fn store_tier(tier: Tier) -> samokoder_store::Tier {
    match tier {
        Tier::Free => samokoder_store::Tier::Free,
        Tier::Starter => samokoder_store::Tier::Starter,
        Tier::Pro => samokoder_store::Tier::Pro,
        Tier::Team => samokoder_store::Tier::Team,
    }
}

/// The cheapest tier above `tier` whose `limit` is higher (or unlimited).
fn upgrade_for(tier: Tier, limit: impl Fn(&TierLimits) -> Option<u32>) -> Option<Tier> {
    let current = limit(&plan(tier).limits);
    PLANS
        .iter()
        .skip_while(|plan| plan.tier != tier)
        .skip(1)
        .find(|plan| match (limit(&plan.limits), current) {
            (None, _) => true,
            (Some(higher), Some(now)) => higher > now,
            (Some(_), None) => false,
        })
        .map(|plan| plan.tier)
}

fn exceeded(detail: String) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, QUOTA_EXCEEDED, detail)
}

/// Refuses a new project when the user's plan allows no more this month or in total.
pub async fn check_project_creation(store: &Store, user: &User) -> Result<(), ApiError> {
    let month = month_start(Utc::now())
        .and_hms_opt(0, 0, 0)
        .map(|start| start.and_utc())
        .ok_or_else(|| ApiError::internal("the first of the month has no midnight"))?;
    let counts = store.projects.counts(user.id, month).await?;
    project_quota(api_tier(user.tier), counts)
}

/// The project limits of `tier` against the counts: the monthly limit first, then the total
/// (the original's order and wording).
pub fn project_quota(tier: Tier, counts: ProjectCounts) -> Result<(), ApiError> {
    let limits = plan(tier).limits;
    if let Some(limit) = limits.projects_monthly
        && counts.created_since >= u64::from(limit)
    {
        let target = upgrade_for(tier, |l| l.projects_monthly).unwrap_or(Tier::Team);
        return Err(exceeded(format!(
            "Monthly project limit reached ({limit} projects). Upgrade to {target} for more projects."
        )));
    }
    if let Some(limit) = limits.projects_total
        && counts.total >= u64::from(limit)
    {
        let target = PLANS
            .iter()
            .find(|p| p.limits.projects_total.is_none())
            .map_or(Tier::Team, |p| p.tier);
        return Err(exceeded(format!(
            "Total project limit reached ({limit} projects). Upgrade to {target} for unlimited projects."
        )));
    }
    Ok(())
}

/// A metered action of a plan: what it is called and which limit and feature govern it.
struct Metered {
    singular: &'static str,
    plural: &'static str,
    feature: &'static str,
    limit: fn(&TierLimits) -> Option<u32>,
    enabled: fn(&TierFeatures) -> bool,
}

fn metered(kind: QuotaKind) -> Metered {
    match kind {
        QuotaKind::Preview => Metered {
            singular: "deployment",
            plural: "deployments",
            feature: "deploy",
            limit: |l| l.deployments_monthly,
            enabled: |f| f.deploy,
        },
        QuotaKind::Export => Metered {
            singular: "export",
            plural: "exports",
            feature: "export",
            limit: |l| l.exports_monthly,
            enabled: |f| f.export,
        },
        QuotaKind::GitPush => Metered {
            singular: "git push",
            plural: "git pushes",
            feature: "git_push",
            limit: |l| l.git_pushes_monthly,
            enabled: |f| f.git_push,
        },
    }
}

/// Counts one preview, export or push against the user's monthly allowance, or refuses it with
/// 402 when the plan does not include the feature or the allowance is used up. The check and
/// the count are one atomic store operation, so concurrent requests cannot overshoot.
pub async fn consume(
    store: &Store,
    user: &User,
    kind: QuotaKind,
) -> Result<QuotaDecision, ApiError> {
    let tier = api_tier(user.tier);
    let plan = plan(tier);
    let action = metered(kind);
    let limit = (action.limit)(&plan.limits);
    if !(action.enabled)(&plan.features) || limit == Some(0) {
        let target = PLANS
            .iter()
            .find(|p| (action.enabled)(&p.features) && (action.limit)(&p.limits) != Some(0))
            .map_or(Tier::Team, |p| p.tier);
        return Err(exceeded(format!(
            "Feature '{}' is not available in your current plan ({tier}). Upgrade to {target} to access this feature.",
            action.feature
        )));
    }
    let month = month_start(Utc::now());
    let Some(limit) = limit else {
        // Unlimited: still counted, so usage can be shown.
        return Ok(store
            .quotas
            .try_consume(user.id, kind, month, i64::MAX)
            .await?);
    };
    let decision = store
        .quotas
        .try_consume(user.id, kind, month, i64::from(limit))
        .await?;
    if decision.allowed {
        Ok(decision)
    } else {
        Err(exceeded(format!(
            "Monthly {} limit reached ({limit}). Upgrade your plan for more {}.",
            action.singular, action.plural
        )))
    }
}

/// How much of its monthly allowance of `kind` the user has used.
pub async fn used_this_month(store: &Store, user: &User, kind: QuotaKind) -> Result<u64, ApiError> {
    let used = store
        .quotas
        .used(user.id, kind, month_start(Utc::now()))
        .await?;
    Ok(u64::try_from(used).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_point_at_the_next_higher_limit() {
        assert_eq!(
            upgrade_for(Tier::Free, |l| l.projects_monthly),
            Some(Tier::Starter)
        );
        assert_eq!(
            upgrade_for(Tier::Starter, |l| l.projects_monthly),
            Some(Tier::Pro)
        );
        assert_eq!(
            upgrade_for(Tier::Free, |l| l.projects_total),
            Some(Tier::Starter)
        );
        assert_eq!(
            upgrade_for(Tier::Starter, |l| l.projects_total),
            Some(Tier::Pro)
        );
        assert_eq!(upgrade_for(Tier::Team, |l| l.projects_total), None);
    }

    #[test]
    fn project_limits_name_the_limit_reached() {
        let counts = |created_since, total| ProjectCounts {
            total,
            created_since,
        };
        assert!(project_quota(Tier::Free, counts(1, 1)).is_ok());
        let monthly = project_quota(Tier::Free, counts(2, 2)).unwrap_err();
        assert_eq!(monthly.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(monthly.code(), QUOTA_EXCEEDED);
        assert_eq!(
            monthly.detail(),
            "Monthly project limit reached (2 projects). Upgrade to starter for more projects."
        );
        // Earlier months' projects count towards the total only.
        let total = project_quota(Tier::Starter, counts(3, 100)).unwrap_err();
        assert_eq!(
            total.detail(),
            "Total project limit reached (100 projects). Upgrade to pro for unlimited projects."
        );
        let pro_monthly = project_quota(Tier::Pro, counts(50, 5000)).unwrap_err();
        assert_eq!(
            pro_monthly.detail(),
            "Monthly project limit reached (50 projects). Upgrade to team for more projects."
        );
        assert!(project_quota(Tier::Pro, counts(49, 5000)).is_ok());
        assert!(project_quota(Tier::Team, counts(10_000, 10_000)).is_ok());
    }

    #[test]
    fn plans_match_the_original_table() {
        let free = plan(Tier::Free);
        assert_eq!(free.limits.projects_monthly, Some(2));
        assert_eq!(free.limits.deployments_monthly, Some(0));
        assert!(!free.features.deploy);
        assert_eq!(plan(Tier::Pro).limits.projects_total, None);
        assert_eq!(plan(Tier::Team).price_rub, 2_490);
        for tier in Tier::ALL {
            assert_eq!(api_tier(store_tier(tier)), tier);
        }
    }
}
