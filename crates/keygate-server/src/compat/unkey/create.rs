//! `POST /v2/keys.createKey`: a keygate token made from Unkey's description of a key.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::envelope::*;
use super::error::UnkeyError;
use super::input::{self, At, CreditsIn, RatelimitIn};
use super::model::NewKey;
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

/// The random bytes in a keygate key's secret: a request may ask for fewer (it gets these),
/// never for more.
const SECRET_BYTES: u64 = 32;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateKey {
    api_id: String,
    prefix: Option<String>,
    name: Option<String>,
    byte_length: Option<u64>,
    external_id: Option<String>,
    meta: Option<Value>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    expires: Option<i64>,
    credits: Option<CreditsIn>,
    ratelimits: Option<Vec<RatelimitIn>>,
    enabled: Option<bool>,
    recoverable: Option<bool>,
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: CreateKey = parse(body)?;
    ensure_own_api(&caller, &req.api_id)?;
    let at = At("");
    input::refuse_roles(&at, &req.roles)?;
    if req.recoverable == Some(true) {
        return Err(UnkeyError::unsupported(
            "recoverable",
            "keygate keeps only a key's SHA-256, so no key can be shown again",
        ));
    }
    if let Some(p) = &req.prefix {
        if p != state.config.prefix.as_str() {
            return Err(UnkeyError::unsupported(
                "prefix",
                &format!(
                    "every key of this deployment begins with its prefix `{}`",
                    state.config.prefix.as_str()
                ),
            ));
        }
    }
    match req.byte_length {
        Some(n) if n < 16 => {
            return Err(UnkeyError::invalid(
                "byteLength",
                "byteLength must be at least 16",
            ))
        }
        Some(n) if n > SECRET_BYTES => {
            return Err(UnkeyError::unsupported(
                "byteLength",
                "a keygate key's secret is 32 random bytes; ask for at most 32",
            ))
        }
        _ => {}
    }
    let now = keygate_store::now();
    let usage = tokens::Usage {
        external_id: input::external_id(&at, req.external_id)?,
        ratelimits: input::ratelimits(&at, req.ratelimits)?,
        credits: input::credits(&at, req.credits)?,
        allowed_cidrs: Vec::new(),
    };
    let spec = NewToken {
        expires_at: input::expires(&at, req.expires, now)?,
        metadata: input::meta(&at, req.meta)?,
        usage,
        ..NewToken::new(
            input::name(&at, req.name)?,
            input::permissions(&state, &at, req.permissions)?,
        )
    };
    let (rec, plain) = tokens::create(&state, &caller, spec).await?;
    // Disabled before its secret is handed out, so nobody can use it in between.
    if req.enabled == Some(false) {
        tokens::set_enabled(&state, &caller, rec.id.as_str(), false).await?;
    }
    Ok(answer(NewKey::of(&rec.id, &plain)))
}
