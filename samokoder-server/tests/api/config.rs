//! Configuration: layering, strictness, secrets in development and production.

use std::fs;

use samokoder_server::config::{
    Config, ConfigError, DevSecretsOutcome, Environment, KeyedSecret, LogFormat,
};

/// `(name, value)` pairs as the process environment would give them.
fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A strong JWT key (64 random-looking characters).
const STRONG_JWT: &str = "q8Zx0VbN3k_TyW7pRm2LcJ4hFa9sDe1GuKo5YiXtBnQvMwPzAr6Sj-Hd8Ec7Uf0y";
/// A strong secret-box key (base64 of 32 distinct bytes).
const STRONG_BOX: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn defaults_need_no_configuration() {
    let config = Config::load_from(env(&[])).unwrap();
    assert_eq!(config.env, Environment::Development);
    assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(config.data_dir, std::path::PathBuf::from("./.samokoder"));
    assert_eq!(
        config.database_url().expose(),
        "sqlite://./.samokoder/samokoder.db?mode=rwc"
    );
    assert!(config.redis_url.is_none());
    assert_eq!(config.limits.auth_body_bytes, 16 * 1024);
    assert_eq!(config.limits.body_bytes, 1024 * 1024);
    assert_eq!(config.log_format(), LogFormat::Compact);
    assert!(config.validate().unwrap().is_empty());
}

#[test]
fn environment_overrides_file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("samokoder.toml");
    fs::write(
        &file,
        r#"
listen = "0.0.0.0:9000"
env = "production"
trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]

[rate_limit]
auth_per_minute = 7

[log]
filter = "debug"

[[secrets.jwt_keys]]
kid = "2026-02"
secret = "file-value-not-used-by-this-test-0123456789"
"#,
    )
    .unwrap();
    let config = Config::load_from(env(&[
        ("SAMOKODER_CONFIG", file.to_str().unwrap()),
        ("SAMOKODER_LISTEN", "127.0.0.1:9100"),
        ("SAMOKODER_ENV", "test"),
        ("SAMOKODER_RATE_LIMIT__GENERAL_PER_MINUTE", "55"),
        (
            "SAMOKODER_CORS__ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        ),
        ("SAMOKODER_REDIS_URL", "redis://:pw@127.0.0.1:6379/2"),
        ("UNRELATED", "x"),
    ]))
    .unwrap();
    // env > file
    assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(config.env, Environment::Test);
    // file > defaults
    assert_eq!(config.rate_limit.auth_per_minute, 7);
    assert_eq!(config.log.filter, "debug");
    assert_eq!(config.trusted_proxies.len(), 2);
    assert_eq!(config.secrets.jwt_keys[0].kid, "2026-02");
    // env alone
    assert_eq!(config.rate_limit.general_per_minute, 55);
    assert_eq!(
        config.cors_origins(),
        vec!["https://a.example", "https://b.example"]
    );
    assert_eq!(
        config.redis_url.as_ref().unwrap().expose(),
        "redis://:pw@127.0.0.1:6379/2"
    );
    // defaults
    assert_eq!(config.limits.request_timeout_secs, 30);
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    fs::write(&file, "[rate_limit]\nauth_per_minut = 5\n").unwrap();
    let err = Config::load_from(env(&[("SAMOKODER_CONFIG", file.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth_per_minut"), "{err}");

    fs::write(&file, "listne = \"0.0.0.0:1\"\n").unwrap();
    let err = Config::load_from(env(&[("SAMOKODER_CONFIG", file.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listne"), "{err}");
}

#[test]
fn a_missing_file_is_an_error() {
    let err =
        Config::load_from(env(&[("SAMOKODER_CONFIG", "/nonexistent/samokoder.toml")])).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile { .. }), "{err}");
}

#[test]
fn environment_typos_are_reported() {
    // A nested typo is an error naming the variable.
    let err = Config::load_from(env(&[("SAMOKODER_RATE_LIMIT__AUTH_PR_MINUTE", "5")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth_pr_minute"), "{err}");
    // A top-level unknown name is ignored but listed, as are wrong values.
    let vars = env(&[
        ("SAMOKODER_LISTNE", "x"),
        ("SAMOKODER_TEST_REDIS_URL", "redis://x"),
        ("SAMOKODER_LISTEN", "127.0.0.1:1"),
    ]);
    assert!(Config::load_from(vars.clone()).is_ok());
    assert_eq!(Config::unknown_env_vars(vars), vec!["SAMOKODER_LISTNE"]);
    let err = Config::load_from(env(&[("SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE", "many")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE"),
        "{err}"
    );
}

#[test]
fn keys_come_as_a_compact_list_in_the_environment() {
    let config = Config::load_from(env(&[
        (
            "SAMOKODER_SECRETS__JWT_KEYS",
            &format!("new:{STRONG_JWT}, old:{STRONG_JWT}x"),
        ),
        (
            "SAMOKODER_SECRETS__SECRET_BOX_KEYS",
            &format!("b1:{STRONG_BOX}"),
        ),
    ]))
    .unwrap();
    let kids: Vec<_> = config
        .secrets
        .jwt_keys
        .iter()
        .map(|k| k.kid.as_str())
        .collect();
    assert_eq!(kids, ["new", "old"]);
    assert_eq!(config.secrets.jwt_keys[0].secret.expose(), STRONG_JWT);
    assert!(
        config.secrets.secret_box_keys[0]
            .secret_box_bytes()
            .is_some()
    );

    let err = Config::load_from(env(&[("SAMOKODER_SECRETS__JWT_KEYS", "hunter2-no-kid")]))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn development_secrets_are_generated_once_privately_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };

    let (first, outcome) = config.resolve_secrets().unwrap();
    let path = config.dev_secrets_path();
    assert_eq!(outcome, DevSecretsOutcome::Generated { path: path.clone() });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "secrets file mode");
        let dir_mode = fs::metadata(&config.data_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "data dir mode");
    }
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(&config.data_dir).unwrap().count(), 1);

    let (second, outcome) = config.resolve_secrets().unwrap();
    assert_eq!(
        outcome,
        DevSecretsOutcome::Loaded {
            path: path.clone(),
            permissions_tightened: false
        }
    );
    assert_eq!(second.jwt_keys(), first.jwt_keys());
    assert_eq!(second.secret_box_keys(), first.secret_box_keys());
    assert!(first.secret_box_keys()[0].secret_box_bytes().is_some());
    assert!(first.jwt_signing_key().secret.expose().len() >= 32);

    // Configured keys win over the file.
    config.secrets.jwt_keys = vec![KeyedSecret::new("mine", STRONG_JWT)];
    let (mixed, _) = config.resolve_secrets().unwrap();
    assert_eq!(mixed.jwt_signing_key().kid, "mine");
    assert_eq!(mixed.secret_box_keys(), first.secret_box_keys());
}

#[cfg(unix)]
#[test]
fn loose_permissions_on_the_secrets_file_are_tightened() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.resolve_secrets().unwrap();
    let path = config.dev_secrets_path();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let (_, outcome) = config.resolve_secrets().unwrap();
    assert!(matches!(
        outcome,
        DevSecretsOutcome::Loaded {
            permissions_tightened: true,
            ..
        }
    ));
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn production_refuses_missing_secrets_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        env: Environment::Production,
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let err = config.validate().unwrap_err().to_string();
    for name in [
        "secrets.jwt_keys",
        "SAMOKODER_SECRETS__JWT_KEYS",
        "secrets.secret_box_keys",
        "SAMOKODER_SECRETS__SECRET_BOX_KEYS",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    // And never generates them.
    assert!(config.resolve_secrets().is_err());
    assert!(!config.dev_secrets_path().exists());
}

#[test]
fn production_refuses_weak_secrets_without_printing_them() {
    let weak = [
        ("placeholder", "CHANGE_ME_GENERATE_RANDOM_KEY_64_CHARS_MIN"),
        ("short", "tooShort-9f8e7d"),
        ("example", "your-secret-key-here-please-change-it-now-1234"),
        ("repeated", "abababababababababababababababababababab"),
    ];
    let mut config = Config {
        env: Environment::Production,
        ..Config::default()
    };
    config.secrets.jwt_keys = weak
        .iter()
        .map(|(kid, value)| KeyedSecret::new(*kid, *value))
        .collect();
    config.secrets.secret_box_keys = vec![
        KeyedSecret::new("zeros", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        KeyedSecret::new("not-base64", "not base64 at all: hunter2"),
    ];
    let err = config.validate().unwrap_err().to_string();
    for (kid, value) in weak {
        assert!(
            err.contains(&format!("secrets.jwt_keys[kid={kid}]")),
            "{kid}: {err}"
        );
        assert!(!err.contains(value), "printed a secret: {err}");
    }
    assert!(err.contains("secrets.secret_box_keys[kid=zeros]"), "{err}");
    assert!(
        err.contains("secrets.secret_box_keys[kid=not-base64]"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // Outside production the same keys only warn (except the undecodable one, which is an error
    // everywhere).
    config.env = Environment::Development;
    config.secrets.secret_box_keys.pop();
    let warnings = config.validate().unwrap();
    assert_eq!(warnings.len(), 5, "{warnings:?}");
}

#[test]
fn production_accepts_strong_independent_secrets() {
    let mut config = Config {
        env: Environment::Production,
        ..Config::default()
    };
    config.secrets.jwt_keys = vec![KeyedSecret::new("2026-01", STRONG_JWT)];
    config.secrets.secret_box_keys = vec![KeyedSecret::new("2026-01", STRONG_BOX)];
    // Without a preview origin, previews are reachable on the server's machine only; without a
    // scrape token, /metrics is closed: warnings in production.
    let warnings = config.validate().unwrap();
    let mut settings: Vec<&str> = warnings.iter().map(|w| w.setting.as_str()).collect();
    settings.sort_unstable();
    assert_eq!(
        settings,
        ["metrics.token", "preview.origin"],
        "{warnings:?}"
    );
    config.preview.origin = Some("https://{id}.preview.example.test".into());
    config.metrics.token = Some(STRONG_JWT.into());
    assert!(config.validate().unwrap().is_empty());
    assert_eq!(config.log_format(), LogFormat::Json);
    assert!(config.cors_origins().is_empty());

    config.secrets.secret_box_keys = vec![KeyedSecret::new("reused", STRONG_JWT)];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("secret_box_keys[kid=reused]"), "{err}");
}

#[test]
fn the_scrape_token_must_be_strong_in_production_and_never_empty() {
    let mut config = Config {
        env: Environment::Production,
        ..Config::default()
    };
    config.secrets.jwt_keys = vec![KeyedSecret::new("2026-01", STRONG_JWT)];
    config.secrets.secret_box_keys = vec![KeyedSecret::new("2026-01", STRONG_BOX)];
    config.preview.origin = Some("https://{id}.preview.example.test".into());
    for weak in ["metrics-token", "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME"] {
        config.metrics.token = Some(weak.into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("metrics.token"), "{err}");
        assert!(err.contains("SAMOKODER_METRICS__TOKEN"), "{err}");
        assert!(!err.contains(weak), "printed the token: {err}");
    }
    // Outside production a short token only warns; an empty one can never be presented.
    config.env = Environment::Development;
    let warnings = config.validate().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].setting, "metrics.token");
    config.metrics.token = Some(" ".into());
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("metrics.token"), "{err}");
}

#[test]
fn wildcard_and_malformed_origins_are_refused() {
    for origin in [
        "*",
        "https://app.example.com/",
        "app.example.com",
        "https://*.example.com",
    ] {
        let mut config = Config::default();
        config.cors.allowed_origins = Some(vec![origin.to_owned()]);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("cors.allowed_origins"), "{origin}: {err}");
    }
}

#[test]
fn printing_never_shows_secrets() {
    let mut config = Config::default();
    config.secrets.jwt_keys = vec![KeyedSecret::new("k", STRONG_JWT)];
    config.secrets.secret_box_keys = vec![KeyedSecret::new("k", STRONG_BOX)];
    config.metrics.token = Some("scrape-token-hunter3".into());
    config.database_url = Some(samokoder_server::config::ConnectionUrl::new(
        "postgres://app:db-hunter2@db/samokoder",
    ));
    for shown in [format!("{config:?}"), config.to_redacted_toml()] {
        for secret in [STRONG_JWT, STRONG_BOX, "db-hunter2", "scrape-token-hunter3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
    }
    // The printed form is valid configuration syntax apart from the redactions.
    let toml = config.to_redacted_toml();
    assert!(toml.contains("[rate_limit]"), "{toml}");
}

#[test]
fn the_example_file_documents_the_real_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/samokoder.example.toml");
    let from_file = Config::load_from(env(&[("SAMOKODER_CONFIG", path)])).unwrap();
    assert_eq!(
        from_file.to_redacted_toml(),
        Config::default().to_redacted_toml(),
        "samokoder.example.toml and Config::default() disagree"
    );
}
