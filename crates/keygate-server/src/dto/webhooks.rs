//! The JSON shapes of `/api/v1/webhooks`.

use keygate_store::{WebhookDelivery, WebhookEndpoint};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// A webhook endpoint. Its signing secret is never part of it: only the create shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[schema(example = "whk_1A2b3C4d5E6f7G8h")]
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event names, or `["*"]` for every event.
    #[schema(example = json!(["token.created", "token.revoked"]))]
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why keygate disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// When its current run of failures began; absent while it succeeds.
    #[serde(with = "crate::rfc3339_ms::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms")]
    pub updated_at: OffsetDateTime,
}

impl From<WebhookEndpoint> for WebhookView {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// The answer to a create: the only one that holds the signing secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookView,
    /// The Standard Webhooks signing secret (`whsec_…`). Shown once.
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String, example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An http or https URL of at most 2000 characters; link-local and cloud metadata
    /// addresses are refused unless the deployment allows them.
    #[schema(max_length = 2000, example = "https://hooks.example.com/keygate")]
    pub url: String,
    /// Event names (`token.created`, …) or `"*"` for all; at least one.
    #[schema(min_items = 1, max_items = 50)]
    pub events: Vec<String>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

/// Fields left out keep their value; `enabled: true` re-enables an endpoint keygate disabled,
/// and its pending deliveries are sent again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 50)]
    pub events: Option<Vec<String>>,
    /// An empty string removes it.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

/// One event for one endpoint, as its delivery log shows it (the body is not part of it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: i64,
    /// The message id, sent as `webhook-id`: the same on every attempt and redelivery.
    #[schema(example = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")]
    pub event_id: String,
    #[schema(example = "token.created")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (retried for the whole window without a 2xx).
    #[schema(example = "delivered")]
    pub state: String,
    /// Attempts since the delivery was queued (or redelivered).
    pub attempts: i64,
    /// The receiver's status code at the last attempt, if it answered.
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    #[serde(with = "crate::rfc3339_ms::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When a pending delivery is tried next.
    #[serde(with = "crate::rfc3339_ms::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_latency_ms: d.last_latency_ms,
            last_error: d.last_error,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListDeliveriesQuery {
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}
