//! Media anchoring in rtpengine (`[media] engine = "rtpengine"`), as a rewrite that does no
//! I/O: rtpengine writes each leg's SDP itself (its ports, its keys), so every SDP body of a
//! call leaves the core marked with a token (a session attribute, [`MARKER`]) and the rewrite
//! queues what rtpengine must be asked for it: offer or answer, which side offered, the
//! protocol the receiver gets. The server asks rtpengine before the message goes on the wire
//! and puts rtpengine's SDP in its place (a retransmission carries the same token and gets the
//! same SDP); a body rtpengine could not anchor never leaves, and its call is ended.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;
use sipwarden_config::MediaProtocol;
use sipwarden_media::ng::{Exchange, Flags};
use sipwarden_sip::Method;
use sipwarden_sip::sdp::SdpEdit;
use sipwarden_sip::sdp::Section;
use sipwarden_stages::{Rewrite, RewriteError, SdpContext, SdpKind, Toward};

/// The session attribute that marks a body for rtpengine: `a=x-sipwarden-ng:TOKEN`.
pub const MARKER: &str = "x-sipwarden-ng";

/// One SDP body for rtpengine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSdp {
    /// The token in the body's marker.
    pub token: u64,
    /// The call.
    pub call: u64,
    /// Offer or answer.
    pub exchange: Exchange,
    /// The offerer's leg tag (`a` or `b`).
    pub from_tag: &'static str,
    /// The answerer's.
    pub to_tag: &'static str,
    /// What the receiver gets.
    pub flags: Flags,
}

/// What the rewrite queued for rtpengine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineWork {
    /// A marked body is on its way out.
    Sdp(EngineSdp),
    /// The call ended: delete it in rtpengine.
    Delete {
        /// The call.
        call: u64,
    },
    /// The call went on hold or came off it (the hold timeout replaces the media timeout).
    Hold {
        /// The call.
        call: u64,
        /// On hold now.
        held: bool,
    },
}

/// The queue the server drains every round.
pub type EngineOps = Arc<Mutex<VecDeque<EngineWork>>>;

/// Where a call's offer/answer exchange stands.
#[derive(Debug, Default)]
struct EngineCall {
    /// The leg the outstanding offer went out on.
    offer_toward: Option<Toward>,
    /// The last offer or answer put the call on hold.
    held: bool,
}

/// The rtpengine anchoring rewrite.
#[derive(Debug)]
pub struct EngineAnchor {
    pbx_networks: Vec<IpNet>,
    inside: MediaProtocol,
    outside: MediaProtocol,
    calls: HashMap<u64, EngineCall>,
    next_token: u64,
    ops: EngineOps,
}

fn tag(t: Toward) -> &'static str {
    match t {
        Toward::A => "a",
        Toward::B => "b",
    }
}

fn other(t: Toward) -> Toward {
    match t {
        Toward::A => Toward::B,
        Toward::B => Toward::A,
    }
}

impl EngineAnchor {
    /// Anchoring in rtpengine; the PBX's networks are inside, and each side gets its protocol.
    pub fn new(
        pbx_networks: Vec<IpNet>,
        (inside, outside): (MediaProtocol, MediaProtocol),
        ops: EngineOps,
    ) -> Self {
        Self {
            pbx_networks,
            inside,
            outside,
            calls: HashMap::new(),
            // Tokens differ from one run to the next only by the call ids they serve; a
            // restart empties the server's table as well.
            next_token: 1,
            ops,
        }
    }

    fn push(&self, work: EngineWork) -> Result<(), RewriteError> {
        crate::media::push_bounded(&self.ops, work)
    }
}

impl Rewrite for EngineAnchor {
    fn name(&self) -> &'static str {
        "media"
    }

    fn sdp(&mut self, ctx: &SdpContext, sdp: &mut SdpEdit<'_>) -> Result<(), RewriteError> {
        let inside = crate::media::is_inside(&self.pbx_networks, ctx.peer.ip());
        let call = self.calls.entry(ctx.call).or_default();
        // Requests that open an exchange carry offers, ACK and PRACK answers; a response
        // answers the offer that went the other way, or (a late offer) makes one.
        let exchange = match ctx.kind {
            SdpKind::Invite => Exchange::Offer,
            SdpKind::Ack => Exchange::Answer,
            SdpKind::InDialogRequest(m) if m == Method::Ack || m == Method::Prack => {
                Exchange::Answer
            }
            SdpKind::InDialogRequest(_) => Exchange::Offer,
            SdpKind::InviteResponse(_) | SdpKind::InDialogResponse(..) => {
                if call.offer_toward == Some(other(ctx.toward)) {
                    Exchange::Answer
                } else {
                    Exchange::Offer
                }
            }
        };
        // The sender's leg is the one the body does not go out on.
        let sender = other(ctx.toward);
        let (from_tag, to_tag) = match exchange {
            Exchange::Offer => {
                call.offer_toward = Some(ctx.toward);
                (tag(sender), tag(ctx.toward))
            }
            Exchange::Answer => (tag(ctx.toward), tag(sender)),
        };
        let protocol = if inside { self.inside } else { self.outside };
        let flags = Flags {
            // The protocol is chosen with the offer: an answer keeps the one its offerer
            // offered (rtpengine remembers it), as offer/answer requires.
            transport_protocol: match exchange {
                Exchange::Offer => protocol.sdp_proto(),
                Exchange::Answer => None,
            },
            // A PBX does not do ICE; rtpengine answers a browser's ICE on the outside.
            ice_remove: inside,
            direction: None,
        };
        let held = crate::media::on_hold(sdp.sdp());
        let hold_changed = held != call.held;
        call.held = held;
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        sdp.insert_attribute(Section::Session, MARKER, Some(&token.to_string()))
            .map_err(|_| RewriteError::new("media_sdp"))?;
        self.push(EngineWork::Sdp(EngineSdp {
            token,
            call: ctx.call,
            exchange,
            from_tag,
            to_tag,
            flags,
        }))?;
        if hold_changed {
            self.push(EngineWork::Hold {
                call: ctx.call,
                held,
            })?;
        }
        Ok(())
    }

    fn on_end(&mut self, call: u64, _now: Instant) {
        if self.calls.remove(&call).is_some() {
            let _ = self.push(EngineWork::Delete { call });
        }
    }
}

/// The token of a marked message (the SIP message's bytes, as the transports get them).
pub fn marked_token(message: &[u8]) -> Option<u64> {
    let needle = b"\na=x-sipwarden-ng:";
    let at = message
        .windows(needle.len())
        .position(|w| w == needle)?
        .checked_add(needle.len())?;
    let rest = message.get(at..)?;
    let end = rest.iter().position(|c| !c.is_ascii_digit())?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

/// The body without its marker line: what rtpengine is given.
pub fn unmarked(body: &[u8]) -> Vec<u8> {
    let needle = b"a=x-sipwarden-ng:";
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&c| c == b'\n') {
        if !line.starts_with(needle) {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_sip::StatusCode;

    const OFFER: &str = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

    fn anchor(ops: &EngineOps) -> EngineAnchor {
        EngineAnchor::new(
            vec!["127.0.0.10/32".parse().unwrap()],
            (MediaProtocol::Rtp, MediaProtocol::Srtp),
            Arc::clone(ops),
        )
    }

    fn run(a: &mut EngineAnchor, call: u64, toward: Toward, kind: SdpKind, peer: &str) -> Vec<u8> {
        let ctx = SdpContext {
            call,
            toward,
            kind,
            local: "127.0.0.1:5060".parse().unwrap(),
            peer: peer.parse().unwrap(),
        };
        let mut edit = SdpEdit::new(OFFER.as_bytes()).unwrap();
        a.sdp(&ctx, &mut edit).unwrap();
        edit.finish()
    }

    fn sdp_ops(ops: &EngineOps) -> Vec<EngineSdp> {
        ops.lock()
            .unwrap()
            .drain(..)
            .filter_map(|w| match w {
                EngineWork::Sdp(s) => Some(s),
                EngineWork::Delete { .. } | EngineWork::Hold { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_outbound_call_offers_srtp_to_the_carrier_and_answers_rtp_to_the_pbx() {
        let ops = EngineOps::default();
        let mut a = anchor(&ops);
        // The PBX (A) calls out: the offer goes to the carrier on B.
        let body = run(&mut a, 1, Toward::B, SdpKind::Invite, "127.0.0.3:5060");
        let token = marked_token(&body).unwrap();
        assert_eq!(
            unmarked(&body),
            OFFER.as_bytes(),
            "only the marker is added"
        );
        let answer = run(
            &mut a,
            1,
            Toward::A,
            SdpKind::InviteResponse(StatusCode::OK),
            "127.0.0.10:5070",
        );
        let ops = sdp_ops(&ops);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].token, token);
        assert_eq!(ops[0].exchange, Exchange::Offer);
        assert_eq!((ops[0].from_tag, ops[0].to_tag), ("a", "b"));
        assert_eq!(ops[0].flags.transport_protocol, Some("RTP/SAVP"));
        assert!(!ops[0].flags.ice_remove);
        assert_eq!(ops[1].exchange, Exchange::Answer);
        assert_eq!((ops[1].from_tag, ops[1].to_tag), ("a", "b"));
        // The PBX offered RTP/AVP and gets its answer in RTP/AVP: rtpengine keeps the
        // offerer's protocol for the answer.
        assert_eq!(ops[1].flags.transport_protocol, None);
        assert!(ops[1].flags.ice_remove);
        assert_eq!(marked_token(&answer), Some(token + 1));
    }

    #[test]
    fn an_inbound_offer_gets_the_pbx_side_protocol() {
        let ops = EngineOps::default();
        let mut a = anchor(&ops);
        // The carrier (A) calls in: its offer goes to the PBX on B, inside.
        run(&mut a, 4, Toward::B, SdpKind::Invite, "127.0.0.10:5080");
        run(
            &mut a,
            4,
            Toward::A,
            SdpKind::InviteResponse(StatusCode::OK),
            "127.0.0.3:5060",
        );
        let ops = sdp_ops(&ops);
        assert_eq!(ops[0].flags.transport_protocol, Some("RTP/AVP"));
        assert!(ops[0].flags.ice_remove);
        assert_eq!(ops[1].flags.transport_protocol, None);
        assert!(!ops[1].flags.ice_remove);
    }

    #[test]
    fn a_re_invite_from_the_callee_is_its_own_offer_and_late_offers_are_followed() {
        let ops = EngineOps::default();
        let mut a = anchor(&ops);
        run(&mut a, 2, Toward::B, SdpKind::Invite, "127.0.0.3:5060");
        run(
            &mut a,
            2,
            Toward::A,
            SdpKind::InviteResponse(StatusCode::OK),
            "127.0.0.10:5070",
        );
        // The carrier (B) puts the call on hold: an offer from b to a, then a's answer.
        run(
            &mut a,
            2,
            Toward::A,
            SdpKind::InDialogRequest(Method::Invite),
            "127.0.0.10:5070",
        );
        run(
            &mut a,
            2,
            Toward::B,
            SdpKind::InDialogResponse(Method::Invite, StatusCode::OK),
            "127.0.0.3:5060",
        );
        // A late offer: a re-INVITE without SDP, the offer in B's 200, the answer in the ACK.
        run(
            &mut a,
            2,
            Toward::A,
            SdpKind::InDialogResponse(Method::Invite, StatusCode::OK),
            "127.0.0.10:5070",
        );
        run(
            &mut a,
            2,
            Toward::B,
            SdpKind::InDialogRequest(Method::Ack),
            "127.0.0.3:5060",
        );
        let got: Vec<_> = sdp_ops(&ops)
            .into_iter()
            .map(|o| (o.exchange, o.from_tag, o.to_tag))
            .collect();
        assert_eq!(
            got,
            [
                (Exchange::Offer, "a", "b"),
                (Exchange::Answer, "a", "b"),
                (Exchange::Offer, "b", "a"),
                (Exchange::Answer, "b", "a"),
                (Exchange::Offer, "b", "a"),
                (Exchange::Answer, "b", "a"),
            ]
        );
        a.on_end(2, Instant::now());
        a.on_end(2, Instant::now());
        let q: Vec<_> = ops.lock().unwrap().drain(..).collect();
        assert_eq!(q, [EngineWork::Delete { call: 2 }], "one delete per call");
    }

    #[test]
    fn markers_are_found_in_whole_messages_only_when_well_formed() {
        let msg = b"INVITE sip:x SIP/2.0\r\nContent-Length: 40\r\n\r\nv=0\r\na=x-sipwarden-ng:42\r\nm=audio 1 RTP/AVP 0\r\n";
        assert_eq!(marked_token(msg), Some(42));
        assert_eq!(marked_token(b"v=0\r\na=x-sipwarden-ng:\r\n"), None);
        assert_eq!(marked_token(b"v=0\r\na=x-sipwarden-ng:12"), None);
        assert_eq!(marked_token(b"v=0\r\na=other:12\r\n"), None);
        assert_eq!(
            unmarked(b"v=0\r\na=x-sipwarden-ng:42\r\nm=audio 1 RTP/AVP 0\r\n"),
            b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"
        );
    }
}
