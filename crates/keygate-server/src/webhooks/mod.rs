//! Webhook delivery: Standard Webhooks signatures (`signing`), the addresses an endpoint may
//! not reach (`address`), and the dispatcher that drains the outbox (`dispatcher`). It stands
//! apart from the request path: a receiver that hangs or fails holds no lock and no task that
//! a verification or a write waits for.

pub mod address;
pub mod dispatcher;
pub mod signing;

pub use dispatcher::{start, Dispatcher};
