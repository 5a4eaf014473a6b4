//! Turning diesel's and deadpool's errors into [`StoreError`]s.
//!
//! The `Display` of what comes out is always this crate's own sentence (what the store was doing,
//! on which kind of row, and for constraint violations the constraint's name, which comes from
//! our migration); the driver's error is kept as the `source`, for logs only.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

use crate::error::StoreError;

/// Maps a diesel error raised while doing `action` (e.g. "creating user") on an `entity` row.
pub(super) fn map_error(
    entity: &'static str,
    action: &'static str,
    err: DieselError,
) -> StoreError {
    match err {
        DieselError::NotFound => StoreError::not_found(entity, action),
        DieselError::DatabaseError(kind, info) => {
            let constraint = info.constraint_name().map(str::to_owned);
            match kind {
                DatabaseErrorKind::UniqueViolation => StoreError::Conflict {
                    entity,
                    detail: match constraint {
                        Some(name) => format!("{action}: already exists (constraint {name})"),
                        None => format!("{action}: already exists"),
                    },
                },
                DatabaseErrorKind::ForeignKeyViolation => StoreError::MissingReference {
                    entity,
                    detail: match constraint {
                        Some(name) => format!("{action}: constraint {name}"),
                        None => format!("{action}: a referenced row does not exist"),
                    },
                },
                DatabaseErrorKind::NotNullViolation | DatabaseErrorKind::CheckViolation => {
                    StoreError::InvalidInput(format!(
                        "{action}: a value breaks a constraint of the {entity} table"
                    ))
                }
                // "Try again later": a serializable transaction lost, or the connection went
                // away (diesel-async reports I/O failures as UnableToSendCommand).
                DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand => StoreError::Unavailable {
                    context: action.to_owned(),
                    source: Box::new(DieselError::DatabaseError(kind, info)),
                },
                _ => StoreError::Database {
                    context: action.to_owned(),
                    source: Box::new(DieselError::DatabaseError(kind, info)),
                },
            }
        }
        DieselError::DeserializationError(_) => {
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

/// Shorthand for `.map_err(db("user", "creating user"))`.
pub(super) fn db(
    entity: &'static str,
    action: &'static str,
) -> impl FnOnce(DieselError) -> StoreError {
    move |e| map_error(entity, action, e)
}

/// A failure to get a connection (the server refused or is unreachable, every connection stayed
/// busy, or the pool was closed): the database is unavailable to this call.
pub(super) fn pool_error(action: &'static str, err: PoolError) -> StoreError {
    StoreError::Unavailable {
        context: action.to_owned(),
        source: Box::new(err),
    }
}

/// The error type of the closures run in a transaction.
///
/// diesel-async needs `From<diesel::result::Error>` for the errors it raises itself (`BEGIN`,
/// `COMMIT`, `ROLLBACK`); inside the closure every statement maps its own error with context
/// first, and [`StoreError`]s pass through `?` unchanged.
pub(super) struct TxError(pub(super) StoreError);

impl From<DieselError> for TxError {
    fn from(err: DieselError) -> Self {
        Self(map_error("transaction", "running a transaction", err))
    }
}

impl From<StoreError> for TxError {
    fn from(err: StoreError) -> Self {
        Self(err)
    }
}

impl From<TxError> for StoreError {
    fn from(err: TxError) -> Self {
        err.0
    }
}

impl From<TxError> for samokoder_auth::ports::PortError {
    fn from(err: TxError) -> Self {
        err.0.into()
    }
}
