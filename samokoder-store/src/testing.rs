//! Scratch databases for tests and benchmarks (this crate's, and embedders' own).
//!
//! Each [`ScratchDatabase`] is empty and isolated: a new SQLite file in a new temporary
//! directory, or a new schema on a PostgreSQL server whose connections use it as `search_path`.
//! Open a store on it with [`connect_with`](crate::connect_with)`(scratch.options())`, migrate,
//! and call [`ScratchDatabase::remove`] when done.

use std::path::PathBuf;

use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::store::StoreOptions;

/// An empty database that exists until [`ScratchDatabase::remove`].
#[derive(Debug)]
pub struct ScratchDatabase {
    options: StoreOptions,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(PathBuf),
    #[cfg_attr(not(feature = "sqlx-postgres"), allow(dead_code))]
    PostgresSchema {
        base_url: String,
        schema: String,
    },
}

impl ScratchDatabase {
    /// A new SQLite database file in a new directory under the system's temporary directory.
    pub fn sqlite() -> StoreResult<Self> {
        let dir = std::env::temp_dir().join(format!("samokoder-scratch-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Unavailable {
            context: "creating a scratch directory".into(),
            source: Box::new(e),
        })?;
        let url = format!("sqlite://{}", dir.join("store.db").display());
        Ok(Self {
            options: StoreOptions::new(url),
            cleanup: Cleanup::Directory(dir),
        })
    }

    /// A new schema (`sk_scratch_<random>`) on the PostgreSQL server at `base_url`; the options
    /// carry the URL with `search_path` set to it, so every table the store creates lands there.
    #[cfg(feature = "sqlx-postgres")]
    pub async fn postgres(base_url: &str) -> StoreResult<Self> {
        let schema = format!("sk_scratch_{}", Uuid::new_v4().simple());
        admin_statement(base_url, &format!("CREATE SCHEMA \"{schema}\"")).await?;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self {
            options: StoreOptions::new(url),
            cleanup: Cleanup::PostgresSchema {
                base_url: base_url.to_owned(),
                schema,
            },
        })
    }

    /// How to open a store on this database (adjust the pool size or backend as needed).
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Mutable access to the options, e.g. to pick another backend for the same database.
    pub fn options_mut(&mut self) -> &mut StoreOptions {
        &mut self.options
    }

    /// Deletes the database: the directory with the SQLite file, or the schema with everything
    /// in it. Close stores opened on it first.
    pub async fn remove(self) -> StoreResult<()> {
        match self.cleanup {
            Cleanup::Directory(dir) => {
                std::fs::remove_dir_all(&dir).map_err(|e| StoreError::Unavailable {
                    context: "removing a scratch directory".into(),
                    source: Box::new(e),
                })
            }
            #[cfg(feature = "sqlx-postgres")]
            Cleanup::PostgresSchema { base_url, schema } => {
                admin_statement(
                    &base_url,
                    &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
                )
                .await
            }
            #[cfg(not(feature = "sqlx-postgres"))]
            Cleanup::PostgresSchema { .. } => Ok(()),
        }
    }
}

/// Runs one statement on a short-lived connection to `base_url`.
#[cfg(feature = "sqlx-postgres")]
async fn admin_statement(base_url: &str, sql: &str) -> StoreResult<()> {
    use sqlx::Connection;

    let action = "managing a scratch schema";
    let mut conn = sqlx::PgConnection::connect(base_url).await.map_err(|e| {
        crate::sqlx_util::map_error(crate::sqlx_util::Family::Postgres, "schema", action, e)
    })?;
    // The schema name is generated above from a UUID: nothing from outside reaches this text.
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            crate::sqlx_util::map_error(crate::sqlx_util::Family::Postgres, "schema", action, e)
        })?;
    conn.close().await.ok();
    Ok(())
}

#[cfg(all(test, feature = "sqlx-sqlite"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_scratch_is_created_and_removed() {
        let scratch = ScratchDatabase::sqlite().unwrap();
        let store = crate::connect_with(scratch.options()).await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        let Cleanup::Directory(dir) = &scratch.cleanup else {
            unreachable!("sqlite scratch uses a directory")
        };
        let dir = dir.clone();
        assert!(dir.join("store.db").exists());
        scratch.remove().await.unwrap();
        assert!(!dir.exists());
    }
}

/// The environment variable naming the PostgreSQL server tests may create schemas on.
pub const POSTGRES_URL_VAR: &str = "SAMOKODER_TEST_POSTGRES_URL";

/// The PostgreSQL URL tests should use, from [`POSTGRES_URL_VAR`]; when it is unset, announces
/// that `what` is skipped (see [`announce_skip`]) and returns `None`.
pub fn postgres_url_or_skip(what: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            announce_skip(&format!(
                "{what}: set {POSTGRES_URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test)"
            ));
            None
        }
    }
}

/// Prints `SKIPPED: <reason>` on the process's standard error, past the test harness.
///
/// libtest captures what `eprintln!` prints in a passing test, so a skip announced that way
/// would be silent; writing to the stderr handle directly is not captured, so every skipped
/// backend shows up in the test output.
pub fn announce_skip(reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}
