//! CPU cost of one whole call in the core, without sockets: the carrier's INVITE to a DID,
//! the PBX's 180 and 200, the ACK, the carrier's BYE and the PBX's 200, each parsed from
//! bytes as the transport would hand it over, and every message the gateway builds
//! serialised as the transport would send it. Thirteen messages in, eleven out. The gateway
//! is `sipwarden-testkit`'s `Lab`, the one the flow tests drive, but the bench drains its
//! core itself: the harness would parse every message sent, the bench parses only the ones it
//! answers.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sipwarden_sip::{HeaderName, Message, StatusCode};
use sipwarden_testkit::{CARRIER, LAB_CONFIG, Lab, PBX_UAC, PBX_UAS, udp};

/// The carrier's offer (and the PBX's answer): a fuller SDP than the flow tests' PBX offer.
const SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

struct Rig {
    lab: Lab,
    n: u64,
}

impl Rig {
    fn feed(&mut self, from: &str, bytes: &[u8]) {
        self.lab.feed(udp(from), bytes);
    }

    /// Drains what the core sends, serialising each message; returns the last one to `to`.
    fn drain(&mut self, to: &str) -> Option<Message> {
        let to: SocketAddr = to.parse().unwrap();
        let mut last = None;
        while let Some(t) = self.lab.core.poll_transmit() {
            black_box(&t.bytes);
            if t.dest.addr == to {
                last = Some(t.bytes);
            }
        }
        last.map(|b| Message::parse(&b).unwrap())
    }

    fn one_call(&mut self) {
        self.n += 1;
        let n = self.n;
        let invite = format!(
            "INVITE sip:+15551230042@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-{n}-1\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c{n}\r\nTo: <sip:+15551230042@127.0.0.1>\r\nCall-ID: bench-{n}@127.0.0.3\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.3:5060>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        self.feed(CARRIER, invite.as_bytes());
        let pbx_inv = self.drain(PBX_UAS).unwrap();
        for code in [180u16, 200] {
            let mut r =
                Message::response_to(&pbx_inv, StatusCode::new(code).unwrap(), None, Some("p"))
                    .unwrap();
            r.push_header(HeaderName::Contact, "<sip:pbx@127.0.0.10:5080>")
                .unwrap();
            if code == 200 {
                r.set_body(
                    bytes::Bytes::from_static(SDP.as_bytes()),
                    Some("application/sdp"),
                )
                .unwrap();
            }
            r.finish().unwrap();
            self.feed(PBX_UAS, &r.to_bytes());
        }
        let ok = self.drain(CARRIER).unwrap();
        let to = ok.header(HeaderName::To).unwrap().to_owned();
        let ack = format!(
            "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-{n}-2\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c{n}\r\nTo: {to}\r\nCall-ID: bench-{n}@127.0.0.3\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(CARRIER, ack.as_bytes());
        self.drain(PBX_UAS);
        let bye = format!(
            "BYE sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-{n}-3\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c{n}\r\nTo: {to}\r\nCall-ID: bench-{n}@127.0.0.3\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(CARRIER, bye.as_bytes());
        let pbx_bye = self.drain(PBX_UAS).unwrap();
        let r = Message::response_to(&pbx_bye, StatusCode::OK, None, None).unwrap();
        self.feed(PBX_UAS, &r.to_bytes());
        self.drain(CARRIER);
        // Let the transaction timers run as they would over a second, keeping the tables at
        // their steady-state size.
        self.lab.now += Duration::from_millis(1);
        self.lab.core.handle_timeout(self.lab.now);
    }
}

impl Rig {
    /// One outbound call PBX -> trunk (no challenge): INVITE, 180, 200, ACK, BYE, 200. `to`
    /// is the carrier the route leads to.
    fn one_outbound_call(&mut self, callee: &str, to: &str) {
        self.n += 1;
        let n = self.n;
        let invite = format!(
            "INVITE sip:{callee}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5070;branch=z9hG4bK-o{n}-1\r\nFrom: <sip:+15551230001@127.0.0.10>;tag=p{n}\r\nTo: <sip:{callee}@127.0.0.1>\r\nCall-ID: out-{n}@127.0.0.10\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@127.0.0.10:5070>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        self.feed(PBX_UAC, invite.as_bytes());
        let out = self.drain(to).unwrap();
        for code in [180u16, 200] {
            let mut r = Message::response_to(&out, StatusCode::new(code).unwrap(), None, Some("c"))
                .unwrap();
            r.push_header(HeaderName::Contact, "<sip:c@127.0.0.3:5060>")
                .unwrap();
            if code == 200 {
                r.set_body(
                    bytes::Bytes::from_static(SDP.as_bytes()),
                    Some("application/sdp"),
                )
                .unwrap();
            }
            r.finish().unwrap();
            self.feed(to, &r.to_bytes());
        }
        let ok = self.drain(PBX_UAC).unwrap();
        let to_hdr = ok.header(HeaderName::To).unwrap().to_owned();
        let ack = format!(
            "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5070;branch=z9hG4bK-o{n}-2\r\nFrom: <sip:+15551230001@127.0.0.10>;tag=p{n}\r\nTo: {to_hdr}\r\nCall-ID: out-{n}@127.0.0.10\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(PBX_UAC, ack.as_bytes());
        self.drain(to);
        let bye = format!(
            "BYE sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5070;branch=z9hG4bK-o{n}-3\r\nFrom: <sip:+15551230001@127.0.0.10>;tag=p{n}\r\nTo: {to_hdr}\r\nCall-ID: out-{n}@127.0.0.10\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(PBX_UAC, bye.as_bytes());
        let trunk_bye = self.drain(to).unwrap();
        let r = Message::response_to(&trunk_bye, StatusCode::OK, None, None).unwrap();
        self.feed(to, &r.to_bytes());
        self.drain(PBX_UAC);
        self.lab.now += Duration::from_millis(1);
        self.lab.core.handle_timeout(self.lab.now);
    }
}

/// Outbound calls with the lab's one trunk, and with two trunks and prefix routes (`+44` to
/// the second, everything else to the first with the second as fallback): what routing over
/// several trunks costs a call.
fn outbound(c: &mut Criterion) {
    let two = format!(
        "{LAB_CONFIG}\n[[trunk]]\nname = \"uk\"\nnetworks = [\"127.0.0.4/32\"]\nproxy = \"sip:127.0.0.4:5060\"\n\n[[route]]\nprefix = \"+44\"\ntrunks = [\"uk\"]\nfallback = [\"carrier\"]\n\n[[route]]\ntrunks = [\"carrier\"]\nfallback = [\"uk\"]\n"
    );
    for (name, cfg, callee, to) in [
        (
            "core/outbound_call_one_trunk",
            LAB_CONFIG.to_owned(),
            "+15557654321",
            CARRIER,
        ),
        (
            "core/outbound_call_two_trunks_routes",
            two.clone(),
            "+15557654321",
            CARRIER,
        ),
        (
            "core/outbound_call_two_trunks_routes_44",
            two,
            "+442079460000",
            "127.0.0.4:5060",
        ),
    ] {
        let mut rig = Rig {
            lab: bare(Lab::with(&cfg)),
            n: 0,
        };
        c.bench_function(name, |b| b.iter(|| rig.one_outbound_call(callee, to)));
        assert_eq!(rig.lab.stats().calls, 0, "every call ended");
    }
}

/// The lab with the server's standard policies only (the tests' counting limits off), as the
/// figures before them were measured.
fn bare(mut lab: Lab) -> Lab {
    lab.core.set_policies(sipwarden_policy::standard());
    lab
}

fn bench(c: &mut Criterion) {
    let mut rig = Rig {
        lab: bare(Lab::new()),
        n: 0,
    };
    c.bench_function("core/whole_call_udp", |b| b.iter(|| rig.one_call()));
    let s = rig.lab.stats();
    assert_eq!(s.calls, 0, "every call ended");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = bench, outbound
}
criterion_main!(benches);
