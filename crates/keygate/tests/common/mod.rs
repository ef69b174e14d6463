//! The harness every end-to-end suite shares: a real `keygate serve` on an ephemeral port,
//! talked to over HTTP and through the real CLI, on a SQLite file of its own or on a fresh
//! PostgreSQL database; and the helpers the suites would otherwise each write again.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unused_imports, unused_macros)]

mod addresses;
mod assertions;
mod backend;
pub mod browser;
mod clock;
mod doc_config;
mod postgres;
mod prerequisites;
mod python;
mod recorder;
mod requests;
mod server;
mod session;
mod sqlite;
mod tokens;

pub use addresses::*;
pub(crate) use assertions::assert_error_snapshot;
pub use assertions::*;
pub(crate) use backend::both_backends;
pub use backend::Backend;
pub use clock::*;
pub use doc_config::*;
pub use postgres::*;
pub use prerequisites::*;
pub use python::*;
pub use recorder::*;
pub use requests::*;
pub use server::*;
pub use session::*;
pub use sqlite::*;
pub use tokens::*;
