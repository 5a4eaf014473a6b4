//! The embedded SQLite backend, through sqlx.
//!
//! Layout: ids are 16-byte BLOBs, instants INTEGER microseconds (UTC), JSON TEXT (see
//! `migrations/sqlite/0001_initial.sql`).
//!
//! Concurrency: SQLite allows one writer at a time. Rather than letting many pooled connections
//! race for the write lock (and fail with `SQLITE_BUSY` when a deferred transaction cannot
//! upgrade), every write goes through a pool of exactly one connection, which queues writers
//! fairly in-process; reads use a separate pool and, thanks to WAL, never wait for the writer.
//! Write transactions start with `BEGIN IMMEDIATE` so that another *process* writing the same file
//! is waited for (busy timeout) at the start rather than failing halfway.
//! An in-memory database (`sqlite::memory:`) exists per connection, so it gets a single pool of
//! one connection that is never closed while the store lives.

mod content;
mod jobs;
mod projects;
mod runs;
mod states;
mod users;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Decode, Row, Sqlite, Transaction, Type};

use crate::error::{StoreError, StoreResult};
use crate::migrations::{self, AppliedMigration};
use crate::model::{MigrationReport, PoolStats, now};
use crate::repo::StoreAdmin;
use crate::sqlx_util::{self, Family};
use crate::store::StoreOptions;

/// The SQLite backend: one write connection, a pool of read connections.
pub(crate) struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// True when `reader` and `writer` are the same one-connection pool (in-memory database).
    shared: bool,
}

impl SqliteStore {
    pub(crate) async fn open(options: &StoreOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(&options.url)
            .map_err(|_| StoreError::invalid("malformed SQLite URL"))?
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .create_if_missing(options.create_if_missing);
        let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");
        let connect_err =
            |e| sqlx_util::map_error(Family::Sqlite, "database", "opening the SQLite database", e);

        if in_memory {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(base)
                .await
                .map_err(connect_err)?;
            return Ok(Self {
                writer: pool.clone(),
                reader: pool,
                shared: true,
            });
        }

        // The writer opens (and creates) the file first and switches it to WAL, which is
        // persistent, so the readers opened next find it in WAL mode already.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(
                base.clone()
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await
            .map_err(connect_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.create_if_missing(false))
            .await
            .map_err(connect_err)?;
        Ok(Self {
            writer,
            reader,
            shared: false,
        })
    }

    /// Starts a write transaction that holds the database write lock from its first statement.
    async fn begin_write(&self, action: &'static str) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sqlx_util::err(Family::Sqlite, "transaction", action))
    }
}

/// `.map_err(err("user", "creating user"))`.
fn err(entity: &'static str, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    sqlx_util::err(Family::Sqlite, entity, action)
}

/// Commits, mapping the error.
async fn commit(tx: Transaction<'static, Sqlite>, action: &'static str) -> StoreResult<()> {
    tx.commit().await.map_err(err("transaction", action))
}

/// Microseconds since the epoch: how instants are stored.
fn ts(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn ts_opt(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(ts)
}

/// Dates (quota periods) are stored as `YYYY-MM-DD` text.
fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Typed column access with the store's errors.
trait RowExt {
    fn col<T>(&self, name: &str) -> StoreResult<T>
    where
        T: for<'r> Decode<'r, Sqlite> + Type<Sqlite>;
    fn time(&self, name: &str) -> StoreResult<DateTime<Utc>>;
    fn time_opt(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn json(&self, name: &str) -> StoreResult<Value>;
    fn json_opt(&self, name: &str) -> StoreResult<Option<Value>>;
    fn parsed<E: FromStr<Err = StoreError>>(&self, name: &str) -> StoreResult<E>;
}

fn bad_column(name: &str) -> StoreError {
    StoreError::corrupt("row", format!("column {name} holds an unexpected value"))
}

fn micros_to_time(micros: i64, name: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| bad_column(name))
}

impl RowExt for SqliteRow {
    fn col<T>(&self, name: &str) -> StoreResult<T>
    where
        T: for<'r> Decode<'r, Sqlite> + Type<Sqlite>,
    {
        self.try_get(name).map_err(|e| {
            tracing::warn!(error = %e, column = name, "cannot decode SQLite column");
            bad_column(name)
        })
    }

    fn time(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        micros_to_time(self.col(name)?, name)
    }

    fn time_opt(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.col::<Option<i64>>(name)?
            .map(|m| micros_to_time(m, name))
            .transpose()
    }

    fn json(&self, name: &str) -> StoreResult<Value> {
        let text: String = self.col(name)?;
        serde_json::from_str(&text).map_err(|_| bad_column(name))
    }

    fn json_opt(&self, name: &str) -> StoreResult<Option<Value>> {
        self.col::<Option<String>>(name)?
            .map(|text| serde_json::from_str(&text).map_err(|_| bad_column(name)))
            .transpose()
    }

    fn parsed<E: FromStr<Err = StoreError>>(&self, name: &str) -> StoreResult<E> {
        self.col::<String>(name)?.parse()
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlx-sqlite"
    }

    async fn migrate(&self) -> StoreResult<MigrationReport> {
        const ACTION: &str = "applying migrations";
        // BEGIN IMMEDIATE takes the write lock first, so two processes migrating the same file
        // run one after the other and the second sees the first's bookkeeping.
        let mut tx = self.begin_write(ACTION).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS samokoder_schema_migrations (
                version    INTEGER NOT NULL PRIMARY KEY,
                name       TEXT    NOT NULL,
                checksum   TEXT    NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT",
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
        for migration in migrations::pending(migrations::SQLITE, &applied)? {
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
            .bind(ts(now()))
            .execute(&mut *tx)
            .await
            .map_err(err("migration", ACTION))?;
            report.applied.push(migration.version);
            report.current_version = migration.version;
        }
        commit(tx, ACTION).await?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "SQLite schema migrated");
        }
        Ok(report)
    }

    async fn health_check(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(err("database", "checking health"))?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let pools: &[&SqlitePool] = if self.shared {
            &[&self.writer]
        } else {
            &[&self.writer, &self.reader]
        };
        let mut stats = PoolStats::default();
        for pool in pools {
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
            stats.size += size;
            stats.idle += idle;
            stats.in_use += size - idle;
            stats.max_size += pool.options().get_max_connections();
        }
        stats
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScratchDatabase;

    async fn pragma(pool: &SqlitePool, name: &str) -> String {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(pool)
            .await
            .unwrap();
        // journal_mode answers text, the others integers.
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn file_database_uses_wal_foreign_keys_and_busy_timeout() {
        let scratch = ScratchDatabase::sqlite().unwrap();
        let store = SqliteStore::open(scratch.options()).await.unwrap();
        for pool in [&store.writer, &store.reader] {
            assert_eq!(pragma(pool, "journal_mode").await, "wal");
            assert_eq!(pragma(pool, "foreign_keys").await, "1");
            assert_eq!(pragma(pool, "busy_timeout").await, "5000");
        }
        assert!(!store.shared);
        assert_eq!(
            store.writer.options().get_max_connections(),
            1,
            "one writer"
        );
        store.close().await;
        scratch.remove().await.unwrap();
    }

    #[tokio::test]
    async fn memory_database_is_one_connection_that_stays() {
        let store = SqliteStore::open(&StoreOptions::new("sqlite::memory:"))
            .await
            .unwrap();
        assert!(store.shared);
        store.migrate().await.unwrap();
        // Writes and reads must see the same database: with a second connection they would
        // each get an empty one of their own.
        sqlx::query("INSERT INTO blobs (hash, size, content, created_at) VALUES ('h', 0, x'', 0)")
            .execute(&store.writer)
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(count, 1);
        assert_eq!(store.pool_stats().max_size, 1);
    }

    #[tokio::test]
    async fn bad_urls_are_invalid_input() {
        let options = StoreOptions::new("sqlite://no/such/dir/db.sqlite");
        assert!(matches!(
            SqliteStore::open(&options).await,
            Err(StoreError::Unavailable { .. } | StoreError::Database { .. })
        ));
        let mut options = StoreOptions::new("sqlite://x.db?mode=nonsense");
        options.create_if_missing = false;
        assert!(matches!(
            SqliteStore::open(&options).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}
