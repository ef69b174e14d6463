//! Per-token rate limits with GCRA (the generic cell rate algorithm), counted in this process
//! or in Redis. `docs/rate-limits.md` tells users what a limit means.

mod decision;
mod evaluate;
mod gcra;
mod limiter;
mod local;
mod redis;
#[cfg(test)]
mod tests;

pub use decision::{Applied, Decision, LimitReport, RateLimitError};
pub use limiter::RateLimiter;
