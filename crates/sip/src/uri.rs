//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966) and other absolute URIs.
//!
//! Views borrow from the message: components are kept as written (escapes included), and
//! [`unescape`](crate::unescape) decodes one on demand. Every byte is checked against the
//! character class of its component, so LWS, angle brackets or raw `@` in the wrong place are
//! errors, never silently carried over.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::scan::{self, DIGIT, HNV, HOST, PARAM, PASSWORD, TEL, URIC, USER};

/// Why a URI did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UriError;

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed uri")
    }
}

impl std::error::Error for UriError {}

/// The scheme of a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
    /// Anything else (`http:`, `urn:`, `isbn:` …).
    Other,
}

/// A parsed URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Another absolute URI, kept opaque.
    Other(AbsoluteUri<'a>),
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part as written (escapes kept); may hold a telephone-subscriber.
    pub user: Option<&'a str>,
    /// Password as written. Its presence is itself a red flag in most deployments.
    pub password: Option<&'a str>,
    /// Host.
    pub host: Host<'a>,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: UriParams<'a>,
    /// Header part after `?`, as written, if any.
    pub headers: Option<&'a str>,
}

/// A `tel:` URI (RFC 3966).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number as written, visual separators included (`+1-212-555-0101`).
    pub number: &'a str,
    /// Parameters (`phone-context`, `ext`, `isub`, `verstat` …).
    pub params: UriParams<'a>,
}

/// An absolute URI with a scheme the gateway does not interpret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    /// Scheme as written.
    pub scheme: &'a str,
    /// Everything after the colon.
    pub rest: &'a str,
}

/// The host of a SIP URI or a Via sent-by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name as written.
    Name(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written as a reference, `[…]`).
    V6(Ipv6Addr),
}

impl Host<'_> {
    /// The address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Self::Name(_) => None,
            Self::V4(a) => Some(IpAddr::V4(a)),
            Self::V6(a) => Some(IpAddr::V6(a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::V4(a) => write!(f, "{a}"),
            Self::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// URI parameters (`;name=value` …) as written, decoded on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UriParams<'a>(&'a str);

impl<'a> UriParams<'a> {
    /// The raw text after the first `;` (empty when there are none).
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Iterates `(name, value)` pairs as written.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.0
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| match scan::split_once_byte(p, b'=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            })
    }

    /// The first parameter named `name` (case-insensitive): `Some(None)` when it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a parameter named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> Uri<'a> {
    /// Parses a complete URI (no surrounding whitespace or brackets).
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        let (scheme, rest) = scan::split_once_byte(s, b':').ok_or(UriError)?;
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest).map(Uri::Tel)
        } else {
            parse_absolute(scheme, rest).map(Uri::Other)
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::Sip(u) if u.secure => Scheme::Sips,
            Self::Sip(_) => Scheme::Sip,
            Self::Tel(_) => Scheme::Tel,
            Self::Other(_) => Scheme::Other,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&'a str> {
        match self {
            Self::Sip(u) => u.user,
            Self::Tel(t) => Some(t.number),
            Self::Other(_) => None,
        }
    }
}

impl<'a> SipUri<'a> {
    /// `transport=` parameter, lowercased comparison left to the caller.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// `lr` present (loose routing, RFC 3261 §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.has("lr")
    }

    /// `user=phone` present.
    pub fn is_phone(&self) -> bool {
        self.params
            .get("user")
            .flatten()
            .is_some_and(|v| v.eq_ignore_ascii_case("phone"))
    }
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    // userinfo ends at the first '@': neither user nor password may hold one unescaped.
    let (user, password, hostpart) = match scan::split_once_byte(rest, b'@') {
        Some((info, h)) => {
            let (u, p) = match scan::split_once_byte(info, b':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if u.is_empty() || !scan::all_in(u.as_bytes(), USER, true) {
                return Err(UriError);
            }
            if let Some(p) = p {
                if !scan::all_in(p.as_bytes(), PASSWORD, true) {
                    return Err(UriError);
                }
            }
            (Some(u), p, h)
        }
        None => (None, None, rest),
    };
    let (hostport, headers) = match scan::split_once_byte(hostpart, b'?') {
        Some((hp, h)) => (hp, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = match scan::split_once_byte(hostport, b';') {
        Some((hp, p)) => (hp, p),
        None => (hostport, ""),
    };
    let (host, port) = parse_hostport(hostport)?;
    check_params(params)?;
    if let Some(h) = headers {
        check_headers(h)?;
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: UriParams(params),
        headers,
    })
}

/// `host [":" port]`, with IPv6 references.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        let (inside, after) = scan::split_once_byte(r, b']').ok_or(UriError)?;
        let host = Host::V6(parse_v6(inside)?);
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or(UriError)?)),
        }
    } else {
        match scan::split_once_byte(s, b':') {
            Some((h, p)) => (parse_host(h)?, Some(p)),
            None => (parse_host(s)?, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

pub(crate) fn parse_port(p: &str) -> Result<u16, UriError> {
    scan::parse_decimal(p, u64::from(u16::MAX))
        .and_then(|v| u16::try_from(v).ok())
        .ok_or(UriError)
}

/// IPv6 text, tolerating the `:::` form that RFC 3261's ABNF allowed by mistake (RFC 5954).
pub(crate) fn parse_v6(s: &str) -> Result<Ipv6Addr, UriError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if s.contains(":::") && s.len() < 64 {
        return s.replacen(":::", "::", 1).parse().map_err(|_| UriError);
    }
    Err(UriError)
}

/// A dotted-quad IPv4 address, as `Ipv4Addr::from_str` reads it (four decimal octets of one
/// to three digits, no leading zero, at most 255), without its general-purpose parser: every
/// Via, Contact and request URI from a phone names its host this way.
fn parse_ipv4(h: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = h.as_bytes().split(|&c| c == b'.');
    for slot in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.first() == Some(&b'0')) {
            return None;
        }
        let mut v: u16 = 0;
        for &d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(d - b'0');
        }
        *slot = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// A hostname or IPv4 address (no IPv6 reference).
pub(crate) fn parse_host(h: &str) -> Result<Host<'_>, UriError> {
    if h.is_empty() || !scan::all_in(h.as_bytes(), HOST, false) {
        return Err(UriError);
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_ipv4(h).map(Host::V4).ok_or(UriError);
    }
    // hostname = *( domainlabel "." ) toplabel [ "." ]: no empty labels, none starting or
    // ending with '-'.
    let trimmed = h.strip_suffix('.').unwrap_or(h);
    for label in trimmed.split('.') {
        if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
            return Err(UriError);
        }
    }
    Ok(Host::Name(h))
}

fn check_params(params: &str) -> Result<(), UriError> {
    if params.is_empty() {
        return Ok(());
    }
    // Checked as bytes: every allowed character is ASCII, and the byte split needs no char
    // searcher per parameter.
    for p in params.as_bytes().split(|&c| c == b';') {
        let (name, value) = match p.iter().position(|&c| c == b'=') {
            Some(i) => (p.get(..i).unwrap_or(&[]), p.get(i + 1..)),
            None => (p, None),
        };
        if name.is_empty() || !scan::all_in(name, PARAM, true) {
            return Err(UriError);
        }
        if let Some(v) = value {
            if v.is_empty() || !scan::all_in(v, PARAM, true) {
                return Err(UriError);
            }
        }
    }
    Ok(())
}

fn check_headers(h: &str) -> Result<(), UriError> {
    for pair in h.split('&') {
        let (name, value) = scan::split_once_byte(pair, b'=').ok_or(UriError)?;
        if name.is_empty()
            || !scan::all_in(name.as_bytes(), HNV, true)
            || !scan::all_in(value.as_bytes(), HNV, true)
        {
            return Err(UriError);
        }
    }
    Ok(())
}

fn parse_tel(rest: &str) -> Result<TelUri<'_>, UriError> {
    let (number, params) = match scan::split_once_byte(rest, b';') {
        Some((n, p)) => (n, p),
        None => (rest, ""),
    };
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty()
        || !scan::all_in(digits.as_bytes(), TEL, false)
        || digits.contains('+')
        || !digits
            .bytes()
            .any(|b| scan::is(b, DIGIT) || b.is_ascii_hexdigit() || b == b'*' || b == b'#')
    {
        return Err(UriError);
    }
    check_params(params)?;
    Ok(TelUri {
        number,
        params: UriParams(params),
    })
}

fn parse_absolute<'a>(scheme: &'a str, rest: &'a str) -> Result<AbsoluteUri<'a>, UriError> {
    let mut b = scheme.bytes();
    let first_alpha = b.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_alpha || !b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) {
        return Err(UriError);
    }
    if rest.is_empty() || !scan::all_in(rest.as_bytes(), URIC, true) {
        return Err(UriError);
    }
    Ok(AbsoluteUri { scheme, rest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan;

    proptest::proptest! {
        /// The hand-written dotted-quad reader agrees with the standard library's on any
        /// string of digits and dots (the only strings `parse_host` hands it).
        #[test]
        fn ipv4_reads_as_std_does(s in "[0-9.]{0,18}") {
            proptest::prop_assert_eq!(parse_ipv4(&s), s.parse::<Ipv4Addr>().ok());
        }

        #[test]
        fn every_address_reads_back(a: u8, b: u8, c: u8, d: u8) {
            let ip = Ipv4Addr::new(a, b, c, d);
            proptest::prop_assert_eq!(parse_ipv4(&ip.to_string()), Some(ip));
        }
    }

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn basic() {
        let u = sip("sip:alice:secret@example.com:5070;transport=tcp;lr?Subject=hi&X=y");
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Name("example.com"));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("Subject=hi&X=y"));
    }

    #[test]
    fn torture_users() {
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(
            scan::unescape(u.user.unwrap()).as_ref(),
            b"user;par=u@example.net"
        );
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(u.params.iter().count(), 2);
        let u = sip("sip:%00%00@host5.example.com");
        assert_eq!(scan::unescape(u.user.unwrap()).len(), 2);
    }

    #[test]
    fn hosts() {
        assert_eq!(sip("sip:[2001:db8::10]:5070").port, Some(5070));
        assert!(matches!(sip("sip:[2001:db8::10:5070]").host, Host::V6(_)));
        assert!(matches!(
            sip("sip:user@[2001:db8:::192.0.2.1]").host,
            Host::V6(_)
        ));
        assert!(matches!(sip("sip:192.0.2.1").host, Host::V4(_)));
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:256.1.1.1").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
        assert!(Uri::parse("sip:host:").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:a b").is_err());
        assert!(Uri::parse("sip:user@example.com;;x").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
    }

    #[test]
    fn other_schemes() {
        let Uri::Tel(t) = Uri::parse("tel:+1-212-555-0101;phone-context=example.com").unwrap()
        else {
            panic!("not tel")
        };
        assert_eq!(t.number, "+1-212-555-0101");
        assert_eq!(t.params.get("phone-context"), Some(Some("example.com")));
        assert_eq!(
            Uri::parse("isbn:2983792873").unwrap().scheme(),
            Scheme::Other
        );
        assert_eq!(
            Uri::parse("soap.beep://192.0.2.103:3002").unwrap().scheme(),
            Scheme::Other
        );
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("1abc:x").is_err());
        assert!(Uri::parse("<sip:user@example.com>").is_err());
    }
}
