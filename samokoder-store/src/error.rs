//! The one error type of this crate.
//!
//! Every backend maps its driver's failures onto [`StoreError`] so consumers can branch on the
//! variant (a unique violation is a [`StoreError::Conflict`], a missing row a
//! [`StoreError::NotFound`], ...) without knowing which database sits underneath. The `Display`
//! text of a variant is written by this crate and never contains a SQL string or a raw driver
//! message; the driver's error, when there is one, stays reachable through
//! [`std::error::Error::source`] for logs.

use uuid::Uuid;

/// A boxed error of a driver or of the operating system, kept as the `source` of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row the operation needs does not exist (or does not belong to the caller).
    #[error("{entity} not found: {key}")]
    NotFound {
        /// What was looked for, e.g. `"project"`.
        entity: &'static str,
        /// How it was looked for, e.g. the id.
        key: String,
    },

    /// The operation lost to the current state of the data: a unique key already taken, a
    /// compare-and-swap whose expectation no longer holds, an answer to an answered question.
    #[error("{entity} conflict: {detail}")]
    Conflict {
        /// The kind of row in conflict, e.g. `"user"`.
        entity: &'static str,
        /// What collided, in words meant for humans.
        detail: String,
    },

    /// The operation refers to a row that does not exist (a foreign key failed), e.g. a project
    /// for an unknown owner.
    #[error("{entity} refers to a missing row: {detail}")]
    MissingReference {
        /// The kind of row that was being written.
        entity: &'static str,
        /// Which reference failed, as far as the backend can tell.
        detail: String,
    },

    /// The input breaks a rule of the store (empty name, negative limit, malformed cursor, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A worker tried to act on a job whose lease it no longer holds (it expired and another
    /// worker may have claimed the job, or the job already finished).
    #[error("lease on job {job_id} is not held by worker {worker}")]
    LeaseLost {
        /// The job.
        job_id: Uuid,
        /// The worker that thought it held the lease.
        worker: String,
    },

    /// The database cannot be reached or is too busy right now (connection refused, pool
    /// exhausted, database locked); retrying later may succeed.
    #[error("storage unavailable while {context}")]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },

    /// Applying the embedded migrations failed, or the database holds a migration this binary
    /// does not know or whose text changed since it was applied.
    #[error("migration {version} ({name}) failed: {detail}")]
    Migration {
        /// The migration version.
        version: i64,
        /// The migration name.
        name: String,
        /// What went wrong.
        detail: String,
        /// The underlying failure, if a driver reported one.
        #[source]
        source: Option<BoxError>,
    },

    /// A stored value could not be turned back into its domain type (an unknown enum value, bad
    /// JSON); the database was changed behind the store's back or by a newer version.
    #[error("corrupt {entity} data: {detail}")]
    Corrupt {
        /// The kind of row.
        entity: &'static str,
        /// What could not be read.
        detail: String,
    },

    /// Any other database failure, with what the store was doing when it happened.
    #[error("storage failed while {context}")]
    Database {
        /// What the store was doing.
        context: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A [`StoreError::NotFound`] for `entity` looked up by `key`.
    // Keys are mostly `Uuid`s, which are `Copy`: taking them by value reads better at call sites.
    #[allow(clippy::needless_pass_by_value)]
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Self::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// A [`StoreError::Conflict`] on `entity`.
    pub fn conflict(entity: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            entity,
            detail: detail.into(),
        }
    }

    /// A [`StoreError::InvalidInput`].
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidInput(detail.into())
    }

    /// A [`StoreError::Corrupt`] on `entity`.
    pub fn corrupt(entity: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            entity,
            detail: detail.into(),
        }
    }

    /// Whether this is a [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this is a [`StoreError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether retrying the same operation later may succeed (the database was unreachable or
    /// busy). Conflicts are not included: they need the caller to re-read and decide.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// A short stable code for metrics and for the server's error mapping.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::MissingReference { .. } => "missing_reference",
            Self::InvalidInput(_) => "invalid_input",
            Self::LeaseLost { .. } => "lease_lost",
            Self::Unavailable { .. } => "unavailable",
            Self::Migration { .. } => "migration_failed",
            Self::Corrupt { .. } => "corrupt_data",
            Self::Database { .. } => "database_error",
        }
    }
}

impl From<StoreError> for samokoder_auth::ports::PortError {
    fn from(error: StoreError) -> Self {
        samokoder_auth::ports::PortError::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_context_but_not_the_source() {
        let err = StoreError::Database {
            context: "creating user".into(),
            source: "near \"SELEC\": syntax error".into(),
        };
        assert_eq!(err.to_string(), "storage failed while creating user");
        let source = std::error::Error::source(&err).expect("source kept for logs");
        assert!(source.to_string().contains("syntax error"));
    }

    #[test]
    fn codes_are_distinct() {
        let errors = [
            StoreError::not_found("user", 1),
            StoreError::conflict("user", "taken"),
            StoreError::MissingReference {
                entity: "project",
                detail: "owner".into(),
            },
            StoreError::invalid("x"),
            StoreError::LeaseLost {
                job_id: Uuid::nil(),
                worker: "w".into(),
            },
            StoreError::corrupt("user", "tier"),
        ];
        let mut codes: Vec<_> = errors.iter().map(StoreError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        assert!(errors[0].is_not_found());
        assert!(errors[1].is_conflict());
        assert!(!errors[1].is_transient());
    }
}
