//! What a verification asks and what it answers: the same codes as keygate's `POST /api/v1/verify`,
//! plus `UNAVAILABLE` for a replica that cannot answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use keygate_core::network::AllowList;
use keygate_core::permission::Query;
use keygate_core::ScopeSet;
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// The outcome of a verification, with keygate's names (see [`Code::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The token exists, is enabled, not expired, usable from the address and holds what was asked.
    Valid,
    /// Not a token of any accepted shape, or one of this deployment's tokens with a wrong checksum.
    Malformed,
    /// No such token (never issued, revoked or deleted).
    NotFound,
    /// The token is disabled.
    Disabled,
    /// The token's expiry has passed.
    Expired,
    /// The token lacks a scope, or does not meet the permission query.
    InsufficientScope,
    /// The token may not be used from the client's address.
    IpNotAllowed,
    /// keygate refused the token for its rate limits.
    RateLimited,
    /// keygate refused the token for its credits.
    UsageExceeded,
    /// Neither the replica nor keygate could answer: the replica has not heard from keygate for
    /// longer than `max_staleness`, or a delegated verification failed. Refuse the request.
    Unavailable,
}

impl Code {
    /// keygate's string for the code: `"VALID"`, `"MALFORMED"`, …, and `"UNAVAILABLE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "VALID",
            Code::Malformed => "MALFORMED",
            Code::NotFound => "NOT_FOUND",
            Code::Disabled => "DISABLED",
            Code::Expired => "EXPIRED",
            Code::InsufficientScope => "INSUFFICIENT_SCOPE",
            Code::IpNotAllowed => "IP_NOT_ALLOWED",
            Code::RateLimited => "RATE_LIMITED",
            Code::UsageExceeded => "USAGE_EXCEEDED",
            Code::Unavailable => "UNAVAILABLE",
        }
    }

    /// The code for keygate's string; `None` for a string this version does not know.
    pub fn parse(s: &str) -> Option<Code> {
        Some(match s {
            "VALID" => Code::Valid,
            "MALFORMED" => Code::Malformed,
            "NOT_FOUND" => Code::NotFound,
            "DISABLED" => Code::Disabled,
            "EXPIRED" => Code::Expired,
            "INSUFFICIENT_SCOPE" => Code::InsufficientScope,
            "IP_NOT_ALLOWED" => Code::IpNotAllowed,
            "RATE_LIMITED" => Code::RateLimited,
            "USAGE_EXCEEDED" => Code::UsageExceeded,
            "UNAVAILABLE" => Code::Unavailable,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who decided a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// The in-memory replica, without any I/O.
    Replica,
    /// keygate's `POST /api/v1/verify`: for tokens with rate limits or credits, and for a stale
    /// replica configured with [`OnStale::AskKeygate`](crate::OnStale::AskKeygate).
    Keygate,
}

/// What a replica knows about a token: never its secret.
///
/// A replica shares one copy of each tenant id, owner id and scope set among the tokens that
/// have the same ones, so a million tokens of one tenant hold its id once.
#[derive(Debug)]
pub struct TokenInfo {
    pub(crate) id: CompactString,
    pub(crate) name: CompactString,
    pub(crate) tenant_id: Arc<str>,
    pub(crate) owner_id: Arc<str>,
    pub(crate) scopes: Arc<ScopeSet>,
    pub(crate) enabled: bool,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) metadata: Option<Box<RawValue>>,
    pub(crate) external_id: Option<Box<str>>,
    /// `None`: usable from anywhere. Boxed, so the tokens without one (most) pay a pointer.
    pub(crate) allowed: Option<Box<AllowList>>,
    /// The token has rate limits or credits: only keygate may answer `VALID` for it.
    pub(crate) usage_controlled: bool,
}

impl TokenInfo {
    /// The token's public id, e.g. `kg_3hZ2…`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant the token belongs to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The user who owns the token.
    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// The scopes the token holds.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// Whether the token is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When the token expires; `None`: never.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// The token's metadata, a JSON object, as keygate sent it.
    pub fn metadata(&self) -> Option<&RawValue> {
        self.metadata.as_deref()
    }

    /// The deployer's id for whoever holds the token (`externalId`).
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// Whether the token has rate limits or credits, which only keygate decides.
    pub fn usage_controlled(&self) -> bool {
        self.usage_controlled
    }

    /// Whether a request from `ip` may use the token (`None`: address unknown, allowed only
    /// for a token without an allow-list).
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.allowed.as_ref().is_none_or(|l| l.allows(ip))
    }
}

/// A verification's answer.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The outcome.
    pub code: Code,
    /// The token, when it was found (also for `DISABLED`, `EXPIRED`, … refusals).
    pub token: Option<Arc<TokenInfo>>,
    /// For `INSUFFICIENT_SCOPE`: the scopes asked for and not held, when they can be named
    /// (a permission query with an `OR` names none).
    pub missing_scopes: Vec<String>,
    /// The replica or keygate.
    pub answered_by: AnsweredBy,
    /// For `RATE_LIMITED` and `USAGE_EXCEEDED` answered by keygate: when to try again, if known.
    pub retry_after: Option<Duration>,
    /// For a token with credits, answered by keygate: what is left after this request.
    pub credits_remaining: Option<u64>,
}

impl Verification {
    /// Whether the request may go on (`code == Code::Valid`).
    pub fn is_valid(&self) -> bool {
        self.code == Code::Valid
    }

    pub(crate) fn local(code: Code, token: Option<Arc<TokenInfo>>) -> Self {
        Self {
            code,
            token,
            missing_scopes: Vec::new(),
            answered_by: AnsweredBy::Replica,
            retry_after: None,
            credits_remaining: None,
        }
    }
}

/// Everything a verification can ask. Build it with struct update syntax:
///
/// ```
/// # use keygate_client::Request;
/// let req = Request { token: "kg_…", scopes: &["orders:read"], ..Request::default() };
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The token the client presented.
    pub token: &'a str,
    /// Scopes the token must all hold.
    pub scopes: &'a [&'a str],
    /// A permission query the token's scopes must meet (parse it once with
    /// [`Query::parse`](keygate_core::permission::Query::parse)).
    pub permissions: Option<&'a Query>,
    /// The client's address, checked against the token's allow-list. `None`: unknown, which a
    /// token with an allow-list refuses.
    pub ip: Option<IpAddr>,
    /// For a token with credits: what this request costs (keygate's default: 1).
    pub cost: Option<u64>,
}
