//! Small shapes several resources share.

use serde::{Deserialize, Deserializer, Serialize};

/// A user's subscription tier; it decides the quotas (`GET /v1/user/tier` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The free tier.
    #[default]
    Free,
    /// The starter tier.
    Starter,
    /// The pro tier.
    Pro,
    /// The team tier.
    Team,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Starter, Tier::Pro, Tier::Team];

    /// The wire spelling (`free`, `starter`, `pro`, `team`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Team => "team",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|tier| tier.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown tier `{s}`; expected free, starter, pro or team"))
    }
}

/// `{"message": ...}`: the answer of operations that only confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageResponse {
    /// What was done, for people.
    pub message: String,
}

impl MessageResponse {
    /// A message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// `{"success": true, "message": ...}`: the original's confirmation shape, kept where its
/// clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessResponse {
    /// Always `true` (failures are error responses).
    pub success: bool,
    /// What was done, for people.
    pub message: String,
}

impl SuccessResponse {
    /// A successful outcome.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
        }
    }
}

/// Deserializes a field that distinguishes "absent" (`None`, via `#[serde(default)]`) from an
/// explicit `null` (`Some(None)`) and a value (`Some(Some(v))`): what partial updates need.
pub(crate) fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_and_print() {
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>().unwrap(), tier);
            assert_eq!(
                serde_json::to_value(tier).unwrap(),
                serde_json::json!(tier.as_str())
            );
        }
        assert_eq!(" PRO ".parse::<Tier>().unwrap(), Tier::Pro);
        assert!("enterprise".parse::<Tier>().is_err());
    }
}
