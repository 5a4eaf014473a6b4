//! `samokoder`: the command-line tool of the Samokoder API, built on `samokoder-client`.

mod config;
mod output;
mod run;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand};
use futures::TryStreamExt;
use samokoder_client::api::files::StateQuery;
use samokoder_client::api::keys::ApiKeyCreateRequest;
use samokoder_client::api::preview::{PreviewInfo, PreviewState};
use samokoder_client::api::projects::{ProjectCreateRequest, ProjectListQuery};
use samokoder_client::api::runs::{RunListQuery, RunResumeRequest};
use samokoder_client::{Client, Error};
use uuid::Uuid;

use crate::config::{ConfigFile, DEFAULT_SERVER, SavedSession};
use crate::output::Output;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the server refused the request or could not be reached (its detail and code are printed),
     or the previewed app exited instead of serving
  2  wrong usage
  3  not logged in, or the session ended: run `samokoder login`
  4  the project, run or key does not exist
  5  the run ended without completing (failed, cancelled, out of budget)";

/// Turn a plain-language description into a working, tested codebase, on a Samokoder server.
#[derive(Debug, Parser)]
#[command(name = "samokoder", version, after_help = EXIT_CODES)]
struct Cli {
    /// The server's URL [default: the configuration file's `server`, else http://127.0.0.1:8000].
    #[arg(long, global = true, env = "SAMOKODER_SERVER")]
    server: Option<String>,
    /// The configuration file (server URL and saved login)
    /// [default: $XDG_CONFIG_HOME/samokoder/config.toml or ~/.config/samokoder/config.toml].
    #[arg(long, global = true, env = "SAMOKODER_CLI_CONFIG")]
    config: Option<PathBuf>,
    /// Machine-readable output: JSON on standard output (one document per line for streams),
    /// errors as JSON on standard error, no progress display.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in and save the session in the configuration file (mode 0600).
    Login(Credentials),
    /// End the saved session on the server and forget it.
    Logout,
    /// Create an account and save its session.
    Register(Credentials),
    /// Show the logged-in user.
    Whoami,
    /// List, create or delete projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Add, list or delete your own LLM provider keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Generate an app from a description, showing progress and asking you the run's
    /// questions.
    Run(run::RunArgs),
    /// List, cancel or resume a project's runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Download a project's files as a zip.
    Export(ExportArgs),
    /// Run a project's app in the server's sandbox and open it in your browser.
    #[command(subcommand)]
    Preview(PreviewCommand),
}

#[derive(Debug, Subcommand)]
enum PreviewCommand {
    /// Start (or restart) the app of the project's latest state.
    Start {
        /// The project's id.
        project: Uuid,
    },
    /// Whether it runs, where, and its last output lines.
    Status {
        /// The project's id.
        project: Uuid,
    },
    /// Print a link that lets your browser into the running preview once (within a minute),
    /// starting it first unless it runs.
    Open {
        /// The project's id.
        project: Uuid,
    },
    /// Stop it.
    Stop {
        /// The project's id.
        project: Uuid,
    },
}

#[derive(Debug, Args)]
struct Credentials {
    /// The e-mail address [default: asked for].
    #[arg(long, env = "SAMOKODER_EMAIL")]
    email: Option<String>,
    /// Read the password from the first line of standard input instead of asking for it
    /// (for scripts; a password on the command line would show in the process list).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// List your projects, newest first (every page).
    List {
        /// Only projects whose name contains this text.
        #[arg(long)]
        query: Option<String>,
        /// Include archived projects.
        #[arg(long)]
        archived: bool,
    },
    /// Create a project.
    Create {
        /// Its name (1 to 100 characters).
        name: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a project and everything generated in it.
    Delete {
        /// The project's id.
        project: Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add (or replace) your key for a provider, read from standard input or asked for.
    Add {
        /// The provider, e.g. openai, anthropic, groq, openrouter.
        provider: String,
        /// Read the key from the first line of standard input instead of asking for it.
        #[arg(long)]
        key_stdin: bool,
        /// A label to tell keys apart.
        #[arg(long)]
        label: Option<String>,
        /// The model to prefer with this provider.
        #[arg(long)]
        model: Option<String>,
        /// A different API base URL (only hosts the server allows).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// List your keys (masked).
    List,
    /// Delete your key for a provider.
    Delete {
        /// The provider.
        provider: String,
    },
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List a project's runs, newest first.
    List {
        /// The project's id.
        project: Uuid,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Cancel a run.
    Cancel {
        /// The project's id.
        project: Uuid,
        /// The run's id.
        run: Uuid,
    },
    /// Continue a run that ran out of budget, with raised limits, and follow it.
    Resume {
        /// The project's id.
        project: Uuid,
        /// The run's id.
        run: Uuid,
        #[command(flatten)]
        budget: run::BudgetArgs,
        /// Answer every question of the resumed run with its default, without asking.
        #[arg(long)]
        auto: bool,
    },
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The project's id.
    project: Uuid,
    /// Where to write the zip [default: project-<id>.zip].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Export this state of the project's history instead of the latest.
    #[arg(long)]
    state: Option<Uuid>,
}

/// A failure of a command, with the exit status it maps to.
pub(crate) struct Failure {
    /// The exit status (see `EXIT_CODES`).
    pub(crate) status: u8,
    /// What to report.
    pub(crate) error: FailureKind,
}

/// What a failure reports.
pub(crate) enum FailureKind {
    /// The client's error: the server's answer, or why there was none.
    Client(Error),
    /// A problem of the CLI itself (usage, configuration, terminal).
    Message(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = if error.is_unauthorized() || matches!(error, Error::NotLoggedIn) {
            3
        } else if error.is_not_found() {
            4
        } else {
            1
        };
        Self {
            status,
            error: FailureKind::Client(error),
        }
    }
}

impl Failure {
    pub(crate) fn message(status: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            error: FailureKind::Message(message.into()),
        }
    }
}

/// What every command works with.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) out: Output,
    pub(crate) server: String,
    config_path: PathBuf,
    config: Arc<Mutex<ConfigFile>>,
}

impl Context {
    /// Saves the configuration now (after a login or logout).
    fn save(&self) -> Result<(), Failure> {
        let config = self.config.lock().unwrap_or_else(|p| p.into_inner());
        config
            .save(&self.config_path)
            .map_err(|e| Failure::message(1, e))
    }

    /// Fails with exit status 3 unless a session is saved.
    fn require_session(&self) -> Result<(), Failure> {
        if self.client.session().is_none() {
            return Err(Failure::message(
                3,
                format!(
                    "not logged in to {}: run `samokoder login` first",
                    self.server
                ),
            ));
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            out.failure(&Failure::message(1, format!("cannot start: {error}")));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            out.failure(&failure);
            ExitCode::from(failure.status)
        }
    }
}

async fn execute(cli: Cli, out: Output) -> Result<(), Failure> {
    let config_path = match cli.config {
        Some(path) => path,
        None => config::default_path().map_err(|e| Failure::message(1, e))?,
    };
    let config = ConfigFile::load(&config_path).map_err(|e| Failure::message(1, e))?;
    let server = cli
        .server
        .clone()
        .or_else(|| config.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let session = config.session_for(&server);
    let config = Arc::new(Mutex::new(config));

    // Every rotation of the session is saved at once: the refresh token the file held is
    // spent the moment the client refreshes, and a later run with the old one would end the
    // session on the server.
    let listener = {
        let config = config.clone();
        let path = config_path.clone();
        let server = server.clone();
        move |session: Option<&samokoder_client::Session>| {
            let mut config = config.lock().unwrap_or_else(|p| p.into_inner());
            config.session = session.map(|session| SavedSession {
                server: server.clone(),
                session: session.clone(),
            });
            if let Err(error) = config.save(&path) {
                out.warn(&format!("could not save the session: {error}"));
            }
        }
    };
    let mut builder = Client::builder(server.clone())
        .user_agent(concat!("samokoder-cli/", env!("CARGO_PKG_VERSION")))
        .on_session_change(listener);
    if let Some(session) = session {
        builder = builder.session(session);
    }
    let client = builder.build()?;
    let context = Context {
        client,
        out,
        server,
        config_path,
        config,
    };
    match cli.command {
        Command::Login(credentials) => login(&context, credentials, false).await,
        Command::Register(credentials) => login(&context, credentials, true).await,
        Command::Logout => logout(&context).await,
        Command::Whoami => {
            context.require_session()?;
            let me = context.client.auth().me().await?;
            context.out.value(&me, || {
                format!(
                    "{} ({} tier{}), {} project(s), on {}",
                    me.email,
                    me.tier,
                    if me.is_admin { ", administrator" } else { "" },
                    me.projects_count,
                    context.server
                )
            });
            Ok(())
        }
        Command::Projects(command) => projects(&context, command).await,
        Command::Keys(command) => keys(&context, command).await,
        Command::Run(args) => run::run(&context, args).await,
        Command::Runs(command) => runs(&context, command).await,
        Command::Export(args) => export(&context, args).await,
        Command::Preview(command) => preview(&context, command).await,
    }
}

async fn preview(context: &Context, command: PreviewCommand) -> Result<(), Failure> {
    context.require_session()?;
    let previews = context.client.preview();
    let describe = |info: &PreviewInfo| {
        let mut text = format!("{:?}", info.status).to_lowercase();
        if let Some(url) = &info.url {
            text.push_str(&format!(" at {url}"));
        }
        if let Some(code) = info.exit_code {
            text.push_str(&format!(" (exit code {code})"));
        }
        for line in &info.output {
            text.push_str(&format!("\n  {line}"));
        }
        text
    };
    match command {
        PreviewCommand::Start { project } => {
            let info = previews.start(project).await?;
            context.out.value(&info, || describe(&info));
        }
        PreviewCommand::Status { project } => {
            let info = previews.status(project).await?.status;
            context.out.value(&info, || describe(&info));
        }
        PreviewCommand::Open { project } => {
            let running = previews.status(project).await?.status;
            if !matches!(
                running.status,
                PreviewState::Running | PreviewState::Starting
            ) {
                let info = previews.start(project).await?;
                if info.status == PreviewState::Exited {
                    context.out.value(&info, || describe(&info));
                    return Err(Failure::message(1, "the app exited instead of serving"));
                }
            }
            let link = previews.open(project).await?;
            context.out.value(&link, || {
                format!(
                    "Open this link in your browser (it works once, within {} s):\n{}",
                    link.expires_in, link.url
                )
            });
        }
        PreviewCommand::Stop { project } => {
            let stopped = previews.stop(project).await?;
            context.out.value(&stopped, || stopped.message.clone());
        }
    }
    Ok(())
}

async fn login(context: &Context, credentials: Credentials, register: bool) -> Result<(), Failure> {
    let email = match credentials.email {
        Some(email) => email,
        None => prompt_line("E-mail: ")?,
    };
    let password = if credentials.password_stdin {
        read_stdin_line("the password")?
    } else {
        prompt_secret("Password: ")?
    };
    let auth = context.client.auth();
    let response = if register {
        auth.register(&email, &password).await?
    } else {
        auth.login(&email, &password).await?
    };
    // The listener saved the session; the server becomes the default for later commands.
    {
        let mut config = context.config.lock().unwrap_or_else(|p| p.into_inner());
        config.server = Some(context.server.clone());
    }
    context.save()?;
    let summary = serde_json::json!({
        "user_id": response.user_id,
        "email": response.email,
        "server": context.server,
        "config": context.config_path,
    });
    context.out.value(&summary, || {
        format!(
            "{} {} on {}; session saved in {}",
            if register {
                "Registered"
            } else {
                "Logged in as"
            },
            response.email,
            context.server,
            context.config_path.display()
        )
    });
    Ok(())
}

async fn logout(context: &Context) -> Result<(), Failure> {
    if context.client.session().is_none() {
        context
            .out
            .value(&serde_json::json!({"logged_out": false}), || {
                format!("Not logged in to {}", context.server)
            });
        return Ok(());
    }
    context.client.auth().logout().await?;
    context
        .out
        .value(&serde_json::json!({"logged_out": true}), || {
            format!("Logged out of {}", context.server)
        });
    Ok(())
}

async fn projects(context: &Context, command: ProjectsCommand) -> Result<(), Failure> {
    context.require_session()?;
    let projects = context.client.projects();
    match command {
        ProjectsCommand::List { query, archived } => {
            let all: Vec<_> = projects
                .list_all(ProjectListQuery {
                    q: query,
                    archived: archived.then_some(true),
                    ..ProjectListQuery::default()
                })
                .try_collect()
                .await?;
            context.out.value(&all, || {
                if all.is_empty() {
                    return "No projects".to_owned();
                }
                all.iter()
                    .map(|p| {
                        format!(
                            "{}  {}{}  {}",
                            p.id,
                            p.name,
                            if p.archived { " (archived)" } else { "" },
                            p.created_at.format("%Y-%m-%d %H:%M")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ProjectsCommand::Create { name, description } => {
            let project = projects
                .create(&ProjectCreateRequest { name, description })
                .await?;
            context.out.value(&project, || {
                format!("Created project {} ({})", project.name, project.id)
            });
        }
        ProjectsCommand::Delete { project } => {
            projects.delete(project).await?;
            context
                .out
                .value(&serde_json::json!({"deleted": project}), || {
                    format!("Deleted project {project}")
                });
        }
    }
    Ok(())
}

async fn keys(context: &Context, command: KeysCommand) -> Result<(), Failure> {
    context.require_session()?;
    let keys = context.client.keys();
    match command {
        KeysCommand::Add {
            provider,
            key_stdin,
            label,
            model,
            base_url,
        } => {
            let api_key = if key_stdin {
                read_stdin_line("the key")?
            } else {
                prompt_secret(&format!("{provider} API key: "))?
            };
            let stored = keys
                .put(&ApiKeyCreateRequest {
                    provider,
                    api_key,
                    label,
                    model,
                    base_url,
                    settings: None,
                })
                .await?;
            context.out.value(&stored, || {
                format!("Saved the {} key {}", stored.provider, stored.display_key)
            });
        }
        KeysCommand::List => {
            let list = keys.list().await?;
            context.out.value(&list, || {
                if list.is_empty() {
                    return "No keys".to_owned();
                }
                list.iter()
                    .map(|k| {
                        format!(
                            "{:<12} {}  {}{}",
                            k.provider,
                            k.display_key,
                            k.label.as_deref().unwrap_or(""),
                            k.model
                                .as_deref()
                                .map(|m| format!("  model {m}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Delete { provider } => {
            keys.delete(&provider).await?;
            context
                .out
                .value(&serde_json::json!({"deleted": provider}), || {
                    format!("Deleted the {provider} key")
                });
        }
    }
    Ok(())
}

async fn runs(context: &Context, command: RunsCommand) -> Result<(), Failure> {
    context.require_session()?;
    let runs = context.client.runs();
    match command {
        RunsCommand::List { project, limit } => {
            let list = runs
                .list(project, &RunListQuery { limit: Some(limit) })
                .await?;
            context.out.value(&list.runs, || {
                if list.runs.is_empty() {
                    return "No runs".to_owned();
                }
                list.runs
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {:<17} {}  {}",
                            r.id,
                            r.status.as_str(),
                            r.created_at.format("%Y-%m-%d %H:%M"),
                            output::shorten(&r.description, 60)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RunsCommand::Cancel { project, run } => {
            let cancelled = runs.cancel(project, run).await?;
            context.out.value(&cancelled, || {
                format!("Run {} is {}", cancelled.id, cancelled.status)
            });
        }
        RunsCommand::Resume {
            project,
            run,
            budget,
            auto,
        } => {
            let resumed = runs
                .resume(
                    project,
                    run,
                    &RunResumeRequest {
                        budget: budget.budget(),
                    },
                )
                .await?;
            let resumed_at = resumed.updated_at;
            run::follow(context, project, resumed, auto, Some(resumed_at)).await?;
        }
    }
    Ok(())
}

async fn export(context: &Context, args: ExportArgs) -> Result<(), Failure> {
    context.require_session()?;
    let destination = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("project-{}.zip", args.project)));
    let bytes = context
        .client
        .files()
        .export_to_file(
            args.project,
            &StateQuery { state: args.state },
            &destination,
        )
        .await?;
    context.out.value(
        &serde_json::json!({"project": args.project, "path": destination, "bytes": bytes}),
        || format!("Wrote {} ({bytes} bytes)", destination.display()),
    );
    Ok(())
}

/// Asks for a line on the terminal (or reads it from standard input when that is not one).
fn prompt_line(prompt: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let line = read_stdin_line("an answer")?;
    if line.is_empty() {
        return Err(Failure::message(2, "no value given"));
    }
    Ok(line)
}

/// Asks for a secret on the terminal without echoing it; without a terminal, reads the first
/// line of standard input.
fn prompt_secret(prompt: &str) -> Result<String, Failure> {
    if !std::io::stdin().is_terminal() {
        return read_stdin_line("the secret");
    }
    rpassword::prompt_password(prompt)
        .map_err(|e| Failure::message(1, format!("cannot read from the terminal: {e}")))
}

/// One line of standard input, without its line ending. End of input is an error.
pub(crate) fn read_stdin_line(what: &str) -> Result<String, Failure> {
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::message(1, format!("cannot read {what} from standard input: {e}")))?;
    if read == 0 {
        return Err(Failure::message(
            2,
            format!("standard input ended before {what} was given"),
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
