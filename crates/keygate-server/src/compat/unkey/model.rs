//! The shapes of Unkey's answers about a key, built from keygate's token record: times are
//! Unix milliseconds, `permissions` are the token's scopes, `identity.externalId` is its
//! `externalId`.

use keygate_core::usage::{RateLimit, Refill, RefillInterval};
use keygate_core::ScopeCatalog;
use keygate_store::TokenRecord;
use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::dto::{CreditsView, TokenView};

pub(super) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `KeyResponseData`: what `keys.getKey`, `keys.whoami` and `apis.listKeys` tell of a key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyData {
    key_id: String,
    /// The key's id, which is how every key keygate mints begins.
    start: String,
    enabled: bool,
    created_at: i64,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Box<RawValue>>,
    updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    permissions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<CreditsData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<RatelimitData>,
}

impl KeyData {
    /// From the native view of the token (`service::tokens::view`), whose credits count what
    /// this node holds of them unspent.
    pub(super) fn of(v: TokenView) -> Self {
        Self {
            start: v.id.clone(),
            key_id: v.id,
            enabled: v.enabled,
            created_at: ms(v.created_at),
            name: v.name,
            meta: v.metadata,
            updated_at: ms(v.updated_at),
            last_used_at: v.last_used_at.map(ms),
            expires: v.expires_at.map(ms),
            permissions: v.scopes,
            credits: v.credits.as_ref().map(CreditsData::of),
            identity: v.external_id.map(Identity::of),
            ratelimits: v.ratelimits.iter().map(RatelimitData::of).collect(),
        }
    }
}

/// `KeyCreditsData`: `remaining` is always present, `null` for unlimited.
#[derive(Serialize)]
pub(super) struct CreditsData {
    remaining: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refill: Option<RefillData>,
}

impl CreditsData {
    pub(super) fn of(c: &CreditsView) -> Self {
        Self {
            remaining: Some(c.remaining),
            refill: c.refill.as_ref().map(RefillData::of),
        }
    }

    pub(super) fn unlimited() -> Self {
        Self {
            remaining: None,
            refill: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefillData {
    interval: RefillInterval,
    amount: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refill_day: Option<u8>,
}

impl RefillData {
    fn of(r: &Refill) -> Self {
        Self {
            interval: r.interval,
            amount: r.amount,
            refill_day: r.refill_day,
        }
    }
}

/// Unkey's identities are objects of their own; keygate keeps only the external id, which
/// serves as the identity's id as well.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Identity {
    id: String,
    external_id: String,
}

impl Identity {
    pub(super) fn of(external_id: impl Into<String>) -> Self {
        let external_id = external_id.into();
        Self {
            id: external_id.clone(),
            external_id,
        }
    }
}

/// `RatelimitResponse`. A limit is named uniquely per key, so its name is its id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RatelimitData {
    id: String,
    name: String,
    limit: u64,
    duration: u64,
    auto_apply: bool,
}

impl RatelimitData {
    pub(super) fn of(l: &RateLimit) -> Self {
        Self {
            id: l.name.clone(),
            name: l.name.clone(),
            limit: l.limit,
            duration: l.duration_ms,
            auto_apply: l.auto_apply,
        }
    }
}

/// `Permission`: a keygate scope, whose name is its id and its slug.
#[derive(Serialize)]
pub(super) struct Permission {
    id: String,
    name: String,
    slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

pub(super) fn permissions(rec: &TokenRecord, catalog: &ScopeCatalog) -> Vec<Permission> {
    rec.scopes
        .names()
        .into_iter()
        .map(|name| Permission {
            description: catalog
                .entries()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| e.description.clone()),
            id: name.clone(),
            slug: name.clone(),
            name,
        })
        .collect()
}

/// `{keyId, key}`: a new key, shown this once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewKey {
    pub key_id: String,
    #[serde(serialize_with = "crate::reveal::secret")]
    pub key: secrecy::SecretString,
}

impl NewKey {
    pub(super) fn of(id: &keygate_core::TokenId, plain: &keygate_core::PlainToken) -> Self {
        Self {
            key_id: id.to_string(),
            key: plain.expose().into(),
        }
    }
}
