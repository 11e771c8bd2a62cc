//! One relay thread: its streams' sockets in one epoll set, commands through a channel and a
//! waker.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::{Config, Counters, Report, Side, StreamSpec, Totals};

/// Sockets of one side as bound by [`crate::Relay::open`].
type Bound = (UdpSocket, Option<UdpSocket>);

/// What the relay handle asks of a worker.
pub(crate) enum Cmd {
    Open(Box<(StreamSpec, Bound, Bound)>),
    Update {
        call: u64,
        stream: usize,
        to_a: Option<SocketAddr>,
        to_b: Option<SocketAddr>,
    },
    Close {
        call: u64,
        reply: mpsc::Sender<Vec<Report>>,
    },
    CloseSoon {
        call: u64,
    },
    Report(mpsc::Sender<Vec<Report>>),
    Stop,
}

const WAKER: Token = Token(0);

/// One wake-up's counts, added to the shared totals at its end.
#[derive(Default)]
struct Tally {
    from_a: u64,
    from_b: u64,
    bytes: u64,
    dropped_source: u64,
    dropped_no_target: u64,
}

impl Tally {
    fn publish(&self, t: &Totals) {
        for (total, v) in [
            (&t.from_a, self.from_a),
            (&t.from_b, self.from_b),
            (&t.relayed, self.from_a + self.from_b),
            (&t.bytes, self.bytes),
            (&t.dropped_source, self.dropped_source),
            (&t.dropped_no_target, self.dropped_no_target),
        ] {
            if v > 0 {
                total.fetch_add(v, Relaxed);
            }
        }
    }
}

/// One side of a stream.
struct End {
    rtp: MioSocket,
    rtcp: Option<MioSocket>,
    /// Where the side's SDP says it receives (RTP).
    target: Option<SocketAddr>,
    /// Who may send for this side.
    sources: Vec<IpAddr>,
    /// The sources learned, RTP and RTCP.
    learned: [Option<SocketAddr>; 2],
    /// Sources may be learned until then.
    latch_until: Instant,
    last: Option<Instant>,
}

struct Stream {
    call: u64,
    stream: usize,
    mux: bool,
    a: End,
    b: End,
    counters: Counters,
    tokens: Vec<Token>,
    opened: Instant,
}

impl Stream {
    fn report(&self) -> Report {
        Report {
            call: self.call,
            stream: self.stream,
            counters: self.counters,
            last_from_a: self.a.last,
            last_from_b: self.b.last,
            opened: self.opened,
        }
    }
}

pub(crate) struct Worker {
    poll: Poll,
    rx: mpsc::Receiver<Cmd>,
    cfg: Config,
    totals: Arc<Totals>,
    closed: crate::Closed,
    streams: HashMap<(u64, usize), Stream>,
    /// Socket token → (stream, side, RTCP?).
    tokens: HashMap<Token, ((u64, usize), Side, bool)>,
    next: usize,
}

impl Worker {
    pub(crate) fn new(
        cfg: Config,
        totals: Arc<Totals>,
        closed: crate::Closed,
    ) -> std::io::Result<(Self, mpsc::Sender<Cmd>, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        Ok((
            Self {
                poll,
                rx,
                cfg,
                totals,
                closed,
                streams: HashMap::new(),
                tokens: HashMap::new(),
                next: 1,
            },
            tx,
            waker,
        ))
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        // One byte more than the largest packet relayed: a longer one shows by its length.
        let mut buf = vec![0u8; self.cfg.max_packet.max(64) + 1];
        loop {
            if self.poll.poll(&mut events, None).is_err() {
                continue;
            }
            let now = Instant::now();
            let mut tally = Tally::default();
            for ev in &events {
                let token = ev.token();
                if token == WAKER {
                    if !self.commands() {
                        tally.publish(&self.totals);
                        return;
                    }
                } else {
                    self.readable(token, &mut buf, now, &mut tally);
                }
            }
            tally.publish(&self.totals);
        }
    }

    fn token(&mut self) -> Token {
        self.next += 1;
        Token(self.next)
    }

    /// Handles every queued command; false on Stop.
    fn commands(&mut self) -> bool {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Open(b) => {
                    let (spec, a, bb) = *b;
                    self.open(spec, a, bb);
                }
                Cmd::Update {
                    call,
                    stream,
                    to_a,
                    to_b,
                } => {
                    let window = self.cfg.latch_window;
                    if let Some(s) = self.streams.get_mut(&(call, stream)) {
                        let now = Instant::now();
                        for (end, to) in [(&mut s.a, to_a), (&mut s.b, to_b)] {
                            if end.target != to {
                                // The side moved (learn its source again, from its new
                                // address) or went on hold (send it nothing).
                                end.learned = [None, None];
                                if let Some(t) = to {
                                    if !end.sources.contains(&t.ip()) {
                                        end.sources.push(t.ip());
                                    }
                                    end.latch_until = now + window;
                                }
                                end.target = to;
                            }
                        }
                    }
                }
                Cmd::CloseSoon { call } => {
                    let out = self.close(call);
                    if let Ok(mut q) = self.closed.lock() {
                        for r in out {
                            if q.len() >= crate::MAX_CLOSED {
                                q.pop_front();
                            }
                            q.push_back(r);
                        }
                    }
                }
                Cmd::Close { call, reply } => {
                    let _ = reply.send(self.close(call));
                }
                Cmd::Report(reply) => {
                    let _ = reply.send(self.streams.values().map(Stream::report).collect());
                }
                Cmd::Stop => return false,
            }
        }
        true
    }

    /// Closes a call's streams; their last figures.
    fn close(&mut self, call: u64) -> Vec<Report> {
        let keys: Vec<(u64, usize)> = self
            .streams
            .keys()
            .filter(|k| k.0 == call)
            .copied()
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(mut s) = self.streams.remove(&k) {
                out.push(s.report());
                for t in &s.tokens {
                    self.tokens.remove(t);
                }
                for sock in [&mut s.a.rtp, &mut s.b.rtp] {
                    let _ = self.poll.registry().deregister(sock);
                }
                for sock in [s.a.rtcp.as_mut(), s.b.rtcp.as_mut()].into_iter().flatten() {
                    let _ = self.poll.registry().deregister(sock);
                }
                self.totals
                    .sockets
                    .fetch_sub(s.tokens.len() as u64, Relaxed);
            }
        }
        out
    }

    fn open(&mut self, spec: StreamSpec, a: Bound, b: Bound) {
        let now = Instant::now();
        let key = (spec.call, spec.stream);
        let mut tokens = Vec::new();
        let mut end = |(rtp, rtcp): Bound,
                       side: Side,
                       target: Option<SocketAddr>,
                       mut sources: Vec<IpAddr>,
                       w: &mut Self|
         -> Option<End> {
            let mut rtp = MioSocket::from_std(rtp);
            let t = w.token();
            w.poll
                .registry()
                .register(&mut rtp, t, Interest::READABLE)
                .ok()?;
            w.tokens.insert(t, (key, side, false));
            tokens.push(t);
            let rtcp = match rtcp {
                Some(s) => {
                    let mut s = MioSocket::from_std(s);
                    let t = w.token();
                    w.poll
                        .registry()
                        .register(&mut s, t, Interest::READABLE)
                        .ok()?;
                    w.tokens.insert(t, (key, side, true));
                    tokens.push(t);
                    Some(s)
                }
                None => None,
            };
            if let Some(t) = target {
                if !sources.contains(&t.ip()) {
                    sources.push(t.ip());
                }
            }
            Some(End {
                rtp,
                rtcp,
                target,
                sources,
                learned: [None, None],
                latch_until: now + w.cfg.latch_window,
                last: None,
            })
        };
        let ea = end(a, Side::A, spec.to_a, spec.a_sources.clone(), self);
        let eb = end(b, Side::B, spec.to_b, spec.b_sources.clone(), self);
        let (Some(ea), Some(eb)) = (ea, eb) else {
            for t in &tokens {
                self.tokens.remove(t);
            }
            return;
        };
        self.totals.sockets.fetch_add(tokens.len() as u64, Relaxed);
        self.streams.insert(
            key,
            Stream {
                call: spec.call,
                stream: spec.stream,
                mux: spec.rtcp_mux,
                a: ea,
                b: eb,
                counters: Counters::default(),
                tokens,
                opened: now,
            },
        );
    }

    /// Reads everything waiting on a socket (mio is edge-triggered: until it would block) and
    /// relays it. `now` is the wake-up's time, and `tally` the wake-up's counts, added to the
    /// shared totals once per wake-up rather than once per packet.
    fn readable(&mut self, token: Token, buf: &mut [u8], now: Instant, tally: &mut Tally) {
        let Some(&(key, side, rtcp)) = self.tokens.get(&token) else {
            return;
        };
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        let mux = s.mux;
        let (from, to) = match side {
            Side::A => (&mut s.a, &mut s.b),
            Side::B => (&mut s.b, &mut s.a),
        };
        let kind = usize::from(rtcp);
        loop {
            let sock = if rtcp {
                from.rtcp.as_ref()
            } else {
                Some(&from.rtp)
            };
            let Some(sock) = sock else { return };
            let (n, src) = match sock.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let Some(pkt) = buf.get(..n) else { continue };
            if n > self.cfg.max_packet {
                continue;
            }
            // Latching: the side's learned source, else one of its allowed addresses
            // while the window is open.
            let learned = from.learned.get(kind).copied().flatten();
            let ok = match learned {
                Some(l) => l == src,
                None => {
                    let allowed = from.sources.contains(&src.ip()) && now <= from.latch_until;
                    if allowed {
                        if let Some(slot) = from.learned.get_mut(kind) {
                            *slot = Some(src);
                        }
                    }
                    allowed
                }
            };
            if !ok {
                s.counters.dropped_source += 1;
                tally.dropped_source += 1;
                continue;
            }
            // Where the other side receives: its learned source (symmetric RTP), else its
            // SDP.
            let dest = to.learned.get(kind).copied().flatten().or_else(|| {
                to.target.map(|t| {
                    if rtcp && !mux {
                        SocketAddr::new(t.ip(), t.port().wrapping_add(1))
                    } else {
                        t
                    }
                })
            });
            let out = if rtcp {
                to.rtcp.as_ref()
            } else {
                Some(&to.rtp)
            };
            let (Some(dest), Some(out)) = (dest, out) else {
                s.counters.dropped_no_target += 1;
                tally.dropped_no_target += 1;
                continue;
            };
            if out.send_to(pkt, dest).is_err() {
                continue;
            }
            from.last = Some(now);
            match side {
                Side::A => {
                    s.counters.from_a += 1;
                    s.counters.bytes_from_a += n as u64;
                    tally.from_a += 1;
                }
                Side::B => {
                    s.counters.from_b += 1;
                    s.counters.bytes_from_b += n as u64;
                    tally.from_b += 1;
                }
            }
            tally.bytes += n as u64;
        }
    }
}
