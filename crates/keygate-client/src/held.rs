//! The tokens a replica holds: a concurrent map from a token's SHA-256 to what verification
//! reads, filled from snapshot pages and changes. No I/O here, so tests feed it by hand.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use compact_str::CompactString;
use dashmap::DashMap;
use keygate_core::network::AllowList;
use keygate_core::shared_copies::SharedCopies;
use keygate_core::{ScopeSet, TokenHash};

use crate::verification::TokenInfo;
use crate::wire::{Change, ReplicaToken};

/// The map's hasher: a token hash is already uniform, so its first eight bytes are the hash.
/// (SipHash over 32 bytes would cost more than the lookup.)
#[derive(Default)]
pub(crate) struct FirstBytes(u64);

impl Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length (through `write_usize`) and then its bytes.
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*head);
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

pub(crate) type TokenMap = DashMap<TokenHash, Arc<TokenInfo>, BuildHasherDefault<FirstBytes>>;

/// Hands out one shared copy of each tenant id, owner id and scope set (see
/// [`SharedCopies`]). Only the follower task writes tokens, so its locks are not contended.
#[derive(Default)]
pub(crate) struct Interner {
    strings: SharedCopies<str>,
    scopes: SharedCopies<ScopeSet>,
}

/// Why a token from keygate could not be held.
#[derive(Debug, thiserror::Error)]
#[error("token {id}: {reason}")]
pub(crate) struct Unholdable {
    id: String,
    reason: String,
}

impl Interner {
    fn held(&self, t: ReplicaToken) -> Result<(TokenHash, TokenInfo), Unholdable> {
        let scopes =
            ScopeSet::parse(t.scopes.iter().map(String::as_str)).map_err(|e| Unholdable {
                id: t.id.clone(),
                reason: e.to_string(),
            })?;
        let info = TokenInfo {
            tenant_id: self
                .strings
                .of(t.tenant_id.as_str(), || Arc::from(t.tenant_id.as_str())),
            owner_id: self
                .strings
                .of(t.owner_id.as_str(), || Arc::from(t.owner_id.as_str())),
            scopes: self.scopes.of(&scopes, || Arc::new(scopes.clone())),
            id: CompactString::from(t.id),
            name: CompactString::from(t.name),
            enabled: t.enabled,
            expires_at: t.expires_at,
            metadata: t.metadata,
            external_id: t.external_id.map(String::into_boxed_str),
            allowed: (!t.allowed_cidrs.is_empty())
                .then(|| Box::new(AllowList::new(&t.allowed_cidrs))),
            usage_controlled: t.usage_controlled,
        };
        Ok((TokenHash(t.hash), info))
    }
}

/// The map and the interner that fills it.
#[derive(Default)]
pub(crate) struct Held {
    pub map: TokenMap,
    interner: Interner,
}

impl Held {
    /// Inserts or replaces a token; returns its hash. A token keygate sends that this replica
    /// cannot read (a scope it does not parse) is dropped from the map: refusing it is the
    /// fail-closed answer.
    pub fn upsert(&self, token: ReplicaToken) -> Result<TokenHash, Unholdable> {
        let hash = TokenHash(token.hash);
        match self.interner.held(token) {
            Ok((hash, info)) => {
                self.map.insert(hash, Arc::new(info));
                Ok(hash)
            }
            Err(e) => {
                self.map.remove(&hash);
                Err(e)
            }
        }
    }

    /// Applies one change of the stream.
    pub fn apply(&self, change: Change) -> Result<(), Unholdable> {
        match change {
            Change::Upsert { token } => self.upsert(*token).map(drop),
            Change::Delete { hash } => {
                self.map.remove(&TokenHash(hash));
                Ok(())
            }
        }
    }

    /// After a fresh snapshot: forgets every token the snapshot did not name. Each token goes
    /// straight from its old state to its new one (or away), so verifications running meanwhile
    /// see no state keygate never had.
    pub fn keep_only(&self, seen: &HashSet<TokenHash>) {
        self.map.retain(|h, _| seen.contains(h));
    }

    pub fn get(&self, hash: &TokenHash) -> Option<Arc<TokenInfo>> {
        self.map.get(hash).map(|e| e.value().clone())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(hash: u8, tenant: &str, scopes: &[&str]) -> ReplicaToken {
        serde_json::from_value(serde_json::json!({
            "hash": format!("{hash:02x}").repeat(32), "id": format!("kg_{hash}"), "name": "n",
            "tenantId": tenant, "ownerId": "owner", "scopes": scopes, "enabled": true,
        }))
        .unwrap()
    }

    #[test]
    fn tokens_with_the_same_tenant_and_scopes_share_them() {
        let held = Held::default();
        let a = held.upsert(token(1, "acme", &["orders:read"])).unwrap();
        let b = held.upsert(token(2, "acme", &["orders:read"])).unwrap();
        let (a, b) = (held.get(&a).unwrap(), held.get(&b).unwrap());
        assert!(Arc::ptr_eq(&a.tenant_id, &b.tenant_id));
        assert!(Arc::ptr_eq(&a.owner_id, &b.owner_id));
        assert!(Arc::ptr_eq(&a.scopes, &b.scopes));
    }

    #[test]
    fn an_unreadable_upsert_removes_the_old_state() {
        let held = Held::default();
        let hash = held.upsert(token(3, "acme", &["orders:read"])).unwrap();
        assert!(held.upsert(token(3, "acme", &["not a scope!"])).is_err());
        assert!(held.get(&hash).is_none());
    }

    #[test]
    fn keep_only_forgets_what_a_snapshot_did_not_name() {
        let held = Held::default();
        let a = held.upsert(token(4, "t", &[])).unwrap();
        let b = held.upsert(token(5, "t", &[])).unwrap();
        held.keep_only(&HashSet::from([b]));
        assert!(held.get(&a).is_none());
        assert!(held.get(&b).is_some());
    }
}
