//! Media load for `bench/media.py`: the same RTP streams through sipwarden's embedded relay
//! and through rtpengine, counted at both ends.
//!
//! ```text
//! media_load relay CALLS BASE WORKERS     host sipwarden-relay with CALLS streams: the relay
//!                                         listens on 127.0.0.1:BASE+4i (facing A) and
//!                                         BASE+4i+2 (facing B); runs until stdin closes
//! media_load drive ENGINE CALLS PPS SECS PID [NG]
//!                                         A_i on 127.0.0.2, B_i on 127.0.0.3 (ports 40000+4i,
//!                                         40000+4i+2) send PPS packets/s each way per call for
//!                                         SECS seconds; ENGINE "embedded" (ports from BASE
//!                                         20000) or "rtpengine" (calls set up over ng at NG);
//!                                         PID's CPU is read from /proc over the run
//! ```
//!
//! One line of `key=value` results: packets sent and received, loss, the relay's CPU seconds
//! and its CPU per relayed packet, the driver's own CPU.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use sipwarden_media::ng;
use sipwarden_relay::{Config, Relay, StreamSpec};

const PEER_BASE: u16 = 40000;
const RELAY_BASE: u16 = 20000;
const PAYLOAD: usize = 160;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("relay") => relay(&args[1..]),
        Some("drive") => drive(&args[1..]),
        _ => Err(
            "usage: media_load relay CALLS BASE WORKERS | drive ENGINE CALLS PPS SECS PID [NG]"
                .into(),
        ),
    };
    if let Err(e) = r {
        eprintln!("media_load: {e}");
        std::process::exit(2);
    }
}

fn num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{what}: expected a number"))
}

fn peer(i: usize, side: u8) -> SocketAddr {
    let port = PEER_BASE + u16::try_from(i * 4).unwrap_or(0) + if side == b'a' { 0 } else { 2 };
    let ip = if side == b'a' {
        [127, 0, 0, 2]
    } else {
        [127, 0, 0, 3]
    };
    SocketAddr::from((ip, port))
}

fn relay(args: &[String]) -> Result<(), String> {
    let calls: usize = num(args, 0, "CALLS")?;
    let base: u16 = num(args, 1, "BASE")?;
    let workers: usize = num(args, 2, "WORKERS")?;
    let relay = Relay::start(Config {
        workers,
        ..Config::default()
    })
    .map_err(|e| e.to_string())?;
    for i in 0..calls {
        let port = base + u16::try_from(i * 4).map_err(|_| "too many calls")?;
        relay
            .open(StreamSpec {
                call: i as u64,
                stream: 0,
                a_bind: SocketAddr::from(([127, 0, 0, 1], port)),
                b_bind: SocketAddr::from(([127, 0, 0, 1], port + 2)),
                to_a: Some(peer(i, b'a')),
                to_b: Some(peer(i, b'b')),
                a_sources: vec![peer(i, b'a').ip()],
                b_sources: vec![peer(i, b'b').ip()],
                rtcp_mux: false,
            })
            .map_err(|e| format!("open stream {i}: {e}"))?;
    }
    println!("ready");
    // Until the parent closes stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let t = relay.totals();
    println!(
        "relayed={} dropped_source={} dropped_no_target={}",
        t.relayed.load(Relaxed),
        t.dropped_source.load(Relaxed),
        t.dropped_no_target.load(Relaxed)
    );
    Ok(())
}

/// Where the relay (or rtpengine) listens for each call's A and B.
fn targets_embedded(calls: usize) -> Vec<(SocketAddr, SocketAddr)> {
    (0..calls)
        .map(|i| {
            let port = RELAY_BASE + u16::try_from(i * 4).unwrap_or(0);
            (
                SocketAddr::from(([127, 0, 0, 1], port)),
                SocketAddr::from(([127, 0, 0, 1], port + 2)),
            )
        })
        .collect()
}

fn sdp(origin: &str, at: SocketAddr) -> String {
    format!(
        "v=0\r\no={origin} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = at.ip(),
        port = at.port()
    )
}

fn sdp_port(sdp: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(sdp).ok()?;
    let m = text.lines().find(|l| l.starts_with("m=audio "))?;
    m.split(' ').nth(1)?.parse().ok()
}

/// Sets up every call in rtpengine: the offer's answer names the port B sends to, the
/// answer's the port A sends to.
fn targets_rtpengine(calls: usize, ng_addr: &str) -> Result<Vec<(SocketAddr, SocketAddr)>, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.connect(ng_addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let mut ask = |req: ng::Request| -> Result<ng::Reply, String> {
        s.send(&req.datagram).map_err(|e| e.to_string())?;
        loop {
            let n = s.recv(&mut buf).map_err(|e| format!("rtpengine: {e}"))?;
            let r = ng::parse_reply(buf.get(..n).unwrap_or_default()).map_err(|e| e.to_string())?;
            if r.cookie == req.cookie {
                return if r.is_ok() { Ok(r) } else { Err(r.to_string()) };
            }
        }
    };
    let pid = std::process::id();
    let mut out = Vec::with_capacity(calls);
    for i in 0..calls {
        let call_id = format!("bench-{pid}-{i}");
        let tags = ng::CallTags {
            call_id: &call_id,
            from_tag: "a",
            to_tag: "b",
        };
        let flags = ng::Flags::default();
        let offer = ask(ng::sdp_request(
            &format!("o{pid}-{i}"),
            ng::Exchange::Offer,
            tags,
            sdp("a", peer(i, b'a')).as_bytes(),
            &flags,
        ))?;
        let b_port = offer
            .sdp
            .as_deref()
            .and_then(sdp_port)
            .ok_or("offer: no port")?;
        let answer = ask(ng::sdp_request(
            &format!("a{pid}-{i}"),
            ng::Exchange::Answer,
            tags,
            sdp("b", peer(i, b'b')).as_bytes(),
            &flags,
        ))?;
        let a_port = answer
            .sdp
            .as_deref()
            .and_then(sdp_port)
            .ok_or("answer: no port")?;
        out.push((
            SocketAddr::from(([127, 0, 0, 1], a_port)),
            SocketAddr::from(([127, 0, 0, 1], b_port)),
        ));
    }
    Ok(out)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rtp(seq: u16, ts: u32, ssrc: u32) -> [u8; 12 + PAYLOAD] {
    let mut p = [0xd5u8; 12 + PAYLOAD];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

fn drive(args: &[String]) -> Result<(), String> {
    let engine = args.first().ok_or("ENGINE")?.clone();
    let calls: usize = num(args, 1, "CALLS")?;
    let pps: u64 = num(args, 2, "PPS")?;
    let secs: u64 = num(args, 3, "SECS")?;
    let pid: u32 = num(args, 4, "PID")?;
    let targets = match engine.as_str() {
        "embedded" => targets_embedded(calls),
        "rtpengine" => targets_rtpengine(calls, args.get(5).ok_or("NG")?)?,
        e => return Err(format!("engine {e}: embedded or rtpengine")),
    };
    // Every call's two ends, each a socket that sends and receives.
    let mut socks = Vec::with_capacity(calls * 2);
    for i in 0..calls {
        for side in [b'a', b'b'] {
            let s = UdpSocket::bind(peer(i, side))
                .map_err(|e| format!("bind {}: {e}", peer(i, side)))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            socks.push(s);
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let mut poll = Poll::new().map_err(|e| e.to_string())?;
        let mut rx = Vec::with_capacity(socks.len());
        for (n, s) in socks.iter().enumerate() {
            let c = s.try_clone().map_err(|e| e.to_string())?;
            let mut m = mio::net::UdpSocket::from_std(c);
            poll.registry()
                .register(&mut m, Token(n), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            rx.push(m);
        }
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut events = Events::with_capacity(1024);
            let mut buf = [0u8; 2048];
            let mut by_size: HashMap<usize, u64> = HashMap::new();
            while !stop.load(Relaxed) {
                if poll
                    .poll(&mut events, Some(Duration::from_millis(50)))
                    .is_err()
                {
                    break;
                }
                for ev in &events {
                    let Some(s) = rx.get(ev.token().0) else {
                        continue;
                    };
                    loop {
                        match s.recv(&mut buf) {
                            Ok(n) => {
                                received.fetch_add(1, Relaxed);
                                *by_size.entry(n).or_default() += 1;
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
            }
            by_size
        })
    };
    // Paced sending: every millisecond, the streams whose turn it is (each every 1000/PPS ms).
    let period_ms = (1000 / pps.max(1)).max(1);
    let mut seq = vec![0u16; socks.len()];
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    let self_pid = std::process::id();
    let start = Instant::now();
    let (t0, mut window) = (cpu_ticks(pid), None);
    let self0 = cpu_ticks(self_pid);
    let warm = Duration::from_secs(1);
    let end = start + Duration::from_secs(secs);
    let mut tick: u64 = 0;
    while Instant::now() < end {
        let slot = tick % period_ms;
        for (n, s) in socks.iter().enumerate() {
            let call = n / 2;
            if (call as u64) % period_ms != slot {
                continue;
            }
            let Some(&(to_a, to_b)) = targets.get(call) else {
                continue;
            };
            let to = if n % 2 == 0 { to_a } else { to_b };
            let q = seq.get_mut(n).ok_or("seq")?;
            *q = q.wrapping_add(1);
            let pkt = rtp(*q, u32::from(*q) * 160, n as u32);
            match s.send_to(&pkt, to) {
                Ok(_) => sent += 1,
                Err(_) => send_errors += 1,
            }
        }
        if window.is_none() && start.elapsed() >= warm {
            window = Some((Instant::now(), cpu_ticks(pid), sent, received.load(Relaxed)));
        }
        tick += 1;
        let next = start + Duration::from_millis(tick);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let (w_start, w_ticks0, w_sent0, w_recv0) = window.unwrap_or((start, t0, 0, 0));
    let w_sent = sent - w_sent0;
    let w_recv_end = received.load(Relaxed);
    let w_elapsed = w_start.elapsed();
    let ticks1 = cpu_ticks(pid);
    // Let the last packets arrive.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Relaxed);
    let sizes = receiver.join().map_err(|_| "receiver panicked")?;
    let got = received.load(Relaxed);
    let self1 = cpu_ticks(self_pid);
    let relay_cpu = match (w_ticks0, ticks1) {
        (Some(a), Some(b)) => (b - a) as f64 / 100.0,
        _ => f64::NAN,
    };
    let w_recv = w_recv_end - w_recv0;
    let own_cpu = match (self0, self1) {
        (Some(a), Some(b)) => (b - a) as f64 / 100.0,
        _ => f64::NAN,
    };
    let secs_f = w_elapsed.as_secs_f64();
    let loss = if sent == 0 {
        1.0
    } else {
        1.0 - got as f64 / sent as f64
    };
    println!(
        "engine={engine} calls={calls} offered_pps={} sent={sent} received={got} send_errors={send_errors} \
         loss_pct={:.4} window_s={secs_f:.2} window_pps={:.0} relay_cpu_s={relay_cpu:.2} relay_cpu_pct={:.1} \
         cpu_us_per_pkt={:.3} driver_cpu_s={own_cpu:.2} sizes={:?}",
        calls as u64 * 2 * pps,
        loss * 100.0,
        w_recv as f64 / secs_f,
        relay_cpu / secs_f * 100.0,
        if w_recv == 0 {
            f64::NAN
        } else {
            relay_cpu * 1e6 / w_recv as f64
        },
        sizes,
    );
    let _ = w_sent;
    if engine == "rtpengine" {
        delete_rtpengine(calls, args.get(5).ok_or("NG")?)?;
    }
    Ok(())
}

/// Deletes the calls `targets_rtpengine` set up (a fresh run starts from an empty rtpengine).
fn delete_rtpengine(calls: usize, ng_addr: &str) -> Result<(), String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.connect(ng_addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let pid = std::process::id();
    let mut buf = vec![0u8; 65536];
    for i in 0..calls {
        let req = ng::delete(&format!("d{pid}-{i}"), &format!("bench-{pid}-{i}"));
        s.send(&req.datagram).map_err(|e| e.to_string())?;
        s.recv(&mut buf)
            .map_err(|e| format!("rtpengine delete: {e}"))?;
    }
    Ok(())
}
