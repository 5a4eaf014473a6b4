//! The PostgreSQL backend, through sqlx.
//!
//! Native types throughout (UUID, TIMESTAMPTZ, JSONB, BYTEA; see
//! `migrations/postgres/0001_initial.sql`). Concurrency comes from the database: compare-and-swap
//! `UPDATE ... WHERE` statements (READ COMMITTED re-checks the condition on the newest row
//! version, so exactly one of two racing swaps matches), row locks for per-run counters, and
//! `FOR UPDATE SKIP LOCKED` for the job queue, whose times come from the database clock so
//! workers on several machines agree on lease expiry.

mod content;
mod jobs;
mod projects;
mod runs;
mod states;
mod users;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Decode, Postgres, Row, Transaction, Type};

use crate::error::{StoreError, StoreResult};
use crate::migrations::{self, AppliedMigration};
use crate::model::{MigrationReport, PoolStats, now};
use crate::repo::StoreAdmin;
use crate::sqlx_util::{self, Family};
use crate::store::StoreOptions;

/// The PostgreSQL backend: one pool.
pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub(crate) async fn open(options: &StoreOptions) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|_| StoreError::invalid("malformed PostgreSQL URL"))?
            .application_name("samokoder");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(err("database", "connecting to PostgreSQL"))?;
        Ok(Self { pool })
    }

    async fn begin(&self, action: &'static str) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(err("transaction", action))
    }
}

/// `.map_err(err("user", "creating user"))`.
fn err(entity: &'static str, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    sqlx_util::err(Family::Postgres, entity, action)
}

/// Commits, mapping the error.
async fn commit(tx: Transaction<'static, Postgres>, action: &'static str) -> StoreResult<()> {
    tx.commit().await.map_err(err("transaction", action))
}

/// Typed column access with the store's errors.
trait RowExt {
    fn col<T>(&self, name: &str) -> StoreResult<T>
    where
        T: for<'r> Decode<'r, Postgres> + Type<Postgres>;
    fn parsed<E: FromStr<Err = StoreError>>(&self, name: &str) -> StoreResult<E>;
}

impl RowExt for PgRow {
    fn col<T>(&self, name: &str) -> StoreResult<T>
    where
        T: for<'r> Decode<'r, Postgres> + Type<Postgres>,
    {
        self.try_get(name).map_err(|e| {
            tracing::warn!(error = %e, column = name, "cannot decode PostgreSQL column");
            StoreError::corrupt("row", format!("column {name} holds an unexpected value"))
        })
    }

    fn parsed<E: FromStr<Err = StoreError>>(&self, name: &str) -> StoreResult<E> {
        self.col::<String>(name)?.parse()
    }
}

#[async_trait]
impl StoreAdmin for PgStore {
    fn backend(&self) -> &'static str {
        "sqlx-postgres"
    }

    async fn migrate(&self) -> StoreResult<MigrationReport> {
        const ACTION: &str = "applying migrations";
        let mut tx = self.begin(ACTION).await?;
        // One advisory lock per schema: concurrent migrators (several servers starting at once)
        // take turns, and the loser finds the work done. The diesel backend takes the same lock.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('samokoder_schema_migrations:' || current_schema()))",
        )
        .execute(&mut *tx)
        .await
        .map_err(err("migration", ACTION))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS samokoder_schema_migrations (
                version    BIGINT      NOT NULL PRIMARY KEY,
                name       TEXT        NOT NULL,
                checksum   TEXT        NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL
            )",
        )
        .execute(&mut *tx)
        .await
        .map_err(err("migration", ACTION))?;
        let rows = sqlx::query(
            "SELECT version, checksum FROM samokoder_schema_migrations ORDER BY version",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(err("migration", ACTION))?;
        let applied = rows
            .iter()
            .map(|row| {
                Ok(AppliedMigration {
                    version: row.col("version")?,
                    checksum: row.col("checksum")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;

        let mut report = MigrationReport {
            applied: Vec::new(),
            current_version: applied.iter().map(|a| a.version).max().unwrap_or(0),
        };
        for migration in migrations::pending(migrations::POSTGRES, &applied)? {
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration {
                    version: migration.version,
                    name: migration.name.into(),
                    detail: "the SQL failed".into(),
                    source: Some(Box::new(e)),
                })?;
            sqlx::query(
                "INSERT INTO samokoder_schema_migrations (version, name, checksum, applied_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(migration.checksum())
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(err("migration", ACTION))?;
            report.applied.push(migration.version);
            report.current_version = migration.version;
        }
        commit(tx, ACTION).await?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "PostgreSQL schema migrated");
        }
        Ok(report)
    }

    async fn health_check(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(err("database", "checking health"))?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(size);
        PoolStats {
            size,
            idle,
            in_use: size - idle,
            max_size: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn unreachable_server_is_unavailable_and_url_is_not_leaked() {
        // Port 1 refuses connections on any sane host.
        let options = StoreOptions::new("postgres://app:s3cret@127.0.0.1:1/db")
            .acquire_timeout(Duration::from_millis(500));
        let Err(error) = PgStore::open(&options).await else {
            panic!("connected to port 1");
        };
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(error.is_transient());
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[tokio::test]
    async fn malformed_url_is_invalid_input() {
        let options = StoreOptions::new("postgres://[::1");
        assert!(matches!(
            PgStore::open(&options).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}
