//! Compatible surfaces: other vendors' token APIs, one folder per vendor, as thin adapters over
//! the same core. Each adapter parses its vendor's request shapes, calls the operations of
//! `crate::service::tokens` on behalf of the caller (so visibility, no escalation, audit and cache
//! invalidation are the native ones), and answers in its vendor's shapes and error bodies.

pub mod dynatrace;
pub mod instana;
pub mod interana;
pub mod unkey;

use keygate_core::ScopeCatalog;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Compat;
use crate::state::AppState;

/// Adds the scopes the enabled surfaces define (Instana's permission flags, Dynatrace's scope
/// names) to the catalogue.
pub fn register_scopes(served: Compat, catalog: &mut ScopeCatalog) {
    if served.instana {
        instana::register_scopes(catalog);
    }
    if served.dynatrace {
        dynatrace::register_scopes(catalog);
    }
}

/// The routes of the enabled surfaces.
pub fn router(served: Compat) -> OpenApiRouter<AppState> {
    let mut r = OpenApiRouter::new();
    if served.instana {
        r = r.merge(instana::router());
    }
    if served.dynatrace {
        r = r.merge(dynatrace::router());
    }
    if served.interana {
        r = r.merge(interana::router());
    }
    if served.unkey {
        r = r.merge(unkey::router());
    }
    r
}
