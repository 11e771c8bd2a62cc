//! The message model: one buffer plus byte ranges.
//!
//! A parsed [`Message`] keeps the bytes it came from and, for the start line and each header
//! row, the ranges where they sit. Nothing is copied or decoded until asked for, and a message
//! that was not edited serialises back to the very bytes it was parsed from. Edits append their
//! text to a small per-message arena and mark the row as rewritten; the writer copies original
//! rows byte for byte and formats only the rewritten ones.
//!
//! The headers the transaction layer keys on (top Via with its branch, CSeq, Call-ID, From and
//! To tags, Max-Forwards, Content-Length) are decoded once during parsing and cached, so the
//! layers above never parse them a second time.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{ParseError, ParseErrorKind};
use crate::header::Params;
use crate::header::{
    self, Auth, CSeq, Contact, ContentType, NameAddr, Transport, Via, parse_contact_list,
    parse_name_addr, parse_name_addr_list, parse_tokens,
};
use crate::limits::Limits;
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan;
use crate::status::StatusCode;
use crate::uri::{Host, Uri};

/// A range of text in the message's buffer or in its edit arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) arena: bool,
}

impl Span {
    pub(crate) fn buf(start: usize, end: usize) -> Self {
        // Messages are bounded far below 4 GiB by `Limits`, so offsets fit in u32.
        Self {
            start: start as u32,
            end: end as u32,
            arena: false,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum StartLine {
    Request {
        method: Method,
        method_text: Span,
        uri: Span,
    },
    Response {
        status: StatusCode,
        reason: Span,
    },
}

/// One header row: a name and a value as written (folds included, surrounding white space
/// trimmed on access).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    pub(crate) name: HeaderName,
    pub(crate) name_text: Span,
    pub(crate) value: Span,
    /// The row is exactly as parsed: the writer copies `name_text.start..value.end`.
    pub(crate) original: bool,
}

/// The decoded top Via, cached at parse time so the transaction layer never parses it again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TopVia {
    pub(crate) protocol: Span,
    pub(crate) version: Span,
    pub(crate) transport_text: Span,
    pub(crate) transport: Transport,
    pub(crate) host: CachedHost,
    pub(crate) port: Option<u16>,
    pub(crate) params: Span,
    pub(crate) branch: Option<Span>,
}

/// A [`Host`] whose name, if any, is a span.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CachedHost {
    Name(Span),
    V4(std::net::Ipv4Addr),
    V6(std::net::Ipv6Addr),
}

/// Facts decoded once during parsing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Core {
    pub(crate) call_id: Option<Span>,
    pub(crate) cseq: Option<(u32, Method, Span)>,
    /// The From row's value (a span, so row insertions and removals cannot stale it).
    pub(crate) from: Option<Span>,
    pub(crate) from_tag: Option<Span>,
    /// The From URI's user part and display name, as written: the stages and the registrar
    /// read them for every request, and parsing the whole header again each time cost a
    /// tenth of a registration.
    pub(crate) from_user: Option<Span>,
    pub(crate) from_display: Option<Span>,
    /// The To row's value.
    pub(crate) to: Option<Span>,
    pub(crate) to_tag: Option<Span>,
    pub(crate) to_user: Option<Span>,
    pub(crate) to_display: Option<Span>,
    pub(crate) max_forwards: Option<u8>,
    pub(crate) content_length: Option<u32>,
    pub(crate) top_via: Option<TopVia>,
    pub(crate) via_count: u32,
}

/// A SIP request or response.
#[derive(Clone)]
pub struct Message {
    pub(crate) buf: Bytes,
    /// `buf`'s head (start line and headers), checked as UTF-8 once at parsing: header
    /// reads slice it instead of checking their bytes again.
    pub(crate) head: ByteString,
    pub(crate) arena: String,
    pub(crate) start: StartLine,
    /// Start line untouched since parsing: the writer copies `buf[..start_end]`.
    pub(crate) start_end: Option<usize>,
    pub(crate) rows: Vec<Row>,
    pub(crate) body: Bytes,
    pub(crate) core: Core,
    /// Nothing edited: the message is `buf`, byte for byte.
    pub(crate) pristine: bool,
}

/// A header row as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// Which header.
    pub name: HeaderName,
    /// The name as written (`v`, `VIA`, `X-Custom` …).
    pub name_text: &'a str,
    /// The value, trimmed; folds inside are kept (parsers treat them as white space).
    pub value: &'a str,
}

/// An edit that would make the message unparseable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditError {
    /// A header name that is not a token.
    BadName,
    /// A value with CR or LF outside a fold (header injection), or one that does not parse
    /// for a header the message depends on.
    BadValue(HeaderName),
    /// A Request-URI that does not parse.
    BadUri,
    /// The edit applies only to requests (or only to responses).
    WrongKind,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName => f.write_str("header name is not a token"),
            Self::BadValue(h) => write!(f, "invalid value for {h}"),
            Self::BadUri => f.write_str("invalid request-uri"),
            Self::WrongKind => f.write_str("edit does not apply to this kind of message"),
        }
    }
}

impl std::error::Error for EditError {}

// === parsing ===

/// The parsed head of a message, before its body is attached.
pub(crate) struct Head {
    pub(crate) start: StartLine,
    pub(crate) start_end: usize,
    pub(crate) rows: Vec<Row>,
    pub(crate) core: Core,
    /// Offset of the first body byte (just after the blank line).
    pub(crate) body_start: usize,
}

/// Skips leading CRLF keep-alives (RFC 3261 §7.5, RFC 5626 §4.4.1).
pub(crate) fn skip_keepalives(b: &[u8]) -> usize {
    let mut i = 0;
    while let (Some(b'\r'), Some(b'\n')) = (b.get(i), b.get(i + 1)) {
        i += 2;
    }
    i
}

/// Finds the end of the line starting at `from`: the offset of its CR. A bare CR or LF is an
/// error; running out of bytes is [`ParseErrorKind::Incomplete`].
fn line_end(b: &[u8], from: usize, response: bool) -> Result<usize, ParseError> {
    let rest = b.get(from..).unwrap_or(&[]);
    match memchr::memchr2(b'\r', b'\n', rest) {
        None => Err(ParseError::new(
            ParseErrorKind::Incomplete,
            b.len(),
            response,
        )),
        Some(i) => {
            let at = from + i;
            match (b.get(at), b.get(at + 1)) {
                (Some(b'\r'), Some(b'\n')) => Ok(at),
                (Some(b'\r'), None) => Err(ParseError::new(
                    ParseErrorKind::Incomplete,
                    b.len(),
                    response,
                )),
                _ => Err(ParseError::new(ParseErrorKind::BadLineEnding, at, response)),
            }
        }
    }
}

/// Parses the start line and header section of `b` (which must not start with keep-alives).
/// Stops at the blank line; the body is the caller's business.
pub(crate) fn parse_head(b: &[u8], limits: &Limits) -> Result<Head, ParseError> {
    let response = b.len() >= 4 && b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    let err = |kind, at| ParseError::new(kind, at, response);
    if b.is_empty() {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    let start_end = match line_end(b, 0, response) {
        Ok(e) => e,
        Err(e) if e.kind == ParseErrorKind::Incomplete && b.len() > limits.max_head_bytes => {
            return Err(err(ParseErrorKind::MessageTooLarge, limits.max_head_bytes));
        }
        Err(e) => return Err(e),
    };
    let start = parse_start_line(b, start_end, limits, response)?;

    let mut rows: Vec<Row> = Vec::with_capacity(16);
    let mut pos = start_end + 2;
    let body_start = loop {
        if pos > limits.max_head_bytes {
            return Err(err(ParseErrorKind::MessageTooLarge, pos));
        }
        let end = match line_end(b, pos, response) {
            Ok(e) => e,
            Err(e) if e.kind == ParseErrorKind::Incomplete && b.len() > limits.max_head_bytes => {
                return Err(err(ParseErrorKind::MessageTooLarge, limits.max_head_bytes));
            }
            Err(e) => return Err(e),
        };
        if end == pos {
            break end + 2;
        }
        let first = b.get(pos).copied().unwrap_or(b' ');
        if first == b' ' || first == b'\t' {
            let row = rows
                .last_mut()
                .ok_or_else(|| err(ParseErrorKind::BadFolding, pos))?;
            row.value.end = end as u32;
            if (row.value.end - row.name_text.start) as usize > limits.max_header_line {
                return Err(err(ParseErrorKind::HeaderTooLong, pos));
            }
        } else {
            if rows.len() >= limits.max_headers {
                return Err(err(ParseErrorKind::TooManyHeaders, pos));
            }
            if end - pos > limits.max_header_line {
                return Err(err(ParseErrorKind::HeaderTooLong, pos));
            }
            let line = b.get(pos..end).unwrap_or(&[]);
            let colon = memchr::memchr(b':', line)
                .ok_or_else(|| err(ParseErrorKind::BadHeaderLine, pos))?;
            let name = line.get(..colon).unwrap_or(&[]);
            let name_len = name
                .iter()
                .rposition(|c| *c != b' ' && *c != b'\t')
                .map_or(0, |i| i + 1);
            let name = name.get(..name_len).unwrap_or(&[]);
            if name.is_empty() || !scan::all_in(name, scan::TOKEN, false) {
                return Err(err(ParseErrorKind::BadHeaderLine, pos));
            }
            let mut vstart = pos + colon + 1;
            while matches!(b.get(vstart), Some(b' ' | b'\t')) && vstart < end {
                vstart += 1;
            }
            rows.push(Row {
                name: HeaderName::from_bytes(name),
                name_text: Span::buf(pos, pos + name_len),
                value: Span::buf(vstart, end),
                original: true,
            });
        }
        pos = end + 2;
    };
    let head = b.get(..body_start).unwrap_or(&[]);
    let text =
        std::str::from_utf8(head).map_err(|e| err(ParseErrorKind::InvalidUtf8, e.valid_up_to()))?;
    let core = compute_core(&rows, limits, response, |s| {
        text.get(s.range()).unwrap_or("")
    })?;
    Ok(Head {
        start,
        start_end,
        rows,
        core,
        body_start,
    })
}

fn parse_start_line(
    b: &[u8],
    end: usize,
    limits: &Limits,
    response: bool,
) -> Result<StartLine, ParseError> {
    let err = |kind, at| ParseError::new(kind, at, response);
    let line = b.get(..end).unwrap_or(&[]);
    if response {
        // SIP-Version SP Status-Code SP Reason-Phrase
        let sp1 = memchr::memchr(b' ', line).ok_or_else(|| err(ParseErrorKind::BadStartLine, 0))?;
        check_version(line.get(..sp1).unwrap_or(&[]), response)?;
        let code = line.get(sp1 + 1..sp1 + 4).unwrap_or(&[]);
        let code_ok = code.len() == 3 && code.iter().all(u8::is_ascii_digit);
        if !code_ok || line.get(sp1 + 4) != Some(&b' ') {
            return Err(err(ParseErrorKind::BadStatusCode, sp1 + 1));
        }
        let n = code.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
        let status =
            StatusCode::new(n).ok_or_else(|| err(ParseErrorKind::BadStatusCode, sp1 + 1))?;
        Ok(StartLine::Response {
            status,
            reason: Span::buf(sp1 + 5, end),
        })
    } else {
        // Method SP Request-URI SP SIP-Version: exactly two spaces (RFC 4475 lwsstart, trws).
        let sp1 = memchr::memchr(b' ', line).ok_or_else(|| err(ParseErrorKind::BadStartLine, 0))?;
        let method = line.get(..sp1).unwrap_or(&[]);
        if method.is_empty() || !scan::all_in(method, scan::TOKEN, false) {
            return Err(err(ParseErrorKind::BadStartLine, 0));
        }
        let rest = line.get(sp1 + 1..).unwrap_or(&[]);
        let sp2 =
            memchr::memchr(b' ', rest).ok_or_else(|| err(ParseErrorKind::BadStartLine, sp1))?;
        let uri = rest.get(..sp2).unwrap_or(&[]);
        let version = rest.get(sp2 + 1..).unwrap_or(&[]);
        if memchr::memchr(b' ', version).is_some() {
            // An extra space inside the URI or after the version: which one is ambiguous, and
            // both are malformed.
            return Err(err(ParseErrorKind::BadStartLine, sp1 + 1 + sp2));
        }
        check_version(version, response)?;
        if uri.len() > limits.max_uri_bytes {
            return Err(err(ParseErrorKind::UriTooLong, sp1 + 1));
        }
        let uri_text =
            std::str::from_utf8(uri).map_err(|_| err(ParseErrorKind::BadRequestUri, sp1 + 1))?;
        match Uri::parse(uri_text) {
            // A Request-URI may not carry headers (RFC 3261 §19.1.1 table; RFC 4475 escruri).
            Ok(Uri::Sip(u)) if u.headers.is_some() => {
                return Err(err(ParseErrorKind::BadRequestUri, sp1 + 1));
            }
            Ok(_) => {}
            Err(_) => return Err(err(ParseErrorKind::BadRequestUri, sp1 + 1)),
        }
        let method_text = std::str::from_utf8(method).unwrap_or("");
        Ok(StartLine::Request {
            method: Method::from_token(method_text),
            method_text: Span::buf(0, sp1),
            uri: Span::buf(sp1 + 1, sp1 + 1 + sp2),
        })
    }
}

/// `SIP/2.0` (case-insensitive) is fine; another well-formed version is 505; anything else 400.
fn check_version(v: &[u8], response: bool) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && v.get(4..)
            .and_then(|r| std::str::from_utf8(r).ok())
            .is_some_and(|r| {
                r.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                })
            });
    let kind = if well_formed {
        ParseErrorKind::UnsupportedVersion
    } else {
        ParseErrorKind::BadVersion
    };
    Err(ParseError::new(kind, 0, response))
}

/// Decodes the transaction-relevant headers and enforces single-instance rules.
pub(crate) fn compute_core<'t>(
    rows: &[Row],
    limits: &Limits,
    response: bool,
    text: impl Fn(Span) -> &'t str,
) -> Result<Core, ParseError> {
    let mut core = Core::default();
    let mut seen: u128 = 0;
    for row in rows {
        let at = row.name_text.start as usize;
        let err = |kind| ParseError::new(kind, at, response);
        let bad = |h| err(ParseErrorKind::MalformedHeader(h));
        if row.name.is_single() {
            let bit = 1u128 << (row.name as u32 % 128);
            if seen & bit != 0 {
                return Err(err(ParseErrorKind::DuplicateHeader(row.name)));
            }
            seen |= bit;
        }
        let raw = text(row.value);
        let value = scan::trim_lws(raw);
        // Spans of sub-slices of `value`, for caching.
        let sub = |s: &str| {
            // Empty slices may point anywhere; they only need a valid position.
            let off = (s.as_ptr() as usize)
                .saturating_sub(raw.as_ptr() as usize)
                .min(raw.len());
            Span {
                start: row.value.start + off as u32,
                end: row.value.start + (off + s.len()) as u32,
                arena: row.value.arena,
            }
        };
        match row.name {
            HeaderName::CallId => {
                if !valid_call_id(value) {
                    return Err(bad(HeaderName::CallId));
                }
                core.call_id = Some(sub(value));
            }
            HeaderName::CSeq => {
                let c = header::parse_cseq(value).map_err(|_| bad(HeaderName::CSeq))?;
                core.cseq = Some((c.seq, c.method, sub(c.method_text)));
            }
            HeaderName::From | HeaderName::To => {
                let na = parse_name_addr(value).map_err(|_| bad(row.name))?;
                let tag = na.tag().map(sub);
                let user = na.uri.user().map(sub);
                let display = na.display.map(sub);
                if row.name == HeaderName::From {
                    core.from = Some(row.value);
                    core.from_tag = tag;
                    core.from_user = user;
                    core.from_display = display;
                } else {
                    core.to = Some(row.value);
                    core.to_tag = tag;
                    core.to_user = user;
                    core.to_display = display;
                }
            }
            HeaderName::MaxForwards => {
                core.max_forwards = Some(
                    header::parse_max_forwards(value).map_err(|_| bad(HeaderName::MaxForwards))?,
                );
            }
            HeaderName::ContentLength => {
                let n = scan::parse_decimal(value, u64::from(u32::MAX))
                    .ok_or_else(|| err(ParseErrorKind::BadContentLength))?;
                core.content_length = Some(n as u32);
            }
            HeaderName::Via => {
                let mut count = 0u32;
                let mut first: Option<TopVia> = None;
                header::parse_via_list(value, |v| {
                    count += 1;
                    if first.is_none() && core.top_via.is_none() {
                        first = Some(TopVia {
                            protocol: sub(v.protocol),
                            version: sub(v.version),
                            transport_text: sub(v.transport_text),
                            transport: v.transport,
                            host: match v.host {
                                Host::Name(n) => CachedHost::Name(sub(n)),
                                Host::V4(a) => CachedHost::V4(a),
                                Host::V6(a) => CachedHost::V6(a),
                            },
                            port: v.port,
                            params: sub(v.params.as_str()),
                            branch: v.branch().map(sub),
                        });
                    }
                })
                .map_err(|_| bad(HeaderName::Via))?;
                core.via_count += count;
                if core.via_count as usize > limits.max_vias {
                    return Err(err(ParseErrorKind::TooManyVias));
                }
                if core.top_via.is_none() {
                    core.top_via = first;
                }
            }
            _ => {}
        }
    }
    Ok(core)
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1).
fn valid_call_id(v: &str) -> bool {
    let (a, b) = match v.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let word = |w: &str| !w.is_empty() && scan::all_in(w.as_bytes(), scan::WORD, false);
    word(a) && b.is_none_or(word)
}

impl Message {
    /// Parses one datagram (UDP): the message runs to the end of the datagram unless
    /// Content-Length says it is shorter, in which case the extra bytes are discarded
    /// (RFC 3261 §18.3; RFC 4475 dblreq). A body shorter than Content-Length is an error.
    pub fn parse_datagram(data: impl Into<Bytes>, limits: &Limits) -> Result<Self, ParseError> {
        let mut data: Bytes = data.into();
        let skip = skip_keepalives(&data);
        if skip == data.len() {
            return Err(ParseError::new(ParseErrorKind::Empty, 0, false));
        }
        if skip > 0 {
            data = data.slice(skip..);
        }
        if data.len() > limits.max_message_bytes {
            return Err(ParseError::new(
                ParseErrorKind::MessageTooLarge,
                limits.max_message_bytes,
                false,
            ));
        }
        let head = parse_head(&data, limits)?;
        let response = matches!(head.start, StartLine::Response { .. });
        let available = data.len() - head.body_start;
        let body_len = match head.core.content_length {
            Some(n) if n as usize > available => {
                return Err(ParseError::new(
                    ParseErrorKind::BodyTruncated,
                    data.len(),
                    response,
                ));
            }
            Some(n) => n as usize,
            None => available,
        };
        if body_len > limits.max_body_bytes {
            return Err(ParseError::new(
                ParseErrorKind::BodyTooLarge,
                head.body_start,
                response,
            ));
        }
        let end = head.body_start + body_len;
        data.truncate(end);
        Ok(Self::from_head(data, head))
    }

    /// Parses a message from a byte slice (copied), as a datagram with default limits.
    pub fn parse(data: &[u8]) -> Result<Self, ParseError> {
        Self::parse_datagram(Bytes::copy_from_slice(data), &Limits::default())
    }

    /// Assembles a message whose head was parsed from `data`, which holds exactly the message.
    pub(crate) fn from_head(data: Bytes, head: Head) -> Self {
        let body_start = head.body_start.min(data.len());
        let body = data.slice(body_start..);
        // parse_head checked these bytes; a failure here would only cost the fast path.
        let text = ByteString::try_from(data.slice(..body_start)).unwrap_or_default();
        Self {
            head: text,
            buf: data,
            arena: String::new(),
            start: head.start,
            start_end: Some(head.start_end),
            rows: head.rows,
            body,
            core: head.core,
            pristine: true,
        }
    }

    pub(crate) fn text(&self, s: Span) -> &str {
        if s.arena {
            self.arena.get(s.range()).unwrap_or("")
        } else if let Some(t) = self.head.get(s.range()) {
            t
        } else {
            self.buf
                .get(s.range())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
        }
    }

    fn value_of(&self, row: &Row) -> &str {
        scan::trim_lws(self.text(row.value))
    }
}

// === reading ===

impl Message {
    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method (`None` for responses).
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request method as written (extension methods included).
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_text, .. } => Some(self.text(method_text)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed (it was validated when the message was parsed or edited).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|u| Uri::parse(u).ok())
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<StatusCode> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response, as written.
    pub fn reason_phrase(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// All header rows in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.rows.iter().map(|r| HeaderRef {
            name: r.name,
            name_text: self.text(r.name_text),
            value: self.value_of(r),
        })
    }

    /// Number of header rows.
    pub fn header_count(&self) -> usize {
        self.rows.len()
    }

    /// Values of every row of a known header, in order (a list row is one value here).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.rows
            .iter()
            .filter(move |r| r.name == name)
            .map(|r| self.value_of(r))
    }

    /// The first row of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Values of rows whose name, as written, equals `name` (case-insensitive); for headers
    /// without a [`HeaderName`] variant.
    pub fn header_values_by_text<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.rows
            .iter()
            .filter(move |r| self.text(r.name_text).eq_ignore_ascii_case(name))
            .map(|r| self.value_of(r))
    }

    /// Whether any row of `name` is present.
    pub fn has_header(&self, name: HeaderName) -> bool {
        self.rows.iter().any(|r| r.name == name)
    }

    /// Call-ID (compared byte for byte; RFC 3261 §8.1.1.4).
    pub fn call_id(&self) -> Option<&str> {
        self.core.call_id.map(|s| self.text(s))
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.core.cseq.map(|(seq, method, text)| CSeq {
            seq,
            method,
            method_text: self.text(text),
        })
    }

    /// The From header.
    pub fn from_header(&self) -> Option<NameAddr<'_>> {
        self.core
            .from
            .and_then(|v| parse_name_addr(scan::trim_lws(self.text(v))).ok())
    }

    /// The To header.
    pub fn to_header(&self) -> Option<NameAddr<'_>> {
        self.core
            .to
            .and_then(|v| parse_name_addr(scan::trim_lws(self.text(v))).ok())
    }

    /// From tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.core.from_tag.map(|s| self.text(s))
    }

    /// To tag.
    pub fn to_tag(&self) -> Option<&str> {
        self.core.to_tag.map(|s| self.text(s))
    }

    /// The user part of the From URI as written (still escaped), without parsing the header
    /// again: `from_header().uri.user()`.
    pub fn from_user(&self) -> Option<&str> {
        self.core.from_user.map(|s| self.text(s))
    }

    /// The From display name as written (quotes kept): `from_header().display`.
    pub fn from_display(&self) -> Option<&str> {
        self.core.from_display.map(|s| self.text(s))
    }

    /// The user part of the To URI as written: `to_header().uri.user()`.
    pub fn to_user(&self) -> Option<&str> {
        self.core.to_user.map(|s| self.text(s))
    }

    /// The To display name as written: `to_header().display`.
    pub fn to_display(&self) -> Option<&str> {
        self.core.to_display.map(|s| self.text(s))
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u8> {
        self.core.max_forwards
    }

    /// Content-Length as declared.
    pub fn content_length(&self) -> Option<u32> {
        self.core.content_length
    }

    /// Number of Via values across all rows.
    pub fn via_count(&self) -> usize {
        self.core.via_count as usize
    }

    /// The top Via's branch.
    pub fn branch(&self) -> Option<&str> {
        self.core
            .top_via
            .and_then(|v| v.branch)
            .map(|s| self.text(s))
    }

    /// The top Via's transport.
    pub fn top_via_transport(&self) -> Option<Transport> {
        self.core.top_via.map(|v| v.transport)
    }

    /// The top Via, rebuilt from what parsing cached (no second parse).
    pub fn top_via(&self) -> Option<Via<'_>> {
        let tv = self.core.top_via?;
        Some(Via {
            protocol: self.text(tv.protocol),
            version: self.text(tv.version),
            transport: tv.transport,
            transport_text: self.text(tv.transport_text),
            host: match tv.host {
                CachedHost::Name(s) => Host::Name(self.text(s)),
                CachedHost::V4(a) => Host::V4(a),
                CachedHost::V6(a) => Host::V6(a),
            },
            port: tv.port,
            params: Params::new(self.text(tv.params)),
        })
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Vec<Via<'_>> {
        let mut out = Vec::with_capacity(self.core.via_count as usize);
        for v in self.header_values(HeaderName::Via) {
            let _ = header::parse_via_list(v, |x| out.push(x));
        }
        out
    }

    /// Contacts, in order. Fails if a Contact row is malformed.
    pub fn contacts(&self) -> Result<Vec<Contact<'_>>, header::Malformed> {
        let mut out = Vec::new();
        for v in self.header_values(HeaderName::Contact) {
            parse_contact_list(v, |c| out.push(c))?;
        }
        Ok(out)
    }

    /// Addresses of a name-addr list header (Route, Record-Route, Path, P-Asserted-Identity,
    /// P-Preferred-Identity, Remote-Party-ID, Service-Route), in order.
    pub fn name_addrs(&self, name: HeaderName) -> Result<Vec<NameAddr<'_>>, header::Malformed> {
        let addr_spec = !matches!(
            name,
            HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::ServiceRoute
                | HeaderName::RemotePartyId
        );
        let mut out = Vec::new();
        for v in self.header_values(name) {
            parse_name_addr_list(v, addr_spec, |a| out.push(a))?;
        }
        Ok(out)
    }

    /// Option tags or method names of a token-list header (Supported, Require, Proxy-Require,
    /// Unsupported, Allow …), across rows.
    pub fn tokens(&self, name: HeaderName) -> Result<Vec<&str>, header::Malformed> {
        let mut out = Vec::new();
        for v in self.header_values(name) {
            parse_tokens(v, |t| out.push(t))?;
        }
        Ok(out)
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<Result<ContentType<'_>, header::Malformed>> {
        self.header(HeaderName::ContentType).map(ContentType::parse)
    }

    /// Expires header value.
    pub fn expires(&self) -> Option<Result<u32, header::Malformed>> {
        self.header(HeaderName::Expires)
            .map(|v| header::parse_delta_seconds(v).ok_or(header::Malformed))
    }

    /// Authorization-type rows of `name` (Authorization, Proxy-Authorization, WWW-Authenticate,
    /// Proxy-Authenticate), each parsed on its own.
    pub fn auths(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<Auth<'_>, header::Malformed>> {
        self.header_values(name).map(Auth::parse)
    }

    /// User-Agent, as written (product tokens and comments are not interpreted).
    pub fn user_agent(&self) -> Option<&str> {
        self.header(HeaderName::UserAgent)
    }

    /// Server, as written.
    pub fn server(&self) -> Option<&str> {
        self.header(HeaderName::Server)
    }

    /// Identity rows (RFC 8224), each parsed on its own; several may be present.
    pub fn identities(
        &self,
    ) -> impl Iterator<Item = Result<header::Identity<'_>, header::Malformed>> {
        self.header_values(HeaderName::Identity)
            .map(header::Identity::parse)
    }

    /// Date.
    pub fn date(&self) -> Option<Result<header::Date, header::Malformed>> {
        self.header(HeaderName::Date).map(header::parse_date)
    }

    /// Session-Expires (RFC 4028).
    pub fn session_expires(&self) -> Option<Result<header::SessionExpires<'_>, header::Malformed>> {
        self.header(HeaderName::SessionExpires)
            .map(header::SessionExpires::parse)
    }

    /// Reason values (RFC 3326) across rows.
    pub fn reasons(&self) -> Result<Vec<header::Reason<'_>>, header::Malformed> {
        let mut out = Vec::new();
        for v in self.header_values(HeaderName::Reason) {
            header::Reason::parse_list(v, |r| out.push(r))?;
        }
        Ok(out)
    }

    /// The body (empty if none).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The bytes the message was parsed from, if it was not edited since.
    pub fn original_bytes(&self) -> Option<&Bytes> {
        self.pristine.then_some(&self.buf)
    }
}

/// Two messages are equal when they say the same thing: same start line, same header rows
/// (names as written, values as written) in the same order, same body. Whether a row came from
/// the wire or from an edit does not matter.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.method_str() == other.method_str()
            && self.request_uri_str() == other.request_uri_str()
            && self.status() == other.status()
            && self.reason_phrase() == other.reason_phrase()
            && self.body == other.body
            && self.rows.len() == other.rows.len()
            && self.headers().eq(other.headers())
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bounded, and without credentials: Debug output ends up in logs.
        let mut d = f.debug_struct("Message");
        match self.start {
            StartLine::Request { .. } => d
                .field("method", &self.method_str())
                .field("uri", &self.request_uri_str()),
            StartLine::Response { status, .. } => d.field("status", &status.as_u16()),
        };
        d.field("call_id", &self.call_id())
            .field("headers", &self.rows.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}
