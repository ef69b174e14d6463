//! Tokens a test makes up itself, without asking a server: fresh ones, ones of another prefix,
//! broken ones.

/// A fresh native token, as the server would mint it.
pub fn fresh_token() -> String {
    token_with_prefix("kg")
}

/// A native token of another prefix, as `keygate gen-token --token-prefix P` prints.
pub fn token_with_prefix(prefix: &str) -> String {
    let prefix = keygate_core::TokenPrefix::parse(prefix).unwrap();
    keygate_core::PlainToken::mint(&prefix)
        .1
        .expose()
        .to_owned()
}

/// The same token with its last character changed: still well-formed, but its checksum no longer
/// matches, so the server refuses it without a lookup.
pub fn bad_checksum(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

/// The `id` of every item of a JSON array.
pub fn ids(items: &serde_json::Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
