//! # sipwarden-relay: the embedded RTP relay
//!
//! Each media stream of an anchored call is two sockets: one facing the A leg, one facing the
//! B leg (RTP; RTCP on the next port unless the stream multiplexes it). What arrives on one is
//! sent from the other to where that side receives. Worker threads own the sockets and wait on
//! them with epoll (mio); the call core never touches a packet.
//!
//! **Latching.** A side's source is learned only from an address the call allowed for it (the
//! address its SDP names, or the address its signalling came from), and only in the first
//! `latch_window` of the stream; once learned, packets from any other source are dropped and
//! counted. That is the defence against RTP bleed (a stranger sending to a relay port to
//! receive the call's audio) and against injection.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

mod worker;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use worker::{Cmd, Worker};

/// Which side of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Toward the calling leg.
    A,
    /// Toward the called leg.
    B,
}

/// A stream to relay: where to listen on each side, where each side receives, and who may
/// send on each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// The call.
    pub call: u64,
    /// The stream (its `m=` line).
    pub stream: usize,
    /// The relay's RTP address facing A (RTCP on the next port unless `rtcp_mux`).
    pub a_bind: SocketAddr,
    /// The relay's RTP address facing B.
    pub b_bind: SocketAddr,
    /// Where A receives (its SDP); `None` until known.
    pub to_a: Option<SocketAddr>,
    /// Where B receives.
    pub to_b: Option<SocketAddr>,
    /// Addresses A's media may come from (its SDP address, its signalling address).
    pub a_sources: Vec<IpAddr>,
    /// Addresses B's media may come from.
    pub b_sources: Vec<IpAddr>,
    /// RTP and RTCP share one port.
    pub rtcp_mux: bool,
}

/// What one stream has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets received from A and relayed toward B.
    pub from_a: u64,
    /// Their bytes.
    pub bytes_from_a: u64,
    /// Packets received from B and relayed toward A.
    pub from_b: u64,
    /// Their bytes.
    pub bytes_from_b: u64,
    /// Packets dropped because they came from a source other than the side's (latching).
    pub dropped_source: u64,
    /// Packets dropped because the other side's address is not known yet.
    pub dropped_no_target: u64,
}

/// A stream's figures, with when each side last sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The call.
    pub call: u64,
    /// The stream.
    pub stream: usize,
    /// Its counters.
    pub counters: Counters,
    /// When A last sent a packet that was relayed.
    pub last_from_a: Option<Instant>,
    /// When B last sent one.
    pub last_from_b: Option<Instant>,
    /// When the stream opened.
    pub opened: Instant,
}

impl Report {
    /// When media last flowed either way (or the stream opened, if it never did).
    pub fn last_activity(&self) -> Instant {
        [self.last_from_a, self.last_from_b]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.opened)
            .max(self.opened)
    }
}

/// Relay settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Worker threads (each owns the sockets of the calls given to it).
    pub workers: usize,
    /// How long after a stream opens (or its side's address changes) a source may be learned.
    pub latch_window: Duration,
    /// Largest datagram relayed; bigger ones are dropped.
    pub max_packet: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: 1,
            latch_window: Duration::from_secs(10),
            max_packet: 2048,
        }
    }
}

/// Totals of every stream since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct Totals {
    /// Packets relayed.
    pub relayed: std::sync::atomic::AtomicU64,
    /// Of those, from A toward B.
    pub from_a: std::sync::atomic::AtomicU64,
    /// Of those, from B toward A.
    pub from_b: std::sync::atomic::AtomicU64,
    /// Bytes relayed.
    pub bytes: std::sync::atomic::AtomicU64,
    /// Packets dropped by latching.
    pub dropped_source: std::sync::atomic::AtomicU64,
    /// Packets dropped for want of a target.
    pub dropped_no_target: std::sync::atomic::AtomicU64,
    /// Sockets open now.
    pub sockets: std::sync::atomic::AtomicU64,
}

/// Figures of streams closed with [`Relay::close_soon`], until [`Relay::take_closed`].
/// Bounded: beyond `MAX_CLOSED` the oldest go (they are also in the totals).
pub(crate) type Closed = Arc<Mutex<std::collections::VecDeque<Report>>>;

/// Most closed-stream reports kept for the server.
pub(crate) const MAX_CLOSED: usize = 100_000;

/// The running relay. Dropping it stops its workers.
pub struct Relay {
    closed: Closed,
    workers: Vec<(mpsc::Sender<Cmd>, Arc<mio::Waker>)>,
    threads: Vec<std::thread::JoinHandle<()>>,
    totals: Arc<Totals>,
    /// Which worker holds each call.
    calls: Mutex<HashMap<u64, usize>>,
}

/// The sockets of one side: RTP, and RTCP unless multiplexed.
fn bind_pair(rtp: SocketAddr, mux: bool) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
    let a = UdpSocket::bind(rtp)?;
    a.set_nonblocking(true)?;
    let rtcp = if mux {
        None
    } else {
        let addr = SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1));
        let s = UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        Some(s)
    };
    Ok((a, rtcp))
}

impl Relay {
    /// Starts the workers.
    pub fn start(cfg: Config) -> io::Result<Self> {
        let totals = Arc::new(Totals::default());
        let closed = Closed::default();
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for n in 0..cfg.workers.max(1) {
            let (w, tx, waker) = Worker::new(cfg, Arc::clone(&totals), Arc::clone(&closed))?;
            let t = std::thread::Builder::new()
                .name(format!("sipwarden-rtp-{n}"))
                .spawn(move || w.run())?;
            workers.push((tx, waker));
            threads.push(t);
        }
        Ok(Self {
            closed,
            workers,
            threads,
            totals,
            calls: Mutex::new(HashMap::new()),
        })
    }

    /// Totals since start.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    fn worker_of(&self, call: u64) -> Option<&(mpsc::Sender<Cmd>, Arc<mio::Waker>)> {
        let n = self.workers.len().max(1);
        let i = match self.calls.lock() {
            Ok(mut m) => *m.entry(call).or_insert((call % n as u64) as usize),
            Err(_) => (call % n as u64) as usize,
        };
        self.workers.get(i)
    }

    fn send(&self, call: u64, cmd: Cmd) -> io::Result<()> {
        let (tx, waker) = self
            .worker_of(call)
            .ok_or_else(|| io::Error::other("no relay worker"))?;
        tx.send(cmd)
            .map_err(|_| io::Error::other("relay worker stopped"))?;
        waker.wake()
    }

    /// Opens a stream: binds its sockets now (an error, such as a port in use, comes back
    /// here) and hands them to a worker.
    pub fn open(&self, spec: StreamSpec) -> io::Result<()> {
        let a = bind_pair(spec.a_bind, spec.rtcp_mux)?;
        let b = bind_pair(spec.b_bind, spec.rtcp_mux)?;
        self.send(spec.call, Cmd::Open(Box::new((spec, a, b))))
    }

    /// New targets for a stream (a re-INVITE moved a side, or put it on hold: `None`).
    pub fn update(
        &self,
        call: u64,
        stream: usize,
        to_a: Option<SocketAddr>,
        to_b: Option<SocketAddr>,
    ) -> io::Result<()> {
        self.send(
            call,
            Cmd::Update {
                call,
                stream,
                to_a,
                to_b,
            },
        )
    }

    /// Closes every stream of a call and returns their last figures (its sockets are closed
    /// when this returns, so its ports can be used again).
    pub fn close(&self, call: u64) -> Vec<Report> {
        let (tx, rx) = mpsc::channel();
        if self.send(call, Cmd::Close { call, reply: tx }).is_err() {
            return Vec::new();
        }
        if let Ok(mut m) = self.calls.lock() {
            m.remove(&call);
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    /// Closes every stream of a call without waiting for the worker (the call core's path:
    /// it must not block); its ports are free once the worker has handled it, and its last
    /// figures come out of [`Relay::take_closed`].
    pub fn close_soon(&self, call: u64) {
        let _ = self.send(call, Cmd::CloseSoon { call });
        if let Ok(mut m) = self.calls.lock() {
            m.remove(&call);
        }
    }

    /// The last figures of the streams closed with [`Relay::close_soon`] since the last call.
    pub fn take_closed(&self) -> Vec<Report> {
        match self.closed.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The figures of every stream now (for media timeouts and the call records).
    pub fn reports(&self) -> Vec<Report> {
        let mut out = Vec::new();
        for (tx, waker) in &self.workers {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Cmd::Report(rtx)).is_ok() && waker.wake().is_ok() {
                out.extend(rrx.recv_timeout(Duration::from_secs(5)).unwrap_or_default());
            }
        }
        out
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for (tx, waker) in &self.workers {
            let _ = tx.send(Cmd::Stop);
            let _ = waker.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
