//! Allow/deny lists: CIDR rules, IPv4 and IPv6, the longest matching prefix wins (a /32 deny
//! inside a /8 allow denies that host). With no matching rule the list's default applies.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAction {
    /// Let it through.
    Allow,
    /// Stop it.
    Deny,
}

/// One list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<(IpNet, AclAction)>,
    /// With rules of `allow` only, an address that matches none is denied (an allowlist);
    /// with any `deny` rule or none at all, it is allowed.
    default_deny: bool,
}

impl Acl {
    /// A list from allow and deny networks.
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> Self {
        let mut rules: Vec<(IpNet, AclAction)> = allow
            .iter()
            .map(|n| (n.trunc(), AclAction::Allow))
            .chain(deny.iter().map(|n| (n.trunc(), AclAction::Deny)))
            .collect();
        // Longest prefix first; at equal length deny wins.
        rules.sort_by(|a, b| {
            b.0.prefix_len()
                .cmp(&a.0.prefix_len())
                .then((a.1 == AclAction::Allow).cmp(&(b.1 == AclAction::Allow)))
        });
        Self {
            default_deny: !allow.is_empty() && deny.is_empty(),
            rules,
        }
    }

    /// Whether the list has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The decision for `ip`.
    pub fn check(&self, ip: IpAddr) -> AclAction {
        let ip = ip.to_canonical();
        self.rules.iter().find(|(n, _)| n.contains(&ip)).map_or(
            if self.default_deny {
                AclAction::Deny
            } else {
                AclAction::Allow
            },
            |(_, a)| *a,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn longest_prefix_wins() {
        let acl = Acl::new(
            &nets(&["10.0.0.0/8", "2001:db8::/32"]),
            &nets(&["10.1.0.0/16"]),
        );
        assert_eq!(acl.check("10.2.3.4".parse().unwrap()), AclAction::Allow);
        assert_eq!(acl.check("10.1.3.4".parse().unwrap()), AclAction::Deny);
        assert_eq!(
            acl.check("::ffff:10.1.3.4".parse().unwrap()),
            AclAction::Deny
        );
        assert_eq!(
            acl.check("192.0.2.1".parse().unwrap()),
            AclAction::Allow,
            "deny rules present: default allow"
        );
        let inner = Acl::new(&nets(&["10.1.2.3/32"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(inner.check("10.1.2.3".parse().unwrap()), AclAction::Allow);
        assert_eq!(inner.check("10.1.2.4".parse().unwrap()), AclAction::Deny);
        let allowlist = Acl::new(&nets(&["192.0.2.0/24"]), &[]);
        assert_eq!(
            allowlist.check("198.51.100.1".parse().unwrap()),
            AclAction::Deny
        );
        assert_eq!(
            allowlist.check("2001:db8::1".parse().unwrap()),
            AclAction::Deny
        );
        assert_eq!(
            Acl::default().check("198.51.100.1".parse().unwrap()),
            AclAction::Allow
        );
    }
}
