//! Which refusals of a token for its client's address are audited. Every refusal is counted in
//! the token's usage, but an audit entry per refused request would let whoever holds a leaked
//! token write to the database as fast as they can send: one entry per token, address and
//! minute says as much.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use keygate_core::TokenId;

/// Beyond this many remembered pairs the memory starts afresh; at worst a pair is audited a
/// second time within its minute.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct IpRefusals {
    last_minute: Mutex<HashMap<(TokenId, Option<IpAddr>), i64>>,
}

impl IpRefusals {
    /// True for the first refusal of this token from this address in the minute `minute`.
    pub fn first_in_minute(&self, token: &TokenId, ip: Option<IpAddr>, minute: i64) -> bool {
        let mut seen = self.last_minute.lock().expect("ip refusals lock");
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert((token.clone(), ip), minute) != Some(minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_token_address_and_minute() {
        let r = IpRefusals::default();
        let t = TokenId::from_stored("kg_a".into());
        let u = TokenId::from_stored("kg_b".into());
        let a = Some("10.0.0.1".parse().unwrap());
        assert!(r.first_in_minute(&t, a, 7));
        assert!(!r.first_in_minute(&t, a, 7));
        assert!(r.first_in_minute(&u, a, 7));
        assert!(r.first_in_minute(&t, None, 7));
        assert!(r.first_in_minute(&t, a, 8));
    }
}
