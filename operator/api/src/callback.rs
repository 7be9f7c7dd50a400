//! Result callbacks (`spec.callback`, Judge0's `callback_url`): which destinations may be
//! called. A callback is a request the system makes on a user's behalf, so it must not reach
//! what the user cannot (Judge0's CVE-2024-29021 was such an SSRF): loopback, link-local,
//! private, shared, multicast, documentation and cluster ranges are refused unless the
//! operator lists them; public addresses are admitted only when the policy says `public` or
//! names the host. The address checked is the one connected to (after DNS), so a name that
//! resolves to a private address is refused too.
//!
//! The policy is a comma-separated list: `public`, CIDRs (`127.0.0.1/32`, `fd00::/8`), host
//! names (`hooks.example.com`). Empty: callbacks are off.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Tries per callback, as Judge0 (`CALLBACKS_MAX_TRIES`).
pub const MAX_TRIES: u32 = 3;
/// Timeout of one try in seconds, as Judge0 (`CALLBACKS_TIMEOUT`).
pub const TIMEOUT_SECS: u64 = 5;
/// Longest callback URL.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Public,
    Net { addr: IpAddr, prefix: u8 },
    Host(String),
}

/// Which callback destinations are admitted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Why a callback destination is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackError(pub String);

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallbackError {}

/// A parsed callback URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub url: url::Url,
    /// The host as written (a name, or an address without brackets).
    pub host: String,
    pub port: u16,
    /// Set when the host is an address literal.
    pub ip: Option<IpAddr>,
}

impl Policy {
    /// Parse `public, 127.0.0.1/32, hooks.example.com`.
    pub fn parse(list: &str) -> Result<Policy, String> {
        let mut rules = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("public") {
                rules.push(Rule::Public);
            } else if let Some((a, p)) = item.split_once('/') {
                let addr: IpAddr = a.parse().map_err(|_| format!("{item:?} is not a CIDR"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix: u8 =
                    p.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("{item:?} is not a CIDR"))?;
                rules.push(Rule::Net { addr, prefix });
            } else if let Ok(addr) = item.parse::<IpAddr>() {
                rules.push(Rule::Net { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } });
            } else if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                rules.push(Rule::Host(item.to_ascii_lowercase()));
            } else {
                return Err(format!("{item:?} is neither `public`, a CIDR nor a host name"));
            }
        }
        Ok(Policy { rules })
    }

    /// No destination at all is admitted.
    pub fn is_off(&self) -> bool {
        self.rules.is_empty()
    }

    /// May a connection to `ip`, for a URL naming `host`, be made?
    pub fn admits(&self, host: &str, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.rules.iter().any(|r| matches!(r, Rule::Net { addr, prefix } if contains(*addr, *prefix, ip)))
        {
            return true;
        }
        if is_restricted(ip) {
            return false;
        }
        let host = host.to_ascii_lowercase();
        self.rules.iter().any(|r| match r {
            Rule::Public => true,
            Rule::Host(h) => *h == host,
            Rule::Net { .. } => false,
        })
    }

    /// Check a URL before any name is resolved: its form, and its address when it is a
    /// literal. A name is checked again, by [`Policy::admits`], for each address it resolves
    /// to.
    pub fn check_url(&self, text: &str) -> Result<Target, CallbackError> {
        let bad = |why: &str| Err(CallbackError(format!("callback URL {text:?} is not allowed: {why}")));
        if self.is_off() {
            return bad("callbacks are not enabled on this server");
        }
        if text.len() > MAX_URL_LEN {
            return bad("it is longer than 2048 bytes");
        }
        let url = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => return bad(&format!("it is not a URL ({e})")),
        };
        if url.scheme() != "http" && url.scheme() != "https" {
            return bad("only http and https are called");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad("it carries credentials");
        }
        let (host, ip) = match url.host() {
            Some(url::Host::Domain(d)) => (d.trim_end_matches('.').to_string(), None),
            Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
            Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
            None => return bad("it has no host"),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        if let Some(ip) = ip {
            if !self.admits(&host, ip) {
                return bad("its address is not admitted by the server's callback allow-list");
            }
        } else if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost")
        {
            if !self.admits(&host, IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                return bad("its address is not admitted by the server's callback allow-list");
            }
        } else if !self.rules.iter().any(|r| matches!(r, Rule::Public | Rule::Net { .. }))
            && !self.rules.iter().any(|r| matches!(r, Rule::Host(h) if h.eq_ignore_ascii_case(&host)))
        {
            return bad("its host is not admitted by the server's callback allow-list");
        }
        Ok(Target { url, host, port, ip })
    }
}

/// IPv4-mapped and NAT64 IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                    let o = v6.octets();
                    IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
                } else {
                    ip
                }
            }
        },
        v4 => v4,
    }
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (canonical(net), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Not a public unicast address: loopback, unspecified, private, shared (CGNAT), link-local,
/// multicast, broadcast, reserved, documentation, benchmarking, unique-local (and so every
/// cluster pod or service range, which are private).
pub fn is_restricted(ip: IpAddr) -> bool {
    const V4: &[(Ipv4Addr, u8)] = &[
        (Ipv4Addr::new(0, 0, 0, 0), 8),
        (Ipv4Addr::new(10, 0, 0, 0), 8),
        (Ipv4Addr::new(100, 64, 0, 0), 10),
        (Ipv4Addr::new(127, 0, 0, 0), 8),
        (Ipv4Addr::new(169, 254, 0, 0), 16),
        (Ipv4Addr::new(172, 16, 0, 0), 12),
        (Ipv4Addr::new(192, 0, 0, 0), 24),
        (Ipv4Addr::new(192, 0, 2, 0), 24),
        (Ipv4Addr::new(192, 88, 99, 0), 24),
        (Ipv4Addr::new(192, 168, 0, 0), 16),
        (Ipv4Addr::new(198, 18, 0, 0), 15),
        (Ipv4Addr::new(198, 51, 100, 0), 24),
        (Ipv4Addr::new(203, 0, 113, 0), 24),
        (Ipv4Addr::new(224, 0, 0, 0), 4),
        (Ipv4Addr::new(240, 0, 0, 0), 4),
    ];
    const V6: &[(Ipv6Addr, u8)] = &[
        (Ipv6Addr::UNSPECIFIED, 128),
        (Ipv6Addr::LOCALHOST, 128),
        (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64),
        (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32),
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
    ];
    match canonical(ip) {
        ip @ IpAddr::V4(_) => V4.iter().any(|(n, p)| contains(IpAddr::V4(*n), *p, ip)),
        ip @ IpAddr::V6(_) => V6.iter().any(|(n, p)| contains(IpAddr::V6(*n), *p, ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges_are_refused_unless_listed() {
        let public = Policy::parse("public").unwrap();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "224.0.0.1",
        ] {
            assert!(!public.admits("h", ip(a)), "{a}");
        }
        assert!(public.admits("h", ip("93.184.216.34")));
        assert!(public.admits("h", ip("2606:4700::1")));
        let local = Policy::parse("127.0.0.1/32").unwrap();
        assert!(local.admits("x", ip("127.0.0.1")));
        assert!(local.admits("x", ip("::ffff:127.0.0.1")));
        assert!(!local.admits("x", ip("127.0.0.2")));
        assert!(!local.admits("x", ip("93.184.216.34")), "public is not admitted unless said");
        let host = Policy::parse("hooks.example.com").unwrap();
        assert!(host.admits("HOOKS.example.com", ip("93.184.216.34")));
        assert!(
            !host.admits("hooks.example.com", ip("10.0.0.1")),
            "a listed name resolving to a private address"
        );
        assert!(!host.admits("other.example.com", ip("93.184.216.34")));
    }

    #[test]
    fn urls_are_checked_before_resolution() {
        let p = Policy::parse("public, 127.0.0.1/32").unwrap();
        assert_eq!(p.check_url("http://127.0.0.1:9000/cb").unwrap().port, 9000);
        assert!(p.check_url("http://localhost.:1/").is_ok(), "localhost is 127.0.0.1, which is listed");
        let p = Policy::parse("public").unwrap();
        for bad in [
            "ftp://127.0.0.1/x",
            "http://user:pw@127.0.0.1/",
            "http://10.0.0.1/",
            "http://[::1]:80/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost.:1/",
            "not a url",
            "http://0x7f000002/",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
        assert!(Policy::parse("")
            .unwrap()
            .check_url("http://127.0.0.1/")
            .unwrap_err()
            .0
            .contains("not enabled"));
        let only = Policy::parse("10.0.0.0/8").unwrap();
        assert!(only.check_url("http://hooks.example.com/").is_ok(), "a name is judged by its addresses");
        let named = Policy::parse("hooks.example.com").unwrap();
        assert!(named.check_url("http://evil.example.com/").is_err());
        assert!(Policy::parse("10.0.0.0/33").is_err());
        assert!(Policy::parse("bad host!").is_err());
    }
}
