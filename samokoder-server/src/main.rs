//! The `samokoder-server` binary: `serve` (the default), `openapi`, `config`.
//!
//! Each subcommand is one function below; `migrate` and `admin` join them with the store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use samokoder_server::config::CONFIG_FILE_VAR;
use samokoder_server::{Application, Config};

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
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Print the effective configuration (TOML, secrets redacted) and any problems with it.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Openapi => print_openapi(),
        Command::Config => print_config(cli.config),
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
