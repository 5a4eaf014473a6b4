//! The backend factories and the runner every conformance case goes through.
//!
//! To run the suite against a new backend: implement [`TestBackend`] (create an empty, isolated
//! database and say how to open it) and add one `for_each_case!(backend_suite!(...))` line in
//! `main.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use samokoder_store::{Store, StoreOptions, connect_with};

/// Cleans up one test database after the test.
pub type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One empty, isolated database for one test.
pub struct TestDatabase {
    /// How to open a store on it.
    pub options: StoreOptions,
    /// What to run after the test (drop the schema, ...).
    pub teardown: Option<Teardown>,
    /// Keeps a temporary directory alive for as long as the database is used.
    pub tempdir: Option<tempfile::TempDir>,
}

/// A backend under test.
#[async_trait]
pub trait TestBackend: Send + Sync + 'static {
    /// Name for log lines.
    fn name(&self) -> &'static str;

    /// A fresh, empty database, or `None` (after printing a loud SKIPPED line) when this backend
    /// cannot run here.
    async fn create_database(&self) -> Option<TestDatabase>;
}

/// What a case gets: a migrated store on its own database, and ways to get more.
pub struct Ctx {
    /// The store under test, migrated.
    pub store: Store,
    /// Options that open another store on the same database (a second "process").
    pub options: StoreOptions,
    backend: Arc<dyn TestBackend>,
    databases: Arc<Mutex<Vec<TestDatabase>>>,
}

impl Ctx {
    /// A store on another fresh database, not migrated.
    pub async fn empty_store(&self) -> (Store, StoreOptions) {
        let db = self
            .backend
            .create_database()
            .await
            .expect("the backend created one database, so it can create another");
        let options = db.options.clone();
        self.databases.lock().unwrap().push(db);
        let store = connect_with(&options).await.expect("open empty database");
        (store, options)
    }

    /// Another store on the case's database.
    pub async fn reopen(&self) -> Store {
        connect_with(&self.options).await.expect("reopen database")
    }
}

/// Runs one case on a fresh database of `backend`, then tears the database down whether the
/// case passed or panicked.
pub async fn run<B, F, Fut>(backend: B, case: F)
where
    B: TestBackend,
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let backend: Arc<dyn TestBackend> = Arc::new(backend);
    let Some(db) = backend.create_database().await else {
        return;
    };
    let options = db.options.clone();
    let databases = Arc::new(Mutex::new(vec![db]));
    let store = connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("{}: open store: {e}", backend.name()));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{}: migrate: {e}", backend.name()));
    let ctx = Ctx {
        store: store.clone(),
        options,
        backend: backend.clone(),
        databases: databases.clone(),
    };
    // Spawned so a panic is caught and the database still gets dropped.
    let outcome = tokio::spawn(case(ctx)).await;
    store.close().await;
    let dbs = std::mem::take(&mut *databases.lock().unwrap());
    for db in dbs {
        if let Some(teardown) = db.teardown {
            teardown.await;
        }
        drop(db.tempdir);
    }
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("case did not finish: {error}"),
        }
    }
}

/// SQLite through sqlx: a new file in a new temporary directory per database.
pub struct Sqlite;

#[async_trait]
impl TestBackend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlx-sqlite"
    }

    async fn create_database(&self) -> Option<TestDatabase> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Some(TestDatabase {
            options: StoreOptions::new(url),
            teardown: None,
            tempdir: Some(dir),
        })
    }
}

/// The PostgreSQL server tests use, from `SAMOKODER_TEST_POSTGRES_URL`.
pub fn postgres_url(backend: &str) -> Option<String> {
    match std::env::var("SAMOKODER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED: {backend} conformance case not run: set SAMOKODER_TEST_POSTGRES_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A fresh schema on the test server, and a URL whose connections use it as `search_path`;
/// the teardown drops it. Any PostgreSQL backend can use this.
pub async fn postgres_schema_database(base_url: &str) -> TestDatabase {
    use sqlx::Connection;

    let schema = format!("sk_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base_url)
        .await
        .expect("connect to SAMOKODER_TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    admin.close().await.ok();

    let separator = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
    let base = base_url.to_owned();
    let teardown: Teardown = Box::pin(async move {
        let Ok(mut admin) = sqlx::PgConnection::connect(&base).await else {
            eprintln!("could not connect to drop test schema {schema}");
            return;
        };
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut admin)
        .await
        {
            eprintln!("could not drop test schema {schema}: {e}");
        }
        admin.close().await.ok();
    });
    TestDatabase {
        options: StoreOptions::new(url).max_connections(12),
        teardown: Some(teardown),
        tempdir: None,
    }
}

/// PostgreSQL through sqlx, one schema per database.
pub struct Postgres;

#[async_trait]
impl TestBackend for Postgres {
    fn name(&self) -> &'static str {
        "sqlx-postgres"
    }

    async fn create_database(&self) -> Option<TestDatabase> {
        let base = postgres_url(self.name())?;
        if !cfg!(feature = "sqlx-postgres") {
            eprintln!(
                "SKIPPED: sqlx-postgres conformance case not run: the `sqlx-postgres` feature is \
                 off"
            );
            return None;
        }
        let mut db = postgres_schema_database(&base).await;
        db.options.backend = Some(samokoder_store::BackendKind::SqlxPostgres);
        Some(db)
    }
}
