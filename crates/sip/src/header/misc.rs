//! Small structured headers: CSeq, Max-Forwards, Expires-style numbers, option-tag lists,
//! Content-Type, Date, Session-Expires, Reason, Identity.

use super::{HResult, Malformed, Params, list_sep, take_params};
use crate::method::Method;
use crate::scan::{self, Cursor};

/// `CSeq: 1*DIGIT LWS Method` (RFC 3261 §20.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number, below 2^31 (§8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
    /// Method as written.
    pub method_text: &'a str,
}

/// Parses a CSeq value.
pub fn parse_cseq(value: &str) -> HResult<CSeq<'_>> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    let seq = scan::parse_decimal(digits, (1 << 31) - 1).ok_or(Malformed)?;
    if !c.skip_lws() {
        return Err(Malformed);
    }
    let method_text = c.token().ok_or(Malformed)?;
    c.skip_lws();
    if !c.at_end() {
        return Err(Malformed);
    }
    Ok(CSeq {
        seq: u32::try_from(seq).map_err(|_| Malformed)?,
        method: Method::from_token(method_text),
        method_text,
    })
}

/// Max-Forwards: 0–255 (RFC 3261 §20.22).
pub fn parse_max_forwards(value: &str) -> HResult<u8> {
    scan::parse_decimal(scan::trim_lws(value), 255)
        .and_then(|v| u8::try_from(v).ok())
        .ok_or(Malformed)
}

/// delta-seconds (Expires, Min-Expires, RSeq, Min-SE, contact `expires`): 0–2^32−1.
pub fn parse_delta_seconds(value: &str) -> Option<u32> {
    scan::parse_decimal(scan::trim_lws(value), u64::from(u32::MAX))
        .and_then(|v| u32::try_from(v).ok())
}

/// A comma-separated list of tokens (Supported, Require, Proxy-Require, Unsupported, Allow,
/// Allow-Events, Content-Encoding); calls `f` for each. An empty value is an empty list.
pub fn parse_tokens<'a>(value: &'a str, mut f: impl FnMut(&'a str)) -> HResult<()> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    if c.at_end() {
        return Ok(());
    }
    loop {
        f(c.token().ok_or(Malformed)?);
        if !list_sep(&mut c)? {
            return Ok(());
        }
    }
}

/// `Content-Type: type/subtype;params` (RFC 3261 §20.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// Media type (`application`).
    pub mtype: &'a str,
    /// Subtype (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`boundary`, `charset` …).
    pub params: Params<'a>,
}

impl ContentType<'_> {
    /// Case-insensitive comparison with `type/subtype`.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// `application/sdp`.
    pub fn is_sdp(&self) -> bool {
        self.is("application", "sdp")
    }
}

impl<'a> ContentType<'a> {
    /// Parses a Content-Type value.
    pub fn parse(value: &'a str) -> HResult<Self> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let mtype = c.token().ok_or(Malformed)?;
        if !c.eat_sep(b'/') {
            return Err(Malformed);
        }
        let subtype = c.token().ok_or(Malformed)?;
        let params = take_params(&mut c)?;
        if !c.at_end() {
            return Err(Malformed);
        }
        Ok(Self {
            mtype,
            subtype,
            params,
        })
    }
}

/// `Session-Expires: delta-seconds;refresher=uac|uas` (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// Interval in seconds.
    pub seconds: u32,
    /// Parameters (`refresher`).
    pub params: Params<'a>,
}

impl<'a> SessionExpires<'a> {
    /// Parses a Session-Expires (or Min-SE) value.
    pub fn parse(value: &'a str) -> HResult<Self> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seconds = parse_delta_seconds(digits).ok_or(Malformed)?;
        let params = take_params(&mut c)?;
        if !c.at_end() {
            return Err(Malformed);
        }
        Ok(Self { seconds, params })
    }

    /// `refresher` (`uac` or `uas`).
    pub fn refresher(&self) -> Option<&'a str> {
        self.params.get("refresher").flatten()
    }
}

/// One Reason value (RFC 3326): `SIP ;cause=200 ;text="Call completed elsewhere"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason<'a> {
    /// Protocol (`SIP`, `Q.850`, `STIR` …).
    pub protocol: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> Reason<'a> {
    /// Parses a Reason row, calling `f` for each value.
    pub fn parse_list(value: &'a str, mut f: impl FnMut(Self)) -> HResult<()> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        loop {
            let protocol = c.token().ok_or(Malformed)?;
            let params = take_params(&mut c)?;
            f(Self { protocol, params });
            if !list_sep(&mut c)? {
                return Ok(());
            }
        }
    }

    /// `cause`.
    pub fn cause(&self) -> Option<u16> {
        self.params
            .get("cause")
            .flatten()
            .and_then(|v| v.parse().ok())
    }

    /// `text`, unquoted.
    pub fn text(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.params.get_unquoted("text")
    }
}

/// An Identity value (RFC 8224 §4): `<jws>;info=<uri>;alg=ES256;ppt=shaken`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The signed identity digest: a JWS compact serialisation (base64url and dots).
    pub token: &'a str,
    /// The `info` URI without its angle brackets.
    pub info: Option<&'a str>,
    /// The parameters other than `info`, as written (`alg`, `ppt` …).
    pub params: Params<'a>,
}

impl<'a> Identity<'a> {
    /// Parses an Identity value: base64 or base64url text and dots (RFC 4474 senders used
    /// plain base64, possibly quoted), then parameters; `info`, if present, must be an absolute
    /// URI in angle brackets. Whether the token is a well-formed PASSporT is for the STIR
    /// layer to say ([`Identity::is_base64url`] is its first check, errata 6499).
    pub fn parse(value: &'a str) -> HResult<Self> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let is_b64 = |b: u8| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/' | b'=')
        };
        let token = if c.peek() == Some(b'"') {
            let q = c.quoted().ok_or(Malformed)?;
            let inner = q.get(1..q.len() - 1).unwrap_or("");
            if !inner.bytes().all(is_b64) {
                return Err(Malformed);
            }
            inner
        } else {
            c.take_while(is_b64)
        };
        if token.is_empty() {
            return Err(Malformed);
        }
        let mut info = None;
        if c.eat_sep(b';') {
            let name = c.token().ok_or(Malformed)?;
            if name.eq_ignore_ascii_case("info") {
                if !c.eat_sep(b'=') || !c.eat(b'<') {
                    return Err(Malformed);
                }
                let uri = c.take_while(|b| b != b'>');
                if !c.eat(b'>') || crate::uri::Uri::parse(uri).is_err() {
                    return Err(Malformed);
                }
                info = Some(uri);
            } else {
                return Err(Malformed);
            }
        }
        let params = take_params(&mut c)?;
        if !c.at_end() {
            return Err(Malformed);
        }
        Ok(Self {
            token,
            info,
            params,
        })
    }

    /// Whether the token uses only base64url characters and dots, as RFC 8224 (errata 6499)
    /// requires.
    pub fn is_base64url(&self) -> bool {
        self.token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    /// `alg`.
    pub fn alg(&self) -> Option<&'a str> {
        self.params.get("alg").flatten()
    }

    /// `ppt`, unquoted (deployments send both `ppt=shaken` and `ppt="shaken"`).
    pub fn ppt(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.params.get_unquoted("ppt")
    }
}

/// A Date header (RFC 3261 §20.17): `Sat, 13 Nov 2010 23:29:00 GMT`, GMT only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Parses an rfc1123-date. The weekday must name the date's real day.
pub fn parse_date(value: &str) -> HResult<Date> {
    let v = scan::trim_lws(value);
    let (wkday, rest) = v.split_once(", ").ok_or(Malformed)?;
    let weekday = WEEKDAYS.iter().position(|w| *w == wkday).ok_or(Malformed)?;
    let mut parts = rest.split(' ');
    let (Some(day), Some(mon), Some(year), Some(time), Some("GMT"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Malformed);
    };
    let num = |s: &str, len: usize, max: u64| -> HResult<i64> {
        if s.len() != len {
            return Err(Malformed);
        }
        scan::parse_decimal(s, max)
            .map(|v| v as i64)
            .ok_or(Malformed)
    };
    let day = num(day, 2, 31)?;
    let month = MONTHS.iter().position(|m| *m == mon).ok_or(Malformed)? as i64 + 1;
    let year = num(year, 4, 9999)?;
    let mut t = time.split(':');
    let (Some(h), Some(m), Some(s), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return Err(Malformed);
    };
    let (h, m, s) = (num(h, 2, 23)?, num(m, 2, 59)?, num(s, 2, 60)?);
    if day == 0 || day > days_in_month(year, month) {
        return Err(Malformed);
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    if (days + 3).rem_euclid(7) as usize != weekday {
        return Err(Malformed);
    }
    Ok(Date {
        unix: days * 86_400 + h * 3600 + m * 60 + s,
    })
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats a Unix time as an rfc1123-date, for the Date headers the gateway writes.
pub fn format_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = WEEKDAYS
        .get((days + 3).rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Mon");
    let mon = MONTHS.get((m - 1) as usize).copied().unwrap_or("Jan");
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = parse_cseq("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("1INVITE").is_err());
        assert!(parse_cseq("1 INVITE x").is_err());
        assert_eq!(
            parse_cseq("8 !interesting-Method0123456789_*+`.%indeed'~")
                .unwrap()
                .method,
            Method::Extension
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_max_forwards("0068"), Ok(68));
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_delta_seconds("4294967295"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds("4294967296"), None);
    }

    #[test]
    fn dates() {
        let d = parse_date("Sat, 13 Nov 2010 23:29:00 GMT").unwrap();
        assert_eq!(d.unix, 1_289_690_940);
        assert_eq!(format_date(d.unix), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(parse_date("Mon, 13 Nov 2010 23:29:00 GMT").is_err());
        assert!(parse_date("Sat, 31 Feb 2010 23:29:00 GMT").is_err());
        assert_eq!(format_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn others() {
        let mut t = Vec::new();
        parse_tokens("nothingSupportsThis, nothingSupportsThisEither", |x| {
            t.push(x)
        })
        .unwrap();
        assert_eq!(t.len(), 2);
        assert!(parse_tokens("a,,b", |_| ()).is_err());
        assert!(parse_tokens("", |_| ()).is_ok());
        let ct = ContentType::parse("multipart/signed;\r\n protocol=\"application/pkcs7-signature\";\r\n micalg=sha1; boundary=boundary42").unwrap();
        assert!(ct.is("Multipart", "SIGNED"));
        assert_eq!(ct.params.get("boundary"), Some(Some("boundary42")));
        let se = SessionExpires::parse("1800;refresher=uac").unwrap();
        assert_eq!((se.seconds, se.refresher()), (1800, Some("uac")));
        let mut r = Vec::new();
        Reason::parse_list(
            "SIP ;cause=436 ;text=\"Bad Identity Info\", Q.850;cause=16",
            |x| r.push(x),
        )
        .unwrap();
        assert_eq!(r[0].cause(), Some(436));
        assert_eq!(r[0].text().unwrap(), "Bad Identity Info");
        assert_eq!(r[1].protocol, "Q.850");
        let id = Identity::parse(
            "eyJh.eyJi.c2ln;info=<https://cert.example.org/passport.cer>;alg=ES256;ppt=\"shaken\"",
        )
        .unwrap();
        assert_eq!(id.info, Some("https://cert.example.org/passport.cer"));
        assert_eq!(id.alg(), Some("ES256"));
        assert_eq!(id.ppt().unwrap(), "shaken");
        let legacy = Identity::parse("ab+c/d=;info=<https://x>").unwrap();
        assert!(!legacy.is_base64url());
        assert!(id.is_base64url());
        assert!(Identity::parse("a b").is_err());
        assert!(Identity::parse(";info=<https://x>").is_err());
    }
}
