//! The same store workload on every backend built in: create a user, create a project, list 50
//! projects, record one LLM usage row, and a job round trip (enqueue, claim, complete).
//!
//! SQLite runs on a file in a scratch directory (WAL, as the server uses it). PostgreSQL runs
//! when `SAMOKODER_TEST_POSTGRES_URL` is set and the `sqlx-postgres` feature is on (e.g.
//! `cargo bench --bench store --all-features`), in a scratch schema dropped at the end; the
//! diesel-async backend runs too when `diesel-postgres` is on as well.
//!
//! criterion measures each operation per backend; then a manual loop of the same operations, in
//! the same process, gives medians and the ratio of every backend to the first one, printed as a
//! table. Sample counts are small: the whole run takes about a minute.
//!
//! To add a backend, add an entry to [`backends`].

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use samokoder::store::testing::ScratchDatabase;
use samokoder::store::{
    NewJob, NewProject, NewUsageRecord, NewUser, ProjectQuery, RequestOutcome, Store, TokenCounts,
    connect_with,
};
use serde_json::json;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Calls per operation in the manual timing loop.
const RUNS: usize = 200;

type ScratchFuture = Pin<Box<dyn Future<Output = Option<ScratchDatabase>>>>;

/// A backend to measure: its name and how to get an empty database opened with it.
struct BenchBackend {
    name: &'static str,
    scratch: fn() -> ScratchFuture,
}

/// The backends of this build, in the order of the table (ratios are to the first).
fn backends() -> Vec<BenchBackend> {
    let mut list = vec![BenchBackend {
        name: "sqlx-sqlite",
        scratch: || Box::pin(async { Some(ScratchDatabase::sqlite().expect("scratch SQLite")) }),
    }];
    #[cfg(feature = "sqlx-postgres")]
    list.push(BenchBackend {
        name: "sqlx-postgres",
        scratch: || {
            Box::pin(async {
                let url = std::env::var("SAMOKODER_TEST_POSTGRES_URL").ok()?;
                let mut db = ScratchDatabase::postgres(&url)
                    .await
                    .expect("scratch schema on SAMOKODER_TEST_POSTGRES_URL");
                db.options_mut().backend = Some(samokoder::store::BackendKind::SqlxPostgres);
                Some(db)
            })
        },
    });
    // The same scratch schema, opened with diesel-async (the scratch helper itself uses sqlx).
    #[cfg(all(feature = "diesel-postgres", feature = "sqlx-postgres"))]
    list.push(BenchBackend {
        name: "diesel-postgres",
        scratch: || {
            Box::pin(async {
                let url = std::env::var("SAMOKODER_TEST_POSTGRES_URL").ok()?;
                let mut db = ScratchDatabase::postgres(&url)
                    .await
                    .expect("scratch schema on SAMOKODER_TEST_POSTGRES_URL");
                db.options_mut().backend = Some(samokoder::store::BackendKind::DieselPostgres);
                Some(db)
            })
        },
    });
    list
}

/// An opened, migrated store with a user who owns 60 projects.
struct Fixture {
    store: Store,
    scratch: ScratchDatabase,
    owner: Uuid,
    counter: AtomicU64,
}

async fn fixture(backend: &BenchBackend) -> Option<Fixture> {
    let scratch = (backend.scratch)().await?;
    let store = connect_with(scratch.options()).await.expect("open store");
    store.migrate().await.expect("migrate");
    let owner = store
        .users
        .create(&NewUser::new("owner@bench.example", "hash"))
        .await
        .expect("owner")
        .id;
    for i in 0..60 {
        store
            .projects
            .create(&NewProject {
                owner_id: owner,
                name: format!("project {i}"),
                description: None,
            })
            .await
            .expect("project");
    }
    Some(Fixture {
        store,
        scratch,
        owner,
        counter: AtomicU64::new(0),
    })
}

#[derive(Clone, Copy)]
enum Op {
    CreateUser,
    CreateProject,
    ListProjects50,
    RecordUsage,
    JobRoundTrip,
}

impl Op {
    const ALL: [Op; 5] = [
        Op::CreateUser,
        Op::CreateProject,
        Op::ListProjects50,
        Op::RecordUsage,
        Op::JobRoundTrip,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::CreateUser => "create_user",
            Op::CreateProject => "create_project",
            Op::ListProjects50 => "list_50_projects",
            Op::RecordUsage => "record_usage",
            Op::JobRoundTrip => "job_enqueue_claim_complete",
        }
    }

    async fn run(self, f: &Fixture) {
        let store = &f.store;
        match self {
            Op::CreateUser => {
                let n = f.counter.fetch_add(1, Ordering::Relaxed);
                let email = format!("user-{n}-{}@bench.example", Uuid::new_v4().simple());
                black_box(
                    store
                        .users
                        .create(&NewUser::new(email, "hash"))
                        .await
                        .expect("user"),
                );
            }
            Op::CreateProject => {
                let project = NewProject {
                    owner_id: f.owner,
                    name: "bench project".into(),
                    description: Some("measured".into()),
                };
                // The owner's list grows while this runs; listing reads only the 50 newest
                // through the (owner, created_at) index, so its cost does not grow with it.
                black_box(store.projects.create(&project).await.expect("project"));
            }
            Op::ListProjects50 => {
                let page = store
                    .projects
                    .list(&ProjectQuery::first_page(f.owner, 50))
                    .await
                    .expect("list");
                assert_eq!(page.items.len(), 50);
                black_box(page);
            }
            Op::RecordUsage => {
                let usage = NewUsageRecord {
                    user_id: f.owner,
                    project_id: None,
                    run_id: None,
                    provider: "openai".into(),
                    model: "gpt-4.1".into(),
                    agent_role: Some("developer".into()),
                    counts: TokenCounts {
                        prompt_tokens: 1_200,
                        completion_tokens: 300,
                        cached_tokens: 0,
                        cost_micros: 4_800,
                    },
                    latency_ms: 900,
                    outcome: RequestOutcome::Success,
                    at: Utc::now(),
                };
                black_box(store.usage.record(&usage).await.expect("usage"));
            }
            Op::JobRoundTrip => {
                let job = store
                    .jobs
                    .enqueue(&NewJob::new("bench", json!({"n": 1})))
                    .await
                    .expect("enqueue")
                    .job;
                let claimed = store
                    .jobs
                    .claim("bench-worker", &["bench"], Duration::from_secs(60))
                    .await
                    .expect("claim")
                    .expect("the job just enqueued is due");
                assert_eq!(claimed.id, job.id);
                store
                    .jobs
                    .complete(claimed.id, "bench-worker")
                    .await
                    .expect("complete");
            }
        }
    }
}

/// Median and mean of `RUNS` sequential calls of `op`.
fn time_op(rt: &Runtime, f: &Fixture, op: Op) -> (Duration, Duration) {
    rt.block_on(async {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let start = Instant::now();
            op.run(f).await;
            times.push(start.elapsed());
        }
        times.sort_unstable();
        let mean = times.iter().sum::<Duration>() / RUNS as u32;
        (times[RUNS / 2], mean)
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rt = Runtime::new().expect("tokio runtime");
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let mut fixtures = Vec::new();
    for backend in backends() {
        match rt.block_on(fixture(&backend)) {
            Some(f) => fixtures.push((backend.name, f)),
            None => eprintln!(
                "SKIPPED: {} store bench not run: set SAMOKODER_TEST_POSTGRES_URL",
                backend.name
            ),
        }
    }
    if !cfg!(feature = "sqlx-postgres") && std::env::var_os("SAMOKODER_TEST_POSTGRES_URL").is_some()
    {
        eprintln!(
            "note: SAMOKODER_TEST_POSTGRES_URL is set but this build has no sqlx-postgres \
             backend; run with --all-features to compare"
        );
    }

    for op in Op::ALL {
        let mut group = criterion.benchmark_group(format!("store/{}", op.name()));
        for (name, f) in &fixtures {
            group.bench_function(*name, |b| b.to_async(&rt).iter(|| op.run(f)));
        }
        group.finish();
    }
    criterion.final_summary();

    // The same operations again, timed by hand so the backends can be compared in one table.
    let names: Vec<&str> = fixtures.iter().map(|(name, _)| *name).collect();
    println!("\nstore workload: median (mean) of {RUNS} sequential calls, microseconds");
    let mut header = format!("  {:<28}", "operation");
    for name in &names {
        header.push_str(&format!(" {name:>22}"));
    }
    for name in names.iter().skip(1) {
        header.push_str(&format!(" {:>22}", format!("{name}/{}", names[0])));
    }
    println!("{header}");
    for op in Op::ALL {
        let timings: Vec<(Duration, Duration)> =
            fixtures.iter().map(|(_, f)| time_op(&rt, f, op)).collect();
        let mut line = format!("  {:<28}", op.name());
        for (median, mean) in &timings {
            line.push_str(&format!(
                " {:>22}",
                format!("{:.0} ({:.0})", micros(*median), micros(*mean))
            ));
        }
        for (median, _) in timings.iter().skip(1) {
            line.push_str(&format!(
                " {:>22}",
                format!("{:.2}x", median.as_secs_f64() / timings[0].0.as_secs_f64())
            ));
        }
        println!("{line}");
    }

    for (_, f) in fixtures {
        rt.block_on(async {
            f.store.close().await;
            f.scratch.remove().await.expect("remove scratch database");
        });
    }
}
