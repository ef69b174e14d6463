//! The SQL of the audit log: the entries a batch appends, and the filtered listing.

use sqlx::AnyPool;

use crate::model::{AuditEntry, AuditFilter, NewAudit, Page};
use crate::sql::codec::{from_ms, get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::{page, Sql};
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

pub(crate) async fn insert_audit(tx: &mut Tx, a: &NewAudit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (tenant_id, at, actor, action, target_id, ip, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.tenant_id)
    .bind(to_ms(a.at))
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target_id)
    .bind(&a.ip)
    .bind(a.details.as_ref().map(|d| d.to_string()))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn list_audit(
    pool: &AnyPool,
    tenant_id: &str,
    f: &AuditFilter,
) -> Result<Page<AuditEntry>> {
    let mut q = Sql::new(
        "SELECT seq, tenant_id, at, actor, action, target_id, ip, details FROM audit \
         WHERE tenant_id = ",
    );
    q.bind(tenant_id.to_owned());
    if let Some(a) = &f.action {
        q.push(" AND action = ").bind(a.clone());
    }
    if let Some(a) = &f.actor {
        q.push(" AND actor = ").bind(a.clone());
    }
    if let Some(t) = &f.target_id {
        q.push(" AND target_id = ").bind(t.clone());
    }
    if let Some(before) = f.before_seq {
        q.push(" AND seq < ").bind(before);
    }
    q.push(" ORDER BY seq DESC LIMIT ").bind(f.limit as i64 + 1);
    let rows = q.query().fetch_all(pool).await.map_err(map_err)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let details: Option<String> = get(r, "details")?;
        let id: i64 = get(r, "seq")?;
        items.push((
            id,
            AuditEntry {
                id,
                tenant_id: get(r, "tenant_id")?,
                at: from_ms(get(r, "at")?)?,
                actor: get(r, "actor")?,
                action: get(r, "action")?,
                target_id: get(r, "target_id")?,
                ip: get(r, "ip")?,
                details: details
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
            },
        ));
    }
    Ok(page(items, f.limit))
}
