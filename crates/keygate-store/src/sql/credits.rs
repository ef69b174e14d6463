//! The SQL of credit leases: a node takes credits out of a token's pool, and gives back what
//! it did not spend. Neither is a token change: no cache forgets the token for it, since
//! nothing a verification reads from the cache moves.

use keygate_core::usage::{Refill, MAX_CREDITS};
use keygate_core::TokenId;
use sqlx::{Any, AnyPool, Executor};
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::model::unix_ms;
use crate::sql::codec::get;
use crate::sql::errors::map_err;
use crate::store::{Lease, Result, StoreError};

/// A token's credits columns as read.
struct Pool {
    remaining: u64,
    refill: Option<Refill>,
    period_ms: i64,
    version: i64,
}

impl Pool {
    /// The lease `want` gets at `at`: a refill that is due is applied first.
    fn lease(&self, want: u64, at: OffsetDateTime) -> Lease {
        let (pool, period_ms) = match self.refill.map(|r| (r.amount, unix_ms(r.period_start(at)))) {
            Some((amount, start)) if start > self.period_ms => (amount, start),
            _ => (self.remaining, self.period_ms),
        };
        let granted = pool.min(want);
        Lease {
            granted,
            pool_after: pool - granted,
            version: self.version,
            period_ms,
        }
    }
}

/// `None`: the token is gone, or its credits are unlimited.
async fn read<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &TokenId,
    lock: &str,
) -> Result<Option<Pool>> {
    let sql = format!(
        "SELECT credits_remaining, credits_refill, credits_period, credits_version \
         FROM tokens WHERE id = $1{lock}"
    );
    let Some(row) = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(db)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    let Some(remaining) = get::<Option<i64>>(&row, "credits_remaining")? else {
        return Ok(None);
    };
    Ok(Some(Pool {
        remaining: u64::try_from(remaining)
            .map_err(|_| StoreError::Corrupt("credits_remaining is negative".into()))?,
        refill: get::<Option<String>>(&row, "credits_refill")?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("credits_refill: {e}")))?,
        period_ms: get(&row, "credits_period")?,
        version: get(&row, "credits_version")?,
    }))
}

/// Takes `min(pool, want)` credits out of the pool after applying a refill that is due at
/// `at`. The row stays locked from the read to the commit (PostgreSQL: `FOR UPDATE`; SQLite:
/// the one writer connection), so no other lease, return or credits change lands between.
pub(crate) async fn lease_credits(
    reader: &AnyPool,
    writer: &AnyPool,
    backend: Backend,
    id: &TokenId,
    want: u64,
    at: OffsetDateTime,
) -> Result<Option<Lease>> {
    // A lease that would change nothing (an empty pool, or a cost of 0) is answered from a
    // plain read, so refused verifications of an exhausted token lock and write nothing.
    let Some(seen) = read(reader, id, "").await? else {
        return Ok(None);
    };
    let lease = seen.lease(want, at);
    if lease.granted == 0 && lease.period_ms == seen.period_ms {
        return Ok(Some(lease));
    }

    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let mut tx = writer.begin().await.map_err(map_err)?;
    let Some(pool) = read(&mut *tx, id, lock).await? else {
        return Ok(None);
    };
    let lease = pool.lease(want, at);
    if lease.granted > 0 || lease.period_ms != pool.period_ms {
        sqlx::query("UPDATE tokens SET credits_remaining = $2, credits_period = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(lease.pool_after as i64)
            .bind(lease.period_ms)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    // Durable before any of it is spent: were a lease lost after its credits were spent, the
    // pool would hand them out twice.
    tx.commit().await.map_err(map_err)?;
    Ok(Some(lease))
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
