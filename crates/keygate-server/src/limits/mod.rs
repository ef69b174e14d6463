//! In-memory limiters that slow down guessing, of passwords and of tokens. They know nothing of
//! HTTP or of the state: `auth` asks them before it checks a credential.

pub mod ip_refusals;
pub mod limiter;
pub mod login;
pub mod token_failures;
