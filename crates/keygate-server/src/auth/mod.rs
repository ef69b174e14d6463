//! Who is calling and what it may do: the credential a request presents (a token, or the web
//! session's cookie with its CSRF token), checked once, and the proof types routes and services
//! take so that no mutation can run unchecked.

pub mod authorized;
pub mod caller;
pub mod gateway;
pub mod logged_in;
pub mod scanner;
pub mod session;
pub mod token;

pub use authorized::*;
pub use caller::{Caller, Principal};
pub use logged_in::{CurrentSession, LiveSession, SessionForLogout};
