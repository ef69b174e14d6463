//! `/api/v1/tenants`: new tenants, each with its first admin.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{Authorized, TenantsAdmin};
use crate::dto::{CreateTenantRequest, CreatedTenant};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
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
