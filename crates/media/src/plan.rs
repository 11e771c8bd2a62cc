//! What each leg's SDP says once media is anchored: the relay's port facing the receiver in
//! every active `m=` line, the gateway's address on the receiver's side in every `c=` line,
//! `a=rtcp` following them, and no ICE lines (the relay hides the other side's candidates).
//! `a=crypto`, `a=fingerprint`, `a=rtcp-mux`, directions and formats pass as they are.

use std::net::{IpAddr, SocketAddr};

use sipwarden_sip::sdp::{SdpEdit, Section};

use crate::ports::Ports;

/// The leg an SDP body comes from: A called the gateway, B is where the call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// The calling side.
    A,
    /// The called side.
    B,
}

/// The gateway's media address on one side: where the relay listens, and what SDP names (the
/// address a NAT in front of it maps to, when there is one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideAddr {
    /// Where the relay's sockets on this side are bound.
    pub bind: IpAddr,
    /// What to write in SDP instead, behind a NAT.
    pub advertised: Option<IpAddr>,
}

impl SideAddr {
    /// The address SDP names.
    pub fn sdp(&self) -> IpAddr {
        self.advertised.unwrap_or(self.bind)
    }
}

/// One media stream through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The relay's RTP port facing A (RTCP on the next port, or on this one with rtcp-mux).
    pub a_port: u16,
    /// The relay's RTP port facing B.
    pub b_port: u16,
    /// Where A asked to receive this stream (`None`: not yet, or on hold with 0.0.0.0).
    pub to_a: Option<SocketAddr>,
    /// Where B asked to receive it.
    pub to_b: Option<SocketAddr>,
    /// Whether the last SDP for it had `a=rtcp-mux`.
    pub rtcp_mux: bool,
}

/// Why an SDP could not be anchored; the body is left as it was and nothing is held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The SDP does not parse.
    #[error("SDP does not parse: {0}")]
    Parse(String),
    /// Every port pair of the range is in use.
    #[error("no relay ports left")]
    NoPorts,
    /// A media line the editor could not change.
    #[error("SDP could not be rewritten")]
    Edit,
}

/// ICE attributes: what the relay hides of the sender (its candidates and credentials).
const ICE: &[&str] = &[
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
];

/// A call's streams, by `m=` line index.
#[derive(Debug, Clone)]
pub struct CallMedia {
    facing_a: SideAddr,
    facing_b: SideAddr,
    streams: Vec<Option<Stream>>,
}

impl CallMedia {
    /// A call whose A leg is on the side of `facing_a` and whose B leg on that of `facing_b`
    /// (for a call from the PBX to a trunk: the LAN address, then the public one).
    pub fn new(facing_a: SideAddr, facing_b: SideAddr) -> Self {
        Self {
            facing_a,
            facing_b,
            streams: Vec::new(),
        }
    }

    /// The streams, by `m=` line; `None` for a rejected one.
    pub fn streams(&self) -> &[Option<Stream>] {
        &self.streams
    }

    /// Gives every pair back (the call ended).
    pub fn release(&mut self, ports: &mut Ports) {
        for s in self.streams.drain(..).flatten() {
            ports.release(s.a_port);
            ports.release(s.b_port);
        }
    }

    /// Rewrites an offer or answer that `from` sent, for the other leg. A stream seen for the
    /// first time gets a pair on each side; a stream the SDP rejects (port 0) gives its pairs
    /// back. On error nothing changes (pairs taken by this call are given back).
    pub fn anchor(
        &mut self,
        from: Leg,
        body: &[u8],
        ports: &mut Ports,
    ) -> Result<Vec<u8>, AnchorError> {
        let mut edit = SdpEdit::new(body).map_err(|e| AnchorError::Parse(e.to_string()))?;
        self.anchor_edit(from, &mut edit, ports)?;
        Ok(edit.finish())
    }

    /// [`CallMedia::anchor`] on an editor that may hold other edits already (the call core's
    /// topology hiding of the origin and session name, which these never overlap): the form
    /// the call core's rewrite seam hands a rewrite. On error the edits made here are undone.
    pub fn anchor_edit(
        &mut self,
        from: Leg,
        edit: &mut SdpEdit<'_>,
        ports: &mut Ports,
    ) -> Result<(), AnchorError> {
        let mark = edit.mark();
        let r = self.anchor_marked(from, edit, ports);
        if r.is_err() {
            edit.rollback(mark);
        }
        r
    }

    fn anchor_marked(
        &mut self,
        from: Leg,
        edit: &mut SdpEdit<'_>,
        ports: &mut Ports,
    ) -> Result<(), AnchorError> {
        let sdp = edit.sdp().clone();
        let receiver = match from {
            Leg::A => self.facing_b,
            Leg::B => self.facing_a,
        };
        let ours = receiver.sdp();
        // Allocate first, all or nothing.
        let before = self.streams.clone();
        if self.streams.len() < sdp.media.len() {
            self.streams.resize(sdp.media.len(), None);
        }
        let mut taken: Vec<u16> = Vec::new();
        for (i, m) in sdp.media.iter().enumerate() {
            let Some(slot) = self.streams.get_mut(i) else {
                continue;
            };
            if !m.is_active() || slot.is_some() {
                continue;
            }
            let a = ports.alloc();
            let b = a.and_then(|_| ports.alloc());
            let (Some(a), Some(b)) = (a, b) else {
                taken.extend(a);
                for p in taken {
                    ports.release(p);
                }
                self.streams = before;
                return Err(AnchorError::NoPorts);
            };
            taken.extend([a, b]);
            *slot = Some(Stream {
                a_port: a,
                b_port: b,
                to_a: None,
                to_b: None,
                rtcp_mux: false,
            });
        }
        let mut rewrite = || -> Result<(), AnchorError> {
            // ICE of the sender, at both levels (indexes of the parse; highest first).
            strip(edit, Section::Session)?;
            if sdp.connection.is_some() {
                edit.set_connection_address(Section::Session, ours)
                    .map_err(|_| AnchorError::Edit)?;
            }
            for (i, m) in sdp.media.iter().enumerate() {
                let section = Section::Media(i);
                // Every stream, rejected ones too, names only the gateway.
                if m.connection.is_some() {
                    edit.set_connection_address(section, ours)
                        .map_err(|_| AnchorError::Edit)?;
                }
                strip(edit, section)?;
                let Some(Some(stream)) = self.streams.get_mut(i).filter(|_| m.is_active()) else {
                    continue;
                };
                let sender_ip = m
                    .connection
                    .as_ref()
                    .or(sdp.connection.as_ref())
                    .and_then(|c| c.ip());
                let target = sender_ip
                    .filter(|ip| !ip.is_unspecified())
                    .map(|ip| SocketAddr::new(ip, m.port));
                stream.rtcp_mux = m.has_attribute("rtcp-mux");
                let port = match from {
                    Leg::A => {
                        stream.to_a = target;
                        stream.b_port
                    }
                    Leg::B => {
                        stream.to_b = target;
                        stream.a_port
                    }
                };
                edit.set_media_port(i, port)
                    .map_err(|_| AnchorError::Edit)?;
                if let Some(idx) = edit.find_attribute(section, "rtcp") {
                    let rtcp_port = if stream.rtcp_mux {
                        port
                    } else {
                        port.saturating_add(1)
                    };
                    let kind = if ours.is_ipv4() { "IP4" } else { "IP6" };
                    let v = format!("{rtcp_port} IN {kind} {ours}");
                    edit.set_attribute_value(section, idx, Some(&v))
                        .map_err(|_| AnchorError::Edit)?;
                }
            }
            Ok(())
        };
        if let Err(e) = rewrite() {
            for p in taken {
                ports.release(p);
            }
            self.streams = before;
            return Err(e);
        }
        // Streams the SDP rejects (port 0) give their pairs back.
        for (i, m) in sdp.media.iter().enumerate() {
            if m.is_active() {
                continue;
            }
            if let Some(s) = self.streams.get_mut(i).and_then(Option::take) {
                ports.release(s.a_port);
                ports.release(s.b_port);
            }
        }
        Ok(())
    }
}

/// Removes a section's ICE lines.
fn strip(edit: &mut SdpEdit<'_>, section: Section) -> Result<(), AnchorError> {
    let ice: Vec<usize> = edit
        .attributes(section)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, a)| ICE.contains(&a.name))
        .map(|(i, _)| i)
        .collect();
    for i in ice.into_iter().rev() {
        edit.remove_attribute(section, i)
            .map_err(|_| AnchorError::Edit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PBX_OFFER: &str = "v=0\r\no=pbx 1 1 IN IP4 10.20.30.40\r\ns=-\r\nc=IN IP4 10.20.30.40\r\nt=0 0\r\nm=audio 14000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:14001\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\n";

    fn lan() -> SideAddr {
        SideAddr {
            bind: "10.0.0.1".parse().unwrap(),
            advertised: None,
        }
    }

    fn public() -> SideAddr {
        SideAddr {
            bind: "192.168.1.5".parse().unwrap(),
            advertised: Some("203.0.113.7".parse().unwrap()),
        }
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn an_offer_gets_the_relay_port_and_address_facing_the_receiver() {
        let mut ports = Ports::new(20000, 20099);
        let mut call = CallMedia::new(lan(), public());
        let out = text(
            &call
                .anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports)
                .unwrap(),
        );
        // The carrier sees the advertised public address and the B-facing port.
        let s = call.streams()[0].unwrap();
        assert!(out.contains("c=IN IP4 203.0.113.7\r\n"), "{out}");
        assert!(
            out.contains(&format!("m=audio {} RTP/AVP 0 8 101", s.b_port)),
            "{out}"
        );
        assert!(
            out.contains(&format!("a=rtcp:{} IN IP4 203.0.113.7", s.b_port + 1)),
            "{out}"
        );
        assert!(!out.contains("10.20.30.40\r\nt=") && !out.contains("c=IN IP4 10.20.30.40"));
        assert!(
            out.contains("m=video 0 RTP/AVP 96"),
            "a rejected stream stays rejected"
        );
        assert_eq!(s.to_a, Some("10.20.30.40:14000".parse().unwrap()));
        assert_eq!(call.streams()[1], None);
        assert_eq!(ports.in_use(), 2);
        // The answer from the carrier: the PBX sees the LAN address and the A-facing port.
        let answer = "v=0\r\no=c 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 0 RTP/AVP 96\r\n";
        let back = text(&call.anchor(Leg::B, answer.as_bytes(), &mut ports).unwrap());
        let s = call.streams()[0].unwrap();
        assert!(back.contains("c=IN IP4 10.0.0.1\r\n"), "{back}");
        assert!(
            back.contains(&format!("m=audio {} RTP/AVP 0", s.a_port)),
            "{back}"
        );
        assert!(back.contains("a=rtcp-mux"), "{back}");
        assert!(!back.contains("198.51.100.9\r\nt="), "{back}");
        assert_eq!(s.to_b, Some("198.51.100.9:30000".parse().unwrap()));
        assert!(s.rtcp_mux);
        assert_eq!(ports.in_use(), 2, "the answer reuses the offer's pairs");
        call.release(&mut ports);
        assert_eq!(ports.in_use(), 0);
    }

    #[test]
    fn ice_is_removed_and_keys_pass() {
        let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\na=ice-options:trickle\r\nt=0 0\r\nm=audio 5004 RTP/SAVP 0\r\nc=IN IP4 192.0.2.1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\na=candidate:1 1 UDP 2130706431 192.0.2.1 5004 typ host\r\na=candidate:2 1 UDP 1694498815 198.51.100.1 40000 typ srflx raddr 192.0.2.1 rport 5004\r\na=end-of-candidates\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        let mut ports = Ports::new(20000, 20099);
        let mut call = CallMedia::new(public(), lan());
        let out = text(&call.anchor(Leg::A, offer.as_bytes(), &mut ports).unwrap());
        for gone in [
            "candidate",
            "ice-ufrag",
            "ice-pwd",
            "ice-options",
            "end-of-candidates",
            "198.51.100.1",
        ] {
            assert!(!out.contains(gone), "{gone} left in {out}");
        }
        assert!(
            out.contains(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
            ),
            "{out}"
        );
        assert!(out.contains("RTP/SAVP"), "{out}");
        assert!(out.contains("c=IN IP4 10.0.0.1"), "{out}");
    }

    #[test]
    fn a_reoffer_keeps_its_pairs_adds_new_streams_and_hold_stops_sending() {
        let mut ports = Ports::new(20000, 20099);
        let mut call = CallMedia::new(lan(), public());
        call.anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports)
            .unwrap();
        let first = call.streams()[0].unwrap();
        // Hold (c=0.0.0.0, sendonly) and video added.
        let reoffer = "v=0\r\no=pbx 1 2 IN IP4 10.20.30.40\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 14000 RTP/AVP 0\r\na=sendonly\r\nm=video 14002 RTP/AVP 96\r\n";
        let out = text(&call.anchor(Leg::A, reoffer.as_bytes(), &mut ports).unwrap());
        let s = call.streams()[0].unwrap();
        assert_eq!((s.a_port, s.b_port), (first.a_port, first.b_port));
        assert_eq!(
            s.to_a, None,
            "nothing to send to while on hold with 0.0.0.0"
        );
        assert!(out.contains("a=sendonly"), "{out}");
        let v = call.streams()[1].unwrap();
        assert!(
            out.contains(&format!("m=video {} RTP/AVP 96", v.b_port)),
            "{out}"
        );
        assert_eq!(ports.in_use(), 4);
        // The answer rejects video: its pairs go back.
        let answer = "v=0\r\no=c 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=recvonly\r\nm=video 0 RTP/AVP 96\r\n";
        call.anchor(Leg::B, answer.as_bytes(), &mut ports).unwrap();
        assert_eq!(call.streams()[1], None);
        assert_eq!(ports.in_use(), 2);
    }

    proptest::proptest! {
        /// Whatever the sender's addresses and ports, the SDP the other leg gets names only the
        /// gateway's address, parses, and the call holds two pairs per active stream.
        #[test]
        fn the_receiver_never_sees_the_senders_address(
            ip in proptest::array::uniform4(1u8..=254),
            ports_in in proptest::collection::vec(proptest::option::of(1024u16..), 1..5),
            session_c in proptest::bool::ANY,
        ) {
            let sender = std::net::Ipv4Addr::from(ip).to_string();
            let mut sdp = format!("v=0\r\no=x 1 1 IN IP4 {sender}\r\ns=-\r\n");
            if session_c {
                sdp.push_str(&format!("c=IN IP4 {sender}\r\n"));
            }
            sdp.push_str("t=0 0\r\n");
            for p in &ports_in {
                sdp.push_str(&format!("m=audio {} RTP/AVP 0\r\n", p.unwrap_or(0)));
                if !session_c {
                    sdp.push_str(&format!("c=IN IP4 {sender}\r\n"));
                }
                sdp.push_str(&format!("a=candidate:1 1 UDP 1 {sender} 9 typ host\r\n"));
            }
            let mut pool = Ports::new(20000, 29999);
            let mut call = CallMedia::new(lan(), public());
            let out = text(&call.anchor(Leg::A, sdp.as_bytes(), &mut pool).unwrap());
            let body = out.split("s=-").nth(1).unwrap_or("");
            proptest::prop_assert!(!body.contains(&sender), "{}", out);
            proptest::prop_assert!(sipwarden_sip::sdp::parse(out.as_bytes()).is_ok());
            let active = ports_in.iter().filter(|p| p.is_some()).count();
            proptest::prop_assert_eq!(pool.in_use(), 2 * active);
            call.release(&mut pool);
            proptest::prop_assert_eq!(pool.in_use(), 0);
        }
    }

    #[test]
    fn on_an_editor_it_keeps_earlier_edits_and_undoes_only_its_own_on_failure() {
        let mut ports = Ports::new(20000, 20099);
        let mut call = CallMedia::new(lan(), public());
        let mut edit = SdpEdit::new(PBX_OFFER.as_bytes()).unwrap();
        edit.set_origin_username("sipwarden").unwrap();
        call.anchor_edit(Leg::A, &mut edit, &mut ports).unwrap();
        let out = text(&edit.finish());
        assert!(
            out.contains("o=sipwarden ") && out.contains("c=IN IP4 203.0.113.7"),
            "{out}"
        );
        // No ports: nothing of the anchoring stays, the earlier edit does.
        let mut empty = Ports::new(20000, 20000);
        let mut call = CallMedia::new(lan(), public());
        let mut edit = SdpEdit::new(PBX_OFFER.as_bytes()).unwrap();
        edit.set_origin_username("sipwarden").unwrap();
        assert_eq!(
            call.anchor_edit(Leg::A, &mut edit, &mut empty),
            Err(AnchorError::NoPorts)
        );
        let out = text(&edit.finish());
        assert!(
            out.contains("o=sipwarden ") && out.contains("c=IN IP4 10.20.30.40"),
            "{out}"
        );
    }

    #[test]
    fn no_ports_left_refuses_and_holds_nothing() {
        let mut ports = Ports::new(20000, 20003);
        assert_eq!(ports.capacity(), 2, "one stream's worth");
        let mut busy = CallMedia::new(lan(), public());
        busy.anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports)
            .unwrap();
        let mut call = CallMedia::new(lan(), public());
        assert_eq!(
            call.anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports),
            Err(AnchorError::NoPorts)
        );
        assert!(call.streams().iter().all(Option::is_none));
        assert_eq!(ports.in_use(), 2);
        busy.release(&mut ports);
        assert!(
            call.anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports)
                .is_ok()
        );
        // Half a stream's worth: the one pair taken goes back.
        let mut ports = Ports::new(20000, 20001);
        let mut call = CallMedia::new(lan(), public());
        assert_eq!(
            call.anchor(Leg::A, PBX_OFFER.as_bytes(), &mut ports),
            Err(AnchorError::NoPorts)
        );
        assert_eq!(ports.in_use(), 0);
        assert!(matches!(
            call.anchor(Leg::A, b"not sdp", &mut ports),
            Err(AnchorError::Parse(_))
        ));
    }
}
