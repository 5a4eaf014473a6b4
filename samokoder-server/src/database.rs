//! Opening the store from configuration, and what watches it: the readiness checks of the
//! database and the job queue, and the metric probes of the connection pool and queue depth.

use std::path::Path;

use async_trait::async_trait;
use samokoder_store::{MigrationReport, Store, StoreError, StoreOptions};

use crate::config::Config;
use crate::error::BoxError;
use crate::observability::metrics::{self, ScrapeProbe};
use crate::readiness::ReadinessCheck;

/// The name of the pool in the `db_pool_*` metrics.
pub const POOL_NAME: &str = "main";
/// The name of the job queue in the `job_queue_depth` metric.
pub const QUEUE_NAME: &str = "jobs";

/// Opens the store `config` names (`database_url`, or a SQLite file in the data directory,
/// which is created first). Does not migrate: see [`migrate`].
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let url = config.database_url();
    if config.database_url.is_none() {
        create_data_dir(&config.data_dir).map_err(|source| StoreError::Unavailable {
            context: format!("creating the data directory {}", config.data_dir.display()),
            source: Box::new(source),
        })?;
    }
    let mut options = StoreOptions::new(url.expose())
        .max_connections(config.database.max_connections)
        .acquire_timeout(config.database.acquire_timeout());
    options.backend = config.database.backend.map(|backend| backend.kind());
    samokoder_store::connect_with(&options).await
}

/// Applies the pending migrations and logs what was applied.
pub async fn migrate(store: &Store) -> Result<MigrationReport, StoreError> {
    let report = store.migrate().await?;
    if report.applied.is_empty() {
        tracing::info!(
            version = report.current_version,
            backend = store.backend(),
            "database schema is current"
        );
    } else {
        tracing::info!(
            applied = ?report.applied,
            version = report.current_version,
            backend = store.backend(),
            "applied database migrations"
        );
    }
    Ok(report)
}

/// The data directory, readable by its owner only (it holds the database and development keys).
fn create_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(dir)?.permissions();
        if permissions.mode() & 0o077 != 0 {
            permissions.set_mode(0o700);
            std::fs::set_permissions(dir, permissions)?;
        }
    }
    Ok(())
}

/// `database`: one round trip.
pub(crate) struct DatabaseCheck(pub(crate) Store);

#[async_trait]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), BoxError> {
        Ok(self.0.health_check().await?)
    }
}

/// `queue`: the job queue answers (its statistics query reads the queue table).
pub(crate) struct QueueCheck(pub(crate) Store);

#[async_trait]
impl ReadinessCheck for QueueCheck {
    fn name(&self) -> &str {
        "queue"
    }

    async fn check(&self) -> Result<(), BoxError> {
        self.0.jobs.stats().await?;
        Ok(())
    }
}

/// Pool size and connections in use, at scrape time.
pub(crate) struct PoolProbe(pub(crate) Store);

#[async_trait]
impl ScrapeProbe for PoolProbe {
    fn name(&self) -> &'static str {
        "db_pool"
    }

    async fn probe(&self) -> Result<(), BoxError> {
        let stats = self.0.pool_stats();
        metrics::set_db_pool(POOL_NAME, stats.size, stats.in_use);
        Ok(())
    }
}

/// Jobs due now and waiting for a worker (queued and due, or abandoned by a worker whose lease
/// expired), at scrape time. Jobs scheduled for later do not count: nobody is behind on them.
pub(crate) struct QueueProbe(pub(crate) Store);

#[async_trait]
impl ScrapeProbe for QueueProbe {
    fn name(&self) -> &'static str {
        "job_queue"
    }

    async fn probe(&self) -> Result<(), BoxError> {
        let stats = self.0.jobs.stats().await?;
        let waiting = stats.ready.saturating_add(stats.expired).max(0);
        metrics::set_queue_depth(QUEUE_NAME, u64::try_from(waiting).unwrap_or(0));
        Ok(())
    }
}
