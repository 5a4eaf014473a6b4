//! The `samokoder` binary against the real server: its output for people and for programs,
//! its exit statuses, and the configuration file it keeps.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::{PASSWORD, TestServer, spawn};

/// What one invocation did.
pub struct Outcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The stdout's lines as JSON documents.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", self.stderr))
            })
            .collect()
    }

    pub fn json(&self) -> Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "{}", self.stdout);
        lines.remove(0)
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.status, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The CLI with its own configuration file, pointed at one server.
pub struct Cli {
    pub server: String,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cli {
    pub fn new(server: &TestServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            server: server.url(),
            config: dir.path().join("samokoder").join("config.toml"),
            _dir: dir,
        }
    }

    /// Runs `samokoder --server <url> <args>` with `stdin` as its standard input.
    pub async fn run(&self, args: &[&str], stdin: &str) -> Outcome {
        run_in(&self.config, &self.server, args, stdin).await
    }
}

pub async fn run_in(config: &Path, server: &str, args: &[&str], stdin: &str) -> Outcome {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_samokoder"))
        .arg("--server")
        .arg(server)
        .args(args)
        .env("SAMOKODER_CLI_CONFIG", config)
        .env_remove("SAMOKODER_SERVER")
        .env_remove("SAMOKODER_EMAIL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the samokoder binary starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Outcome {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Registers `email` through the CLI (password from standard input).
pub async fn register(cli: &Cli, email: &str) {
    cli.run(
        &["register", "--email", email, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .await
    .ok();
}

#[tokio::test]
async fn register_saves_a_private_session_that_later_commands_use() {
    let server = spawn().await;
    let cli = Cli::new(&server);
    let out = cli
        .run(
            &["register", "--email", "qa@example.com", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .await
        .ok();
    assert!(
        out.stdout.contains("Registered qa@example.com"),
        "{}",
        out.stdout
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds tokens");
    }
    let saved = std::fs::read_to_string(&cli.config).unwrap();
    assert!(saved.contains("refresh_token"), "{saved}");

    let me = cli.run(&["--json", "whoami"], "").await.ok().json();
    assert_eq!(me["email"], "qa@example.com");
    let human = cli.run(&["whoami"], "").await.ok();
    assert!(
        human.stdout.starts_with("qa@example.com (free tier"),
        "{}",
        human.stdout
    );

    // A refresh rotates the tokens; the CLI saves them, so the next command still works.
    let before = saved;
    let session: samokoder_client::Session = {
        let config: toml::Value = toml::from_str(&before).unwrap();
        let session = config["session"].clone();
        session.try_into().unwrap()
    };
    crate::helpers::revoke_access_token(&server, session.access_token()).await;
    cli.run(&["whoami"], "").await.ok();
    let after = std::fs::read_to_string(&cli.config).unwrap();
    assert_ne!(after, before, "the rotated session was saved");
    cli.run(&["whoami"], "").await.ok();

    let out = cli.run(&["logout"], "").await.ok();
    assert!(out.stdout.contains("Logged out"), "{}", out.stdout);
    let out = cli.run(&["whoami"], "").await;
    assert_eq!(out.status, 3, "{}", out.stderr);
    assert!(out.stderr.contains("samokoder login"), "{}", out.stderr);
}

#[tokio::test]
async fn login_failures_show_the_servers_detail_and_code() {
    let server = spawn().await;
    server.user("qb").await;
    let cli = Cli::new(&server);
    let out = cli
        .run(
            &["login", "--email", "qb@example.com", "--password-stdin"],
            "Wrong-Horse-1!\n",
        )
        .await;
    assert_eq!(out.status, 1);
    assert!(out.stderr.contains("Invalid credentials"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid_credentials"), "{}", out.stderr);

    let out = cli
        .run(
            &[
                "--json",
                "login",
                "--email",
                "qb@example.com",
                "--password-stdin",
            ],
            "Wrong-Horse-1!\n",
        )
        .await;
    assert_eq!(out.status, 1);
    let error: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(error["error"]["code"], "invalid_credentials");
    assert_eq!(error["error"]["status"], 400);
    assert!(error["error"]["request_id"].is_string());

    let out = cli
        .run(
            &[
                "--json",
                "login",
                "--email",
                "qb@example.com",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await
        .ok();
    assert_eq!(out.json()["email"], "qb@example.com");
}

#[tokio::test]
async fn projects_and_keys() {
    let server = spawn().await;
    let cli = Cli::new(&server);
    register(&cli, "qc@example.com").await;

    let created = cli
        .run(
            &[
                "--json",
                "projects",
                "create",
                "Shop",
                "--description",
                "A shop",
            ],
            "",
        )
        .await
        .ok()
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = cli
        .run(&["--json", "projects", "list"], "")
        .await
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "Shop");
    let human = cli.run(&["projects", "list"], "").await.ok();
    assert!(
        human.stdout.contains(&format!("{id}  Shop")),
        "{}",
        human.stdout
    );

    cli.run(&["projects", "delete", &id], "").await.ok();
    let out = cli.run(&["projects", "delete", &id], "").await;
    assert_eq!(out.status, 4, "{}", out.stderr);
    assert!(out.stderr.contains("project_not_found"), "{}", out.stderr);
    assert!(
        out.stderr.contains("request "),
        "the request id is shown: {}",
        out.stderr
    );

    let key = cli
        .run(
            &[
                "--json",
                "keys",
                "add",
                "openai",
                "--key-stdin",
                "--label",
                "work",
            ],
            "sk-test-0123456789abcdef\n",
        )
        .await
        .ok()
        .json();
    assert_eq!(key["last_four"], "cdef");
    let human = cli.run(&["keys", "list"], "").await.ok();
    assert!(human.stdout.contains("openai"), "{}", human.stdout);
    assert!(!human.stdout.contains("0123456789"), "{}", human.stdout);
    cli.run(&["keys", "delete", "openai"], "").await.ok();
    let keys = cli.run(&["--json", "keys", "list"], "").await.ok().json();
    assert_eq!(keys, serde_json::json!([]));
}

#[tokio::test]
async fn help_explains_every_command_and_usage_errors_exit_2() {
    let server = spawn().await;
    let cli = Cli::new(&server);
    let help = cli.run(&["--help"], "").await.ok();
    for command in [
        "login", "logout", "register", "projects", "keys", "run", "runs", "export",
    ] {
        assert!(
            help.stdout.contains(command),
            "{command} in\n{}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("Exit status"), "{}", help.stdout);
    let run_help = cli.run(&["run", "--help"], "").await.ok();
    for flag in [
        "--project",
        "--name",
        "--template",
        "--auto",
        "--budget-usd",
    ] {
        assert!(
            run_help.stdout.contains(flag),
            "{flag} in\n{}",
            run_help.stdout
        );
    }
    let out = cli.run(&["projects", "frobnicate"], "").await;
    assert_eq!(out.status, 2);
    let out = cli.run(&["projects", "list"], "").await;
    assert_eq!(out.status, 3, "not logged in: {}", out.stderr);
}
