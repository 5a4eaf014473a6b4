//! The password policy for new passwords (registration, password change).
//!
//! A pure function that reports every violation at once, each with a stable snake_case code for
//! clients and an English message for people. Login does not apply the policy: passwords set
//! before a rule existed must still work.
//!
//! ```
//! use samokoder_auth::policy::{check_password, PolicyViolation};
//!
//! assert!(check_password("Correct-Horse-7-Battery").is_ok());
//!
//! let violations = check_password("aaab").unwrap_err();
//! assert_eq!(
//!     violations,
//!     vec![
//!         PolicyViolation::TooShort,
//!         PolicyViolation::MissingUppercase,
//!         PolicyViolation::MissingDigit,
//!         PolicyViolation::MissingSpecial,
//!         PolicyViolation::RepeatedCharacters,
//!     ]
//! );
//! assert_eq!(violations[0].code(), "too_short");
//! ```

use std::fmt;

use samokoder_core::api::FieldError;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters a password may have.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// The characters that count as "special".
pub const SPECIAL_CHARACTERS: &str = r#"!@#$%^&*(),.?":{}|<>_-+=[];'\/`~"#;
/// How many times in a row one character may appear (three in a row is a violation).
const MAX_RUN: usize = 2;

/// One rule a password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyViolation {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    TooLong,
    /// No uppercase letter.
    MissingUppercase,
    /// No lowercase letter.
    MissingLowercase,
    /// No digit 0-9.
    MissingDigit,
    /// No character from [`SPECIAL_CHARACTERS`].
    MissingSpecial,
    /// On the list of common passwords (compared case-insensitively).
    TooCommon,
    /// Some character appears three or more times in a row.
    RepeatedCharacters,
}

impl PolicyViolation {
    /// Every violation, in the order [`check_password`] reports them.
    pub const ALL: [PolicyViolation; 8] = [
        Self::TooShort,
        Self::TooLong,
        Self::MissingUppercase,
        Self::MissingLowercase,
        Self::MissingDigit,
        Self::MissingSpecial,
        Self::TooCommon,
        Self::RepeatedCharacters,
    ];

    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::MissingUppercase => "missing_uppercase",
            Self::MissingLowercase => "missing_lowercase",
            Self::MissingDigit => "missing_digit",
            Self::MissingSpecial => "missing_special",
            Self::TooCommon => "too_common",
            Self::RepeatedCharacters => "repeated_characters",
        }
    }

    /// English message for people.
    pub fn message(self) -> &'static str {
        match self {
            Self::TooShort => "Password must be at least 8 characters long.",
            Self::TooLong => "Password must be at most 128 characters long.",
            Self::MissingUppercase => "Password must contain an uppercase letter.",
            Self::MissingLowercase => "Password must contain a lowercase letter.",
            Self::MissingDigit => "Password must contain a digit.",
            Self::MissingSpecial => {
                "Password must contain a special character such as ! @ # $ % ^ & * ( ) , . ? \" : { } | < > _ - + = [ ] ; ' \\ / ` ~."
            }
            Self::TooCommon => "Password is too common.",
            Self::RepeatedCharacters => {
                "Password must not contain the same character three times in a row."
            }
        }
    }

    /// This violation as a field error on `field` (usually `password`), for the API's 422 body.
    pub fn to_field_error(self, field: &str) -> FieldError {
        FieldError {
            field: field.to_owned(),
            code: self.code().to_owned(),
            message: self.message().to_owned(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Checks a new password against every rule and returns all violations, in the order of
/// [`PolicyViolation::ALL`].
///
/// Length counts Unicode scalar values, not bytes. Upper- and lowercase use Unicode's
/// definitions, so `É` and `ß` count as letters; digits are ASCII `0-9`.
pub fn check_password(password: &str) -> Result<(), Vec<PolicyViolation>> {
    let length = password.chars().count();
    let mut violations = Vec::new();
    if length < MIN_PASSWORD_CHARS {
        violations.push(PolicyViolation::TooShort);
    }
    if length > MAX_PASSWORD_CHARS {
        violations.push(PolicyViolation::TooLong);
    }
    if !password.chars().any(char::is_uppercase) {
        violations.push(PolicyViolation::MissingUppercase);
    }
    if !password.chars().any(char::is_lowercase) {
        violations.push(PolicyViolation::MissingLowercase);
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        violations.push(PolicyViolation::MissingDigit);
    }
    if !password.chars().any(|c| SPECIAL_CHARACTERS.contains(c)) {
        violations.push(PolicyViolation::MissingSpecial);
    }
    if is_common(password) {
        violations.push(PolicyViolation::TooCommon);
    }
    if has_long_run(password) {
        violations.push(PolicyViolation::RepeatedCharacters);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Whether the password, lowercased, is on the common-password list.
pub fn is_common(password: &str) -> bool {
    let lowered = password.to_lowercase();
    COMMON_PASSWORDS.contains(&lowered.as_str())
}

fn has_long_run(password: &str) -> bool {
    let mut previous = None;
    let mut run = 0;
    for c in password.chars() {
        if Some(c) == previous {
            run += 1;
            if run > MAX_RUN {
                return true;
            }
        } else {
            previous = Some(c);
            run = 1;
        }
    }
    false
}

/// Lowercase. The first fifteen are the original's list; then the top of the public breach
/// corpora (SplashData, NCSC, HIBP top lists), then common variants that pass every other rule
/// of this policy, which is where a list earns its keep: most entries above already fail on
/// character classes.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "123456",
    "12345678",
    "qwerty",
    "abc123",
    "password123",
    "admin",
    "letmein",
    "welcome",
    "monkey",
    "1234567890",
    "password1",
    "123456789",
    "password!",
    // The original's fifteenth entry, "Password123", is "password123" above once lowercased.
    "12345",
    "1234567",
    "111111",
    "123123",
    "000000",
    "654321",
    "666666",
    "121212",
    "iloveyou",
    "princess",
    "sunshine",
    "football",
    "baseball",
    "dragon",
    "master",
    "shadow",
    "superman",
    "batman",
    "trustno1",
    "qwerty123",
    "qwertyuiop",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjkl",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "p@ssw0rd1",
    "p@ssw0rd!",
    "p@ssw0rd123",
    "passw0rd!",
    "password1!",
    "password12!",
    "password123!",
    "password2024!",
    "password2025!",
    "password2026!",
    "qwerty123!",
    "qwerty1!",
    "admin123",
    "admin123!",
    "admin@123",
    "administrator",
    "root",
    "toor",
    "changeme",
    "changeme1!",
    "welcome1",
    "welcome1!",
    "welcome123",
    "welcome123!",
    "welcome@123",
    "letmein1!",
    "letmein123!",
    "iloveyou1!",
    "monkey123!",
    "dragon123!",
    "sunshine1!",
    "football1!",
    "summer2024!",
    "summer2025!",
    "winter2024!",
    "winter2025!",
    "spring2025!",
    "autumn2025!",
    "abc123!@#",
    "abcd1234!",
    "aa123456!",
    "qazwsx123!",
    "test1234!",
    "test@123",
    "user1234!",
    "login123!",
    "secret123!",
    "samokoder",
    "samokoder1!",
    "samokoder123!",
];

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_strong_password_passes() {
        assert_eq!(check_password("Tr1cky-Lemur-Parade"), Ok(()));
    }

    #[test]
    fn empty_password_reports_every_class_rule() {
        assert_eq!(
            check_password(""),
            Err(vec![
                PolicyViolation::TooShort,
                PolicyViolation::MissingUppercase,
                PolicyViolation::MissingLowercase,
                PolicyViolation::MissingDigit,
                PolicyViolation::MissingSpecial,
            ])
        );
    }

    #[test]
    fn each_rule_alone() {
        let cases = [
            ("Ab1!xyz", PolicyViolation::TooShort),
            ("ab1!wxyz", PolicyViolation::MissingUppercase),
            ("AB1!WXYZ", PolicyViolation::MissingLowercase),
            ("Abc!wxyz", PolicyViolation::MissingDigit),
            ("Abc1wxyz", PolicyViolation::MissingSpecial),
            ("P@ssw0rd", PolicyViolation::TooCommon),
            ("Abc1!xxxy", PolicyViolation::RepeatedCharacters),
        ];
        for (password, expected) in cases {
            assert_eq!(check_password(password), Err(vec![expected]), "{password}");
        }
        let long = format!("Ab1!{}", "xy".repeat(63));
        assert_eq!(long.chars().count(), 130);
        assert_eq!(check_password(&long), Err(vec![PolicyViolation::TooLong]));
    }

    #[test]
    fn length_bounds_count_characters_not_bytes() {
        // 8 characters, 11 bytes: long enough.
        assert_eq!(check_password("Ab1!éèê9"), Ok(()));
        // 128 characters pass, 129 do not.
        let at_max = format!("Ab1!{}", "xyz".repeat(41) + "x");
        assert_eq!(at_max.chars().count(), 128);
        assert_eq!(check_password(&at_max), Ok(()));
        let over = format!("{at_max}y");
        assert_eq!(check_password(&over), Err(vec![PolicyViolation::TooLong]));
    }

    #[test]
    fn common_list_is_case_insensitive_and_contains_the_originals() {
        for password in [
            "password",
            "123456",
            "12345678",
            "qwerty",
            "abc123",
            "password123",
            "admin",
            "letmein",
            "welcome",
            "monkey",
            "1234567890",
            "password1",
            "123456789",
            "password!",
            "Password123",
            "PASSWORD",
            "Welcome1!",
        ] {
            assert!(is_common(password), "{password}");
        }
        assert!(!is_common("Tr1cky-Lemur-Parade"));
    }

    #[test]
    fn every_special_character_counts() {
        for special in SPECIAL_CHARACTERS.chars() {
            let password = format!("Abcdef1{special}");
            assert_eq!(check_password(&password), Ok(()), "{password}");
        }
        assert_eq!(
            check_password("Abcdef1§"),
            Err(vec![PolicyViolation::MissingSpecial])
        );
    }

    #[test]
    fn runs_of_two_are_fine_three_are_not() {
        assert!(!has_long_run("aabbaa"));
        assert!(has_long_run("abbb"));
        assert!(has_long_run("ééé"));
        // Case matters: "aAa" is not a run.
        assert!(!has_long_run("aAaAaA"));
    }

    #[test]
    fn codes_are_distinct_snake_case_and_become_field_errors() {
        let mut codes: Vec<_> = PolicyViolation::ALL.iter().map(|v| v.code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), PolicyViolation::ALL.len());
        let field = PolicyViolation::TooCommon.to_field_error("password");
        assert_eq!(field.field, "password");
        assert_eq!(field.code, "too_common");
        assert_eq!(field.message, "Password is too common.");
    }

    proptest! {
        #[test]
        fn violations_are_reported_in_canonical_order_without_duplicates(password in ".{0,140}") {
            if let Err(violations) = check_password(&password) {
                let positions: Vec<_> = violations
                    .iter()
                    .map(|v| PolicyViolation::ALL.iter().position(|a| a == v).unwrap())
                    .collect();
                prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            }
        }

        #[test]
        fn policy_is_exactly_the_conjunction_of_its_rules(password in "[a-zA-Z0-9!#~§ ]{0,20}") {
            let n = password.chars().count();
            let ok = (8..=128).contains(&n)
                && password.chars().any(|c| c.is_uppercase())
                && password.chars().any(|c| c.is_lowercase())
                && password.chars().any(|c| c.is_ascii_digit())
                && password.chars().any(|c| "!#~".contains(c))
                && !is_common(&password)
                && !password.chars().collect::<Vec<_>>().windows(3).any(|w| w[0] == w[1] && w[1] == w[2]);
            prop_assert_eq!(check_password(&password).is_ok(), ok);
        }
    }
}
