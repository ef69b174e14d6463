//! The write transaction every statement writes through, and what each one owes the other
//! nodes before it commits: word of the tokens it changed.

use keygate_core::TokenHash;
use sqlx::Any;

use crate::backend::{Backend, CHANGES_CHANNEL};
use crate::sql::errors::map_err;
use crate::store::Result;

pub(crate) type Tx = sqlx::Transaction<'static, Any>;

/// Within a write transaction: tell the other nodes which tokens changed. A single SQLite node
/// has no one to tell.
pub(crate) async fn record_changes(
    tx: &mut Tx,
    backend: Backend,
    hashes: &[TokenHash],
) -> Result<()> {
    if backend != Backend::Postgres || hashes.is_empty() {
        return Ok(());
    }
    for h in hashes {
        sqlx::query(
            "INSERT INTO token_changes (at, hash) \
             VALUES ((extract(epoch from clock_timestamp()) * 1000)::bigint, $1)",
        )
        .bind(&h.as_bytes()[..])
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    // Delivered when (and only if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANGES_CHANNEL)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
