//! How a database error becomes a [`StoreError`]: the one place that reads the database's
//! errors, so every statement module reports them alike.

use crate::store::StoreError;

/// What the triggers of migration 0008 raise when a write would leave a tenant without an admin
/// user; they check it in the write's own transaction, whatever the write.
pub(crate) const KEEP_AN_ADMIN: &str = "keygate: a tenant keeps an admin";

/// The refusal a client gets for such a write ([`StoreError::LimitReached`]).
pub const LAST_ADMIN: &str = "this is the tenant's last admin; make another user admin first";

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.message().contains(KEEP_AN_ADMIN) => {
            StoreError::LimitReached(LAST_ADMIN.to_owned())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}
