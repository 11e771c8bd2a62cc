//! Typed values read straight from TOML. Each reader fails inside the deserializer, so the
//! error carries the value's position.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, SeqAccess, VariantAccess, Visitor,
};
use sipwarden_sip::header::Transport;
use sipwarden_sip::{Secret, Uri};

use crate::TlsVersion;
use crate::numbers::NumberRange;

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
    /// Whether the URI names the port: then no SRV look-up (RFC 3263 §4.2).
    pub explicit_port: bool,
    /// Whether the URI names the transport (`sips:` or `;transport=`): then no NAPTR
    /// look-up (RFC 3263 §4.1).
    pub explicit_transport: bool,
}

impl Proxy {
    /// Whether signalling toward it is TLS (`sips:` or `;transport=tls`).
    pub fn is_tls(&self) -> bool {
        self.transport == Transport::Tls
    }

    /// Whether the host is a DNS name rather than an address.
    pub fn is_name(&self) -> bool {
        self.ip().is_none()
    }

    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// The transports the gateway can open a connection with: the PBX's and the trunks'. It
/// never opens a WebSocket connection, so `ws` and `wss` are not among them.
const OUTBOUND_TRANSPORTS: &[&str] = &["udp", "tcp", "tls"];
/// The transports an account may be restricted to.
const ACCOUNT_TRANSPORTS: &[&str] = &["udp", "tcp", "tls", "ws", "wss"];

/// Reads a transport by its lowercase name, refusing any name not in the list with serde's
/// "unknown variant …, expected one of …" error. Read as an enum, so it accepts and refuses
/// exactly what a derived lowercase enum would.
#[derive(Clone, Copy)]
struct TransportNamed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for TransportNamed {
    type Value = Transport;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Transport, D::Error> {
        d.deserialize_enum("Transport", self.0, self)
    }
}

impl<'de> Visitor<'de> for TransportNamed {
    type Value = Transport;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "one of {}", self.0.join(", "))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Transport, A::Error> {
        let (name, variant): (String, A::Variant) = data.variant()?;
        if !self.0.contains(&name.as_str()) {
            return Err(de::Error::unknown_variant(&name, self.0));
        }
        variant.unit_variant()?;
        Ok(Transport::from_token(&name))
    }
}

/// `udp`, `tcp` or `tls`: the transport toward the PBX.
pub(crate) fn outbound_transport<'de, D: Deserializer<'de>>(d: D) -> Result<Transport, D::Error> {
    TransportNamed(OUTBOUND_TRANSPORTS).deserialize(d)
}

/// A list of `udp`, `tcp`, `tls`, `ws` and `wss`: the transports an account may use.
pub(crate) fn account_transports<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Transport>, D::Error> {
    struct List;

    impl<'de> Visitor<'de> for List {
        type Value = Vec<Transport>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Transport>, A::Error> {
            let mut v = Vec::new();
            while let Some(t) = seq.next_element_seed(TransportNamed(ACCOUNT_TRANSPORTS))? {
                v.push(t);
            }
            Ok(v)
        }
    }

    d.deserialize_seq(List)
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

/// Reads a password or an HA1 straight into a [`Secret`]. A value of the wrong type is
/// refused without repeating it: serde's own message would quote `danger_password = 1234`
/// back into the error, and errors end up in logs.
struct SecretText;

impl Visitor<'_> for SecretText {
    type Value = Secret<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Secret::new(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Secret::new(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(not_a_string())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(not_a_string())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(not_a_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(not_a_string())
    }
}

fn not_a_string<E: de::Error>() -> E {
    E::custom("must be a quoted string (the value is secret and not repeated here)")
}

pub(crate) fn opt_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Secret<String>>, D::Error> {
    d.deserialize_string(SecretText).map(Some)
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
    let explicit_transport = u.secure || u.transport().is_some();
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
        explicit_port: u.port.is_some(),
        explicit_transport,
    })
}

/// Reads an amount of money exactly: a TOML string such as `"1.00"` (or an integer), never a
/// float, whose binary value is not the decimal written (`0.1` is not one tenth).
struct Money;

impl Visitor<'_> for Money {
    type Value = rust_decimal::Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an amount as a quoted decimal such as \"1.00\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_money(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            "{v} is a float, which does not hold decimal amounts exactly: quote it (\"{v}\")"
        )))
    }
}

/// An amount of money written as a decimal (`"1.00"`, `"0.0125"`): digits with at most one
/// point, an optional minus sign (validation says where a negative amount is wrong).
fn parse_money(s: &str) -> Result<rust_decimal::Decimal, String> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    ok.then(|| t.parse::<rust_decimal::Decimal>().ok())
        .flatten()
        .ok_or_else(|| format!("{s:?} is not a decimal amount (like \"1.00\")"))
}

pub(crate) fn money<'de, D: Deserializer<'de>>(d: D) -> Result<rust_decimal::Decimal, D::Error> {
    d.deserialize_any(Money)
}

pub(crate) fn opt_money<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<rust_decimal::Decimal>, D::Error> {
    d.deserialize_any(Money).map(Some)
}
