//! The one implementation of [`Store`], for SQLite and PostgreSQL alike, through sqlx's `Any`
//! driver: every query is written once, with `$N` placeholders that both databases accept.
//! What differs per backend is small and lives in `backend.rs`: how pools are opened, the
//! migrations, and PostgreSQL's change feed.
//!
//! Why `Any` and not a trait with two implementations or macros: the queries are identical on
//! both databases once times are integers and `enabled` is 0/1, so one copy of them is the
//! smallest thing to keep correct. The cost, a value conversion per column, is paid only on
//! cache misses and management calls, never on a warm verify.

use async_trait::async_trait;
use keygate_core::{ScopeSet, TokenHash, TokenId};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::AnyPool;
use sqlx::{Any, Arguments, Encode, Row, Type};
use time::OffsetDateTime;

use crate::accounts;
use crate::backend::Backend;
use crate::group_commit::GroupCommitter;
use crate::model::*;
use crate::store::{Result, Store, StoreError};

#[derive(Clone)]
pub struct SqlStore {
    /// SQLite: one connection, so writes never contend; PostgreSQL: the shared pool.
    pub(crate) writer: AnyPool,
    /// SQLite: read-only connections beside the writer (WAL); PostgreSQL: the same pool.
    pub(crate) reader: AnyPool,
    pub(crate) backend: Backend,
    /// PostgreSQL: where the change-feed listener connects (holds credentials: never logged).
    pub(crate) feed_url: Option<String>,
    /// SQLite: the task that commits concurrent `apply` batches together, one fsync for all.
    /// PostgreSQL flushes concurrent commits together by itself, so there `apply` runs its own
    /// transaction.
    pub(crate) group: Option<GroupCommitter>,
}

impl SqlStore {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Commits what is already queued for writing, then closes the connections; later writes
    /// fail with `Unavailable`.
    pub async fn close(&self) {
        if let Some(group) = &self.group {
            group.close().await;
        }
        self.reader.close().await;
        self.writer.close().await;
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.message().contains(accounts::KEEP_AN_ADMIN) => {
            StoreError::LimitReached(accounts::LAST_ADMIN.to_owned())
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

/// A statement built piece by piece, numbering its placeholders as it goes.
struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
}

impl Sql {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    fn bind<T: Encode<'static, Any> + Type<Any> + 'static>(&mut self, v: T) -> &mut Self {
        self.n += 1;
        self.text.push_str(&format!("${}", self.n));
        self.args
            .add(v)
            .expect("values of supported types always encode");
        self
    }

    /// The statement with its arguments (taken: a statement runs once).
    fn query(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.text, std::mem::take(&mut self.args))
    }
}

/// `%text%` for LIKE, with LIKE's own wildcards escaped (the statement says `ESCAPE '\'`).
fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const TOKEN_COLUMNS: &str = "seq, id, tenant_id, hash, name, description, metadata, owner_id, \
     scopes, enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by, \
     external_id, rotated_to";

pub(crate) fn get<'r, T: sqlx::Decode<'r, Any> + Type<Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn opt_time(row: &AnyRow, col: &str) -> Result<Option<OffsetDateTime>> {
    get::<Option<i64>>(row, col)?.map(from_ms).transpose()
}

fn token_from_row(row: &AnyRow) -> Result<(i64, TokenRecord)> {
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
        external_id: get(row, "external_id")?,
        rotated_to: get::<Option<String>>(row, "rotated_to")?.map(TokenId::from_stored),
    };
    Ok((get(row, "seq")?, rec))
}

fn scopes_json(s: &ScopeSet) -> String {
    serde_json::to_string(&s.names()).expect("a list of strings serialises")
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

pub(crate) type Tx = sqlx::Transaction<'static, Any>;

async fn insert_token(tx: &mut Tx, t: &TokenRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, tenant_id, hash, name, description, metadata, owner_id, scopes, \
         enabled, created_at, updated_at, expires_at, last_used_at, last_used_ip, created_by, \
         external_id, rotated_to) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    .bind(&t.external_id)
    .bind(t.rotated_to.as_ref().map(TokenId::as_str))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_audit(tx: &mut Tx, a: &NewAudit) -> Result<()> {
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

/// The count the triggers of migration 0004 keep (on PostgreSQL in shards, migration 0005),
/// read inside the batch's transaction, after its insert.
async fn enforce_owner_limit(tx: &mut Tx, tenant_id: &str, owner_id: &str, max: u32) -> Result<()> {
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

/// One batch of [`Store::apply`] inside an open transaction: its writes, its audit entries and,
/// on PostgreSQL, the change rows other nodes follow. The caller decides what encloses it: its
/// own transaction, or a savepoint in the SQLite group committer's shared one.
pub(crate) async fn execute_batch(
    tx: &mut Tx,
    backend: Backend,
    writes: &[Write],
    audit: &[NewAudit],
) -> Result<()> {
    let mut changed = Vec::with_capacity(writes.len());
    for w in writes {
        match w {
            Write::InsertToken(t) => {
                insert_token(tx, t).await?;
                changed.push(t.hash);
            }
            Write::UpdateToken(t) => {
                // An expiry that has passed, or that a rotation set, is binding: the service
                // refuses such a change, and this guard keeps a change that raced with the
                // rotation or the expiry from undoing them. `rotated_to` is only ever set.
                let q = sqlx::query(
                    "UPDATE tokens SET name = $1, description = $2, metadata = $3, \
                     owner_id = $4, scopes = $5, enabled = $6, updated_at = $7, \
                     expires_at = $8, rotated_to = COALESCE(rotated_to, $11) \
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
                .bind(t.rotated_to.as_ref().map(TokenId::as_str));
                if q.execute(&mut **tx).await.map_err(map_err)?.rows_affected() == 0 {
                    return Err(missing_or_expiry_fixed(tx, &t.tenant_id, &t.id).await);
                }
                changed.push(t.hash);
            }
            Write::DeleteToken { tenant_id, id } => {
                let hash: Option<Vec<u8>> = sqlx::query_scalar(
                    "DELETE FROM tokens WHERE tenant_id = $1 AND id = $2 RETURNING hash",
                )
                .bind(tenant_id)
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                let hash = hash.ok_or(StoreError::NotFound)?;
                changed.extend(TokenHash::from_slice(&hash));
            }
            Write::InsertTenant { id, created_at } => {
                accounts::insert_tenant(tx, id, *created_at).await?
            }
            Write::InsertUser(u) => accounts::insert_user(tx, u).await?,
            Write::UpdateUser(u) => accounts::update_user(tx, u).await?,
            Write::DeleteUser { tenant_id, id } => accounts::delete_user(tx, tenant_id, id).await?,
            Write::InsertSession(session) => accounts::insert_session(tx, session).await?,
            Write::DeleteSession(hash) => accounts::delete_session(tx, hash).await?,
            Write::DeleteUserSessions { tenant_id, user_id } => {
                accounts::delete_user_sessions(tx, tenant_id, user_id).await?
            }
            Write::EnforceOwnerLimit {
                tenant_id,
                owner_id,
                max,
            } => enforce_owner_limit(tx, tenant_id, owner_id, *max).await?,
        }
    }
    for a in audit {
        insert_audit(tx, a).await?;
    }
    backend.record_changes(tx, &changed).await?;
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
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
        accounts::insert_user(&mut tx, u).await?;
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
        self.backend
            .record_changes(&mut tx, &[b.token.hash])
            .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        ))
        .bind(&hash.as_bytes()[..])
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
    }

    async fn token_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
    }

    async fn token_by_external_id(
        &self,
        tenant_id: &str,
        external_id: &str,
    ) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND external_id = $2"
        ))
        .bind(tenant_id)
        .bind(external_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| token_from_row(&r).map(|(_, t)| t)).transpose()
    }

    async fn list_tokens(&self, tenant_id: &str, f: &TokenFilter) -> Result<Page<TokenRecord>> {
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
        if let Some(scope) = &f.scope {
            // Scopes are stored as a JSON array of names, and a name never contains a quote:
            // `"name"` matches exactly one element.
            q.push(" AND scopes LIKE ")
                .bind(like_contains(&format!("\"{scope}\"")))
                .push(" ESCAPE '\\'");
        }
        if let Some(before) = f.before_seq {
            q.push(" AND seq < ").bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ").bind(f.limit as i64 + 1);
        let rows = q.query().fetch_all(&self.reader).await.map_err(map_err)?;
        let rows = rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(page(rows, f.limit))
    }

    async fn apply(&self, writes: &[Write], audit: &[NewAudit]) -> Result<()> {
        if let Some(group) = &self.group {
            return group.apply(writes.to_vec(), audit.to_vec()).await;
        }
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        execute_batch(&mut tx, self.backend, writes, audit).await?;
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

    async fn tenant_exists(&self, tenant_id: &str) -> Result<bool> {
        accounts::tenant_exists(&self.reader, tenant_id).await
    }

    async fn user_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<UserRecord>> {
        accounts::user_where(&self.reader, tenant_id, "id", id).await
    }

    async fn user_by_name(&self, tenant_id: &str, username: &str) -> Result<Option<UserRecord>> {
        accounts::user_where(&self.reader, tenant_id, "username", username).await
    }

    async fn list_users(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UserPage> {
        accounts::list_users(&self.reader, tenant_id, after, limit).await
    }

    async fn session_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
        accounts::session_by_hash(&self.reader, hash, now).await
    }

    async fn owner_exists(&self, tenant_id: &str, owner_id: &str) -> Result<bool> {
        if owner_id == tenant_id {
            return Ok(true);
        }
        let found = sqlx::query("SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(owner_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn list_audit(&self, tenant_id: &str, f: &AuditFilter) -> Result<Page<AuditEntry>> {
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
        let rows = q.query().fetch_all(&self.reader).await.map_err(map_err)?;
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

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(())
    }
}
