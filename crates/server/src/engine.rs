//! rtpengine as the media engine (`[media] engine = "rtpengine"`): the task that puts
//! rtpengine's SDP into the call's messages on their way out.
//!
//! The anchoring rewrite (`sipwarden_policy::EngineAnchor`) marks every SDP body of a call
//! with a token and queues what rtpengine must be asked for it. The core task hands marked
//! messages here instead of to the sockets; this task asks rtpengine (offer or answer over
//! `ng`), replaces the body with rtpengine's SDP and sends the message. A retransmission of
//! the same message gets the same SDP without asking again. When rtpengine does not answer or
//! refuses, the message is never sent (it would name the other side's media address) and the
//! core ends the call. Work is done in order, one request at a time: rtpengine answers on
//! loopback in well under a millisecond, and order keeps a call's messages in sequence.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnet::IpNet;
use sipwarden_config::MediaConfig;
use sipwarden_media::ng;
use sipwarden_policy::engine::{EngineSdp, marked_token, unmarked};
use sipwarden_policy::{EngineAnchor, EngineOps, EngineWork};
use sipwarden_sip::{HeaderName, Message, Peer};
use sipwarden_transport::Transports;
use sipwarden_txn::Transmit;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::core_task::Control;

/// Marked messages and rtpengine work waiting for the task.
const QUEUE: usize = 4096;
/// Bodies remembered (for retransmissions) or waiting for their message, all calls together.
const MAX_BODIES: usize = 100_000;
/// Call events waiting for the core task (it takes them every round).
const MAX_EVENTS: usize = 100_000;

/// Media figures of ended calls, for the call records.
pub(crate) type EngineEvents = Arc<std::sync::Mutex<Vec<sipwarden_b2bua::events::CallEvent>>>;

/// What the task counts, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct EngineStats {
    /// Offers and answers rtpengine anchored.
    pub(crate) anchored: AtomicU64,
    /// Offers and answers it refused or did not answer in time (their calls were ended).
    pub(crate) failures: AtomicU64,
    /// Messages or work dropped because the queue was full.
    pub(crate) queue_dropped: AtomicU64,
    /// Bodies remembered now.
    pub(crate) bodies: AtomicU64,
    /// Calls deleted in rtpengine.
    pub(crate) deleted: AtomicU64,
    /// Packets rtpengine received for the calls it deleted (from its statistics).
    pub(crate) packets: AtomicU64,
}

/// The core task's handle on the engine task.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) ops: EngineOps,
    tx: mpsc::Sender<Work>,
    pub(crate) stats: Arc<EngineStats>,
    events: EngineEvents,
}

enum Work {
    Op(EngineWork),
    Send(Transmit<Peer>, u64),
}

/// Builds the anchoring rewrite and starts the task that talks to rtpengine.
pub(crate) fn start(
    cfg: &MediaConfig,
    pbx_networks: Vec<IpNet>,
    transports: Transports,
    control: mpsc::Sender<Control>,
) -> (EngineAnchor, Engine) {
    let ops = EngineOps::default();
    let rewrite = EngineAnchor::new(
        pbx_networks,
        (cfg.inside_protocol, cfg.outside_protocol),
        Arc::clone(&ops),
    );
    let (tx, rx) = mpsc::channel(QUEUE);
    let stats = Arc::new(EngineStats::default());
    let events = EngineEvents::default();
    tokio::spawn(run(
        Task {
            to: cfg.rtpengine,
            timeout: cfg.rtpengine_timeout,
            transports,
            control,
            stats: Arc::clone(&stats),
            bodies: HashMap::new(),
            waiting: HashMap::new(),
            cookie: 0,
            nonce: std::process::id(),
            watched: HashMap::new(),
            media_timeout: cfg.timeout,
            hold_timeout: cfg.hold_timeout,
            events: Arc::clone(&events),
        },
        rx,
    ));
    (
        rewrite,
        Engine {
            ops,
            tx,
            stats,
            events,
        },
    )
}

impl Engine {
    /// Hands the rewrite's queued work to the task (called every round, before the round's
    /// messages).
    pub(crate) fn forward_ops(&self) {
        let work: Vec<EngineWork> = match self.ops.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return,
        };
        for w in work {
            if self.tx.try_send(Work::Op(w)).is_err() {
                self.stats.queue_dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// The media figures of calls deleted since the last call.
    pub(crate) fn take_events(&self) -> Vec<sipwarden_b2bua::events::CallEvent> {
        self.events
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Takes a message if its SDP is rtpengine's to write; gives it back otherwise.
    pub(crate) fn take(&self, t: Transmit<Peer>) -> Option<Transmit<Peer>> {
        let Some(token) = marked_token(&t.bytes) else {
            return Some(t);
        };
        // A full queue drops the message: SIP retransmits it, or the call times out.
        if self.tx.try_send(Work::Send(t, token)).is_err() {
            self.stats.queue_dropped.fetch_add(1, Relaxed);
        }
        None
    }
}

struct Task {
    to: SocketAddr,
    timeout: Duration,
    transports: Transports,
    control: mpsc::Sender<Control>,
    stats: Arc<EngineStats>,
    /// Per token: rtpengine's SDP once asked (`None` while the body waits for its message,
    /// with what to ask), and the call it belongs to.
    bodies: HashMap<u64, (u64, Body)>,
    /// Tokens per call, to forget them when the call ends.
    waiting: HashMap<u64, Vec<u64>>,
    cookie: u64,
    nonce: u32,
    /// The calls in rtpengine, for the media and hold timeouts.
    watched: HashMap<u64, Watched>,
    media_timeout: Duration,
    hold_timeout: Duration,
    events: EngineEvents,
}

/// A call's media as the timeouts see it.
struct Watched {
    /// When silence started to count: the call's first SDP, or its resume from hold.
    since: Instant,
    /// On hold since then.
    held: bool,
    /// When to ask rtpengine again how long the call has been silent.
    next_check: Instant,
    /// The core was told to end it.
    ended: bool,
}

enum Body {
    Ask(EngineSdp),
    Done(Bytes),
    Failed,
}

async fn run(mut task: Task, mut rx: mpsc::Receiver<Work>) {
    let bind: SocketAddr = if task.to.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let bind = if task.to.ip().is_loopback() {
        bind
    } else {
        SocketAddr::new(
            if task.to.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            0,
        )
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("rtpengine control socket: {e}");
            return;
        }
    };
    if let Err(e) = socket.connect(task.to).await {
        tracing::error!(to = %task.to, "rtpengine control socket: {e}");
        return;
    }
    // Whether rtpengine is there: said once at start, not required (it may start later).
    let ping = ng::ping(&task.next_cookie());
    match ask(&socket, &ping, task.timeout).await {
        Ok(_) => tracing::info!(to = %task.to, "rtpengine answers"),
        Err(e) => tracing::warn!(to = %task.to, "rtpengine does not answer yet: {e}"),
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let work = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => w,
                None => break,
            },
            _ = tick.tick() => {
                task.watch(&socket).await;
                continue;
            }
        };
        match work {
            Work::Op(EngineWork::Sdp(s)) => {
                if task.bodies.len() >= MAX_BODIES {
                    // Its message will find no body and not be sent; the call ends.
                    task.stats.queue_dropped.fetch_add(1, Relaxed);
                    continue;
                }
                let now = Instant::now();
                let timeout = task.media_timeout;
                task.watched.entry(s.call).or_insert(Watched {
                    since: now,
                    held: false,
                    next_check: now + timeout,
                    ended: false,
                });
                task.waiting.entry(s.call).or_default().push(s.token);
                task.bodies.insert(s.token, (s.call, Body::Ask(s)));
            }
            Work::Op(EngineWork::Hold { call, held }) => {
                let now = Instant::now();
                let timeout = task.media_timeout;
                if let Some(w) = task.watched.get_mut(&call) {
                    w.held = held;
                    w.since = now;
                    w.next_check = now + timeout;
                }
            }
            Work::Op(EngineWork::Delete { call }) => {
                task.watched.remove(&call);
                for t in task.waiting.remove(&call).unwrap_or_default() {
                    task.bodies.remove(&t);
                }
                // The call's figures first (for its call record), then the delete.
                let req = ng::query(&task.next_cookie(), &call_id(call));
                if let Ok(r) = ask(&socket, &req, task.timeout).await {
                    task.media_figures(call, &r);
                }
                let req = ng::delete(&task.next_cookie(), &call_id(call));
                match ask(&socket, &req, task.timeout).await {
                    Ok(_) => {
                        task.stats.deleted.fetch_add(1, Relaxed);
                    }
                    Err(e) => tracing::debug!(call, "rtpengine delete: {e}"),
                }
            }
            Work::Send(t, token) => task.send(&socket, t, token).await,
        }
        task.stats.bodies.store(
            u64::try_from(task.bodies.len()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }
}

/// rtpengine's name for a call: the core's call id (never the SIP Call-IDs, which differ per
/// leg and are the endpoints').
fn call_id(call: u64) -> String {
    format!("sipwarden-{call}")
}

impl Task {
    /// The media and hold timeouts (`[media] timeout`, `hold_timeout`), as for the embedded
    /// relay: a call on hold too long is ended; otherwise rtpengine is asked (`query`) when
    /// the call could have been silent for the timeout, and a call whose newest packet is older
    /// than that, or that rtpengine no longer knows (its own timeout deleted it), is ended. A
    /// query rtpengine does not answer ends nothing.
    async fn watch(&mut self, socket: &UdpSocket) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .watched
            .iter()
            .filter(|(_, w)| !w.ended && now >= w.next_check.min(w.since + self.hold_timeout))
            .map(|(c, _)| *c)
            .collect();
        for call in due {
            let Some(w) = self.watched.get(&call) else {
                continue;
            };
            if w.held {
                if now.saturating_duration_since(w.since) >= self.hold_timeout {
                    self.end(call, Control::HoldTimeout(call)).await;
                }
                continue;
            }
            if now < w.next_check {
                continue;
            }
            let req = ng::query(&self.next_cookie(), &call_id(call));
            let silent_for = match ask(socket, &req, self.timeout).await {
                Ok(r) if r.is_ok() => r.last_packet().map(|last| {
                    let unix = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    Duration::from_secs(unix.saturating_sub(u64::try_from(last).unwrap_or(0)))
                }),
                // rtpengine no longer has the call: its media is gone.
                Ok(_) => Some(Duration::MAX),
                Err(e) => {
                    tracing::debug!(call, "rtpengine query: {e}");
                    None
                }
            };
            let timeout = self.media_timeout;
            let Some(w) = self.watched.get_mut(&call) else {
                continue;
            };
            // Silence counts from the call's start or its resume at the earliest.
            let silent_for = silent_for.map(|s| s.min(now.saturating_duration_since(w.since)));
            match silent_for {
                Some(s) if s >= timeout => self.end(call, Control::MediaTimeout(call)).await,
                Some(s) => w.next_check = now + (timeout - s).max(Duration::from_secs(1)),
                None => w.next_check = now + (timeout / 4).max(Duration::from_secs(1)),
            }
        }
    }

    /// A call's media figures from rtpengine's `query`, as the relay gives them: one
    /// `CallEventKind::Media` per section, packets and bytes from each leg (rtpengine drops
    /// by its own rules; none counted here).
    fn media_figures(&self, call: u64, r: &ng::Reply) {
        let (from_a, from_b) = (r.media_stats("a"), r.media_stats("b"));
        let Ok(mut q) = self.events.lock() else {
            return;
        };
        for &(stream, pa, ba) in &from_a {
            let (pb, bb) = from_b
                .iter()
                .find(|(i, ..)| *i == stream)
                .map_or((0, 0), |&(_, p, b)| (p, b));
            self.stats.packets.fetch_add(pa + pb, Relaxed);
            if q.len() >= MAX_EVENTS {
                self.stats.queue_dropped.fetch_add(1, Relaxed);
                continue;
            }
            q.push(sipwarden_b2bua::events::CallEvent {
                call,
                at: std::time::SystemTime::now(),
                kind: sipwarden_b2bua::events::CallEventKind::Media {
                    stream,
                    from_a: (pa, ba),
                    from_b: (pb, bb),
                    dropped: 0,
                },
            });
        }
    }

    async fn end(&mut self, call: u64, why: Control) {
        if let Some(w) = self.watched.get_mut(&call) {
            w.ended = true;
        }
        let _ = self.control.send(why).await;
    }

    fn next_cookie(&mut self) -> String {
        self.cookie += 1;
        format!("sw{:x}-{}", self.nonce, self.cookie)
    }

    async fn send(&mut self, socket: &UdpSocket, t: Transmit<Peer>, token: u64) {
        let Some((call, body)) = self.bodies.get(&token) else {
            // Its work was dropped or its call ended: the body must not leave unanchored.
            return;
        };
        let call = *call;
        let sdp = match body {
            Body::Done(sdp) => sdp.clone(),
            Body::Failed => return,
            Body::Ask(s) => {
                let s = s.clone();
                let Ok(msg) = Message::parse(&t.bytes) else {
                    return;
                };
                let offered = unmarked(msg.body());
                let req = ng::sdp_request(
                    &self.next_cookie(),
                    s.exchange,
                    ng::CallTags {
                        call_id: &call_id(call),
                        from_tag: s.from_tag,
                        to_tag: s.to_tag,
                    },
                    &offered,
                    &s.flags,
                );
                match ask(socket, &req, self.timeout).await {
                    Ok(r) if r.is_ok() && r.sdp.is_some() => {
                        self.stats.anchored.fetch_add(1, Relaxed);
                        let sdp = Bytes::from(r.sdp.unwrap_or_default());
                        self.bodies.insert(token, (call, Body::Done(sdp.clone())));
                        sdp
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(r) => r.to_string(),
                            Err(e) => e,
                        };
                        tracing::warn!(call, "rtpengine could not anchor the call's media: {why}");
                        self.stats.failures.fetch_add(1, Relaxed);
                        self.bodies.insert(token, (call, Body::Failed));
                        let _ = self.control.send(Control::MediaFailed(call)).await;
                        return;
                    }
                }
            }
        };
        if let Some(bytes) = with_body(&t.bytes, sdp) {
            self.transports.send(t.dest, bytes);
        }
    }
}

/// The message with `sdp` as its body (Content-Length follows).
fn with_body(message: &[u8], sdp: Bytes) -> Option<Bytes> {
    let mut m = Message::parse(message).ok()?;
    let ct = m.header(HeaderName::ContentType).map(str::to_owned);
    m.set_body(sdp, ct.as_deref()).ok()?;
    Some(m.to_bytes())
}

/// One request and its reply: sent again once at half the timeout (rtpengine answers a
/// repeated cookie from its cache, so a lost datagram costs no second offer).
async fn ask(
    socket: &UdpSocket,
    req: &ng::Request,
    timeout: Duration,
) -> Result<ng::Reply, String> {
    let mut buf = vec![0u8; 65_536];
    for attempt in 0..2 {
        socket
            .send(&req.datagram)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let wait = tokio::time::sleep(timeout / 2);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                r = socket.recv(&mut buf) => {
                    let n = r.map_err(|e| format!("receive: {e}"))?;
                    // A late reply to an earlier request is skipped.
                    if let Ok(reply) = ng::parse_reply(buf.get(..n).unwrap_or_default()) {
                        if reply.cookie == req.cookie {
                            return Ok(reply);
                        }
                    }
                }
            }
        }
        if attempt == 1 {
            break;
        }
    }
    Err(format!("no answer in {timeout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_replaced_and_its_length_follows() {
        let msg = b"INVITE sip:1@127.0.0.3 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        let out = with_body(msg, Bytes::from_static(b"v=0\r\ns=x\r\n")).unwrap();
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.body(), b"v=0\r\ns=x\r\n");
        assert_eq!(m.content_length(), Some(10));
        assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));
    }
}
