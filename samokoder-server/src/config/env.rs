//! The environment layer: `SAMOKODER_A__B=v` sets the setting `a.b`.
//!
//! figment's own `Env` provider reads the process environment directly; this one takes the
//! variables as data so configuration can be tested without touching process-global state.
//! Values are parsed the way figment parses environment values (`5` is a number, `true` a bool,
//! `[a, b]` an array, anything else a string).

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// The prefix of every configuration variable.
pub const ENV_PREFIX: &str = "SAMOKODER_";

/// Variables with this prefix belong to the test suites (e.g. `SAMOKODER_TEST_REDIS_URL`).
const TEST_PREFIX: &str = "SAMOKODER_TEST_";

/// A figment provider over a fixed set of environment variables.
pub(super) struct EnvProvider {
    /// `(dotted setting path, raw value)` for every variable that names a known top-level
    /// setting. Unknown nested keys are kept so `deny_unknown_fields` reports typos in them.
    settings: Vec<(String, String)>,
}

impl EnvProvider {
    pub(super) fn new(vars: &[(String, String)], top_level: &[String]) -> Self {
        let settings = vars
            .iter()
            .filter_map(|(name, value)| {
                let path = setting_path(name)?;
                let first = path.split('.').next().unwrap_or_default();
                top_level
                    .iter()
                    .any(|k| k == first)
                    .then(|| (path, value.clone()))
            })
            .collect();
        Self { settings }
    }
}

/// `SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE` → `rate_limit.auth_per_minute`.
fn setting_path(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    if rest.is_empty() || name == super::CONFIG_FILE_VAR {
        return None;
    }
    let path = rest.to_ascii_lowercase().replace("__", ".");
    // `SAMOKODER_A____B` or a trailing `__` would make an empty segment.
    (!path.split('.').any(str::is_empty)).then_some(path)
}

/// Whether `name` looks like one of ours but names no setting.
pub(super) fn is_unknown(name: &str, top_level: &[String]) -> bool {
    if !name.starts_with(ENV_PREFIX) || name.starts_with(TEST_PREFIX) {
        return false;
    }
    if name == super::CONFIG_FILE_VAR {
        return false;
    }
    match setting_path(name) {
        Some(path) => {
            let first = path.split('.').next().unwrap_or_default();
            !top_level.iter().any(|k| k == first)
        }
        None => true,
    }
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        // Errors then name the variable to fix rather than the internal key path.
        Metadata::named("environment").interpolater(|_profile, keys| {
            format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (path, raw) in &self.settings {
            let Ok(value) = raw.parse::<Value>();
            if let Value::Dict(_, nested) = figment::util::nest(path, value) {
                merge(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Deep-merges `from` into `into`; on conflicting leaves the later variable wins.
fn merge(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => merge(existing, incoming),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names_to_paths() {
        assert_eq!(
            setting_path("SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE").as_deref(),
            Some("rate_limit.auth_per_minute")
        );
        assert_eq!(
            setting_path("SAMOKODER_DATA_DIR").as_deref(),
            Some("data_dir")
        );
        assert_eq!(setting_path("SAMOKODER_CONFIG"), None);
        assert_eq!(setting_path("SAMOKODER_A____B"), None);
        assert_eq!(setting_path("OTHER_LISTEN"), None);
    }

    #[test]
    fn recognises_unknown_variables() {
        let known = vec!["listen".to_owned(), "rate_limit".to_owned()];
        assert!(is_unknown("SAMOKODER_LISTNE", &known));
        assert!(!is_unknown("SAMOKODER_LISTEN", &known));
        assert!(
            !is_unknown("SAMOKODER_RATE_LIMIT__TYPO", &known),
            "reported by serde instead"
        );
        assert!(!is_unknown("SAMOKODER_TEST_REDIS_URL", &known));
        assert!(!is_unknown("SAMOKODER_CONFIG", &known));
        assert!(!is_unknown("PATH", &known));
    }
}
