//! The webhook outbox's write side: an event becomes one pending delivery per subscribed
//! endpoint, inside the transaction of the change it tells of.

use crate::model::NewEvent;
use crate::sql::codec::to_ms;
use crate::sql::errors::map_err;
use crate::sql::tx::Tx;
use crate::store::Result;

/// How long a delivery is retried after its event, unless the server says otherwise when it
/// claims it (the dispatcher moves `retry_until` to its own window on the first attempt).
pub const DEFAULT_RETRY_MS: i64 = 24 * 60 * 60 * 1000;

/// One statement whatever the number of endpoints, and no row at all for a tenant without
/// endpoints: a write pays one index probe for webhooks it does not use.
pub(crate) async fn enqueue(tx: &mut Tx, e: &NewEvent) -> Result<()> {
    let at = to_ms(e.at);
    sqlx::query(
        "INSERT INTO webhook_deliveries (endpoint_id, tenant_id, event_id, event_type, payload, \
         created_at, state, attempts, next_attempt_at, retry_until) \
         SELECT id, tenant_id, $1, $2, $3, $4, 'pending', 0, $4, $5 \
         FROM webhook_endpoints \
         WHERE tenant_id = $6 AND enabled = 1 \
           AND (events = ',*,' OR events LIKE '%,' || $2 || ',%')",
    )
    .bind(&e.id)
    .bind(e.event_type.as_str())
    .bind(&e.payload)
    .bind(at)
    .bind(at + DEFAULT_RETRY_MS)
    .bind(&e.tenant_id)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}
