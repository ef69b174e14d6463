//! Networks a token may be used from (`allowedCidrs`), and the client address a request came
//! from when proxies stand in front of keygate.
//!
//! An IPv4 client that reaches a dual-stack socket shows up as an IPv4-mapped IPv6 address
//! (`::ffff:10.1.2.3`); it is the same client as `10.1.2.3`, so addresses and networks are
//! compared in their IPv4 form whenever they have one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many networks one token's allow-list may hold.
pub const MAX_ALLOWED_CIDRS: usize = 100;

/// One network in CIDR notation, e.g. `10.0.0.0/8` or `2001:db8::/32`; a bare address is the
/// network of that address alone. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), and an
/// IPv4-mapped IPv6 network is kept as the IPv4 network it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network in CIDR notation (such as 10.0.0.0/8 or 2001:db8::/32) or an IP address")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(s.chars().take(64).collect());
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(s.parse::<IpAddr>().map_err(|_| bad())?),
        };
        Ok(Cidr(canonical(net).trunc()))
    }
}

/// `::ffff:a.b.c.d/n` with n ≥ 96 is the IPv4 network `a.b.c.d/(n-96)`.
fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

/// The address in the form networks are compared in: IPv4 when it has an IPv4 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical_ip(ip))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowedCidrs: at most {MAX_ALLOWED_CIDRS} networks, not {0}")]
pub struct TooManyCidrs(pub usize);

/// Refuses an allow-list longer than [`MAX_ALLOWED_CIDRS`]. Duplicates are removed, keeping the
/// first, so what is stored is what is checked.
pub fn check_allowed_cidrs(cidrs: &mut Vec<Cidr>) -> Result<(), TooManyCidrs> {
    let mut seen = std::collections::HashSet::with_capacity(cidrs.len());
    cidrs.retain(|c| seen.insert(*c));
    if cidrs.len() > MAX_ALLOWED_CIDRS {
        return Err(TooManyCidrs(cidrs.len()));
    }
    Ok(())
}

/// A token's allow-list in the form the hot path checks: each network as an integer and a mask,
/// so a check of a hundred networks is a hundred AND-and-compare steps with no branching on the
/// address family inside the loop. Empty: usable from anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl AllowList {
    pub fn new(cidrs: &[Cidr]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            match c.0 {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        Self {
            v4: v4.into(),
            v6: v6.into(),
        }
    }

    /// True when the token may be used from anywhere.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether a request from `ip` may use the token. An unknown address is allowed only by an
    /// empty list: a token bound to networks fails closed.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.is_empty() {
            return true;
        }
        match ip.map(canonical_ip) {
            Some(IpAddr::V4(a)) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            Some(IpAddr::V6(a)) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
            None => false,
        }
    }
}

/// The client address of a request that came through proxies: walking `X-Forwarded-For` from
/// the right (the hop nearest keygate; `hops_nearest_first` yields the entries in that order),
/// every address that belongs to a trusted proxy is skipped, and the first one that does not is
/// the client. Addresses left of it were written by the client itself and prove nothing.
/// `peer` is the connection's address; if it is not a trusted proxy, the header is ignored
/// altogether. At most `max_hops` entries are looked at, so a huge header costs a bounded
/// amount of work; if they are all trusted proxies, the left-most one looked at is taken.
pub fn forwarded_client<'a>(
    peer: IpAddr,
    hops_nearest_first: impl Iterator<Item = &'a str>,
    is_trusted: impl Fn(IpAddr) -> bool,
    max_hops: usize,
) -> IpAddr {
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in hops_nearest_first.take(max_hops) {
        let Some(ip) = parse_hop(hop.trim()) else {
            // A hop that is not an address (a typo, `unknown`, an obfuscated name): nothing to
            // its left can be trusted either.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(cidrs: &[&str]) -> AllowList {
        AllowList::new(&cidrs.iter().map(|c| cidr(c)).collect::<Vec<_>>())
    }

    #[test]
    fn networks_and_bare_addresses_are_read_and_normalised() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(cidr("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::ffff:192.0.2.7").to_string(), "192.0.2.7/32");
    }

    #[test]
    fn malformed_networks_are_refused_by_name() {
        for bad in [
            "10.0.0.300/8",
            "10.0.0.0/33",
            "2001:db8::/129",
            "",
            "example.com",
            "10.0.0.0/",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn an_empty_list_allows_everyone_even_unknown_addresses() {
        let l = AllowList::default();
        assert!(l.allows(Some(ip("203.0.113.9"))));
        assert!(l.allows(None));
    }

    #[test]
    fn a_list_allows_its_networks_only_and_fails_closed() {
        let l = list(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        assert!(l.allows(Some(ip("10.255.0.1"))));
        assert!(l.allows(Some(ip("192.0.2.7"))));
        assert!(!l.allows(Some(ip("192.0.2.8"))));
        assert!(!l.allows(Some(ip("11.0.0.1"))));
        assert!(l.allows(Some(ip("2001:db8:ffff::1"))));
        assert!(!l.allows(Some(ip("2001:db9::1"))));
        assert!(!l.allows(None));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_selves() {
        let l = list(&["127.0.0.2/32"]);
        assert!(l.allows(Some(ip("::ffff:127.0.0.2"))));
        assert!(!l.allows(Some(ip("::ffff:127.0.0.3"))));
        // Not `::1`: the IPv6 loopback is another address than 127.0.0.1.
        assert!(!list(&["127.0.0.1"]).allows(Some(ip("::1"))));
        assert!(list(&["::1"]).allows(Some(ip("::1"))));
        let mapped = list(&["::ffff:127.0.0.0/104"]);
        assert!(mapped.allows(Some(ip("127.9.9.9"))));
    }

    #[test]
    fn the_whole_address_space_can_be_allowed() {
        assert!(list(&["0.0.0.0/0"]).allows(Some(ip("203.0.113.1"))));
        assert!(!list(&["0.0.0.0/0"]).allows(Some(ip("2001:db8::1"))));
        assert!(list(&["::/0"]).allows(Some(ip("2001:db8::1"))));
    }

    #[test]
    fn lists_are_bounded_and_deduplicated() {
        let mut cidrs: Vec<Cidr> = (0..=MAX_ALLOWED_CIDRS)
            .map(|i| cidr(&format!("10.0.{i}.0/24")))
            .collect();
        assert_eq!(check_allowed_cidrs(&mut cidrs), Err(TooManyCidrs(101)));
        let mut dup = vec![cidr("10.0.0.0/8"), cidr("10.1.0.0/8"), cidr("::1")];
        check_allowed_cidrs(&mut dup).unwrap();
        assert_eq!(dup, [cidr("10.0.0.0/8"), cidr("::1")]);
    }

    fn trusted(nets: &[&str]) -> impl Fn(IpAddr) -> bool {
        let l = list(nets);
        move |ip| l.allows(Some(ip))
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        // The client wrote 6.6.6.6 itself; the proxy appended the address it saw.
        assert_eq!(
            forwarded_client(
                peer,
                "6.6.6.6, 203.0.113.5, 10.0.0.7".rsplit(','),
                &proxies,
                20
            ),
            ip("203.0.113.5")
        );
        assert_eq!(
            forwarded_client(peer, "203.0.113.5".rsplit(','), &proxies, 20),
            ip("203.0.113.5")
        );
        assert_eq!(
            forwarded_client(
                peer,
                "[2001:db8::5]:443,10.0.0.9:80".rsplit(','),
                &proxies,
                20
            ),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        assert_eq!(
            forwarded_client(peer, "10.0.0.5, 1.2.3.4".rsplit(','), &proxies, 20),
            peer
        );
    }

    #[test]
    fn garbage_stops_the_walk_and_huge_chains_are_bounded() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(
            forwarded_client(peer, "1.2.3.4, unknown, 10.0.0.3".rsplit(','), &proxies, 20),
            ip("10.0.0.3")
        );
        let chain = vec!["10.0.0.2"; 10_000].join(",");
        let chain = format!("1.2.3.4,{chain}");
        assert_eq!(
            forwarded_client(peer, chain.rsplit(','), &proxies, 20),
            ip("10.0.0.2")
        );
        assert_eq!(forwarded_client(peer, "".rsplit(','), &proxies, 20), peer);
    }
}
