//! The SQL of webhook endpoints and their delivery log: the writes a batch applies (create,
//! update, delete, redeliver) and the reads of the API. The dispatcher's statements are in
//! `webhook_dispatch`.

use secrecy::ExposeSecret;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::model::Page;
use crate::model::{DeliveryState, WebhookDelivery, WebhookEndpoint};
use crate::sql::codec::{from_ms, get, opt_time, to_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::{page, Sql};
use crate::sql::outbox::DEFAULT_RETRY_MS;
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

/// `["a", "b"]` as the column keeps it, `,a,b,`: what the outbox's one LIKE matches.
pub(crate) fn events_column(events: &[String]) -> String {
    format!(",{},", events.join(","))
}

fn events_of(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, events, secret, enabled, \
     disabled_reason, failing_since, created_at, updated_at";

fn endpoint(r: &AnyRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: get(r, "id")?,
        tenant_id: get(r, "tenant_id")?,
        url: get(r, "url")?,
        description: get(r, "description")?,
        events: events_of(&get::<String>(r, "events")?),
        secret: get::<String>(r, "secret")?.into(),
        enabled: get::<i64>(r, "enabled")? != 0,
        disabled_reason: get(r, "disabled_reason")?,
        failing_since: opt_time(r, "failing_since")?,
        created_at: from_ms(get(r, "created_at")?)?,
        updated_at: from_ms(get(r, "updated_at")?)?,
    })
}

pub(crate) async fn insert_webhook(tx: &mut Tx, e: &WebhookEndpoint) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret, \
         enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&e.id)
    .bind(&e.tenant_id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(events_column(&e.events))
    .bind(e.secret.expose_secret())
    .bind(e.enabled as i64)
    .bind(to_ms(e.created_at))
    .bind(to_ms(e.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn update_webhook(
    tx: &mut Tx,
    e: &WebhookEndpoint,
    resume_until_ms: Option<i64>,
) -> Result<()> {
    let mut q = Sql::new("UPDATE webhook_endpoints SET url = ");
    q.bind(e.url.clone())
        .push(", description = ")
        .bind(e.description.clone())
        .push(", events = ")
        .bind(events_column(&e.events))
        .push(", enabled = ")
        .bind(e.enabled as i64)
        .push(", updated_at = ")
        .bind(to_ms(e.updated_at));
    if resume_until_ms.is_some() {
        q.push(", disabled_reason = NULL, failing_since = NULL");
    }
    q.push(" WHERE tenant_id = ")
        .bind(e.tenant_id.clone())
        .push(" AND id = ")
        .bind(e.id.clone());
    let done = q.query().execute(&mut **tx).await.map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if let Some(until) = resume_until_ms {
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, retry_until = $2 \
             WHERE endpoint_id = $3 AND state = 'pending'",
        )
        .bind(to_ms(e.updated_at))
        .bind(until)
        .bind(&e.id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn delete_webhook(tx: &mut Tx, tenant_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// In place, so the log keeps one row per event and endpoint; its attempts count again from
/// zero, which starts a new retry window at the next attempt.
pub(crate) async fn redeliver_webhook(
    tx: &mut Tx,
    tenant_id: &str,
    endpoint_id: &str,
    delivery_id: i64,
    at: OffsetDateTime,
) -> Result<()> {
    let at = to_ms(at);
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, \
         retry_until = $2, delivered_at = NULL \
         WHERE id = $3 AND endpoint_id = $4 AND tenant_id = $5",
    )
    .bind(at)
    .bind(at + DEFAULT_RETRY_MS)
    .bind(delivery_id)
    .bind(endpoint_id)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn webhook(
    pool: &AnyPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<WebhookEndpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(endpoint)
        .transpose()
}

pub(crate) async fn list_webhooks(
    pool: &AnyPool,
    tenant_id: &str,
    limit: u32,
) -> Result<Vec<WebhookEndpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 \
         ORDER BY created_at, id LIMIT $2"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(limit as i64)
        .fetch_all(pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(endpoint)
        .collect()
}

const DELIVERY_COLUMNS: &str = "SELECT id, endpoint_id, event_id, event_type, state, attempts, \
     last_attempt_at, last_status, last_latency_ms, last_error, next_attempt_at, created_at, \
     delivered_at FROM webhook_deliveries WHERE tenant_id = ";

fn delivery(r: &AnyRow) -> Result<WebhookDelivery> {
    let state: String = get(r, "state")?;
    let pending = state == "pending";
    Ok(WebhookDelivery {
        id: get(r, "id")?,
        endpoint_id: get(r, "endpoint_id")?,
        event_id: get(r, "event_id")?,
        event_type: get(r, "event_type")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        attempts: get(r, "attempts")?,
        last_attempt_at: opt_time(r, "last_attempt_at")?,
        last_status: get(r, "last_status")?,
        last_latency_ms: get(r, "last_latency_ms")?,
        last_error: get(r, "last_error")?,
        // Only a pending delivery has a next attempt.
        next_attempt_at: if pending {
            opt_time(r, "next_attempt_at")?
        } else {
            None
        },
        created_at: from_ms(get(r, "created_at")?)?,
        delivered_at: opt_time(r, "delivered_at")?,
    })
}

pub(crate) async fn webhook_deliveries(
    pool: &AnyPool,
    tenant_id: &str,
    endpoint_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Page<WebhookDelivery>> {
    let mut q = Sql::new(DELIVERY_COLUMNS);
    q.bind(tenant_id.to_owned())
        .push(" AND endpoint_id = ")
        .bind(endpoint_id.to_owned());
    if let Some(before) = before {
        q.push(" AND id < ").bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ").bind(limit as i64 + 1);
    let rows = q.query().fetch_all(pool).await.map_err(map_err)?;
    let items = rows
        .iter()
        .map(|r| delivery(r).map(|d| (d.id, d)))
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit))
}

pub(crate) async fn webhook_delivery(
    pool: &AnyPool,
    tenant_id: &str,
    endpoint_id: &str,
    id: i64,
) -> Result<Option<WebhookDelivery>> {
    let mut q = Sql::new(DELIVERY_COLUMNS);
    q.bind(tenant_id.to_owned())
        .push(" AND endpoint_id = ")
        .bind(endpoint_id.to_owned())
        .push(" AND id = ")
        .bind(id);
    q.query()
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(delivery)
        .transpose()
}
