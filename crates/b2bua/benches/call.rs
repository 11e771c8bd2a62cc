//! CPU cost of one whole call in the core, without sockets: the carrier's INVITE to a DID,
//! the PBX's 180 and 200, the ACK, the carrier's BYE and the PBX's 200, each parsed from
//! bytes as the transport would hand it over, and every message the gateway builds
//! serialised as the transport would send it. Thirteen messages in, eleven out.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sipwarden_b2bua::{Core, Local, Routes, Settings, Target};
use sipwarden_config::Config;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, StatusCode};

const LAB: &str = "[pbx]\naddress = \"127.0.0.10:5080\"\nnetworks = [\"127.0.0.10/32\"]\n[[trunk]]\nname = \"carrier\"\nnetworks = [\"127.0.0.3/32\"]\nproxy = \"sip:127.0.0.3:5060\"\ndids = [\"+15551230000-+15551230099\"]\n";

const SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn udp(a: &str) -> Target {
    Target {
        transport: Transport::Udp,
        addr: a.parse::<SocketAddr>().unwrap(),
        flow: None,
    }
}

struct Rig {
    core: Core,
    now: Instant,
    n: u64,
}

impl Rig {
    fn feed(&mut self, from: &str, bytes: &[u8]) {
        let msg = Message::parse(bytes).unwrap();
        self.core.on_message(self.now, msg, udp(from));
    }

    /// Drains what the core sends, serialising each message; returns the last one to `to`.
    fn drain(&mut self, to: &str) -> Option<Message> {
        let to: SocketAddr = to.parse().unwrap();
        let mut last = None;
        while let Some(t) = self.core.poll_transmit() {
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
        self.feed("127.0.0.3:5060", invite.as_bytes());
        let pbx_inv = self.drain("127.0.0.10:5080").unwrap();
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
            self.feed("127.0.0.10:5080", &r.to_bytes());
        }
        let ok = self.drain("127.0.0.3:5060").unwrap();
        let to = ok.header(HeaderName::To).unwrap().to_owned();
        let ack = format!(
            "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-{n}-2\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c{n}\r\nTo: {to}\r\nCall-ID: bench-{n}@127.0.0.3\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed("127.0.0.3:5060", ack.as_bytes());
        self.drain("127.0.0.10:5080");
        let bye = format!(
            "BYE sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-{n}-3\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c{n}\r\nTo: {to}\r\nCall-ID: bench-{n}@127.0.0.3\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed("127.0.0.3:5060", bye.as_bytes());
        let pbx_bye = self.drain("127.0.0.10:5080").unwrap();
        let r = Message::response_to(&pbx_bye, StatusCode::OK, None, None).unwrap();
        self.feed("127.0.0.10:5080", &r.to_bytes());
        self.drain("127.0.0.3:5060");
        // Let the transaction timers run as they would over a second, keeping the tables at
        // their steady-state size.
        self.now += Duration::from_millis(1);
        self.core.handle_timeout(self.now);
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Config::from_toml(LAB, None).unwrap();
    let routes = Routes::from_config(&cfg).unwrap();
    let local = Local {
        udp: Some("127.0.0.1:5060".parse().unwrap()),
        tcp: None,
        tls: None,
        wss: None,
    };
    let mut rig = Rig {
        core: Core::new(routes, local, Settings::default(), [1; 32]),
        now: Instant::now(),
        n: 0,
    };
    c.bench_function("core/whole_call_udp", |b| b.iter(|| rig.one_call()));
    let s = rig.core.stats();
    assert_eq!(s.calls, 0, "every call ended");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
