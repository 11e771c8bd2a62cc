//! Building, editing and writing messages.
//!
//! The gateway never relays a message byte for byte: it builds the other leg's message from
//! parsed values. Everything written goes through the checks here, so a value taken from a
//! peer can never smuggle a CRLF and a header of its own into what the gateway sends.

use bytes::Bytes;

use crate::error::ParseError;
use crate::limits::Limits;
use crate::message::{
    CachedHost, Core, EditError, Message, Row, Span, StartLine, TopVia, compute_core,
};
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan;
use crate::status::StatusCode;
use crate::uri::Uri;

/// Unfolds a value (CRLF + white space becomes one space) and refuses any other CR or LF.
fn clean_value(v: &str) -> Result<std::borrow::Cow<'_, str>, ()> {
    let v = scan::trim_lws(v);
    if !v.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Ok(std::borrow::Cow::Borrowed(v));
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\r' => {
                if chars.next().map(|x| x.1) != Some('\n') {
                    return Err(());
                }
                match chars.peek() {
                    Some((_, ' ' | '\t')) => {}
                    _ => return Err(()),
                }
                while matches!(chars.peek(), Some((_, ' ' | '\t'))) {
                    chars.next();
                }
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            '\n' => return Err(()),
            c => out.push(c),
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

impl Message {
    fn push_arena(&mut self, s: &str) -> Span {
        let start = self.arena.len();
        self.arena.push_str(s);
        Span {
            start: start as u32,
            end: self.arena.len() as u32,
            arena: true,
        }
    }

    fn make_row(
        &mut self,
        name: HeaderName,
        name_text: &str,
        value: &str,
    ) -> Result<Row, EditError> {
        if !scan::is_token(name_text) {
            return Err(EditError::BadName);
        }
        let value = clean_value(value).map_err(|()| EditError::BadValue(name))?;
        let name_text = self.push_arena(name_text);
        let value = self.push_arena(&value);
        Ok(Row {
            name,
            name_text,
            value,
            original: false,
        })
    }

    /// Re-derives the cached core after an edit; on failure the edit is undone by the caller.
    fn refresh_core(&mut self) -> Result<(), EditError> {
        let response = self.is_response();
        let limits = Limits {
            max_vias: usize::MAX,
            ..Limits::default()
        };
        let core = {
            let this = &*self;
            compute_core(&this.rows, &limits, response, |s| this.text(s))
        };
        match core {
            Ok(c) => {
                self.core = c;
                Ok(())
            }
            Err(ParseError { kind, .. }) => Err(EditError::BadValue(match kind {
                crate::ParseErrorKind::MalformedHeader(h)
                | crate::ParseErrorKind::DuplicateHeader(h) => h,
                _ => HeaderName::Other,
            })),
        }
    }

    fn touches_core(name: HeaderName) -> bool {
        matches!(
            name,
            HeaderName::Via
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::From
                | HeaderName::To
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
        ) || name.is_single()
    }

    /// Applies `f` to the rows; if core headers changed and no longer parse, restores them.
    fn edit_rows(
        &mut self,
        name: HeaderName,
        f: impl FnOnce(&mut Vec<Row>),
    ) -> Result<(), EditError> {
        let saved = Self::touches_core(name).then(|| self.rows.clone());
        f(&mut self.rows);
        self.pristine = false;
        if let Some(saved) = saved {
            if let Err(e) = self.refresh_core() {
                self.rows = saved;
                let _ = self.refresh_core();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends a row, decoding only that row: building a message costs O(rows), not the
    /// O(rows²) of re-deriving the cached headers after every push.
    fn append_row(&mut self, row: Row) -> Result<(), EditError> {
        self.pristine = false;
        if !Self::touches_core(row.name) {
            self.rows.push(row);
            return Ok(());
        }
        if row.name.is_single() && self.rows.iter().any(|r| r.name == row.name) {
            return Err(EditError::BadValue(row.name));
        }
        let limits = Limits {
            max_vias: usize::MAX,
            ..Limits::default()
        };
        let one = {
            let this = &*self;
            compute_core(
                std::slice::from_ref(&row),
                &limits,
                this.is_response(),
                |s| this.text(s),
            )
        }
        .map_err(|_| EditError::BadValue(row.name))?;
        self.rows.push(row);
        // Earlier rows win: an appended row only fills what is still unknown.
        let c = &mut self.core;
        c.call_id = c.call_id.or(one.call_id);
        c.cseq = c.cseq.or(one.cseq);
        if c.from.is_none() && one.from.is_some() {
            (c.from, c.from_tag) = (one.from, one.from_tag);
        }
        if c.to.is_none() && one.to.is_some() {
            (c.to, c.to_tag) = (one.to, one.to_tag);
        }
        c.max_forwards = c.max_forwards.or(one.max_forwards);
        c.content_length = c.content_length.or(one.content_length);
        c.top_via = c.top_via.or(one.top_via);
        c.via_count += one.via_count;
        Ok(())
    }

    /// Appends a header row.
    pub fn push_header(&mut self, name: HeaderName, value: &str) -> Result<(), EditError> {
        let text = name.as_str().ok_or(EditError::BadName)?;
        let row = self.make_row(name, text, value)?;
        self.append_row(row)
    }

    /// Appends a header row with a name of the caller's spelling (extension headers).
    pub fn push_header_text(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let hn = HeaderName::from_bytes(name.as_bytes());
        let row = self.make_row(hn, name, value)?;
        self.append_row(row)
    }

    /// Inserts a row before every other row of the message (used for the gateway's own Via).
    pub fn prepend_header(&mut self, name: HeaderName, value: &str) -> Result<(), EditError> {
        let text = name.as_str().ok_or(EditError::BadName)?;
        let row = self.make_row(name, text, value)?;
        self.edit_rows(name, |rows| rows.insert(0, row))
    }

    /// Replaces every row of `name` with one row holding `value`, where the first one was
    /// (or at the end if there was none).
    pub fn set_header(&mut self, name: HeaderName, value: &str) -> Result<(), EditError> {
        let text = name.as_str().ok_or(EditError::BadName)?;
        let row = self.make_row(name, text, value)?;
        self.edit_rows(name, |rows| {
            let at = rows
                .iter()
                .position(|r| r.name == name)
                .unwrap_or(rows.len());
            rows.retain(|r| r.name != name);
            rows.insert(at.min(rows.len()), row);
        })
    }

    /// Removes every row of `name`; returns how many.
    pub fn remove_header(&mut self, name: HeaderName) -> usize {
        let before = self.rows.len();
        // Removing rows cannot make a core header malformed, only absent.
        let _ = self.edit_rows(name, |rows| rows.retain(|r| r.name != name));
        before - self.rows.len()
    }

    /// Keeps only the rows for which `keep(name, name_as_written)` holds.
    pub fn retain_headers(&mut self, mut keep: impl FnMut(HeaderName, &str) -> bool) {
        let decisions: Vec<bool> = self
            .rows
            .iter()
            .map(|r| keep(r.name, self.text(r.name_text)))
            .collect();
        let mut it = decisions.into_iter();
        self.rows.retain(|_| it.next().unwrap_or(true));
        self.pristine = false;
        let _ = self.refresh_core();
    }

    /// Removes the top Via value (a response on its way back, RFC 3261 §18.1.2): the first
    /// value of the first Via row; the rest of that row stays.
    pub fn pop_via(&mut self) -> Result<(), EditError> {
        let Some(i) = self.rows.iter().position(|r| r.name == HeaderName::Via) else {
            return Ok(());
        };
        let Some(row) = self.rows.get(i).copied() else {
            return Ok(());
        };
        let mut values = Vec::new();
        crate::header::parse_via_list(self.value_of_row(&row), |v| values.push(v.protocol))
            .map_err(|_| EditError::BadValue(HeaderName::Via))?;
        let whole = self.value_of_row(&row);
        let rest = match values.get(1) {
            Some(second) => {
                let off = second.as_ptr() as usize - whole.as_ptr() as usize;
                Some(whole.get(off..).unwrap_or("").to_owned())
            }
            None => None,
        };
        match rest {
            None => self.edit_rows(HeaderName::Via, |rows| {
                rows.remove(i);
            }),
            Some(rest) => {
                let new = self.make_row(HeaderName::Via, "Via", &rest)?;
                self.edit_rows(HeaderName::Via, |rows| {
                    if let Some(r) = rows.get_mut(i) {
                        *r = new;
                    }
                })
            }
        }
    }

    fn value_of_row(&self, row: &Row) -> &str {
        scan::trim_lws(self.text(row.value))
    }

    /// Replaces the Request-URI.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), EditError> {
        match Uri::parse(uri) {
            Ok(Uri::Sip(u)) if u.headers.is_some() => return Err(EditError::BadUri),
            Ok(_) => {}
            Err(_) => return Err(EditError::BadUri),
        }
        let StartLine::Request {
            method,
            method_text,
            ..
        } = self.start
        else {
            return Err(EditError::WrongKind);
        };
        let m = self.text(method_text).to_owned();
        let method_text = self.push_arena(&m);
        let uri = self.push_arena(uri);
        self.start = StartLine::Request {
            method,
            method_text,
            uri,
        };
        self.start_end = None;
        self.pristine = false;
        Ok(())
    }

    /// Sets Max-Forwards.
    pub fn set_max_forwards(&mut self, n: u8) -> Result<(), EditError> {
        self.set_header(HeaderName::MaxForwards, &n.to_string())
    }

    /// Replaces the body and its Content-Type (removed when `content_type` is `None`), and
    /// keeps Content-Length right.
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) -> Result<(), EditError> {
        if let Some(ct) = content_type {
            crate::header::ContentType::parse(ct)
                .map_err(|_| EditError::BadValue(HeaderName::ContentType))?;
        }
        // Content-Type has no cached field: removing its rows cannot stale the cache.
        self.rows.retain(|r| r.name != HeaderName::ContentType);
        if let Some(ct) = content_type {
            let row = self.make_row(HeaderName::ContentType, "Content-Type", ct)?;
            self.append_row(row)?;
        }
        self.body = body;
        self.finish()
    }

    /// Serialises the message. An unedited parsed message comes out byte for byte as it
    /// came in; otherwise original rows are copied and edited ones written in canonical form.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.pristine {
            out.extend_from_slice(&self.buf);
            return;
        }
        out.reserve(self.encoded_len_hint());
        match (self.start_end, self.start) {
            (Some(end), _) => out.extend_from_slice(self.buf.get(..end).unwrap_or(&[])),
            (
                None,
                StartLine::Request {
                    method_text, uri, ..
                },
            ) => {
                out.extend_from_slice(self.text(method_text).as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(uri).as_bytes());
                out.extend_from_slice(b" SIP/2.0");
            }
            (None, StartLine::Response { status, reason }) => {
                out.extend_from_slice(b"SIP/2.0 ");
                out.extend_from_slice(status.as_u16().to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(reason).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        for row in &self.rows {
            if row.original {
                let raw = Span {
                    start: row.name_text.start,
                    end: row.value.end,
                    arena: false,
                };
                out.extend_from_slice(self.text_bytes(raw));
            } else {
                out.extend_from_slice(self.text(row.name_text).as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(self.text(row.value).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    fn text_bytes(&self, s: Span) -> &[u8] {
        let r = s.start as usize..s.end as usize;
        if s.arena {
            self.arena.as_bytes().get(r).unwrap_or(&[])
        } else {
            self.buf.get(r).unwrap_or(&[])
        }
    }

    fn encoded_len_hint(&self) -> usize {
        self.buf.len() + self.arena.len() + self.rows.len() * 4 + 64
    }

    /// Serialises into a new buffer (zero-copy for an unedited parsed message).
    pub fn to_bytes(&self) -> Bytes {
        if self.pristine {
            return self.buf.clone();
        }
        let mut v = Vec::with_capacity(self.encoded_len_hint());
        self.write_to(&mut v);
        Bytes::from(v)
    }

    fn empty(start: StartLine) -> Self {
        Self {
            buf: Bytes::new(),
            head: Default::default(),
            arena: String::new(),
            start,
            start_end: None,
            rows: Vec::new(),
            body: Bytes::new(),
            core: Default::default(),
            pristine: false,
        }
    }

    /// Starts a request. Add Via, From, To, Call-ID, CSeq, Max-Forwards and the rest with
    /// [`Message::push_header`]; [`Message::set_body`] keeps Content-Length in step, and a
    /// request without a body gets `Content-Length: 0` from [`Message::finish`].
    pub fn request(method: Method, method_text: &str, uri: &str) -> Result<Self, EditError> {
        if !scan::is_token(method_text)
            || (method != Method::Extension && method.as_str() != Some(method_text))
        {
            return Err(EditError::BadName);
        }
        let mut m = Self::empty(StartLine::Response {
            status: StatusCode::OK,
            reason: Span::default(),
        });
        let mt = m.push_arena(method_text);
        m.start = StartLine::Request {
            method,
            method_text: mt,
            uri: Span::default(),
        };
        m.set_request_uri(uri)?;
        Ok(m)
    }

    /// A response to `req` (RFC 3261 §8.2.6.2): Via rows, From, To, Call-ID and CSeq copied,
    /// a To tag added when `to_tag` is given and the request's To has none, and
    /// `Content-Length: 0`. `reason` defaults to the code's usual phrase.
    pub fn response_to(
        req: &Self,
        status: StatusCode,
        reason: Option<&str>,
        to_tag: Option<&str>,
    ) -> Result<Self, EditError> {
        if !req.is_request() {
            return Err(EditError::WrongKind);
        }
        let reason = reason.unwrap_or_else(|| status.default_reason());
        if reason.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(EditError::BadValue(HeaderName::Other));
        }
        let mut m = Self::empty(StartLine::Response {
            status,
            reason: Span::default(),
        });
        let reason = m.push_arena(reason);
        m.start = StartLine::Response { status, reason };
        let add_tag = match to_tag {
            Some(tag) if req.to_tag().is_none() => {
                if !scan::is_token(tag) {
                    return Err(EditError::BadValue(HeaderName::To));
                }
                Some(tag)
            }
            _ => None,
        };
        // The copied rows, each as (the request's row, the copy's value span).
        let mut moved: Vec<(Row, Span)> = Vec::with_capacity(6);
        // Via rows first, then From, To, Call-ID and CSeq, as RFC 3261 §8.2.6.2 lists them.
        let vias = req.rows.iter().filter(|r| r.name == HeaderName::Via);
        let singles = [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ]
        .into_iter()
        .filter_map(|name| req.rows.iter().find(|r| r.name == name));
        for row in vias.chain(singles) {
            let text = row.name.as_str().unwrap_or("");
            let v = req.value_of_row(row);
            let r = match (row.name, add_tag) {
                (HeaderName::To, Some(tag)) => {
                    m.make_row(row.name, text, &format!("{v};tag={tag}"))?
                }
                _ => m.make_row(row.name, text, v)?,
            };
            m.rows.push(r);
            moved.push((*row, r.value));
        }
        // The copies hold the request's own values, already decoded when the request was
        // parsed: its cached headers move over instead of From, To, CSeq and every Via being
        // parsed again (this runs for every stateless answer). A value that was unfolded on
        // the way is decoded afresh.
        match req.moved_core(&moved, add_tag.map(str::len)) {
            Some(core) => m.core = core,
            None => m.refresh_core()?,
        }
        m.finish()?;
        Ok(m)
    }

    /// The request's cached headers, re-pointed at copies of its rows (`moved`: each copied
    /// row and its copy's value span, written as the row's trimmed value, plus `;tag=…` of
    /// `added_tag` bytes on To). `None` when a copy is not the trimmed original.
    fn moved_core(&self, moved: &[(Row, Span)], added_tag: Option<usize>) -> Option<Core> {
        // Where a request row's trimmed value starts, and its copy.
        let places: Vec<(Row, u32, Span)> = moved
            .iter()
            .map(|(row, copy)| {
                let raw = self.text(row.value);
                let trimmed = scan::trim_lws(raw);
                let lead = (trimmed.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize);
                let extra = match (row.name, added_tag) {
                    (HeaderName::To, Some(n)) => n + ";tag=".len(),
                    _ => 0,
                };
                let same = copy.end.saturating_sub(copy.start) as usize == trimmed.len() + extra;
                same.then_some((*row, row.value.start + lead as u32, *copy))
            })
            .collect::<Option<_>>()?;
        let map = |s: Span| -> Option<Span> {
            let (_, from, copy) = places.iter().find(|(row, from, _)| {
                row.value.arena == s.arena && *from <= s.start && s.end <= row.value.end
            })?;
            let start = copy.start + (s.start - from);
            let end = copy.start + (s.end - from);
            (end <= copy.end).then_some(Span {
                start,
                end,
                arena: copy.arena,
            })
        };
        let copy_of = |name: HeaderName| {
            places
                .iter()
                .find(|(row, _, _)| row.name == name)
                .map(|(_, _, copy)| *copy)
        };
        let c = &self.core;
        let opt = |s: Option<Span>| match s {
            Some(s) => map(s).map(Some),
            None => Some(None),
        };
        let top_via = match c.top_via {
            Some(v) => Some(TopVia {
                protocol: map(v.protocol)?,
                version: map(v.version)?,
                transport_text: map(v.transport_text)?,
                transport: v.transport,
                host: match v.host {
                    CachedHost::Name(n) => CachedHost::Name(map(n)?),
                    other => other,
                },
                port: v.port,
                params: map(v.params)?,
                branch: opt(v.branch)?,
            }),
            None => None,
        };
        let to = copy_of(HeaderName::To);
        let to_tag = match (added_tag, to) {
            (Some(n), Some(to)) => Some(Span {
                start: to.end - n as u32,
                end: to.end,
                arena: to.arena,
            }),
            _ => opt(c.to_tag)?,
        };
        Some(Core {
            call_id: opt(c.call_id)?,
            cseq: match c.cseq {
                Some((n, method, text)) => Some((n, method, map(text)?)),
                None => None,
            },
            from: copy_of(HeaderName::From),
            from_tag: opt(c.from_tag)?,
            from_user: opt(c.from_user)?,
            from_display: opt(c.from_display)?,
            to,
            to_tag,
            to_user: opt(c.to_user)?,
            to_display: opt(c.to_display)?,
            max_forwards: None,
            content_length: None,
            top_via,
            via_count: c.via_count,
        })
    }

    /// Sets `Content-Length` to the body's length as the last header row; call after building.
    ///
    /// Every edit keeps the cached headers in step with the rows, so only the cached length
    /// changes here: re-deriving them all (parsing From, To and every Via again) cost a
    /// sixth of a stateless answer, built at every REGISTER.
    pub fn finish(&mut self) -> Result<(), EditError> {
        let len = u32::try_from(self.body.len())
            .map_err(|_| EditError::BadValue(HeaderName::ContentLength))?;
        let mut digits = [0u8; 10];
        let r = self.make_row(
            HeaderName::ContentLength,
            "Content-Length",
            scan::format_u32(len, &mut digits),
        )?;
        self.rows
            .retain(|row| row.name != HeaderName::ContentLength);
        self.rows.push(r);
        self.pristine = false;
        self.core.content_length = Some(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.com>\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.atlanta.com>\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn pristine_roundtrip_and_edits() {
        let mut m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.to_bytes().as_ref(), INVITE.as_bytes());
        m.push_header_text("X-Test", "1").unwrap();
        let out = m.to_bytes();
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.ends_with("Content-Length: 0\r\nX-Test: 1\r\n\r\n"));
        let again = Message::parse(&out).unwrap();
        assert_eq!(again.header_values_by_text("x-test").next(), Some("1"));
        assert!(
            m.push_header_text("X-Evil", "a\r\nVia: SIP/2.0/UDP evil")
                .is_err()
        );
        assert!(m.push_header_text("X Bad", "a").is_err());
        m.push_header_text("X-Folded", "a\r\n  b").unwrap();
        assert_eq!(m.header_values_by_text("X-Folded").next(), Some("a b"));
    }

    #[test]
    fn core_follows_edits() {
        let mut m = Message::parse(INVITE.as_bytes()).unwrap();
        m.pop_via().unwrap();
        assert_eq!(m.branch(), Some("z9hG4bK2"));
        assert_eq!(m.via_count(), 1);
        m.prepend_header(HeaderName::Via, "SIP/2.0/TCP gw.example;branch=z9hG4bKgw")
            .unwrap();
        assert_eq!(m.branch(), Some("z9hG4bKgw"));
        assert!(m.set_header(HeaderName::CSeq, "x INVITE").is_err());
        assert_eq!(m.cseq().unwrap().seq, 314_159);
        m.set_max_forwards(69).unwrap();
        assert_eq!(m.max_forwards(), Some(69));
        m.set_request_uri("sip:carol@chicago.com").unwrap();
        assert!(m.set_request_uri("sip:x@y?Route=z").is_err());
        m.set_body(Bytes::from_static(b"v=0\r\n"), Some("application/sdp"))
            .unwrap();
        let re = Message::parse(&m.to_bytes()).unwrap();
        assert_eq!(re.request_uri_str(), Some("sip:carol@chicago.com"));
        assert_eq!(re.body(), b"v=0\r\n");
        assert_eq!(re.content_length(), Some(5));
        assert_eq!(re.via_count(), 2);
    }

    #[test]
    fn response_copies_dialog_headers() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let r = Message::response_to(&req, StatusCode::RINGING, None, Some("as83kd")).unwrap();
        let re = Message::parse(&r.to_bytes()).unwrap();
        assert_eq!(re.status(), Some(StatusCode::RINGING));
        assert_eq!(re.reason_phrase(), Some("Ringing"));
        assert_eq!(re.via_count(), 2);
        assert_eq!(re.branch(), req.branch());
        assert_eq!(re.to_tag(), Some("as83kd"));
        assert_eq!(re.from_tag(), req.from_tag());
        assert_eq!(re.call_id(), req.call_id());
        assert_eq!(re.cseq(), req.cseq());
        assert_eq!(re.content_length(), Some(0));
    }

    #[test]
    fn build_request() {
        let mut m = Message::request(Method::Options, "OPTIONS", "sip:pbx.example").unwrap();
        m.push_header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport",
        )
        .unwrap();
        m.push_header(HeaderName::From, "<sip:gw@127.0.0.1>;tag=a")
            .unwrap();
        m.push_header(HeaderName::To, "<sip:pbx.example>").unwrap();
        m.push_header(HeaderName::CallId, "c1").unwrap();
        m.push_header(HeaderName::CSeq, "1 OPTIONS").unwrap();
        m.set_max_forwards(70).unwrap();
        m.finish().unwrap();
        let bytes = m.to_bytes();
        let re = Message::parse(&bytes).unwrap();
        assert_eq!(re.to_bytes(), bytes);
        assert_eq!(re.method(), Some(Method::Options));
        assert!(Message::request(Method::Invite, "OPTIONS", "sip:x").is_err());
        assert!(Message::request(Method::Invite, "INVITE", "<sip:x>").is_err());
    }

    /// `finish` trusts the cached headers that every edit keeps fresh: they must equal what
    /// re-deriving them from the rows gives, however the message was built.
    #[test]
    fn cached_headers_stay_in_step_without_rederiving() {
        fn same_as_rederived(m: &Message) {
            let mut again = m.clone();
            again.refresh_core().unwrap();
            assert_eq!(format!("{:?}", m.core), format!("{:?}", again.core));
            let re = Message::parse(&m.to_bytes()).unwrap();
            assert_eq!(re.content_length(), m.content_length());
            assert_eq!(re.via_count(), m.via_count());
            assert_eq!(re.to_tag(), m.to_tag());
        }
        let odd = [
            // compact names, white space around values, a folded From, two Via rows, a To tag
            "REGISTER sip:example.com SIP/2.0\r\nv:   SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1;rport  \r\nVia: SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK2\r\nf:  <sip:a@example.com>\r\n ;tag=9\r\nt: <sip:a@example.com>;tag=x  \r\ni:  abc@host \r\nCSeq:   2 REGISTER\r\nContent-Length: 0\r\n\r\n",
            // no Via parameters but the branch, a bare host
            "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nFrom: <sip:y@h>;tag=1\r\nTo: <sip:x>\r\nCall-ID: q\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ];
        for text in odd {
            let mut req = Message::parse(text.as_bytes()).unwrap();
            for tag in [None, Some("t1")] {
                let r = Message::response_to(&req, StatusCode::OK, None, tag).unwrap();
                same_as_rederived(&r);
            }
            // an edited request: its rows and cached headers live in the arena
            req.prepend_header(HeaderName::Via, "SIP/2.0/UDP gw:5060;branch=z9hG4bKgw")
                .unwrap();
            let r = Message::response_to(&req, StatusCode::OK, None, Some("t2")).unwrap();
            same_as_rederived(&r);
            assert_eq!(r.branch(), Some("z9hG4bKgw"));
        }
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        for tag in [None, Some("as83kd")] {
            let mut r = Message::response_to(&req, StatusCode::UNAUTHORIZED, None, tag).unwrap();
            same_as_rederived(&r);
            r.push_header(
                HeaderName::WwwAuthenticate,
                "Digest realm=\"x\", nonce=\"n\"",
            )
            .unwrap();
            r.finish().unwrap();
            same_as_rederived(&r);
            r.set_body(Bytes::from_static(b"v=0\r\n"), Some("application/sdp"))
                .unwrap();
            same_as_rederived(&r);
            assert_eq!(r.content_length(), Some(5));
        }
        let mut m = req.clone();
        m.prepend_header(HeaderName::Via, "SIP/2.0/UDP gw;branch=z9hG4bKgw")
            .unwrap();
        m.set_header(HeaderName::To, "<sip:carol@example.com>")
            .unwrap();
        m.finish().unwrap();
        same_as_rederived(&m);
        m.pop_via().unwrap();
        m.remove_header(HeaderName::Contact);
        m.finish().unwrap();
        same_as_rederived(&m);
    }

    #[test]
    fn content_length_digits() {
        let mut buf = [0u8; 10];
        for n in [0, 7, 10, 99, 1234, u32::MAX] {
            assert_eq!(scan::format_u32(n, &mut buf), n.to_string());
        }
    }
}
