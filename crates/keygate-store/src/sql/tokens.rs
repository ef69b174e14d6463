//! The SQL of tokens: reading them by hash, id or external id, listing them, and the writes a
//! batch makes to them.

use keygate_core::{ScopeSet, TokenHash, TokenId};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool};

use keygate_core::network::Cidr;
use keygate_core::usage::{RateLimit, Refill, MAX_CREDITS};
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::model::{unix_ms, CreditChange, CreditState, LastUse, Page, TokenFilter, TokenRecord};
use crate::sql::codec::{from_ms, get, opt_time, scopes_json, to_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::{like_contains, page, Sql};
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

pub(crate) const TOKEN_COLUMNS: &str =
    "seq, id, tenant_id, hash, name, description, metadata, owner_id, \
     scopes, enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by, \
     external_id, rotated_to, external_ref, ratelimits, credits_remaining, credits_refill, \
     credits_period, credits_version, allowed_cidrs, rotated_from, imported_from";

pub(crate) fn token_from_row(row: &AnyRow) -> Result<(i64, TokenRecord)> {
    let hash: Vec<u8> = get(row, "hash")?;
    let scopes_json: String = get(row, "scopes")?;
    let scope_names: Vec<String> = serde_json::from_str(&scopes_json)
        .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))?;
    let metadata: Option<String> = get(row, "metadata")?;
    let rec = TokenRecord {
        id: TokenId::from_stored(get(row, "id")?),
        tenant_id: get(row, "tenant_id")?,
        hash: TokenHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        metadata: metadata
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        owner_id: get(row, "owner_id")?,
        scopes: ScopeSet::parse(scope_names.iter().map(String::as_str))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        enabled: get::<i64>(row, "enabled")? != 0,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
        expires_at: opt_time(row, "expires_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        last_used_ip: get(row, "last_used_ip")?,
        created_by: get(row, "created_by")?,
        chosen_id: get(row, "external_id")?,
        external_id: get(row, "external_ref")?,
        ratelimits: match get::<Option<String>>(row, "ratelimits")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("ratelimits: {e}")))?,
            None => Vec::new(),
        },
        credits: credits_from_row(row)?,
        rotated_to: get::<Option<String>>(row, "rotated_to")?.map(TokenId::from_stored),
        rotated_from: get::<Option<String>>(row, "rotated_from")?.map(TokenId::from_stored),
        allowed_cidrs: match get::<Option<String>>(row, "allowed_cidrs")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("allowed_cidrs: {e}")))?,
            None => Vec::new(),
        },
        imported_from: get(row, "imported_from")?,
    };
    Ok((get(row, "seq")?, rec))
}

fn credits_from_row(row: &AnyRow) -> Result<Option<CreditState>> {
    let Some(remaining) = get::<Option<i64>>(row, "credits_remaining")? else {
        return Ok(None);
    };
    let refill = get::<Option<String>>(row, "credits_refill")?
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("credits_refill: {e}")))?;
    Ok(Some(CreditState {
        remaining: u64::try_from(remaining)
            .map_err(|_| StoreError::Corrupt("credits_remaining is negative".into()))?,
        refill,
        period_ms: get(row, "credits_period")?,
        version: get(row, "credits_version")?,
    }))
}

fn ratelimits_json(limits: &[RateLimit]) -> Option<String> {
    (!limits.is_empty()).then(|| serde_json::to_string(limits).expect("rate limits serialise"))
}

fn cidrs_json(cidrs: &[Cidr]) -> Option<String> {
    (!cidrs.is_empty()).then(|| serde_json::to_string(cidrs).expect("networks serialise"))
}

fn refill_json(refill: Option<&Refill>) -> Option<String> {
    refill.map(|r| serde_json::to_string(r).expect("a refill serialises"))
}

pub(crate) async fn token_by_hash(pool: &AnyPool, hash: &TokenHash) -> Result<Option<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1");
    one_token(pool, sqlx::query(&sql).bind(&hash.as_bytes()[..])).await
}

/// Which of `hashes` are taken, asked in chunks well under either database's limit on bound
/// parameters.
pub(crate) async fn existing_hashes(
    pool: &AnyPool,
    hashes: &[TokenHash],
) -> Result<Vec<TokenHash>> {
    let mut found = Vec::new();
    for chunk in hashes.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT hash FROM tokens WHERE hash IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for h in chunk {
            q = q.bind(&h.as_bytes()[..]);
        }
        for row in q.fetch_all(pool).await.map_err(map_err)? {
            let bytes: Vec<u8> = get(&row, "hash")?;
            found.push(
                TokenHash::from_slice(&bytes)
                    .ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?,
            );
        }
    }
    Ok(found)
}

/// The token of a tenant whose `column` (a unique one) holds `value`.
pub(crate) async fn token_where(
    pool: &AnyPool,
    tenant_id: &str,
    column: &'static str,
    value: &str,
) -> Result<Option<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND {column} = $2");
    one_token(pool, sqlx::query(&sql).bind(tenant_id).bind(value)).await
}

async fn one_token<'q>(
    pool: &AnyPool,
    query: Query<'q, Any, AnyArguments<'q>>,
) -> Result<Option<TokenRecord>> {
    let row = query.fetch_optional(pool).await.map_err(map_err)?;
    row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
}

pub(crate) async fn list_tokens(
    pool: &AnyPool,
    tenant_id: &str,
    f: &TokenFilter,
) -> Result<Page<TokenRecord>> {
    let mut q = Sql::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = "
    ));
    q.bind(tenant_id.to_owned());
    if let Some(owner) = &f.owner_id {
        q.push(" AND owner_id = ").bind(owner.clone());
    }
    if let Some(enabled) = f.enabled {
        q.push(" AND enabled = ").bind(enabled as i64);
    }
    if let Some(needle) = &f.name_contains {
        q.push(" AND lower(name) LIKE ")
            .bind(like_contains(&needle.to_lowercase()))
            .push(" ESCAPE '\\'");
    }
    if let Some(external_id) = &f.external_id {
        q.push(" AND external_ref = ").bind(external_id.clone());
    }
    if let Some(scope) = &f.scope {
        // Scopes are stored as a JSON array of names, and a name never contains a quote:
        // `"name"` matches exactly one element.
        q.push(" AND scopes LIKE ")
            .bind(like_contains(&format!("\"{scope}\"")))
            .push(" ESCAPE '\\'");
    }
    if let Some(ids) = &f.ids {
        if ids.is_empty() {
            q.push(" AND 1 = 0");
        } else {
            q.push(" AND id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(id.clone());
            }
            q.push(")");
        }
    }
    if let Some(before) = f.created_before {
        // Stored times are whole milliseconds: a bound between two of them is rounded up, so
        // that a token created in the millisecond before it still counts.
        let nanos = before.unix_timestamp_nanos();
        let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) > 0);
        q.push(" AND created_at < ").bind(ms as i64);
    }
    if let Some(now) = f.violating_policy_at {
        crate::sql::policies::push_violating(&mut q, now);
    }
    if let Some(before) = f.before_seq {
        q.push(" AND seq < ").bind(before);
    }
    q.push(" ORDER BY seq DESC LIMIT ").bind(f.limit as i64 + 1);
    let rows = q.query().fetch_all(pool).await.map_err(map_err)?;
    let rows = rows
        .iter()
        .map(token_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(page(rows, f.limit))
}

pub(crate) async fn insert_token(tx: &mut Tx, t: &TokenRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, tenant_id, hash, name, description, metadata, owner_id, scopes, \
         enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by, \
         external_id, rotated_to, external_ref, ratelimits, credits_remaining, credits_refill, \
         credits_period, credits_version, allowed_cidrs, rotated_from, expiry_notice_at, \
         imported_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(t.id.as_str())
    .bind(&t.tenant_id)
    .bind(&t.hash.as_bytes()[..])
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.metadata.as_ref().map(|m| m.get()))
    .bind(&t.owner_id)
    .bind(scopes_json(&t.scopes))
    .bind(t.enabled as i64)
    .bind(to_ms(t.created_at))
    .bind(to_ms(t.updated_at))
    .bind(t.expires_at.map(to_ms))
    .bind(t.last_used_at.map(to_ms))
    .bind(&t.last_used_ip)
    .bind(&t.created_by)
    .bind(&t.chosen_id)
    .bind(t.rotated_to.as_ref().map(TokenId::as_str))
    .bind(&t.external_id)
    .bind(ratelimits_json(&t.ratelimits))
    .bind(t.credits.map(|c| c.remaining as i64))
    .bind(refill_json(
        t.credits.as_ref().and_then(|c| c.refill.as_ref()),
    ))
    .bind(t.credits.map_or(0, |c| c.period_ms))
    .bind(t.credits.map_or(0, |c| c.version))
    .bind(cidrs_json(&t.allowed_cidrs))
    .bind(t.rotated_from.as_ref().map(TokenId::as_str))
    // A token with an expiry is due for the expiry scanner's first look at once.
    .bind(t.expires_at.map(|_| 0i64))
    .bind(&t.imported_from)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn update_token(tx: &mut Tx, t: &TokenRecord) -> Result<()> {
    // An expiry that has passed, or that a rotation set, is binding: the service refuses such a
    // change, and this guard keeps a change that raced with the rotation or the expiry from
    // undoing them. `rotated_to` is only ever set.
    // The expiry scan (`sql::expiry`) looks again at once when the expiry moves (its notices
    // start over) or the token is enabled again before its expiry (of the notices it missed while
    // disabled only the one due now is sent); disabled, rotated-out and expiry-less tokens get none.
    let q = sqlx::query(
        "UPDATE tokens SET name = $1, description = $2, metadata = $3, \
         owner_id = $4, scopes = $5, enabled = $6, updated_at = $7, \
         expires_at = $8, rotated_to = COALESCE(rotated_to, $11), \
         external_ref = $12, ratelimits = $13, allowed_cidrs = $14, \
         expiry_notice_at = CASE \
           WHEN COALESCE(rotated_to, $11) IS NOT NULL OR $8 IS NULL OR $6 = 0 THEN NULL \
           WHEN expires_at IS DISTINCT FROM $8 OR (enabled = 0 AND $8 > $7) THEN 0 \
           ELSE expiry_notice_at END, \
         expiry_notice_stage = CASE WHEN expires_at IS DISTINCT FROM $8 THEN NULL \
           ELSE expiry_notice_stage END \
         WHERE tenant_id = $9 AND id = $10 \
         AND (expires_at IS NOT DISTINCT FROM $8 \
              OR (rotated_to IS NULL AND (expires_at IS NULL OR expires_at > $7)))",
    )
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.metadata.as_ref().map(|m| m.get()))
    .bind(&t.owner_id)
    .bind(scopes_json(&t.scopes))
    .bind(t.enabled as i64)
    .bind(to_ms(t.updated_at))
    .bind(t.expires_at.map(to_ms))
    .bind(&t.tenant_id)
    .bind(t.id.as_str())
    .bind(t.rotated_to.as_ref().map(TokenId::as_str))
    .bind(&t.external_id)
    .bind(ratelimits_json(&t.ratelimits))
    .bind(cidrs_json(&t.allowed_cidrs));
    if q.execute(&mut **tx).await.map_err(map_err)?.rows_affected() == 0 {
        return Err(missing_or_expiry_fixed(tx, &t.tenant_id, &t.id).await);
    }
    Ok(())
}

/// A credits change. Only this and the leases (`sql::credits`) write the pool: an ordinary
/// token update leaves it alone, so a node's lease taken meanwhile is never undone.
pub(crate) async fn change_credits(
    tx: &mut Tx,
    backend: Backend,
    tenant_id: &str,
    id: &TokenId,
    change: CreditChange,
    at: OffsetDateTime,
) -> Result<TokenHash> {
    // The new pool is counted from this read, so the row stays locked until the commit: a
    // lease committed in between would otherwise be undone, its credits spendable twice.
    // (SQLite's one writer connection already keeps every other write out.)
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT hash, credits_remaining, credits_refill, credits_period FROM tokens \
         WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant_id)
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?
    .ok_or(StoreError::NotFound)?;
    let hash: Vec<u8> = get(&row, "hash")?;
    let hash = TokenHash::from_slice(&hash)
        .ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?;
    let stmt = match change {
        CreditChange::Set(None) => sqlx::query(
            "UPDATE tokens SET credits_remaining = NULL, credits_refill = NULL, \
             credits_period = 0, credits_version = credits_version + 1 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id.as_str()),
        CreditChange::Set(Some((remaining, refill))) => sqlx::query(
            "UPDATE tokens SET credits_remaining = $3, credits_refill = $4, \
             credits_period = $5, credits_version = credits_version + 1 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id.as_str())
        .bind(remaining as i64)
        .bind(refill_json(refill.as_ref()))
        .bind(refill.map_or(0, |r| unix_ms(r.period_start(at)))),
        CreditChange::Increment(_) | CreditChange::Decrement(_) => {
            let Some(pool) = get::<Option<i64>>(&row, "credits_remaining")? else {
                return Err(StoreError::Refused(
                    "the token's credits are unlimited; set them first".into(),
                ));
            };
            // A refill that is due is applied first, so the change counts from the new amount.
            let refill: Option<Refill> = get::<Option<String>>(&row, "credits_refill")?
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("credits_refill: {e}")))?;
            let period: i64 = get(&row, "credits_period")?;
            let (pool, period) = match refill {
                Some(r) if unix_ms(r.period_start(at)) > period => {
                    (r.amount as i64, unix_ms(r.period_start(at)))
                }
                _ => (pool, period),
            };
            let (new_pool, void_leases) = match change {
                CreditChange::Increment(v) => (
                    (pool as u64).saturating_add(v).min(MAX_CREDITS) as i64,
                    false,
                ),
                // What nodes hold unspent is not known here: when the pool cannot cover the
                // decrement, their leases are voided too, so that nothing more than asked
                // remains spendable.
                _ => {
                    let v = match change {
                        CreditChange::Decrement(v) => v as i64,
                        _ => unreachable!("only a decrement is left"),
                    };
                    ((pool - v).max(0), v > pool)
                }
            };
            sqlx::query(
                "UPDATE tokens SET credits_remaining = $3, credits_period = $4, \
                 credits_version = credits_version + $5 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id.as_str())
            .bind(new_pool)
            .bind(period)
            .bind(void_leases as i64)
        }
    };
    stmt.execute(&mut **tx).await.map_err(map_err)?;
    Ok(hash)
}

/// Why a guarded token update changed no row: the token is gone, or its expiry is fixed.
async fn missing_or_expiry_fixed(tx: &mut Tx, tenant_id: &str, id: &TokenId) -> StoreError {
    let exists =
        sqlx::query_scalar::<_, i64>("SELECT 1 FROM tokens WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await;
    match exists {
        Ok(Some(_)) => StoreError::Refused(
            "the token has expired or was rotated out; its expiry can no longer change".into(),
        ),
        Ok(None) => StoreError::NotFound,
        Err(e) => map_err(e),
    }
}

/// The deleted token's hash, for the caches to drop; `None` only for a stored hash that is not
/// 32 bytes, which no cache can hold.
pub(crate) async fn delete_token(
    tx: &mut Tx,
    tenant_id: &str,
    id: &TokenId,
) -> Result<Option<TokenHash>> {
    let hash: Option<Vec<u8>> =
        sqlx::query_scalar("DELETE FROM tokens WHERE tenant_id = $1 AND id = $2 RETURNING hash")
            .bind(tenant_id)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
    let hash = hash.ok_or(StoreError::NotFound)?;
    Ok(TokenHash::from_slice(&hash))
}

/// The count the triggers of migration 0004 keep (on PostgreSQL in shards, migration 0005),
/// read inside the batch's transaction, after its insert.
pub(crate) async fn enforce_owner_limit(
    tx: &mut Tx,
    tenant_id: &str,
    owner_id: &str,
    max: u32,
) -> Result<()> {
    let held: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM owner_token_counts \
         WHERE tenant_id = $1 AND owner_id = $2",
    )
    .bind(tenant_id)
    .bind(owner_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    if held > i64::from(max) {
        return Err(StoreError::LimitReached(format!(
            "{owner_id} already holds {max} tokens, the most one owner may hold; revoke some first"
        )));
    }
    Ok(())
}

pub(crate) async fn record_last_use(pool: &AnyPool, batch: &[LastUse]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(map_err)?;
    for u in batch {
        // Never move last use backwards: batches from a slow node may arrive late.
        sqlx::query(
            "UPDATE tokens SET last_used_at = $1, last_used_ip = $2 \
             WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $4)",
        )
        .bind(to_ms(u.at))
        .bind(&u.ip)
        .bind(u.id.as_str())
        .bind(to_ms(u.at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}
