//! Reading the parts of a key that Unkey's requests share (create, update, migrate) into
//! keygate's checked types; a field keygate does not do is refused by name, never ignored.

use keygate_core::fields::{Metadata, TokenName};
use keygate_core::usage::{self, Credits, RateLimit, Refill, RefillInterval};
use keygate_core::ScopeSet;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::error::UnkeyError;
use crate::error::ApiError;
use crate::service::tokens;
use crate::state::AppState;

/// The name a key gets when the request gives none: keygate's tokens are always named.
pub(super) const UNNAMED: &str = "unkey key";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreditsIn {
    /// `null`: unlimited.
    pub remaining: Option<u64>,
    pub refill: Option<RefillIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RefillIn {
    pub interval: RefillInterval,
    pub amount: u64,
    pub refill_day: Option<u8>,
}

impl RefillIn {
    pub(super) fn into_refill(self) -> Refill {
        Refill {
            interval: self.interval,
            amount: self.amount,
            refill_day: self.refill_day,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RatelimitIn {
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    pub auto_apply: Option<bool>,
}

/// `location` is where the request holds the key: `""` for the body itself, `keys[3].` for
/// one key of a list.
pub(super) struct At<'a>(pub &'a str);

impl At<'_> {
    pub(super) fn path(&self, field: &str) -> String {
        format!("{}{field}", self.0)
    }
}

pub(super) fn name(at: &At, name: Option<String>) -> Result<TokenName, UnkeyError> {
    name.as_deref()
        .unwrap_or(UNNAMED)
        .parse::<TokenName>()
        .map_err(|e| UnkeyError::field(&at.path("name"), "name", e))
}

pub(super) fn meta(at: &At, meta: Option<Value>) -> Result<Option<Metadata>, UnkeyError> {
    let raw = meta
        .map(|m| serde_json::value::to_raw_value(&m))
        .transpose()
        .map_err(|e| ApiError::Internal(format!("re-encoding meta: {e}")))?;
    Metadata::optional(raw).map_err(|e| UnkeyError::field(&at.path("meta"), "meta", e))
}

/// `expires` (Unix milliseconds) as an expiry keygate accepts.
pub(super) fn expires(
    at: &At,
    expires: Option<i64>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, UnkeyError> {
    let Some(ms) = expires else {
        return Ok(None);
    };
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| UnkeyError::invalid(&at.path("expires"), "expires is out of range"))?;
    tokens::expiry(now, Some(when), None)
        .map_err(|e| UnkeyError::field(&at.path("expires"), "expires", e))
}

/// Unkey's permissions are keygate's scopes: each must be in the deployment's catalogue.
/// A key given none holds no scope: it verifies, and meets no permission query.
pub(super) fn permissions(
    state: &AppState,
    at: &At,
    names: Option<Vec<String>>,
) -> Result<ScopeSet, UnkeyError> {
    match names {
        None => Ok(ScopeSet::new(Vec::new())),
        Some(n) if n.is_empty() => Ok(ScopeSet::new(Vec::new())),
        Some(n) => tokens::validate_scopes(state, &n).map_err(|e| match e {
            ApiError::Unprocessable(m) | ApiError::BadRequest(m) => {
                UnkeyError::invalid(&at.path("permissions"), format!("permissions: {m}"))
            }
            e => e.into(),
        }),
    }
}

pub(super) fn refuse_roles(at: &At, roles: &Option<Vec<String>>) -> Result<(), UnkeyError> {
    match roles {
        Some(r) if !r.is_empty() => Err(UnkeyError::unsupported(
            &at.path("roles"),
            "keygate keys have no roles; give the permissions themselves",
        )),
        _ => Ok(()),
    }
}

pub(super) fn external_id(at: &At, id: Option<String>) -> Result<Option<String>, UnkeyError> {
    if let Some(id) = &id {
        usage::check_external_id(&at.path("externalId"), id)?;
    }
    Ok(id)
}

pub(super) fn ratelimits(
    at: &At,
    given: Option<Vec<RatelimitIn>>,
) -> Result<Vec<RateLimit>, UnkeyError> {
    let limits: Vec<RateLimit> = given
        .unwrap_or_default()
        .into_iter()
        .map(|l| RateLimit {
            name: l.name,
            limit: l.limit,
            duration_ms: l.duration,
            auto_apply: l.auto_apply.unwrap_or(false),
        })
        .collect();
    usage::check_ratelimits(&limits).map_err(|e| UnkeyError::from(usage_error_at(at, e)))?;
    Ok(limits)
}

/// `None`: unlimited.
pub(super) fn credits(at: &At, given: Option<CreditsIn>) -> Result<Option<Credits>, UnkeyError> {
    let Some(c) = given else {
        return Ok(None);
    };
    let Some(remaining) = c.remaining else {
        if c.refill.is_some() {
            return Err(UnkeyError::invalid(
                &at.path("credits.remaining"),
                "credits.remaining must be a number when a refill is given",
            ));
        }
        return Ok(None);
    };
    let credits = Credits {
        remaining,
        refill: c.refill.map(RefillIn::into_refill),
    };
    credits
        .check()
        .map_err(|e| UnkeyError::from(usage_error_at(at, e)))?;
    Ok(Some(credits))
}

fn usage_error_at(at: &At, e: usage::UsageError) -> usage::UsageError {
    usage::UsageError {
        field: at.path(&e.field),
        message: e.message,
    }
}
