//! The one error type of the crate: what can go wrong while connecting to keygate.

/// Why [`Replica::connect`](crate::Replica::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options contradict each other.
    #[error("invalid options: {0}")]
    Options(&'static str),
    /// The URL of keygate is not an http(s) URL.
    #[error("invalid keygate URL: {0}")]
    Url(String),
    /// keygate refused the replication token: 401 (unknown, disabled, expired) or 403 (it lacks
    /// the scope `tokens:replicate`).
    #[error("keygate refused the replication token ({status}, {code}): {message}")]
    Refused {
        /// 401 or 403.
        status: u16,
        /// keygate's error code, e.g. `insufficient_scope`.
        code: String,
        /// keygate's message.
        message: String,
    },
    /// keygate answered with another error status.
    #[error("keygate answered {status} ({code}): {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// keygate's error code, when the body had one.
        code: String,
        /// keygate's message, when the body had one.
        message: String,
    },
    /// The change stream's cursor is older than keygate keeps changes for: a fresh snapshot is
    /// needed (the follower takes one by itself).
    #[error("the replication cursor is older than keygate keeps changes for")]
    CursorTooOld,
    /// keygate could not be reached, or the connection failed.
    #[error("could not reach keygate: {0}")]
    Transport(#[source] reqwest::Error),
    /// keygate's answer was not what the protocol says.
    #[error("keygate's answer could not be read: {0}")]
    Protocol(String),
}
