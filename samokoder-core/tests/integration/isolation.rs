//! The jail as an attacker meets it: the host's loopback (its database, Redis, the server's
//! own port) is out of reach from commands and previews, egress goes only to allowlisted hosts
//! through the proxy, and the limits hold with the runner running as root (CI runs as root).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use samokoder_core::runner::{
    CgroupMode, CommandOutcome, CommandSpec, EgressPolicy, EgressRefusalReason, ExitReason,
    Invocation, IsolationState, LimitHit, Network, ResourceLimits, Runner, RunnerConfig,
    RunnerError, ServiceSpec, ServiceUpstream,
};

use crate::sandbox::{http_get, is_root, jail_with};

/// Connects to each port of the host's loopback and says what happened, one line per port.
const PROBE_PY: &str = r#"
import socket, sys
for port in sys.argv[1:]:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
        print(port, "CONNECTED")
    except OSError as e:
        print(port, "unreachable:", e)
"#;

/// A preview whose page reports the same probe: what a generated app could reach.
const PROBING_APP_PY: &str = r#"
import http.server, os, socket
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        lines = []
        for port in self.path.strip("/").split(","):
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
                lines.append(port + " CONNECTED")
            except OSError as e:
                lines.append(port + " unreachable: " + str(e))
        body = "\n".join(lines).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Fetches `path` from `host:port` through the jail's proxy: `plain` as an absolute-form
/// request (`HTTP_PROXY`), `tunnel` through `CONNECT`.
const FETCH_PY: &str = r#"
import http.client, sys, urllib.request
mode, host, port, path = sys.argv[1:5]
try:
    if mode == "plain":
        print(urllib.request.urlopen("http://%s:%s%s" % (host, port, path), timeout=10).read().decode())
    else:
        c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
        c.set_tunnel(host, int(port))
        c.request("GET", path)
        print(c.getresponse().read().decode())
except Exception as e:
    print("FAILED", e)
"#;

fn workspace_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(ws.path().join(name), content).unwrap();
    }
    ws
}

async fn run(runner: &Runner, root: &Path, spec: CommandSpec) -> CommandOutcome {
    runner
        .run(root, &spec.timeout(Duration::from_secs(60)), None)
        .await
        .unwrap()
}

/// An HTTP server on the host's loopback answering every request with `body`.
fn serve(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Ports of the host's loopback an attacker would want: a listener of this test (standing
/// for the server's own port), and PostgreSQL and Redis when they listen here (in CI they do).
fn host_targets() -> (TcpListener, Vec<u16>) {
    let ours = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ports = vec![ours.local_addr().unwrap().port()];
    for port in [5432, 6379] {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    (ours, ports)
}

fn assert_all_unreachable(report: &str, ports: &[u16], what: &str) {
    for port in ports {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("{port} ")))
            .unwrap_or_else(|| panic!("{what}: no line for port {port} in {report:?}"));
        assert!(line.contains("unreachable"), "{what}: {line}");
    }
    assert!(!report.contains("CONNECTED"), "{what}: {report}");
}

#[tokio::test]
async fn commands_cannot_reach_the_hosts_loopback_with_or_without_egress() {
    let Some(runner) = jail_with(
        "commands_cannot_reach_the_hosts_loopback_with_or_without_egress",
        RunnerConfig::default(),
    ) else {
        return;
    };
    let (_ours, ports) = host_targets();
    let ws = workspace_with(&[("probe.py", PROBE_PY)]);
    let args: Vec<String> = ["python3".to_owned(), "probe.py".to_owned()]
        .into_iter()
        .chain(ports.iter().map(u16::to_string))
        .collect();
    for network in [Network::None, Network::Egress] {
        let out = run(
            &runner,
            ws.path(),
            CommandSpec::argv(args.clone()).network(network),
        )
        .await;
        assert!(out.success(), "{network:?}: {out:?}");
        assert_all_unreachable(&out.stdout.text, &ports, &format!("{network:?}"));
    }
    // Through the proxy, the host's loopback is refused too, with a line saying so.
    let out = run(
        &runner,
        ws.path(),
        CommandSpec::argv([
            "python3".to_owned(),
            "-c".to_owned(),
            FETCH_PY.to_owned(),
            "plain".to_owned(),
            "127.0.0.1".to_owned(),
            ports[0].to_string(),
            "/".to_owned(),
        ])
        .network(Network::Egress),
    )
    .await;
    assert!(out.stdout.text.starts_with("FAILED"), "{out:?}");
    assert_eq!(out.egress_refused.len(), 1, "{out:?}");
    assert_eq!(
        out.egress_refused[0].reason,
        EgressRefusalReason::NotAllowed
    );
    assert!(
        out.stderr.text.contains(&format!(
            "[sandbox] egress refused: 127.0.0.1:{}: not on the sandbox's egress allowlist",
            ports[0]
        )),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_preview_cannot_reach_the_hosts_database_and_listens_on_no_host_port() {
    // The outside review's attack, rerun: a preview's code connecting to 127.0.0.1:5432.
    let Some(runner) = jail_with(
        "a_preview_cannot_reach_the_hosts_database_and_listens_on_no_host_port",
        RunnerConfig::default(),
    ) else {
        return;
    };
    let (_ours, ports) = host_targets();
    let ws = workspace_with(&[("app.py", PROBING_APP_PY)]);
    let service = runner
        .start_service(
            ws.path(),
            &ServiceSpec::new(Invocation::Argv {
                args: vec!["python3".into(), "app.py".into()],
            }),
        )
        .await
        .unwrap();
    service
        .wait_until_listening(Duration::from_secs(20))
        .await
        .unwrap();
    let path = format!(
        "/{}",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let page = http_get(&service, &path).await;
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert_all_unreachable(&page, &ports, "preview");

    // Reached only through its socket, which only this process's user can open.
    let ServiceUpstream::Socket(socket) = service.upstream().clone() else {
        panic!("a jailed preview is reached through its bridge socket");
    };
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "bridge directory mode {dir_mode:o}");
    // Nothing of it on the host's loopback: its port is inside its own network namespace.
    let listeners = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let before = listeners.lines().count();
    if let Ok(mut stream) =
        std::net::TcpStream::connect(("127.0.0.1", samokoder_core::runner::PREVIEW_PORT))
    {
        // Something else of the host may use that port; it is not the preview.
        let _ = write!(stream, "GET {path} HTTP/1.0\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.read_to_string(&mut answer);
        assert!(
            !answer.contains("unreachable"),
            "the preview answered on a host port"
        );
    }
    let exit = service.stop().await;
    assert_eq!(exit.reason, ExitReason::Stopped);
    assert!(!socket.exists(), "the bridge goes with the preview");
    assert!(before > 0);
}

fn egress_config(allowed: &[String], private: &[&str]) -> RunnerConfig {
    RunnerConfig {
        egress: EgressPolicy {
            allowed_hosts: allowed.to_vec(),
            allowed_private_networks: private.iter().map(|s| (*s).to_owned()).collect(),
        },
        ..RunnerConfig::default()
    }
}

fn fetch(mode: &str, host: &str, port: u16) -> CommandSpec {
    CommandSpec::argv([
        "python3".to_owned(),
        "-c".to_owned(),
        FETCH_PY.to_owned(),
        mode.to_owned(),
        host.to_owned(),
        port.to_string(),
        "/pkg".to_owned(),
    ])
    .network(Network::Egress)
}

#[tokio::test]
async fn egress_reaches_allowlisted_hosts_through_the_proxy_and_nothing_else() {
    let registry = serve("registry says hi");
    let allowed = vec![
        format!("localhost:{registry}"),
        "169.254.169.254".to_owned(),
    ];
    // The local test registry is on loopback, which the proxy refuses unless told otherwise
    // (as a deployment would for an internal mirror).
    let Some(open) = jail_with(
        "egress_reaches_allowlisted_hosts_through_the_proxy_and_nothing_else",
        egress_config(&allowed, &["127.0.0.1/32", "::1/128"]),
    ) else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let before = open.egress_stats().allowed();
    for mode in ["plain", "tunnel"] {
        let out = run(&open, ws.path(), fetch(mode, "localhost", registry)).await;
        assert_eq!(out.stdout.text, "registry says hi\n", "{mode}: {out:?}");
        assert!(out.egress_refused.is_empty(), "{mode}: {out:?}");
    }
    assert!(open.egress_stats().allowed() >= before + 2);

    // Not on the list: another name, another port, or no egress at all.
    let out = run(&open, ws.path(), fetch("tunnel", "127.0.0.2", registry)).await;
    assert!(out.stdout.text.starts_with("FAILED"), "{out:?}");
    assert_eq!(
        out.egress_refused[0].target,
        format!("127.0.0.2:{registry}")
    );
    let out = run(&open, ws.path(), fetch("tunnel", "localhost", 22)).await;
    assert_eq!(
        out.egress_refused[0].reason,
        EgressRefusalReason::NotAllowed,
        "{out:?}"
    );
    let mut offline = fetch("plain", "localhost", registry);
    offline.network = Network::None;
    let out = run(&open, ws.path(), offline).await;
    assert!(out.stdout.text.starts_with("FAILED"), "{out:?}");
    assert!(out.egress_refused.is_empty(), "no proxy at all: {out:?}");

    // Cloud metadata is refused by its address even when its name is on the list.
    let out = run(&open, ws.path(), fetch("plain", "169.254.169.254", 80)).await;
    match &out.egress_refused[..] {
        [refusal] => assert!(
            matches!(&refusal.reason, EgressRefusalReason::ForbiddenAddress { class, .. } if class.contains("metadata")),
            "{refusal:?}"
        ),
        other => panic!("{other:?}: {out:?}"),
    }

    // Without the exception, an allowlisted name that resolves to loopback is refused after
    // resolution: DNS is no way in.
    let Some(strict) = jail_with("egress (strict)", egress_config(&allowed, &[])) else {
        return;
    };
    let out = run(&strict, ws.path(), fetch("tunnel", "localhost", registry)).await;
    assert!(out.stdout.text.starts_with("FAILED"), "{out:?}");
    assert!(
        matches!(&out.egress_refused[0].reason, EgressRefusalReason::ForbiddenAddress { class, .. } if class.contains("loopback")),
        "{out:?}"
    );
    assert!(
        out.stderr.text.contains(&format!(
            "[sandbox] egress refused: localhost:{registry}: it resolves to"
        )),
        "{out:?}"
    );
    assert!(strict.egress_stats().refused() >= 1);
}

/// A Python loop forking until the kernel says no; its children wait, so they all count.
const FORK_COUNT_PY: &str = r#"
import os, time
n = 0
try:
    while n < 2000:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("stopped after", n, e.strerror)
"#;

fn forks_before_refusal(out: &CommandOutcome) -> u64 {
    out.stdout
        .text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {out:?}"))
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_process_limit_as_root() {
    if !is_root() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_fork_bomb_stops_at_the_process_limit_as_root: not root (the limit this tests is the one RLIMIT_NPROC does not give root)"
        );
        return;
    }
    let limits = ResourceLimits {
        max_processes: 48,
        ..ResourceLimits::default()
    };
    // The control group (CI's hosts have one).
    let Some(grouped) = jail_with(
        "a_fork_bomb_stops_at_the_process_limit_as_root",
        RunnerConfig {
            limits,
            ..RunnerConfig::default()
        },
    ) else {
        return;
    };
    assert_eq!(
        grouped.isolation().feature("process_limit").unwrap().state,
        IsolationState::Available
    );
    let ws = tempfile::tempdir().unwrap();
    let out = run(
        &grouped,
        ws.path(),
        CommandSpec::argv(["python3", "-c", FORK_COUNT_PY]),
    )
    .await;
    assert!(forks_before_refusal(&out) < 48, "{out:?}");
    assert!(
        out.limits_hit.contains(&LimitHit::Processes { limit: 48 }),
        "{out:?}"
    );
    assert!(
        out.stderr
            .text
            .contains("[sandbox] the command reached the sandbox's process limit")
    );
    // The real thing, for its time limit: the host's process table is untouched afterwards.
    let started = Instant::now();
    let out = grouped
        .run(
            ws.path(),
            &CommandSpec::shell("bomb() { bomb | bomb & }; bomb; sleep 30")
                .timeout(Duration::from_secs(4)),
            None,
        )
        .await
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // No control group: the sandbox uid, for which RLIMIT_NPROC binds.
    let reachable = tempfile::tempdir().unwrap();
    std::fs::set_permissions(reachable.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let ws = tempfile::tempdir_in(reachable.path()).unwrap();
    let Some(by_uid) = jail_with(
        "a_fork_bomb_stops_at_the_process_limit_as_root (sandbox uid)",
        RunnerConfig {
            limits,
            cgroup: CgroupMode::Disabled,
            sandbox_uid: Some(2_000_000_123),
            ..RunnerConfig::default()
        },
    ) else {
        return;
    };
    let detail = &by_uid.isolation().feature("process_limit").unwrap().detail;
    assert!(detail.contains("sandbox uid 2000000123"), "{detail}");
    let out = run(
        &by_uid,
        ws.path(),
        CommandSpec::argv(["python3", "-c", FORK_COUNT_PY]),
    )
    .await;
    assert!(forks_before_refusal(&out) < 48, "{out:?}");
    // What it wrote belongs to that uid, never to root.
    let out = run(&by_uid, ws.path(), CommandSpec::shell("echo x > made-here")).await;
    assert!(out.success(), "{out:?}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(ws.path().join("made-here"))
            .unwrap()
            .uid(),
        2_000_000_123
    );
}

fn shmem_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn tmp_is_capped_and_counted_as_the_jails_memory() {
    let Some(runner) = jail_with(
        "tmp_is_capped_and_counted_as_the_jails_memory",
        RunnerConfig {
            limits: ResourceLimits {
                tmp_bytes: 64 << 20,
                ..ResourceLimits::default()
            },
            ..RunnerConfig::default()
        },
    ) else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let before = shmem_kib();
    // A 1 GiB write to /tmp stops at 64 MiB; the host's shared memory grows by no more.
    let out = run(
        &runner,
        ws.path(),
        CommandSpec::shell(
            "dd if=/dev/zero of=/tmp/big bs=1M count=1024 2>&1; stat -c %s /tmp/big; grep Shmem: /proc/meminfo",
        ),
    )
    .await;
    assert!(
        out.stdout.text.contains("No space left on device"),
        "{out:?}"
    );
    let written: u64 = out
        .stdout
        .text
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap();
    assert!(written <= 64 << 20, "{written}");
    let during: u64 = out
        .stdout
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        during < before + 200 * 1024,
        "host Shmem {before} KiB -> {during} KiB"
    );

    // With a control group, what /tmp holds counts against the jail's memory.
    if runner.isolation().feature("memory_limit").unwrap().state == IsolationState::Available {
        let Some(small) = jail_with(
            "tmp counts as memory",
            RunnerConfig {
                limits: ResourceLimits {
                    tmp_bytes: 1 << 30,
                    total_memory_bytes: 96 << 20,
                    ..ResourceLimits::default()
                },
                ..RunnerConfig::default()
            },
        ) else {
            return;
        };
        let out = run(
            &small,
            ws.path(),
            CommandSpec::shell("dd if=/dev/zero of=/tmp/big bs=1M count=512 2>&1; echo done"),
        )
        .await;
        assert!(
            out.limits_hit.contains(&LimitHit::Memory {
                limit_bytes: 96 << 20
            }),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn a_workspace_over_its_quota_fails_the_command() {
    let Some(runner) = jail_with(
        "a_workspace_over_its_quota_fails_the_command",
        RunnerConfig {
            limits: ResourceLimits {
                workspace_bytes: 16 << 20,
                ..ResourceLimits::default()
            },
            ..RunnerConfig::default()
        },
    ) else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let out = run(
        &runner,
        ws.path(),
        CommandSpec::shell("dd if=/dev/zero of=big bs=1M count=40 2>/dev/null; echo wrote"),
    )
    .await;
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.success() && out.over_quota(), "{out:?}");
    assert!(
        out.stderr.text.contains("[sandbox] the workspace used")
            && out.stderr.text.contains("over its disk quota of 16 MiB"),
        "{out:?}"
    );
    std::fs::remove_file(ws.path().join("big")).unwrap();
    // A command that keeps writing is stopped when the runner notices, not at its timeout.
    let started = Instant::now();
    let out = run(
        &runner,
        ws.path(),
        CommandSpec::shell(
            "i=0; while :; do dd if=/dev/zero of=f$i bs=1M count=4 2>/dev/null; i=$((i+1)); sleep 0.1; done",
        ),
    )
    .await;
    assert!(out.over_quota() && !out.timed_out, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // A preview too.
    let ws = tempfile::tempdir().unwrap();
    let mut spec = ServiceSpec::new(Invocation::ShellScript {
        script: "i=0; while :; do dd if=/dev/zero of=f$i bs=1M count=4 2>/dev/null; i=$((i+1)); sleep 0.1; done".into(),
    });
    spec.idle_timeout = None;
    let service = runner.start_service(ws.path(), &spec).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), service.wait())
        .await
        .unwrap();
    assert_eq!(exit.reason, ExitReason::DiskQuota);
    assert!(
        service
            .recent_output(5)
            .iter()
            .any(|l| l.text.contains("over its disk quota")),
        "{:?}",
        service.recent_output(5)
    );
}

#[test]
fn the_self_test_names_what_is_missing() {
    let Some(full) = jail_with(
        "the_self_test_names_what_is_missing",
        RunnerConfig::default(),
    ) else {
        return;
    };
    let report = full.isolation();
    assert!(report.complete(), "{}", report.summary());
    for name in [
        "jail",
        "network",
        "tmp_size",
        "process_limit",
        "memory_limit",
        "bridge",
    ] {
        assert!(
            report.feature(name).is_some(),
            "{name}: {}",
            report.summary()
        );
    }

    let no_bridge = Runner::new(RunnerConfig {
        bwrap: samokoder_core::runner::BwrapMode::Require { path: None },
        socat_path: Some("/nonexistent/socat".into()),
        ..RunnerConfig::default()
    })
    .unwrap_err();
    match no_bridge {
        RunnerError::SandboxUnavailable(why) => {
            assert!(
                why.contains("bridge is unavailable: socat not found at /nonexistent/socat"),
                "{why}"
            );
        }
        other => panic!("{other}"),
    }
    // In auto mode the runner starts, and what needs the bridge says why it cannot work.
    let auto = Runner::new(RunnerConfig {
        socat_path: Some("/nonexistent/socat".into()),
        ..RunnerConfig::default()
    })
    .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(auto.run(
            ws.path(),
            &CommandSpec::argv(["true"]).network(Network::Egress),
            None,
        ))
        .unwrap_err();
    assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("socat not found"), "{err}");

    if is_root() {
        // Root without a control group or a sandbox uid: the process limit would not bind.
        let err = Runner::new(RunnerConfig {
            bwrap: samokoder_core::runner::BwrapMode::Require { path: None },
            cgroup: CgroupMode::Disabled,
            ..RunnerConfig::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("process_limit is unavailable: running as root"),
            "{err}"
        );
    }
}
