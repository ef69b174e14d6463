//! The JSON keygate sends and receives on the replication endpoints and on `POST /api/v1/verify`.
//! Unknown fields are ignored, so that a newer keygate can add fields without breaking older
//! replicas.

use keygate_core::network::Cidr;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// A token as the replication endpoints describe it: everything a verification reads, and no
/// secret (the hash of a 256-bit secret is useless for guessing it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplicaToken {
    #[serde(deserialize_with = "hex_hash")]
    pub hash: [u8; 32],
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub owner_id: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub allowed_cidrs: Vec<Cidr>,
    #[serde(default)]
    pub metadata: Option<Box<RawValue>>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub usage_controlled: bool,
}

/// One page of `GET /api/v1/replication/snapshot`.
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotPage {
    pub cursor: String,
    pub prefix: String,
    pub tokens: Vec<ReplicaToken>,
    #[serde(default)]
    pub next: Option<PageKey>,
}

/// The `next` of a snapshot page, passed back as `after=`. The protocol sends a number; a
/// string is taken as well, so the key can become opaque without breaking replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum PageKey {
    Number(u64),
    Text(String),
}

impl PageKey {
    pub fn to_query_value(&self) -> String {
        match self {
            PageKey::Number(n) => n.to_string(),
            PageKey::Text(s) => s.clone(),
        }
    }
}

/// One answer of `GET /api/v1/replication/changes`. Its `more` is not read: the follower asks
/// again at once after every answer anyway.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangesPage {
    pub cursor: String,
    pub changes: Vec<Change>,
}

/// One change of the stream. Read through [`ChangeRecord`]: serde's internally tagged enums
/// buffer their content, and a buffered `metadata` cannot become a `RawValue`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "ChangeRecord")]
pub(crate) enum Change {
    /// The token's current state: insert or replace.
    Upsert { token: Box<ReplicaToken> },
    /// The token is gone.
    Delete { hash: [u8; 32] },
}

#[derive(Deserialize)]
struct ChangeRecord {
    op: String,
    #[serde(default)]
    token: Option<ReplicaToken>,
    #[serde(default, deserialize_with = "optional_hex_hash")]
    hash: Option<[u8; 32]>,
}

impl TryFrom<ChangeRecord> for Change {
    type Error = String;

    fn try_from(r: ChangeRecord) -> Result<Self, String> {
        match (r.op.as_str(), r.token, r.hash) {
            ("upsert", Some(token), _) => Ok(Change::Upsert {
                token: Box::new(token),
            }),
            ("delete", _, Some(hash)) => Ok(Change::Delete { hash }),
            (op, ..) => Err(format!("a change with op {op:?} and without its field")),
        }
    }
}

/// keygate's error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: String,
}

/// The body of a delegated `POST /api/v1/verify`.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyBody<'a> {
    pub token: &'a str,
    pub scopes: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<VerifyCost>,
}

#[derive(Debug, Serialize)]
pub(crate) struct VerifyCost {
    pub cost: u64,
}

/// keygate's answer to a verification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyAnswer {
    pub code: String,
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<Box<RawValue>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub missing_scopes: Vec<String>,
    #[serde(default)]
    pub credits: Option<Remaining>,
    #[serde(default)]
    pub ratelimits: Vec<LimitSeen>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Remaining {
    pub remaining: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LimitSeen {
    /// Unix milliseconds when the limit is whole again.
    #[serde(default)]
    pub reset: i64,
    #[serde(default)]
    pub exceeded: bool,
}

fn hex_hash<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse_hex_hash(&text)
        .ok_or_else(|| serde::de::Error::custom("a token hash must be 64 hexadecimal digits"))
}

fn optional_hex_hash<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
    hex_hash(d).map(Some)
}

pub(crate) fn parse_hex_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_exactly_64_hex_digits() {
        let hex = "00ff".repeat(16);
        let parsed = parse_hex_hash(&hex).unwrap();
        assert_eq!(parsed[0], 0x00);
        assert_eq!(parsed[1], 0xff);
        assert_eq!(parse_hex_hash(&hex.to_uppercase()), Some(parsed));
        assert_eq!(parse_hex_hash(&hex[..62]), None);
        assert_eq!(parse_hex_hash(&format!("{}zz", &hex[..62])), None);
    }

    #[test]
    fn a_change_is_told_apart_by_its_op() {
        let hash = "ab".repeat(32);
        // Metadata that is an object: it must survive the parsing of the change as raw JSON.
        let page: ChangesPage = serde_json::from_str(&format!(
            r#"{{"cursor":"c2","more":true,"changes":[
                {{"op":"delete","hash":"{hash}"}},
                {{"op":"upsert","token":{{"hash":"{hash}","id":"kg_x","name":"n","tenantId":"t",
                  "ownerId":"o","scopes":["a:b"],"enabled":true,"expiresAt":null,
                  "allowedCidrs":["10.0.0.0/8"],"metadata":{{"a":[1]}},"externalId":null,
                  "usageControlled":false,"someFutureField":1}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(page.cursor, "c2");
        assert!(matches!(page.changes[0], Change::Delete { hash } if hash == [0xab; 32]));
        let Change::Upsert { token } = &page.changes[1] else {
            panic!("an upsert")
        };
        assert_eq!(token.allowed_cidrs.len(), 1);
        assert_eq!(token.metadata.as_ref().unwrap().get(), r#"{"a":[1]}"#);
    }
}
