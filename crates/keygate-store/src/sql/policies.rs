//! The SQL of tenant policies (migration 0013): reading and replacing one, and which of a
//! tenant's tokens break it.

use keygate_core::{OnLeak, OnReuse, TenantPolicy};
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::sql::codec::{get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::Sql;
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

pub(crate) async fn tenant_policy(pool: &AnyPool, tenant_id: &str) -> Result<TenantPolicy> {
    let row = sqlx::query(
        "SELECT max_lifetime_seconds, require_expiry, on_reuse, on_leak \
         FROM tenant_policies WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(TenantPolicy::default());
    };
    let corrupt = |e: keygate_core::PolicyError| StoreError::Corrupt(e.to_string());
    Ok(TenantPolicy {
        max_lifetime_seconds: get::<Option<i64>>(&row, "max_lifetime_seconds")?
            .map(|s| keygate_core::policy::check_max_lifetime(s).map_err(corrupt))
            .transpose()?,
        require_expiry: get::<i64>(&row, "require_expiry")? != 0,
        on_reuse: OnReuse::parse(&get::<String>(&row, "on_reuse")?).map_err(corrupt)?,
        on_leak: OnLeak::parse(&get::<String>(&row, "on_leak")?).map_err(corrupt)?,
    })
}

pub(crate) async fn set_tenant_policy(
    tx: &mut Tx,
    tenant_id: &str,
    p: &TenantPolicy,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_policies \
         (tenant_id, max_lifetime_seconds, require_expiry, on_reuse, on_leak, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
         max_lifetime_seconds = excluded.max_lifetime_seconds, \
         require_expiry = excluded.require_expiry, on_reuse = excluded.on_reuse, \
         on_leak = excluded.on_leak, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(p.max_lifetime_seconds.map(|s| s as i64))
    .bind(p.require_expiry as i64)
    .bind(p.on_reuse.as_str())
    .bind(p.on_leak.as_str())
    .bind(to_ms(at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Narrows a query of `tokens` to those that break their tenant's policy and have not expired
/// by `now`: the rules of `TenantPolicy::check_lifetime`, in SQL. A tenant without a policy row
/// has none to break.
pub(crate) fn push_violating(q: &mut Sql, now: OffsetDateTime) {
    q.push(
        " AND EXISTS (SELECT 1 FROM tenant_policies p WHERE p.tenant_id = tokens.tenant_id \
         AND ((p.max_lifetime_seconds IS NOT NULL \
               AND (tokens.expires_at IS NULL \
                    OR tokens.expires_at - tokens.created_at > p.max_lifetime_seconds * 1000)) \
              OR (p.require_expiry <> 0 AND tokens.expires_at IS NULL))) \
         AND (tokens.expires_at IS NULL OR tokens.expires_at > ",
    )
    .bind(to_ms(now))
    .push(")");
}

pub(crate) async fn count_violations(
    pool: &AnyPool,
    tenant_id: &str,
    now: OffsetDateTime,
) -> Result<u64> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM tokens WHERE tenant_id = ");
    q.bind(tenant_id.to_owned());
    push_violating(&mut q, now);
    let row = q.query().fetch_one(pool).await.map_err(map_err)?;
    Ok(get::<i64>(&row, "n")?.max(0) as u64)
}
