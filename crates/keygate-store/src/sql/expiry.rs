//! The expiry scan: the tokens whose next notice is due, read through the partial index of
//! migration 0013, their notices written to the outbox and their next look scheduled, in one
//! transaction per batch.

use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::expiry::{plan, BuildNotice, DueNotice};
use crate::sql::codec::{get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::outbox;
use crate::sql::tokens::{token_from_row, TOKEN_COLUMNS};
use crate::store::Result;

/// The due rows, soonest first. The `IS NOT NULL` term is the index's own condition, so both
/// databases read the partial index rather than the table.
fn due_query(backend: Backend) -> String {
    // Two nodes scanning at once each take rows the other has not locked; a row the other
    // has just rescheduled is read again after its commit and no longer matches.
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    format!(
        "SELECT {TOKEN_COLUMNS}, expiry_notice_stage FROM tokens \
         WHERE expiry_notice_at IS NOT NULL AND expiry_notice_at <= $1 \
         ORDER BY expiry_notice_at LIMIT $2{lock}"
    )
}

/// Up to `limit` due tokens handled; how many there were (a full batch: more may be due).
pub(crate) async fn send_due(
    writer: &AnyPool,
    backend: Backend,
    now: OffsetDateTime,
    thresholds: &[u64],
    limit: u32,
    build: &BuildNotice<'_>,
) -> Result<usize> {
    let now_ms = to_ms(now);
    let mut tx = writer.begin().await.map_err(map_err)?;
    let rows = sqlx::query(&due_query(backend))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    for row in &rows {
        let (_, token) = token_from_row(row)?;
        let sent: Option<i64> = get(row, "expiry_notice_stage")?;
        // Disabled and rotated-out tokens are told nothing: the token's update schedules a
        // look again when it is enabled before its expiry.
        let p = match token.expires_at {
            Some(exp) if token.enabled && token.rotated_to.is_none() => {
                plan(to_ms(exp), now_ms, sent, thresholds)
            }
            _ => crate::expiry::Plan {
                notice: None,
                stage: sent,
                next_at: None,
            },
        };
        if let Some(notice) = p.notice {
            let event = build(&DueNotice {
                token: token.clone(),
                notice,
            });
            outbox::enqueue(&mut tx, &event).await?;
        }
        sqlx::query(
            "UPDATE tokens SET expiry_notice_at = $1, expiry_notice_stage = $2 \
             WHERE tenant_id = $3 AND id = $4",
        )
        .bind(p.next_at)
        .bind(p.stage)
        .bind(&token.tenant_id)
        .bind(token.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_reads_the_due_rows_through_the_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqlStore::open(&crate::sqlite_url_in_dir(dir.path()))
            .await
            .unwrap();
        let rows = sqlx::query(&format!(
            "EXPLAIN QUERY PLAN {}",
            due_query(Backend::Sqlite)
        ))
        .bind(0i64)
        .bind(10i64)
        .fetch_all(&store.reader)
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| get(r, "detail").unwrap()).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING INDEX tokens_expiry_notice")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN tokens")),
            "{plan:?}"
        );
    }
}
