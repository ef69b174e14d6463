//! Dynatrace's token API (Dynatrace API v2), `/api/v2/apiTokens…`: list with `nextPageKey` paging,
//! `apiTokenSelector`, `fields`, `sort` and `from`/`to`; create (201 `{id, token,
//! expirationDate}`); read; update (204, scopes sent replace the set); delete by id or by the
//! token itself; lookup. Dates are `yyyy-MM-ddTHH:mm:ss.SSSZ`; every failure has Dynatrace's
//! body `{"error": {"code", "message", "constraintViolations"}}`. Everything goes through
//! `crate::service::tokens`, so visibility, no escalation, audit and cache invalidation are
//! the native ones.

mod create;
mod error;
mod list;
mod model;
pub mod query;
mod request;
mod scopes;
mod token;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::create::*;
pub use self::error::DtError;
use self::list::*;
pub use self::model::*;
pub use self::scopes::{register_scopes, SCOPES};
use self::token::*;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(lookup_token))
        .routes(routes!(get_token, update_token, delete_token))
}
