//! Webhook endpoints and their outbox as the store keeps them, and what the server's dispatcher
//! asks of the store: claim an endpoint whose next delivery is due (a lease, so that one node
//! at a time delivers an endpoint's queue, oldest first), record the attempt, let go.
//!
//! The endpoints' own changes (create, update, delete, redeliver) are [`Write`](crate::Write)s,
//! applied with their audit entries in one transaction like every other change.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::model::{NewAudit, Page};
use crate::store::Result;

/// A tenant's webhook endpoint. `secret` is the signing key (`whsec_…`): the API shows it only
/// in the answer to the create.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    pub secret: SecretString,
    pub enabled: bool,
    /// Why keygate disabled it (failures for the whole retry window); `None` once re-enabled.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last success.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Retried for the whole window without a 2xx.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// One event for one endpoint, as its delivery log shows it (without the body).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: String,
    /// The message id (`webhook-id`): the same on every attempt and redelivery.
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// An endpoint the dispatcher holds the lease of, with the oldest delivery of its queue.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub endpoint_id: String,
    pub tenant_id: String,
    pub url: String,
    pub secret: SecretString,
    /// When the endpoint began failing, if it is.
    pub failing_since_ms: Option<i64>,
    pub delivery_id: i64,
    pub event_id: String,
    pub payload: String,
    /// Attempts before this one: 0 starts the delivery's retry window.
    pub attempts: i64,
    /// When retries end (Unix ms); only meaningful once `attempts > 0`.
    pub retry_until_ms: i64,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at_ms: i64,
    /// The receiver's status, if it answered.
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// `None` for a 2xx; else what went wrong, never holding a secret.
    pub error: Option<String>,
    /// After a failure: when to try again, or `None` when the retry window is over (the
    /// delivery has failed).
    pub retry_at_ms: Option<i64>,
    /// The retry window of a delivery's first attempt (`retry_until` from then on).
    pub retry_until_ms: i64,
    /// Set when the endpoint has failed for the whole window: it is disabled, with this audit
    /// entry, in the attempt's transaction.
    pub disable: Option<NewAudit>,
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
