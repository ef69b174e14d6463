//! The dispatcher's SQL: leasing an endpoint whose oldest pending delivery is due, recording an
//! attempt, pruning the log. An endpoint's lease is what keeps one delivery in flight for it
//! across every node: a node that dies holding one loses nothing, the lease just runs out.

use sqlx::AnyPool;

use crate::backend::Backend;
use crate::model::{Attempt, ClaimedDelivery};
use crate::sql::audit::insert_audit;
use crate::sql::codec::get;
use crate::sql::errors::map_err;
use crate::store::Result;

/// The claim, one statement. The subquery finds a free endpoint whose queue head is due (the
/// head only: a later delivery never overtakes one that is waiting to be retried), the longest
/// released first so that busy endpoints take turns; PostgreSQL's `SKIP LOCKED` lets nodes
/// claiming at once each take a different endpoint instead of queueing on one row. SQLite has
/// one writer, so there the statement alone is enough.
fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    format!(
        "UPDATE webhook_endpoints SET lease_owner = $1, lease_until = $2 \
         WHERE id = (SELECT e.id FROM webhook_endpoints e WHERE {CLAIMABLE} \
             ORDER BY COALESCE(e.lease_until, 0), e.id LIMIT 1{lock}) \
           AND (lease_until IS NULL OR lease_until <= $3) \
         RETURNING id, tenant_id, url, secret, failing_since"
    )
}

/// An endpoint `e` that is free at `$3` and whose queue head is due then.
const CLAIMABLE: &str = "e.enabled = 1 AND (e.lease_until IS NULL OR e.lease_until <= $3) \
     AND (SELECT d.next_attempt_at FROM webhook_deliveries d \
          WHERE d.endpoint_id = e.id AND d.state = 'pending' \
          ORDER BY d.id LIMIT 1) <= $3";

/// Whether any endpoint could be claimed now, read without the write lock. Every commit wakes
/// the dispatcher's workers on every node, and most find nothing to do: on SQLite an UPDATE that
/// changes nothing still takes the single writer from the writes that wait for it.
async fn anything_due(reader: &AnyPool, now_ms: i64) -> Result<bool> {
    let sql = format!(
        "SELECT 1 AS due FROM webhook_endpoints e WHERE {} LIMIT 1",
        CLAIMABLE.replace("$3", "$1")
    );
    Ok(sqlx::query(&sql)
        .bind(now_ms)
        .fetch_optional(reader)
        .await
        .map_err(map_err)?
        .is_some())
}

pub(crate) async fn claim(
    pool: &AnyPool,
    reader: &AnyPool,
    backend: Backend,
    owner: &str,
    now_ms: i64,
    lease_until_ms: i64,
) -> Result<Option<ClaimedDelivery>> {
    if !anything_due(reader, now_ms).await? {
        return Ok(None);
    }
    let Some(e) = sqlx::query(&claim_sql(backend))
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    let endpoint_id: String = get(&e, "id")?;
    let head = sqlx::query(
        "SELECT id, event_id, payload, attempts, retry_until FROM webhook_deliveries \
         WHERE endpoint_id = $1 AND state = 'pending' ORDER BY id LIMIT 1",
    )
    .bind(&endpoint_id)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    let Some(d) = head else {
        // Delivered or deleted since the claim: nothing to do, and the lease goes back.
        release(pool, &endpoint_id, owner, now_ms).await?;
        return Ok(None);
    };
    Ok(Some(ClaimedDelivery {
        endpoint_id,
        tenant_id: get(&e, "tenant_id")?,
        url: get(&e, "url")?,
        secret: get::<String>(&e, "secret")?.into(),
        failing_since_ms: get(&e, "failing_since")?,
        delivery_id: get(&d, "id")?,
        event_id: get(&d, "event_id")?,
        payload: get(&d, "payload")?,
        attempts: get(&d, "attempts")?,
        retry_until_ms: get(&d, "retry_until")?,
    }))
}

async fn release(pool: &AnyPool, endpoint_id: &str, owner: &str, at_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = $1 \
         WHERE id = $2 AND lease_owner = $3",
    )
    .bind(at_ms)
    .bind(endpoint_id)
    .bind(owner)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn renew(
    pool: &AnyPool,
    endpoint_id: &str,
    owner: &str,
    lease_until_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET lease_until = $1 WHERE id = $2 AND lease_owner = $3",
    )
    .bind(lease_until_ms)
    .bind(endpoint_id)
    .bind(owner)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() > 0)
}

/// The delivery's row, then the endpoint's (its failing time, perhaps its disabling with the
/// audit entry, and the lease let go), in one transaction. The delivery is changed only if
/// nobody recorded this attempt already (a node whose lease ran out while it waited).
pub(crate) async fn record_attempt(
    pool: &AnyPool,
    c: &ClaimedDelivery,
    owner: &str,
    a: &Attempt,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let delivered = a.error.is_none();
    let state = match (delivered, a.retry_at_ms) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
         last_attempt_at = $2, last_status = $3, last_latency_ms = $4, last_error = $5, \
         next_attempt_at = $6, retry_until = $7, delivered_at = $8 \
         WHERE id = $9 AND state = 'pending' AND attempts = $10",
    )
    .bind(state)
    .bind(a.at_ms)
    .bind(a.status)
    .bind(a.latency_ms)
    .bind(&a.error)
    .bind(a.retry_at_ms)
    .bind(a.retry_until_ms)
    .bind(delivered.then_some(a.at_ms))
    .bind(c.delivery_id)
    .bind(c.attempts)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let disable = if a.disable.is_some() {
        ", enabled = 0, disabled_reason = 'failed for the whole retry window'"
    } else {
        ""
    };
    let done = sqlx::query(&format!(
        "UPDATE webhook_endpoints SET \
         failing_since = CASE WHEN $1 = 1 THEN NULL ELSE COALESCE(failing_since, $2) END\
         {disable}, lease_owner = NULL, lease_until = $2 \
         WHERE id = $3 AND lease_owner = $4"
    ))
    .bind(delivered as i64)
    .bind(a.at_ms)
    .bind(&c.endpoint_id)
    .bind(owner)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    if let Some(entry) = &a.disable {
        if done.rows_affected() > 0 {
            insert_audit(&mut tx, entry).await?;
        }
    }
    tx.commit().await.map_err(map_err)?;
    Ok(())
}

pub(crate) async fn prune(pool: &AnyPool, before_ms: i64) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1")
            .bind(before_ms)
            .execute(pool)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected())
}
