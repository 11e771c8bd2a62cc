//! Via (RFC 3261 §20.42, §25.1; RFC 3581 rport; RFC 7118 WS/WSS).

use super::{HResult, Malformed, Params, list_sep, take_params};
use crate::scan::{Cursor, HOST};
use crate::uri::{self, Host};

/// The transport of a Via.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Any other token.
    Other,
}

impl Transport {
    /// Classifies a transport token (case-insensitive).
    pub fn from_token(t: &str) -> Self {
        const NAMES: [(&str, Transport); 6] = [
            ("UDP", Transport::Udp),
            ("TCP", Transport::Tcp),
            ("TLS", Transport::Tls),
            ("SCTP", Transport::Sctp),
            ("WS", Transport::Ws),
            ("WSS", Transport::Wss),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map_or(Self::Other, |(_, v)| *v)
    }

    /// Canonical token; `None` for [`Transport::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other => return None,
        })
    }

    /// Stream transports need Content-Length and keep the connection for responses.
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// One Via value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name (`SIP`).
    pub protocol: &'a str,
    /// Protocol version (`2.0`).
    pub version: &'a str,
    /// Transport.
    pub transport: Transport,
    /// Transport token as written.
    pub transport_text: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl …).
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// `branch`.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie (§8.1.1.7) and something after it.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }

    /// `received`.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `rport`: `Some(None)` when present without a value (the client asks for it, RFC 3581).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| uri::parse_port(p).ok()))
    }

    /// `maddr`.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// `ttl` (0–255).
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }
}

/// Parses a Via row (`via-parm *(COMMA via-parm)`), calling `f` for each value.
pub fn parse_via_list<'a>(value: &'a str, mut f: impl FnMut(Via<'a>)) -> HResult<()> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    loop {
        f(parse_one(&mut c)?);
        if !list_sep(&mut c)? {
            return Ok(());
        }
    }
}

fn parse_one<'a>(c: &mut Cursor<'a>) -> HResult<Via<'a>> {
    let protocol = c.token().ok_or(Malformed)?;
    if !c.eat_sep(b'/') {
        return Err(Malformed);
    }
    let version = c.token().ok_or(Malformed)?;
    if !c.eat_sep(b'/') {
        return Err(Malformed);
    }
    let transport_text = c.token().ok_or(Malformed)?;
    if !c.skip_lws() {
        return Err(Malformed);
    }
    let host = if c.peek() == Some(b'[') {
        let start = c.pos();
        c.take_while(|b| b != b']' && b != b',' && b != b';');
        if !c.eat(b']') {
            return Err(Malformed);
        }
        let text = c.slice(start + 1, c.pos() - 1);
        Host::V6(uri::parse_v6(text).map_err(|_| Malformed)?)
    } else {
        uri::parse_host(c.take_class(HOST)).map_err(|_| Malformed)?
    };
    let port = if c.eat_sep(b':') {
        let p = c.take_while(|b| b.is_ascii_digit());
        Some(uri::parse_port(p).map_err(|_| Malformed)?)
    } else {
        None
    };
    let params = take_params(c)?;
    // Validate the parameters whose syntax the transaction layer relies on.
    let via = Via {
        protocol,
        version,
        transport: Transport::from_token(transport_text),
        transport_text,
        host,
        port,
        params,
    };
    if let Some(Some(p)) = via.params.get("rport") {
        uri::parse_port(p).map_err(|_| Malformed)?;
    }
    if let Some(t) = via.params.get("ttl") {
        t.and_then(|t| crate::scan::parse_decimal(t, 255))
            .ok_or(Malformed)?;
    }
    if let Some(r) = via.params.get("received") {
        let r = r.ok_or(Malformed)?;
        let r = r
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(r);
        if r.parse::<std::net::IpAddr>().is_err() && uri::parse_v6(r).is_err() {
            return Err(Malformed);
        }
    }
    if via.params.get("branch").is_some_and(|b| b.is_none()) {
        return Err(Malformed);
    }
    Ok(via)
}

/// Writes the value in canonical spacing (`SIP/2.0/UDP host:port;params`), folds removed:
/// the form the gateway uses when it copies a Via into a message it builds.
impl std::fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol, self.version, self.transport_text, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        // Parameters as written, with any fold or spacing around separators dropped.
        for (name, value) in self.params.iter() {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vias(s: &str) -> HResult<Vec<Via<'_>>> {
        let mut v = Vec::new();
        parse_via_list(s, |x| v.push(x))?;
        Ok(v)
    }

    #[test]
    fn folded_torture() {
        let v = vias("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v[0].transport, Transport::Udp);
        assert_eq!(v[0].branch(), Some("390skdjuw"));
        let v = vias(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].host, Host::Name("spindle.example.com"));
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
        assert_eq!(
            v[1].to_string(),
            "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"
        );
        let v = vias("SIP/2.0/TCP [2001:db8::1]:5061 ; rport ;branch=z9hG4bKx").unwrap();
        assert_eq!(
            v[0].to_string(),
            "SIP/2.0/TCP [2001:db8::1]:5061;rport;branch=z9hG4bKx"
        );
    }

    #[test]
    fn params_and_hosts() {
        let v =
            vias("SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];rport=5060").unwrap();
        assert_eq!(v[0].port, Some(5070));
        assert_eq!(v[0].rport(), Some(Some(5060)));
        let v = vias("SIP/2.0/TCP client.invalid;branch=z9hG4bK1;rport;received=2001:db8::9:255")
            .unwrap();
        assert_eq!(v[0].rport(), Some(None));
        assert!(vias("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(vias("SIP/2.0/UDP").is_err());
        assert!(vias("SIP/2.0/UDP host;received=notanip").is_err());
        assert!(vias("SIP/2.0/UDP host:99999").is_err());
        assert!(vias("SIP/2.0/UDP host,").is_err());
        assert_eq!(
            vias("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx").unwrap()[0].transport,
            Transport::Wss
        );
    }
}
