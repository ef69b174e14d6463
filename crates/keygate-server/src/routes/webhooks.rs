//! `/api/v1/webhooks…`: a tenant's webhook endpoints and their delivery logs.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{Authorized, WebhooksRead, WebhooksWrite};
use crate::dto::*;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::tokens::{page_limit, parse_cursor};
use crate::service::webhooks;
use crate::state::AppState;

/// Add a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = CreatedWebhook),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The tenant has the most endpoints it may have", body = ErrorBody),
        (status = 422, description = "A URL that is not http(s) or names a refused address, an unknown event, no events, a description too long", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Authorized<WebhooksWrite>,
    Json(req): Json<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedWebhook>)> {
    let (endpoint, secret) = webhooks::create(&state, &caller, req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            endpoint: endpoint.into(),
            secret,
        }),
    ))
}

/// The tenant's webhook endpoints, oldest first (without their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Authorized<WebhooksRead>,
) -> ApiResult<axum::Json<WebhookList>> {
    let items = state
        .store
        .list_webhooks(caller.tenant_id(), webhooks::MAX_ENDPOINTS)
        .await?;
    Ok(axum::Json(WebhookList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Authorized<WebhooksRead>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(
        webhooks::visible(&state, &caller, &id).await?.into(),
    ))
}

/// Change an endpoint's URL, events or description, or disable or re-enable it. Re-enabling
/// sends its pending deliveries again, with a new retry window.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Authorized<WebhooksWrite>,
    Path(id): Path<String>,
    Json(req): Json<UpdateWebhookRequest>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(
        webhooks::update(&state, &caller, &id, req).await?.into(),
    ))
}

/// Delete an endpoint with its delivery log; what was pending is not sent.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Authorized<WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    webhooks::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first: state, attempts, the last status, latency and
/// error, and when the next attempt is due.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ListDeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Authorized<WebhooksRead>,
    Path(id): Path<String>,
    Query(q): Query<ListDeliveriesQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    let limit = page_limit(q.limit)?;
    let before = parse_cursor(q.cursor.as_deref())?;
    let endpoint = webhooks::visible(&state, &caller, &id).await?;
    let page = state
        .store
        .webhook_deliveries(caller.tenant_id(), &endpoint.id, before, limit)
        .await?;
    Ok(axum::Json(DeliveryList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

/// Send a delivery again, with the same message id and body, before the endpoint's other
/// pending deliveries.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path), ("deliveryId" = String, Path)),
    responses((status = 202, description = "Queued", body = DeliveryView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Authorized<WebhooksWrite>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<DeliveryView>)> {
    let delivery_id = delivery_id.parse::<i64>().map_err(|_| {
        ApiError::NotFound("No delivery with this id for this webhook endpoint".into())
    })?;
    let d = webhooks::redeliver(&state, &caller, &id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(d.into())))
}
