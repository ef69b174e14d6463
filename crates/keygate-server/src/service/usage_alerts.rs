//! `token.usage_exceeded`: a token refused because its credits do not cover a request. The
//! deployer's systems hear of it to top the customer up or to sell them more; one event per
//! token an hour on each node says as much as one per refused request, which would let a
//! client with an empty token fill the outbox as fast as it can send.
//!
//! Not on the hot path: it starts from a `USAGE_EXCEEDED` refusal, after the answer is decided,
//! in a task of its own.

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::EventType;
use keygate_store::cache::CachedToken;
use serde_json::json;

use crate::service::{events, tokens};
use crate::state::AppState;

/// Called by `auth` for every token refused for its credits (`AppState::on_usage_exceeded`).
pub fn usage_exceeded(state: &AppState, t: &Arc<CachedToken>, ip: Option<IpAddr>) {
    let hour = keygate_store::now().unix_timestamp().div_euclid(3600);
    // Keyed by token alone: the address does not make another event.
    if !state.usage_exceeded_seen.first_in_minute(&t.id, None, hour) {
        return;
    }
    let state = state.clone();
    let (tenant_id, id) = (t.tenant_id.to_string(), t.id.clone());
    tokio::spawn(async move {
        let result = async {
            let Some(rec) = state.store.token_by_id(&tenant_id, id.as_str()).await? else {
                return Ok(());
            };
            let ip = ip.map(|a| a.to_string());
            let event = events::token_event(
                &state,
                EventType::TokenUsageExceeded,
                &rec,
                events::fields(json!({ "ip": ip })),
            );
            tokens::apply_then_forget(&state, vec![event], Vec::new(), Vec::new()).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, token = %id, "could not emit token.usage_exceeded");
        }
    });
}
