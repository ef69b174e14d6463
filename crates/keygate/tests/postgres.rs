//! The end-to-end suites again, against keygate on PostgreSQL (DESIGN §7: the same behaviour on
//! both backends). The harness gives each server of this binary a fresh database of its own,
//! because this binary's name starts with `postgres` (see `common::backend`).
// Each suite file brings its own copy of the harness module: that is what lets every file also
// be a test binary of its own.
#![allow(clippy::duplicate_mod)]

#[path = "abuse.rs"]
mod abuse;
#[path = "auth.rs"]
mod auth;
#[path = "cli.rs"]
mod cli;
#[path = "dynatrace.rs"]
mod dynatrace;
#[path = "forward_auth_nginx.rs"]
mod forward_auth_nginx;
#[path = "instana.rs"]
mod instana;
#[path = "interana.rs"]
mod interana;
#[path = "secrets.rs"]
mod secrets;
#[path = "session.rs"]
mod session;
#[path = "tenants.rs"]
mod tenants;
#[path = "tokens.rs"]
mod tokens;
#[path = "users.rs"]
mod users;
