//! Tests of what is specific to the diesel backend: the hand-written schema against the
//! migrated database, migration bookkeeping, error mapping, the TLS refusal and the
//! `SKIP LOCKED` claim. Repository semantics are the conformance suite's job
//! (`tests/conformance/`), which runs this backend like the others.
//!
//! Tests that need PostgreSQL read `SAMOKODER_TEST_POSTGRES_URL` and print a SKIPPED line
//! without it; each gets a fresh schema (through `search_path`), dropped afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::errors::map_error;
use super::*;
use crate::model::*;
use crate::repo::*;

fn base_url() -> Option<String> {
    crate::testing::postgres_url_or_skip("diesel-postgres test not run")
}

/// A URL whose connections use `schema` as their `search_path`.
fn schema_url(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

/// Runs `body` with the URL of a fresh, empty schema, then drops the schema whether the body
/// passed or panicked.
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = base_url() else {
        return;
    };
    let schema = format!("sk_diesel_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&base)
        .await
        .expect("connect to SAMOKODER_TEST_POSTGRES_URL");
    admin
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .expect("create test schema");
    let outcome = tokio::spawn(body(schema_url(&base, &schema))).await;
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop test schema");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A migrated store on a fresh schema.
async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(Arc<DieselPgStore>, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_schema(|url| async move {
        let store = Arc::new(
            DieselPgStore::open(&StoreOptions::new(url.clone()))
                .await
                .expect("open store"),
        );
        store.migrate().await.expect("migrate");
        body(store.clone(), url).await;
        store.close().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// schema.rs against the migrations

/// `table -> column -> (diesel type, nullable)` as written in `schema.rs`.
fn declared_schema() -> BTreeMap<String, BTreeMap<String, (String, bool)>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in include_str!("schema.rs").lines() {
        let line = line.trim();
        if let Some(table) = current.as_ref() {
            if line == "}" {
                current = None;
            } else if let Some((column, ty)) = line.split_once("->") {
                let ty = ty.trim().trim_end_matches(',');
                let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                    Some(inner) => (inner.trim_end_matches('>'), true),
                    None => (ty, false),
                };
                tables
                    .entry(table.clone())
                    .or_insert_with(BTreeMap::new)
                    .insert(column.trim().to_owned(), (ty.to_owned(), nullable));
            }
        } else if let Some((name, _)) = line.split_once(" (")
            && line.ends_with('{')
            && !name.contains(' ')
        {
            current = Some(name.to_owned());
        }
    }
    tables
}

/// PostgreSQL's `udt_name` for the diesel types `schema.rs` uses.
fn udt_name(diesel_type: &str) -> &'static str {
    match diesel_type {
        "Uuid" => "uuid",
        "Text" => "text",
        "Bool" => "bool",
        "Int4" => "int4",
        "Int8" => "int8",
        "Timestamptz" => "timestamptz",
        "Jsonb" => "jsonb",
        "Bytea" => "bytea",
        "Date" => "date",
        "Array<Text>" => "_text",
        other => panic!("schema.rs uses {other}; teach udt_name() its PostgreSQL name"),
    }
}

#[derive(QueryableByName, Debug)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[test]
fn the_schema_parser_reads_schema_rs() {
    let declared = declared_schema();
    assert!(declared.len() >= 20, "{:?}", declared.keys());
    assert_eq!(
        declared["users"]["tokens_revoked_before"],
        ("Timestamptz".to_owned(), true)
    );
    assert_eq!(
        declared["command_logs"]["argv"],
        ("Array<Text>".to_owned(), false)
    );
}

#[tokio::test]
async fn schema_matches_the_migrations() {
    with_store(|store, _| async move {
        let mut conn = store.conn("reading the catalogue").await.unwrap();
        let columns: Vec<ColumnInfo> = diesel::sql_query(
            "SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .load(&mut conn)
        .await
        .unwrap();
        let mut actual: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
        for c in columns {
            actual
                .entry(c.table_name)
                .or_default()
                .insert(c.column_name, (c.udt_name, c.is_nullable == "YES"));
        }
        let declared: BTreeMap<String, BTreeMap<String, (String, bool)>> = declared_schema()
            .into_iter()
            .map(|(table, columns)| {
                let columns = columns
                    .into_iter()
                    .map(|(name, (ty, nullable))| (name, (udt_name(&ty).to_owned(), nullable)))
                    .collect();
                (table, columns)
            })
            .collect();
        let declared_tables: BTreeSet<_> = declared.keys().collect();
        let actual_tables: BTreeSet<_> = actual.keys().collect();
        assert_eq!(
            declared_tables, actual_tables,
            "tables in schema.rs vs the migrated database"
        );
        for (table, columns) in &actual {
            assert_eq!(
                &declared[table], columns,
                "columns of {table}: schema.rs (left) vs the migrated database (right)"
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Migrations

#[tokio::test]
async fn migrate_records_versions_and_is_idempotent() {
    with_store(|store, _| async move {
        let again = store.migrate().await.unwrap();
        assert!(again.applied.is_empty());
        let latest = migrations::POSTGRES.last().unwrap();
        assert_eq!(again.current_version, latest.version);

        let mut conn = store.conn("reading bookkeeping").await.unwrap();
        let rows: Vec<(i64, String, String)> = applied::table
            .select((applied::version, applied::name, applied::checksum))
            .order(applied::version)
            .load(&mut conn)
            .await
            .unwrap();
        let expected: Vec<(i64, String, String)> = migrations::POSTGRES
            .iter()
            .map(|m| (m.version, m.name.to_owned(), m.checksum()))
            .collect();
        assert_eq!(rows, expected);
    })
    .await;
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    with_schema(|url| async move {
        let options = StoreOptions::new(url);
        let (a, b) = tokio::join!(DieselPgStore::open(&options), DieselPgStore::open(&options));
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let all: Vec<i64> = migrations::POSTGRES.iter().map(|m| m.version).collect();
        // Exactly one of them applied everything; the other found it done.
        let mut applied = [ra.applied.clone(), rb.applied.clone()];
        applied.sort();
        assert_eq!(applied, [Vec::new(), all]);
        assert_eq!(ra.current_version, rb.current_version);
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn migrate_refuses_an_edited_migration() {
    with_store(|store, _| async move {
        let mut conn = store.conn("editing bookkeeping").await.unwrap();
        diesel::update(applied::table.filter(applied::version.eq(1)))
            .set(applied::checksum.eq("0".repeat(64)))
            .execute(&mut conn)
            .await
            .unwrap();
        drop(conn);
        let err = store.migrate().await.unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 1, .. }),
            "{err:?}"
        );
    })
    .await;
}

/// Options that open `url` with the given backend.
#[cfg(feature = "sqlx-postgres")]
fn with_backend(url: &str, kind: BackendKind) -> StoreOptions {
    let mut options = StoreOptions::new(url);
    options.backend = Some(kind);
    options
}

/// One PostgreSQL database, both backends, in either order: whichever migrates first, the other
/// finds the schema current (same bookkeeping table, same checksums), and each reads and
/// continues what the other wrote.
#[cfg(feature = "sqlx-postgres")]
#[tokio::test]
async fn both_postgres_backends_share_one_database() {
    for first in [BackendKind::SqlxPostgres, BackendKind::DieselPostgres] {
        with_schema(move |url| async move {
            let second = match first {
                BackendKind::SqlxPostgres => BackendKind::DieselPostgres,
                _ => BackendKind::SqlxPostgres,
            };
            let a = crate::connect_with(&with_backend(&url, first))
                .await
                .unwrap();
            let b = crate::connect_with(&with_backend(&url, second))
                .await
                .unwrap();
            assert_eq!(a.backend(), first.name());
            assert_eq!(b.backend(), second.name());
            assert!(!a.migrate().await.unwrap().applied.is_empty());
            let report = b.migrate().await.unwrap();
            assert!(
                report.applied.is_empty(),
                "{second:?} re-applied {report:?}"
            );

            let user = a
                .users
                .create(&NewUser::new("shared@example.com", "h"))
                .await
                .unwrap();
            assert_eq!(
                b.users.find_by_email("SHARED@example.com").await.unwrap(),
                Some(user.clone())
            );
            let project = b
                .projects
                .create(&NewProject {
                    owner_id: user.id,
                    name: "shared".into(),
                    description: None,
                })
                .await
                .unwrap();
            let run = a
                .runs
                .create(&NewRun {
                    project_id: project.id,
                    user_id: user.id,
                    description: "d".into(),
                    autonomy: "auto".into(),
                    budget: serde_json::json!({}),
                    options: serde_json::json!({}),
                })
                .await
                .unwrap();
            // One per-run counter, whichever backend appends.
            let seqs = [
                a.events
                    .append(run.id, "k", &serde_json::json!({}))
                    .await
                    .unwrap()
                    .seq,
                b.events
                    .append(run.id, "k", &serde_json::json!({}))
                    .await
                    .unwrap()
                    .seq,
                a.events
                    .append(run.id, "k", &serde_json::json!({}))
                    .await
                    .unwrap()
                    .seq,
            ];
            assert_eq!(seqs, [1, 2, 3]);

            // A job enqueued through one is claimed and completed through the other.
            let job = a
                .jobs
                .enqueue(&NewJob::new("shared", serde_json::json!({})))
                .await
                .unwrap()
                .job;
            let claimed = b
                .jobs
                .claim("w", &["shared"], Duration::from_secs(30))
                .await
                .unwrap()
                .expect("due job");
            assert_eq!(claimed.id, job.id);
            a.jobs.complete(job.id, "w").await.unwrap();
            assert_eq!(
                b.jobs.get(job.id).await.unwrap().status,
                JobStatus::Completed
            );
            a.close().await;
            b.close().await;
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn database_error(kind: DatabaseErrorKind) -> DieselError {
    // diesel's own DatabaseErrorInformation for a bare message: no constraint name.
    DieselError::DatabaseError(
        kind,
        Box::new(String::from(
            "raw driver text: duplicate key value violates ...",
        )),
    )
}

#[test]
fn driver_errors_map_to_typed_errors_without_driver_text() {
    let cases = [
        (DatabaseErrorKind::UniqueViolation, "conflict"),
        (DatabaseErrorKind::ForeignKeyViolation, "missing_reference"),
        (DatabaseErrorKind::CheckViolation, "invalid_input"),
        (DatabaseErrorKind::NotNullViolation, "invalid_input"),
        (DatabaseErrorKind::SerializationFailure, "unavailable"),
        (DatabaseErrorKind::ClosedConnection, "unavailable"),
        (DatabaseErrorKind::UnableToSendCommand, "unavailable"),
        (DatabaseErrorKind::ReadOnlyTransaction, "database_error"),
    ];
    for (kind, code) in cases {
        let err = map_error("user", "creating user", database_error(kind));
        assert_eq!(err.code(), code, "{kind:?}");
        let shown = err.to_string();
        assert!(!shown.contains("raw driver text"), "{kind:?}: {shown}");
        assert!(shown.contains("user"), "{kind:?}: {shown}");
    }
    assert!(map_error("user", "loading user", DieselError::NotFound).is_not_found());
    let corrupt = map_error(
        "user",
        "loading user",
        DieselError::DeserializationError("bad bytes".into()),
    );
    assert_eq!(corrupt.code(), "corrupt_data");
}

#[tokio::test]
async fn constraint_violations_from_the_server_are_typed() {
    with_store(|store, _| async move {
        let user = UserRepo::create(store.as_ref(), &NewUser::new("a@example.com", "h"))
            .await
            .unwrap();
        let taken = UserRepo::create(store.as_ref(), &NewUser::new(" A@Example.com", "h"))
            .await
            .unwrap_err();
        assert!(taken.is_conflict(), "{taken:?}");

        let orphan = ProjectRepo::create(
            store.as_ref(),
            &NewProject {
                owner_id: uuid::Uuid::now_v7(),
                name: "p".into(),
                description: None,
            },
        )
        .await
        .unwrap_err();
        match &orphan {
            StoreError::MissingReference { entity, detail } => {
                assert_eq!(*entity, "project");
                // The constraint name is ours (from the migration), not driver prose.
                assert!(detail.contains("projects_owner_id_fkey"), "{detail}");
            }
            other => panic!("expected MissingReference, got {other:?}"),
        }

        let project = ProjectRepo::create(
            store.as_ref(),
            &NewProject {
                owner_id: user.id,
                name: "p".into(),
                description: None,
            },
        )
        .await
        .unwrap();
        let branch = StateRepo::create_branch(store.as_ref(), project.id, "main", None)
            .await
            .unwrap();
        let twice = StateRepo::create_branch(store.as_ref(), project.id, &branch.name, None)
            .await
            .unwrap_err();
        assert!(twice.is_conflict(), "{twice:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Opening

#[tokio::test]
async fn refuses_malformed_urls_before_connecting() {
    // None of these needs a server: each is refused before any connection is attempted.
    for url in [
        "postgres://app:s3cret@db.example.com/x?sslmode=sometimes",
        "postgres://app:s3cret@db.example.com/x?sslcert=/client.pem",
        "postgres://app:s3cret@db.example.com/x?sslmode=verify-ca&sslrootcert=/nonexistent.pem",
        "postgres://app:s3cret@db.example.com/x?no_such_option=1",
        "postgres://app:s3cret@db.example.com:notaport/x",
        "sqlite://data/db.sqlite",
    ] {
        let err = DieselPgStore::open(&StoreOptions::new(url))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("s3cret"), "{url}: {err}");
    }
}

#[derive(QueryableByName)]
struct SslState {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

/// Opens a store on `url` and says whether its connection is encrypted.
async fn encrypted(url: &str) -> StoreResult<bool> {
    let store =
        DieselPgStore::open(&StoreOptions::new(url).acquire_timeout(Duration::from_secs(10)))
            .await?;
    let mut conn = store.conn("reading TLS state").await?;
    let state: SslState =
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .get_result(&mut conn)
            .await
            .expect("pg_stat_ssl");
    drop(conn);
    store.close().await;
    Ok(state.ssl)
}

#[tokio::test]
async fn sslmode_is_honoured_against_the_test_server() {
    let Some(base) = base_url() else {
        return;
    };
    let with = |params: &str| {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}{params}")
    };
    assert!(!encrypted(&with("sslmode=disable")).await.unwrap());

    let mut admin = AsyncPgConnection::establish(&with("sslmode=disable"))
        .await
        .unwrap();
    #[derive(QueryableByName)]
    struct Show {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let ssl: Show = diesel::sql_query("SELECT current_setting('ssl') AS value")
        .get_result(&mut admin)
        .await
        .unwrap();
    if ssl.value != "on" {
        crate::testing::announce_skip("TLS checks: the test server has ssl = off");
        return;
    }
    // Encrypted by default (prefer) and when required; no certificate check in either, which
    // is what libpq and sqlx do too (the test server's certificate is self-signed).
    assert!(encrypted(&base).await.unwrap());
    assert!(encrypted(&with("sslmode=require")).await.unwrap());

    // Mozilla's roots do not vouch for a self-signed certificate: refused, not downgraded.
    let err = encrypted(&with("sslmode=verify-full")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.to_lowercase().contains("certificate"), "{source}");

    // With the server's own certificate as the root, the chain checks out.
    let cert: Show = diesel::sql_query("SELECT current_setting('ssl_cert_file') AS value")
        .get_result(&mut admin)
        .await
        .unwrap();
    if std::fs::read(&cert.value).is_err() {
        crate::testing::announce_skip(&format!("certificate checks: cannot read {}", cert.value));
        return;
    }
    let root = format!("sslrootcert={}", cert.value.replace('/', "%2F"));
    assert!(
        encrypted(&with(&format!("sslmode=verify-ca&{root}")))
            .await
            .unwrap()
    );
    assert!(
        encrypted(&with(&format!("sslmode=require&{root}")))
            .await
            .unwrap()
    );
    // verify-full also checks the host name: the certificate's name is not an IP address.
    if base.contains("@127.0.0.1") {
        let err = encrypted(&with(&format!("sslmode=verify-full&{root}")))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        let by_name =
            with(&format!("sslmode=verify-full&{root}")).replace("@127.0.0.1", "@localhost");
        match encrypted(&by_name).await {
            Ok(ssl) => assert!(ssl),
            Err(e) => crate::testing::announce_skip(&format!(
                "verify-full by name: the certificate is not for localhost ({e})"
            )),
        }
    }
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: refused at once, no server needed.
    let err = DieselPgStore::open(
        &StoreOptions::new("postgres://postgres@127.0.0.1:1/test")
            .acquire_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn pool_stats_follow_checkouts() {
    with_store(|store, _| async move {
        let conn = store.conn("holding a connection").await.unwrap();
        let busy = store.pool_stats();
        assert!(busy.in_use >= 1, "{busy:?}");
        assert_eq!(busy.max_size, 8);
        drop(conn);
        let idle = store.pool_stats();
        assert_eq!(idle.in_use, 0, "{idle:?}");
        assert!(idle.idle >= 1, "{idle:?}");
        store.health_check().await.unwrap();
    })
    .await;
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

#[tokio::test]
async fn connections_use_the_url_schema_and_name_themselves() {
    with_store(|store, _| async move {
        let mut conn = store.conn("reading settings").await.unwrap();
        let name: Setting =
            diesel::sql_query("SELECT current_setting('application_name') AS value")
                .get_result(&mut conn)
                .await
                .unwrap();
        assert_eq!(name.value, "samokoder");
        // The tables landed in the schema the URL's search_path names, not in `public`.
        let schema: Setting = diesel::sql_query(
            "SELECT table_schema::text AS value FROM information_schema.tables
             WHERE table_name = 'jobs' AND table_schema = current_schema()",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        assert!(schema.value.starts_with("sk_diesel_"), "{}", schema.value);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The queue

#[tokio::test]
async fn claim_skips_a_job_locked_by_another_transaction() {
    with_store(|store, url| async move {
        let first = store
            .enqueue(&NewJob::new("k", serde_json::json!({"n": 1})))
            .await
            .unwrap()
            .job;
        let second = store
            .enqueue(&NewJob::new("k", serde_json::json!({"n": 2})))
            .await
            .unwrap()
            .job;

        // Another session holds the oldest job's row lock, as a claimer mid-transaction would.
        let mut other = AsyncPgConnection::establish(&url).await.unwrap();
        other.batch_execute("BEGIN").await.unwrap();
        diesel::sql_query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Uuid, _>(first.id)
            .execute(&mut other)
            .await
            .unwrap();

        // SKIP LOCKED: the claim neither waits for that lock nor takes the locked job.
        let claimed = tokio::time::timeout(
            Duration::from_secs(5),
            store.claim("w1", &[], Duration::from_secs(30)),
        )
        .await
        .expect("claim must not wait for the locked row")
        .unwrap()
        .expect("the unlocked job is claimable");
        assert_eq!(claimed.id, second.id);
        assert_eq!(claimed.attempts, 1);

        other.batch_execute("ROLLBACK").await.unwrap();
        let next = store
            .claim("w2", &["k"], Duration::from_secs(30))
            .await
            .unwrap()
            .expect("released job");
        assert_eq!(next.id, first.id);
        assert!(
            store
                .claim("w3", &[], Duration::from_secs(30))
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_hand_out_each_job_once() {
    with_store(|store, _| async move {
        const JOBS: usize = 40;
        for n in 0..JOBS {
            store
                .enqueue(&NewJob::new("k", serde_json::json!({ "n": n })))
                .await
                .unwrap();
        }
        let workers = (0..6).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = store
                    .claim(&format!("w{w}"), &[], Duration::from_secs(30))
                    .await
                    .unwrap()
                {
                    mine.push(job.id);
                }
                mine
            })
        });
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        let distinct: BTreeSet<_> = all.iter().collect();
        assert_eq!(all.len(), JOBS, "every job claimed");
        assert_eq!(distinct.len(), JOBS, "no job claimed twice");
        assert_eq!(store.stats().await.unwrap().running, JOBS as i64);
    })
    .await;
}
