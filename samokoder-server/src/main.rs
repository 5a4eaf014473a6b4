//! The `samokoder-server` binary: `serve` (the default), `migrate`, `admin`, `openapi`,
//! `config`. Each subcommand is one function below.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use samokoder_core::api::Tier;
use samokoder_server::config::CONFIG_FILE_VAR;
use samokoder_server::{AppState, Application, Config};

/// Samokoder's reference server: the HTTP API that turns app descriptions into codebases.
///
/// Configuration comes from defaults, then the TOML file named by --config / SAMOKODER_CONFIG,
/// then SAMOKODER_* environment variables (`__` between levels, e.g.
/// SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE=5). `samokoder-server config` shows the result.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file (unknown keys are an error).
    #[arg(long, global = true, env = CONFIG_FILE_VAR, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default). Stops gracefully on SIGINT or SIGTERM.
    Serve,
    /// Drive generation runs from the shared database, without serving HTTP.
    ///
    /// Start as many worker processes as you like on machines that reach the same PostgreSQL
    /// database: each claims runs from the queue with a lease; a worker that dies loses its
    /// lease and another one resumes its run from the last checkpoint.
    Worker {
        /// Runs driven at once (default: SAMOKODER_WORKERS__CONCURRENCY, at least 1).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Apply pending database migrations and exit.
    ///
    /// Migrates SAMOKODER_DATABASE_URL, or the SQLite file in the data directory. Safe to run
    /// again and from several machines at once.
    Migrate,
    /// Manage accounts: create users, change tiers, grant admin rights.
    ///
    /// Each change is written to the audit log (client `cli`).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Print the effective configuration (TOML, secrets redacted) and any problems with it.
    Config,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an account (the password is read from standard input).
    ///
    /// The password is the first line of standard input, so it never shows in the process list
    /// or the shell history:
    /// `printf '%s' "$PASSWORD" | samokoder-server admin create-user --email a@example.com`.
    /// The registration rules apply (e-mail syntax, password policy).
    CreateUser {
        /// The e-mail address (normalised to lower case).
        #[arg(long)]
        email: String,
        /// The tier: free, starter, pro or team.
        #[arg(long, default_value = "free")]
        tier: Tier,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Change the tier of an account.
    SetTier {
        /// The account's e-mail address.
        email: String,
        /// The new tier: free, starter, pro or team.
        tier: Tier,
    },
    /// Grant admin rights to an account (or take them away with --revoke).
    GrantAdmin {
        /// The account's e-mail address.
        email: String,
        /// Remove the rights instead.
        #[arg(long)]
        revoke: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Worker { concurrency } => worker(cli.config, concurrency),
        Command::Migrate => migrate(cli.config),
        Command::Admin { command } => admin(cli.config, command),
        Command::Openapi => print_openapi(),
        Command::Config => print_config(cli.config),
    }
}

/// Loads and validates the configuration for a one-off command; `None` after reporting why not.
fn command_config(config_file: Option<PathBuf>) -> Option<Config> {
    let config = match Config::load_from(environment(config_file)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("samokoder-server: {error}");
            return None;
        }
    };
    match config.validate() {
        Ok(warnings) => {
            for warning in warnings {
                eprintln!("samokoder-server: warning: {warning}");
            }
            Some(config)
        }
        Err(error) => {
            eprintln!("samokoder-server: {error}");
            None
        }
    }
}

/// Runs `work` on a fresh runtime; `ExitCode::FAILURE` when the runtime cannot start.
fn run_async(work: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("samokoder-server: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config_file: Option<PathBuf>) -> ExitCode {
    let Some(config) = command_config(config_file) else {
        return ExitCode::FAILURE;
    };
    run_async(async move {
        let url = config.database_url();
        let store = match samokoder_server::database::open_store(&config).await {
            Ok(store) => store,
            Err(error) => {
                eprintln!("samokoder-server: cannot open the database {url}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let outcome = store.migrate().await;
        store.close().await;
        match outcome {
            Ok(report) if report.applied.is_empty() => write_line(&format!(
                "{url}: schema is current (version {})",
                report.current_version
            )),
            Ok(report) => write_line(&format!(
                "{url}: applied migrations {:?}; schema version {}",
                report.applied, report.current_version
            )),
            Err(error) => {
                eprintln!("samokoder-server: migrating {url} failed: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn admin(config_file: Option<PathBuf>, command: AdminCommand) -> ExitCode {
    let Some(config) = command_config(config_file) else {
        return ExitCode::FAILURE;
    };
    // Read the password before anything else, so a missing one fails fast.
    let password = match &command {
        AdminCommand::CreateUser { .. } => match read_password() {
            Ok(password) => Some(password),
            Err(message) => {
                eprintln!("samokoder-server: {message}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    run_async(async move {
        let store = match samokoder_server::database::open_store(&config).await {
            Ok(store) => store,
            Err(error) => {
                eprintln!(
                    "samokoder-server: cannot open the database {}: {error}",
                    config.database_url()
                );
                return ExitCode::FAILURE;
            }
        };
        if config.database.migrate_on_start
            && let Err(error) = store.migrate().await
        {
            eprintln!("samokoder-server: migrating the database failed: {error}");
            return ExitCode::FAILURE;
        }
        let outcome = match command {
            AdminCommand::CreateUser { email, tier, admin } => {
                match samokoder_server::security::password_hasher(&config) {
                    Ok(hasher) => {
                        let password = password.unwrap_or_default();
                        samokoder_server::admin::create_user(
                            &store, &hasher, &email, &password, tier, admin,
                        )
                        .await
                        .map(|account| format!("created {account}"))
                    }
                    Err(error) => Err(samokoder_server::admin::AdminError::Hashing(error)),
                }
            }
            AdminCommand::SetTier { email, tier } => {
                samokoder_server::admin::set_tier(&store, &email, tier)
                    .await
                    .map(|account| format!("updated {account}"))
            }
            AdminCommand::GrantAdmin { email, revoke } => {
                samokoder_server::admin::set_admin(&store, &email, !revoke)
                    .await
                    .map(|account| format!("updated {account}"))
            }
        };
        store.close().await;
        match outcome {
            Ok(line) => write_line(&line),
            Err(error) => {
                eprintln!("samokoder-server: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The first line of standard input, without its line ending.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(
            "no password on standard input (pipe it in: printf '%s' \"$PASSWORD\" | samokoder-server admin create-user ...)"
                .to_owned(),
        );
    }
    Ok(password)
}

/// Writes one line to standard output.
fn write_line(line: &str) -> ExitCode {
    if write_stdout(&format!("{line}\n")) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The process environment, with `--config` standing in for `SAMOKODER_CONFIG`.
fn environment(config_file: Option<PathBuf>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name != CONFIG_FILE_VAR)
        .collect();
    if let Some(path) = config_file {
        vars.push((CONFIG_FILE_VAR.to_owned(), path.display().to_string()));
    }
    vars
}

fn serve(config_file: Option<PathBuf>) -> ExitCode {
    let vars = environment(config_file);
    let config = match Config::load_from(vars.clone()) {
        Ok(config) => config,
        Err(error) => {
            // Logging is configured by this very configuration, so report directly.
            eprintln!("samokoder-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = samokoder_server::observability::logging::init(&config) {
        eprintln!("samokoder-server: {error}");
        return ExitCode::FAILURE;
    }
    for name in Config::unknown_env_vars(vars) {
        tracing::warn!(variable = %name, "ignoring an environment variable that names no setting");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(error) => {
                tracing::error!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn worker(config_file: Option<PathBuf>, concurrency: Option<usize>) -> ExitCode {
    let vars = environment(config_file);
    let config = match Config::load_from(vars) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("samokoder-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = samokoder_server::observability::logging::init(&config) {
        eprintln!("samokoder-server: {error}");
        return ExitCode::FAILURE;
    }
    match config.validate() {
        Ok(warnings) => {
            for warning in warnings {
                tracing::warn!(setting = %warning.setting, "configuration: {}", warning.message);
            }
        }
        Err(error) => {
            tracing::error!("cannot start: {error}");
            return ExitCode::FAILURE;
        }
    }
    let concurrency = concurrency.unwrap_or(config.workers.concurrency).max(1);
    run_async(async move {
        let secrets = match config.resolve_secrets() {
            Ok((secrets, _)) => secrets,
            Err(error) => {
                tracing::error!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        let state = match AppState::builder(config, secrets).build().await {
            Ok(state) => state,
            Err(error) => {
                tracing::error!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        samokoder_server::work_until_stopped(state.clone(), concurrency).await;
        state.store().close().await;
        ExitCode::SUCCESS
    })
}

fn print_openapi() -> ExitCode {
    let json = samokoder_server::openapi::to_json(&samokoder_server::openapi());
    if write_stdout(&json) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_config(config_file: Option<PathBuf>) -> ExitCode {
    let vars = environment(config_file);
    let config = match Config::load_from(vars.clone()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("samokoder-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut text = config.to_redacted_toml();
    text.push_str(&format!(
        "\n# effective: database = {}, cors origins = {:?}, log format = {}\n",
        config.database_url(),
        config.cors_origins(),
        config.log_format()
    ));
    if config.secrets.jwt_keys.is_empty() || config.secrets.secret_box_keys.is_empty() {
        text.push_str(&format!(
            "# missing keys come from {} outside production\n",
            config.dev_secrets_path().display()
        ));
    }
    for name in Config::unknown_env_vars(vars) {
        text.push_str(&format!("# ignored: {name} names no setting\n"));
    }
    let status = match config.validate() {
        Ok(warnings) => {
            for warning in warnings {
                text.push_str(&format!("# warning: {warning}\n"));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("samokoder-server: {error}");
            ExitCode::FAILURE
        }
    };
    if write_stdout(&text) {
        status
    } else {
        ExitCode::FAILURE
    }
}

/// Writes `text` to standard output; `false` (after saying why) when that fails.
fn write_stdout(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => true,
        Err(error) => {
            eprintln!("samokoder-server: cannot write to standard output: {error}");
            false
        }
    }
}
