//! Helpers the Asterisk rules share: Asterisk's booleans, addresses and ACLs, findings, and the
//! files that configurations reference.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::asterisk::{Entry, View};
use crate::rules::acl::NamedAcls;
use crate::rules::files;
use crate::{Finding, Location, Rule, Severity};

/// A finding of `rule` at its own severity.
pub(crate) fn finding(rule: &Rule, message: String, location: &Location) -> Finding {
    finding_at(rule, rule.severity, message, location)
}

/// A finding of `rule` at a severity chosen for this case.
pub(crate) fn finding_at(
    rule: &Rule,
    severity: Severity,
    message: String,
    location: &Location,
) -> Finding {
    Finding {
        rule: rule.id,
        severity,
        message,
        location: location.clone(),
        fix: rule.fix.to_string(),
    }
}

/// Asterisk's `ast_true`.
pub(crate) fn is_true(v: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| v.trim().eq_ignore_ascii_case(t))
}

/// Asterisk's `ast_false`.
pub(crate) fn is_false(v: &str) -> bool {
    ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|t| v.trim().eq_ignore_ascii_case(t))
}

/// The file name of a location, for messages ("sip.conf").
pub(crate) fn file_name(loc: &Location) -> String {
    loc.file.file_name().map_or_else(
        || loc.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Where a setting is, or the section header when it is absent.
pub(crate) fn at<'a>(view: &View<'a>, entry: Option<&'a Entry>) -> &'a Location {
    entry.map_or_else(|| view.location(), |e| &e.location)
}

/// An address with its prefix length: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d/m.m.m.m`, IPv6 with `/n`,
/// optionally in brackets or with a `:port` (IPv4) — the forms `permit=`, `match=` and `bind=`
/// take.
pub(crate) fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a.trim(), Some(m.trim())),
        None => (s, None),
    };
    let ip = parse_addr(addr)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => max,
        Some(m) => match m.parse::<u8>() {
            Ok(n) if n <= max => n,
            Ok(_) => return None,
            Err(_) => {
                let Ok(IpAddr::V4(mask)) = m.parse::<IpAddr>() else {
                    return None;
                };
                // Contiguous masks only count their leading ones; a hole still narrows the
                // network, so counting leading ones errs towards "wide".
                u8::try_from(u32::from(mask).leading_ones()).unwrap_or(32)
            }
        },
    };
    Some((ip, prefix))
}

/// An address, possibly `[v6]`, `[v6]:port` or `v4:port`.
pub(crate) fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Not reachable from the internet: loopback, RFC 1918, link-local, CGNAT, IPv6 ULA.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A `host=` value that is a private address. Names (and `dynamic`) are not: the audit cannot
/// know where they point.
pub(crate) fn host_is_private(host: &str) -> bool {
    parse_net(host).is_some_and(|(ip, _)| is_private(ip))
}

/// An IPv4 network shorter than /16 or an IPv6 one shorter than /32: "the internet", not "my
/// provider's signalling servers".
pub(crate) fn is_wide(ip: IpAddr, prefix: u8) -> bool {
    if ip.is_ipv4() {
        prefix < 16
    } else {
        prefix < 32
    }
}

/// Whether a chan_sip/chan_iax2 object's source ACL keeps the internet out: an `acl=` naming a
/// restrictive ACL (see [`NamedAcls`]: without acl.conf in the audit, any name is assumed
/// restrictive), or at least one `deny=` and no `permit=` of everything. (Asterisk's rules apply
/// in order, the last match winning, and everything is allowed by default, so `permit=` alone
/// restricts nothing. An address must pass every ACL named as well as the object's own rules,
/// so one restrictive part is enough.)
pub(crate) fn acl_is_restrictive(view: &View<'_>, acls: &NamedAcls) -> bool {
    if view
        .get_all("acl")
        .iter()
        .any(|e| acls.value_restricts(&e.value))
    {
        return true;
    }
    let has_deny = view.get_all("deny").iter().any(|e| !e.value.is_empty());
    let opens_all = view
        .get_all("permit")
        .iter()
        .any(|e| parse_net(&e.value).is_some_and(|(_, p)| p == 0));
    has_deny && !opens_all
}

/// What a referenced TLS file holds, to pick the check.
#[derive(Clone, Copy)]
pub(crate) enum Referenced {
    /// A private key (`tlsprivatekey`, `priv_key_file`).
    Key,
    /// Certificates (`tlscertfile`, `tlscafile`, `cert_file`, `ca_list_file`).
    Certificate,
}

/// A file named by a setting, resolved against the directory of the file holding the setting.
pub(crate) fn resolve(entry: &Entry) -> PathBuf {
    let p = Path::new(entry.value.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        entry
            .location
            .file
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(p)
    }
}

/// Runs the file checks on a referenced key or certificate; a file that does not exist gives a
/// `missing` finding instead (Asterisk would fail to start TLS, and the audit should not stop).
pub(crate) fn check_referenced(
    entry: &Entry,
    what: Referenced,
    missing: &Rule,
    owner: &str,
) -> Vec<Finding> {
    if entry.value.trim().is_empty() {
        return Vec::new();
    }
    let path = resolve(entry);
    if !path.exists() {
        return vec![finding(
            missing,
            format!(
                "{owner} {} names {}, which does not exist",
                entry.key,
                path.display()
            ),
            &entry.location,
        )];
    }
    match what {
        Referenced::Key => files::check_private_key(&path, Some(&entry.location)),
        Referenced::Certificate => {
            files::check_certificate(&path, Some(&entry.location), SystemTime::now())
        }
    }
}

/// A TLS protocol version below 1.2, as chan_sip's `tlsclientmethod` and res_pjsip's `method`
/// spell them.
pub(crate) fn is_old_tls_method(v: &str) -> bool {
    [
        "sslv2", "sslv3", "sslv23", "tlsv1", "tlsv1_1", "tlsv1.1", "tlsv1.0",
    ]
    .iter()
    .any(|m| v.trim().eq_ignore_ascii_case(m))
}

/// The list items of `a,b , c` (also `&`-free; Asterisk lists are comma separated).
pub(crate) fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        assert_eq!(parse_net("0.0.0.0/0.0.0.0").map(|n| n.1), Some(0));
        assert_eq!(parse_net("10.0.0.0/255.0.0.0").map(|n| n.1), Some(8));
        assert_eq!(parse_net("1.2.3.4").map(|n| n.1), Some(32));
        assert_eq!(parse_net("::/0").map(|n| n.1), Some(0));
        assert_eq!(parse_net("1.2.3.4/33"), None);
        assert!(host_is_private("192.168.1.10"));
        assert!(host_is_private("127.0.0.1:5060"));
        assert!(host_is_private("[::1]:5060"));
        assert!(!host_is_private("dynamic"));
        assert!(!host_is_private("203.0.113.5"));
        assert!(is_true("Yes") && is_false("off") && !is_true("maybe"));
    }
}
