//! What the sandbox costs, measured against the same work without it in the same run.
//!
//! - `spawn/*`: one command (`true`) through the runner in the jail (user, pid, mount and
//!   network namespaces, the control group when the host has one, `prlimit`) against a plain
//!   spawn of the same program. After criterion's table: the ratio and the jail's start
//!   overhead per command (goal: under 30 ms).
//! - egress: the latency a request gains through the egress proxy. A Python client makes 200
//!   sequential HTTP requests to a local server: directly and through the proxy from an
//!   unconfined command (the proxy alone), and through the proxy from a jailed command (the
//!   socat relay, the Unix socket and the proxy). It prints the mean of each and the added
//!   milliseconds per request.
//!
//! - install: the `fullstack-ts` template's dependencies installed in the jail from its
//!   lockfile, with an empty package cache and again (a fresh directory) with the cache that
//!   install left: the ratio, and the registry connections each made. Only where the
//!   registries are reachable (`SAMOKODER_TEST_REGISTRY=1`); skipped with a notice otherwise.
//!
//! Run with `cargo bench --bench sandbox` (about two minutes). Needs bubblewrap and socat; the
//! jail's half is skipped with a notice without them.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use criterion::Criterion;
use samokoder_core::engine::{CancellationToken, Quietly, prepare_dependencies};
use samokoder_core::install::Wanted;
use samokoder_core::runner::{
    BwrapMode, CommandSpec, EgressPolicy, Network, Runner, RunnerConfig, SandboxKind,
};
use samokoder_core::templates::TemplateVars;
use samokoder_core::workspace::{MaterializeOptions, MemoryBlobs, materialize};

/// Times `n` sequential GETs of `url`, directly (`direct`) or through the proxy the runner
/// set in the environment (`proxy`); prints the mean in microseconds.
const REQUESTS_PY: &str = r#"
import sys, time, urllib.request
mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if mode == "direct" else urllib.request.build_opener()
opener.open(url).read()
start = time.perf_counter()
for _ in range(n):
    opener.open(url).read()
print(int((time.perf_counter() - start) / n * 1e6))
"#;

/// An HTTP server answering every request with a short body, on a thread per connection.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

fn config(bwrap: BwrapMode, port: u16) -> RunnerConfig {
    RunnerConfig {
        bwrap,
        egress: EgressPolicy {
            allowed_hosts: vec![format!("127.0.0.1:{port}")],
            allowed_private_networks: vec!["127.0.0.1/32".into()],
        },
        ..RunnerConfig::default()
    }
}

fn mean_request_us(rt: &tokio::runtime::Runtime, runner: &Runner, mode: &str, url: &str) -> u64 {
    let dir = tempfile::tempdir().expect("workspace");
    let spec = CommandSpec::argv(["python3", "-c", REQUESTS_PY, mode, url, "200"])
        .network(Network::Egress)
        .timeout(Duration::from_secs(120));
    let out = rt
        .block_on(runner.run(dir.path(), &spec, None))
        .expect("the timing script runs");
    out.stdout
        .text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no timing: {out:?}"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = serve();
    let url = format!("http://127.0.0.1:{port}/");
    let unconfined = Runner::new(config(BwrapMode::Disabled, port)).expect("unconfined runner");
    let jail = Runner::new(config(BwrapMode::Auto { path: None }, port)).expect("runner");
    let jailed = matches!(jail.sandbox(), SandboxKind::Bubblewrap);
    if !jailed {
        println!(
            "NOTE: no jail here ({}): only the unconfined figures",
            jail.isolation().summary()
        );
    }
    let dir = tempfile::tempdir().expect("workspace");
    let spec = CommandSpec::argv(["true"]);

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("spawn");
        group.sample_size(30);
        group.bench_function("plain", |b| {
            b.to_async(&rt).iter(|| async {
                let status = tokio::process::Command::new("true")
                    .status()
                    .await
                    .expect("spawn");
                black_box(status)
            });
        });
        if jailed {
            group.bench_function("jail", |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(jail.run(dir.path(), &spec, None).await.expect("run"))
                });
            });
        }
        group.finish();
    }
    c.final_summary();

    // Paired medians, alternating so drift hits both alike.
    let runs = 41;
    let (mut plain, mut jailed_times) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let start = Instant::now();
        black_box(
            rt.block_on(async { tokio::process::Command::new("true").status().await })
                .expect("spawn"),
        );
        plain.push(start.elapsed());
        if jailed {
            let start = Instant::now();
            black_box(rt.block_on(jail.run(dir.path(), &spec, None)).expect("run"));
            jailed_times.push(start.elapsed());
        }
    }
    plain.sort_unstable();
    let plain = plain[runs / 2];
    println!("\nspawn of `true`, median of {runs}: plain {plain:?}");
    if jailed {
        jailed_times.sort_unstable();
        let jailed_median = jailed_times[runs / 2];
        println!(
            "  in the jail {jailed_median:?} = {:.1}x plain; start overhead {:.1} ms per command (goal: under 30 ms)",
            jailed_median.as_secs_f64() / plain.as_secs_f64(),
            (jailed_median.saturating_sub(plain)).as_secs_f64() * 1000.0
        );
    }

    let direct = mean_request_us(&rt, &unconfined, "direct", &url);
    let proxied = mean_request_us(&rt, &unconfined, "proxy", &url);
    println!("\nHTTP request to a local server, mean of 200: direct {direct} µs");
    println!(
        "  through the egress proxy {proxied} µs = {:.2}x direct (+{:.2} ms per request)",
        proxied as f64 / direct as f64,
        (proxied as f64 - direct as f64) / 1000.0
    );
    if jailed {
        let relayed = mean_request_us(&rt, &jail, "proxy", &url);
        println!(
            "  from the jail, through its relay and the proxy {relayed} µs = {:.2}x direct (+{:.2} ms per request)",
            relayed as f64 / direct as f64,
            (relayed as f64 - direct as f64) / 1000.0
        );
    }
    bench_install(&rt);
}

/// The full-stack template's install, cold cache against warm.
fn bench_install(rt: &tokio::runtime::Runtime) {
    if !std::env::var("SAMOKODER_TEST_REGISTRY").is_ok_and(|v| !v.is_empty() && v != "0") {
        println!(
            "\nNOTE: install figures skipped (set SAMOKODER_TEST_REGISTRY=1 where the registries are reachable)"
        );
        return;
    }
    let found = samokoder_core::runner::discover_registry_hosts();
    let cache = tempfile::tempdir().expect("cache");
    let runner = Runner::new(RunnerConfig {
        egress: EgressPolicy {
            allowed_hosts: found.hosts,
            allowed_private_networks: Vec::new(),
        },
        install_env: found.install_env,
        package_cache: Some(cache.path().to_path_buf()),
        ..RunnerConfig::default()
    })
    .expect("runner");
    let template = samokoder_core::templates::get("fullstack-ts").expect("template");
    let mut times = Vec::new();
    for _ in 0..2 {
        let mut blobs = MemoryBlobs::new();
        let snapshot = template
            .render(&TemplateVars::new("Bench"), &mut blobs)
            .expect("render");
        let dir = tempfile::tempdir().expect("workspace");
        materialize(
            &snapshot,
            &blobs,
            dir.path(),
            &MaterializeOptions::default(),
        )
        .expect("materialise");
        let before = runner.egress_stats().allowed();
        let started = Instant::now();
        rt.block_on(prepare_dependencies(
            &runner,
            dir.path(),
            &Wanted::default(),
            &mut Quietly,
            &CancellationToken::new(),
        ))
        .expect("install");
        times.push((started.elapsed(), runner.egress_stats().allowed() - before));
    }
    let ((cold, cold_connections), (warm, warm_connections)) = (times[0], times[1]);
    println!(
        "\nfullstack-ts install from its lockfile: cold cache {cold:?} ({cold_connections} registry connections), warm {warm:?} ({warm_connections}) = {:.2}x cold",
        warm.as_secs_f64() / cold.as_secs_f64()
    );
}
