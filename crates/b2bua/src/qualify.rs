//! Qualify: an OPTIONS to each address of a trunk with `[trunk.qualify]`, every `interval`.
//! Any answer but 408 or 5xx within `timeout` is a success; `down_after` failures in a row
//! mark the address down (routing skips it), `up_after` successes in a row bring it back.
//! Each change of state is a `TrunkUp`/`TrunkDown` event in the JSON event log, and the state
//! and round-trip time are in the trunk status (`/api/trunks`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden_events::{EventKind, SecurityEvent, ie};
use sipwarden_sip::{Peer, StatusCode};
use sipwarden_txn::TxId;

use crate::{ClientRole, Core, build};

/// One address being qualified.
#[derive(Clone, Debug)]
struct Probe {
    peer: Peer,
    /// The verdict: `None` until the first one.
    up: Option<bool>,
    /// Successes and failures in a row.
    ok_run: u32,
    fail_run: u32,
    /// The OPTIONS in flight and when it left.
    sent: Option<(TxId, Instant)>,
    /// When the next one leaves.
    next_at: Instant,
}

/// Every probe, by trunk name and address; bounded by the trunks' addresses.
#[derive(Debug, Default)]
pub(crate) struct Qualify {
    probes: HashMap<(String, SocketAddr), Probe>,
    by_tx: HashMap<TxId, (String, SocketAddr)>,
    /// The earliest deadline of any probe.
    due: Option<Instant>,
    /// The trunks or their addresses changed: a round is due at the next input.
    pub(crate) kick: bool,
    /// OPTIONS sent and state changes since start (for the metrics).
    pub(crate) sent: u64,
    pub(crate) changes: u64,
}

impl Qualify {
    /// No probes yet; a round is due at the first input.
    pub(crate) fn new() -> Self {
        Self {
            kick: true,
            ..Self::default()
        }
    }

    /// When [`Core::qualify_round`] must next run.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Probes held (the metric of the bound).
    pub(crate) fn len(&self) -> usize {
        self.probes.len()
    }

    fn recompute_due(&mut self, routes: &crate::Routes) {
        let timeout = |name: &str| {
            routes
                .trunks
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.qualify.as_ref())
                .map_or(Duration::from_secs(2), |q| q.timeout)
        };
        self.due = self
            .probes
            .iter()
            .map(|((name, _), p)| match p.sent {
                Some((_, at)) => at + timeout(name),
                None => p.next_at,
            })
            .min();
    }
}

impl Core {
    /// Sends the OPTIONS that are due, counts those unanswered past their timeout as failed,
    /// and keeps one probe per address of every qualified trunk.
    pub(crate) fn qualify_round(&mut self, now: Instant) {
        self.qualify.kick = false;
        let routes = Arc::clone(&self.routes);
        // The addresses to qualify now (targets change with DNS and reloads).
        let mut wanted: Vec<(
            (String, SocketAddr),
            Peer,
            &sipwarden_config::QualifyConfig,
            &str,
        )> = Vec::new();
        for (i, t) in routes.trunks.iter().enumerate() {
            let Some(q) = t.qualify.as_ref() else {
                continue;
            };
            for target in self.trunks.targets(&routes, i).iter() {
                for addr in target.sockets() {
                    let peer = Peer {
                        transport: target.transport,
                        addr,
                        flow: None,
                    };
                    wanted.push(((t.name.clone(), addr), peer, q, t.host.as_str()));
                }
            }
        }
        let keep: Vec<&(String, SocketAddr)> = wanted.iter().map(|w| &w.0).collect();
        let dropped: Vec<(String, SocketAddr)> = self
            .qualify
            .probes
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for k in dropped {
            if let Some(p) = self.qualify.probes.remove(&k) {
                if let Some((tx, _)) = p.sent {
                    self.qualify.by_tx.remove(&tx);
                }
                self.trunks.set_qualified(&k.0, k.1, None, None);
            }
        }
        for (key, peer, q, host) in wanted {
            let probe = self.qualify.probes.entry(key.clone()).or_insert(Probe {
                peer,
                up: None,
                ok_run: 0,
                fail_run: 0,
                sent: None,
                next_at: now,
            });
            if let Some((tx, at)) = probe.sent {
                if now >= at + q.timeout {
                    // Past its deadline its answer no longer counts: stop retransmitting it.
                    self.qualify.by_tx.remove(&tx);
                    self.clients.remove(&tx);
                    self.txl.abandon(tx);
                    self.qualified(now, &key, false, None);
                }
                continue;
            }
            if probe.next_at > now {
                continue;
            }
            probe.next_at = now + q.interval;
            let m = build::trunk_options(host, peer, &self.local, &mut self.ids);
            let Some(m) = self.built(m) else { continue };
            match self.txl.send_request(now, m, peer, peer.reliable()) {
                Ok(tx) => {
                    if let Some(p) = self.qualify.probes.get_mut(&key) {
                        p.sent = Some((tx, now));
                    }
                    self.qualify.by_tx.insert(tx, key);
                    self.clients.insert(tx, (0, ClientRole::Qualify));
                    self.qualify.sent += 1;
                }
                Err(_) => self.stats.internal_send_errors += 1,
            }
        }
        self.qualify.recompute_due(&routes);
    }

    /// An answer to a qualify OPTIONS.
    pub(crate) fn on_qualify_response(&mut self, now: Instant, tx: TxId, status: StatusCode) {
        if !status.is_final() {
            return;
        }
        self.clients.remove(&tx);
        let Some(key) = self.qualify.by_tx.remove(&tx) else {
            return;
        };
        let Some(sent_at) = self
            .qualify
            .probes
            .get(&key)
            .and_then(|p| p.sent.filter(|(t, _)| *t == tx).map(|(_, at)| at))
        else {
            return;
        };
        let c = status.as_u16();
        let ok = c != 408 && !(500..=599).contains(&c);
        let rtt = now.saturating_duration_since(sent_at);
        let rtt_ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX);
        self.qualified(now, &key, ok, ok.then_some(rtt_ms));
        let routes = Arc::clone(&self.routes);
        self.qualify.recompute_due(&routes);
    }

    /// The OPTIONS transaction itself timed out (after the probe's own timeout counted it).
    pub(crate) fn on_qualify_timeout(&mut self, tx: TxId) {
        self.qualify.by_tx.remove(&tx);
    }

    /// One probe's outcome: runs, the verdict with its hysteresis, the event on a change.
    fn qualified(
        &mut self,
        now: Instant,
        key: &(String, SocketAddr),
        ok: bool,
        rtt_ms: Option<u32>,
    ) {
        let Some(q) = self
            .routes
            .trunks
            .iter()
            .find(|t| t.name == key.0)
            .and_then(|t| t.qualify.clone())
        else {
            return;
        };
        let Some(p) = self.qualify.probes.get_mut(key) else {
            return;
        };
        p.sent = None;
        let before = p.up;
        if ok {
            p.ok_run = p.ok_run.saturating_add(1);
            p.fail_run = 0;
            // The first verdict comes at once; a down address needs up_after in a row.
            if p.up.is_none() || (p.up == Some(false) && p.ok_run >= q.up_after) {
                p.up = Some(true);
            }
        } else {
            p.fail_run = p.fail_run.saturating_add(1);
            p.ok_run = 0;
            if p.up != Some(false) && p.fail_run >= q.down_after {
                p.up = Some(false);
            }
        }
        let (up, peer) = (p.up, p.peer);
        self.trunks.set_qualified(&key.0, key.1, up, rtt_ms);
        if up != before {
            self.qualify.changes += 1;
            let kind = if up == Some(true) {
                EventKind::TrunkUp
            } else {
                EventKind::TrunkDown
            };
            tracing::info!(trunk = %key.0, address = %key.1, state = kind.name(), "qualify");
            let mut e = SecurityEvent::trunk(kind, &key.0, key.1, peer.transport);
            if let Some(ms) = rtt_ms {
                e = e.with_ie(ie::RTT_MS, ms.to_string());
            }
            let why = if ok {
                "answers OPTIONS"
            } else {
                "no answer to OPTIONS"
            };
            self.security(e.with_reason(why));
        }
        let _ = now;
    }
}
