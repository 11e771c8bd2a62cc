//! `[media]`: media anchoring. Without the table the gateway leaves media to the endpoints (the
//! SDP's connection addresses pass as they are, topology hiding aside); with it every call's
//! media goes through the embedded relay.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::values;

/// Which engine moves the media.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaEngine {
    /// The relay built into sipwarden.
    #[default]
    Embedded,
    /// rtpengine, driven over its `ng` control protocol (`rtpengine`): SRTP on one side and
    /// RTP on the other, WebRTC calls anchored too.
    Rtpengine,
}

/// The media protocol a side's SDP offers and answers with (rtpengine only).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaProtocol {
    /// Whatever the other side sent.
    #[default]
    Keep,
    /// Plain RTP (`RTP/AVP`): for a PBX that cannot do SRTP.
    Rtp,
    /// SRTP keyed by SDES (`RTP/SAVP` with `a=crypto`).
    Srtp,
}

impl MediaProtocol {
    /// The SDP `m=` protocol rtpengine is asked to write; `None` for [`MediaProtocol::Keep`].
    pub fn sdp_proto(self) -> Option<&'static str> {
        match self {
            Self::Keep => None,
            Self::Rtp => Some("RTP/AVP"),
            Self::Srtp => Some("RTP/SAVP"),
        }
    }
}

/// `[media]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The engine. Default "embedded".
    #[serde(default)]
    pub engine: MediaEngine,
    /// The relay's address facing the PBX (the LAN).
    pub inside: IpAddr,
    /// What the PBX is told instead, when a NAT sits between.
    #[serde(default)]
    pub inside_advertised: Option<IpAddr>,
    /// The relay's address facing trunks and phones.
    pub outside: IpAddr,
    /// What trunks and phones are told instead (the public address of a NAT in front).
    #[serde(default)]
    pub outside_advertised: Option<IpAddr>,
    /// The first port of the relay's range (RTP on even ports, RTCP on the next).
    #[serde(default = "default_port_min")]
    pub port_min: u16,
    /// The last port of the range.
    #[serde(default = "default_port_max")]
    pub port_max: u16,
    /// How long after a stream starts (or moves) its source may be learned. Default "10s".
    #[serde(default = "default_latch", deserialize_with = "values::duration")]
    pub latch_window: Duration,
    /// A call whose media stops both ways this long is ended. Default "60s". Not while the
    /// call is on hold: `hold_timeout` applies then.
    #[serde(default = "default_timeout", deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// A call on hold (every stream sendonly, recvonly or inactive, or `c=0.0.0.0`) this long
    /// is ended, whether music on hold flows or not. Default "1h".
    #[serde(
        default = "default_hold_timeout",
        deserialize_with = "values::duration"
    )]
    pub hold_timeout: Duration,
    /// Relay threads. Default 1.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// rtpengine's `ng` control address (`engine = "rtpengine"`). Default 127.0.0.1:2223.
    #[serde(default = "default_rtpengine")]
    pub rtpengine: std::net::SocketAddr,
    /// How long rtpengine may take to answer before the call is refused. Default "1s".
    #[serde(
        default = "default_rtpengine_timeout",
        deserialize_with = "values::duration"
    )]
    pub rtpengine_timeout: Duration,
    /// What the PBX's side gets (rtpengine only). Default "keep".
    #[serde(default)]
    pub inside_protocol: MediaProtocol,
    /// What trunks' and phones' side gets (rtpengine only). Default "keep".
    #[serde(default)]
    pub outside_protocol: MediaProtocol,
}

fn default_rtpengine() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 2223))
}

fn default_rtpengine_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_port_min() -> u16 {
    20000
}

fn default_port_max() -> u16 {
    29999
}

fn default_latch() -> Duration {
    Duration::from_secs(10)
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_hold_timeout() -> Duration {
    Duration::from_secs(3600)
}

fn default_workers() -> usize {
    1
}

/// Checks `[media]`.
pub(crate) fn validate(m: &MediaConfig, err: &mut dyn FnMut(String, String)) {
    if m.port_min < 1024 || m.port_max <= m.port_min || m.port_max - m.port_min < 3 {
        err(
            "media.port_max".into(),
            "the range must hold at least two port pairs above 1023 (port_min < port_max)".into(),
        );
    }
    if !(Duration::from_secs(5)..=Duration::from_secs(86_400)).contains(&m.timeout) {
        err("media.timeout".into(), "must lie between 5s and 24h".into());
    }
    if !(Duration::from_secs(5)..=Duration::from_secs(86_400)).contains(&m.hold_timeout) {
        err(
            "media.hold_timeout".into(),
            "must lie between 5s and 24h".into(),
        );
    }
    if m.latch_window > Duration::from_secs(60) {
        err("media.latch_window".into(), "must be 1m or less".into());
    }
    if !(1..=64).contains(&m.workers) {
        err("media.workers".into(), "must lie between 1 and 64".into());
    }
    if !(Duration::from_millis(50)..=Duration::from_secs(10)).contains(&m.rtpengine_timeout) {
        err(
            "media.rtpengine_timeout".into(),
            "must lie between 50ms and 10s".into(),
        );
    }
    if m.engine == MediaEngine::Embedded {
        for (key, p) in [
            ("media.inside_protocol", m.inside_protocol),
            ("media.outside_protocol", m.outside_protocol),
        ] {
            if p != MediaProtocol::Keep {
                err(
                    key.into(),
                    "the embedded relay passes media as it is: converting between RTP and SRTP needs engine = \"rtpengine\"".into(),
                );
            }
        }
    }
    for (key, ip) in [("media.inside", m.inside), ("media.outside", m.outside)] {
        if ip.is_unspecified() || ip.is_multicast() {
            err(
                key.into(),
                "must be one address of this machine (not 0.0.0.0)".into(),
            );
        }
    }
}
