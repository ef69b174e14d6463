//! Webhook endpoints: the operations behind `/api/v1/webhooks`, with their rules (an http(s)
//! URL that is not a link-local or metadata address unless allowed, known event names) and the
//! audit entry each change writes. Delivery itself is `crate::webhooks`'s.

use keygate_core::event::ALL_EVENTS;
use keygate_core::{base62, AuditAction, Description, EventType};
use keygate_store::{StoreError, Write};
use keygate_store::{WebhookDelivery, WebhookEndpoint};
use secrecy::SecretString;
use serde_json::json;

use crate::auth::{Authorized, Caller, WebhooksWrite};
use crate::dto::{CreateWebhookRequest, UpdateWebhookRequest};
use crate::error::{ApiError, ApiResult};
use crate::service::tokens::audit;
use crate::state::AppState;
use crate::webhooks::address::check_url;
use crate::webhooks::signing::new_secret;

/// Most endpoints one tenant may have: each adds a row to the outbox for every event.
pub const MAX_ENDPOINTS: u32 = 100;
/// Most names in one subscription (there are fewer events than this).
const MAX_EVENT_NAMES: usize = 50;

fn new_endpoint_id() -> String {
    let mut id = String::from("whk_");
    base62::random(16, &mut id);
    id
}

fn endpoint_not_found() -> ApiError {
    ApiError::NotFound("No webhook endpoint with this id".into())
}

fn not_found_as_such(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => endpoint_not_found(),
        e => e.into(),
    }
}

/// The subscription as stored: known names without repeats, or `["*"]` alone.
fn checked_events(events: Vec<String>) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Err(ApiError::Unprocessable(
            "events must name at least one event (or \"*\" for all)".into(),
        ));
    }
    if events.len() > MAX_EVENT_NAMES {
        return Err(ApiError::Unprocessable(format!(
            "events may name at most {MAX_EVENT_NAMES} events"
        )));
    }
    let mut kept: Vec<String> = Vec::with_capacity(events.len());
    for name in events {
        if name != ALL_EVENTS && EventType::parse(&name).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
            let shown: String = name.chars().take(60).collect();
            return Err(ApiError::Unprocessable(format!(
                "events: unknown event {shown:?}; known events are {} and \"*\"",
                known.join(", ")
            )));
        }
        if !kept.contains(&name) {
            kept.push(name);
        }
    }
    if kept.iter().any(|n| n == ALL_EVENTS) {
        kept = vec![ALL_EVENTS.to_owned()];
    }
    Ok(kept)
}

fn checked_url(state: &AppState, url: &str) -> ApiResult<String> {
    check_url(url, state.config.webhooks.allow_link_local)
        .map(|_| url.to_owned())
        .map_err(ApiError::Unprocessable)
}

/// `None` for an empty description.
fn checked_description(text: String) -> ApiResult<Option<String>> {
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(Description::try_from(text)?.into_string()))
}

/// An endpoint of the caller's tenant; the same answer for another tenant's as for none.
pub async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<WebhookEndpoint> {
    state
        .store
        .webhook(caller.tenant_id(), id)
        .await?
        .ok_or_else(endpoint_not_found)
}

/// Creates an endpoint; returns it with its secret (to be shown once).
pub async fn create(
    state: &AppState,
    caller: &Authorized<WebhooksWrite>,
    req: CreateWebhookRequest,
) -> ApiResult<(WebhookEndpoint, SecretString)> {
    let url = checked_url(state, &req.url)?;
    let events = checked_events(req.events)?;
    let description = req
        .description
        .map(checked_description)
        .transpose()?
        .flatten();
    let existing = state
        .store
        .list_webhooks(caller.tenant_id(), MAX_ENDPOINTS)
        .await?;
    if existing.len() as u32 >= MAX_ENDPOINTS {
        return Err(ApiError::Conflict(format!(
            "a tenant has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let secret = new_secret();
    let now = keygate_store::now();
    let endpoint = WebhookEndpoint {
        id: new_endpoint_id(),
        tenant_id: caller.tenant_id().to_owned(),
        url,
        description,
        events,
        secret: secret.clone(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let entry = audit(
        caller,
        AuditAction::WebhookCreate,
        &endpoint.id,
        json!({ "url": endpoint.url, "events": endpoint.events }),
    );
    state
        .store
        .apply(&[Write::InsertWebhook(endpoint.clone())], &[entry])
        .await?;
    Ok((endpoint, secret))
}

/// Changes the URL, events, description or enabled flag; re-enabling gives the pending
/// deliveries a new retry window and sends them now.
pub async fn update(
    state: &AppState,
    caller: &Authorized<WebhooksWrite>,
    id: &str,
    req: UpdateWebhookRequest,
) -> ApiResult<WebhookEndpoint> {
    if req.url.is_none()
        && req.events.is_none()
        && req.description.is_none()
        && req.enabled.is_none()
    {
        return Err(ApiError::Unprocessable(
            "give at least one of url, events, description, enabled".into(),
        ));
    }
    let mut endpoint = visible(state, caller, id).await?;
    let mut details = json!({});
    if let Some(url) = &req.url {
        endpoint.url = checked_url(state, url)?;
        details["url"] = json!(endpoint.url);
    }
    if let Some(events) = req.events {
        endpoint.events = checked_events(events)?;
        details["events"] = json!(endpoint.events);
    }
    if let Some(d) = req.description {
        endpoint.description = checked_description(d)?;
        details["description"] = json!(endpoint.description);
    }
    let now = keygate_store::now();
    let mut resume_until_ms = None;
    if let Some(enabled) = req.enabled {
        if enabled && !endpoint.enabled {
            let window = state.config.webhooks.retry_for.as_millis() as i64;
            resume_until_ms = Some(keygate_store::model::unix_ms(now) + window);
            endpoint.disabled_reason = None;
            endpoint.failing_since = None;
        }
        endpoint.enabled = enabled;
        details["enabled"] = json!(enabled);
    }
    endpoint.updated_at = now;
    let entry = audit(caller, AuditAction::WebhookUpdate, &endpoint.id, details);
    state
        .store
        .apply(
            &[Write::UpdateWebhook {
                endpoint: endpoint.clone(),
                resume_until_ms,
            }],
            &[entry],
        )
        .await
        .map_err(not_found_as_such)?;
    Ok(endpoint)
}

/// Deletes an endpoint and its delivery log; what was pending is not sent.
pub async fn delete(
    state: &AppState,
    caller: &Authorized<WebhooksWrite>,
    id: &str,
) -> ApiResult<()> {
    let endpoint = visible(state, caller, id).await?;
    let entry = audit(
        caller,
        AuditAction::WebhookDelete,
        &endpoint.id,
        json!({ "url": endpoint.url }),
    );
    state
        .store
        .apply(
            &[Write::DeleteWebhook {
                tenant_id: endpoint.tenant_id.clone(),
                id: endpoint.id.clone(),
            }],
            &[entry],
        )
        .await
        .map_err(not_found_as_such)
}

fn delivery_not_found() -> ApiError {
    ApiError::NotFound("No delivery with this id for this webhook endpoint".into())
}

/// Queues a delivery again (same message id and body), due now; it goes before the endpoint's
/// other pending deliveries, as the oldest.
pub async fn redeliver(
    state: &AppState,
    caller: &Authorized<WebhooksWrite>,
    endpoint_id: &str,
    delivery_id: i64,
) -> ApiResult<WebhookDelivery> {
    let endpoint = visible(state, caller, endpoint_id).await?;
    let delivery = state
        .store
        .webhook_delivery(caller.tenant_id(), &endpoint.id, delivery_id)
        .await?
        .ok_or_else(delivery_not_found)?;
    let entry = audit(
        caller,
        AuditAction::WebhookRedeliver,
        &endpoint.id,
        json!({ "deliveryId": delivery.id, "eventId": delivery.event_id }),
    );
    state
        .store
        .apply(
            &[Write::RedeliverWebhook {
                tenant_id: endpoint.tenant_id.clone(),
                endpoint_id: endpoint.id.clone(),
                delivery_id,
                at: keygate_store::now(),
            }],
            &[entry],
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound => delivery_not_found(),
            e => e.into(),
        })?;
    state
        .store
        .webhook_delivery(caller.tenant_id(), &endpoint.id, delivery_id)
        .await?
        .ok_or_else(delivery_not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_known_names_once_or_all() {
        assert_eq!(
            checked_events(vec!["token.created".into(), "token.created".into()]).unwrap(),
            ["token.created"]
        );
        assert_eq!(
            checked_events(vec!["token.created".into(), "*".into()]).unwrap(),
            ["*"]
        );
        assert!(checked_events(vec![]).is_err());
        let e = checked_events(vec!["token.create".into()]).unwrap_err();
        assert!(e.to_string().contains("events: unknown event"), "{e}");
    }
}
