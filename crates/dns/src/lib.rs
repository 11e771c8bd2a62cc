//! # sipwarden-dns: RFC 3263 server location, sans-io
//!
//! [`Lookup`] says which DNS query to make next and turns the answers into [`Target`]s;
//! [`srv::order`] orders targets for one attempt (priority, then weight, RFC 2782);
//! [`cache::Entry`] keeps a trunk's answer for its TTL and, while look-ups fail, for a bounded
//! time after. No I/O, no clock: the server makes the queries and passes `now`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]
// Unit tests may read the clock for an arbitrary origin; the code under test may not
// (disallowed-methods in ../../clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod cache;
mod lookup;
pub mod srv;

use std::net::{IpAddr, SocketAddr};

pub use lookup::{Answer, Lookup, LookupError, NaptrRecord, Query, Resolved, Spec, SrvRecord};
pub use sipwarden_sip::header::Transport;

/// One place to send to: an SRV target (or the name itself) with its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Lower is tried first (SRV priority; 0 without SRV).
    pub priority: u16,
    /// Share among targets of equal priority (SRV weight; 1 without SRV).
    pub weight: u16,
    /// The transport to use.
    pub transport: Transport,
    /// The port.
    pub port: u16,
    /// The host name the addresses belong to (the SRV target), for logs.
    pub host: String,
    /// Its addresses, in the order the resolver gave them.
    pub addrs: Vec<IpAddr>,
}

impl Target {
    /// Each address with the port.
    pub fn sockets(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().map(|ip| SocketAddr::new(*ip, self.port))
    }
}

/// The default port of a transport: 5061 for TLS, 5060 otherwise (RFC 3261 §19.1.2).
pub fn default_port(transport: Transport) -> u16 {
    if transport == Transport::Tls {
        5061
    } else {
        5060
    }
}

/// Keeps at most `max` addresses across `targets`, in their order (the first targets keep
/// theirs); targets left with none are dropped. DNS answers are data from outside: a trunk
/// holds a bounded number of them.
pub fn cap(targets: &mut Vec<Target>, max: usize) {
    let mut left = max;
    for t in targets.iter_mut() {
        t.addrs.truncate(left);
        left -= t.addrs.len();
    }
    targets.retain(|t| !t.addrs.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_the_first_addresses() {
        let t = |n: u8| Target {
            priority: 0,
            weight: 1,
            transport: Transport::Udp,
            port: 5060,
            host: n.to_string(),
            addrs: (0..n).map(|i| IpAddr::from([192, 0, 2, i])).collect(),
        };
        let mut ts = vec![t(3), t(2), t(4)];
        cap(&mut ts, 4);
        assert_eq!(
            ts.iter().map(|t| t.addrs.len()).collect::<Vec<_>>(),
            vec![3, 1]
        );
        cap(&mut ts, 0);
        assert!(ts.is_empty());
    }
}
