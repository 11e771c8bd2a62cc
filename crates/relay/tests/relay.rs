//! The relay against real sockets on loopback: media both ways, latching against a stranger
//! (RTP bleed), a side learned from its signalling address, RTCP on the next port, updates,
//! and ports free again once a call is closed. Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sipwarden_relay::{Config, Relay, StreamSpec};

/// Two sockets on `ip`, RTP on an even port and RTCP on the next (a peer as SDP describes it).
fn sock_pair(ip: &str) -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = sock(ip);
        let p = rtp.local_addr().unwrap().port();
        if p % 2 == 1 || p == 65534 {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, p + 1)) {
            rtcp.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            return (rtp, rtcp);
        }
    }
    panic!("no RTP/RTCP port pair on {ip}");
}

fn sock(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// A free even port pair on 127.0.0.1 (RTP, RTCP), found by binding and closing.
fn free_pair() -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        drop(s);
        if p % 2 == 0 && p < 65534 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut b = [0u8; 2048];
    s.recv_from(&mut b).ok().map(|(n, a)| (b[..n].to_vec(), a))
}

/// Sends `pkt` from `from` to `to` until `at` receives it (the worker picks the stream up
/// asynchronously), for at most two seconds.
fn deliver(from: &UdpSocket, to: SocketAddr, pkt: &[u8], at: &UdpSocket) -> Option<SocketAddr> {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        from.send_to(pkt, to).unwrap();
        if let Some((got, src)) = recv(at) {
            assert_eq!(got, pkt);
            return Some(src);
        }
    }
    None
}

/// Opens a stream on free ports (tests run in parallel: a port found free may be taken before
/// the relay binds it, so a refused bind tries other ports); returns the two RTP ports.
fn open_free(relay: &Relay, make: impl Fn(u16, u16) -> StreamSpec) -> (u16, u16) {
    for _ in 0..20 {
        let (a, b) = (free_pair(), free_pair());
        if a != b && relay.open(make(a, b)).is_ok() {
            return (a, b);
        }
    }
    panic!("no free ports for the relay");
}

fn spec(call: u64, a_port: u16, b_port: u16, pbx: &UdpSocket, carrier: &UdpSocket) -> StreamSpec {
    StreamSpec {
        call,
        stream: 0,
        a_bind: SocketAddr::from(([127, 0, 0, 1], a_port)),
        b_bind: SocketAddr::from(([127, 0, 0, 1], b_port)),
        to_a: Some(pbx.local_addr().unwrap()),
        to_b: Some(carrier.local_addr().unwrap()),
        a_sources: vec![],
        b_sources: vec![],
        rtcp_mux: false,
    }
}

#[test]
fn media_both_ways_and_a_stranger_gets_nothing() {
    let relay = Relay::start(Config::default()).unwrap();
    let pbx = sock("127.0.0.10");
    let (carrier, carrier_rtcp) = sock_pair("127.0.0.3");
    let stranger = sock("127.0.0.66");
    let (ap, bp) = open_free(&relay, |a, b| spec(1, a, b, &pbx, &carrier));
    let a_relay = SocketAddr::from(([127, 0, 0, 1], ap));
    let b_relay = SocketAddr::from(([127, 0, 0, 1], bp));
    // PBX -> relay (A side) -> carrier, from the B-facing port.
    let src = deliver(&pbx, a_relay, b"rtp from pbx", &carrier).expect("A to B");
    assert_eq!(src, b_relay);
    // Carrier -> relay (B side) -> PBX.
    let src = deliver(&carrier, b_relay, b"rtp from carrier", &pbx).expect("B to A");
    assert_eq!(src, a_relay);
    // RTCP on the next ports: the PBX's comes from another port of its address (learned as
    // A's RTCP source) and reaches the carrier's RTCP port, from the relay's.
    let a_rtcp = SocketAddr::from(([127, 0, 0, 1], ap + 1));
    let pbx_rtcp = UdpSocket::bind(("127.0.0.10", 0)).unwrap();
    let src = deliver(&pbx_rtcp, a_rtcp, b"rtcp", &carrier_rtcp).expect("RTCP A to B");
    assert_eq!(src, SocketAddr::from(([127, 0, 0, 1], bp + 1)));
    // RTP bleed: the stranger sends to both relay ports and receives nothing; the call's
    // media still flows.
    for to in [a_relay, b_relay] {
        for _ in 0..20 {
            stranger.send_to(b"bleed?", to).unwrap();
        }
    }
    assert!(recv(&stranger).is_none(), "the stranger got media");
    assert!(deliver(&pbx, a_relay, b"still flowing", &carrier).is_some());
    // Drain what the stranger's packets may have produced (nothing) and count.
    let reports = relay.close(1);
    assert_eq!(reports.len(), 1);
    let c = reports[0].counters;
    assert!(c.from_a >= 2 && c.from_b >= 1, "{c:?}");
    assert!(
        c.dropped_source >= 40,
        "every stranger packet dropped: {c:?}"
    );
    assert!(reports[0].last_from_a.is_some());
    // The ports are free again once closed.
    assert!(UdpSocket::bind(a_relay).is_ok() && UdpSocket::bind(b_relay).is_ok());
}

#[test]
fn a_side_without_sdp_address_is_learned_from_its_signalling_address_only() {
    let relay = Relay::start(Config::default()).unwrap();
    let pbx = sock("127.0.0.10");
    let phone = sock("127.0.0.2");
    let stranger = sock("127.0.0.66");
    // A phone behind NAT: its SDP address is useless; its signalling came from 127.0.0.2.
    let (ap, bp) = open_free(&relay, |a, b| StreamSpec {
        to_b: None,
        b_sources: vec!["127.0.0.2".parse().unwrap()],
        ..spec(2, a, b, &pbx, &phone)
    });
    let a_relay = SocketAddr::from(([127, 0, 0, 1], ap));
    let b_relay = SocketAddr::from(([127, 0, 0, 1], bp));
    // Nothing to send to the phone yet: dropped, counted.
    pbx.send_to(b"early", a_relay).unwrap();
    // The stranger cannot be learned as the phone.
    for _ in 0..5 {
        stranger.send_to(b"i am the phone", b_relay).unwrap();
    }
    // The phone sends first: learned, and the PBX's media now reaches it.
    assert!(deliver(&phone, b_relay, b"hello", &pbx).is_some());
    assert!(deliver(&pbx, a_relay, b"to the phone", &phone).is_some());
    assert!(recv(&stranger).is_none());
    let r = relay.close(2);
    assert!(r[0].counters.dropped_source >= 5, "{:?}", r[0].counters);
}

#[test]
fn an_update_moves_a_side_and_hold_stops_sending_to_it() {
    let relay = Relay::start(Config {
        workers: 2,
        ..Config::default()
    })
    .unwrap();
    let pbx = sock("127.0.0.10");
    let carrier = sock("127.0.0.3");
    let carrier2 = sock("127.0.0.4");
    let (ap, _) = open_free(&relay, |a, b| spec(3, a, b, &pbx, &carrier));
    let a_relay = SocketAddr::from(([127, 0, 0, 1], ap));
    assert!(deliver(&pbx, a_relay, b"one", &carrier).is_some());
    // A re-INVITE moves B to another address.
    relay
        .update(
            3,
            0,
            Some(pbx.local_addr().unwrap()),
            Some(carrier2.local_addr().unwrap()),
        )
        .unwrap();
    assert!(
        deliver(&pbx, a_relay, b"two", &carrier2).is_some(),
        "sent to the new address"
    );
    // Hold: B has no address; A's packets are dropped, not sent anywhere.
    relay
        .update(3, 0, Some(pbx.local_addr().unwrap()), None)
        .unwrap();
    let until = Instant::now() + Duration::from_secs(2);
    let mut stopped = false;
    while Instant::now() < until {
        pbx.send_to(b"held", a_relay).unwrap();
        if recv(&carrier2).is_none() {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "nothing is sent to a side on hold");
    let totals = relay.totals();
    assert!(totals.relayed.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert!(relay.reports().iter().any(|r| r.call == 3));
    relay.close(3);
    assert!(relay.reports().is_empty());
}

#[test]
fn close_soon_hands_the_last_figures_over_without_waiting() {
    let relay = Relay::start(Config::default()).unwrap();
    let pbx = sock("127.0.0.10");
    let carrier = sock("127.0.0.3");
    let (ap, _) = open_free(&relay, |a, b| spec(4, a, b, &pbx, &carrier));
    let a_relay = SocketAddr::from(([127, 0, 0, 1], ap));
    assert!(deliver(&pbx, a_relay, b"one", &carrier).is_some());
    relay.close_soon(4);
    let got = (0..200)
        .find_map(|_| {
            let c = relay.take_closed();
            if c.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
                None
            } else {
                Some(c)
            }
        })
        .expect("the closed stream's figures");
    assert_eq!((got[0].call, got[0].stream), (4, 0));
    assert!(got[0].counters.from_a >= 1);
    assert!(relay.take_closed().is_empty(), "taken once");
    assert!(UdpSocket::bind(a_relay).is_ok(), "its ports are free");
}
