//! Which addresses a sweep may probe: inside `SWEEP_ALLOWED_NETWORKS`, and never one of the
//! addresses no configuration can allow.
//!
//! The sweeper runs with the function's network position inside a VPC, so a probe to the wrong
//! address is a request made with that position: the instance metadata service (169.254.169.254,
//! which hands out credentials on EC2), "this host" (0.0.0.0/8: connecting to 0.0.0.0 reaches
//! the local machine on Linux), multicast and broadcast. These are refused whatever the list says,
//! so `0.0.0.0/0` means "any unicast address" and never more. Loopback is refused too unless a
//! listed network lies inside 127.0.0.0/8 (local tests list `127.0.0.0/8`): a wide network such
//! as `0.0.0.0/0` does not open the sandbox's own services. IPv6 targets are refused: the
//! allow-list is IPv4 only.

use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: u32,
    mask: u32,
}

impl Network {
    pub fn parse(text: &str) -> Option<Self> {
        let (ip, bits) = text.trim().split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        Self::new(ip, bits)
    }

    const fn new(ip: Ipv4Addr, bits: u32) -> Option<Self> {
        if bits > 32 {
            return None;
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        Some(Self {
            base: ip.to_bits() & mask,
            mask,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.contains_v4(v4),
            IpAddr::V6(_) => false,
        }
    }

    fn contains_v4(&self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask == self.base
    }

    /// This network lies wholly inside `outer`.
    fn is_inside(&self, outer: &Network) -> bool {
        self.mask & outer.mask == outer.mask && self.base & outer.mask == outer.base
    }
}

const fn net(a: u8, b: u8, c: u8, d: u8, bits: u32) -> Network {
    match Network::new(Ipv4Addr::new(a, b, c, d), bits) {
        Some(n) => n,
        None => panic!("constant network"),
    }
}

/// Never probed, whatever `SWEEP_ALLOWED_NETWORKS` says.
pub const NEVER: [(Network, &str); 4] = [
    (
        net(169, 254, 0, 0, 16),
        "link-local (instance metadata service)",
    ),
    (net(0, 0, 0, 0, 8), "this host (0.0.0.0/8)"),
    (net(224, 0, 0, 0, 4), "multicast"),
    (net(255, 255, 255, 255, 32), "broadcast"),
];

const LOOPBACK: Network = net(127, 0, 0, 0, 8);

/// Private networks: where backends in a VPC live.
pub const DEFAULT_ALLOWED_NETWORKS: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10";

/// The networks a sweep may probe, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedNetworks {
    networks: Vec<Network>,
    /// A listed network lies inside 127.0.0.0/8.
    loopback_listed: bool,
}

impl AllowedNetworks {
    /// Comma-separated `a.b.c.d/n`; `None` if any entry is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let networks = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Network::parse)
            .collect::<Option<Vec<_>>>()?;
        let loopback_listed = networks.iter().any(|n| n.is_inside(&LOOPBACK));
        Some(Self {
            networks,
            loopback_listed,
        })
    }

    /// Why `ip` may not be probed, or `None` if it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let IpAddr::V4(v4) = ip else {
            return Some("IPv6 (only IPv4 networks can be allowed)");
        };
        if let Some((_, why)) = NEVER.iter().find(|(n, _)| n.contains_v4(v4)) {
            return Some(why);
        }
        if LOOPBACK.contains_v4(v4) && !self.loopback_listed {
            return Some("loopback (allowed only when a 127.0.0.0/8 network is listed)");
        }
        if !self.networks.iter().any(|n| n.contains_v4(v4)) {
            return Some("outside SWEEP_ALLOWED_NETWORKS");
        }
        None
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> AllowedNetworks {
        AllowedNetworks::parse(text).unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let n = Network::parse("172.16.0.0/12").unwrap();
        assert!(n.contains("172.31.255.1".parse().unwrap()));
        assert!(!n.contains("172.32.0.1".parse().unwrap()));
        assert!(Network::parse("1.2.3.4").is_none());
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(
            Network::parse("::1/128").is_none(),
            "IPv6 networks are refused"
        );
    }

    #[test]
    fn some_addresses_are_never_probed_whatever_the_configuration() {
        let everything = allowed("0.0.0.0/0");
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "127.0.0.1",
            "127.0.0.9",
            "::1",
            "::ffff:169.254.169.254",
            "fd00::1",
        ] {
            assert!(!everything.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(everything.allows("8.8.8.8".parse().unwrap()));
        assert!(everything.allows("10.1.2.3".parse().unwrap()));
        // Listing link-local explicitly does not open it either.
        assert!(!allowed("169.254.0.0/16").allows("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn loopback_only_when_a_loopback_network_is_listed() {
        assert!(allowed("127.0.0.0/8").allows("127.0.0.9".parse().unwrap()));
        assert!(allowed("127.0.3.0/24").allows("127.0.3.9".parse().unwrap()));
        assert!(!allowed("127.0.3.0/24").allows("127.0.4.9".parse().unwrap()));
        assert!(!allowed("0.0.0.0/1").allows("127.0.0.9".parse().unwrap()));
        let default = allowed(DEFAULT_ALLOWED_NETWORKS);
        assert!(default.allows("10.0.1.5".parse().unwrap()));
        assert!(!default.allows("8.8.8.8".parse().unwrap()));
        assert!(!default.allows("127.0.0.1".parse().unwrap()));
    }
}
