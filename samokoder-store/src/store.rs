//! The [`Store`] bundle and the opener that picks a backend from a database URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use samokoder_auth::ports::{LoginAttemptStore, RefreshFamilyStore, RevocationStore};

use crate::error::{StoreError, StoreResult};
use crate::model::{MigrationReport, PoolStats};
use crate::repo::*;

/// Everything one backend implements: every repository, the `samokoder-auth` ports and the
/// admin operations. Implemented automatically for any type that implements them all, so a
/// backend is one struct and [`Store::from_backend`] fans it out.
pub trait Backend:
    UserRepo
    + SessionRepo
    + ProjectRepo
    + KeyRepo
    + UsageRepo
    + NotificationRepo
    + AnalyticsRepo
    + AuditRepo
    + QuotaRepo
    + RunRepo
    + StateRepo
    + FileRepo
    + EventRepo
    + QuestionRepo
    + LlmLogRepo
    + CommandLogRepo
    + JobQueue
    + RefreshFamilyStore
    + RevocationStore
    + LoginAttemptStore
    + StoreAdmin
    + 'static
{
}

impl<T> Backend for T where
    T: UserRepo
        + SessionRepo
        + ProjectRepo
        + KeyRepo
        + UsageRepo
        + NotificationRepo
        + AnalyticsRepo
        + AuditRepo
        + QuotaRepo
        + RunRepo
        + StateRepo
        + FileRepo
        + EventRepo
        + QuestionRepo
        + LlmLogRepo
        + CommandLogRepo
        + JobQueue
        + RefreshFamilyStore
        + RevocationStore
        + LoginAttemptStore
        + StoreAdmin
        + 'static
{
}

/// All repositories of one store, each behind its own trait object.
///
/// The fields are public so an embedder can replace any one of them with their own
/// implementation (see `examples/custom_store.rs`) and so consumers can take just the repository
/// they need. Cloning is cheap (it clones `Arc`s).
#[derive(Clone)]
pub struct Store {
    /// User accounts.
    pub users: Arc<dyn UserRepo>,
    /// Session maintenance (purges).
    pub sessions: Arc<dyn SessionRepo>,
    /// Projects.
    pub projects: Arc<dyn ProjectRepo>,
    /// Sealed provider keys and VCS tokens.
    pub keys: Arc<dyn KeyRepo>,
    /// LLM usage.
    pub usage: Arc<dyn UsageRepo>,
    /// Notifications.
    pub notifications: Arc<dyn NotificationRepo>,
    /// Analytics events.
    pub analytics: Arc<dyn AnalyticsRepo>,
    /// Audit log.
    pub audit: Arc<dyn AuditRepo>,
    /// Quota counters.
    pub quotas: Arc<dyn QuotaRepo>,
    /// Generation runs.
    pub runs: Arc<dyn RunRepo>,
    /// Checkpointed states and branches.
    pub states: Arc<dyn StateRepo>,
    /// Blobs and file contents.
    pub files: Arc<dyn FileRepo>,
    /// Per-run events.
    pub events: Arc<dyn EventRepo>,
    /// Pending questions.
    pub questions: Arc<dyn QuestionRepo>,
    /// LLM request log (replay cache).
    pub llm_log: Arc<dyn LlmLogRepo>,
    /// Command log.
    pub commands: Arc<dyn CommandLogRepo>,
    /// Job queue.
    pub jobs: Arc<dyn JobQueue>,
    /// `samokoder-auth` port: refresh-token families.
    pub refresh_families: Arc<dyn RefreshFamilyStore>,
    /// `samokoder-auth` port: revoked access tokens.
    pub revocations: Arc<dyn RevocationStore>,
    /// `samokoder-auth` port: login attempts.
    pub login_attempts: Arc<dyn LoginAttemptStore>,
    /// Migrations, health, pool statistics.
    pub admin: Arc<dyn StoreAdmin>,
}

impl Store {
    /// A store whose every repository is `backend`.
    pub fn from_backend<B: Backend>(backend: Arc<B>) -> Self {
        Self {
            users: backend.clone(),
            sessions: backend.clone(),
            projects: backend.clone(),
            keys: backend.clone(),
            usage: backend.clone(),
            notifications: backend.clone(),
            analytics: backend.clone(),
            audit: backend.clone(),
            quotas: backend.clone(),
            runs: backend.clone(),
            states: backend.clone(),
            files: backend.clone(),
            events: backend.clone(),
            questions: backend.clone(),
            llm_log: backend.clone(),
            commands: backend.clone(),
            jobs: backend.clone(),
            refresh_families: backend.clone(),
            revocations: backend.clone(),
            login_attempts: backend.clone(),
            admin: backend,
        }
    }

    /// Applies pending migrations (see [`StoreAdmin::migrate`]).
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        self.admin.migrate().await
    }

    /// One round trip to the database.
    pub async fn health_check(&self) -> StoreResult<()> {
        self.admin.health_check().await
    }

    /// Connection-pool figures.
    pub fn pool_stats(&self) -> PoolStats {
        self.admin.pool_stats()
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.admin.backend()
    }

    /// Closes the connection pool(s).
    pub async fn close(&self) {
        self.admin.close().await;
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("pool", &self.pool_stats())
            .finish_non_exhaustive()
    }
}

/// The backends this crate can open, picked from the URL scheme by [`BackendKind::from_url`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// `sqlite:` URLs, through sqlx (feature `sqlx-sqlite`).
    SqlxSqlite,
    /// `postgres:` and `postgresql:` URLs, through sqlx (feature `sqlx-postgres`).
    SqlxPostgres,
    /// `postgres:` and `postgresql:` URLs, through diesel-async (feature `diesel-postgres`).
    /// Chosen by URL only in a build without `sqlx-postgres`; otherwise ask for it with
    /// [`StoreOptions::backend`]. Plaintext connections only (see [`crate::diesel_pg`]).
    DieselPostgres,
}

impl BackendKind {
    /// The backend for a URL, by scheme. [`StoreError::InvalidInput`] for an unknown scheme.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::SqlxSqlite),
            // sqlx when it is built in; diesel-async when it is the only PostgreSQL backend.
            "postgres" | "postgresql"
                if cfg!(feature = "diesel-postgres") && !cfg!(feature = "sqlx-postgres") =>
            {
                Ok(Self::DieselPostgres)
            }
            "postgres" | "postgresql" => Ok(Self::SqlxPostgres),
            _ => Err(StoreError::invalid(format!(
                "unsupported database URL scheme {scheme:?} (expected sqlite: or postgres:)"
            ))),
        }
    }

    /// The backend's name, as [`StoreAdmin::backend`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::SqlxSqlite => "sqlx-sqlite",
            Self::SqlxPostgres => "sqlx-postgres",
            Self::DieselPostgres => "diesel-postgres",
        }
    }
}

/// How to open a store.
#[derive(Clone)]
pub struct StoreOptions {
    /// The database URL: `sqlite://path/to/file.db`, `sqlite::memory:`, or
    /// `postgres://user:password@host:port/database`. The SQLite path comes from the server's
    /// data directory, never from a request.
    pub url: String,
    /// Which backend to use; `None` picks by URL scheme.
    pub backend: Option<BackendKind>,
    /// Most connections in the pool (for SQLite: the read pool; writes go through one
    /// connection).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a free connection before failing with
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// SQLite: create the database file when missing.
    pub create_if_missing: bool,
}

impl StoreOptions {
    /// Defaults for `url`: 8 connections, 10 s acquire timeout, 5 s busy timeout, create the
    /// SQLite file when missing.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            backend: None,
            max_connections: 8,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
            create_if_missing: true,
        }
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets the acquire timeout.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> StoreResult<()> {
        if self.max_connections == 0 {
            return Err(StoreError::invalid("max_connections must be at least 1"));
        }
        if self.min_connections > self.max_connections {
            return Err(StoreError::invalid(
                "min_connections must not exceed max_connections",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact_url(&self.url))
            .field("backend", &self.backend)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("create_if_missing", &self.create_if_missing)
            .finish()
    }
}

/// The URL with any password replaced by `***`, for logs: the one in the user-info part and
/// the `password` / `sslpassword` query parameters (which sqlx and libpq accept too).
///
/// A password that was not percent-encoded may hold `/`, `?`, `#` or `@`; the user-info is
/// therefore taken to end at the *last* `@`, which errs towards hiding too much.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (userinfo, after) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => out.push_str(&format!("{user}:***@")),
            None => out.push_str(&format!("{userinfo}@")),
        }
    }
    match after.split_once('?') {
        Some((location, query)) => {
            out.push_str(location);
            out.push('?');
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("password")
                            || key.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{key}=***")
                    }
                    _ => parameter.to_owned(),
                })
                .collect();
            out.push_str(&parameters.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

/// Opens a store with default options; see [`connect_with`].
pub async fn connect(url: &str) -> StoreResult<Store> {
    connect_with(&StoreOptions::new(url)).await
}

/// Opens a store: picks the backend, opens its connection pool(s) and checks one connection.
/// It does not migrate; call [`Store::migrate`].
///
/// [`StoreError::InvalidInput`] for an unknown scheme, a malformed URL or a backend whose cargo
/// feature is off; [`StoreError::Unavailable`] when the database cannot be reached.
pub async fn connect_with(options: &StoreOptions) -> StoreResult<Store> {
    options.validate()?;
    let kind = match options.backend {
        Some(kind) => kind,
        None => BackendKind::from_url(&options.url)?,
    };
    match kind {
        BackendKind::SqlxSqlite => open_sqlite(options).await,
        BackendKind::SqlxPostgres => open_postgres(options).await,
        BackendKind::DieselPostgres => open_diesel_postgres(options).await,
    }
}

#[cfg(feature = "sqlx-sqlite")]
async fn open_sqlite(options: &StoreOptions) -> StoreResult<Store> {
    let backend = crate::sqlite::SqliteStore::open(options).await?;
    Ok(Store::from_backend(Arc::new(backend)))
}

#[cfg(not(feature = "sqlx-sqlite"))]
async fn open_sqlite(_: &StoreOptions) -> StoreResult<Store> {
    Err(StoreError::invalid(
        "this build has no SQLite backend (enable the `sqlx-sqlite` feature)",
    ))
}

#[cfg(feature = "sqlx-postgres")]
async fn open_postgres(options: &StoreOptions) -> StoreResult<Store> {
    let backend = crate::postgres::PgStore::open(options).await?;
    Ok(Store::from_backend(Arc::new(backend)))
}

#[cfg(not(feature = "sqlx-postgres"))]
async fn open_postgres(_: &StoreOptions) -> StoreResult<Store> {
    Err(StoreError::invalid(
        "this build has no sqlx PostgreSQL backend (enable the `sqlx-postgres` feature)",
    ))
}

#[cfg(feature = "diesel-postgres")]
async fn open_diesel_postgres(options: &StoreOptions) -> StoreResult<Store> {
    let backend = crate::diesel_pg::DieselPgStore::open(options).await?;
    Ok(Store::from_backend(Arc::new(backend)))
}

#[cfg(not(feature = "diesel-postgres"))]
async fn open_diesel_postgres(_: &StoreOptions) -> StoreResult<Store> {
    Err(StoreError::invalid(
        "this build has no diesel PostgreSQL backend (enable the `diesel-postgres` feature)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_backend_by_scheme() {
        assert_eq!(
            BackendKind::from_url("sqlite://data/db.sqlite").unwrap(),
            BackendKind::SqlxSqlite
        );
        assert_eq!(
            BackendKind::from_url("sqlite::memory:").unwrap(),
            BackendKind::SqlxSqlite
        );
        assert_eq!(
            BackendKind::from_url("postgresql://h/db").unwrap(),
            BackendKind::SqlxPostgres
        );
        assert!(matches!(
            BackendKind::from_url("mysql://h/db"),
            Err(StoreError::InvalidInput(_))
        ));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x?sslmode=require"),
            "postgres://app:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("sqlite://data/store.db?mode=rwc"),
            "sqlite://data/store.db?mode=rwc"
        );
        // A password as a query parameter, which sqlx and libpq both accept.
        assert_eq!(
            redact_url("postgres://db/x?user=app&password=s3cret&sslmode=require"),
            "postgres://db/x?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app:pw@db/x?sslpassword=k3y"),
            "postgres://app:***@db/x?sslpassword=***"
        );
        // Passwords that were not percent-encoded.
        for raw in ["s3/cret", "s3@cret", "s3#cret", "s3?cret"] {
            let shown = redact_url(&format!("postgres://app:{raw}@db:5432/x"));
            assert!(!shown.contains("cret"), "{raw}: {shown}");
        }
        let debug = format!("{:?}", StoreOptions::new("postgres://u:pw@h/d"));
        assert!(!debug.contains("pw@"), "{debug}");
    }

    #[test]
    fn rejects_bad_pool_sizes() {
        assert!(
            StoreOptions::new("sqlite::memory:")
                .max_connections(0)
                .validate()
                .is_err()
        );
    }
}
