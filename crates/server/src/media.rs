//! Media anchoring's moving parts: the relay's threads, the operations the anchoring rewrite
//! queues (performed by the core task after each round), and the media timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipwarden_config::MediaConfig;
use sipwarden_media::{RelayOp, SideAddr};
use sipwarden_policy::{MediaAnchor, RelayOps};
use sipwarden_relay::{Relay, StreamSpec};
use tokio::sync::mpsc;

use crate::core_task::Control;

/// The relay and the queue the anchoring rewrite fills.
#[derive(Clone)]
pub(crate) struct Media {
    pub(crate) relay: Arc<Relay>,
    pub(crate) ops: RelayOps,
    /// Streams the relay could not open (a port taken by another program).
    pub(crate) open_failures: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) timeout: Duration,
    /// Calls that went on hold: whether they still are, and since when (on hold, the hold
    /// timeout replaces the media timeout; after a resume, silence counts from the resume).
    pub(crate) holds: Arc<Mutex<HashMap<u64, (bool, Instant)>>>,
    pub(crate) hold_timeout: Duration,
    /// The anchoring rewrite's port pool.
    pub(crate) ports: Arc<sipwarden_policy::media::PortGauges>,
}

/// Starts the relay and builds the anchoring rewrite that feeds it.
pub(crate) fn start(
    cfg: &MediaConfig,
    pbx_networks: Vec<IpNet>,
) -> std::io::Result<(MediaAnchor, Media)> {
    let relay = Relay::start(sipwarden_relay::Config {
        workers: cfg.workers,
        latch_window: cfg.latch_window,
        ..sipwarden_relay::Config::default()
    })?;
    let ops = RelayOps::default();
    let side = |bind, advertised| SideAddr { bind, advertised };
    let rewrite = MediaAnchor::new(
        (
            side(cfg.inside, cfg.inside_advertised),
            side(cfg.outside, cfg.outside_advertised),
        ),
        pbx_networks,
        (cfg.port_min, cfg.port_max),
        Arc::clone(&ops),
    );
    let ports = rewrite.gauges();
    Ok((
        rewrite,
        Media {
            relay: Arc::new(relay),
            ops,
            open_failures: Arc::default(),
            timeout: cfg.timeout,
            holds: Arc::default(),
            hold_timeout: cfg.hold_timeout,
            ports,
        },
    ))
}

impl Media {
    /// Performs what the rewrite queued; returns the calls whose media could not be set up
    /// (the caller hangs them up) and those left un-anchored (for their call records).
    pub(crate) fn perform(&self) -> (Vec<u64>, Vec<(u64, &'static str)>) {
        let ops: Vec<RelayOp> = match self.ops.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return (Vec::new(), Vec::new()),
        };
        let mut failed = Vec::new();
        let mut unanchored = Vec::new();
        for op in ops {
            match op {
                RelayOp::Open {
                    call,
                    stream,
                    a_bind,
                    b_bind,
                    to_a,
                    to_b,
                    a_sources,
                    b_sources,
                    rtcp_mux,
                } => {
                    let spec = StreamSpec {
                        call,
                        stream,
                        a_bind,
                        b_bind,
                        to_a,
                        to_b,
                        a_sources,
                        b_sources,
                        rtcp_mux,
                    };
                    if let Err(e) = self.relay.open(spec) {
                        self.open_failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(call, "media relay could not open a stream: {e}");
                        failed.push(call);
                    }
                }
                RelayOp::Update {
                    call,
                    stream,
                    to_a,
                    to_b,
                } => {
                    let _ = self.relay.update(call, stream, to_a, to_b);
                }
                RelayOp::Close { call } => {
                    self.relay.close_soon(call);
                    if let Ok(mut h) = self.holds.lock() {
                        h.remove(&call);
                    }
                }
                RelayOp::Hold { call, held } => {
                    if let Ok(mut h) = self.holds.lock() {
                        h.insert(call, (held, Instant::now()));
                    }
                }
                RelayOp::Unanchored { call, why } => unanchored.push((call, why)),
            }
        }
        (failed, unanchored)
    }
}

/// Every second, asks the relay which calls' media stopped both ways for longer than the
/// timeout, and which calls have been on hold longer than the hold timeout, and has the core
/// end them. A call on hold is not ended for silence: hold without music is silent.
pub(crate) async fn watch_timeouts(media: Media, control: mpsc::Sender<Control>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let relay = Arc::clone(&media.relay);
        let Ok(reports) = tokio::task::spawn_blocking(move || relay.reports()).await else {
            return;
        };
        let now = Instant::now();
        let holds: HashMap<u64, (bool, Instant)> =
            media.holds.lock().map(|h| h.clone()).unwrap_or_default();
        for (call, (held, since)) in &holds {
            if *held
                && now.saturating_duration_since(*since) >= media.hold_timeout
                && control.send(Control::HoldTimeout(*call)).await.is_err()
            {
                return;
            }
        }
        // A call is silent when every one of its streams is.
        let mut calls: HashMap<u64, bool> = HashMap::new();
        for r in &reports {
            let last = match holds.get(&r.call) {
                Some((true, _)) => continue,
                Some((false, resumed)) => r.last_activity().max(*resumed),
                None => r.last_activity(),
            };
            let silent = now.saturating_duration_since(last) >= media.timeout;
            let e = calls.entry(r.call).or_insert(true);
            *e = *e && silent;
        }
        for (call, silent) in calls {
            if silent && control.send(Control::MediaTimeout(call)).await.is_err() {
                return;
            }
        }
    }
}
