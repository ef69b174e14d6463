//! What a `CheckRequest` asks: the token of the original request, the scopes, permission query
//! and cost its route's `context_extensions` name, and the client's address as Envoy saw it.

use std::collections::HashMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use keygate_core::credentials::{extract_from_authorization, extract_from_query, Credential};
use keygate_core::network::canonical_ip;

/// As many as the HTTP surfaces take.
const MAX_WANTED_SCOPES: usize = 100;

/// The parts of a `CheckRequest` keygate reads; everything else Envoy sends is ignored.
#[derive(Default)]
pub struct Asked {
    http: Option<HttpRequest>,
    extensions: HashMap<String, String>,
    pub ip: Option<IpAddr>,
}

impl Asked {
    pub fn new(req: CheckRequest) -> Self {
        let Some(attributes) = req.attributes else {
            return Self::default();
        };
        let ip = attributes
            .source
            .and_then(|peer| peer.address)
            .and_then(|a| match a.address {
                Some(Address::SocketAddress(s)) => s.address.parse().ok(),
                _ => None,
            })
            // An IPv4 client of a dual-stack listener, `::ffff:a.b.c.d`, is `a.b.c.d`, as on
            // the HTTP surfaces.
            .map(canonical_ip);
        Self {
            http: attributes.request.and_then(|r| r.http),
            extensions: attributes.context_extensions,
            ip,
        }
    }

    /// The token in the `Authorization` header, or else (when allowed) in the query string of
    /// the path, read as the HTTP surfaces read them.
    pub fn credential(&self, allow_query: bool) -> Credential<'_> {
        let Some(http) = &self.http else {
            return Credential::Missing;
        };
        if let Some(value) = authorization(http) {
            return extract_from_authorization(value);
        }
        match (allow_query, http.path.split_once('?')) {
            (true, Some((_, query))) => extract_from_query(query),
            _ => Credential::Missing,
        }
    }

    /// The route's `scopes`, comma-separated.
    pub fn scopes(&self) -> Vec<&str> {
        let mut scopes: Vec<&str> = self
            .extension("scopes")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        scopes.truncate(MAX_WANTED_SCOPES);
        scopes
    }

    pub fn extension(&self, key: &str) -> Option<&str> {
        self.extensions.get(key).map(String::as_str)
    }

    /// Whether the route asks for the token to be kept from the upstream.
    pub fn strip_token(&self) -> bool {
        self.extension("strip_token")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// Envoy sends headers as a map with lower-case names, or, with `encode_raw_headers`, as a list
/// of raw values.
fn authorization(http: &HttpRequest) -> Option<&[u8]> {
    if let Some(v) = http.headers.get("authorization") {
        return Some(v.as_bytes());
    }
    let raw = http.header_map.as_ref()?;
    raw.headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case("authorization"))
        .map(|h| {
            if h.raw_value.is_empty() {
                h.value.as_bytes()
            } else {
                h.raw_value.as_slice()
            }
        })
}
