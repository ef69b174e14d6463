//! The SQL of tenants, users and web sessions: the writes a batch makes to them and the reads
//! behind logging in.

use keygate_core::TokenHash;
use secrecy::ExposeSecret;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::model::{SessionRecord, UserPage, UserRecord};
use crate::sql::codec::{from_ms, get, to_ms};
use crate::sql::errors::map_err;
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

const USER_COLUMNS: &str = "id, tenant_id, username, password_hash, role, created_at";

fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: get(row, "id")?,
        tenant_id: get(row, "tenant_id")?,
        username: get(row, "username")?,
        password_hash: get::<String>(row, "password_hash")?.into(),
        role: get(row, "role")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

pub(crate) async fn insert_tenant(tx: &mut Tx, id: &str, created_at: OffsetDateTime) -> Result<()> {
    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(id)
        .bind(to_ms(created_at))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn insert_user(tx: &mut Tx, u: &UserRecord) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&u.id)
    .bind(&u.tenant_id)
    .bind(&u.username)
    .bind(u.password_hash.expose_secret())
    .bind(&u.role)
    .bind(to_ms(u.created_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn update_user(tx: &mut Tx, u: &UserRecord) -> Result<()> {
    let n = sqlx::query(
        "UPDATE users SET role = $1, password_hash = $2 WHERE tenant_id = $3 AND id = $4",
    )
    .bind(&u.role)
    .bind(u.password_hash.expose_secret())
    .bind(&u.tenant_id)
    .bind(&u.id)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn delete_user(tx: &mut Tx, tenant_id: &str, id: &str) -> Result<()> {
    let owned: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE tenant_id = $1 AND owner_id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
    if owned > 0 {
        return Err(StoreError::Refused(format!(
            "the user still owns {owned} token(s)"
        )));
    }
    delete_user_sessions(tx, tenant_id, id).await?;
    let n = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn insert_session(tx: &mut Tx, s: &SessionRecord) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(to_ms(s.created_at))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO sessions (hash, tenant_id, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.hash.as_bytes()[..])
    .bind(&s.tenant_id)
    .bind(&s.user_id)
    .bind(s.csrf_token.expose_secret())
    .bind(to_ms(s.created_at))
    .bind(to_ms(s.expires_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn delete_session(tx: &mut Tx, hash: &TokenHash) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE hash = $1")
        .bind(&hash.as_bytes()[..])
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn delete_user_sessions(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn tenant_exists(pool: &AnyPool, tenant_id: &str) -> Result<bool> {
    let found = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

/// Is `owner_id` the tenant itself or one of its users?
pub(crate) async fn owner_exists(pool: &AnyPool, tenant_id: &str, owner_id: &str) -> Result<bool> {
    if owner_id == tenant_id {
        return Ok(true);
    }
    let found = sqlx::query("SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(owner_id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

pub(crate) async fn user_where(
    pool: &AnyPool,
    tenant_id: &str,
    column: &'static str,
    value: &str,
) -> Result<Option<UserRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND {column} = $2"
    ))
    .bind(tenant_id)
    .bind(value)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn list_users(
    pool: &AnyPool,
    tenant_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<UserPage> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND username > $2 \
         ORDER BY username LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after.unwrap_or(""))
    .bind(limit as i64 + 1)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let mut items = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
    let next_after = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|u| u.username.clone())
    } else {
        None
    };
    Ok(UserPage { items, next_after })
}

pub(crate) async fn session_by_hash(
    pool: &AnyPool,
    hash: &TokenHash,
    now: OffsetDateTime,
) -> Result<Option<(SessionRecord, UserRecord)>> {
    let row = sqlx::query(
        "SELECT s.hash, s.csrf_token, s.created_at AS s_created_at, s.expires_at, \
         u.id, u.tenant_id, u.username, u.password_hash, u.role, u.created_at \
         FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id \
         WHERE s.hash = $1 AND s.expires_at > $2",
    )
    .bind(&hash.as_bytes()[..])
    .bind(to_ms(now))
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    let Some(row) = row else { return Ok(None) };
    let user = user_from_row(&row)?;
    let session = SessionRecord {
        hash: *hash,
        tenant_id: user.tenant_id.clone(),
        user_id: user.id.clone(),
        csrf_token: get::<String>(&row, "csrf_token")?.into(),
        created_at: from_ms(get(&row, "s_created_at")?)?,
        expires_at: from_ms(get(&row, "expires_at")?)?,
    };
    Ok(Some((session, user)))
}
