//! How values cross between the store's types and columns both databases hold alike: times as
//! integer milliseconds, scopes as a JSON array, and typed reads of a row's columns.

use keygate_core::ScopeSet;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Type};
use time::OffsetDateTime;

use crate::store::{Result, StoreError};

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("time out of range: {e}")))
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, Any> + Type<Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<OffsetDateTime>> {
    get::<Option<i64>>(row, col)?.map(from_ms).transpose()
}

pub(crate) fn scopes_json(s: &ScopeSet) -> String {
    serde_json::to_string(&s.names()).expect("a list of strings serialises")
}
