//! The limiters of the login route, which slow down password guessing: per account at an
//! address, with doubling waits, and per address.

use keygate_core::TokenHash;

use crate::config::LoginLimits;
use crate::limits::limiter::{BackoffLimiter, FailureLimiter};

/// The two limiters of the login route.
pub struct LoginLimiter {
    /// Keyed by the SHA-256 of tenant, lower-cased username and address.
    pub account_at_address: BackoffLimiter<TokenHash>,
    pub ips: FailureLimiter<String>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            account_at_address: BackoffLimiter::new(
                limits.free_failures,
                limits.first_delay,
                limits.window,
            ),
            ips: FailureLimiter::new(limits.per_ip, limits.window),
        }
    }
}
