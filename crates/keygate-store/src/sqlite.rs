//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`, so a committed change
//! survives a crash of the process or the machine. One writer connection serialises writes (SQLite
//! allows one writer at a time anyway, and a single writer never meets SQLITE_BUSY on upgrade);
//! a small pool of readers runs beside it thanks to WAL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keygate_core::{ScopeSet, TokenHash, TokenId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use crate::model::*;
use crate::store::{Result, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite:path`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?;
        let file = opts.get_filename().to_owned();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let in_file = |e: sqlx::Error| {
            StoreError::Unavailable(format!("SQLite database {}: {e}", file.display()))
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(in_file)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(in_file)?;
        Ok(Self { writer, reader })
    }

    /// The URL of the default database inside a data directory.
    pub fn url_in_dir(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("keygate.db").display())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("time out of range: {e}")))
}

const TOKEN_COLUMNS: &str = "seq, id, tenant_id, hash, name, description, metadata, owner_id, \
     scopes, enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by";

fn token_from_row(row: &SqliteRow) -> Result<(i64, TokenRecord)> {
    let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let hash: Vec<u8> = row.try_get("hash").map_err(get_err)?;
    let scopes_json: String = row.try_get("scopes").map_err(get_err)?;
    let scope_names: Vec<String> = serde_json::from_str(&scopes_json)
        .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))?;
    let metadata: Option<String> = row.try_get("metadata").map_err(get_err)?;
    let opt_time = |col: &str| -> Result<Option<OffsetDateTime>> {
        row.try_get::<Option<i64>, _>(col)
            .map_err(get_err)?
            .map(from_ms)
            .transpose()
    };
    let rec = TokenRecord {
        id: TokenId::from_stored(row.try_get("id").map_err(get_err)?),
        tenant_id: row.try_get("tenant_id").map_err(get_err)?,
        hash: TokenHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?,
        name: row.try_get("name").map_err(get_err)?,
        description: row.try_get("description").map_err(get_err)?,
        metadata: metadata
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        owner_id: row.try_get("owner_id").map_err(get_err)?,
        scopes: ScopeSet::parse(scope_names.iter().map(String::as_str))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        enabled: row.try_get("enabled").map_err(get_err)?,
        created_at: from_ms(row.try_get("created_at").map_err(get_err)?)?,
        updated_at: from_ms(row.try_get("updated_at").map_err(get_err)?)?,
        expires_at: opt_time("expires_at")?,
        last_used_at: opt_time("last_used_at")?,
        last_used_ip: row.try_get("last_used_ip").map_err(get_err)?,
        created_by: row.try_get("created_by").map_err(get_err)?,
    };
    Ok((row.try_get("seq").map_err(get_err)?, rec))
}

/// Cuts rows fetched with `LIMIT limit + 1` into a page: the extra row only says there is more,
/// and the position of the last row kept is where the next page starts.
fn page<T>(mut rows: Vec<(i64, T)>, limit: u32) -> Page<T> {
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|(_, t)| t).collect(),
        next,
    }
}

fn scopes_json(s: &ScopeSet) -> String {
    serde_json::to_string(&s.names()).expect("a list of strings serialises")
}

async fn insert_token(conn: &mut sqlx::SqliteConnection, t: &TokenRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, tenant_id, hash, name, description, metadata, owner_id, scopes, \
         enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.id.as_str())
    .bind(&t.tenant_id)
    .bind(&t.hash.as_bytes()[..])
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.metadata.as_ref().map(|m| m.get()))
    .bind(&t.owner_id)
    .bind(scopes_json(&t.scopes))
    .bind(t.enabled)
    .bind(to_ms(t.created_at))
    .bind(to_ms(t.updated_at))
    .bind(t.expires_at.map(to_ms))
    .bind(t.last_used_at.map(to_ms))
    .bind(&t.last_used_ip)
    .bind(&t.created_by)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let now = to_ms(b.token.created_at);
        let created = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&b.tenant_id)
        .bind(&b.tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            == 1;
        if !created {
            return Ok(false);
        }
        let u = &b.admin;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, password_hash, role, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(&u.role)
        .bind(to_ms(u.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_token(&mut tx, &b.token).await?;
        insert_audit(
            &mut tx,
            &NewAudit {
                tenant_id: b.tenant_id.clone(),
                at: b.token.created_at,
                actor: "system".into(),
                action: "system.bootstrap".into(),
                target_id: Some(b.token.id.to_string()),
                ip: None,
                details: Some(serde_json::json!({ "adminUserId": u.id })),
            },
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?"
        ))
        .bind(&hash.as_bytes()[..])
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
    }

    async fn token_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
    }

    async fn list_tokens(&self, tenant_id: &str, f: &TokenFilter) -> Result<Page<TokenRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = "
        ));
        q.push_bind(tenant_id);
        if let Some(owner) = &f.owner_id {
            q.push(" AND owner_id = ").push_bind(owner);
        }
        if let Some(enabled) = f.enabled {
            q.push(" AND enabled = ").push_bind(enabled);
        }
        if let Some(needle) = &f.name_contains {
            q.push(" AND instr(lower(name), lower(")
                .push_bind(needle)
                .push(")) > 0");
        }
        if let Some(scope) = &f.scope {
            q.push(" AND EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = ")
                .push_bind(scope)
                .push(")");
        }
        if let Some(before) = f.before_seq {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(f.limit as i64 + 1);
        let rows = q.build().fetch_all(&self.reader).await.map_err(map_err)?;
        let rows = rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(page(rows, f.limit))
    }

    async fn apply(&self, writes: &[TokenWrite], audit: &[NewAudit]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        for w in writes {
            match w {
                TokenWrite::Insert(t) => insert_token(&mut tx, t).await?,
                TokenWrite::Update(t) => {
                    let n = sqlx::query(
                        "UPDATE tokens SET name = ?, description = ?, metadata = ?, owner_id = ?, \
                         scopes = ?, enabled = ?, updated_at = ?, expires_at = ? \
                         WHERE tenant_id = ? AND id = ?",
                    )
                    .bind(&t.name)
                    .bind(&t.description)
                    .bind(t.metadata.as_ref().map(|m| m.get()))
                    .bind(&t.owner_id)
                    .bind(scopes_json(&t.scopes))
                    .bind(t.enabled)
                    .bind(to_ms(t.updated_at))
                    .bind(t.expires_at.map(to_ms))
                    .bind(&t.tenant_id)
                    .bind(t.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
                TokenWrite::Delete { tenant_id, id } => {
                    let n = sqlx::query("DELETE FROM tokens WHERE tenant_id = ? AND id = ?")
                        .bind(tenant_id)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
            }
        }
        for a in audit {
            insert_audit(&mut tx, a).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn record_last_use(&self, batch: &[LastUse]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        for u in batch {
            // Never move last use backwards: batches from a slow node may arrive late.
            sqlx::query(
                "UPDATE tokens SET last_used_at = ?, last_used_ip = ? \
                 WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
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

    async fn owner_exists(&self, tenant_id: &str, owner_id: &str) -> Result<bool> {
        if owner_id == tenant_id {
            return Ok(true);
        }
        let found = sqlx::query("SELECT 1 FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id)
            .bind(owner_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn list_audit(&self, tenant_id: &str, f: &AuditFilter) -> Result<Page<AuditEntry>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT seq, tenant_id, at, actor, action, target_id, ip, details FROM audit \
             WHERE tenant_id = ",
        );
        q.push_bind(tenant_id);
        if let Some(a) = &f.action {
            q.push(" AND action = ").push_bind(a);
        }
        if let Some(a) = &f.actor {
            q.push(" AND actor = ").push_bind(a);
        }
        if let Some(t) = &f.target_id {
            q.push(" AND target_id = ").push_bind(t);
        }
        if let Some(before) = f.before_seq {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(f.limit as i64 + 1);
        let rows = q.build().fetch_all(&self.reader).await.map_err(map_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let details: Option<String> = r.try_get("details").map_err(get_err)?;
            items.push(AuditEntry {
                id: r.try_get("seq").map_err(get_err)?,
                tenant_id: r.try_get("tenant_id").map_err(get_err)?,
                at: from_ms(r.try_get("at").map_err(get_err)?)?,
                actor: r.try_get("actor").map_err(get_err)?,
                action: r.try_get("action").map_err(get_err)?,
                target_id: r.try_get("target_id").map_err(get_err)?,
                ip: r.try_get("ip").map_err(get_err)?,
                details: details
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
            });
        }
        let rows = items.into_iter().map(|a| (a.id, a)).collect();
        Ok(page(rows, f.limit))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

async fn insert_audit(conn: &mut sqlx::SqliteConnection, a: &NewAudit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (tenant_id, at, actor, action, target_id, ip, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.tenant_id)
    .bind(to_ms(a.at))
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target_id)
    .bind(&a.ip)
    .bind(a.details.as_ref().map(|d| d.to_string()))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
