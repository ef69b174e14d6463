//! Compatible surfaces (DESIGN §5): the seeds' own token APIs, as thin adapters over the same
//! core. Each adapter parses its vendor's request shapes, calls the operations of
//! `crate::tokens` on behalf of the caller (so visibility, no escalation, audit and cache
//! invalidation are the native ones), and answers in its vendor's shapes and error bodies.

pub mod dynatrace;
pub mod instana;
pub mod interana;

use keygate_core::ScopeCatalog;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Which surfaces are served (`--compat instana,dynatrace,interana`; all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    pub instana: bool,
    pub dynatrace: bool,
    pub interana: bool,
}

impl Default for Compat {
    fn default() -> Self {
        Self::all()
    }
}

impl Compat {
    pub const NAMES: [&'static str; 3] = ["instana", "dynatrace", "interana"];

    pub fn all() -> Self {
        Self {
            instana: true,
            dynatrace: true,
            interana: true,
        }
    }

    pub fn none() -> Self {
        Self {
            instana: false,
            dynatrace: false,
            interana: false,
        }
    }

    /// `instana,dynatrace` → those two; an empty list → none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut c = Self::none();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "instana" => c.instana = true,
                "dynatrace" => c.dynatrace = true,
                "interana" => c.interana = true,
                other => {
                    return Err(format!(
                        "unknown compatible surface {other:?} (known: {})",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(c)
    }

    /// Adds the scopes the enabled surfaces define (Instana's permission flags, Dynatrace's
    /// scope names) to the catalogue.
    pub fn register_scopes(self, catalog: &mut ScopeCatalog) {
        if self.instana {
            instana::register_scopes(catalog);
        }
        if self.dynatrace {
            dynatrace::register_scopes(catalog);
        }
    }

    /// The routes of the enabled surfaces.
    pub fn router(self) -> OpenApiRouter<AppState> {
        let mut r = OpenApiRouter::new();
        if self.instana {
            r = r.merge(instana::router());
        }
        if self.dynatrace {
            r = r.merge(dynatrace::router());
        }
        if self.interana {
            r = r.merge(interana::router());
        }
        r
    }
}
