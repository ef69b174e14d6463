//! The first tenant, its admin and the bootstrap token, written together by whichever node
//! gets there first.

use sqlx::AnyPool;

use crate::backend::Backend;
use crate::model::{Bootstrap, NewAudit};
use crate::sql::audit::insert_audit;
use crate::sql::codec::to_ms;
use crate::sql::errors::map_err;
use crate::sql::tokens::insert_token;
use crate::sql::tx::record_changes;
use crate::sql::users::insert_user;
use crate::store::Result;

/// Whether this call created them: the tenant's insert is the race every node may run, and
/// only its winner writes the rest.
pub(crate) async fn bootstrap(pool: &AnyPool, backend: Backend, b: &Bootstrap) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let created = sqlx::query(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&b.tenant_id)
    .bind(&b.tenant_id)
    .bind(to_ms(b.token.created_at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected()
        == 1;
    if !created {
        return Ok(false);
    }
    let u = &b.admin;
    insert_user(&mut tx, u).await?;
    insert_token(&mut tx, &b.token).await?;
    insert_audit(
        &mut tx,
        &NewAudit {
            tenant_id: b.tenant_id.clone(),
            at: b.token.created_at,
            actor: "system".into(),
            action: keygate_core::AuditAction::SystemBootstrap.into(),
            target_id: Some(b.token.id.to_string()),
            ip: None,
            details: Some(serde_json::json!({ "adminUserId": u.id })),
        },
    )
    .await?;
    record_changes(&mut tx, backend, &[(&b.tenant_id, b.token.hash)]).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}
