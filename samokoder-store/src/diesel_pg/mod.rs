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
//! operation (the same trade sqlx makes with `test_before_acquire`). Connections name themselves
//! `samokoder` in `pg_stat_activity` unless the URL sets `application_name`.
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
//! diesel-async has no TLS of its own; this backend brings a small rustls connector for
//! tokio-postgres (module `tls`) and reads `sslmode` (and `sslrootcert`) from the URL with
//! libpq's meanings, as the sqlx backend does: `disable`; `prefer` (the default) and `allow`
//! encrypt when the server offers TLS; `require` insists on it; `verify-ca` also checks the
//! certificate chain, `verify-full` the host name as well. Certificates are checked against the
//! PEM file `sslrootcert` names, or Mozilla's root list when it names none, so a managed
//! database signed by its provider's own CA needs `sslrootcert=/path/to/provider-ca.pem`.
//! Client certificates are not supported and are refused with [`StoreError::InvalidInput`].
//!
//! # Differences from the sqlx PostgreSQL backend worth knowing
//!
//! - diesel reports only a few SQLSTATE classes (unique, foreign key, not-null, check,
//!   serialization failure, closed connection). A deadlock (`40P01`) or an administrator shutting
//!   the server down (`57P01`) therefore surfaces as [`StoreError::Database`], not
//!   [`StoreError::Unavailable`]; a serialization failure, a dropped connection, a refused
//!   connection and an exhausted pool are [`StoreError::Unavailable`].
//! - Text keys (provider names, VCS hosts, branch names, file paths, event names, usage buckets)
//!   are ordered bytewise, in Rust, as on SQLite; the sqlx backend orders them in SQL, by the
//!   database's collation. On a `C`/`C.UTF-8` database the two agree; on an `en_US` one, mixed
//!   case can come out in a different order.
//! - The URL goes to tokio-postgres's parser, which rejects options only sqlx knows (e.g.
//!   `statement-cache-capacity`) with [`StoreError::InvalidInput`].

mod content;
mod errors;
mod jobs;
mod projects;
mod runs;
mod schema;
mod states;
mod tls;
mod users;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::FutureExt;

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

/// Parses a PostgreSQL URL once, before any connection is attempted: its TLS settings (see
/// the `tls` module) and everything tokio-postgres reads. Connections name themselves
/// `samokoder` unless the URL says otherwise, as the sqlx backend's do.
fn connection_config(
    url: &str,
) -> StoreResult<(tokio_postgres::Config, Option<tls::MakeRustlsConnect>)> {
    let (url, tls_params) = tls::split_url(url)?;
    // The parser's message can quote parts of the URL, so it stays out of the error.
    let mut config = tokio_postgres::Config::from_str(&url)
        .map_err(|_| StoreError::invalid("malformed PostgreSQL URL"))?;
    config.ssl_mode(tls_params.mode.ssl_mode());
    if config.get_application_name().is_none() {
        config.application_name("samokoder");
    }
    Ok((config, tls::connector(&tls_params)?))
}

/// An error and its sources on one line: diesel's connection error holds only a string, and
/// tokio-postgres's own text is just "db error" with the server's message in the source.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How the pool opens a connection: from the configuration parsed once at start-up, through
/// rustls unless TLS is disabled.
fn connection_setup(
    config: tokio_postgres::Config,
    tls: Option<tls::MakeRustlsConnect>,
) -> ManagerConfig<AsyncPgConnection> {
    let config = Arc::new(config);
    let mut manager_config = ManagerConfig::default();
    manager_config.custom_setup = Box::new(move |_url| {
        let config = Arc::clone(&config);
        let tls = tls.clone();
        async move {
            // The error's text (refused, authentication failed, certificate rejected) stays in
            // the StoreError's source chain, for logs.
            let failed = |e: tokio_postgres::Error| ConnectionError::BadConnection(chain(&e));
            match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await.map_err(failed)?;
                    AsyncPgConnection::try_from_client_and_connection(client, connection).await
                }
                None => {
                    let (client, connection) = config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(failed)?;
                    AsyncPgConnection::try_from_client_and_connection(client, connection).await
                }
            }
        }
        .boxed()
    });
    manager_config
}

impl DieselPgStore {
    /// Opens the pool and checks that the database answers, keeping `min_connections`
    /// connections open. Does not migrate.
    ///
    /// [`StoreError::InvalidInput`] for a malformed URL (including TLS settings this backend
    /// cannot honour, or an unreadable `sslrootcert`) or bad pool sizes;
    /// [`StoreError::Unavailable`] when the server cannot be reached (or its certificate is
    /// rejected) within `acquire_timeout`.
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
        let (config, tls) = connection_config(&options.url)?;
        let max_size = usize::try_from(options.max_connections)
            .map_err(|_| StoreError::invalid("max_connections is too large"))?;
        // The URL is not read again (the parsed configuration is); it is kept by the manager
        // only, which never prints it.
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            options.url.clone(),
            connection_setup(config, tls),
        );
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
