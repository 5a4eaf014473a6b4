//! Prices per model and the cost of a request, in integer micro-dollars.
//!
//! Money never touches a float: prices are parsed from their decimal text straight into
//! micro-dollars per million tokens, and a cost is one `i128` multiply-add and a ceiling division.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::Usage;

/// Micro-dollars (1 USD = 1 000 000).
pub type Micros = i64;

/// Formats micro-dollars as dollars with six decimals (`$0.012500`).
pub fn format_usd(micros: Micros) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// A price in US dollars per million tokens, held as micro-dollars per million tokens.
///
/// Deserialises from a decimal string (`"2.50"`), an integer (`3`) or a float as configuration
/// loaders produce it from environment variables (`2.5`); the float's shortest decimal text is
/// parsed, never its binary value, so `0.15` means exactly 150 000 micro-dollars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UsdPerMTok(pub Micros);

impl UsdPerMTok {
    /// Parses a decimal dollar amount such as `"2.50"`, `"$0.075"` or `"3"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_start_matches('$');
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(format!("`{text}` is not a dollar amount like 2.50"));
        }
        if frac.len() > 6 && frac[6..].chars().any(|c| c != '0') {
            return Err(format!("`{text}` has more precision than a micro-dollar"));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("`{text}` is too large"))?
        };
        let mut frac_micros = 0i64;
        for (i, c) in frac.chars().take(6).enumerate() {
            frac_micros += i64::from(c as u8 - b'0') * 10i64.pow(5 - i as u32);
        }
        whole
            .checked_mul(1_000_000)
            .and_then(|w| w.checked_add(frac_micros))
            .map(Self)
            .ok_or_else(|| format!("`{text}` is too large"))
    }

    /// From whole micro-dollars per million tokens.
    pub const fn from_micros(micros: Micros) -> Self {
        Self(micros)
    }
}

impl fmt::Display for UsdPerMTok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/Mtok", format_usd(self.0))
    }
}

impl<'de> Deserialize<'de> for UsdPerMTok {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UsdPerMTok;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dollar amount per million tokens, like \"2.50\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UsdPerMTok, E> {
                UsdPerMTok::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UsdPerMTok, E> {
                UsdPerMTok::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UsdPerMTok, E> {
                UsdPerMTok::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<UsdPerMTok, E> {
                // `Display` for f64 prints the shortest text that reads back as the same value,
                // which is the decimal the operator wrote.
                UsdPerMTok::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What a model costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: UsdPerMTok,
    /// Output tokens.
    pub output: UsdPerMTok,
    /// Input tokens read from the prompt cache; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<UsdPerMTok>,
}

impl ModelPrice {
    /// A price from dollars-per-million text, e.g. `ModelPrice::usd("2.50", "10", Some("1.25"))`.
    ///
    /// # Panics
    /// On text that is not a dollar amount; meant for literals.
    pub fn usd(input: &str, output: &str, cached_input: Option<&str>) -> Self {
        let p = |t: &str| UsdPerMTok::parse(t).unwrap_or_else(|e| panic!("price literal: {e}"));
        Self {
            input: p(input),
            output: p(output),
            cached_input: cached_input.map(p),
        }
    }

    /// The cost of `usage` in micro-dollars, rounded up to the next micro-dollar (never under-
    /// charges a budget).
    pub fn cost(&self, usage: &Usage) -> Micros {
        let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
        let uncached = usage.prompt_tokens - cached;
        let cached_price = self.cached_input.unwrap_or(self.input).0;
        let numerator = i128::from(uncached) * i128::from(self.input.0)
            + i128::from(cached) * i128::from(cached_price)
            + i128::from(usage.completion_tokens) * i128::from(self.output.0);
        let micros = (numerator + 999_999).div_euclid(1_000_000);
        Micros::try_from(micros).unwrap_or(Micros::MAX)
    }
}

#[derive(Clone, Debug, PartialEq)]
struct PriceEntry {
    provider: Option<String>,
    /// `None`: every model of `provider` (its configured default price).
    model: Option<String>,
    price: ModelPrice,
}

/// Prices by model. A name matches an entry when it is the entry's model exactly or a dated
/// snapshot of it (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`, `gpt-4-0613`,
/// `…-latest`); the longest such entry wins. Anything else is a different model: `o3-pro` is not
/// `o3`, `gpt-4o-audio-preview` is not `gpt-4o`, and has no price until one is configured.
/// Routers that name models `vendor/model` (OpenRouter) find the vendor's price too.
///
/// Entries may be tied to one provider (OpenRouter charges differently for the same model), and a
/// provider may have a default price for all its models; those win over provider-independent
/// entries.
///
/// ```
/// use samokoder_core::llm::{ModelPrice, PriceTable, Usage};
///
/// let mut prices = PriceTable::empty();
/// prices.insert(None, "gpt-4o", ModelPrice::usd("2.50", "10.00", Some("1.25")));
/// let usage = Usage { prompt_tokens: 1_000, completion_tokens: 100, ..Usage::default() };
/// // 1000 × $2.50/M + 100 × $10/M = $0.0025 + $0.001
/// assert_eq!(prices.cost("openai", "gpt-4o-2024-08-06", &usage), Some(3_500));
/// assert_eq!(prices.cost("openrouter", "openai/gpt-4o", &usage), Some(3_500));
/// assert_eq!(prices.cost("openai", "gpt-4o-audio-preview", &usage), None);
/// assert_eq!(prices.cost("openai", "unknown-model", &usage), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    entries: Vec<PriceEntry>,
}

impl PriceTable {
    /// A table with no prices.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A table with list prices of common OpenAI and Anthropic models (USD per million tokens,
    /// as published in 2025). Deployments override or extend it from configuration; a model
    /// missing here has no price, and a run on the deployment's key is refused for it.
    pub fn with_defaults() -> Self {
        let mut t = Self::empty();
        let defaults: &[(&str, &str, &str, Option<&str>)] = &[
            ("gpt-4o", "2.50", "10.00", Some("1.25")),
            ("gpt-4o-mini", "0.15", "0.60", Some("0.075")),
            ("gpt-4.1", "2.00", "8.00", Some("0.50")),
            ("gpt-4.1-mini", "0.40", "1.60", Some("0.10")),
            ("gpt-4.1-nano", "0.10", "0.40", Some("0.025")),
            ("gpt-5", "1.25", "10.00", Some("0.125")),
            ("gpt-5-mini", "0.25", "2.00", Some("0.025")),
            ("gpt-5-nano", "0.05", "0.40", Some("0.005")),
            ("o3", "2.00", "8.00", Some("0.50")),
            ("o3-pro", "20.00", "80.00", None),
            ("o3-mini", "1.10", "4.40", Some("0.55")),
            ("o4-mini", "1.10", "4.40", Some("0.275")),
            ("claude-3-5-haiku", "0.80", "4.00", Some("0.08")),
            ("claude-haiku-4-5", "1.00", "5.00", Some("0.10")),
            ("claude-3-5-sonnet", "3.00", "15.00", Some("0.30")),
            ("claude-3-7-sonnet", "3.00", "15.00", Some("0.30")),
            ("claude-sonnet-4", "3.00", "15.00", Some("0.30")),
            ("claude-sonnet-4-5", "3.00", "15.00", Some("0.30")),
            ("claude-opus-4", "15.00", "75.00", Some("1.50")),
            ("claude-opus-4-1", "15.00", "75.00", Some("1.50")),
            ("claude-opus-4-5", "5.00", "25.00", Some("0.50")),
        ];
        for (model, input, output, cached) in defaults {
            t.insert(None, model, ModelPrice::usd(input, output, *cached));
        }
        t
    }

    /// Adds or replaces the price of `model` and its dated snapshots (for `provider` only, or
    /// for every provider with `None`).
    pub fn insert(&mut self, provider: Option<&str>, model: &str, price: ModelPrice) {
        self.put(provider.map(str::to_owned), Some(model.to_owned()), price);
    }

    /// Adds or replaces the price of every model of `provider` that has no price of its own
    /// there (a self-hosted provider at `0`, a gateway with one rate).
    pub fn insert_provider_default(&mut self, provider: &str, price: ModelPrice) {
        self.put(Some(provider.to_owned()), None, price);
    }

    fn put(&mut self, provider: Option<String>, model: Option<String>, price: ModelPrice) {
        match self
            .entries
            .iter_mut()
            .find(|e| e.provider == provider && e.model == model)
        {
            Some(entry) => entry.price = price,
            None => self.entries.push(PriceEntry {
                provider,
                model,
                price,
            }),
        }
    }

    /// The price of `model` on `provider`, if known: the provider's own entries first (its
    /// named models, then its default), then the provider-independent ones; for a
    /// `vendor/model` name, the bare model's price when the full name has none.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let bare = model.rsplit_once('/').map(|(_, bare)| bare);
        self.lookup_exact(provider, model)
            .or_else(|| bare.and_then(|bare| self.lookup_exact(provider, bare)))
    }

    fn lookup_exact(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let named = |for_provider: bool| {
            self.entries
                .iter()
                .filter(|e| e.provider.is_some() == for_provider)
                .filter(|e| e.provider.as_deref().is_none_or(|p| p == provider))
                .filter_map(|e| {
                    let known = e.model.as_deref()?;
                    is_snapshot_suffix(model.strip_prefix(known)?).then_some((known.len(), e))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, e)| &e.price)
        };
        let provider_default = || {
            self.entries
                .iter()
                .find(|e| e.model.is_none() && e.provider.as_deref() == Some(provider))
                .map(|e| &e.price)
        };
        named(true)
            .or_else(provider_default)
            .or_else(|| named(false))
    }

    /// The cost of `usage` on `model`, or `None` for a model without a price.
    pub fn cost(&self, provider: &str, model: &str, usage: &Usage) -> Option<Micros> {
        self.lookup(provider, model).map(|p| p.cost(usage))
    }
}

/// Whether what follows a known model name makes it a dated snapshot of that model: nothing,
/// `-latest`, or a date (`-20250514`, `-2024-08-06`, `-0613`, `@20240620`).
fn is_snapshot_suffix(rest: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if rest.is_empty() || rest == "-latest" {
        return true;
    }
    if let Some(date) = rest.strip_prefix('@') {
        return digits(date, 8);
    }
    let Some(date) = rest.strip_prefix('-') else {
        return false;
    };
    if digits(date, 8) || digits(date, 4) {
        return true;
    }
    let parts: Vec<&str> = date.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dollar_text_exactly() {
        assert_eq!(UsdPerMTok::parse("2.50").unwrap().0, 2_500_000);
        assert_eq!(UsdPerMTok::parse("$0.075").unwrap().0, 75_000);
        assert_eq!(UsdPerMTok::parse("3").unwrap().0, 3_000_000);
        assert_eq!(UsdPerMTok::parse(".5").unwrap().0, 500_000);
        assert_eq!(UsdPerMTok::parse("0.0000010").unwrap().0, 1);
        assert!(UsdPerMTok::parse("0.0000001").is_err());
        assert!(UsdPerMTok::parse("abc").is_err());
        assert!(UsdPerMTok::parse("-1").is_err());
        assert!(UsdPerMTok::parse("").is_err());
    }

    #[test]
    fn deserialises_floats_through_their_decimal_text() {
        let p: UsdPerMTok = serde_json::from_str("0.15").unwrap();
        assert_eq!(p.0, 150_000);
        let p: UsdPerMTok = serde_json::from_str("\"1.10\"").unwrap();
        assert_eq!(p.0, 1_100_000);
        let p: UsdPerMTok = serde_json::from_str("15").unwrap();
        assert_eq!(p.0, 15_000_000);
    }

    #[test]
    fn cost_charges_cached_tokens_at_the_cached_price_and_rounds_up() {
        let price = ModelPrice::usd("3", "15", Some("0.30"));
        let usage = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 1_000,
            cached_prompt_tokens: 8_000,
            estimated: false,
        };
        // 2000 × 3 + 8000 × 0.30 + 1000 × 15 = 6000 + 2400 + 15000 micro-dollars
        assert_eq!(price.cost(&usage), 23_400);
        // One token at $0.15/M is 0.15 micro-dollars: rounds up to 1.
        let one = Usage {
            prompt_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(ModelPrice::usd("0.15", "0.60", None).cost(&one), 1);
        assert_eq!(
            ModelPrice::usd("0.15", "0.60", None).cost(&Usage::default()),
            0
        );
    }

    #[test]
    fn longest_prefix_and_provider_specific_entries_win() {
        let mut t = PriceTable::with_defaults();
        let usage = Usage {
            prompt_tokens: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(
            t.cost("openai", "gpt-4o-mini-2024-07-18", &usage),
            Some(150_000)
        );
        assert_eq!(
            t.cost("openai", "gpt-4o-2024-08-06", &usage),
            Some(2_500_000)
        );
        t.insert(
            Some("openrouter"),
            "gpt-4o",
            ModelPrice::usd("2.75", "11", None),
        );
        assert_eq!(t.cost("openrouter", "gpt-4o", &usage), Some(2_750_000));
        assert_eq!(t.cost("openai", "gpt-4o", &usage), Some(2_500_000));
    }

    #[test]
    fn only_exact_names_and_their_dated_snapshots_match() {
        let t = PriceTable::with_defaults();
        let input = |model: &str| t.lookup("openai", model).map(|p| p.input.0);
        for (model, price) in [
            ("o3", Some(2_000_000)),
            ("o3-2025-04-16", Some(2_000_000)),
            ("o3-pro", Some(20_000_000)),
            ("o3-pro-2025-06-10", Some(20_000_000)),
            ("o3-deep-research", None),
            ("gpt-4o-latest", Some(2_500_000)),
            ("gpt-4o-audio-preview", None),
            ("gpt-4o-2024-08", None),
            ("gpt-4o-0513", Some(2_500_000)),
            ("gpt-4o-20240513", Some(2_500_000)),
            ("gpt-4o-202405130", None),
            ("gpt-4o-2024-8-06", None),
            ("gpt-4o-", None),
            ("gpt-4o@20240513", Some(2_500_000)),
            ("gpt-4o@2024", None),
            ("gpt-4o-mini-2024-07-18", Some(150_000)),
            ("gpt-4", None),
            ("claude-opus-4-1-20250805", Some(15_000_000)),
            ("claude-opus-4-6", None),
            ("claude-sonnet-4-20250514", Some(3_000_000)),
            ("gpt-5.1", None),
        ] {
            assert_eq!(input(model), price, "{model}");
        }
        // A router's `vendor/model` names find the vendor's price; a bare unknown name does not.
        assert_eq!(
            t.lookup("openrouter", "anthropic/claude-sonnet-4")
                .map(|p| p.output.0),
            Some(15_000_000)
        );
        assert_eq!(t.lookup("openrouter", "meta/llama-4"), None);
    }

    #[test]
    fn a_provider_default_covers_its_models_without_a_price_of_their_own() {
        let mut t = PriceTable::with_defaults();
        t.insert_provider_default("local", ModelPrice::usd("0", "0", None));
        t.insert(Some("local"), "big", ModelPrice::usd("1", "1", None));
        assert_eq!(t.lookup("local", "qwen2.5-coder:7b").unwrap().input.0, 0);
        // The provider's default beats the provider-independent list price...
        assert_eq!(t.lookup("local", "gpt-4o").unwrap().input.0, 0);
        // ...and its named models beat its default.
        assert_eq!(
            t.lookup("local", "big-20250101").unwrap().input.0,
            1_000_000
        );
        assert_eq!(t.lookup("openai", "qwen2.5-coder:7b"), None);
        // Replacing an entry keeps one.
        t.insert_provider_default("local", ModelPrice::usd("2", "2", None));
        assert_eq!(t.lookup("local", "anything").unwrap().input.0, 2_000_000);
    }

    #[test]
    fn formats_micros_as_dollars() {
        assert_eq!(format_usd(3_500), "$0.003500");
        assert_eq!(format_usd(12_000_001), "$12.000001");
        assert_eq!(format_usd(-5), "-$0.000005");
    }
}
