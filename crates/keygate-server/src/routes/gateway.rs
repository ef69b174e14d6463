//! What a gateway asks of a forward-auth check (scopes, a permission query, a cost, whether the
//! token is to be stripped), and the header that has an Envoy strip the token.
//!
//! nginx, Caddy and Traefik call one fixed auth URL, so its query is the gateway's own. Envoy's
//! HTTP ext_authz appends the original path and query to its `path_prefix`: on
//! `/api/v1/auth/...` the query is the client's, and may use the same names for other things,
//! so there the gateway speaks through `X-Keygate-*` request headers only (Envoy's
//! `headers_to_add`, which replace any a client sent). Headers are read on both shapes, because
//! what a client could add there only makes the check stricter: more scopes, one more
//! permission query that must also hold, a higher cost, its own token stripped.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use keygate_core::permission::Query;

use crate::auth::gateway;
use crate::error::{ApiError, ApiResult};

/// The forward-auth URL without a suffix.
pub const AUTH_PATH: &str = "/api/v1/auth";
/// Envoy's HTTP ext_authz removes the request headers this answer header names (comma-separated)
/// before it forwards the request.
const ENVOY_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");

const MAX_WANTED_SCOPES: usize = 100;

/// What the gateway asks, from both sources together.
pub struct GatewayAsks {
    pub scopes: Vec<String>,
    pub permissions: Option<Query>,
    pub cost: u64,
    pub strip_token: bool,
}

#[derive(Default)]
struct Raw {
    scopes: Vec<String>,
    permissions: Vec<String>,
    costs: Vec<String>,
    strip: Vec<String>,
}

impl Raw {
    fn add(&mut self, name: &str, value: &str) {
        match name {
            "scope" => self.scopes.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "permissions" => self.permissions.push(value.to_owned()),
            "cost" => self.costs.push(value.to_owned()),
            "strip_token" => self.strip.push(value.to_owned()),
            _ => {}
        }
    }
}

/// The gateway's parameters of this forward-auth request; a malformed one is refused (400).
pub fn gateway_asks(parts: &Parts) -> ApiResult<GatewayAsks> {
    let mut raw = Raw::default();
    if parts.uri.path() == AUTH_PATH {
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            raw.add(&k, &v);
        }
    }
    for (header, name) in [
        ("x-keygate-scope", "scope"),
        ("x-keygate-permissions", "permissions"),
        ("x-keygate-cost", "cost"),
        ("x-keygate-strip-token", "strip_token"),
    ] {
        for v in parts.headers.get_all(header) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::BadRequest(format!("{header} is not text")))?;
            raw.add(name, v);
        }
    }
    // Refused rather than cut short: a scope dropped from the list would no longer be required.
    if raw.scopes.len() > MAX_WANTED_SCOPES {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_WANTED_SCOPES} scopes may be asked for"
        )));
    }
    let mut queries = raw
        .permissions
        .iter()
        .filter_map(|t| gateway::permissions(Some(t.as_str())).transpose())
        .collect::<ApiResult<Vec<_>>>()?;
    let permissions = match queries.len() {
        0 | 1 => queries.pop(),
        _ => Some(Query::And(queries)),
    };
    let mut cost = None;
    for c in &raw.costs {
        let c = gateway::cost(Some(c.trim()))?;
        cost = Some(cost.map_or(c, |was: u64| was.max(c)));
    }
    let mut strip_token = false;
    for s in &raw.strip {
        strip_token |= match s.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(ApiError::BadRequest(
                    "strip_token must be true or false".into(),
                ))
            }
        };
    }
    Ok(GatewayAsks {
        scopes: raw.scopes,
        permissions,
        cost: cost.unwrap_or(1),
        strip_token,
    })
}

/// `X-Envoy-Auth-Headers-To-Remove: authorization` on a 200: Envoy's HTTP ext_authz then removes
/// the token from the request it forwards.
pub fn strip_token(headers: &mut HeaderMap) {
    headers.insert(ENVOY_REMOVE, HeaderValue::from_static("authorization"));
}
