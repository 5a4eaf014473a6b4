//! What the two sqlx backends share: turning `sqlx::Error` into [`StoreError`].

use sqlx::error::{DatabaseError, ErrorKind};

use crate::error::StoreError;

/// Which database family produced an error (their codes for "busy, try again" differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    #[cfg_attr(not(feature = "sqlx-sqlite"), allow(dead_code))]
    Sqlite,
    #[cfg_attr(not(feature = "sqlx-postgres"), allow(dead_code))]
    Postgres,
}

/// Maps a driver error to a [`StoreError`] that says what the store was doing (`action`, e.g.
/// "creating user") on which kind of row (`entity`). The driver's text stays in the error's
/// `source` (for logs), never in its `Display`.
pub(crate) fn map_error(
    family: Family,
    entity: &'static str,
    action: &'static str,
    err: sqlx::Error,
) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::not_found(entity, action),
        sqlx::Error::Database(db) => map_database_error(family, entity, action, db),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
            context: action.to_owned(),
            source: Box::new(err),
        },
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            tracing::warn!(error = %err, entity, action, "stored value cannot be decoded");
            StoreError::corrupt(
                entity,
                format!("a stored value cannot be read while {action}"),
            )
        }
        other => StoreError::Database {
            context: action.to_owned(),
            source: Box::new(other),
        },
    }
}

fn map_database_error(
    family: Family,
    entity: &'static str,
    action: &'static str,
    db: Box<dyn DatabaseError>,
) -> StoreError {
    // PostgreSQL names the constraint (ours, from the migration): useful and not a driver
    // message. SQLite does not, so the detail falls back to a generic sentence.
    let constraint = db.constraint().map(str::to_owned);
    match db.kind() {
        ErrorKind::UniqueViolation => StoreError::Conflict {
            entity,
            detail: match constraint {
                Some(name) => format!("{action}: already exists (constraint {name})"),
                None => format!("{action}: already exists"),
            },
        },
        ErrorKind::ForeignKeyViolation => StoreError::MissingReference {
            entity,
            detail: match constraint {
                Some(name) => format!("{action}: constraint {name}"),
                None => format!("{action}: a referenced row does not exist"),
            },
        },
        ErrorKind::NotNullViolation | ErrorKind::CheckViolation => StoreError::InvalidInput(
            format!("{action}: a value breaks a constraint of the {entity} table"),
        ),
        _ if is_transient(family, db.as_ref()) => StoreError::Unavailable {
            context: action.to_owned(),
            source: db.into_error(),
        },
        _ => StoreError::Database {
            context: action.to_owned(),
            source: db.into_error(),
        },
    }
}

/// Whether the database said "busy, try again" rather than "this is wrong".
fn is_transient(family: Family, db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    match family {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
        Family::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
        // Connection exceptions (08), insufficient resources (53), operator intervention
        // (57: shutdown, cancel), serialization failure and deadlock (40001, 40P01).
        Family::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }
    }
}

/// Shorthand used by the backends: `.map_err(err(Family::X, "user", "creating user"))`.
pub(crate) fn err(
    family: Family,
    entity: &'static str,
    action: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_error(family, entity, action, e)
}
