//! Typed views of header values, decoded on demand from the message's bytes.
//!
//! Each parser takes the value text of one header row (folds included; the splitter
//! guarantees that every CR/LF inside it belongs to a fold) and returns a view that borrows
//! from it. Parameters stay as written and are decoded when asked for, so parsing costs one
//! pass and no allocation.

mod auth;
mod misc;
mod name_addr;
mod via;

pub use auth::{Auth, AuthParams};
pub use misc::{
    CSeq, ContentType, Date, Identity, Reason, SessionExpires, format_date, parse_cseq, parse_date,
    parse_delta_seconds, parse_max_forwards, parse_tokens,
};
pub use name_addr::{Contact, NameAddr, parse_contact_list, parse_name_addr, parse_name_addr_list};
pub use via::{Transport, Via, parse_via_list};

use crate::scan::{self, Cursor, TOKEN};

/// A header value did not follow its grammar. Which header is known to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed header value")
    }
}

impl std::error::Error for Malformed {}

/// Result of a typed header parse.
pub type HResult<T> = Result<T, Malformed>;

/// Header parameters (`;name=value` after a header value), as written; decoded on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    pub(crate) fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The raw text, starting at the first `;` (empty if none).
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates `(name, value)`; a quoted value keeps its quotes (see [`Params::get_unquoted`]).
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.0),
        }
    }

    /// The first parameter named `name` (case-insensitive); `Some(None)` when it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Like [`Params::get`], with quotes and quoted-pairs removed.
    pub fn get_unquoted(&self, name: &str) -> Option<std::borrow::Cow<'a, str>> {
        self.get(name).flatten().map(scan::unquote)
    }

    /// Whether a parameter named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    c: Cursor<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        next_param(&mut self.c).ok().flatten()
    }
}

/// Characters of a parameter value that is not quoted: token / host (IPv6 included).
fn is_value_char(b: u8) -> bool {
    scan::is(b, TOKEN) || matches!(b, b':' | b'[' | b']')
}

/// Reads one `SEMI generic-param`; `Ok(None)` when the next thing is not a `;`.
fn next_param<'a>(c: &mut Cursor<'a>) -> HResult<Option<(&'a str, Option<&'a str>)>> {
    if !c.eat_sep(b';') {
        return Ok(None);
    }
    let name = c.token().ok_or(Malformed)?;
    if !c.eat_sep(b'=') {
        return Ok(Some((name, None)));
    }
    let value = if c.peek() == Some(b'"') {
        c.quoted().ok_or(Malformed)?
    } else {
        let v = c.take_while(is_value_char);
        if v.is_empty() {
            return Err(Malformed);
        }
        v
    };
    Ok(Some((name, Some(value))))
}

/// Consumes `*( SEMI generic-param )` and returns it as [`Params`].
pub(crate) fn take_params<'a>(c: &mut Cursor<'a>) -> HResult<Params<'a>> {
    let start = c.pos();
    let mut end = start;
    while next_param(c)?.is_some() {
        end = c.pos();
    }
    // Trailing white space after the last parameter belongs to the separator, not to it.
    let mut after = *c;
    after.skip_lws();
    let params = c.slice(start, end);
    *c = after;
    Ok(Params(scan::trim_lws(params)))
}

/// Moves past the `,` between list elements; `Ok(false)` at the end of the value.
pub(crate) fn list_sep(c: &mut Cursor<'_>) -> HResult<bool> {
    c.skip_lws();
    if c.at_end() {
        return Ok(false);
    }
    if c.eat(b',') {
        c.skip_lws();
        if c.at_end() {
            return Err(Malformed);
        }
        Ok(true)
    } else {
        Err(Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let mut c = Cursor::new(";   tag    = 1918181833n ;x;q=\"a;b\"");
        let p = take_params(&mut c).unwrap();
        assert!(c.at_end());
        assert_eq!(p.get("tag"), Some(Some("1918181833n")));
        assert_eq!(p.get("X"), Some(None));
        assert_eq!(p.get_unquoted("q").unwrap(), "a;b");
        let mut c = Cursor::new(";;,");
        assert!(take_params(&mut c).is_err());
        let mut c = Cursor::new(";received=2001:db8::9:255;rport");
        let p = take_params(&mut c).unwrap();
        assert_eq!(p.get("received"), Some(Some("2001:db8::9:255")));
    }
}
