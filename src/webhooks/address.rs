//! Where a webhook may be sent: not to this machine or its private
//! networks (so a webhook cannot be aimed at internal services), unless a
//! setting allows it. Checked when an endpoint is saved (its URL) and
//! again at every connection (the addresses its name resolves to, which
//! may have changed since), and redirects are never followed.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is loopback, private, link-local, shared (CGNAT),
/// unspecified, multicast, broadcast, documentation, benchmarking or
/// reserved: anything but a public unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let first = segments[0];
    // 6to4 (2002::/16) carries an IPv4 address that may be internal.
    let six_to_four = Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2]));
    ip.is_loopback()
        || segments[..6] == [0; 6] // IPv4-compatible (::a.b.c.d, deprecated)
        || segments[..6] == [0, 0, 0, 0, 0xffff, 0] // IPv4-translated (::ffff:0:a.b.c.d)
        || (first == 0x2002 && is_internal_v4(six_to_four))
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 of any IPv4
}

/// Why a host is refused, if it is: a name of this machine, or an
/// internal address written out.
pub fn refusal(host: &url::Host<&str>) -> Option<String> {
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"))
                .then(|| format!("`{name}` is this machine"))
        }
        url::Host::Ipv4(ip) => is_internal(IpAddr::V4(*ip))
            .then(|| format!("{ip} is a loopback, private or reserved address")),
        url::Host::Ipv6(ip) => is_internal(IpAddr::V6(*ip))
            .then(|| format!("{ip} is a loopback, private or reserved address")),
    }
}

/// Resolves names as the system does, keeping only public addresses (all
/// of them, with `allow_internal`): a name that resolves to nothing else
/// fails to connect.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_internal: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_internal = self.allow_internal;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| allow_internal || !is_internal(address.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            let addresses: Addrs = Box::new(resolved.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told_from_public_ones() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "2002:a00:1::1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "2002:5db8:d822::1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    /// What a name resolving to this machine gets at connection time
    /// (a name saved as public may resolve to anything later).
    #[tokio::test]
    async fn the_resolver_keeps_no_internal_address_unless_allowed() {
        let name = || "localhost".parse::<Name>().unwrap();
        let guarded = GuardedResolver {
            allow_internal: false,
        };
        let refused = guarded.resolve(name()).await.err().unwrap();
        assert!(
            refused.to_string().contains("no public address"),
            "{refused}"
        );
        let allowed = GuardedResolver {
            allow_internal: true,
        };
        let addresses: Vec<SocketAddr> = allowed.resolve(name()).await.unwrap().collect();
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
        assert!(!addresses.is_empty());
    }

    #[test]
    fn names_of_this_machine_are_refused_and_others_left_to_resolution() {
        assert!(refusal(&url::Host::Domain("localhost")).is_some());
        assert!(refusal(&url::Host::Domain("api.LOCALHOST.")).is_some());
        assert!(refusal(&url::Host::Domain("hooks.example.com")).is_none());
    }
}
