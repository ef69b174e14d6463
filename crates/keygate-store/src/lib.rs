//! keygate's storage and its hot path: the [`Store`] trait with its SQLite and PostgreSQL
//! backends, and the
//! [`Verifier`] that answers "is this token good?" from memory, falling back to the store only
//! for hashes it has never seen.

pub mod backend;
pub mod cache;
mod changes;
pub mod credits;
pub mod expiry;
pub mod last_used;
pub mod model;
pub mod ratelimit;
pub mod sql;
pub mod store;
pub mod usage;
pub mod usage_writer;
pub mod verifier;

pub use backend::{sqlite_url_in_dir, Backend};
pub use credits::{CreditConfig, CreditLedger, Spend};
pub use model::*;
pub use ratelimit::{Applied, Decision, LimitReport, RateLimitError, RateLimiter};
pub use sql::{SqlStore, LAST_ADMIN, SIGNATURE_RETENTION_MS};
pub use store::{LeakStore, Lease, Store, StoreError, WebhookStore};
pub use verifier::{Outcome, Verifier, VerifierConfig};
