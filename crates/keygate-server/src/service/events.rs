//! The events a change tells the tenant's webhook endpoints about, built beside the change's
//! audit entry and written in its transaction (`Write::Emit`): an event exists if and only if
//! its change committed. The payload is the Standard Webhooks body `{type, timestamp, data}`;
//! `data.token` is the token as the API shows it, which never holds a secret.

use keygate_core::EventType;
use keygate_store::{NewEvent, TokenRecord, Write};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::service::tokens;
use crate::state::AppState;

/// A new message id: the same for every endpoint and every attempt of this event.
pub fn message_id() -> String {
    let mut id = String::with_capacity(4 + 24);
    id.push_str("msg_");
    keygate_core::base62::random(24, &mut id);
    id
}

/// An event about one token, with `more` beside `data.token`.
pub fn token_event(
    state: &AppState,
    event_type: EventType,
    rec: &TokenRecord,
    more: Map<String, Value>,
) -> Write {
    let token =
        serde_json::to_value(tokens::view(state, rec.clone())).expect("a token view serialises");
    let mut data = Map::with_capacity(1 + more.len());
    data.insert("token".into(), token);
    data.extend(more);
    Write::Emit(event(&rec.tenant_id, event_type, data))
}

/// An event of `tenant_id` with this `data`.
pub fn event(tenant_id: &str, event_type: EventType, data: Map<String, Value>) -> NewEvent {
    let at = keygate_store::now();
    let payload = json!({
        "type": event_type.as_str(),
        "timestamp": crate::rfc3339_ms::format(at),
        "data": data,
    });
    NewEvent {
        id: message_id(),
        tenant_id: tenant_id.to_owned(),
        event_type,
        at,
        payload: payload.to_string(),
    }
}

/// `more` for an event: an object's fields, or nothing.
pub fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// When the token stops working, as the events and views write it.
pub fn instant(at: OffsetDateTime) -> Value {
    Value::String(crate::rfc3339_ms::format(at))
}
