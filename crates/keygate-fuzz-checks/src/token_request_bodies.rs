//! The JSON bodies of the token routes, through the server's own `parse_json` and
//! the pure validation in `keygate_server::service::tokens` and `keygate_core::fields`, without a server: bad input is a 400 or a
//! 422 (never a panic, never a 500), and what validation accepts keeps the rules it states.
//! `serde_json::Value` is the second reading of each body that the typed one is held to.

use std::sync::OnceLock;

use keygate_core::fields::{
    Description, FieldError, Metadata, TokenName, MAX_DESCRIPTION_CHARS, MAX_METADATA_BYTES,
    MAX_NAME_CHARS,
};
use keygate_core::ScopeCatalog;
use keygate_server::dto::{
    CreateTokenRequest, RotateRequest, TokenBody, UpdateTokenRequest, VerifyRequest,
};
use keygate_server::error::ApiError;
use keygate_server::extract::parse_json;
use keygate_server::service::tokens::{self, MAX_LIFETIME_SECONDS};
use secrecy::ExposeSecret;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

pub fn check(data: &[u8]) {
    let json: Option<Value> = serde_json::from_slice(data).ok();
    let object = json.as_ref().and_then(Value::as_object);
    if let Some(req) = parsed::<CreateTokenRequest>(data, json.is_some()) {
        check_create(req, object);
    }
    if let Some(req) = parsed::<UpdateTokenRequest>(data, json.is_some()) {
        check_update(req, object);
    }
    if let (Some(req), Some(o)) = (parsed::<RotateRequest>(data, json.is_some()), object) {
        let given = o.get("gracePeriodSeconds").and_then(Value::as_u64);
        assert_eq!(req.grace_period_seconds, given);
    }
    if let (Some(req), Some(o)) = (parsed::<TokenBody>(data, json.is_some()), object) {
        assert_eq!(Some(req.token.expose_secret()), field_str(o, "token"));
    }
    if let Some(req) = parsed::<VerifyRequest>(data, json.is_some()) {
        check_verify(data, &req, object);
    }
}

/// A fixed clock at store precision (whole milliseconds, as `keygate_store::now()` gives), so
/// that a crash reproduces.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_796_083_200_123_000_000).expect("in range")
}

/// The built-in scopes and two of a deployment's own, as `--scope` would add them.
fn catalog() -> &'static ScopeCatalog {
    static CATALOG: OnceLock<ScopeCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = ScopeCatalog::default();
        c.add("metrics:read", "Read metrics").expect("valid");
        c.add("metrics:write", "Write metrics").expect("valid");
        c
    })
}

fn parsed<'a, T: serde::Deserialize<'a>>(data: &'a [u8], valid_json: bool) -> Option<T> {
    match parse_json::<T>(data) {
        Ok(t) => Some(t),
        Err(e) => {
            match &e {
                ApiError::Unprocessable(m) | ApiError::BadRequest(m) => assert!(!m.is_empty()),
                other => panic!("a body's parse error is a 400 or a 422, not {other:?}"),
            }
            // Syntax errors are 400; a body that is valid JSON can only be of the wrong shape.
            if valid_json {
                assert!(
                    matches!(e, ApiError::Unprocessable(_)),
                    "valid JSON refused as {e:?}"
                );
            }
            None
        }
    }
}

fn field_str<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn assert_unprocessable(e: &ApiError) {
    assert!(matches!(e, ApiError::Unprocessable(_)), "{e:?}");
}

/// A refused field names itself, in its message too, and answers 422.
fn assert_refused(e: &FieldError, field: &str) {
    assert_eq!(e.field(), field);
    assert!(e.to_string().starts_with(field), "{e}");
    assert_unprocessable(&ApiError::from(e.clone()));
}

fn check_create(req: CreateTokenRequest, object: Option<&Map<String, Value>>) {
    if let Some(o) = object {
        assert_eq!(Some(req.name.as_str()), field_str(o, "name"));
    }
    check_name(&req.name);
    check_scopes(&req.scopes);
    check_expiry(req.expires_at, req.expires_in);
    check_description(req.description);
    check_metadata(req.metadata);
}

fn check_update(req: UpdateTokenRequest, object: Option<&Map<String, Value>>) {
    if let Some(o) = object {
        // A field left out is `None`, a field set to null is `Some(None)`.
        let presence = |key: &str| o.get(key).map(|v| !v.is_null());
        assert_eq!(req.expires_at.map(|v| v.is_some()), presence("expiresAt"));
        let description = req.description.as_ref().map(Option::is_some);
        assert_eq!(description, presence("description"));
        assert_eq!(
            req.metadata.as_ref().map(Option::is_some),
            presence("metadata")
        );
        assert_eq!(req.enabled, o.get("enabled").and_then(Value::as_bool));
    }
    check_name(&req.name);
    check_scopes(&req.scopes);
    if let Some(Some(at)) = req.expires_at {
        check_expiry(Some(at), None);
    }
    if let Some(d) = req.description {
        check_description(d);
    }
    if let Some(m) = req.metadata {
        check_metadata(m);
    }
}

fn check_verify(data: &[u8], req: &VerifyRequest<'_>, object: Option<&Map<String, Value>>) {
    if let Some(o) = object {
        assert_eq!(Some(req.token.as_ref()), field_str(o, "token"));
        let scopes: Vec<&str> = o
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let parsed: Vec<&str> = req.scopes.iter().map(AsRef::as_ref).collect();
        assert_eq!(parsed, scopes);
    }
    // Borrowed means copied from the body verbatim: no escape was left undecoded.
    if let std::borrow::Cow::Borrowed(t) = &req.token {
        let quoted = format!("\"{t}\"");
        assert!(data.windows(quoted.len()).any(|w| w == quoted.as_bytes()));
    }
}

fn check_name(name: &str) {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    match name.parse::<TokenName>() {
        Ok(n) => {
            assert_eq!(n.as_str(), trimmed);
            assert!((1..=MAX_NAME_CHARS).contains(&chars));
            assert!(!n.as_str().chars().any(char::is_control));
            assert_eq!(n.as_str().parse::<TokenName>().ok(), Some(n));
        }
        Err(e) => {
            assert_refused(&e, "name");
            let broken =
                chars == 0 || chars > MAX_NAME_CHARS || trimmed.chars().any(char::is_control);
            assert!(broken, "name {name:?} refused: {e:?}");
        }
    }
}

fn check_scopes(names: &[String]) {
    let catalog = catalog();
    match tokens::validate_scopes_in(catalog, names) {
        Ok(set) => {
            assert!(
                !set.is_empty()
                    && set.len() <= names.len()
                    && names.len() <= tokens::max_scopes(catalog)
            );
            let kept = set.names();
            assert!(
                names.iter().all(|n| kept.contains(n)),
                "{names:?} → {kept:?}"
            );
            assert!(set.iter().all(|s| catalog.knows(s)));
            let again = tokens::validate_scopes_in(catalog, &kept).expect("accepted once");
            assert_eq!(again, set);
        }
        Err(e) => {
            assert_unprocessable(&e);
            let broken = names.is_empty()
                || names.len() > tokens::max_scopes(catalog)
                || names
                    .iter()
                    .any(|n| catalog.validate([n.as_str()]).is_err());
            assert!(broken, "scopes {names:?} refused: {e:?}");
        }
    }
}

fn check_expiry(at: Option<OffsetDateTime>, in_seconds: Option<u64>) {
    let now = now();
    let latest = now + Duration::seconds(MAX_LIFETIME_SECONDS as i64);
    match tokens::expiry(now, at, in_seconds) {
        Ok(None) => assert!(at.is_none() && in_seconds.is_none()),
        Ok(Some(e)) => {
            assert!(
                e > now,
                "a new token would be expired already: {e} for {at:?}"
            );
            assert!(e <= latest);
            assert_eq!(keygate_store::to_store_precision(e), e);
            match (at, in_seconds) {
                (Some(at), None) => assert!(e <= at && at - e < Duration::milliseconds(1)),
                (None, Some(s)) => assert_eq!(e, now + Duration::seconds(s as i64)),
                _ => panic!("{at:?} and {in_seconds:?} accepted together"),
            }
        }
        Err(e) => {
            assert_unprocessable(&ApiError::from(e.clone()));
            let acceptable = match (at, in_seconds) {
                (Some(at), None) => {
                    at > now && at <= latest && keygate_store::to_store_precision(at) > now
                }
                (None, Some(s)) => (1..=MAX_LIFETIME_SECONDS).contains(&s),
                _ => false,
            };
            assert!(!acceptable, "{at:?} / {in_seconds:?} refused: {e:?}");
        }
    }
}

fn check_description(d: Option<String>) {
    let chars = d.as_deref().map(|d| d.chars().count());
    match d.clone().map(Description::try_from).transpose() {
        Ok(kept) => {
            assert_eq!(kept.map(String::from), d);
            assert!(chars.is_none_or(|c| c <= MAX_DESCRIPTION_CHARS));
        }
        Err(e) => {
            assert_refused(&e, "description");
            assert!(chars.is_some_and(|c| c > MAX_DESCRIPTION_CHARS));
        }
    }
}

fn check_metadata(m: Option<Box<RawValue>>) {
    let raw = m.as_ref().map(|m| m.get().to_owned());
    match Metadata::optional(m) {
        Ok(None) => assert!(raw.is_none_or(|r| r == "null")),
        Ok(Some(kept)) => {
            assert_eq!(Some(kept.get()), raw.as_deref());
            assert!(kept.get().len() <= MAX_METADATA_BYTES);
            assert!(
                serde_json::from_str::<Map<String, Value>>(kept.get()).is_ok(),
                "metadata {} accepted but not a JSON object",
                kept.get()
            );
        }
        Err(e) => {
            assert_refused(&e, "metadata");
            let raw = raw.expect("no metadata is never refused");
            let object = serde_json::from_str::<Map<String, Value>>(&raw).is_ok();
            assert!(!object || raw.len() > MAX_METADATA_BYTES, "{raw} refused");
        }
    }
}
