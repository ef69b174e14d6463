//! Statements over many rows at once, for batches that touch thousands of tokens (a bulk
//! revoke): deletions, audit entries and change rows go in chunks of one statement each, where
//! a statement per row would cost a round trip per row on PostgreSQL (10 000 tokens: seconds).

use keygate_core::{EventType, TokenHash, TokenId};
use sqlx::any::AnyRow;

use crate::model::NewAudit;
use crate::sql::codec::{get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::Sql;
use crate::sql::tx::{Tx, CHUNK};
use crate::store::{Result, StoreError};

/// Deletes the tenant's tokens of these (distinct) ids and returns their hashes, for the caches
/// to drop. `NotFound` when any is gone: the batch, and so every deletion, is then undone.
pub(crate) async fn delete_tokens(
    tx: &mut Tx,
    tenant_id: &str,
    ids: &[TokenId],
) -> Result<Vec<TokenHash>> {
    let mut hashes = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut q = Sql::new("DELETE FROM tokens WHERE tenant_id = ");
        q.bind(tenant_id.to_owned()).push(" AND id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(id.as_str().to_owned());
        }
        q.push(") RETURNING hash");
        let rows: Vec<AnyRow> = q.query().fetch_all(&mut **tx).await.map_err(map_err)?;
        if rows.len() != chunk.len() {
            return Err(StoreError::NotFound);
        }
        for row in &rows {
            let hash: Vec<u8> = get(row, "hash")?;
            // A stored hash that is not 32 bytes is in no cache.
            hashes.extend(TokenHash::from_slice(&hash));
        }
    }
    Ok(hashes)
}

/// Inserts audit entries in order, a chunk per statement.
pub(crate) async fn insert_audits(tx: &mut Tx, entries: &[NewAudit]) -> Result<()> {
    for chunk in entries.chunks(CHUNK) {
        let mut q = Sql::new(
            "INSERT INTO audit (tenant_id, at, actor, action, target_id, ip, details) VALUES ",
        );
        for (i, a) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            q.bind(a.tenant_id.clone()).push(", ");
            q.bind(to_ms(a.at)).push(", ");
            q.bind(a.actor.clone()).push(", ");
            q.bind(a.action.clone()).push(", ");
            q.bind(a.target_id.clone()).push(", ");
            q.bind(a.ip.clone()).push(", ");
            q.bind(a.details.as_ref().map(|d| d.to_string())).push(")");
        }
        q.query().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Does any enabled endpoint of the tenant take this event? The predicate of
/// `outbox::enqueue`, asked once for a batch of many events of one kind, so that a tenant
/// without such an endpoint costs one statement, not one per event.
pub(crate) async fn has_subscriber(
    tx: &mut Tx,
    tenant_id: &str,
    event_type: EventType,
) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(1 AS BIGINT) FROM webhook_endpoints WHERE tenant_id = $1 AND enabled = 1 \
         AND (events = ',*,' OR events LIKE '%,' || $2 || ',%') LIMIT 1",
    )
    .bind(tenant_id)
    .bind(event_type.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(found.is_some())
}
