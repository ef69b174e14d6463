//! `POST /v2/keys.verifyKey`: always 200 with Unkey's `code`, for any key the root key's tenant
//! holds; a key of another tenant is `NOT_FOUND`, as one that does not exist.

use axum::extract::State;
use axum::response::Response;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use keygate_core::permission::Query;
use keygate_core::TokenHash;
use keygate_store::cache::Lookup;
use keygate_store::verifier::{Check, Verification};
use keygate_store::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::envelope::*;
use super::error::UnkeyError;
use super::model::{ms, Identity};
use crate::extract::ClientIp;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct VerifyKey {
    key: secrecy::SecretString,
    tags: Option<Vec<String>>,
    permissions: Option<String>,
    credits: Option<CostIn>,
    keyspaces: Option<Vec<String>>,
    ratelimits: Option<Vec<RatelimitUse>>,
    migration_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CostIn {
    cost: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RatelimitUse {
    name: String,
    cost: Option<u64>,
    limit: Option<u64>,
    duration: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyData<'a> {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<RatelimitResult<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RatelimitResult<'a> {
    exceeded: bool,
    id: &'a str,
    name: &'a str,
    limit: u64,
    duration: u64,
    reset: i64,
    remaining: u64,
    auto_apply: bool,
}

/// The request's own fields keygate does not do: refused by name.
fn refuse_unsupported(req: &VerifyKey) -> Result<(), UnkeyError> {
    if req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(UnkeyError::unsupported(
            "tags",
            "keygate keeps no verification analytics to tag",
        ));
    }
    if req.keyspaces.as_ref().is_some_and(|k| !k.is_empty()) {
        return Err(UnkeyError::unsupported(
            "keyspaces",
            "a keygate tenant has one keyspace, the root key's own",
        ));
    }
    if req.migration_id.is_some() {
        return Err(UnkeyError::unsupported(
            "migrationId",
            "a migrated key verifies by its SHA-256 as it is; leave migrationId out",
        ));
    }
    for (i, l) in req.ratelimits.iter().flatten().enumerate() {
        if l.limit.is_some() || l.duration.is_some() {
            return Err(UnkeyError::unsupported(
                &format!("ratelimits[{i}].limit"),
                "a verification names the key's own limits; set a limit on the key \
                 (keys.updateKey) rather than in the request",
            ));
        }
    }
    Ok(())
}

pub async fn verify_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Verifying,
    body: Body,
) -> Result<Response, UnkeyError> {
    use secrecy::ExposeSecret;
    let caller = caller?;
    let req: VerifyKey = parse(body)?;
    refuse_unsupported(&req)?;
    let query = match &req.permissions {
        None => None,
        Some(q) => Some(
            Query::parse(q)
                .map_err(|e| UnkeyError::invalid("permissions", format!("permissions: {e}")))?,
        ),
    };
    let named: Vec<(&str, u64)> = req
        .ratelimits
        .iter()
        .flatten()
        .map(|l| (l.name.as_str(), l.cost.unwrap_or(1)))
        .collect();
    let cost = req.credits.as_ref().map_or(1, |c| c.cost);
    keygate_core::usage::check_credits("credits.cost", cost)?;
    let check = Check {
        token: req.key.expose_secret(),
        scopes: &[],
        permissions: query.as_ref(),
        ratelimits: &named,
        cost,
        ip,
    };
    // Another tenant's key is, to this root key, a key that does not exist, and its credits
    // and rate limits must not be spent by asking: its tenant is looked at before the check.
    // Counted in keygate's metrics as every verification is, by keygate's own code.
    let started = Instant::now();
    let not_found_answer = || {
        state.metrics.verification("NOT_FOUND", started.elapsed());
        Ok(answer(not_found()))
    };
    match tenant_of(&state, check.token, ip).await? {
        Tenant::Of(t) if *t != *caller.tenant_id() => return not_found_answer(),
        Tenant::NoKey => return not_found_answer(),
        Tenant::Of(_) | Tenant::Unknown => {}
    }
    let v = crate::auth::token::check(&state, &check).await?;
    state
        .metrics
        .verification(v.outcome.code(), started.elapsed());
    if let Outcome::UnknownRateLimit { name, .. } = &v.outcome {
        // Unkey answers this 412: the request names a limit the key does not have.
        // The name is the client's text, echoed: a token sent as one must not come back.
        let name = keygate_core::credentials::redact_secrets(name, state.config.prefix.as_str());
        return Err(UnkeyError::precondition(format!(
            "ratelimit {name:?} was requested but does not exist for this key"
        )));
    }
    Ok(answer(data(&v)))
}

enum Tenant {
    Of(Arc<str>),
    /// Looked up, and no key matched (the failure is counted already).
    NoKey,
    /// Not looked up: the check finds out, and counts the failure.
    Unknown,
}

/// The tenant of the key, found without charging anything: from the cache, or from a
/// verification without usage (which loads the key into the cache for the check that follows).
async fn tenant_of(state: &AppState, key: &str, ip: Option<IpAddr>) -> Result<Tenant, UnkeyError> {
    if keygate_core::token::parse(key, &state.config.prefix).is_err() {
        return Ok(Tenant::Unknown);
    }
    Ok(match state.verifier.cache().get(&TokenHash::of(key)) {
        Lookup::Hit(t) => Tenant::Of(t.tenant_id.clone()),
        Lookup::KnownUnknown => Tenant::Unknown,
        Lookup::Miss => match crate::auth::token::verify(state, key, &[], ip)
            .await?
            .token()
        {
            Some(t) => Tenant::Of(t.tenant_id.clone()),
            None => Tenant::NoKey,
        },
    })
}

fn not_found() -> VerifyData<'static> {
    VerifyData {
        valid: false,
        code: "NOT_FOUND",
        key_id: None,
        name: None,
        meta: None,
        expires: None,
        credits: None,
        enabled: None,
        permissions: None,
        identity: None,
        ratelimits: Vec::new(),
    }
}

fn code(o: &Outcome) -> &'static str {
    match o {
        Outcome::Valid(_) => "VALID",
        Outcome::Malformed | Outcome::NotFound => "NOT_FOUND",
        Outcome::Disabled(_) => "DISABLED",
        Outcome::Expired(_) => "EXPIRED",
        Outcome::InsufficientScope { .. } => "INSUFFICIENT_PERMISSIONS",
        Outcome::RateLimited(_) => "RATE_LIMITED",
        Outcome::UsageExceeded(_) => "USAGE_EXCEEDED",
        // Unkey's code for a key that may not be used from here.
        Outcome::IpNotAllowed(_) => "FORBIDDEN",
        Outcome::UnknownRateLimit { .. } => "NOT_FOUND",
    }
}

fn data(v: &Verification) -> VerifyData<'_> {
    let mut d = not_found();
    d.code = code(&v.outcome);
    d.valid = matches!(v.outcome, Outcome::Valid(_));
    let Some(t) = v.outcome.token() else {
        return d;
    };
    d.key_id = Some(t.id.as_str());
    d.name = Some(&t.name);
    d.meta = t.metadata.as_deref();
    d.expires = t.expires_at.map(ms);
    d.enabled = Some(t.enabled);
    d.permissions = Some(t.scopes.names());
    d.identity = t.external_id.as_deref().map(Identity::of);
    d.credits = v.credits_remaining;
    d.ratelimits = v
        .ratelimits
        .iter()
        .map(|r| RatelimitResult {
            exceeded: r.exceeded,
            id: &r.name,
            name: &r.name,
            limit: r.limit,
            duration: r.duration_ms,
            reset: r.reset_ms,
            remaining: r.remaining,
            auto_apply: r.auto_apply,
        })
        .collect();
    d
}
