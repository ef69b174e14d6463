//! keygate's storage and its hot path: the [`Store`] trait with its SQLite backend, and the
//! [`Verifier`] that answers "is this token good?" from memory, falling back to the store only
//! for hashes it has never seen.

pub mod cache;
pub mod last_used;
pub mod model;
pub mod sqlite;
pub mod store;
pub mod verifier;

pub use model::*;
pub use sqlite::SqliteStore;
pub use store::{Store, StoreError};
pub use verifier::{Outcome, Verifier, VerifierConfig};
