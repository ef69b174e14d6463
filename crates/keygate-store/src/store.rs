//! The storage contract. One async trait, one thin implementation per backend, so the server
//! and the verifier never know which database they run on.

use async_trait::async_trait;
use keygate_core::{TokenHash, TokenId};
use time::OffsetDateTime;

use crate::expiry::BuildNotice;
use crate::model::*;
use crate::usage::{Granularity, TopQuery, TopUsage, UsageDelta, UsagePoint};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (an id or token that already exists). The message is the
    /// database's own, naming its tables and indexes: for logs, never for a client.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A bound was reached (tokens per owner, a tenant's last admin); the message says which,
    /// for the client.
    #[error("{0}")]
    LimitReached(String),
    /// A rule kept by the database refused the change (a fixed expiry); the message says which.
    #[error("{0}")]
    Refused(String),
    /// The database cannot be reached or refused the operation for a transient reason.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Credits a node took from a token's pool, to spend without asking the database each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub granted: u64,
    /// The pool once this lease was taken out of it.
    pub pool_after: u64,
    /// The token's `credits_version` and refill period when leased: the lease is void once
    /// either moves on, and a return is then refused.
    pub version: i64,
    pub period_ms: i64,
}

#[async_trait]
/// Webhook endpoints and their outbox are part of it ([`WebhookStore`], below), and so are
/// reported leaks ([`LeakStore`]).
pub trait Store: WebhookStore + LeakStore + Send + Sync + 'static {
    /// Creates the first tenant, admin and bootstrap token unless the tenant exists.
    /// Returns whether this call created them (exactly one caller ever does).
    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool>;

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>>;
    /// Which of these hashes a token of any tenant has already: an import checks a whole
    /// batch at once. The default asks one by one; the SQL store asks in chunks.
    async fn existing_hashes(&self, hashes: &[TokenHash]) -> Result<Vec<TokenHash>> {
        let mut found = Vec::new();
        for h in hashes {
            if self.token_by_hash(h).await?.is_some() {
                found.push(*h);
            }
        }
        Ok(found)
    }
    async fn token_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<TokenRecord>>;
    /// The token a compatible surface's client named (Instana's `internalId`).
    async fn token_by_chosen_id(
        &self,
        tenant_id: &str,
        chosen_id: &str,
    ) -> Result<Option<TokenRecord>>;
    /// Newest first.
    async fn list_tokens(&self, tenant_id: &str, filter: &TokenFilter)
        -> Result<Page<TokenRecord>>;

    /// The tenant's policy; the defaults for a tenant that has never set one.
    async fn tenant_policy(&self, tenant_id: &str) -> Result<keygate_core::TenantPolicy>;

    /// How many of the tenant's tokens that have not expired by `now` break its policy (the
    /// listing's `violating_policy_at`).
    async fn count_policy_violations(&self, tenant_id: &str, now: OffsetDateTime) -> Result<u64>;

    /// Applies the writes and the audit entries in one durable transaction: when this returns
    /// `Ok`, all of it is on disk; on `Err`, none of it is.
    async fn apply(&self, writes: &[Write], audit: &[NewAudit]) -> Result<()>;

    /// Writes a batch of last-use times; tokens that no longer exist are skipped.
    async fn record_last_use(&self, batch: &[LastUse]) -> Result<()>;

    async fn tenant_exists(&self, tenant_id: &str) -> Result<bool>;
    async fn user_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<UserRecord>>;
    async fn user_by_name(&self, tenant_id: &str, username: &str) -> Result<Option<UserRecord>>;
    /// By username; `after` is the last username of the previous page.
    async fn list_users(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UserPage>;
    /// The session with this hash and its user, unless it has expired by `now`.
    async fn session_by_hash(
        &self,
        hash: &TokenHash,
        now: time::OffsetDateTime,
    ) -> Result<Option<(SessionRecord, UserRecord)>>;

    /// Is `owner_id` the tenant itself or one of its users?
    async fn owner_exists(&self, tenant_id: &str, owner_id: &str) -> Result<bool>;

    /// Newest first.
    async fn list_audit(&self, tenant_id: &str, filter: &AuditFilter) -> Result<Page<AuditEntry>>;

    /// Takes up to `want` credits from the token's pool, applying a refill that is due at `at`
    /// first, in one transaction that holds the token's row. `None` if the token is gone or its
    /// credits are unlimited. Not a token change: no cache forgets anything.
    async fn lease_credits(
        &self,
        id: &TokenId,
        want: u64,
        at: OffsetDateTime,
    ) -> Result<Option<Lease>>;

    /// Puts unspent credits of a lease back into the pool, unless the lease is void by now (the
    /// token's credits version or refill period moved on): then nothing is returned.
    async fn return_credits(
        &self,
        id: &TokenId,
        amount: u64,
        version: i64,
        period_ms: i64,
    ) -> Result<()>;

    /// Adds a batch of per-minute verification counts to the minute, hour and day rows, in one
    /// transaction: on `Err` none of it was written.
    async fn record_usage(&self, batch: &[UsageDelta]) -> Result<()>;

    /// The token's non-empty buckets in `[from_ms, to_ms)`, oldest first.
    async fn usage_series(
        &self,
        tenant_id: &str,
        token_id: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsagePoint>>;

    /// The tenant's totals and top groups in a range.
    async fn usage_top(&self, tenant_id: &str, q: &TopQuery) -> Result<TopUsage>;

    /// Deletes minute and hour rows that start before `minute_before_ms` and day rows before
    /// `day_before_ms`.
    async fn prune_usage(&self, minute_before_ms: i64, day_before_ms: i64) -> Result<()>;

    /// Sends the expiry notices due at `now` (`crate::expiry`) for up to `limit` tokens, in one
    /// transaction: each notice's event (from `build`) goes to the outbox and the token's next
    /// look is scheduled. On PostgreSQL the rows are locked and rows another node holds are
    /// skipped, so any number of nodes may scan at once and each notice is sent once. Returns
    /// how many tokens it looked at: `limit` means more may be due.
    async fn send_expiry_notices(
        &self,
        now: OffsetDateTime,
        thresholds: &[u64],
        limit: u32,
        build: &BuildNotice<'_>,
    ) -> Result<usize>;

    /// Where the replicas' change stream stands.
    async fn replication_head(&self) -> Result<ReplicationHead>;

    /// Up to `limit` of the tenant's tokens after position `after` (`None`: from the first).
    async fn replication_snapshot(
        &self,
        tenant_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<SnapshotPage>;

    /// The tenant's changes after `after` in the change stream of the database `log_id`: at most
    /// `limit` change rows' worth.
    async fn replication_changes(
        &self,
        tenant_id: &str,
        log_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<ChangeRead>;

    /// Deletes changes written before `before_ms` (Unix milliseconds); cursors before the last
    /// deleted change are refused from then on.
    async fn prune_replication(&self, before_ms: i64) -> Result<()>;

    /// Wakes when this node has committed a token change or learnt of another node's: what a
    /// long-polling reader of the change stream waits on before it reads again.
    fn replication_signal(&self) -> tokio::sync::watch::Receiver<u64>;

    /// For readiness: can the database answer right now?
    async fn ping(&self) -> Result<()>;
}

/// The store's side of webhook delivery. Every method that changes an endpoint's lease
/// names the lease owner, and does nothing for another owner's lease.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookEndpoint>>;
    /// Oldest first, at most `limit`.
    async fn list_webhooks(&self, tenant_id: &str, limit: u32) -> Result<Vec<WebhookEndpoint>>;
    /// The endpoint's deliveries, newest first, before the delivery id `before`.
    async fn webhook_deliveries(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<WebhookDelivery>>;
    async fn webhook_delivery(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        id: i64,
    ) -> Result<Option<WebhookDelivery>>;

    /// Leases, until `lease_until_ms`, one enabled endpoint whose oldest pending delivery is
    /// due at `now_ms` and whose lease is free or expired; returns that delivery.
    async fn claim_webhook(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ClaimedDelivery>>;
    /// Extends a lease still held; `false` if it was lost.
    async fn renew_webhook_lease(
        &self,
        endpoint_id: &str,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<bool>;
    /// Records an attempt of a claimed delivery and lets the endpoint's lease go, in one
    /// transaction.
    async fn record_webhook_attempt(
        &self,
        claim: &ClaimedDelivery,
        owner: &str,
        attempt: &Attempt,
    ) -> Result<()>;
    /// Deletes delivered and failed deliveries created before `before_ms`.
    async fn prune_webhook_deliveries(&self, before_ms: i64) -> Result<u64>;
}

/// The store's side of leak reports (secret scanners): the record of each leaked token, and the
/// signatures of accepted signed reports. The first report's record is written by
/// [`Store::apply`] (`Write::RecordLeak`), in the batch that acts on the token.
#[async_trait]
pub trait LeakStore: Send + Sync + 'static {
    /// The leak recorded for the token with this hash, even once the token is revoked.
    async fn leak_by_hash(&self, hash: &TokenHash) -> Result<Option<LeakRecord>>;
    /// Counts another report of a recorded leak at `at`; `false` if none is recorded.
    async fn count_leak_report(&self, hash: &TokenHash, at: OffsetDateTime) -> Result<bool>;
    /// The answer given to the accepted report with this (normalised) signature.
    async fn leak_report_answer(&self, signature: &[u8]) -> Result<Option<String>>;
    /// Keeps an accepted report's signature and answer; `false` if the signature was kept
    /// already. Forgets signatures older than `sql::SIGNATURE_RETENTION_MS`.
    async fn keep_leak_report(
        &self,
        signature: &[u8],
        key_id: &str,
        answer: &str,
        at: OffsetDateTime,
    ) -> Result<bool>;
}
