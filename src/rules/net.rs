//! The `url` rule: `schemes = ["https"]`, `hosts = ["*.example.com"]`, `deny = ["private",
//! "loopback", "link-local", "metadata"]`. The value is parsed as a URL (WHATWG, as
//! browsers and most HTTP clients do); a host that is an address in any form (decimal,
//! hex, octal or shortened IPv4, IPv6 with an IPv4 inside it, a trailing dot) is judged
//! as that address; a host name is judged as a name, never looked up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRule {
    schemes: Vec<String>,
    /// Lowercase names (`example.com`), subdomain patterns (`*.example.com`) or addresses.
    hosts: Vec<String>,
    deny: Vec<Deny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deny {
    Private,
    Loopback,
    LinkLocal,
    Metadata,
}

const DENY_NAMES: [(&str, Deny); 4] = [
    ("private", Deny::Private),
    ("loopback", Deny::Loopback),
    ("link-local", Deny::LinkLocal),
    ("metadata", Deny::Metadata),
];

/// Cloud instance metadata services, by address and by name.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, …
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(169, 254, 169, 123), // AWS time sync
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
];

impl UrlRule {
    pub fn parse(table: &Map<String, Value>) -> Result<Self, String> {
        super::unknown("url", table, &["schemes", "hosts", "deny"])?;
        let schemes: Vec<String> = super::strings("url", table, "schemes")?
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let hosts: Vec<String> = super::strings("url", table, "hosts")?
            .into_iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if let Some(bad) = hosts.iter().find(|h| !host_pattern(h)) {
            return Err(format!(
                "`url.hosts`: `{bad}` is not a host name, a `*.` pattern or an address"
            ));
        }
        let mut deny = Vec::new();
        for name in super::strings("url", table, "deny")? {
            match DENY_NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, d)) => deny.push(*d),
                None => {
                    return Err(format!(
                        "`url.deny`: `{name}` is not one of `private`, `loopback`, `link-local`, `metadata`"
                    ));
                }
            }
        }
        if schemes.is_empty() && hosts.is_empty() && deny.is_empty() {
            return Err("`url` needs `schemes`, `hosts` or `deny`".into());
        }
        Ok(Self {
            schemes,
            hosts,
            deny,
        })
    }

    pub fn check(&self, value: &str) -> Result<(), String> {
        if super::has_control(value) {
            return Err("holds a control character".into());
        }
        let url = Url::parse(value.trim()).map_err(|_| "is not a URL".to_string())?;
        if !self.schemes.is_empty() && !self.schemes.iter().any(|s| s == url.scheme()) {
            return Err(format!("is not a {} URL", self.schemes.join(" or ")));
        }
        // The parser writes an address host in its one canonical form (IPv6 in brackets).
        let host = match url.host_str() {
            // `file:` reads this machine; a URL with no host at all (`data:`) reaches
            // nothing, and passes unless hosts are listed.
            None | Some("") if url.scheme() == "file" => {
                Target::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            None | Some("") if self.hosts.is_empty() => return Ok(()),
            None | Some("") => return Err("has no host".into()),
            Some(h) => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                Some(v6) => match v6.parse::<Ipv6Addr>() {
                    Ok(ip) => Target::Ip(IpAddr::V6(ip)),
                    Err(_) => return Err("is not a URL".into()),
                },
                None => {
                    let name = h.trim_end_matches('.').to_ascii_lowercase();
                    // Outside http(s), a URL's host is not parsed as an address: a
                    // resolver may still take `2130706433` or `0x7f.1` as one.
                    match loose_ipv4(&name) {
                        Some(ip) => Target::Ip(IpAddr::V4(ip)),
                        None => Target::Name(name),
                    }
                }
            },
        };
        if !self.hosts.is_empty() && !self.hosts.iter().any(|p| host.matches(p)) {
            return Err("is not on a host the tool owner allows".into());
        }
        match self.deny.iter().find(|d| host.is(**d)) {
            Some(d) => Err(format!("points to a {} address", label(*d))),
            None => Ok(()),
        }
    }

    pub fn explain(&self) -> String {
        let mut parts = Vec::new();
        if !self.schemes.is_empty() {
            parts.push(format!("scheme {}", self.schemes.join(" or ")));
        }
        if !self.hosts.is_empty() {
            parts.push(format!("host one of {}", self.hosts.join(", ")));
        }
        if !self.deny.is_empty() {
            let denied: Vec<&str> = self.deny.iter().map(|d| label(*d)).collect();
            parts.push(format!(
                "never a {} address (in any notation)",
                denied.join(", ")
            ));
        }
        format!(
            "a URL with {}; host names are not looked up",
            parts.join("; ")
        )
    }
}

/// A host name, `*.` and a domain, or an address.
fn host_pattern(pattern: &str) -> bool {
    if pattern.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn label(d: Deny) -> &'static str {
    match DENY_NAMES.iter().find(|(_, x)| *x == d) {
        Some((name, _)) => name,
        None => "denied",
    }
}

enum Target {
    Ip(IpAddr),
    Name(String),
}

impl Target {
    fn matches(&self, pattern: &str) -> bool {
        match self {
            Target::Ip(ip) => pattern
                .parse::<IpAddr>()
                .is_ok_and(|p| canonical(p) == canonical(*ip)),
            Target::Name(name) => match pattern.strip_prefix("*.") {
                Some(domain) => name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => name == pattern,
            },
        }
    }

    fn is(&self, deny: Deny) -> bool {
        match self {
            Target::Ip(ip) => ip_is(*ip, deny),
            Target::Name(name) => match deny {
                Deny::Loopback => name == "localhost" || name.ends_with(".localhost"),
                Deny::Metadata => METADATA_NAMES.contains(&name.as_str()),
                Deny::Private | Deny::LinkLocal => false,
            },
        }
    }
}

/// An IPv6 address carrying an IPv4 one (mapped, compatible, NAT64, 6to4) as that IPv4
/// address; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, but not :: or ::1)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:aabb:ccdd::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn ip_is(ip: IpAddr, deny: Deny) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_is(v4, deny),
        IpAddr::V6(v6) => v6_is(v6, deny),
    }
}

fn v4_is(ip: Ipv4Addr, deny: Deny) -> bool {
    let [a, b, ..] = ip.octets();
    match deny {
        // 0.0.0.0/8 reaches this host on Linux, as loopback does.
        Deny::Loopback => ip.is_loopback() || a == 0,
        Deny::Private => ip.is_private() || (a == 100 && (64..128).contains(&b)),
        Deny::LinkLocal => ip.is_link_local(),
        Deny::Metadata => METADATA_V4.contains(&ip),
    }
}

fn v6_is(ip: Ipv6Addr, deny: Deny) -> bool {
    let first = ip.segments()[0];
    match deny {
        Deny::Loopback => ip.is_loopback() || ip.is_unspecified(),
        Deny::Private => first & 0xfe00 == 0xfc00,
        Deny::LinkLocal => first & 0xffc0 == 0xfe80,
        Deny::Metadata => METADATA_V6.contains(&ip),
    }
}

/// An IPv4 address as `inet_aton` reads it: one to four parts, each decimal, octal
/// (leading `0`) or hex (`0x`), the last filling the remaining bytes.
fn loose_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::new();
    for part in &parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() {
                0
            } else {
                u32::from_str_radix(hex, 16).ok()?
            }
        } else if part.len() > 1 && part.starts_with('0') {
            u32::from_str_radix(part.get(1..)?, 8).ok()?
        } else {
            part.parse::<u32>().ok()?
        };
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >= 1u32 << room {
        return None;
    }
    let mut n: u32 = 0;
    for (i, v) in head.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(n | last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> UrlRule {
        UrlRule::parse(v.as_object().unwrap()).unwrap()
    }

    /// Every way of writing a loopback, metadata or private address that browsers, curl
    /// or libc take is refused; ordinary public URLs pass.
    #[test]
    fn an_address_is_judged_as_an_address_in_every_notation() {
        let guard = rule(json!({"deny": ["private", "loopback", "link-local", "metadata"]}));
        for refused in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0xA9FEA9FE/",
            "http://0251.0376.0251.0376/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://127.0.0.1./",
            "http://[::ffff:127.0.0.1]/",
            "http://[0:0:0:0:0:ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[::1]:8080/",
            "http://[fe80::1]/",
            "http://[fd12:3456::1]/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:22/",
            "http://0/",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://localhost/",
            "http://LOCALHOST./admin",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://trusted.example@127.0.0.1/",
            "https://user:pass@10.0.0.1:443/",
            "gopher://2130706433:70/",
            "ftp://0x7f000001/",
            "http://127.0.0.1\t/",
            "http://127.0.0.1\n.evil.example/",
            "file:///etc/passwd",
            "file://localhost/etc/passwd",
        ] {
            let err = guard.check(refused).err();
            assert!(err.is_some(), "{refused:?} passed");
            assert!(!err.unwrap().contains("127"), "the value is never echoed");
        }
        for ok in [
            "https://example.com/a?b=1",
            "http://93.184.216.34/",
            "http://[2606:4700::1111]/",
            "https://localhost.example.com/",
            "http://8.8.8.8/",
            "http://172.32.0.1/",
        ] {
            assert_eq!(guard.check(ok), Ok(()), "{ok}");
        }
        assert!(guard.check("not a url").unwrap_err().contains("not a URL"));
        assert_eq!(
            guard.check("data:text/plain,hello"),
            Ok(()),
            "reaches nothing"
        );
    }

    #[test]
    fn schemes_and_hosts_are_allow_lists() {
        let api = rule(
            json!({"schemes": ["https"], "hosts": ["*.example.com", "example.org", "93.184.216.34"]}),
        );
        for ok in [
            "https://api.example.com/x",
            "https://a.b.example.com",
            "https://EXAMPLE.org./",
            "https://93.184.216.34/",
            "https://[::ffff:93.184.216.34]/",
            "https://1572395042/",
        ] {
            assert_eq!(api.check(ok), Ok(()), "{ok}");
        }
        for (refused, says) in [
            ("http://api.example.com/", "not a https URL"),
            ("https://example.com/", "not on a host"),
            ("https://evilexample.com/", "not on a host"),
            ("https://example.com.evil.net/", "not on a host"),
            ("https://api.example.com@evil.net/", "not on a host"),
            ("https://sub.example.org/", "not on a host"),
            ("https://1572395043/", "not on a host"),
            ("data:text/plain,x", "not a https URL"),
        ] {
            let err = api.check(refused).unwrap_err();
            assert!(err.contains(says), "{refused}: {err}");
        }
    }

    #[test]
    fn a_url_without_a_host_passes_only_where_no_host_is_listed() {
        let listed = rule(json!({"schemes": ["data", "https"], "hosts": ["example.com"]}));
        assert!(
            listed
                .check("data:text/plain,x")
                .unwrap_err()
                .contains("has no host")
        );
    }

    #[test]
    fn a_rule_that_cannot_work_is_refused_at_load() {
        for (bad, says) in [
            (json!({}), "needs `schemes`, `hosts` or `deny`"),
            (json!({"deny": ["internal"]}), "not one of"),
            (json!({"hosts": ["a.*.com"]}), "not a host name"),
            (json!({"hosts": ["http://x"]}), "not a host name"),
            (json!({"hosts": ["*"]}), "not a host name"),
            (json!({"schemes": "https"}), "list of strings"),
            (
                json!({"deny": ["private"], "allow": []}),
                "no setting `allow`",
            ),
        ] {
            let err = UrlRule::parse(bad.as_object().unwrap()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn inet_aton_forms_are_read_as_libc_reads_them() {
        for (host, ip) in [
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0x7f.0.0.0x1", "127.0.0.1"),
            ("0251.0376.0251.0376", "169.254.169.254"),
        ] {
            assert_eq!(loose_ipv4(host), ip.parse().ok(), "{host}");
        }
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256x",
            "0x",
            "08.1.1.1",
        ] {
            assert!(loose_ipv4(name).is_none() || name == "0x", "{name}");
        }
    }
}
