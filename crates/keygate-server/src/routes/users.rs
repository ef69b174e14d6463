//! `/api/v1/users…`: the people of a tenant.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{Authorized, UsersRead, UsersWrite};
use crate::dto::*;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::tokens::page_limit;
use crate::service::users;
use crate::state::AppState;

/// Create a user. Creating an admin needs every scope the admin role holds.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created; a generated `password` is shown this once", body = CreatedUser),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Scope missing, or the role needs scopes the caller lacks", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Authorized<UsersWrite>,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedUser>)> {
    let (user, password) = users::create(&state, &caller, req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedUser {
            user: user.into(),
            password,
        }),
    ))
}

/// The users of the caller's tenant, by username.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(ListUsersQuery),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Query(q): Query<ListUsersQuery>,
) -> ApiResult<axum::Json<UserList>> {
    let page = state
        .store
        .list_users(
            caller.tenant_id(),
            q.cursor.as_deref(),
            page_limit(q.limit)?,
        )
        .await?;
    Ok(axum::Json(UserList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_after,
    }))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(
        users::visible(&state, &caller, &id).await?.into(),
    ))
}

/// Change a user's role or password. A new password ends the user's web sessions; a tenant's
/// last admin cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Authorized<UsersWrite>,
    Path(id): Path<String>,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(
        users::update(&state, &caller, &id, req).await?.into(),
    ))
}

/// Delete a user. Every token they own is revoked with them (each revocation audited), and
/// their web sessions end.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Your own account, or the tenant's last admin", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Authorized<UsersWrite>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    users::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
