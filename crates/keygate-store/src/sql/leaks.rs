//! The SQL of reported leaks (migration 0014): the record of a leaked token, written once in
//! the batch that acts on it and counted on later reports, and the signatures of accepted
//! GitHub reports with their answers, for replays.

use keygate_core::{OnLeak, TokenHash, TokenId};
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::model::{LeakRecord, NewLeak};
use crate::sql::codec::{from_ms, get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

/// How long an accepted signature is kept for replay detection. A replay after that is
/// handled as a new report, which acts on nothing a first report has not (the leaks it names
/// are recorded): it only counts again.
pub const SIGNATURE_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;

pub(crate) async fn insert_leak(tx: &mut Tx, l: &NewLeak) -> Result<()> {
    let at = to_ms(l.at);
    sqlx::query(
        "INSERT INTO leaked_tokens (token_id, tenant_id, token_hash, reporter, location, action, \
         first_reported_at, last_reported_at, reports) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)",
    )
    .bind(l.token_id.as_str())
    .bind(&l.tenant_id)
    .bind(&l.hash.as_bytes()[..])
    .bind(&l.reporter)
    .bind(&l.location)
    .bind(l.action.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn leak_by_hash(pool: &AnyPool, hash: &TokenHash) -> Result<Option<LeakRecord>> {
    let row = sqlx::query(
        "SELECT token_id, tenant_id, reporter, location, action, first_reported_at, \
         last_reported_at, reports FROM leaked_tokens WHERE token_hash = $1",
    )
    .bind(&hash.as_bytes()[..])
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(LeakRecord {
        token_id: TokenId::from_stored(get(&r, "token_id")?),
        tenant_id: get(&r, "tenant_id")?,
        reporter: get(&r, "reporter")?,
        location: get(&r, "location")?,
        action: OnLeak::parse(&get::<String>(&r, "action")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        first_reported_at: from_ms(get(&r, "first_reported_at")?)?,
        last_reported_at: from_ms(get(&r, "last_reported_at")?)?,
        reports: get::<i64>(&r, "reports")?.max(0) as u64,
    }))
}

/// Counts a later report of a recorded leak; `false` if none is recorded under this hash.
pub(crate) async fn count_report(
    pool: &AnyPool,
    hash: &TokenHash,
    at: OffsetDateTime,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE leaked_tokens SET reports = reports + 1, \
         last_reported_at = CASE WHEN last_reported_at > $2 THEN last_reported_at ELSE $2 END \
         WHERE token_hash = $1",
    )
    .bind(&hash.as_bytes()[..])
    .bind(to_ms(at))
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn report_answer(pool: &AnyPool, signature: &[u8]) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT answer FROM leak_report_signatures WHERE signature = $1")
        .bind(signature)
        .fetch_optional(pool)
        .await
        .map_err(map_err)
}

/// Keeps an accepted report's signature and answer, unless it is kept already (a replay that
/// raced its original: both answered alike). Signatures past [`SIGNATURE_RETENTION_MS`] go in
/// the same transaction, so the table stays small without a sweeper. `true` if this call kept
/// it.
pub(crate) async fn keep_report(
    pool: &AnyPool,
    signature: &[u8],
    key_id: &str,
    answer: &str,
    at: OffsetDateTime,
) -> Result<bool> {
    let at = to_ms(at);
    let mut tx = pool.begin().await.map_err(map_err)?;
    sqlx::query("DELETE FROM leak_report_signatures WHERE accepted_at < $1")
        .bind(at - SIGNATURE_RETENTION_MS)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let done = sqlx::query(
        "INSERT INTO leak_report_signatures (signature, key_id, answer, accepted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (signature) DO NOTHING",
    )
    .bind(signature)
    .bind(key_id)
    .bind(answer)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(done.rows_affected() > 0)
}
