//! keygate's pure domain: the token format, hashing, scopes, permission queries and the parsing of
//! credentials out of HTTP requests. Nothing here does I/O, so every rule can be tested in
//! isolation.

pub mod audit;
pub mod base62;
pub mod credentials;
pub mod event;
pub mod fields;
pub mod network;
pub mod permission;
pub mod role;
pub mod scope;
pub mod shared_copies;
pub mod token;
pub mod usage;

pub use audit::AuditAction;
pub use credentials::{extract_from_authorization, extract_from_query, Credential};
pub use event::EventType;
pub use fields::{Description, ExternalId, FieldError, Metadata, TokenName, Username};
pub use role::Role;
pub use scope::{CatalogEntry, Scope, ScopeCatalog, ScopeError, ScopeSet};
pub use token::{
    ParsedToken, PlainToken, TokenError, TokenHash, TokenId, TokenPrefix, FOREIGN_MAX_LEN,
    FOREIGN_MIN_LEN,
};
