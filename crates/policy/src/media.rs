//! Media anchoring as a rewrite: every SDP body of a call gets the relay's ports and address
//! (`sipwarden-media`'s plan), and what the relay must do is queued for the server, which
//! performs it after each round of the call core (this rewrite does no I/O).
//!
//! A leg's side comes from where its messages go: the PBX's networks are inside, everything
//! else (trunks, phones) outside. A call always crosses from one side to the other (phones
//! reach trunks only through the PBX), so the first body of a call tells both sides.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;
use sipwarden_media::{AnchorError, CallMedia, Leg, Ports, RelayOp, SideAddr};
use sipwarden_sip::sdp::SdpEdit;
use sipwarden_stages::{CallRequest, Rewrite, RewriteError, SdpContext, Toward};

/// What the anchoring rewrite queued for the relay; the server drains it every round.
pub type RelayOps = Arc<Mutex<VecDeque<RelayOp>>>;

/// The most operations waiting for the server (it drains them every round, so this fills
/// only if it stalls); beyond it new calls are refused rather than left without media.
const MAX_OPS: usize = 100_000;

/// Queues `op` for the server, refusing past [`MAX_OPS`]: shared by both anchoring rewrites.
pub(crate) fn push_bounded<T>(q: &Mutex<VecDeque<T>>, op: T) -> Result<(), RewriteError> {
    let mut q = q.lock().map_err(|_| RewriteError::new("media_queue"))?;
    if q.len() >= MAX_OPS {
        return Err(RewriteError::new("media_queue_full"));
    }
    q.push_back(op);
    Ok(())
}

/// Whether a peer is the PBX's (inside): in its networks.
pub(crate) fn is_inside(pbx_networks: &[IpNet], peer: IpAddr) -> bool {
    let ip = peer.to_canonical();
    pbx_networks.iter().any(|n| n.contains(&ip))
}

#[derive(Debug)]
struct Anchored {
    /// Left un-anchored: a browser phone (WebRTC) offers ICE with DTLS-SRTP, which needs its
    /// candidates end to end, and the embedded relay does not terminate ICE; its media goes
    /// direct (rtpengine, when it comes, anchors such calls). Nothing is rewritten or opened.
    passthrough: bool,
    /// The last offer or answer put the call on hold.
    held: bool,
    media: CallMedia,
    opened: Vec<bool>,
    a_sources: Vec<IpAddr>,
    b_sources: Vec<IpAddr>,
}

/// Whether an SDP puts its call on hold: every active stream sendonly, recvonly or inactive,
/// or sent to 0.0.0.0 (RFC 2543 hold). A body without active streams is not hold.
pub(crate) fn on_hold(sdp: &sipwarden_sip::sdp::Sdp<'_>) -> bool {
    let mut active = sdp.media.iter().filter(|m| m.is_active()).peekable();
    active.peek().is_some()
        && active.all(|m| {
            sdp.direction_of(m) != sipwarden_sip::sdp::Direction::SendRecv
                || sdp
                    .connection_of(m)
                    .and_then(sipwarden_sip::sdp::Connection::ip)
                    .is_some_and(|ip| ip.is_unspecified())
        })
}

/// The port pool's figures, shared with the server for `/metrics` (the rewrite itself lives
/// inside the call core).
#[derive(Debug, Default)]
pub struct PortGauges {
    /// Port pairs in use.
    pub in_use: AtomicU64,
    /// Port pairs in the range.
    pub capacity: AtomicU64,
    /// Calls refused because no pair was free.
    pub exhausted: AtomicU64,
}

/// The anchoring rewrite (`[media]`).
#[derive(Debug)]
pub struct MediaAnchor {
    inside: SideAddr,
    outside: SideAddr,
    pbx_networks: Vec<IpNet>,
    ports: Ports,
    calls: HashMap<u64, Anchored>,
    ops: RelayOps,
    /// Calls refused because every port pair was in use.
    pub exhausted: u64,
    /// SDP bodies left un-anchored (WebRTC calls with DTLS-SRTP and ICE).
    pub passthrough_bodies: u64,
    gauges: Arc<PortGauges>,
}

impl MediaAnchor {
    /// Anchoring between `inside` (toward the PBX, whose networks are `pbx_networks`) and
    /// `outside`, on the ports `port_min..=port_max`; operations go to `ops`.
    pub fn new(
        (inside, outside): (SideAddr, SideAddr),
        pbx_networks: Vec<IpNet>,
        (port_min, port_max): (u16, u16),
        ops: RelayOps,
    ) -> Self {
        let ports = Ports::new(port_min, port_max);
        let gauges = Arc::new(PortGauges::default());
        gauges
            .capacity
            .store(u64::try_from(ports.capacity()).unwrap_or(u64::MAX), Relaxed);
        Self {
            inside,
            outside,
            pbx_networks,
            ports,
            calls: HashMap::new(),
            ops,
            exhausted: 0,
            passthrough_bodies: 0,
            gauges,
        }
    }

    /// The port pool's figures, as they change.
    pub fn gauges(&self) -> Arc<PortGauges> {
        Arc::clone(&self.gauges)
    }

    fn publish_ports(&self) {
        let n = u64::try_from(self.ports.in_use()).unwrap_or(u64::MAX);
        self.gauges.in_use.store(n, Relaxed);
    }

    /// Port pairs in use and in the range.
    pub fn ports(&self) -> (usize, usize) {
        (self.ports.in_use(), self.ports.capacity())
    }

    fn side_of(&self, peer: IpAddr) -> SideAddr {
        if is_inside(&self.pbx_networks, peer) {
            self.inside
        } else {
            self.outside
        }
    }

    fn push(&self, op: RelayOp) -> Result<(), RewriteError> {
        push_bounded(&self.ops, op)
    }
}

impl Rewrite for MediaAnchor {
    fn name(&self) -> &'static str {
        "media"
    }

    fn sdp(&mut self, ctx: &SdpContext, sdp: &mut SdpEdit<'_>) -> Result<(), RewriteError> {
        let toward = self.side_of(ctx.peer.ip());
        let other = if toward == self.inside {
            self.outside
        } else {
            self.inside
        };
        let (from, facing_a, facing_b) = match ctx.toward {
            Toward::B => (Leg::A, other, toward),
            Toward::A => (Leg::B, toward, other),
        };
        let dtls = sdp.sdp().media.iter().any(|m| m.transport.is_dtls_srtp());
        if dtls && !self.calls.contains_key(&ctx.call) {
            self.push(RelayOp::Unanchored {
                call: ctx.call,
                why: "webrtc",
            })?;
        }
        let held = on_hold(sdp.sdp());
        let a = self.calls.entry(ctx.call).or_insert_with(|| Anchored {
            passthrough: dtls,
            held: false,
            media: CallMedia::new(facing_a, facing_b),
            opened: Vec::new(),
            a_sources: Vec::new(),
            b_sources: Vec::new(),
        });
        // Where the body goes is that side's signalling address: its media may come from it.
        let sources = match ctx.toward {
            Toward::A => &mut a.a_sources,
            Toward::B => &mut a.b_sources,
        };
        if !sources.contains(&ctx.peer.ip()) {
            sources.push(ctx.peer.ip());
        }
        if a.passthrough {
            self.passthrough_bodies += 1;
            return Ok(());
        }
        let anchored = a.media.anchor_edit(from, sdp, &mut self.ports);
        let n = u64::try_from(self.ports.in_use()).unwrap_or(u64::MAX);
        self.gauges.in_use.store(n, Relaxed);
        match anchored {
            Ok(()) => {}
            Err(AnchorError::NoPorts) => {
                self.exhausted += 1;
                self.gauges.exhausted.fetch_add(1, Relaxed);
                return Err(RewriteError::unavailable("media_ports_exhausted"));
            }
            Err(_) => return Err(RewriteError::new("media_sdp")),
        }
        let (fa, fb) = (facing_a.bind, facing_b.bind);
        let mut ops = Vec::new();
        let streams = a.media.streams().to_vec();
        if a.opened.len() < streams.len() {
            a.opened.resize(streams.len(), false);
        }
        for (i, s) in streams.iter().enumerate() {
            let Some(s) = s else { continue };
            let Some(opened) = a.opened.get_mut(i) else {
                continue;
            };
            if *opened {
                ops.push(RelayOp::Update {
                    call: ctx.call,
                    stream: i,
                    to_a: s.to_a,
                    to_b: s.to_b,
                });
            } else {
                *opened = true;
                ops.push(RelayOp::Open {
                    call: ctx.call,
                    stream: i,
                    a_bind: SocketAddr::new(fa, s.a_port),
                    b_bind: SocketAddr::new(fb, s.b_port),
                    to_a: s.to_a,
                    to_b: s.to_b,
                    a_sources: a.a_sources.clone(),
                    b_sources: a.b_sources.clone(),
                    rtcp_mux: s.rtcp_mux,
                });
            }
        }
        if held != a.held {
            a.held = held;
            ops.push(RelayOp::Hold {
                call: ctx.call,
                held,
            });
        }
        for op in ops {
            self.push(op)?;
        }
        Ok(())
    }

    fn invite(
        &mut self,
        call: &CallRequest<'_>,
        _out: &mut sipwarden_sip::Message,
    ) -> Result<(), RewriteError> {
        // A's signalling address, known now (after the offer was anchored): its media may
        // come from it. The Open for the offer's streams is still queued: amend it.
        let ip = call.source.ip();
        if let Some(a) = self.calls.get_mut(&call.call) {
            if !a.a_sources.contains(&ip) {
                a.a_sources.push(ip);
            }
        }
        if let Ok(mut q) = self.ops.lock() {
            for op in q.iter_mut() {
                if let RelayOp::Open {
                    call: c, a_sources, ..
                } = op
                {
                    if *c == call.call && !a_sources.contains(&ip) {
                        a_sources.push(ip);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_end(&mut self, call: u64, _now: Instant) {
        if let Some(mut a) = self.calls.remove(&call) {
            if a.passthrough {
                return;
            }
            a.media.release(&mut self.ports);
            self.publish_ports();
            let _ = self.push(RelayOp::Close { call });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_sip::sdp::SdpEdit;
    use sipwarden_stages::SdpKind;

    const OFFER: &str = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    const ANSWER: &str = "v=0\r\no=c 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

    fn anchor(ops: &RelayOps, max: u16) -> MediaAnchor {
        let side = |ip: &str| SideAddr {
            bind: ip.parse().unwrap(),
            advertised: None,
        };
        MediaAnchor::new(
            (side("127.0.0.1"), side("127.0.0.1")),
            vec!["127.0.0.10/32".parse().unwrap()],
            (20000, max),
            Arc::clone(ops),
        )
    }

    fn ctx(call: u64, toward: Toward, peer: &str) -> SdpContext {
        SdpContext {
            call,
            toward,
            kind: SdpKind::Invite,
            local: "127.0.0.1:5060".parse().unwrap(),
            peer: peer.parse().unwrap(),
        }
    }

    fn run(m: &mut MediaAnchor, c: &SdpContext, body: &str) -> Result<String, RewriteError> {
        let mut e = SdpEdit::new(body.as_bytes()).unwrap();
        m.sdp(c, &mut e)?;
        Ok(String::from_utf8(e.finish()).unwrap())
    }

    #[test]
    fn an_outbound_call_opens_one_stream_and_closes_it_at_the_end() {
        let ops = RelayOps::default();
        let mut m = anchor(&ops, 20099);
        // PBX (127.0.0.10) -> carrier (127.0.0.3): the offer goes to B, outside.
        let out = run(&mut m, &ctx(7, Toward::B, "127.0.0.3:5060"), OFFER).unwrap();
        assert!(
            out.contains("c=IN IP4 127.0.0.1") && !out.contains("127.0.0.9\r\nt="),
            "{out}"
        );
        let back = run(&mut m, &ctx(7, Toward::A, "127.0.0.10:5070"), ANSWER).unwrap();
        assert!(back.contains("c=IN IP4 127.0.0.1"), "{back}");
        let q: Vec<RelayOp> = ops.lock().unwrap().drain(..).collect();
        assert_eq!(q.len(), 2, "{q:?}");
        let RelayOp::Open {
            to_a, b_sources, ..
        } = &q[0]
        else {
            panic!("{q:?}")
        };
        assert_eq!(*to_a, Some("127.0.0.9:6000".parse().unwrap()));
        assert_eq!(b_sources, &vec!["127.0.0.3".parse::<IpAddr>().unwrap()]);
        assert!(matches!(
            &q[1],
            RelayOp::Update { to_b: Some(b), .. } if *b == "127.0.0.3:7000".parse::<SocketAddr>().unwrap()
        ));
        assert_eq!(m.ports(), (2, 50));
        m.on_end(7, Instant::now());
        assert_eq!(m.ports().0, 0);
        assert_eq!(
            ops.lock().unwrap().pop_front(),
            Some(RelayOp::Close { call: 7 })
        );
    }

    #[test]
    fn hold_and_resume_are_told_to_the_server_once_each() {
        let ops = RelayOps::default();
        let mut m = anchor(&ops, 20099);
        let holds = |ops: &RelayOps| -> Vec<bool> {
            ops.lock()
                .unwrap()
                .drain(..)
                .filter_map(|o| match o {
                    RelayOp::Hold { held, .. } => Some(held),
                    _ => None,
                })
                .collect()
        };
        run(&mut m, &ctx(3, Toward::B, "127.0.0.3:5060"), OFFER).unwrap();
        run(&mut m, &ctx(3, Toward::A, "127.0.0.10:5070"), ANSWER).unwrap();
        assert!(
            holds(&ops).is_empty(),
            "a call starting sendrecv is not on hold"
        );
        // The carrier holds (sendonly), the PBX answers recvonly: one Hold.
        let hold = ANSWER.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendonly\r\n");
        let held = OFFER.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=recvonly\r\n");
        run(&mut m, &ctx(3, Toward::A, "127.0.0.10:5070"), &hold).unwrap();
        run(&mut m, &ctx(3, Toward::B, "127.0.0.3:5060"), &held).unwrap();
        assert_eq!(holds(&ops), [true]);
        // Resumed: one Hold { held: false }.
        run(&mut m, &ctx(3, Toward::A, "127.0.0.10:5070"), ANSWER).unwrap();
        run(&mut m, &ctx(3, Toward::B, "127.0.0.3:5060"), OFFER).unwrap();
        assert_eq!(holds(&ops), [false]);
        // RFC 2543 hold: c=0.0.0.0.
        let zero = ANSWER.replace("c=IN IP4 127.0.0.3", "c=IN IP4 0.0.0.0");
        run(&mut m, &ctx(3, Toward::A, "127.0.0.10:5070"), &zero).unwrap();
        assert_eq!(holds(&ops), [true]);
    }

    #[test]
    fn a_webrtc_call_is_left_unanchored() {
        let ops = RelayOps::default();
        let mut m = anchor(&ops, 20099);
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=candidate:1 1 udp 2113937151 192.0.2.50 54400 typ host\r\n";
        let out = run(&mut m, &ctx(9, Toward::B, "127.0.0.10:5080"), offer).unwrap();
        assert_eq!(out, offer, "untouched: its ICE must reach the other side");
        // Nothing to open; the call record is told, once.
        let said: Vec<RelayOp> = ops.lock().unwrap().drain(..).collect();
        assert_eq!(
            said,
            [RelayOp::Unanchored {
                call: 9,
                why: "webrtc"
            }]
        );
        run(&mut m, &ctx(9, Toward::A, "127.0.0.3:5060"), offer).unwrap();
        assert!(ops.lock().unwrap().is_empty());
        assert_eq!((m.ports().0, m.passthrough_bodies), (0, 2));
        m.on_end(9, Instant::now());
        assert!(ops.lock().unwrap().is_empty());
    }

    #[test]
    fn the_call_past_the_range_is_refused() {
        let ops = RelayOps::default();
        let mut m = anchor(&ops, 20003);
        assert!(run(&mut m, &ctx(1, Toward::B, "127.0.0.3:5060"), OFFER).is_ok());
        assert_eq!(
            run(&mut m, &ctx(2, Toward::B, "127.0.0.3:5060"), OFFER),
            Err(RewriteError::unavailable("media_ports_exhausted"))
        );
        assert_eq!(m.exhausted, 1);
        m.on_end(2, Instant::now());
        m.on_end(1, Instant::now());
        assert!(run(&mut m, &ctx(3, Toward::B, "127.0.0.3:5060"), OFFER).is_ok());
    }
}
