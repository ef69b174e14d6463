//! `/api/v1/tenants`: new tenants, each with its first admin, and a tenant's token policy.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{Authorized, TenantPolicyWrite, TenantsAdmin, TokensAdmin};
use crate::dto::{CreateTenantRequest, CreatedTenant, TenantPolicyRequest, TenantPolicyView};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::service::tenants;
use crate::state::AppState;

/// Create a tenant with its first admin user and an admin token for that user. The password
/// (when generated) and the token are shown this once.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, body = CreatedTenant),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Needs `tenants:admin`", body = ErrorBody),
        (status = 409, description = "A tenant with this name exists", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Authorized<TenantsAdmin>,
    Json(req): Json<CreateTenantRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedTenant>)> {
    let created = tenants::create_tenant(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The tenant's token policy, and how many of its tokens break it. Only the tenant's own admins
/// (`tokens:admin`) see it; another tenant's is not found.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/policy", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id (its name)")),
    responses(
        (status = 200, body = TenantPolicyView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs `tokens:admin`", body = ErrorBody),
        (status = 404, description = "Not the caller's tenant", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Authorized<TokensAdmin>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TenantPolicyView>> {
    Ok(axum::Json(tenants::policy(&state, &caller, &id).await?))
}

/// Replace the tenant's token policy (fields left out take their defaults). Creates, changes
/// of expiry, rotations and imports beyond it are refused from then on (422 naming the rule);
/// tokens that already break it are left as they are, counted in `violatingTokens` and listed
/// by `GET /api/v1/tokens?violatesPolicy=true`.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/policy", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id (its name)")),
    request_body = TenantPolicyRequest,
    responses(
        (status = 200, body = TenantPolicyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Needs `tokens:admin`", body = ErrorBody),
        (status = 404, description = "Not the caller's tenant", body = ErrorBody),
        (status = 422, description = "A field out of range or an unknown action; the message names the field", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Authorized<TenantPolicyWrite>,
    Path(id): Path<String>,
    Json(req): Json<TenantPolicyRequest>,
) -> ApiResult<axum::Json<TenantPolicyView>> {
    Ok(axum::Json(
        tenants::set_policy(&state, &caller, &id, req).await?,
    ))
}
