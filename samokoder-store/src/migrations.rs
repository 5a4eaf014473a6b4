//! The embedded, versioned migrations of each database family.
//!
//! The SQL lives in `samokoder-store/migrations/{sqlite,postgres}/NNNN_name.sql` and is compiled
//! into the binary. Every backend records what it applied in one table,
//! [`MIGRATIONS_TABLE`] (version, name, checksum, applied-at), so the sqlx and diesel PostgreSQL
//! backends can open the same database: both read the same list ([`POSTGRES`]) and write the
//! same bookkeeping. Applying is an explicit `migrate()` call, never a side effect of connecting.

use crate::error::{StoreError, StoreResult};

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "samokoder_schema_migrations";

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version number; migrations apply in ascending order.
    pub version: i64,
    /// Short name (the file name without the number).
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex: detects a migration edited after it was applied.
    pub fn checksum(&self) -> String {
        crate::model::blob_hash(self.sql.as_bytes())
    }
}

/// SQLite migrations, ascending.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "run_options",
        sql: include_str!("../migrations/sqlite/0002_run_options.sql"),
    },
];

/// PostgreSQL migrations, ascending (shared by every PostgreSQL backend).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "run_options",
        sql: include_str!("../migrations/postgres/0002_run_options.sql"),
    },
];

/// One row of [`MIGRATIONS_TABLE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Version.
    pub version: i64,
    /// Checksum recorded when it was applied.
    pub checksum: String,
}

/// Compares what the database has applied with what this binary embeds and returns the
/// migrations still to apply, in order.
///
/// Fails when the database has a version this binary does not know (it was migrated by a newer
/// release: running older code against it is unsafe) or when an applied migration's text changed.
pub fn pending<'m>(
    embedded: &'m [Migration],
    applied: &[AppliedMigration],
) -> StoreResult<Vec<&'m Migration>> {
    for done in applied {
        match embedded.iter().find(|m| m.version == done.version) {
            None => {
                return Err(StoreError::Migration {
                    version: done.version,
                    name: String::from("<unknown>"),
                    detail: "the database has a migration this binary does not know \
                             (was it migrated by a newer release?)"
                        .into(),
                    source: None,
                });
            }
            Some(known) if known.checksum() != done.checksum => {
                return Err(StoreError::Migration {
                    version: known.version,
                    name: known.name.into(),
                    detail: "the migration's SQL changed after it was applied".into(),
                    source: None,
                });
            }
            Some(_) => {}
        }
    }
    Ok(embedded
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_list(list: &[Migration]) {
        assert!(!list.is_empty());
        for pair in list.windows(2) {
            assert!(pair[0].version < pair[1].version, "versions must ascend");
        }
        for m in list {
            assert!(m.version >= 1);
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[test]
    fn embedded_lists_are_ordered() {
        check_list(SQLITE);
        check_list(POSTGRES);
        assert_eq!(
            SQLITE.iter().map(|m| m.version).collect::<Vec<_>>(),
            POSTGRES.iter().map(|m| m.version).collect::<Vec<_>>(),
            "both families evolve in step"
        );
    }

    #[test]
    fn pending_skips_applied_and_rejects_drift() {
        let list = [
            Migration {
                version: 1,
                name: "a",
                sql: "create table a (x int);",
            },
            Migration {
                version: 2,
                name: "b",
                sql: "create table b (x int);",
            },
        ];
        assert_eq!(pending(&list, &[]).unwrap().len(), 2);
        let one = AppliedMigration {
            version: 1,
            checksum: list[0].checksum(),
        };
        let todo = pending(&list, std::slice::from_ref(&one)).unwrap();
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), [2]);

        let edited = AppliedMigration {
            version: 1,
            checksum: "0".repeat(64),
        };
        assert!(matches!(
            pending(&list, &[edited]),
            Err(StoreError::Migration { version: 1, .. })
        ));
        let future = AppliedMigration {
            version: 3,
            checksum: String::new(),
        };
        assert!(matches!(
            pending(&list, &[one, future]),
            Err(StoreError::Migration { version: 3, .. })
        ));
    }
}
