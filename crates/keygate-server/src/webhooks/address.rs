//! Where an endpoint may point: http or https, and never a link-local or cloud metadata
//! address (169.254.0.0/16, fe80::/10, fd00:ec2::254) unless the deployment allows them. A
//! literal address is checked when the endpoint is saved and before each attempt; a name is
//! checked on every resolution (`GuardedResolver`), so a name that later resolves to the
//! metadata service is refused too.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Most characters of an endpoint's URL.
pub const MAX_URL_CHARS: usize = 2000;

/// AWS's IPv6 instance metadata address.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Link-local (where the cloud metadata services live) or the IPv6 metadata address.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == AWS_METADATA_V6,
        },
    }
}

/// The URL if an endpoint may have it; else the rule it breaks, naming the field.
pub fn check_url(text: &str, allow_link_local: bool) -> Result<Url, String> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!("url is longer than {MAX_URL_CHARS} characters"));
    }
    let url = Url::parse(text).map_err(|e| format!("url is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url must be http or https, not {:?}", url.scheme()));
    }
    // The URL parser has normalised the host: an address in any notation is written plainly.
    let literal = match url.host_str() {
        None | Some("") => return Err("url has no host".into()),
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok(),
    };
    if let Some(ip) = literal {
        if !allow_link_local && is_link_local(ip) {
            return Err(format!(
                "url names {ip}, a link-local or cloud metadata address, which this deployment \
                 refuses (--webhook-allow-link-local)"
            ));
        }
    }
    Ok(url)
}

/// Resolves names as the system does, then keeps only the addresses an endpoint may reach.
pub struct GuardedResolver {
    pub allow_link_local: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_link_local;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow || !is_link_local(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves only to link-local or cloud metadata addresses, which this \
                     deployment refuses"
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_refused_unless_allowed() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.1.1]/",
        ] {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
        for url in [
            "http://127.0.0.1:9/x",
            "https://example.com/hook",
            "http://[fd00::1]/",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn only_http_and_https_with_a_host() {
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "http://",
        ] {
            assert!(check_url(url, true).is_err(), "{url}");
        }
    }
}
