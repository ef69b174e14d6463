//! The SQL of credit leases: a node takes credits out of a token's pool, and gives back what
//! it did not spend. Neither is a token change: no cache forgets the token for it, since
//! nothing a verification reads from the cache moves.

use keygate_core::usage::{Refill, MAX_CREDITS};
use keygate_core::TokenId;
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::model::unix_ms;
use crate::sql::codec::get;
use crate::sql::errors::map_err;
use crate::store::{Lease, Result, StoreError};

/// Takes `min(pool, want)` credits out of the pool after applying a refill that is due at
/// `at`. The row stays locked from the read to the commit (PostgreSQL: `FOR UPDATE`; SQLite:
/// the one writer connection), so no other lease, return or credits change lands between.
pub(crate) async fn lease_credits(
    writer: &AnyPool,
    backend: Backend,
    id: &TokenId,
    want: u64,
    at: OffsetDateTime,
) -> Result<Option<Lease>> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let select = format!(
        "SELECT credits_remaining, credits_refill, credits_period, credits_version \
         FROM tokens WHERE id = $1{lock}"
    );
    let mut tx = writer.begin().await.map_err(map_err)?;
    let Some(row) = sqlx::query(&select)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    let Some(pool) = get::<Option<i64>>(&row, "credits_remaining")? else {
        return Ok(None);
    };
    let pool = u64::try_from(pool)
        .map_err(|_| StoreError::Corrupt("credits_remaining is negative".into()))?;
    let refill: Option<Refill> = get::<Option<String>>(&row, "credits_refill")?
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("credits_refill: {e}")))?;
    let stored_period: i64 = get(&row, "credits_period")?;
    let version: i64 = get(&row, "credits_version")?;

    let (pool, period) = match refill.map(|r| (r.amount, unix_ms(r.period_start(at)))) {
        Some((amount, start)) if start > stored_period => (amount, start),
        _ => (pool, stored_period),
    };
    let granted = pool.min(want);
    let pool_after = pool - granted;
    if granted > 0 || period != stored_period {
        sqlx::query("UPDATE tokens SET credits_remaining = $2, credits_period = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(pool_after as i64)
            .bind(period)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    // A lease that reached no client yet is still committed durably: were it lost after its
    // credits were spent, the pool would hand them out twice.
    tx.commit().await.map_err(map_err)?;
    Ok(Some(Lease {
        granted,
        pool_after,
        version,
        period_ms: period,
    }))
}

/// Adds `amount` back to the pool if the lease it came from is still valid: same version,
/// same refill period. One statement, so it needs no transaction of its own.
pub(crate) async fn return_credits(
    writer: &AnyPool,
    id: &TokenId,
    amount: u64,
    version: i64,
    period_ms: i64,
) -> Result<()> {
    if amount == 0 {
        return Ok(());
    }
    // An increment meanwhile may have filled the pool near the top: what does not fit is
    // dropped, which can only make fewer credits spendable.
    sqlx::query(
        "UPDATE tokens SET credits_remaining = CASE \
           WHEN credits_remaining > $5 - $2 THEN $5 ELSE credits_remaining + $2 END \
         WHERE id = $1 AND credits_remaining IS NOT NULL \
           AND credits_version = $3 AND credits_period = $4",
    )
    .bind(id.as_str())
    .bind(amount.min(MAX_CREDITS) as i64)
    .bind(version)
    .bind(period_ms)
    .bind(MAX_CREDITS as i64)
    .execute(writer)
    .await
    .map_err(map_err)?;
    Ok(())
}
