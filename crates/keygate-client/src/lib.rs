//! Verify [keygate](https://docs.rs/keygate-client) API tokens inside your Rust service, at about
//! the cost of one SHA-256, with keygate's own rules and answers.
//!
//! A [`Replica`] holds, in memory, what keygate needs to verify every token of one tenant: the
//! SHA-256 of each token (never a secret), its id, owner, tenant, scopes, status, expiry,
//! allowed networks and metadata. It takes a snapshot when it connects and then follows
//! keygate's change stream (a long-poll re-issued as soon as it answers), so a revoked token is
//! refused everywhere within a round trip.
//!
//! - **Same answers as keygate.** The checks run in keygate's order with keygate's own code
//!   ([`keygate_core`]): format and checksum, status, expiry, client address, scopes, permission
//!   query. The codes are keygate's ([`Code`]).
//! - **Rate limits and credits stay with keygate.** A token that has them passes the local
//!   checks and is then verified by keygate (`POST /api/v1/verify`), by the crate itself.
//! - **Fail closed.** A replica that has not heard from keygate for
//!   [`Options::max_staleness`] answers [`Code::Unavailable`], or asks keygate if
//!   [`Options::on_stale`] says so.
//! - **axum and tower.** With the default `axum` feature: a [`KeygateLayer`] for whole routers,
//!   and a [`KeygateToken`] extractor that names the scopes a handler needs in its type.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use keygate_client::{KeygateToken, Options, Replica};
//!
//! keygate_client::scopes!(pub ReadOrders = "orders:read");
//!
//! async fn list_orders(token: KeygateToken<ReadOrders>) -> String {
//!     format!("orders of {}", token.info().owner_id())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let replica = Replica::connect(
//!     "https://keygate.internal:8080",
//!     std::env::var("KEYGATE_REPLICATION_TOKEN")?,
//!     Options::default(),
//! )
//! .await?;
//!
//! // Without axum: one call per request.
//! let answer = replica.verify("kg_…", &["orders:read"]).await;
//! if !answer.is_valid() {
//!     println!("refused: {}", answer.code);
//! }
//!
//! let app: Router = Router::new()
//!     .route("/orders", get(list_orders))
//!     .layer(Extension(replica));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The replication token needs the scope `tokens:replicate`; the replica holds the tokens of
//! that token's tenant.

#![warn(missing_docs)]

mod error;
mod follower;
mod held;
mod http;
mod options;
mod replica;
mod shared;
mod verification;
mod wire;

#[cfg(feature = "axum")]
mod web;

pub use error::Error;
pub use keygate_core::permission::{Query, QueryError};
pub use options::{OnStale, Options};
pub use replica::{LocalAnswer, Replica, Stats};
pub use verification::{AnsweredBy, Code, Request, TokenInfo, Verification};

#[cfg(feature = "axum")]
pub use web::{
    ClientIp, KeygateLayer, KeygateService, KeygateToken, NoScopes, Refusal, Scopes, Verified,
};

// Here, beside the re-exports its expansion names: `$crate::Scopes` is a path of the crate's root.
#[cfg(feature = "axum")]
/// Declares a [`Scopes`] type: `scopes!(pub ReadOrders = "orders:read");`, or with several
/// scopes that must all be held: `scopes!(pub ShipOrders = "orders:read", "orders:ship");`.
#[macro_export]
macro_rules! scopes {
    ($(#[$meta:meta])* $vis:vis $name:ident = $($scope:literal),+ $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::Scopes for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
}

#[cfg(test)]
mod tests;
