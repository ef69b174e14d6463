//! A token reported leaked by a secret scanner (GitHub's partner program, GitLab's Token
//! Revocation API), handled the same way whoever reports it.
//!
//! - Not this deployment's (another prefix, a bad checksum, or any other shape): a false
//!   positive, decided without a lookup, so a flood of reports of made-up tokens costs nothing.
//! - This deployment's format but no such token: a false positive.
//! - A token: handled by its tenant's `onLeak` (`revoke`, the default; `disable`; `notify`),
//!   in one transaction with the leak's record, a `token.leaked` audit entry and event that
//!   say where it was found, and the `token.revoked` / `token.disabled` ones of the action.
//!
//! Idempotent: a token is acted on at its first report only. Later reports of it (a re-scan,
//! the same token found elsewhere, a scanner's retry) are true positives that only count on its
//! record (`reports`, `last_reported_at`): no second revocation, audit entry or event. The
//! record is found by the token's hash, so a revoked token reported again is still known.

use std::net::IpAddr;

use keygate_core::token::{parse, ParsedToken};
use keygate_core::{AuditAction, EventType, OnLeak, PlainToken};
use keygate_store::{NewAudit, NewLeak, TokenRecord, Write};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::metrics::LeakOutcome;
use crate::service::{events, tokens};
use crate::state::AppState;

/// The longest text (a URL, a type) kept from a report; a longer one is cut.
const MAX_LOCATION_CHARS: usize = 2048;

/// Who reported a leak, and the audit log's actor for what the report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    Github,
    Gitlab,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Github => "github",
            Reporter::Gitlab => "gitlab",
        }
    }

    fn actor(self) -> &'static str {
        match self {
            Reporter::Github => "secret-scanning:github",
            Reporter::Gitlab => "secret-scanning:gitlab",
        }
    }
}

/// What a report says of a token: the type the scanner matched it as, and where it was found
/// (GitHub gives a `url` and a `source`, the kind of place; GitLab a `location`).
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub token_type: Option<String>,
    pub url: Option<String>,
    pub source: Option<String>,
}

fn cut(v: Option<String>) -> Option<String> {
    v.map(|s| s.chars().take(MAX_LOCATION_CHARS).collect())
}

impl Found {
    pub fn github(token_type: String, url: Option<String>, source: Option<String>) -> Self {
        Self {
            token_type: cut(Some(token_type)),
            url: cut(url),
            source: cut(source),
        }
    }

    pub fn gitlab(token_type: String, location: Option<String>) -> Self {
        Self {
            token_type: cut(Some(token_type)),
            url: cut(location),
            source: None,
        }
    }

    /// The fields of the audit entry and the event, in the reporter's own words.
    fn fields(&self, reporter: Reporter) -> Map<String, Value> {
        let v = match reporter {
            Reporter::Github => json!({ "reporter": "github", "type": self.token_type,
                                        "url": self.url, "source": self.source }),
            Reporter::Gitlab => json!({ "reporter": "gitlab", "type": self.token_type,
                                        "location": self.url }),
        };
        events::fields(v)
    }
}

/// Handles one reported token; `true` if it is (or was, before its revocation) a token of this
/// deployment.
pub async fn report(
    state: &AppState,
    reporter: Reporter,
    token: PlainToken,
    found: &Found,
    ip: Option<IpAddr>,
) -> ApiResult<bool> {
    let outcome = judge(state, reporter, token, found, ip).await?;
    state.metrics.leak_report(reporter.as_str(), outcome);
    Ok(outcome == LeakOutcome::Ours)
}

async fn judge(
    state: &AppState,
    reporter: Reporter,
    token: PlainToken,
    found: &Found,
    ip: Option<IpAddr>,
) -> ApiResult<LeakOutcome> {
    if !matches!(
        parse(token.expose(), &state.config.prefix),
        Ok(ParsedToken::Native { .. })
    ) {
        return Ok(LeakOutcome::NotOursByFormat);
    }
    let hash = token.hash();
    // A report that races another of the same token loses on the leak's record and rolls back
    // whole; it then finds the record. A token deleted between the read and the write is read
    // again (and then not found).
    for _ in 0..3 {
        let now = keygate_store::now();
        if state.store.count_leak_report(&hash, now).await? {
            return Ok(LeakOutcome::Ours);
        }
        let Some(rec) = state.store.token_by_hash(&hash).await? else {
            return Ok(LeakOutcome::NotFound);
        };
        match act(state, reporter, &rec, found, ip).await {
            Ok(()) => return Ok(LeakOutcome::Ours),
            Err(ApiError::Conflict(_) | ApiError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Unavailable)
}

/// The first report of a token: its tenant's `onLeak`, the record, the audit and the events, in
/// one transaction.
async fn act(
    state: &AppState,
    reporter: Reporter,
    rec: &TokenRecord,
    found: &Found,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    let policy = state.store.tenant_policy(&rec.tenant_id).await?;
    let at = keygate_store::now();
    let ip = ip.map(|a| a.to_string());
    let entry = |action: AuditAction, details: Value| NewAudit {
        tenant_id: rec.tenant_id.clone(),
        at,
        actor: reporter.actor().to_owned(),
        action: action.into(),
        target_id: Some(rec.id.to_string()),
        ip: ip.clone(),
        details: Some(details),
    };
    let found_fields = found.fields(reporter);
    let mut leaked = found_fields.clone();
    leaked.insert("onLeak".into(), policy.on_leak.as_str().into());
    let mut details = leaked.clone();
    details.insert("name".into(), rec.name.clone().into());

    let mut writes = vec![
        Write::RecordLeak(NewLeak {
            tenant_id: rec.tenant_id.clone(),
            token_id: rec.id.clone(),
            hash: rec.hash,
            reporter: reporter.as_str().to_owned(),
            location: found.url.clone(),
            action: policy.on_leak,
            at,
        }),
        events::token_event(state, EventType::TokenLeaked, rec, leaked),
    ];
    let mut audit = vec![entry(AuditAction::TokenLeaked, Value::Object(details))];
    let why = |mut m: Map<String, Value>| {
        m.insert("reason".into(), "leaked".into());
        m
    };
    match policy.on_leak {
        OnLeak::Revoke => {
            writes.push(Write::DeleteToken {
                tenant_id: rec.tenant_id.clone(),
                id: rec.id.clone(),
            });
            writes.push(events::token_event(
                state,
                EventType::TokenRevoked,
                rec,
                why(found_fields.clone()),
            ));
            let mut d = why(found_fields);
            d.insert("name".into(), rec.name.clone().into());
            audit.push(entry(AuditAction::TokenDelete, Value::Object(d)));
        }
        OnLeak::Disable if rec.enabled => {
            let mut disabled = rec.clone();
            disabled.enabled = false;
            disabled.updated_at = at;
            writes.push(events::token_event(
                state,
                EventType::TokenDisabled,
                &disabled,
                why(found_fields.clone()),
            ));
            writes.push(Write::UpdateToken(disabled));
            audit.push(entry(
                AuditAction::TokenDisable,
                Value::Object(why(found_fields)),
            ));
        }
        // Already disabled: the leak is recorded and told, there is nothing more to do.
        OnLeak::Disable | OnLeak::Notify => {}
    }
    tokens::apply_then_forget(state, writes, audit, vec![rec.hash]).await
}
