//! The backend factories and the runner every conformance case goes through.
//!
//! To run the suite against a new backend: implement [`TestBackend`] (an empty, isolated
//! database and the options that open it with that backend) and add one
//! `for_each_case!(backend_suite!(...))` line in `main.rs`.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use samokoder_store::testing::ScratchDatabase;
use samokoder_store::{BackendKind, Store, StoreOptions, connect_with};

/// A backend under test.
#[async_trait]
pub trait TestBackend: Send + Sync + 'static {
    /// Name for log lines.
    fn name(&self) -> &'static str;

    /// A fresh, empty database whose options open it with this backend, or `None` (after
    /// printing a loud SKIPPED line) when the backend cannot run here.
    async fn create_database(&self) -> Option<ScratchDatabase>;
}

/// What a case gets: a migrated store on its own database, and ways to get more.
pub struct Ctx {
    /// The store under test, migrated.
    pub store: Store,
    /// Options that open another store on the same database (a second "process").
    pub options: StoreOptions,
    backend: Arc<dyn TestBackend>,
    databases: Arc<Mutex<Vec<ScratchDatabase>>>,
}

impl Ctx {
    /// A store on another fresh database, not migrated, and the options that open it.
    pub async fn empty_store(&self) -> (Store, StoreOptions) {
        let db = self
            .backend
            .create_database()
            .await
            .expect("the backend created one database, so it can create another");
        let options = db.options().clone();
        self.databases.lock().unwrap().push(db);
        let store = connect_with(&options).await.expect("open empty database");
        (store, options)
    }

    /// Another store on the case's database.
    pub async fn reopen(&self) -> Store {
        connect_with(&self.options).await.expect("reopen database")
    }
}

/// Runs one case on a fresh database of `backend`, then removes every database the case used,
/// whether it passed or panicked.
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
    let options = db.options().clone();
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
    // Spawned so a panic is caught and the databases still get removed.
    let outcome = tokio::spawn(case(ctx)).await;
    store.close().await;
    let dbs = std::mem::take(&mut *databases.lock().unwrap());
    for db in dbs {
        if let Err(e) = db.remove().await {
            eprintln!("{}: could not remove a test database: {e}", backend.name());
        }
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

    async fn create_database(&self) -> Option<ScratchDatabase> {
        Some(ScratchDatabase::sqlite().expect("scratch SQLite database"))
    }
}

/// The PostgreSQL server tests use, from `SAMOKODER_TEST_POSTGRES_URL`; `None` (after a loud
/// SKIPPED line) when unset.
pub fn postgres_url(backend: &str) -> Option<String> {
    samokoder_store::testing::postgres_url_or_skip(&format!("{backend} conformance case not run"))
}

/// A scratch schema on the test server, opened with `backend`. Any PostgreSQL backend can use
/// this (it needs the `sqlx-postgres` feature to create and drop the schema).
pub async fn postgres_database(backend: BackendKind, name: &str) -> Option<ScratchDatabase> {
    let base = postgres_url(name)?;
    #[cfg(feature = "sqlx-postgres")]
    {
        let mut db = ScratchDatabase::postgres(&base).await.unwrap_or_else(|e| {
            panic!("create a scratch schema on SAMOKODER_TEST_POSTGRES_URL: {e}")
        });
        db.options_mut().backend = Some(backend);
        // Enough connections for the concurrency cases (8 workers, 50 racing inserts).
        db.options_mut().max_connections = 12;
        Some(db)
    }
    #[cfg(not(feature = "sqlx-postgres"))]
    {
        let _ = (base, backend);
        eprintln!(
            "SKIPPED: {name} conformance case not run: scratch schemas need the `sqlx-postgres` \
             feature"
        );
        None
    }
}

/// PostgreSQL through sqlx, one schema per database.
pub struct Postgres;

#[async_trait]
impl TestBackend for Postgres {
    fn name(&self) -> &'static str {
        "sqlx-postgres"
    }

    async fn create_database(&self) -> Option<ScratchDatabase> {
        postgres_database(BackendKind::SqlxPostgres, self.name()).await
    }
}

/// PostgreSQL through diesel-async, one schema per database.
pub struct DieselPostgres;

#[async_trait]
impl TestBackend for DieselPostgres {
    fn name(&self) -> &'static str {
        "diesel-postgres"
    }

    async fn create_database(&self) -> Option<ScratchDatabase> {
        if !cfg!(feature = "diesel-postgres") {
            eprintln!(
                "SKIPPED: diesel-postgres conformance case not run: the `diesel-postgres` \
                 feature is off"
            );
            return None;
        }
        postgres_database(BackendKind::DieselPostgres, self.name()).await
    }
}
