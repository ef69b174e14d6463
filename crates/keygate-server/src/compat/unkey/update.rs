//! `keys.updateKey` (each field given replaces the key's; `null` clears it) and
//! `keys.updateCredits`.

use axum::extract::State;
use axum::response::Response;
use keygate_core::usage::{Credits, Refill};
use keygate_core::AuditAction;
use keygate_store::CreditChange;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::*;
use super::error::UnkeyError;
use super::input::{self, At, RatelimitIn, RefillIn};
use super::model::CreditsData;
use crate::dto::CreditsView;
use crate::service::tokens;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateKey {
    key_id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    meta: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    expires: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    credits: Option<Option<CreditsUpdate>>,
    #[serde(default, deserialize_with = "nullable")]
    ratelimits: Option<Option<Vec<RatelimitIn>>>,
    enabled: Option<bool>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
}

/// Credits in an update: a part left out keeps its value, a part sent as `null` clears it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreditsUpdate {
    #[serde(default, deserialize_with = "nullable")]
    remaining: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    refill: Option<Option<RefillIn>>,
}

impl UpdateKey {
    /// Only `enabled` given: a change that takes power away must not need more than that.
    fn only_enabled(&self) -> bool {
        self.name.is_none()
            && self.external_id.is_none()
            && self.meta.is_none()
            && self.expires.is_none()
            && self.credits.is_none()
            && self.ratelimits.is_none()
            && self.roles.is_none()
            && self.permissions.is_none()
    }
}

pub async fn update_key(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: UpdateKey = parse(body)?;
    let at = At("");
    input::refuse_roles(&at, &req.roles)?;
    if req.only_enabled() {
        if let Some(enabled) = req.enabled {
            tokens::set_enabled(&state, &caller, &req.key_id, enabled).await?;
        } else {
            tokens::visible(&state, &caller, &req.key_id).await?;
        }
        return Ok(answer(json!({})));
    }
    let now = keygate_store::now();
    let mut rec = tokens::changeable(&state, &caller, &req.key_id).await?;
    let mut changed = Vec::new();
    if let Some(name) = req.name {
        rec.name = input::name(&at, name)?.into_string();
        changed.push("name");
    }
    if let Some(meta) = req.meta {
        rec.metadata = input::meta(&at, meta)?.map(|m| m.into_raw());
        changed.push("meta");
    }
    if let Some(expires) = req.expires {
        let at_time = match expires {
            Some(ms) if Some(ms) == rec.expires_at.map(super::model::ms) => rec.expires_at,
            e => input::expires(&at, e, now)?,
        };
        tokens::change_expiry(&mut rec, at_time, now)?;
        changed.push("expires");
    }
    if let Some(permissions) = req.permissions {
        let scopes = input::permissions(&state, &at, Some(permissions))?;
        tokens::ensure_covers(&caller, &scopes)?;
        rec.scopes = scopes;
        changed.push("permissions");
    }
    if let Some(external_id) = req.external_id {
        rec.external_id = input::external_id(&at, external_id)?;
        changed.push("externalId");
    }
    if let Some(limits) = req.ratelimits {
        rec.ratelimits = input::ratelimits(&at, limits)?;
        changed.push("ratelimits");
    }
    if let Some(enabled) = req.enabled {
        rec.enabled = enabled;
        changed.push("enabled");
    }
    let credits = match req.credits {
        None => None,
        Some(c) => {
            changed.push("credits");
            let left = tokens::view(&state, rec.clone()).credits;
            Some(credits_after(&at, left, c)?)
        }
    };
    let details = json!({ "surface": "unkey", "changed": changed });
    tokens::save_with_credits(
        &state,
        &caller,
        rec,
        credits,
        AuditAction::TokenUpdate,
        details,
    )
    .await?;
    Ok(answer(json!({})))
}

/// The key's credits once `update` is applied to what is `left` of them: `None` unlimited.
fn credits_after(
    at: &At,
    left: Option<CreditsView>,
    update: Option<CreditsUpdate>,
) -> Result<Option<Credits>, UnkeyError> {
    let Some(update) = update else {
        return Ok(None);
    };
    let remaining = match update.remaining {
        Some(r) => r,
        None => left.as_ref().map(|c| c.remaining),
    };
    let refill: Option<Refill> = match update.refill {
        Some(r) => r.map(RefillIn::into_refill),
        None => left.and_then(|c| c.refill),
    };
    let Some(remaining) = remaining else {
        if refill.is_some() {
            return Err(UnkeyError::invalid(
                &at.path("credits.remaining"),
                "credits.remaining must be a number when a refill is given",
            ));
        }
        return Ok(None);
    };
    let credits = Credits { remaining, refill };
    credits.check()?;
    Ok(Some(credits))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Set,
    Increment,
    Decrement,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateCredits {
    key_id: String,
    operation: Operation,
    #[serde(default, deserialize_with = "nullable")]
    value: Option<Option<u64>>,
}

pub async fn update_credits(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: UpdateCredits = parse(body)?;
    let value = req.value.flatten();
    if let Some(v) = value {
        keygate_core::usage::check_credits("value", v)?;
    }
    let change = match (req.operation, value) {
        (Operation::Set, None) => CreditChange::Set(None),
        (Operation::Set, Some(v)) => {
            // Setting what is left keeps the key's refill.
            let rec = tokens::visible(&state, &caller, &req.key_id).await?;
            CreditChange::Set(Some((v, rec.credits.and_then(|c| c.refill))))
        }
        (Operation::Increment, Some(v)) => CreditChange::Increment(v),
        (Operation::Decrement, Some(v)) => CreditChange::Decrement(v),
        (_, None) => {
            return Err(UnkeyError::invalid(
                "value",
                "value must be a number to increment or decrement by",
            ))
        }
    };
    let rec = tokens::change_credits(&state, &caller, &req.key_id, change).await?;
    Ok(answer(match tokens::view(&state, rec).credits {
        Some(c) => CreditsData::of(&c),
        None => CreditsData::unlimited(),
    }))
}
