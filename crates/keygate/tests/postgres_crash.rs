//! The crash-consistency test again, against keygate on PostgreSQL: each server of this binary
//! gets a fresh database of its own, because the binary's name starts with `postgres` (see
//! `common::backend`). A binary of its own rather than a module of `postgres.rs`, so that it can
//! be run alone: `cargo test -p keygate --test postgres_crash`.
#![allow(clippy::duplicate_mod)]

#[path = "crash.rs"]
mod crash;
