//! The sandboxed runner, against real processes: the jail (bubblewrap is required here — CI
//! installs it) and the forced fallback without it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use samokoder_core::runner::{
    BwrapMode, CommandOutcome, CommandSpec, ExitReason, Network, OutputStream, PREVIEW_PORT,
    ResourceLimits, Runner, RunnerConfig, RunnerError, SandboxKind, ServiceSpec, ServiceStatus,
    ServiceUpstream,
};
use samokoder_core::workspace::WorkspacePath;

use crate::sandbox::{both, http_get, jail, jail_with, unconfined};

async fn sh(runner: &Runner, root: &Path, script: &str) -> CommandOutcome {
    runner
        .run(
            root,
            &CommandSpec::shell(script).timeout(Duration::from_secs(30)),
            None,
        )
        .await
        .unwrap()
}

/// A number unlikely to appear in any other process's command line, distinct per call (each
/// caller may use the next nine too).
fn marker() -> u64 {
    static NEXT: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        AtomicU64::new(
            900_000 + u64::from(nanos % 50_000) + u64::from(std::process::id() % 1000) * 10,
        )
    });
    next.fetch_add(10, Ordering::Relaxed)
}

/// Processes whose command line contains `needle`, from /proc.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
    }
    found
}

#[test]
fn the_jail_is_detected_and_the_fallback_is_reported() {
    if let Some(jail) = jail("the_jail_is_detected_and_the_fallback_is_reported") {
        assert_eq!(jail.sandbox(), &SandboxKind::Bubblewrap);
    }
    match unconfined().sandbox() {
        SandboxKind::Unconfined { reason } => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let missing = Runner::new(RunnerConfig {
        bwrap: BwrapMode::Require {
            path: Some("/nonexistent/bwrap".into()),
        },
        ..RunnerConfig::default()
    });
    assert!(matches!(missing, Err(RunnerError::SandboxUnavailable(_))));
    let auto_missing = Runner::new(RunnerConfig {
        bwrap: BwrapMode::Auto {
            path: Some("/nonexistent/bwrap".into()),
        },
        ..RunnerConfig::default()
    })
    .unwrap();
    assert!(!auto_missing.sandbox().is_confined());
}

#[tokio::test]
async fn jail_cannot_read_outside_the_workspace() {
    let Some(jail) = jail("jail_cannot_read_outside_the_workspace") else {
        return;
    };
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, "root:TOPSECRET-HASH:19000::::::\n").unwrap();
    let ws = tempfile::tempdir().unwrap();

    // Control: without the jail the same command does read it, so the test can fail.
    let script = format!("cat {}", secret.display());
    let open = sh(&unconfined(), ws.path(), &script).await;
    assert!(open.stdout.text.contains("TOPSECRET"), "{open:?}");

    let out = sh(&jail, ws.path(), &script).await;
    assert!(!out.success());
    assert!(!out.stdout.text.contains("TOPSECRET"), "{out:?}");
    assert_eq!(out.sandbox, SandboxKind::Bubblewrap);

    for path in ["/etc/shadow", "/root", "/home", "/var"] {
        let out = sh(&jail, ws.path(), &format!("ls -la {path}")).await;
        assert!(!out.success(), "{path} is visible: {out:?}");
    }
    // The workspace is writable, the system is not.
    let out = sh(
        &jail,
        ws.path(),
        "echo made > out.txt && touch /usr/samokoder-x",
    )
    .await;
    assert!(!out.success());
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).unwrap(),
        "made\n"
    );
    assert!(!Path::new("/usr/samokoder-x").exists());
    // A symlink planted in the workspace resolves inside the jail, not on the host.
    std::os::unix::fs::symlink(&secret, ws.path().join("link")).unwrap();
    let out = sh(&jail, ws.path(), "cat link").await;
    assert!(!out.stdout.text.contains("TOPSECRET"), "{out:?}");
}

/// The child half of `commands_never_see_the_servers_environment`: runs only in a process
/// started with the secret in its environment.
#[tokio::test]
#[ignore = "run by commands_never_see_the_servers_environment in a child process"]
async fn secret_env_probe() {
    let secret = std::env::var("SAMOKODER_TEST_DATABASE_URL").expect("started by the parent test");
    assert!(secret.contains("hunter2"));
    let ws = tempfile::tempdir().unwrap();
    for (name, runner) in both("secret_env_probe") {
        let out = sh(&runner, ws.path(), "env; echo HOME=$HOME").await;
        assert!(out.success(), "{name}: {out:?}");
        let env = &out.stdout.text;
        assert!(!env.contains("hunter2"), "{name} leaked the secret: {env}");
        assert!(
            !env.contains("SAMOKODER_TEST_DATABASE_URL"),
            "{name}: {env}"
        );
        assert!(
            !env.contains("CARGO"),
            "{name} inherited cargo's environment: {env}"
        );
        assert!(
            env.contains("TERM=dumb") && env.contains("CI=1"),
            "{name}: {env}"
        );
        let home = env.lines().find_map(|l| l.strip_prefix("HOME=")).unwrap();
        assert!(!home.starts_with("/root"), "{name}: HOME={home}");
    }
    println!("SECRET-PROBE-RAN");
}

#[test]
fn commands_never_see_the_servers_environment() {
    // Setting a variable in this process would race other tests' spawns, so the probe runs in
    // a child test process that has the secret in its environment from the start.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "runner::secret_env_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "SAMOKODER_TEST_DATABASE_URL",
            "postgres://app:hunter2@db/prod",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("SECRET-PROBE-RAN"),
        "probe did not run:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn extra_environment_is_allowlisted() {
    let Some(jail) = jail("extra_environment_is_allowlisted") else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let runner = jail;
    let spec = CommandSpec::shell("echo $NODE_ENV").env("NODE_ENV", "test");
    let out = runner.run(ws.path(), &spec, None).await.unwrap();
    assert_eq!(out.stdout.text, "test\n");
    for name in ["OPENAI_API_KEY", "PATH", "LD_PRELOAD", "BAD NAME"] {
        let spec = CommandSpec::shell("true").env(name, "x");
        let err = runner.run(ws.path(), &spec, None).await.unwrap_err();
        assert!(
            matches!(err, RunnerError::EnvNotAllowed { .. }),
            "{name}: {err}"
        );
    }
}

async fn assert_timeout_kills_everything(name: &str, runner: &Runner) {
    let ws = tempfile::tempdir().unwrap();
    let m = marker();
    // A background child, a child that left the process group, and a foreground sleeper.
    let script = format!("sleep {m} & setsid sleep {} & sleep {}", m + 1, m + 2);
    let started = Instant::now();
    let out = runner
        .run(
            ws.path(),
            &CommandSpec::shell(script).timeout(Duration::from_millis(800)),
            None,
        )
        .await
        .unwrap();
    assert!(out.timed_out, "{name}: {out:?}");
    assert!(!out.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{name}: took {:?}",
        started.elapsed()
    );
    // Killing is synchronous, but give the kernel a moment to reap.
    let mut left = Vec::new();
    for _ in 0..20 {
        left = [m, m + 1, m + 2]
            .iter()
            .flat_map(|n| processes_with(&format!("sleep {n}")))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        left.is_empty(),
        "{name}: processes survived the timeout: {left:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree_in_the_jail() {
    if let Some(jail) = jail("timeout_kills_the_whole_process_tree_in_the_jail") {
        assert_timeout_kills_everything("jail", &jail).await;
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree_unconfined() {
    assert_timeout_kills_everything("unconfined", &unconfined()).await;
}

#[tokio::test]
async fn cancelling_a_run_kills_its_processes() {
    for (name, runner) in both("cancelling_a_run_kills_its_processes") {
        let ws = tempfile::tempdir().unwrap();
        let m = marker();
        let spec = CommandSpec::shell(format!("sleep {m} & sleep {}", m + 1));
        // The engine drops the future when a run is cancelled.
        let run = runner.run(ws.path(), &spec, None);
        assert!(
            tokio::time::timeout(Duration::from_millis(500), run)
                .await
                .is_err()
        );
        let mut left = Vec::new();
        for _ in 0..20 {
            left = [m, m + 1]
                .iter()
                .flat_map(|n| processes_with(&format!("sleep {n}")))
                .collect();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

#[tokio::test]
async fn background_processes_do_not_outlive_a_finished_command() {
    for (name, runner) in both("background_processes_do_not_outlive_a_finished_command") {
        let ws = tempfile::tempdir().unwrap();
        let m = marker();
        let out = sh(
            &runner,
            ws.path(),
            &format!("sleep {m} > /dev/null 2>&1 & echo started"),
        )
        .await;
        assert!(out.success(), "{name}: {out:?}");
        assert!(!out.timed_out);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = processes_with(&format!("sleep {m}"));
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

#[tokio::test]
async fn output_floods_are_capped_not_fatal() {
    const FLOOD: u64 = 20 * 1024 * 1024;
    for (name, runner) in both("output_floods_are_capped_not_fatal") {
        let ws = tempfile::tempdir().unwrap();
        let streamed = Arc::new(AtomicU64::new(0));
        let counter = streamed.clone();
        let sink = move |stream: OutputStream, data: &[u8]| {
            if stream == OutputStream::Stdout {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        };
        let script = format!("head -c {FLOOD} /dev/zero | tr '\\0' x; echo done >&2");
        let out = runner
            .run(
                ws.path(),
                &CommandSpec::shell(script).timeout(Duration::from_secs(60)),
                Some(&sink),
            )
            .await
            .unwrap();
        assert!(
            out.success(),
            "{name}: {:?} {:?}",
            out.exit_code,
            out.stderr
        );
        assert!(out.stdout.truncated());
        assert_eq!(out.stdout.total_bytes, FLOOD);
        let cap = runner.config().output_cap_bytes as u64;
        assert_eq!(out.stdout.dropped_bytes, FLOOD - cap);
        assert!(out.stdout.text.contains(&format!(
            "[... {} bytes of output dropped ...]",
            FLOOD - cap
        )));
        assert!(out.stdout.text.len() < (cap as usize) + 100);
        assert_eq!(out.stderr.text, "done\n");
        assert_eq!(
            streamed.load(Ordering::Relaxed),
            FLOOD,
            "{name}: the sink sees everything"
        );
    }
}

#[tokio::test]
async fn resource_limits_bind_the_command() {
    let ws = tempfile::tempdir().unwrap();
    let limits = ResourceLimits {
        cpu_seconds: 1,
        memory_bytes: 512 * 1024 * 1024,
        max_processes: 77,
        ..ResourceLimits::default()
    };
    let config = RunnerConfig {
        limits,
        ..RunnerConfig::default()
    };
    let limited_unconfined = Runner::new(RunnerConfig {
        bwrap: BwrapMode::Disabled,
        ..config.clone()
    })
    .unwrap();
    let limited_jail = jail_with("resource_limits_bind_the_command", config);
    for (bwrap, runner) in limited_jail
        .map(|jail| ("jail", jail))
        .into_iter()
        .chain([("unconfined", limited_unconfined)])
    {
        assert!(runner.limits_enforced());
        // Memory: a 1 GiB allocation fails under a 512 MiB limit...
        let out = sh(
            &runner,
            ws.path(),
            "python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'",
        )
        .await;
        assert!(!out.success(), "{bwrap:?}: {out:?}");
        assert!(
            out.stderr.text.contains("MemoryError"),
            "{bwrap:?}: {out:?}"
        );
        // ...while Node, which reserves far more address space than it uses, still works.
        let node = "node -e 'WebAssembly.validate(new Uint8Array([0,97,115,109,1,0,0,0])); console.log(Buffer.alloc(64 << 20).length)'";
        let out = sh(&runner, ws.path(), node).await;
        assert_eq!(out.stdout.text, "67108864\n", "{bwrap:?}: {out:?}");
        // CPU: a busy loop is killed after about a second of CPU, long before the timeout.
        let started = Instant::now();
        let out = sh(&runner, ws.path(), "while :; do :; done").await;
        assert!(!out.success() && !out.timed_out, "{bwrap:?}: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(15));
        // Processes: the limit is set (see ResourceLimits::max_processes for when it binds).
        let out = sh(&runner, ws.path(), "grep 'Max processes' /proc/self/limits").await;
        let sevens = out
            .stdout
            .text
            .split_whitespace()
            .filter(|w| *w == "77")
            .count();
        assert_eq!(sevens, 2, "{bwrap:?}: soft and hard: {out:?}");
        assert_eq!(out.limits, Some(limits));
    }
}

#[tokio::test]
async fn policy_is_enforced_before_anything_runs() {
    let Some(jail) = jail("policy_is_enforced_before_anything_runs") else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let runner = jail;
    let err = runner
        .run(ws.path(), &CommandSpec::shell("sudo id > pwned"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, RunnerError::Denied { .. }), "{err}");
    assert!(!ws.path().join("pwned").exists());

    let err = runner
        .run(ws.path(), &CommandSpec::shell("npm install left-pad"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without network access"), "{err}");

    let push = CommandSpec::argv(["git", "push"]).network(Network::Egress);
    let err = runner.run(ws.path(), &push, None).await.unwrap_err();
    assert!(matches!(err, RunnerError::NeedsApproval { .. }), "{err}");
    // Approved by a human, it runs (and fails on its own: there is no repository).
    let out = runner
        .run(ws.path(), &push.approved(true), None)
        .await
        .unwrap();
    assert!(!out.success());
    assert!(out.stderr.text.contains("not a git repository"), "{out:?}");
}

#[tokio::test]
async fn working_directory_must_be_a_real_directory_inside() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("web")).unwrap();
    std::os::unix::fs::symlink("/etc", ws.path().join("etc-link")).unwrap();
    for (name, runner) in both("working_directory_must_be_a_real_directory_inside") {
        let spec = CommandSpec::argv(["pwd"]).cwd(WorkspacePath::new("web").unwrap());
        let out = runner.run(ws.path(), &spec, None).await.unwrap();
        assert!(
            out.stdout.text.trim_end().ends_with("/web"),
            "{name}: {out:?}"
        );
        let spec = CommandSpec::argv(["ls"]).cwd(WorkspacePath::new("etc-link").unwrap());
        let err = runner.run(ws.path(), &spec, None).await.unwrap_err();
        assert!(
            matches!(err, RunnerError::BadWorkingDirectory { .. }),
            "{name}: {err}"
        );
        let spec = CommandSpec::argv(["ls"]).cwd(WorkspacePath::new("missing").unwrap());
        assert!(runner.run(ws.path(), &spec, None).await.is_err());
    }
}

#[tokio::test]
async fn outcome_reports_exit_and_serialises() {
    let ws = tempfile::tempdir().unwrap();
    for (name, runner) in both("outcome_reports_exit_and_serialises") {
        let out = sh(&runner, ws.path(), "echo out; echo err >&2; exit 3").await;
        assert_eq!(out.exit_code, Some(3), "{name}");
        assert_eq!(
            (out.stdout.text.as_str(), out.stderr.text.as_str()),
            ("out\n", "err\n")
        );
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["exit_code"], 3);
        let back: CommandOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, out);
    }
    let out = sh(&unconfined(), ws.path(), "true").await;
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["sandbox"]["kind"], "unconfined");
}

#[tokio::test]
async fn preview_service_serves_through_its_bridge_and_stops() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("index.html"), "hello from the preview").unwrap();
    for (name, runner) in both("preview_service_serves_through_its_bridge_and_stops") {
        let spec = ServiceSpec::new(samokoder_core::runner::Invocation::ShellScript {
            script:
                "echo starting on $PORT; exec python3 -m http.server \"$PORT\" --bind \"$HOST\""
                    .into(),
        });
        let service = runner.start_service(ws.path(), &spec).await.unwrap();
        service
            .wait_until_listening(Duration::from_secs(20))
            .await
            .unwrap();
        let page = http_get(&service, "/index.html").await;
        assert!(page.contains("hello from the preview"), "{name}: {page}");
        assert_eq!(service.status(), ServiceStatus::Running);
        let port = match service.upstream() {
            ServiceUpstream::Socket(_) => PREVIEW_PORT,
            ServiceUpstream::Loopback(addr) => addr.port(),
        };
        let lines = service.recent_output(50);
        assert!(
            lines
                .iter()
                .any(|l| l.text == format!("starting on {port}")),
            "{name}: {lines:?}"
        );
        let upstream = service.upstream().clone();
        let exit = service.stop().await;
        assert_eq!(exit.reason, ExitReason::Stopped);
        assert!(upstream.connect().await.is_err(), "{name}: still reachable");
    }
}

#[tokio::test]
async fn preview_service_lifetime_and_idle_limits() {
    let Some(jail) = jail("preview_service_lifetime_and_idle_limits") else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let runner = jail;
    let mut spec = ServiceSpec::new(samokoder_core::runner::Invocation::Argv {
        args: vec!["sleep".into(), "600".into()],
    });
    spec.max_lifetime = Duration::from_millis(700);
    spec.idle_timeout = None;
    let service = runner.start_service(ws.path(), &spec).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), service.wait())
        .await
        .unwrap();
    assert_eq!(exit.reason, ExitReason::MaxLifetime);

    spec.max_lifetime = Duration::from_secs(60);
    spec.idle_timeout = Some(Duration::from_millis(600));
    let service = runner.start_service(ws.path(), &spec).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), service.wait())
        .await
        .unwrap();
    assert_eq!(exit.reason, ExitReason::Idle);

    // A service that cannot start says why.
    let broken = ServiceSpec::new(samokoder_core::runner::Invocation::ShellScript {
        script: "echo 'cannot find module app.js' >&2; exit 1".into(),
    });
    let service = runner.start_service(ws.path(), &broken).await.unwrap();
    let err = service
        .wait_until_listening(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot find module"), "{err}");
}
