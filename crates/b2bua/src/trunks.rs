//! The trunks' addresses and their health, and the addresses one outbound call tries.
//!
//! A trunk given by address has its one target from the configuration; a trunk named by DNS
//! gets its targets from the server ([`crate::Core::set_trunk_targets`]), which resolves it off
//! the call path. Health is kept per trunk *name* and address, so a reload keeps it: failed
//! calls in a row mark an address down for a while, a 503's Retry-After for that long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden_dns::Target;
use sipwarden_sip::Peer;

use crate::routes::{OutRoute, Routes};

/// One address to try for a call: a trunk (index in the call's routes) and where to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) trunk: usize,
    pub(crate) peer: Peer,
}

/// How an address is doing, as calls see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Health {
    /// Failed calls in a row (no answer, 408, 5xx).
    pub(crate) failures: u32,
    /// Skipped by routing until then.
    pub(crate) down_until: Option<Instant>,
    /// Qualify's verdict (`None`: not qualified, or no verdict yet): `Some(false)` skips it.
    pub(crate) qualified: Option<bool>,
    /// The last OPTIONS round-trip time, in milliseconds.
    pub(crate) rtt_ms: Option<u32>,
}

/// The longest a 503's Retry-After may keep an address down.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Targets and health of every trunk, by name.
#[derive(Debug, Default)]
pub(crate) struct Trunks {
    /// Targets of trunks named by DNS, as the server last resolved them.
    resolved: HashMap<String, Arc<[Target]>>,
    /// Health per (trunk name, address). Bounded: entries of addresses a trunk no longer has
    /// leave when its targets change, and a trunk holds at most `dns.max_addresses`.
    /// By trunk name, then address: lookups on the call path borrow the name.
    health: HashMap<String, HashMap<SocketAddr, Health>>,
    /// Bumped on every change of targets or health, so the server republishes the status
    /// only when it changed.
    version: u64,
}

/// A trunk as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkStatus {
    /// Name.
    pub name: String,
    /// The proxy's host as configured (a name or an address).
    pub host: String,
    /// Its addresses, in record order.
    pub addresses: Vec<AddressStatus>,
    /// Its registration to the carrier, if it registers: the state and the seconds left.
    pub registration: Option<(crate::RegState, Option<u64>)>,
    /// Disabled by the kill switch: since (Unix seconds) and by whom.
    pub disabled: Option<(u64, String)>,
}

/// One address of a trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressStatus {
    /// Where.
    pub addr: SocketAddr,
    /// Over what.
    pub transport: sipwarden_sip::header::Transport,
    /// SRV priority and weight.
    pub priority: u16,
    /// SRV weight.
    pub weight: u16,
    /// The SRV target (or the proxy's host).
    pub host: String,
    /// Whether routing uses it now.
    pub up: bool,
    /// Failed calls in a row.
    pub failures: u32,
    /// How much longer it is marked down by failed calls, in seconds.
    pub down_secs: Option<u64>,
    /// Qualify's verdict: up, down, or none yet (or qualify is off).
    pub qualified: Option<bool>,
    /// The last OPTIONS round-trip time, in milliseconds.
    pub rtt_ms: Option<u32>,
}

impl Trunks {
    /// The targets of trunk `i` of `routes`: fixed (an address) or resolved (a name).
    pub(crate) fn targets(&self, routes: &Routes, i: usize) -> Arc<[Target]> {
        let Some(t) = routes.trunks.get(i) else {
            return Arc::from(Vec::new());
        };
        if let Some(fixed) = &t.fixed_targets {
            return Arc::clone(fixed);
        }
        self.resolved
            .get(&t.name)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// New targets for a trunk named by DNS (capped at `max` addresses); health of
    /// addresses it no longer has is forgotten.
    pub(crate) fn set_targets(&mut self, trunk: &str, mut targets: Vec<Target>, max: usize) {
        sipwarden_dns::cap(&mut targets, max);
        let keep: Vec<SocketAddr> = targets.iter().flat_map(Target::sockets).collect();
        if let Some(h) = self.health.get_mut(trunk) {
            h.retain(|addr, _| keep.contains(addr));
        }
        self.resolved.insert(trunk.to_owned(), Arc::from(targets));
        self.version += 1;
    }

    /// Changes on every change of targets or health.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Every trunk of `routes` with its addresses and their health at `now`.
    pub(crate) fn status(&self, routes: &Routes, now: Instant) -> Vec<TrunkStatus> {
        routes
            .trunks
            .iter()
            .enumerate()
            .map(|(i, t)| TrunkStatus {
                name: t.name.clone(),
                host: t.host.clone(),
                registration: None,
                disabled: None,
                addresses: self
                    .targets(routes, i)
                    .iter()
                    .flat_map(|target| target.sockets().map(move |addr| (target, addr)))
                    .map(|(target, addr)| {
                        let h = self.health(&t.name, addr);
                        let down = h.down_until.filter(|u| now < *u);
                        AddressStatus {
                            addr,
                            transport: target.transport,
                            priority: target.priority,
                            weight: target.weight,
                            host: target.host.clone(),
                            up: down.is_none() && h.qualified != Some(false),
                            failures: h.failures,
                            down_secs: down.map(|u| u.saturating_duration_since(now).as_secs()),
                            qualified: h.qualified,
                            rtt_ms: h.rtt_ms,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Forgets trunks that are no longer configured (after a reload).
    pub(crate) fn retain_trunks(&mut self, routes: &Routes) {
        let known = |n: &str| routes.trunks.iter().any(|t| t.name == n);
        self.resolved.retain(|n, _| known(n));
        self.health.retain(|n, _| known(n));
        self.version += 1;
    }

    /// Health entries held (for the metric and the bound's test).
    pub(crate) fn health_len(&self) -> usize {
        self.health.values().map(HashMap::len).sum()
    }

    /// Whether `addr` of `trunk` is down at `now`: marked by failed calls, or by qualify.
    pub(crate) fn is_down(&self, trunk: &str, addr: SocketAddr, now: Instant) -> bool {
        let h = self.health(trunk, addr);
        h.qualified == Some(false) || h.down_until.is_some_and(|u| now < u)
    }

    /// The health record of an address, made when first needed (the trunk's name is copied
    /// only then).
    fn entry(&mut self, trunk: &str, addr: SocketAddr) -> Option<&mut Health> {
        if !self.health.contains_key(trunk) {
            self.health.insert(trunk.to_owned(), HashMap::new());
        }
        self.health
            .get_mut(trunk)
            .map(|m| m.entry(addr).or_default())
    }

    /// Qualify's verdict on an address, and its round-trip time. An address qualify finds up
    /// is no longer marked down by failed calls: it answers.
    pub(crate) fn set_qualified(
        &mut self,
        trunk: &str,
        addr: SocketAddr,
        up: Option<bool>,
        rtt_ms: Option<u32>,
    ) {
        let Some(h) = self.entry(trunk, addr) else {
            return;
        };
        let before = *h;
        h.qualified = up;
        if rtt_ms.is_some() {
            h.rtt_ms = rtt_ms;
        }
        if up == Some(true) && before.qualified != Some(true) {
            h.failures = 0;
            h.down_until = None;
        }
        if *h != before {
            self.version += 1;
        }
    }

    /// The health of one address.
    pub(crate) fn health(&self, trunk: &str, addr: SocketAddr) -> Health {
        self.health
            .get(trunk)
            .and_then(|m| m.get(&addr))
            .copied()
            .unwrap_or_default()
    }

    /// A call to `addr` failed in a way that says the address may be down (no answer, 408,
    /// 5xx). `retry_after`: a 503's, which marks it down for that long at once. Returns
    /// whether this marked it down.
    pub(crate) fn failed(
        &mut self,
        routes: &Routes,
        a: Attempt,
        now: Instant,
        retry_after: Option<Duration>,
    ) -> bool {
        let Some(t) = routes.trunks.get(a.trunk) else {
            return false;
        };
        let Some(h) = self.entry(&t.name, a.peer.addr) else {
            return false;
        };
        h.failures = h.failures.saturating_add(1);
        let was_down = h.down_until.is_some_and(|u| now < u);
        let until = match retry_after {
            Some(r) => Some(now + r.min(MAX_RETRY_AFTER)),
            None if h.failures >= t.failures_to_down => Some(now + t.down_for),
            None => None,
        };
        if let Some(u) = until {
            h.down_until = Some(h.down_until.map_or(u, |d| d.max(u)));
        }
        let marked = !was_down && h.down_until.is_some_and(|u| now < u);
        self.version += 1;
        marked
    }

    /// The address answered: it is up, whatever calls said before.
    pub(crate) fn answered(&mut self, routes: &Routes, a: Attempt) {
        if let Some(t) = routes.trunks.get(a.trunk) {
            if let Some(h) = self
                .health
                .get_mut(&t.name)
                .and_then(|m| m.get_mut(&a.peer.addr))
            {
                if h.failures != 0 || h.down_until.is_some() {
                    h.failures = 0;
                    h.down_until = None;
                    self.version += 1;
                }
            }
        }
    }

    /// The addresses a call on route `r` tries, in order, at most `routes.max_attempts`:
    /// the route's trunks by priority (a weighted draw among equals), then its fallback
    /// trunks in order; within a trunk, its targets by SRV priority and weight, each
    /// target's addresses in turn. Addresses that are down are skipped.
    pub(crate) fn attempts(
        &self,
        routes: &Routes,
        r: &OutRoute,
        now: Instant,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> Vec<Attempt> {
        // The same RFC 2782 order picks among the route's trunks (priority, weight).
        let order: Vec<usize> = sipwarden_dns::srv::order_by(&r.trunks, |&(_, p, w)| (p, w), draw)
            .into_iter()
            .map(|&(i, _, _)| i)
            .chain(r.fallback.iter().copied())
            .collect();
        let mut out = Vec::new();
        for i in order {
            let Some(t) = routes.trunks.get(i) else {
                continue;
            };
            let targets = self.targets(routes, i);
            for target in sipwarden_dns::srv::order(&targets, draw) {
                for addr in target.sockets() {
                    if out.len() >= routes.max_attempts {
                        return out;
                    }
                    if self.is_down(&t.name, addr, now) {
                        continue;
                    }
                    let a = Attempt {
                        trunk: i,
                        peer: Peer {
                            transport: target.transport,
                            addr,
                            flow: None,
                        },
                    };
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_config::Config;
    use sipwarden_sip::header::Transport;

    fn routes(toml: &str) -> Routes {
        Routes::from_config(&Config::from_toml(toml, None).unwrap()).unwrap()
    }

    const TWO: &str = "[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\n[[trunk]]\nname = \"b\"\nnetworks = [\"198.51.100.0/24\"]\nproxy = \"sip:carrier.lab\"\nfailures_to_down = 2\ndown_for = \"30s\"\n";

    fn target(ip: &str, weight: u16, priority: u16) -> Target {
        Target {
            priority,
            weight,
            transport: Transport::Udp,
            port: 5060,
            host: ip.into(),
            addrs: vec![ip.parse().unwrap()],
        }
    }

    fn counter() -> impl FnMut(u32) -> u32 {
        let mut n = 0u32;
        move |max| {
            n = n.wrapping_add(1);
            n % (max + 1)
        }
    }

    fn addrs(a: &[Attempt]) -> Vec<String> {
        a.iter()
            .map(|a| format!("{}:{}", a.trunk, a.peer.addr))
            .collect()
    }

    #[test]
    fn without_routes_the_first_trunk_then_the_others() {
        let r = routes(TWO);
        let mut t = Trunks::default();
        let now = Instant::now();
        let route = r.outbound.first().unwrap().clone();
        // b is a name: no address until the server resolves it.
        assert_eq!(
            addrs(&t.attempts(&r, &route, now, &mut counter())),
            vec!["0:192.0.2.1:5060"]
        );
        t.set_targets(
            "b",
            vec![target("127.0.0.3", 3, 10), target("127.0.0.4", 1, 10)],
            16,
        );
        let a = t.attempts(&r, &route, now, &mut counter());
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].peer.addr, "192.0.2.1:5060".parse().unwrap());
        assert!(a[1..].iter().all(|a| a.trunk == 1));
    }

    #[test]
    fn failures_mark_an_address_down_for_a_while_and_an_answer_brings_it_back() {
        let r = routes(TWO);
        let mut t = Trunks::default();
        t.set_targets(
            "b",
            vec![target("127.0.0.3", 1, 10), target("127.0.0.4", 1, 20)],
            16,
        );
        let route = OutRoute {
            prefix: String::new(),
            trunks: vec![(1, 0, 1)],
            fallback: vec![],
        };
        let now = Instant::now();
        let first = t.attempts(&r, &route, now, &mut counter())[0];
        assert_eq!(first.peer.addr, "127.0.0.3:5060".parse().unwrap());
        assert!(!t.failed(&r, first, now, None), "one failure is not enough");
        assert!(t.failed(&r, first, now, None), "the second marks it down");
        let a = t.attempts(&r, &route, now, &mut counter());
        assert_eq!(addrs(&a), vec!["1:127.0.0.4:5060"]);
        // Down for down_for (30 s), then tried again.
        let later = now + Duration::from_secs(31);
        assert_eq!(t.attempts(&r, &route, later, &mut counter()).len(), 2);
        // A 503 with Retry-After marks it down at once, for that long.
        let second = a[0];
        assert!(t.failed(&r, second, now, Some(Duration::from_secs(120))));
        assert!(t.attempts(&r, &route, now, &mut counter()).is_empty());
        assert!(t.is_down("b", second.peer.addr, now + Duration::from_secs(119)));
        t.answered(&r, second);
        assert!(!t.is_down("b", second.peer.addr, now));
        assert_eq!(t.health("b", second.peer.addr), Health::default());
        // Qualify's verdict counts too, and an address it finds up is no longer marked.
        t.set_qualified("b", second.peer.addr, Some(false), None);
        assert!(t.is_down("b", second.peer.addr, now));
        t.failed(&r, second, now, Some(Duration::from_secs(600)));
        t.set_qualified("b", second.peer.addr, Some(true), Some(12));
        assert!(!t.is_down("b", second.peer.addr, now));
        assert_eq!(t.health("b", second.peer.addr).rtt_ms, Some(12));
    }

    #[test]
    fn routes_by_longest_prefix_with_weights_and_fallback() {
        let r = routes(&format!(
            "{TWO}[[trunk]]\nname = \"c\"\nnetworks = [\"203.0.113.0/24\"]\nproxy = \"sip:203.0.113.1\"\n[[route]]\nprefix = \"+44\"\ntrunks = [\"c\"]\nfallback = [\"a\"]\n[[route]]\ntrunks = [{{ trunk = \"a\", weight = 3, priority = 1 }}, {{ trunk = \"c\", weight = 1, priority = 1 }}]\n"
        ));
        let uk = r.outbound_route("+44 20 7946 0000").unwrap();
        let other = r.outbound_route("+15551234567").unwrap();
        assert_eq!(r.outbound[uk].prefix, "44");
        assert_eq!(r.outbound[other].prefix, "");
        let t = Trunks::default();
        let now = Instant::now();
        let mut draw = {
            let mut s = 0x2545_f491_4f6c_dd1du64;
            move |n: u32| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % (u64::from(n) + 1)) as u32
            }
        };
        assert_eq!(
            addrs(&t.attempts(&r, &r.outbound[uk], now, &mut draw)),
            vec!["2:203.0.113.1:5060", "0:192.0.2.1:5060"]
        );
        let firsts = (0..4000)
            .filter(|_| t.attempts(&r, &r.outbound[other], now, &mut draw)[0].trunk == 0)
            .count();
        assert!((2800..=3200).contains(&firsts), "a first {firsts} of 4000");
    }

    #[test]
    fn attempts_are_bounded_and_health_forgets_old_addresses() {
        let r = routes(&format!("{TWO}[calls]\nmax_attempts = 2\n"));
        let mut t = Trunks::default();
        let many: Vec<Target> = (1..=40)
            .map(|i| target(&format!("10.0.0.{i}"), 1, 0))
            .collect();
        t.set_targets("b", many, 16);
        assert_eq!(t.targets(&r, 1).len(), 16, "dns.max_addresses");
        let route = OutRoute {
            prefix: String::new(),
            trunks: vec![(1, 0, 1)],
            fallback: vec![],
        };
        let now = Instant::now();
        assert_eq!(t.attempts(&r, &route, now, &mut counter()).len(), 2);
        for a in t.attempts(&r, &route, now, &mut counter()) {
            t.failed(&r, a, now, None);
        }
        assert_eq!(t.health_len(), 2);
        t.set_targets("b", vec![target("127.0.0.3", 1, 0)], 16);
        assert_eq!(t.health_len(), 0, "the old addresses' health is gone");
        t.failed(
            &r,
            Attempt {
                trunk: 1,
                peer: Peer {
                    transport: Transport::Udp,
                    addr: "127.0.0.3:5060".parse().unwrap(),
                    flow: None,
                },
            },
            now,
            None,
        );
        let fewer = routes(
            "[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\n",
        );
        t.retain_trunks(&fewer);
        assert_eq!(t.health_len(), 0);
        assert!(t.targets(&fewer, 1).is_empty());
    }
}
