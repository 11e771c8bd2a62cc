//! Typed values read straight from TOML. Each reader fails inside the deserializer, so the
//! error carries the value's position.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use sipwarden_sip::Uri;

use crate::TlsVersion;
use crate::numbers::NumberRange;

/// A SIP transport in configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

/// Where a trunk's outbound calls go, read from a `sip:`/`sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// The URI as written.
    pub uri: String,
    /// Host (name or address).
    pub host: String,
    /// Port (default 5060, or 5061 for TLS).
    pub port: u16,
    /// Transport: `sips:` means TLS; otherwise `;transport=` or UDP.
    pub transport: Transport,
}

impl Proxy {
    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address:port (like \"127.0.0.1:5060\" or \"[::1]:5060\")")
    })
}

pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_socket_addr(&s).map_err(de::Error::custom)
}

pub(crate) fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| parse_socket_addr(s))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)
}

pub(crate) fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("{s:?} is not a network (like \"192.0.2.0/24\" or \"2001:db8::/32\")")
                })
        })
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration (like \"30s\", \"5m\", \"4h\"): {e}"))
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(de::Error::custom)
}

pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map(Some).map_err(de::Error::custom)
}

pub(crate) fn tls_version<'de, D: Deserializer<'de>>(d: D) -> Result<TlsVersion, D::Error> {
    match String::deserialize(d)?.as_str() {
        "1.2" => Ok(TlsVersion::V1_2),
        "1.3" => Ok(TlsVersion::V1_3),
        other => Err(de::Error::custom(format!(
            "{other:?}: the lowest TLS version is \"1.2\" or \"1.3\""
        ))),
    }
}

pub(crate) fn number_ranges<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NumberRange>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| NumberRange::parse(s))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)
}

pub(crate) fn proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Proxy, D::Error> {
    let s = String::deserialize(d)?;
    let bad = |why: &str| {
        de::Error::custom(format!(
            "{s:?} {why} (like \"sip:192.0.2.1:5060\" or \"sips:sip.example.com:5061\")"
        ))
    };
    let Ok(Uri::Sip(u)) = Uri::parse(&s) else {
        return Err(bad("is not a sip: or sips: URI"));
    };
    if u.user.is_some() || u.headers.is_some() {
        return Err(bad("must name a host, not a user"));
    }
    let transport = if u.secure {
        Transport::Tls
    } else {
        match u.transport().map(str::to_ascii_lowercase).as_deref() {
            None | Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            Some("tls") => Transport::Tls,
            Some(_) => return Err(bad("has a transport other than udp, tcp or tls")),
        }
    };
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    Ok(Proxy {
        uri: s.clone(),
        host: u.host.to_string(),
        port: u.port.unwrap_or(default_port),
        transport,
    })
}
