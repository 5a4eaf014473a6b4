//! What to run: [`CommandSpec`] and its parts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workspace::WorkspacePath;

/// How the command is given. Never a shell string built by the server from model text: either
/// an argv executed directly, or a script the model wrote that runs as `sh -c <script>` inside
/// the sandbox only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invocation {
    /// Program and arguments; the program is looked up on the sandbox's `PATH`.
    Argv {
        /// `argv[0]` first.
        args: Vec<String>,
    },
    /// A shell script run as `sh -c <script>` inside the sandbox.
    ShellScript {
        /// The script.
        script: String,
    },
}

impl Invocation {
    /// The argv the sandbox executes.
    pub fn to_argv(&self) -> Vec<String> {
        match self {
            Invocation::Argv { args } => args.clone(),
            Invocation::ShellScript { script } => vec!["sh".into(), "-c".into(), script.clone()],
        }
    }

    /// A one-line rendering for logs and questions to the human (arguments quoted when needed;
    /// not meant to be fed to a shell).
    pub fn display(&self) -> String {
        match self {
            Invocation::Argv { args } => {
                args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
            }
            Invocation::ShellScript { script } => script.clone(),
        }
    }
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Network access of a command. Whichever it is, a jailed command has its own network
/// namespace: it can never reach the host's loopback or the host's network directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No network at all, only the jail's own loopback. The default.
    #[default]
    None,
    /// The hosts on the runner's egress allowlist ([`EgressPolicy`](super::EgressPolicy)),
    /// through its proxy, and nothing else: for package installs. The command's `HTTP_PROXY`,
    /// `HTTPS_PROXY` and npm's proxy settings point at the jail's end of the bridge.
    Egress,
}

/// A command to run in a workspace.
///
/// ```
/// use std::time::Duration;
/// use samokoder_core::runner::CommandSpec;
///
/// let spec = CommandSpec::argv(["node", "--test"])
///     .timeout(Duration::from_secs(60))
///     .env("NODE_ENV", "test");
/// assert_eq!(spec.invocation.to_argv(), ["node", "--test"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// What to run.
    pub invocation: Invocation,
    /// Working directory relative to the workspace root; `None` for the root.
    pub cwd: Option<WorkspacePath>,
    /// Wall-clock limit; the whole process tree is killed when it passes.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Extra environment variables; each name must be on the runner's allowlist.
    pub env: BTreeMap<String, String>,
    /// Network access.
    pub network: Network,
    /// A human approved this command after the policy answered `AskHuman`.
    pub approved: bool,
    /// An install: the deployment's package cache is mounted (npm's and pip's, shared by
    /// every run) and the registry settings of [`RunnerConfig::install_env`] are set. Only
    /// for install commands a program built, never for a model's command: anything that runs
    /// with it can write to a cache other runs read.
    ///
    /// [`RunnerConfig::install_env`]: super::RunnerConfig::install_env
    #[serde(default)]
    pub package_cache: bool,
}

/// The default wall-clock limit of a command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl CommandSpec {
    /// An argv command with defaults: workspace root, [`DEFAULT_TIMEOUT`], no extra
    /// environment, no network, not approved.
    pub fn argv<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Invocation::Argv {
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    /// A `sh -c` script with the same defaults.
    pub fn shell(script: impl Into<String>) -> Self {
        Self::new(Invocation::ShellScript {
            script: script.into(),
        })
    }

    /// A command with the defaults.
    pub fn new(invocation: Invocation) -> Self {
        Self {
            invocation,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            env: BTreeMap::new(),
            network: Network::None,
            approved: false,
            package_cache: false,
        }
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: WorkspacePath) -> Self {
        self.cwd = Some(cwd);
        self
    }

    /// Sets the wall-clock limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds an environment variable (checked against the allowlist when run).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets network access.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Marks the command as approved by a human (after an `AskHuman` verdict).
    pub fn approved(mut self, approved: bool) -> Self {
        self.approved = approved;
        self
    }

    /// Makes it an install ([`CommandSpec::package_cache`]); installs need
    /// [`Network::Egress`] too.
    pub fn package_cache(mut self, package_cache: bool) -> Self {
        self.package_cache = package_cache;
        self
    }
}

pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let inv = Invocation::Argv {
            args: vec!["echo".into(), "a b".into(), "it's".into(), "x=1".into()],
        };
        assert_eq!(inv.display(), r"echo 'a b' 'it'\''s' x=1");
        let sh = Invocation::ShellScript {
            script: "ls | wc -l".into(),
        };
        assert_eq!(sh.to_argv(), ["sh", "-c", "ls | wc -l"]);
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = CommandSpec::shell("npm test")
            .cwd(WorkspacePath::new("web").unwrap())
            .timeout(Duration::from_millis(1500))
            .env("NODE_ENV", "test")
            .network(Network::Egress);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["timeout"], 1500);
        assert_eq!(json["invocation"]["kind"], "shell_script");
        assert_eq!(json["network"], "egress");
        let back: CommandSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}
