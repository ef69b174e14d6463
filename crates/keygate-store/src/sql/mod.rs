//! The one implementation of [`Store`], for SQLite and PostgreSQL alike, through sqlx's `Any`
//! driver: every query is written once, with `$N` placeholders that both databases accept.
//! What differs per backend is small: how pools are opened and migrated (`open`), the change
//! rows a PostgreSQL write adds for other nodes (`tx`), and SQLite's shared commits
//! (`group_commit`).
//!
//! The statements live by table (`tokens`, `audit`, `users`; `credits` for the leases taken
//! from a token's pool) on the shared `codec`, `errors`, `listing` and `tx`; `batch` and
//! `bootstrap` compose writes from them; this file only hands each [`Store`] call to them,
//! and nothing below it imports it back except `open`, which builds a [`SqlStore`].
//!
//! Why `Any` and not a trait with two implementations or macros: the queries are identical on
//! both databases once times are integers and `enabled` is 0/1, so one copy of them is the
//! smallest thing to keep correct. The cost, a value conversion per column, is paid only on
//! cache misses and management calls, never on a warm verify.

mod audit;
mod batch;
mod bootstrap;
mod bulk;
mod codec;
mod credits;
mod errors;
mod expiry;
mod group_commit;
mod leaks;
mod listing;
mod open;
mod outbox;
mod policies;
mod replication;
mod tokens;
mod tx;
mod usage;
mod users;
mod webhook_dispatch;
mod webhooks;

use async_trait::async_trait;
use keygate_core::{TokenHash, TokenId};
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::expiry::BuildNotice;
use crate::model::*;
use crate::sql::batch::execute_batch;
use crate::sql::errors::map_err;
use crate::sql::group_commit::GroupCommitter;
use crate::store::{LeakStore, WebhookStore};
use crate::store::{Lease, Result, Store, StoreError};
use crate::usage::{Granularity, TopQuery, TopUsage, UsageDelta, UsagePoint};

pub use errors::LAST_ADMIN;
pub use leaks::SIGNATURE_RETENTION_MS;

#[derive(Clone)]
pub struct SqlStore {
    /// SQLite: one connection, so writes never contend; PostgreSQL: the shared pool.
    pub(crate) writer: AnyPool,
    /// SQLite: read-only connections beside the writer (WAL); PostgreSQL: the same pool.
    pub(crate) reader: AnyPool,
    pub(crate) backend: Backend,
    /// PostgreSQL: where the change-feed listener connects (holds credentials: never logged).
    pub(crate) feed_url: Option<String>,
    /// Bumped after this node commits a batch, and when the change feed brings another node's
    /// changes: long-polling readers of the replicas' change stream wait on it.
    pub(crate) replication_signal: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// SQLite: the task that commits concurrent `apply` batches together, one fsync for all.
    /// PostgreSQL flushes concurrent commits together by itself, so there `apply` runs its own
    /// transaction.
    pub(crate) group: Option<GroupCommitter>,
}

impl SqlStore {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn wake_replication_readers(&self) {
        self.replication_signal
            .send_modify(|n| *n = n.wrapping_add(1));
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

#[async_trait]
impl Store for SqlStore {
    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        bootstrap::bootstrap(&self.writer, self.backend, b).await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        tokens::token_by_hash(&self.reader, hash).await
    }

    async fn existing_hashes(&self, hashes: &[TokenHash]) -> Result<Vec<TokenHash>> {
        tokens::existing_hashes(&self.reader, hashes).await
    }

    async fn token_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<TokenRecord>> {
        tokens::token_where(&self.reader, tenant_id, "id", id).await
    }

    async fn token_by_chosen_id(
        &self,
        tenant_id: &str,
        chosen_id: &str,
    ) -> Result<Option<TokenRecord>> {
        tokens::token_where(&self.reader, tenant_id, "external_id", chosen_id).await
    }

    async fn list_tokens(&self, tenant_id: &str, f: &TokenFilter) -> Result<Page<TokenRecord>> {
        tokens::list_tokens(&self.reader, tenant_id, f).await
    }

    async fn tenant_policy(&self, tenant_id: &str) -> Result<keygate_core::TenantPolicy> {
        policies::tenant_policy(&self.reader, tenant_id).await
    }

    async fn count_policy_violations(&self, tenant_id: &str, now: OffsetDateTime) -> Result<u64> {
        policies::count_violations(&self.reader, tenant_id, now).await
    }

    async fn apply(&self, writes: &[Write], audit: &[NewAudit]) -> Result<()> {
        if let Some(group) = &self.group {
            group.apply(writes.to_vec(), audit.to_vec()).await?;
        } else {
            let mut tx = self.writer.begin().await.map_err(map_err)?;
            execute_batch(&mut tx, self.backend, writes, audit).await?;
            tx.commit().await.map_err(map_err)?;
        }
        self.wake_replication_readers();
        Ok(())
    }

    async fn record_last_use(&self, batch: &[LastUse]) -> Result<()> {
        tokens::record_last_use(&self.writer, batch).await
    }

    async fn tenant_exists(&self, tenant_id: &str) -> Result<bool> {
        users::tenant_exists(&self.reader, tenant_id).await
    }

    async fn user_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<UserRecord>> {
        users::user_where(&self.reader, tenant_id, "id", id).await
    }

    async fn user_by_name(&self, tenant_id: &str, username: &str) -> Result<Option<UserRecord>> {
        users::user_where(&self.reader, tenant_id, "username", username).await
    }

    async fn list_users(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UserPage> {
        users::list_users(&self.reader, tenant_id, after, limit).await
    }

    async fn session_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
        users::session_by_hash(&self.reader, hash, now).await
    }

    async fn owner_exists(&self, tenant_id: &str, owner_id: &str) -> Result<bool> {
        users::owner_exists(&self.reader, tenant_id, owner_id).await
    }

    async fn list_audit(&self, tenant_id: &str, f: &AuditFilter) -> Result<Page<AuditEntry>> {
        audit::list_audit(&self.reader, tenant_id, f).await
    }

    async fn lease_credits(
        &self,
        id: &TokenId,
        want: u64,
        at: OffsetDateTime,
    ) -> Result<Option<Lease>> {
        credits::lease_credits(&self.reader, &self.writer, self.backend, id, want, at).await
    }

    async fn return_credits(
        &self,
        id: &TokenId,
        amount: u64,
        version: i64,
        period_ms: i64,
    ) -> Result<()> {
        credits::return_credits(&self.writer, id, amount, version, period_ms).await
    }

    async fn record_usage(&self, batch: &[UsageDelta]) -> Result<()> {
        usage::record_usage(&self.writer, self.backend, batch).await
    }

    async fn usage_series(
        &self,
        tenant_id: &str,
        token_id: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsagePoint>> {
        usage::usage_series(
            &self.reader,
            tenant_id,
            token_id,
            granularity,
            from_ms,
            to_ms,
        )
        .await
    }

    async fn usage_top(&self, tenant_id: &str, q: &TopQuery) -> Result<TopUsage> {
        usage::usage_top(&self.reader, tenant_id, q).await
    }

    async fn prune_usage(&self, minute_before_ms: i64, day_before_ms: i64) -> Result<()> {
        usage::prune_usage(&self.writer, minute_before_ms, day_before_ms).await
    }

    async fn send_expiry_notices(
        &self,
        now: OffsetDateTime,
        thresholds: &[u64],
        limit: u32,
        build: &BuildNotice<'_>,
    ) -> Result<usize> {
        expiry::send_due(&self.writer, self.backend, now, thresholds, limit, build).await
    }

    async fn replication_head(&self) -> Result<ReplicationHead> {
        replication::number_committed(&self.writer, self.backend).await?;
        replication::head(&self.reader).await
    }

    async fn replication_snapshot(
        &self,
        tenant_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<SnapshotPage> {
        // Numbered before the first page, so that what has committed is behind the snapshot's
        // cursor and does not come again in the change stream; later pages' cursors are unused.
        if after.is_none() {
            replication::number_committed(&self.writer, self.backend).await?;
        }
        replication::snapshot(&self.reader, tenant_id, after, limit).await
    }

    async fn replication_changes(
        &self,
        tenant_id: &str,
        log_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<ChangeRead> {
        replication::number_committed(&self.writer, self.backend).await?;
        replication::changes(&self.reader, tenant_id, log_id, after, limit).await
    }

    async fn prune_replication(&self, before_ms: i64) -> Result<()> {
        // Rows nobody has read yet are numbered too, so that they age out.
        replication::number_committed(&self.writer, self.backend).await?;
        replication::prune(&self.writer, before_ms).await
    }

    fn replication_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.replication_signal.subscribe()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookEndpoint>> {
        webhooks::webhook(&self.reader, tenant_id, id).await
    }

    async fn list_webhooks(&self, tenant_id: &str, limit: u32) -> Result<Vec<WebhookEndpoint>> {
        webhooks::list_webhooks(&self.reader, tenant_id, limit).await
    }

    async fn webhook_deliveries(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<WebhookDelivery>> {
        webhooks::webhook_deliveries(&self.reader, tenant_id, endpoint_id, before, limit).await
    }

    async fn webhook_delivery(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        id: i64,
    ) -> Result<Option<WebhookDelivery>> {
        webhooks::webhook_delivery(&self.reader, tenant_id, endpoint_id, id).await
    }

    async fn claim_webhook(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ClaimedDelivery>> {
        webhook_dispatch::claim(
            &self.writer,
            &self.reader,
            self.backend,
            owner,
            now_ms,
            lease_until_ms,
        )
        .await
    }

    async fn renew_webhook_lease(
        &self,
        endpoint_id: &str,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<bool> {
        webhook_dispatch::renew(&self.writer, endpoint_id, owner, lease_until_ms).await
    }

    async fn record_webhook_attempt(
        &self,
        claim: &ClaimedDelivery,
        owner: &str,
        attempt: &Attempt,
    ) -> Result<()> {
        webhook_dispatch::record_attempt(&self.writer, claim, owner, attempt).await
    }

    async fn prune_webhook_deliveries(&self, before_ms: i64) -> Result<u64> {
        webhook_dispatch::prune(&self.writer, before_ms).await
    }
}

#[async_trait]
impl LeakStore for SqlStore {
    async fn leak_by_hash(&self, hash: &TokenHash) -> Result<Option<LeakRecord>> {
        leaks::leak_by_hash(&self.reader, hash).await
    }

    async fn count_leak_report(&self, hash: &TokenHash, at: OffsetDateTime) -> Result<bool> {
        leaks::count_report(&self.writer, hash, at).await
    }

    async fn leak_report_answer(&self, signature: &[u8]) -> Result<Option<String>> {
        // The writer: a replay that follows its original at once must see the original's row,
        // which a SQLite reader connection may not have yet.
        leaks::report_answer(&self.writer, signature).await
    }

    async fn keep_leak_report(
        &self,
        signature: &[u8],
        key_id: &str,
        answer: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        leaks::keep_report(&self.writer, signature, key_id, answer, at).await
    }
}
