//! The harness: the core, a simulated clock, and what the core put on the wire.

use std::time::{Duration, Instant};

use sipwarden_b2bua::{Core, Local, Routes, Settings, Stats};
use sipwarden_config::Config;
use sipwarden_sip::Peer;
use sipwarden_sip::{Message, StatusCode};

use crate::{GATEWAY, LAB_CONFIG, addr, first_line, udp};

/// The call core in the lab, with scripted peers and simulated time.
///
/// Peers send with [`send`](Self::send) and friends; everything the gateway sends is parsed
/// back and kept until a peer [`take`](Self::take)s it. Time moves only by
/// [`advance`](Self::advance), so timers fire when a test says so.
pub struct Lab {
    /// The core under test, for the calls the harness does not wrap (hangup, bindings, ...).
    pub core: Core,
    /// The simulated time: what the core was last told it is.
    pub now: Instant,
    /// Everything the gateway sent and no one took yet: (destination, message).
    wire: Vec<(Peer, Message)>,
    /// Location changes the core gave for storing, not yet taken by the test.
    stored: Vec<sipwarden_b2bua::LocationChange>,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    /// The gateway of [`LAB_CONFIG`] on UDP 127.0.0.1:5060.
    pub fn new() -> Self {
        Self::with(LAB_CONFIG)
    }

    /// The gateway of the configuration `cfg` (TOML) on UDP 127.0.0.1:5060, with a fixed seed
    /// so that runs are reproducible.
    pub fn with(cfg: &str) -> Self {
        let cfg = Config::from_toml(cfg, None).unwrap();
        let routes = Routes::from_config(&cfg).unwrap();
        let local = Local {
            udp: Some(addr(GATEWAY)),
            tcp: None,
            tls: None,
            wss: None,
        };
        let mut core = Core::new(routes, local, Settings::default(), [42; 32]);
        // The policies and rewrites the server runs (the core knows none of its own), and
        // concurrency limits on every call, trunk and account too high to refuse anything:
        // `assert_clean` checks that they count no call once every call has ended, whatever
        // way each ended (the toll-fraud counters' exactness, DESIGN §6).
        let mut policies = sipwarden_policy::standard();
        policies.push(Box::new(counting_policy()));
        core.set_policies(policies);
        core.set_rewrites(sipwarden_policy::standard_rewrites());
        let mut lab = Self {
            core,
            now: Instant::now(),
            wire: Vec::new(),
            stored: Vec::new(),
        };
        // As the server does at start: the core's own first round (qualify's OPTIONS).
        lab.core.handle_timeout(lab.now);
        lab.collect();
        lab
    }

    /// Hands `bytes` from `from` to the core, parsed as the transport would, without collecting
    /// what it sends: the benchmark drains the core itself.
    pub fn feed(&mut self, from: Peer, bytes: &[u8]) {
        let msg = Message::parse(bytes).unwrap_or_else(|e| {
            panic!(
                "unparseable message from {from:?} ({e}): {}",
                String::from_utf8_lossy(bytes)
            )
        });
        self.core.on_message(self.now, msg, from);
    }

    /// `raw` (a whole message) from the UDP peer `from`.
    pub fn send(&mut self, from: &str, raw: &str) {
        let msg = Message::parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{e}: {raw}"));
        self.send_msg(from, msg);
    }

    /// `msg` from the UDP peer `from`.
    pub fn send_msg(&mut self, from: &str, msg: Message) {
        self.send_from(udp(from), msg);
    }

    /// `msg` from `from`, over any transport or connection.
    pub fn send_from(&mut self, from: Peer, msg: Message) {
        // Through the wire format, as a peer would send it.
        self.feed(from, &msg.to_bytes());
        self.collect();
    }

    /// Parses and keeps what the core has to send; the `send` methods and `advance` do it
    /// themselves, a test calls it after driving the core directly.
    pub fn collect(&mut self) {
        // Location changes are "stored" at once (kept for the test), so the answers that
        // wait for them go out with the rest.
        let durable = self.core.take_durable();
        self.stored.extend(durable.changes);
        let sent: Vec<_> = std::iter::from_fn(|| self.core.poll_transmit()).collect();
        for t in sent.into_iter().chain(durable.answers) {
            let m = Message::parse(&t.bytes).unwrap_or_else(|e| {
                panic!(
                    "gateway sent unparseable bytes ({e}): {}",
                    String::from_utf8_lossy(&t.bytes)
                )
            });
            self.wire.push((t.dest, m));
        }
    }

    /// Location changes the core gave for storing since the last call, in order.
    pub fn take_location_changes(&mut self) -> Vec<sipwarden_b2bua::LocationChange> {
        self.collect();
        std::mem::take(&mut self.stored)
    }

    /// Moves the clock on by `d`, firing every timer due on the way at its own time.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(at) = self.core.poll_timeout() {
            if at > target {
                break;
            }
            self.now = at;
            self.core.handle_timeout(at);
            self.collect();
        }
        self.now = target;
    }

    /// Messages sent to `to` since the last call, oldest first.
    pub fn take(&mut self, to: &str) -> Vec<Message> {
        self.take_with_peer(to)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// Like `take`, with the transport and connection each message left by.
    pub fn take_with_peer(&mut self, to: &str) -> Vec<(Peer, Message)> {
        let a = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|(d, _)| d.addr == a);
        self.wire = rest;
        mine
    }

    /// The one message of `what` sent to `to` (and nothing else but 100 Trying): `what` is
    /// part of its first line.
    pub fn expect(&mut self, to: &str, what: &str) -> Message {
        let got: Vec<Message> = self
            .take(to)
            .into_iter()
            .filter(|m| m.status() != Some(StatusCode::TRYING))
            .collect();
        assert_eq!(
            got.len(),
            1,
            "expected one {what} to {to}, got {:#?}",
            got.iter().map(first_line).collect::<Vec<_>>()
        );
        let m = got.into_iter().next().unwrap();
        assert!(
            first_line(&m).contains(what),
            "expected {what} to {to}, got {}",
            first_line(&m)
        );
        m
    }

    /// The core's counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Runs the clock far enough for every transaction to end, then checks nothing is left.
    pub fn assert_clean(&mut self) {
        self.advance(Duration::from_secs(40));
        let counted = self
            .core
            .policy_gauges()
            .iter()
            .find(|g| g.name == "sipwarden_velocity_calls")
            .map(|g| g.value);
        assert!(
            matches!(counted, Some(0) | None),
            "calls still counted by the concurrency limits after every call ended: {counted:?}"
        );
        let s = self.stats();
        assert_eq!(s.call_timers, 0, "ended calls leave no timer behind: {s:?}");
        assert_eq!(
            (
                s.calls,
                s.dialogs,
                s.client_transactions,
                s.server_transactions
            ),
            (0, 0, 0, 0),
            "{s:?}"
        );
    }
}

/// Concurrent-call limits on every call, each trunk and each account, none low enough to
/// refuse a test's call.
fn counting_policy() -> sipwarden_policy::VelocityPolicy {
    use sipwarden_config::{LimitAction, LimitConfig, LimitKind, LimitScope, PolicyConfig};
    let limit = |scope| LimitConfig {
        name: None,
        scope,
        subject: None,
        kind: LimitKind::Concurrent,
        warning: None,
        critical: 1_000_000,
        status: 403,
        action: LimitAction::Refuse,
        mode: None,
    };
    let cfg = PolicyConfig {
        limits: vec![
            limit(LimitScope::All),
            limit(LimitScope::Trunk),
            limit(LimitScope::Account),
        ],
        ..PolicyConfig::default()
    };
    sipwarden_policy::VelocityPolicy::new(
        &cfg,
        Box::new(sipwarden_policy::MemoryCounters::new(cfg.limit_entries)),
    )
    .unwrap_or_else(|e| panic!("the counting policy: {e}"))
}
