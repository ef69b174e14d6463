//! The rules: what may be done to tokens, users, tenants and sessions, on behalf of whom, with
//! the audit entry each change writes. No HTTP here: the native routes and every compatible
//! surface call these same operations, so a rule is written once. Every operation that writes
//! takes a proof that its caller passed the check (an `auth::Authorized` of the requirement, or
//! `auth::MayChangeTokens`), which only the extractors of `crate::auth` build; reads take the
//! plain `Caller`.

pub mod bootstrap;
pub mod bulk_revoke;
pub mod events;
pub mod expiry;
pub mod import;
pub mod leaks;
pub mod passwords;
pub mod policy;
pub mod replication;
pub mod reuse;
pub mod sessions;
pub mod tenants;
pub mod token_view;
pub mod tokens;
pub mod usage;
pub mod usage_alerts;
pub mod users;
pub mod webhooks;
