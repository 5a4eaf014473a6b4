//! PostgreSQL through diesel-async (feature `diesel-postgres`).
//!
//! The third backend, next to sqlx's SQLite and PostgreSQL ones, for embedders whose code base
//! already speaks diesel. It implements every repository trait of this crate and the
//! `samokoder-auth` ports with the same semantics as the sqlx backends (the conformance suite in
//! `samokoder-store/tests/conformance/` runs against all of them).
//!
//! # Opening
//!
//! Pick it with [`StoreOptions::backend`] set to [`BackendKind::DieselPostgres`] and a
//! `postgres://` URL, then [`crate::connect_with`]; or call [`DieselPgStore::open`] and wrap it
//! with [`crate::Store::from_backend`]. Connections come from a deadpool pool of
//! [`AsyncPgConnection`]s (tokio-postgres underneath: pure Rust, no libpq); each checkout runs a
//! `SELECT 1` first, so a connection the server dropped is replaced instead of failing the
//! operation (the same trade sqlx makes with `test_before_acquire`).
//!
//! # Schema and migrations
//!
//! The schema is the one the sqlx PostgreSQL backend uses: the plain SQL of
//! `migrations/postgres/`, embedded through [`crate::migrations::POSTGRES`], and recorded in the
//! same bookkeeping table, [`crate::migrations::MIGRATIONS_TABLE`] (version, name, checksum,
//! applied-at) under the same advisory lock. The two PostgreSQL backends are therefore
//! interchangeable on one database: migrate with one, open with the other. diesel's own
//! migration harness (`__diesel_schema_migrations`, one directory per migration with
//! `up.sql`/`down.sql`) is deliberately not used: it would record the same SQL a second way and
//! the sqlx backend would not see it. The diesel `table!` definitions in `schema.rs` are written by
//! hand and a test compares them with the migrated database column by column.
//!
//! # TLS
//!
//! diesel-async has no TLS of its own, and this backend opens plaintext connections only. That is
//! fine on loopback or a private network; for a managed PostgreSQL that requires TLS, use the
//! `sqlx-postgres` backend (rustls built in), or build the pool yourself: give
//! `diesel_async::pooled_connection::ManagerConfig::custom_setup` a callback that parses the URL
//! into a `tokio_postgres::Config`, connects with a rustls-based `MakeTlsConnect` (for example the
//! `tokio-postgres-rustls` crate over a `rustls::ClientConfig` with the provider chosen
//! explicitly), and hands the resulting client and connection to
//! [`AsyncPgConnection::try_from_client_and_connection`].
//!
//! So that nobody believes they have TLS when they do not, [`DieselPgStore::open`] refuses a URL
//! that asks for it (`sslmode=require`, `verify-ca` or `verify-full`) with
//! [`StoreError::InvalidInput`] instead of silently connecting in plaintext. Without `sslmode`,
//! or with `disable`/`prefer`, it connects in plaintext (what `prefer` does when no TLS is
//! available).
//!
//! # Differences from the sqlx PostgreSQL backend worth knowing
//!
//! - diesel reports only a few SQLSTATE classes (unique, foreign key, not-null, check,
//!   serialization failure, closed connection). A deadlock (`40P01`) or an administrator shutting
//!   the server down (`57P01`) therefore surfaces as [`StoreError::Database`], not
//!   [`StoreError::Unavailable`]; a serialization failure, a dropped connection, a refused
//!   connection and an exhausted pool are [`StoreError::Unavailable`].

mod content;
mod errors;
mod jobs;
mod projects;
mod runs;
mod schema;
mod states;
mod users;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
pub use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use self::errors::{TxError, db, pool_error};
use self::schema::samokoder_schema_migrations as applied;
use crate::error::{StoreError, StoreResult};
use crate::migrations::{self, AppliedMigration};
use crate::model::{MigrationReport, PoolStats, now};
use crate::repo::StoreAdmin;
#[allow(unused_imports)] // referenced by the doc links
use crate::store::{BackendKind, StoreOptions};

/// The name this backend reports from [`StoreAdmin::backend`].
pub const BACKEND_NAME: &str = "diesel-postgres";

/// Serialises `migrate()` calls on one schema across processes: a transaction-scoped advisory
/// lock per schema, the very lock the sqlx PostgreSQL backend takes (same key), so migrators of
/// either backend take turns and tests migrating separate schemas do not wait for each other.
const MIGRATION_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(\
     hashtext('samokoder_schema_migrations:' || current_schema()))";

/// The bookkeeping table, shared with the sqlx PostgreSQL backend.
const MIGRATIONS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS samokoder_schema_migrations (
    version    BIGINT      NOT NULL PRIMARY KEY,
    name       TEXT        NOT NULL,
    checksum   TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)";

/// A pooled connection.
type Conn = Object<AsyncPgConnection>;

/// `Ok` when an `UPDATE` or `DELETE` aimed at one row touched it, [`StoreError::NotFound`]
/// (for `entity` looked up by `key`) when it touched none.
fn touched(rows: usize, entity: &'static str, key: impl ToString) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::not_found(entity, key))
    } else {
        Ok(())
    }
}

/// The diesel-async PostgreSQL backend: one deadpool pool of [`AsyncPgConnection`]s.
///
/// Implements every repository trait, the `samokoder-auth` ports and [`StoreAdmin`], so
/// `Store::from_backend(Arc::new(store))` makes a [`crate::Store`] of it.
pub struct DieselPgStore {
    pool: Pool<AsyncPgConnection>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for DieselPgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("DieselPgStore")
            .field("pool", &self.pool.status())
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// Orders by a text key in Rust (bytewise, like SQLite's BINARY collation and Rust's `str`
/// ordering), so listings come out in the same order whatever collation the PostgreSQL database
/// was created with.
fn sort_by_text<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| key(a).cmp(key(b)));
}

/// Checks a PostgreSQL URL before any connection is attempted: it must parse, and it must not
/// ask for TLS, which this backend cannot provide (see the module documentation).
fn check_url(url: &str) -> StoreResult<()> {
    // The parser's message can quote parts of the URL, so it stays out of the error.
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|_| StoreError::invalid("malformed PostgreSQL URL"))?;
    // tokio-postgres only knows disable/prefer/require and rejects verify-ca/verify-full while
    // parsing above, so only `require` needs refusing here.
    if matches!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    ) {
        return Err(StoreError::invalid(
            "the diesel-postgres backend cannot encrypt connections, but the URL asks for TLS \
             (sslmode=require); use the sqlx-postgres backend for TLS, or sslmode=disable on a \
             trusted network",
        ));
    }
    Ok(())
}

impl DieselPgStore {
    /// Opens the pool and checks that the database answers, keeping `min_connections`
    /// connections open. Does not migrate.
    ///
    /// [`StoreError::InvalidInput`] for a malformed URL, bad pool sizes or a URL asking for TLS;
    /// [`StoreError::Unavailable`] when the server cannot be reached within
    /// `acquire_timeout`.
    pub async fn open(options: &StoreOptions) -> StoreResult<Self> {
        options.validate()?;
        if !matches!(
            options.url.split(':').next(),
            Some("postgres" | "postgresql")
        ) {
            return Err(StoreError::invalid(
                "the diesel-postgres backend needs a postgres:// URL",
            ));
        }
        check_url(&options.url)?;
        let max_size = usize::try_from(options.max_connections)
            .map_err(|_| StoreError::invalid("max_connections is too large"))?;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(options.url.clone());
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .build()
            .map_err(|e| StoreError::Database {
                context: "building the connection pool".into(),
                source: Box::new(e),
            })?;
        let store = Self {
            pool,
            acquire_timeout: options.acquire_timeout,
        };
        // Open the first connections together: this proves the server answers (so a wrong host
        // fails here, not at the first request) and leaves `min_connections` idle in the pool.
        let wanted = options.min_connections.max(1);
        let opened = futures::future::try_join_all(
            (0..wanted).map(|_| store.conn("opening the PostgreSQL database")),
        )
        .await?;
        drop(opened);
        Ok(store)
    }

    /// A connection from the pool, waiting at most `acquire_timeout` (which also bounds opening
    /// a new connection to an unresponsive server).
    async fn conn(&self, action: &'static str) -> StoreResult<Conn> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(pool_error(action, e)),
            Err(_) => Err(StoreError::Unavailable {
                context: action.to_owned(),
                source: format!(
                    "no database connection became free within {:?}",
                    self.acquire_timeout
                )
                .into(),
            }),
        }
    }
}

#[async_trait]
impl StoreAdmin for DieselPgStore {
    fn backend(&self) -> &'static str {
        BACKEND_NAME
    }

    async fn migrate(&self) -> StoreResult<MigrationReport> {
        const ACTION: &str = "applying migrations";
        let mut conn = self.conn(ACTION).await?;
        let report = conn
            .transaction::<_, TxError, _>(async |conn| {
                // The lock is held until commit: a second migrator waits here and then finds
                // the first one's bookkeeping.
                diesel::sql_query(MIGRATION_LOCK_SQL)
                    .execute(conn)
                    .await
                    .map_err(db("migration", ACTION))?;
                diesel::sql_query(MIGRATIONS_TABLE_SQL)
                    .execute(conn)
                    .await
                    .map_err(db("migration", ACTION))?;
                let applied: Vec<AppliedMigration> = applied::table
                    .select((applied::version, applied::checksum))
                    .order(applied::version)
                    .load::<(i64, String)>(conn)
                    .await
                    .map_err(db("migration", ACTION))?
                    .into_iter()
                    .map(|(version, checksum)| AppliedMigration { version, checksum })
                    .collect();
                let mut report = MigrationReport {
                    applied: Vec::new(),
                    current_version: applied.iter().map(|a| a.version).max().unwrap_or(0),
                };
                for migration in migrations::pending(migrations::POSTGRES, &applied)? {
                    conn.batch_execute(migration.sql)
                        .await
                        .map_err(|e| StoreError::Migration {
                            version: migration.version,
                            name: migration.name.into(),
                            detail: "the SQL failed".into(),
                            source: Some(Box::new(e)),
                        })?;
                    diesel::insert_into(applied::table)
                        .values((
                            applied::version.eq(migration.version),
                            applied::name.eq(migration.name),
                            applied::checksum.eq(migration.checksum()),
                            applied::applied_at.eq(now()),
                        ))
                        .execute(conn)
                        .await
                        .map_err(db("migration", ACTION))?;
                    report.applied.push(migration.version);
                    report.current_version = migration.version;
                }
                Ok(report)
            })
            .await?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, backend = BACKEND_NAME, "PostgreSQL schema migrated");
        }
        Ok(report)
    }

    async fn health_check(&self) -> StoreResult<()> {
        const ACTION: &str = "checking health";
        let mut conn = self.conn(ACTION).await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(db("database", ACTION))?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let status = self.pool.status();
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let size = clamp(status.size);
        let idle = clamp(status.available).min(size);
        PoolStats {
            size,
            idle,
            in_use: size - idle,
            max_size: clamp(status.max_size),
        }
    }

    async fn close(&self) {
        // deadpool drops idle connections at once and every checked-out one when it comes back;
        // wait (bounded, so a leaked connection cannot hang shutdown) until they all have.
        self.pool.close();
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        while self.pool.status().size > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
