//! Editing an SDP body through its parsed model: every edit names a value of the [`Sdp`] (the
//! origin's address, a media port, an attribute …) and is kept as a byte range of the original
//! body and its replacement, applied once by [`SdpEdit::finish`]. Bytes no edit names come
//! out as they went in, line endings (CRLF or LF) included, so an edited body differs from the
//! original exactly where a rewrite meant it to.
//!
//! Every operation checks that the result still parses under the limits the body was parsed
//! with: text that would break a line (CR, LF, NUL) or a field (a space in a token), a second
//! direction or `a=setup` attribute in a section, a line, section or body over its limit — all
//! are refused, and a refused operation changes nothing.
//!
//! Overlapping edits are resolved deterministically: an edit of exactly the bytes an earlier
//! one edited replaces it (rewrites run in order; the later one wins), attribute lines inserted
//! at one place keep the order they were inserted in, and any other overlap (a value changed
//! on a line that is removed, or the reverse) is refused with [`SdpEditError::Overlap`].

use core::fmt::{self, Write as _};
use std::net::IpAddr;

use super::{Attribute, Sdp, SdpError, SdpLimits, Setup, is_token_char, parse_with};

/// Which part of an SDP body an edit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The session level (before the first `m=` line).
    Session,
    /// The media section at this index of [`Sdp::media`].
    Media(usize),
}

/// Why an [`SdpEdit`] operation was refused; a refused operation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SdpEditError {
    /// No such media section, attribute or `c=` line.
    NotFound,
    /// The new text would not parse back: CR, LF or NUL anywhere, an empty token or a space
    /// in one, an attribute name that is not a token, an `a=setup` value that is no role.
    InvalidText,
    /// A second direction attribute, or a second `a=setup`, in one section.
    Conflict,
    /// A line, a section's attributes or the body's lines would go over the limits the body
    /// was parsed with.
    OverLimit,
    /// The edit overlaps an earlier one other than by replacing exactly the same bytes.
    Overlap,
}

impl SdpEditError {
    /// Stable snake-case code (metric labels, call records).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotFound => "sdp_not_found",
            Self::InvalidText => "sdp_invalid_text",
            Self::Conflict => "sdp_conflict",
            Self::OverLimit => "sdp_over_limit",
            Self::Overlap => "sdp_overlap",
        }
    }
}

impl fmt::Display for SdpEditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for SdpEditError {}

/// A point in an [`SdpEdit`]'s history to go back to with [`SdpEdit::rollback`] (the call
/// core undoes the edits of a rewrite that failed halfway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditMark {
    edits: usize,
    text: usize,
}

/// Attribute classes the parser allows once per section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Other,
    Direction,
    Setup,
}

impl Class {
    fn of(name: &str) -> Self {
        if super::Direction::from_attribute_name(name).is_some() {
            Self::Direction
        } else if name == "setup" {
            Self::Setup
        } else {
            Self::Other
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// Bytes inside one line's text.
    Field,
    /// An attribute line inserted at the end of a section.
    Insert(Section, Class),
    /// An attribute line (with its line ending) removed.
    Remove(Section, usize),
}

impl What {
    /// At one position: values of the line ending there, then new lines, then removals.
    const fn rank(self) -> u8 {
        match self {
            Self::Field => 0,
            Self::Insert(..) => 1,
            Self::Remove(..) => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    start: usize,
    end: usize,
    /// Start of the line the edit is on (the position, for an insertion).
    line: usize,
    /// The replacement, as a range of `SdpEdit::text`.
    text: (usize, usize),
    what: What,
    /// The later edit of the same bytes that replaced this one.
    superseded_by: Option<usize>,
}

impl Edit {
    fn live(&self) -> bool {
        self.superseded_by.is_none()
    }

    fn text_len(&self) -> usize {
        self.text.1.saturating_sub(self.text.0)
    }
}

/// An SDP body being edited: the parsed [`Sdp`] (read-only: it shows the body as received,
/// not the edits) and the edits so far. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct SdpEdit<'a> {
    body: &'a [u8],
    sdp: Sdp<'a>,
    limits: SdpLimits,
    edits: Vec<Edit>,
    /// Every replacement's text, back to back (one buffer, not one string per edit).
    text: String,
}

impl<'a> SdpEdit<'a> {
    /// Parses `body` with [`SdpLimits::default`]; an error means it is not SDP to edit.
    pub fn new(body: &'a [u8]) -> Result<Self, SdpError> {
        Self::with_limits(body, &SdpLimits::default())
    }

    /// Parses `body` under `limits`, which the edits then keep to as well.
    pub fn with_limits(body: &'a [u8], limits: &SdpLimits) -> Result<Self, SdpError> {
        Ok(Self {
            body,
            sdp: parse_with(body, limits)?,
            limits: *limits,
            edits: Vec::new(),
            text: String::new(),
        })
    }

    /// The body as parsed (edits do not show here).
    #[must_use]
    pub fn sdp(&self) -> &Sdp<'a> {
        &self.sdp
    }

    /// The original body.
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Whether any edit is pending.
    #[must_use]
    pub fn is_edited(&self) -> bool {
        !self.edits.is_empty()
    }

    /// The attributes of a section as parsed; `None` for a media section that does not exist.
    #[must_use]
    pub fn attributes(&self, section: Section) -> Option<&[Attribute<'a>]> {
        match section {
            Section::Session => Some(&self.sdp.attributes),
            Section::Media(i) => self.sdp.media.get(i).map(|m| m.attributes.as_slice()),
        }
    }

    /// The index of a section's first attribute with exactly this name.
    #[must_use]
    pub fn find_attribute(&self, section: Section, name: &str) -> Option<usize> {
        self.attributes(section)?
            .iter()
            .position(|a| a.name == name)
    }

    /// Replaces the `o=` username (a token: not empty, no space).
    pub fn set_origin_username(&mut self, username: &str) -> Result<(), SdpEditError> {
        check_token(username)?;
        let (start, end) = self.span(self.sdp.origin.username)?;
        self.push_field(start, end, |t| t.push_str(username))
    }

    /// Replaces the `o=` unicast address; the address type (`IP4`/`IP6`) follows it.
    pub fn set_origin_address(&mut self, address: IpAddr) -> Result<(), SdpEditError> {
        let ty = self.span(self.sdp.origin.addr_type)?;
        let addr = self.span(self.sdp.origin.address)?;
        self.atomic(|e| {
            e.push_field(ty.0, ty.1, |t| t.push_str(addr_type(address)))?;
            e.push_field(addr.0, addr.1, |t| write_ip(t, address))
        })
    }

    /// Replaces the `s=` value (any text without CR, LF or NUL; may be empty).
    pub fn set_session_name(&mut self, name: &str) -> Result<(), SdpEditError> {
        check_text(name)?;
        let (start, end) = self.span(self.sdp.session_name)?;
        self.push_field(start, end, |t| t.push_str(name))
    }

    /// Replaces the address of a section's own `c=` line; the address type follows it, and a
    /// multicast `/ttl/count` suffix goes (the new address is unicast).
    pub fn set_connection_address(
        &mut self,
        section: Section,
        address: IpAddr,
    ) -> Result<(), SdpEditError> {
        let conn = match section {
            Section::Session => self.sdp.connection.as_ref(),
            Section::Media(i) => self.sdp.media.get(i).and_then(|m| m.connection.as_ref()),
        }
        .ok_or(SdpEditError::NotFound)?;
        let (net, _) = self.span(conn.net_type)?;
        let (_, text_end, _) = self.line_at(net);
        let ty = self.field_after(net, text_end, 1)?;
        let addr = self.field_after(net, text_end, 2)?;
        self.atomic(|e| {
            e.push_field(ty.0, ty.1, |t| t.push_str(addr_type(address)))?;
            e.push_field(addr.0, addr.1, |t| write_ip(t, address))
        })
    }

    /// Replaces a media section's port (a `/count` after it stays).
    pub fn set_media_port(&mut self, media: usize, port: u16) -> Result<(), SdpEditError> {
        let m = self.sdp.media.get(media).ok_or(SdpEditError::NotFound)?;
        let (first, _) = self.span(m.media)?;
        let (_, text_end, _) = self.line_at(first);
        let (start, end) = self.field_after(first, text_end, 1)?;
        let field = self.body.get(start..end).unwrap_or_default();
        let end = memchr::memchr(b'/', field).map_or(end, |i| start + i);
        self.push_field(start, end, |t| {
            let _ = write!(t, "{port}");
        })
    }

    /// Replaces (`Some`) or removes (`None`) the value of a section's attribute, by its index
    /// in [`SdpEdit::attributes`]; the name stays.
    pub fn set_attribute_value(
        &mut self,
        section: Section,
        index: usize,
        value: Option<&str>,
    ) -> Result<(), SdpEditError> {
        let attr = self
            .attributes(section)
            .and_then(|a| a.get(index))
            .ok_or(SdpEditError::NotFound)?;
        check_value(attr.name, value)?;
        let (_, name_end) = self.span(attr.name)?;
        let (_, text_end, _) = self.line_at(name_end);
        self.push_field(name_end, text_end, |t| {
            if let Some(v) = value {
                t.push(':');
                t.push_str(v);
            }
        })
    }

    /// Removes a section's attribute line, by its index in [`SdpEdit::attributes`].
    pub fn remove_attribute(&mut self, section: Section, index: usize) -> Result<(), SdpEditError> {
        let attr = self
            .attributes(section)
            .and_then(|a| a.get(index))
            .ok_or(SdpEditError::NotFound)?;
        let (name, _) = self.span(attr.name)?;
        let (start, _, end) = self.line_at(name);
        self.push(start, end, start, What::Remove(section, index), |_| {})
    }

    /// Adds `a=<name>[:<value>]` at the end of a section (where RFC 8866 puts attributes),
    /// after any line inserted there before; its line ending is its neighbour's.
    pub fn insert_attribute(
        &mut self,
        section: Section,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), SdpEditError> {
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(SdpEditError::InvalidText);
        }
        check_value(name, value)?;
        let count = self
            .attributes(section)
            .ok_or(SdpEditError::NotFound)?
            .len();
        let class = Class::of(name);
        if class != Class::Other && self.section_has(section, class) {
            return Err(SdpEditError::Conflict);
        }
        let at = self.section_end(section).ok_or(SdpEditError::NotFound)?;
        // The section ends the body without a final line ending: the new line goes after one,
        // and ends as the body does, without.
        let unterminated = at.checked_sub(1).and_then(|i| self.body.get(i)) != Some(&b'\n');
        let (mut lines, mut attrs) = (self.line_count(), count);
        for e in self.edits.iter().filter(|e| e.live()) {
            match e.what {
                What::Insert(s, _) => {
                    lines += 1;
                    attrs += usize::from(s == section);
                }
                What::Remove(s, _) => {
                    lines = lines.saturating_sub(1);
                    attrs = attrs.saturating_sub(usize::from(s == section));
                }
                What::Field => {}
            }
        }
        // After a removed last line, a line added after the body's end may leave a blank one:
        // counted, so the limit holds whatever was removed.
        lines += usize::from(unterminated);
        let len = 2 + name.len() + value.map_or(0, |v| 1 + v.len());
        if len > self.limits.max_line_len
            || attrs >= self.limits.max_attributes
            || lines >= self.limits.max_lines
        {
            return Err(SdpEditError::OverLimit);
        }
        let (eol, before) = if unterminated {
            (self.first_eol(), true)
        } else {
            (self.eol_before(at), false)
        };
        self.push(at, at, at, What::Insert(section, class), |t| {
            if before {
                t.push_str(eol);
            }
            t.push_str("a=");
            t.push_str(name);
            if let Some(v) = value {
                t.push(':');
                t.push_str(v);
            }
            if !before {
                t.push_str(eol);
            }
        })
    }

    /// Where the edits stand now.
    #[must_use]
    pub fn mark(&self) -> EditMark {
        EditMark {
            edits: self.edits.len(),
            text: self.text.len(),
        }
    }

    /// Undoes every edit made since `mark` (a later mark than the edits have is ignored).
    pub fn rollback(&mut self, mark: EditMark) {
        if mark.edits > self.edits.len() {
            return;
        }
        self.edits.truncate(mark.edits);
        self.text.truncate(mark.text.min(self.text.len()));
        for e in &mut self.edits {
            if e.superseded_by.is_some_and(|i| i >= mark.edits) {
                e.superseded_by = None;
            }
        }
    }

    /// The edited body, appended to `out` (the original bytes when nothing was edited).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut live: Vec<&Edit> = self.edits.iter().filter(|e| e.live()).collect();
        // Stable: equal keys keep the order the edits were made in.
        live.sort_by_key(|e| (e.start, e.end, e.what.rank()));
        out.reserve(self.body.len() + self.text.len());
        let base = out.len();
        let mut at = 0;
        for e in live {
            if e.start < at {
                // Unreachable: overlaps are refused when an edit is made.
                continue;
            }
            out.extend_from_slice(self.body.get(at..e.start).unwrap_or_default());
            let mut text = self
                .text
                .as_bytes()
                .get(e.text.0..e.text.1)
                .unwrap_or_default();
            // A line added after an unterminated end starts with a line ending; when the
            // last line was removed, the output already ends with one.
            if out.len() > base && out.last() == Some(&b'\n') {
                text = text.strip_prefix(b"\r\n").unwrap_or(text);
                text = text.strip_prefix(b"\n").unwrap_or(text);
            }
            out.extend_from_slice(text);
            at = e.end;
        }
        out.extend_from_slice(self.body.get(at..).unwrap_or_default());
    }

    /// The edited body (the original bytes when nothing was edited).
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        if self.edits.is_empty() {
            return self.body.to_vec();
        }
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    // === internals ===

    /// Runs `f`; if it fails, undoes what it did.
    fn atomic(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), SdpEditError>,
    ) -> Result<(), SdpEditError> {
        let mark = self.mark();
        let r = f(self);
        if r.is_err() {
            self.rollback(mark);
        }
        r
    }

    /// Where a string the parser returned lies in the body. Every string of [`Sdp`] borrows
    /// from the body, so this is its offset; checked all the same, never assumed.
    fn span(&self, s: &str) -> Result<(usize, usize), SdpEditError> {
        let start = s
            .as_ptr()
            .addr()
            .checked_sub(self.body.as_ptr().addr())
            .ok_or(SdpEditError::NotFound)?;
        let end = start.checked_add(s.len()).ok_or(SdpEditError::NotFound)?;
        match self.body.get(start..end) {
            Some(b) if b == s.as_bytes() => Ok((start, end)),
            _ => Err(SdpEditError::NotFound),
        }
    }

    /// The line holding byte `pos`: its start, the end of its text, and its end after the
    /// line ending.
    fn line_at(&self, pos: usize) -> (usize, usize, usize) {
        let pos = pos.min(self.body.len());
        let before = self.body.get(..pos).unwrap_or_default();
        let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        let after = self.body.get(pos..).unwrap_or_default();
        match memchr::memchr(b'\n', after) {
            Some(i) => {
                let nl = pos + i;
                let cr = nl > start && self.body.get(nl - 1) == Some(&b'\r');
                (start, if cr { nl - 1 } else { nl }, nl + 1)
            }
            None => (start, self.body.len(), self.body.len()),
        }
    }

    /// The `n`th space-separated field (0-based) of the text from `from` to `to`.
    fn field_after(
        &self,
        from: usize,
        to: usize,
        n: usize,
    ) -> Result<(usize, usize), SdpEditError> {
        let text = self.body.get(from..to).ok_or(SdpEditError::NotFound)?;
        let mut i = 0;
        let mut seen = 0;
        while i < text.len() {
            if text.get(i) == Some(&b' ') {
                i += 1;
                continue;
            }
            let len =
                memchr::memchr(b' ', text.get(i..).unwrap_or_default()).unwrap_or(text.len() - i);
            if seen == n {
                return Ok((from + i, from + i + len));
            }
            seen += 1;
            i += len;
        }
        Err(SdpEditError::NotFound)
    }

    /// Where a new attribute line of a section goes: after its last line that is not blank.
    fn section_end(&self, section: Section) -> Option<usize> {
        let next = match section {
            Section::Session => self.sdp.media.first(),
            Section::Media(i) => {
                self.sdp.media.get(i)?;
                self.sdp.media.get(i + 1)
            }
        };
        let mut end = match next {
            Some(m) => self.line_at(self.span(m.media).ok()?.0).0,
            None => self.body.len(),
        };
        while end > 0 && self.body.get(end - 1) == Some(&b'\n') {
            let (start, text_end, _) = self.line_at(end - 1);
            if text_end > start {
                break;
            }
            end = start;
        }
        Some(end)
    }

    /// The line ending of the line that ends at `at`.
    fn eol_before(&self, at: usize) -> &'static str {
        if at >= 2 && self.body.get(at - 2) == Some(&b'\r') {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The body's first line ending (CRLF when it has none).
    fn first_eol(&self) -> &'static str {
        match memchr::memchr(b'\n', self.body) {
            Some(i) => self.eol_before(i + 1),
            None => "\r\n",
        }
    }

    /// Physical lines of the original body, counted as the parser counts them.
    fn line_count(&self) -> usize {
        let nl = memchr::memchr_iter(b'\n', self.body).count();
        nl + usize::from(self.body.last().is_some_and(|b| *b != b'\n'))
    }

    /// Whether a section has (and keeps) an attribute of `class`, parsed or inserted.
    fn section_has(&self, section: Section, class: Class) -> bool {
        let removed = |i: usize| {
            self.edits
                .iter()
                .any(|e| e.live() && e.what == What::Remove(section, i))
        };
        let parsed = self.attributes(section).is_some_and(|a| {
            a.iter()
                .enumerate()
                .any(|(i, a)| Class::of(a.name) == class && !removed(i))
        });
        parsed
            || self
                .edits
                .iter()
                .any(|e| e.live() && e.what == What::Insert(section, class))
    }

    /// A change inside one line, checked against the line's length limit.
    fn push_field(
        &mut self,
        start: usize,
        end: usize,
        text: impl FnOnce(&mut String),
    ) -> Result<(), SdpEditError> {
        let (line, text_end, _) = self.line_at(start);
        self.atomic(|e| {
            e.push(start, end, line, What::Field, text)?;
            // The line as it now reads: its text with every live edit on it.
            let (mut added, mut removed) = (text_end - line, 0);
            for x in e.edits.iter().filter(|x| x.live() && x.line == line) {
                if x.what == What::Field {
                    added += x.text_len();
                    removed += x.end - x.start;
                }
            }
            if added.saturating_sub(removed) > e.limits.max_line_len {
                return Err(SdpEditError::OverLimit);
            }
            Ok(())
        })
    }

    /// Records an edit, refusing overlaps (see the module documentation).
    fn push(
        &mut self,
        start: usize,
        end: usize,
        line: usize,
        what: What,
        text: impl FnOnce(&mut String),
    ) -> Result<(), SdpEditError> {
        let mut replaces = None;
        for (i, e) in self.edits.iter().enumerate().filter(|(_, e)| e.live()) {
            match (what, e.what) {
                // New lines go between lines, never inside one.
                (What::Insert(..), _) | (_, What::Insert(..)) => {}
                (What::Field, What::Field) | (What::Remove(..), What::Remove(..))
                    if (e.start, e.end) == (start, end) =>
                {
                    replaces = Some(i);
                }
                (What::Field, What::Field) => {
                    let overlap = if start == end {
                        e.start < start && start < e.end
                    } else if e.start == e.end {
                        start < e.start && e.start < end
                    } else {
                        start < e.end && e.start < end
                    };
                    if overlap {
                        return Err(SdpEditError::Overlap);
                    }
                }
                // Removals are whole lines: anything else on the line overlaps.
                _ if e.line == line => return Err(SdpEditError::Overlap),
                _ => {}
            }
        }
        let from = self.text.len();
        text(&mut self.text);
        let index = self.edits.len();
        if let Some(old) = replaces.and_then(|i| self.edits.get_mut(i)) {
            old.superseded_by = Some(index);
        }
        self.edits.push(Edit {
            start,
            end,
            line,
            text: (from, self.text.len()),
            what,
            superseded_by: None,
        });
        Ok(())
    }
}

fn addr_type(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IP4" } else { "IP6" }
}

fn write_ip(t: &mut String, a: IpAddr) {
    // Writing to a String cannot fail.
    let _ = write!(t, "{a}");
}

/// Text that stays on its line: no CR, LF or NUL (the parser refuses NUL and stray CR).
fn check_text(s: &str) -> Result<(), SdpEditError> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(SdpEditError::InvalidText);
    }
    Ok(())
}

/// One space-separated field: not empty, no space.
fn check_token(s: &str) -> Result<(), SdpEditError> {
    check_text(s)?;
    if s.is_empty() || s.contains(' ') {
        return Err(SdpEditError::InvalidText);
    }
    Ok(())
}

/// An attribute value: line text, and a real role for `a=setup`.
fn check_value(name: &str, value: Option<&str>) -> Result<(), SdpEditError> {
    if let Some(v) = value {
        check_text(v)?;
    }
    if name == "setup" && value.and_then(Setup::parse).is_none() {
        return Err(SdpEditError::InvalidText);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::{AddrType, parse};
    use proptest::prelude::*;

    const BODY: &str = "v=0\r\no=pbxuser 53655765 2353687637 IN IP4 10.0.0.10\r\ns=Asterisk PBX\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\na=tool:x\r\nm=audio 10000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\nm=video 0/2 RTP/AVP 31\r\nc=IN IP4 233.252.0.1/127/3\r\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn text(e: SdpEdit<'_>) -> String {
        String::from_utf8(e.finish()).unwrap()
    }

    #[test]
    fn nothing_edited_is_the_body_as_it_was() {
        for body in [
            BODY,
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\nt=0 0",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\ns=x\r\n\r\n",
        ] {
            let e = SdpEdit::new(body.as_bytes()).unwrap();
            assert!(!e.is_edited());
            assert_eq!(e.finish(), body.as_bytes());
        }
        assert!(SdpEdit::new(b"not sdp").is_err());
    }

    #[test]
    fn origin_and_session_name_and_nothing_else() {
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_origin_username("-").unwrap();
        e.set_origin_address(ip("192.0.2.1")).unwrap();
        e.set_session_name("-").unwrap();
        assert_eq!(
            e.sdp().origin.username,
            "pbxuser",
            "the model is the original"
        );
        assert_eq!(
            text(e),
            BODY.replace(
                "o=pbxuser 53655765 2353687637 IN IP4 10.0.0.10\r\ns=Asterisk PBX",
                "o=- 53655765 2353687637 IN IP4 192.0.2.1\r\ns=-"
            )
        );
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_origin_address(ip("2001:db8::1")).unwrap();
        assert!(text(e).contains("\r\no=pbxuser 53655765 2353687637 IN IP6 2001:db8::1\r\n"));
        // Odd spacing stays as it was; only the fields change.
        let odd = "v=0\no=a  1 1 IN  IP4 1.2.3.4 \ns=\nt=0 0\n";
        let mut e = SdpEdit::new(odd.as_bytes()).unwrap();
        e.set_origin_username("-").unwrap();
        e.set_origin_address(ip("192.0.2.9")).unwrap();
        e.set_session_name("-").unwrap();
        assert_eq!(text(e), "v=0\no=-  1 1 IN  IP4 192.0.2.9 \ns=-\nt=0 0\n");
    }

    #[test]
    fn connections_and_ports() {
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_connection_address(Section::Session, ip("192.0.2.1"))
            .unwrap();
        e.set_connection_address(Section::Media(1), ip("2001:db8::2"))
            .unwrap();
        e.set_media_port(0, 40000).unwrap();
        e.set_media_port(1, 7).unwrap();
        assert_eq!(
            e.set_connection_address(Section::Media(0), ip("192.0.2.1")),
            Err(SdpEditError::NotFound),
            "no c= of its own"
        );
        assert_eq!(e.set_media_port(2, 1), Err(SdpEditError::NotFound));
        let out = text(e);
        assert!(out.contains("\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"), "{out}");
        assert!(out.contains("\r\nm=audio 40000 RTP/AVP 0 8\r\n"), "{out}");
        assert!(
            out.ends_with("\r\nm=video 7/2 RTP/AVP 31\r\nc=IN IP6 2001:db8::2\r\n"),
            "{out}"
        );
        let sdp = parse(out.as_bytes()).unwrap();
        assert_eq!(sdp.media[1].port_count, Some(2));
        assert_eq!(sdp.media[1].connection.unwrap().ttl, None);
    }

    #[test]
    fn attributes_removed_inserted_and_changed() {
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        let s = Section::Session;
        let m0 = Section::Media(0);
        assert_eq!(e.find_attribute(m0, "sendrecv"), Some(1));
        e.remove_attribute(s, 0).unwrap();
        e.insert_attribute(s, "x-gw", Some("1")).unwrap();
        e.set_attribute_value(m0, 0, Some("8 PCMA/8000")).unwrap();
        e.insert_attribute(m0, "ptime", Some("20")).unwrap();
        e.insert_attribute(Section::Media(1), "inactive", None)
            .unwrap();
        e.insert_attribute(m0, "x-second", None).unwrap();
        let out = text(e);
        assert_eq!(
            out,
            "v=0\r\no=pbxuser 53655765 2353687637 IN IP4 10.0.0.10\r\ns=Asterisk PBX\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\na=x-gw:1\r\nm=audio 10000 RTP/AVP 0 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=ptime:20\r\na=x-second\r\nm=video 0/2 RTP/AVP 31\r\nc=IN IP4 233.252.0.1/127/3\r\na=inactive\r\n"
        );
        // A value added to a bare attribute, and one taken away.
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_attribute_value(m0, 1, Some("x")).unwrap();
        e.set_attribute_value(s, 0, None).unwrap();
        let out = text(e);
        assert!(out.contains("\r\na=tool\r\n") && out.contains("\r\na=sendrecv:x\r\n"));
    }

    #[test]
    fn line_endings_follow_the_neighbours() {
        // LF body, no final line ending, blank lines at the end of a section.
        let body = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\nt=0 0\n\n\nm=audio 1 RTP/AVP 0\na=x";
        let mut e = SdpEdit::new(body.as_bytes()).unwrap();
        e.insert_attribute(Section::Session, "s1", None).unwrap();
        e.insert_attribute(Section::Media(0), "m1", None).unwrap();
        e.insert_attribute(Section::Media(0), "m2", Some("v"))
            .unwrap();
        assert_eq!(
            text(e),
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\nt=0 0\na=s1\n\n\nm=audio 1 RTP/AVP 0\na=x\na=m1\na=m2:v"
        );
        // A removed unterminated last line: the new one follows without a blank line.
        let mut e = SdpEdit::new(body.as_bytes()).unwrap();
        e.remove_attribute(Section::Media(0), 0).unwrap();
        e.insert_attribute(Section::Media(0), "m1", None).unwrap();
        e.set_session_name("-").unwrap();
        assert_eq!(
            text(e),
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n\n\nm=audio 1 RTP/AVP 0\na=m1"
        );
        // Mixed endings: each line keeps its own; a new one takes the one before it.
        let mixed = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\ns=\r\nt=0 0\n";
        let mut e = SdpEdit::new(mixed.as_bytes()).unwrap();
        e.set_origin_username("gw").unwrap();
        e.insert_attribute(Section::Session, "a", None).unwrap();
        assert_eq!(
            text(e),
            "v=0\r\no=gw 1 1 IN IP4 1.2.3.4\ns=\r\nt=0 0\na=a\n"
        );
    }

    #[test]
    fn overlaps_are_refused_or_the_later_edit_wins() {
        let m0 = Section::Media(0);
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_attribute_value(m0, 0, Some("1 a/1")).unwrap();
        e.set_attribute_value(m0, 0, Some("2 b/2")).unwrap();
        assert_eq!(e.remove_attribute(m0, 0), Err(SdpEditError::Overlap));
        e.remove_attribute(m0, 1).unwrap();
        e.remove_attribute(m0, 1).unwrap();
        assert_eq!(
            e.set_attribute_value(m0, 1, Some("x")),
            Err(SdpEditError::Overlap)
        );
        e.set_session_name("one").unwrap();
        e.set_session_name("two").unwrap();
        let out = text(e);
        assert!(out.contains("\r\ns=two\r\n"), "{out}");
        assert!(
            out.contains("\r\nm=audio 10000 RTP/AVP 0 8\r\na=rtpmap:2 b/2\r\nm=video"),
            "{out}"
        );
        // An empty value replaced twice is replaced, not appended to.
        let body = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\na=x";
        let mut e = SdpEdit::new(body.as_bytes()).unwrap();
        e.set_session_name("a").unwrap();
        e.set_session_name("b").unwrap();
        e.set_attribute_value(Section::Session, 0, Some("1"))
            .unwrap();
        e.insert_attribute(Section::Session, "y", None).unwrap();
        e.set_attribute_value(Section::Session, 0, Some("2"))
            .unwrap();
        assert_eq!(text(e), "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=b\na=x:2\na=y");
    }

    #[test]
    fn what_would_not_parse_is_refused_and_changes_nothing() {
        let s = Section::Session;
        let m0 = Section::Media(0);
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        for bad in ["a\r\nb", "a\nb", "a\0b", "x\r"] {
            assert_eq!(e.set_session_name(bad), Err(SdpEditError::InvalidText));
            assert_eq!(
                e.set_attribute_value(m0, 0, Some(bad)),
                Err(SdpEditError::InvalidText)
            );
            assert_eq!(
                e.insert_attribute(s, "x", Some(bad)),
                Err(SdpEditError::InvalidText)
            );
        }
        for bad in ["", "a b", "a\n"] {
            assert_eq!(e.set_origin_username(bad), Err(SdpEditError::InvalidText));
        }
        for bad in ["", "a b", "a:b", "é"] {
            assert_eq!(
                e.insert_attribute(s, bad, None),
                Err(SdpEditError::InvalidText)
            );
        }
        assert_eq!(
            e.insert_attribute(s, "setup", Some("sometimes")),
            Err(SdpEditError::InvalidText)
        );
        assert_eq!(
            e.insert_attribute(m0, "sendonly", None),
            Err(SdpEditError::Conflict),
            "the section has a=sendrecv"
        );
        assert_eq!(e.remove_attribute(m0, 7), Err(SdpEditError::NotFound));
        assert_eq!(
            e.insert_attribute(Section::Media(5), "x", None),
            Err(SdpEditError::NotFound)
        );
        assert!(!e.is_edited());
        // Once the direction goes, another may come; a=setup once per section.
        e.remove_attribute(m0, 1).unwrap();
        e.insert_attribute(m0, "sendonly", None).unwrap();
        e.insert_attribute(m0, "setup", Some("actpass")).unwrap();
        assert_eq!(
            e.insert_attribute(m0, "setup", Some("active")),
            Err(SdpEditError::Conflict)
        );
        e.insert_attribute(s, "setup", Some("active")).unwrap();
        let out = text(e);
        let sdp = parse(out.as_bytes()).unwrap();
        assert_eq!(
            sdp.direction_of(&sdp.media[0]),
            super::super::Direction::SendOnly
        );
    }

    #[test]
    fn limits_hold_after_edits() {
        let limits = SdpLimits {
            max_lines: 8,
            max_media: 2,
            max_attributes: 2,
            max_line_len: 30,
        };
        let body = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\nt=0 0\na=x\n";
        let mut e = SdpEdit::with_limits(body.as_bytes(), &limits).unwrap();
        assert_eq!(
            e.set_session_name(&"n".repeat(29)),
            Err(SdpEditError::OverLimit)
        );
        e.set_session_name(&"n".repeat(28)).unwrap();
        // "o=- 1 1 IN IP6 " and 20 bytes of address: 35, over 30.
        assert_eq!(
            e.set_origin_address(ip("2001:db8:1:2:3:4:5:6")),
            Err(SdpEditError::OverLimit)
        );
        e.insert_attribute(Section::Session, "y", None).unwrap();
        assert_eq!(
            e.insert_attribute(Section::Session, "z", None),
            Err(SdpEditError::OverLimit)
        );
        e.remove_attribute(Section::Session, 0).unwrap();
        e.insert_attribute(Section::Session, "z", None).unwrap();
        assert_eq!(
            e.insert_attribute(Section::Session, "long", Some(&"v".repeat(30))),
            Err(SdpEditError::OverLimit)
        );
        let out = e.finish();
        let sdp = parse_with(&out, &limits).unwrap();
        assert_eq!(
            sdp.origin.address, "1.2.3.4",
            "the refused edit left nothing"
        );
        assert_eq!(sdp.attributes.len(), 2);
        // Lines: 5 + 3 = 8 at most.
        let mut e = SdpEdit::with_limits(body.as_bytes(), &limits).unwrap();
        e.remove_attribute(Section::Session, 0).unwrap();
        for name in ["a", "b"] {
            e.insert_attribute(Section::Session, name, None).unwrap();
        }
        let m = SdpLimits {
            max_attributes: 10,
            ..limits
        };
        let mut e = SdpEdit::with_limits(body.as_bytes(), &m).unwrap();
        for name in ["a", "b", "c"] {
            e.insert_attribute(Section::Session, name, None).unwrap();
        }
        assert_eq!(
            e.insert_attribute(Section::Session, "d", None),
            Err(SdpEditError::OverLimit)
        );
        assert!(parse_with(&e.finish(), &m).is_ok());
    }

    #[test]
    fn rollback_undoes_a_failed_rewrite() {
        let mut e = SdpEdit::new(BODY.as_bytes()).unwrap();
        e.set_session_name("kept").unwrap();
        let mark = e.mark();
        e.set_session_name("undone").unwrap();
        e.insert_attribute(Section::Session, "undone", None)
            .unwrap();
        e.rollback(mark);
        let out = text(e.clone());
        assert!(
            out.contains("\r\ns=kept\r\n") && !out.contains("undone"),
            "{out}"
        );
        e.rollback(mark);
        e.set_session_name("again").unwrap();
        assert!(text(e).contains("\r\ns=again\r\n"));
    }

    // === properties ===

    const NAMES: &[&str] = &[
        "tool", "group", "rtpmap", "x-a", "sendonly", "inactive", "setup",
    ];

    /// At most one direction and one `a=setup` per section, as the parser wants.
    fn once_each(mut attrs: Vec<String>) -> Vec<String> {
        let (mut dir, mut setup) = (false, false);
        attrs.retain(|a| {
            let flag = match a.as_str() {
                "a=sendonly" | "a=inactive" => &mut dir,
                "a=setup:active" => &mut setup,
                _ => return true,
            };
            !std::mem::replace(flag, true)
        });
        attrs
    }

    /// A valid SDP body: sections of lines, each line with its own ending.
    fn body() -> impl Strategy<Value = String> {
        let attr = (0..NAMES.len(), "[ -~]{0,12}").prop_map(|(i, v)| {
            let name = NAMES[i];
            match name {
                "setup" => "a=setup:active".to_owned(),
                "sendonly" | "inactive" => format!("a={name}"),
                _ if v.is_empty() => format!("a={name}"),
                _ => format!("a={name}:{v}"),
            }
        });
        let conn = prop_oneof![
            Just(None),
            Just(Some("c=IN IP4 10.0.0.1".to_owned())),
            Just(Some("c=IN IP4 233.252.0.1/127/2".to_owned())),
            Just(Some("c=IN IP6 ff15::101/3".to_owned())),
        ];
        let media = (
            "(audio|video)",
            0..70000u32,
            proptest::option::of(1..4u8),
            conn.clone(),
            proptest::collection::vec(attr.clone(), 0..5).prop_map(once_each),
        )
            .prop_map(|(kind, port, count, c, attrs)| {
                let port = port.min(65535);
                let count = count.map(|n| format!("/{n}")).unwrap_or_default();
                let mut lines = vec![format!("m={kind} {port}{count} RTP/AVP 0 8")];
                lines.extend(c);
                lines.extend(attrs);
                lines
            });
        (
            "[a-z0-9-]{1,8}",
            "[ -~]{0,16}",
            conn,
            proptest::collection::vec(attr, 0..5).prop_map(once_each),
            proptest::collection::vec(media, 0..4),
            proptest::collection::vec(any::<bool>(), 40),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(user, name, c, attrs, media, crlf, last, blank)| {
                let mut lines = vec![
                    "v=0".to_owned(),
                    format!("o={user} 1 2 IN IP4 192.0.2.7"),
                    format!("s={name}"),
                ];
                lines.extend(c);
                lines.push("t=0 0".to_owned());
                lines.extend(attrs);
                lines.extend(media.into_iter().flatten());
                if blank {
                    lines.push(String::new());
                }
                let n = lines.len();
                let mut out = String::new();
                for (i, l) in lines.into_iter().enumerate() {
                    out.push_str(&l);
                    if i + 1 < n || last {
                        out.push_str(if crlf[i % crlf.len()] { "\r\n" } else { "\n" });
                    }
                }
                out
            })
    }

    #[derive(Clone, Debug)]
    enum Op {
        User(String),
        OriginAddr(IpAddr),
        Name(String),
        Conn(usize, IpAddr),
        Port(usize, u16),
        Remove(usize, usize),
        Insert(usize, &'static str, Option<String>),
        Value(usize, usize, Option<String>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let addr = prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
        ];
        let value = prop_oneof![
            8 => "[ -~]{0,12}".prop_map(Some),
            1 => Just(None),
            1 => Just(Some("bad\r\nline".to_owned())),
            1 => Just(Some("active".to_owned())),
        ];
        let ins = prop_oneof![
            Just("x-ins"),
            Just("x-ins2"),
            Just("sendrecv"),
            Just("setup"),
            Just("bad name"),
        ];
        prop_oneof![
            prop_oneof!["[a-z0-9-]{1,8}", Just("a b".to_owned())].prop_map(Op::User),
            addr.clone().prop_map(Op::OriginAddr),
            prop_oneof!["[ -~]{0,12}", Just("x\ny".to_owned())].prop_map(Op::Name),
            (0..5usize, addr).prop_map(|(s, a)| Op::Conn(s, a)),
            (0..4usize, any::<u16>()).prop_map(|(m, p)| Op::Port(m, p)),
            (0..5usize, 0..6usize).prop_map(|(s, i)| Op::Remove(s, i)),
            (0..5usize, ins, value.clone()).prop_map(|(s, n, v)| Op::Insert(s, n, v)),
            (0..5usize, 0..6usize, value).prop_map(|(s, i, v)| Op::Value(s, i, v)),
        ]
    }

    /// A `c=` line's type, address, TTL and count.
    type Conn = (AddrType, String, Option<u8>, Option<u32>);

    /// What the edited body must say: every value of the original, with the accepted edits.
    #[derive(Clone, Debug, PartialEq)]
    struct Model {
        user: String,
        origin: (String, String),
        name: String,
        conns: Vec<Option<Conn>>,
        ports: Vec<(u16, Option<u16>)>,
        /// Per section: (name, value, removed), then the inserted ones.
        attrs: Vec<Vec<(String, Option<String>, bool)>>,
        inserted: Vec<Vec<(String, Option<String>)>>,
    }

    fn sections(sdp: &Sdp<'_>) -> usize {
        sdp.media.len() + 1
    }

    fn section(s: usize) -> Section {
        if s == 0 {
            Section::Session
        } else {
            Section::Media(s - 1)
        }
    }

    impl Model {
        fn of(sdp: &Sdp<'_>) -> Self {
            let conn = |c: Option<&crate::sdp::Connection<'_>>| {
                c.map(|c| (c.addr_type, c.address.to_owned(), c.ttl, c.count))
            };
            let attrs = |a: &[Attribute<'_>]| {
                a.iter()
                    .map(|a| (a.name.to_owned(), a.value.map(str::to_owned), false))
                    .collect()
            };
            Self {
                user: sdp.origin.username.to_owned(),
                origin: (
                    sdp.origin.addr_type.to_owned(),
                    sdp.origin.address.to_owned(),
                ),
                name: sdp.session_name.to_owned(),
                conns: std::iter::once(conn(sdp.connection.as_ref()))
                    .chain(sdp.media.iter().map(|m| conn(m.connection.as_ref())))
                    .collect(),
                ports: sdp.media.iter().map(|m| (m.port, m.port_count)).collect(),
                attrs: std::iter::once(attrs(&sdp.attributes))
                    .chain(sdp.media.iter().map(|m| attrs(&m.attributes)))
                    .collect(),
                inserted: vec![Vec::new(); sections(sdp)],
            }
        }

        /// The same values, read back from a parsed body.
        fn read(sdp: &Sdp<'_>, inserted: &[usize]) -> Self {
            let mut m = Self::of(sdp);
            for (s, n) in inserted.iter().enumerate() {
                let attrs = &mut m.attrs[s];
                let new = attrs.split_off(attrs.len() - n);
                m.inserted[s] = new.into_iter().map(|(n, v, _)| (n, v)).collect();
            }
            m
        }

        /// What the parser would give: removed attributes gone, inserted ones at the end.
        fn expected(&self) -> Self {
            let mut m = self.clone();
            for a in &mut m.attrs {
                a.retain(|x| !x.2);
            }
            m
        }
    }

    /// Each original line's section: 0 for the session, k for the k-th `m=`.
    fn sections_of(b: &[u8]) -> Vec<usize> {
        let mut s = 0;
        lines(b)
            .into_iter()
            .map(|l| {
                s += usize::from(l.starts_with(b"m="));
                s
            })
            .collect()
    }

    /// Applies `op` to the editor and, when it is accepted, to the model; the original lines
    /// it changes or removes are noted in `touched` / `removed`.
    fn apply(
        e: &mut SdpEdit<'_>,
        m: &mut Model,
        op: &Op,
        (touched, removed): (&mut Vec<usize>, &mut Vec<usize>),
    ) -> Result<(), SdpEditError> {
        let n = sections(e.sdp());
        let line_of = |line: u32| usize::try_from(line).unwrap() - 1;
        let orig = lines(e.body());
        let secs = sections_of(e.body());
        let c_line =
            |s: usize| (0..orig.len()).find(|&i| secs[i] == s && orig[i].starts_with(b"c="));
        let attr_line = |e: &SdpEdit<'_>, s: usize, i: usize| {
            line_of(e.attributes(section(s)).unwrap()[i].line)
        };
        match op {
            Op::User(u) => {
                e.set_origin_username(u)?;
                m.user.clone_from(u);
                touched.push(1);
            }
            Op::OriginAddr(a) => {
                e.set_origin_address(*a)?;
                m.origin = (addr_type(*a).to_owned(), a.to_string());
                touched.push(1);
            }
            Op::Name(s) => {
                e.set_session_name(s)?;
                m.name.clone_from(s);
                touched.push(2);
            }
            Op::Conn(s, a) => {
                let s = s % n;
                e.set_connection_address(section(s), *a)?;
                let t = if a.is_ipv4() {
                    AddrType::Ip4
                } else {
                    AddrType::Ip6
                };
                m.conns[s] = Some((t, a.to_string(), None, None));
                touched.extend(c_line(s));
            }
            Op::Port(i, p) => {
                e.set_media_port(*i, *p)?;
                m.ports[*i].0 = *p;
                touched.push(line_of(e.sdp().media[*i].line));
            }
            Op::Remove(s, i) => {
                let s = s % n;
                e.remove_attribute(section(s), *i)?;
                m.attrs[s][*i].2 = true;
                removed.push(attr_line(e, s, *i));
            }
            Op::Insert(s, name, v) => {
                let s = s % n;
                e.insert_attribute(section(s), name, v.as_deref())?;
                m.inserted[s].push(((*name).to_owned(), v.clone()));
            }
            Op::Value(s, i, v) => {
                let s = s % n;
                e.set_attribute_value(section(s), *i, v.as_deref())?;
                m.attrs[s][*i].1.clone_from(v);
                touched.push(attr_line(e, s, *i));
            }
        }
        Ok(())
    }

    /// Lines with their endings.
    fn lines(b: &[u8]) -> Vec<&[u8]> {
        b.split_inclusive(|c| *c == b'\n').collect()
    }

    /// A line's text and its ending.
    fn strip(l: &[u8]) -> (&[u8], &[u8]) {
        let t = l.strip_suffix(b"\n").unwrap_or(l);
        let t = t.strip_suffix(b"\r").unwrap_or(t);
        (t, &l[t.len()..])
    }

    proptest! {
        #[test]
        fn unedited_bodies_come_out_byte_identical(b in body()) {
            let e = SdpEdit::new(b.as_bytes()).unwrap();
            prop_assert_eq!(e.finish(), b.as_bytes());
        }

        #[test]
        fn edits_show_exactly_and_touch_no_other_line(
            b in body(),
            ops in proptest::collection::vec(op(), 0..12),
        ) {
            let mut e = SdpEdit::new(b.as_bytes()).unwrap();
            let mut model = Model::of(e.sdp());
            let (mut touched, mut removed) = (Vec::new(), Vec::new());
            for op in &ops {
                let before = e.clone().finish();
                let m = e.mark();
                if apply(&mut e, &mut model, op, (&mut touched, &mut removed)).is_err() {
                    prop_assert_eq!(e.mark(), m, "a refused edit left something");
                    prop_assert_eq!(e.clone().finish(), before);
                }
            }
            let out = e.finish();
            let sdp = parse(&out);
            prop_assert!(sdp.is_ok(), "{:?} -> {:?}: {}", ops, sdp, String::from_utf8_lossy(&out));
            let sdp = sdp.unwrap();
            let counts: Vec<usize> = model.inserted.iter().map(Vec::len).collect();
            prop_assert_eq!(Model::read(&sdp, &counts), model.expected());

            // Line by line: removed lines gone, untouched ones as they were (ending
            // included), touched ones with their ending, new ones exactly where inserted:
            // after the last line of their section that is not blank.
            let orig = lines(b.as_bytes());
            let new = lines(&out);
            let secs = sections_of(b.as_bytes());
            let last = |s: usize| {
                (0..orig.len()).rev().find(|&i| secs[i] == s && !strip(orig[i]).0.is_empty())
            };
            let mut j = 0;
            for (i, l) in orig.iter().enumerate() {
                if !removed.contains(&i) {
                    let n = new[j];
                    j += 1;
                    if !touched.contains(&i) {
                        prop_assert_eq!(strip(n).0, strip(l).0, "line {} changed", i);
                    }
                    if !strip(l).1.is_empty() {
                        prop_assert_eq!(strip(n).1, strip(l).1, "line {} lost its ending", i);
                    }
                }
                if last(secs[i]) == Some(i) {
                    for (name, v) in &model.inserted[secs[i]] {
                        let want = match v {
                            Some(v) => format!("a={name}:{v}"),
                            None => format!("a={name}"),
                        };
                        prop_assert_eq!(strip(new[j]).0, want.as_bytes());
                        if !strip(l).1.is_empty() {
                            prop_assert_eq!(strip(new[j]).1, strip(l).1, "new line's ending");
                        }
                        j += 1;
                    }
                }
            }
            prop_assert_eq!(j, new.len());
        }
    }
}
