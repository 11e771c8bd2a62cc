//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Path,
//! P-Asserted-Identity, P-Preferred-Identity, Remote-Party-ID, Refer-To, Reply-To
//! (RFC 3261 §20.10, §20.20, §20.39, §25.1).

use super::{HResult, Malformed, Params, list_sep, take_params};
use crate::scan::{self, Cursor, TOKEN};
use crate::uri::Uri;

/// `[display-name] <uri>` or a bare URI, with header parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written: a quoted string with its quotes, or tokens with their spacing.
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// The URI text as written.
    pub uri_text: &'a str,
    /// Whether the URI was in angle brackets (name-addr form).
    pub bracketed: bool,
    /// Header parameters (`tag`, `expires`, `q` …); never the URI's own parameters.
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// `tag`.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name with quotes and quoted-pairs removed.
    pub fn display_name(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.display.map(scan::unquote)
    }
}

/// One Contact value: `*` or an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, RFC 3261 §10.2.2).
    Star,
    /// An address with its parameters (`expires`, `q`, `+sip.instance`, `reg-id` …).
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// `expires` parameter, if present and a number.
    pub fn expires(&self) -> Option<u32> {
        match self {
            Self::Star => None,
            Self::Addr(a) => a
                .params
                .get("expires")
                .flatten()
                .and_then(super::parse_delta_seconds),
        }
    }

    /// `q` parameter as thousandths (0–1000).
    pub fn q(&self) -> Option<u16> {
        match self {
            Self::Star => None,
            Self::Addr(a) => a.params.get("q").flatten().and_then(parse_qvalue),
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What the context lets a value be.
#[derive(Clone, Copy)]
struct Form {
    /// A bare addr-spec (no angle brackets) is allowed (From, To, Contact, PAI …), not for
    /// Route/Record-Route/Path.
    addr_spec: bool,
}

/// Parses a single name-addr or addr-spec value (From, To, Refer-To, Reply-To …).
pub fn parse_name_addr(value: &str) -> HResult<NameAddr<'_>> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let na = parse_one(&mut c, Form { addr_spec: true })?;
    c.skip_lws();
    if c.at_end() { Ok(na) } else { Err(Malformed) }
}

/// Parses a comma-separated list of addresses. `addr_spec` says whether bare URIs are allowed
/// (true for P-Asserted-Identity and friends, false for Route, Record-Route, Path).
pub fn parse_name_addr_list<'a>(
    value: &'a str,
    addr_spec: bool,
    mut f: impl FnMut(NameAddr<'a>),
) -> HResult<()> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    loop {
        f(parse_one(&mut c, Form { addr_spec })?);
        if !list_sep(&mut c)? {
            return Ok(());
        }
    }
}

/// Parses a Contact row: `*` alone, or a list of addresses.
pub fn parse_contact_list<'a>(value: &'a str, mut f: impl FnMut(Contact<'a>)) -> HResult<()> {
    if scan::trim_lws(value) == "*" {
        f(Contact::Star);
        return Ok(());
    }
    parse_name_addr_list(value, true, |a| f(Contact::Addr(a)))
}

fn parse_one<'a>(c: &mut Cursor<'a>, form: Form) -> HResult<NameAddr<'a>> {
    let display = match c.peek() {
        Some(b'"') => {
            let q = c.quoted().ok_or(Malformed)?;
            c.skip_lws();
            if c.peek() != Some(b'<') {
                return Err(Malformed);
            }
            Some(q)
        }
        Some(b'<') => None,
        _ => display_tokens(c),
    };
    if c.eat(b'<') {
        // LAQUOT addr-spec RAQUOT: no white space inside the brackets (RFC 4475 badaspec).
        let uri_text = c.take_while(|b| b != b'>');
        if !c.eat(b'>') {
            return Err(Malformed);
        }
        let uri = Uri::parse(uri_text).map_err(|_| Malformed)?;
        let params = take_params(c)?;
        return Ok(NameAddr {
            display,
            uri,
            uri_text,
            bracketed: true,
            params,
        });
    }
    if display.is_some() || !form.addr_spec {
        return Err(Malformed);
    }
    // addr-spec: the URI runs to the first ';', ',' or white space; it may not hold '?'
    // (RFC 3261 §20.10: such URIs must use the bracketed form; RFC 4475 regbadct).
    let uri_text = c.take_while(|b| !matches!(b, b';' | b',' | b' ' | b'\t' | b'\r' | b'\n'));
    if uri_text.contains('?') {
        return Err(Malformed);
    }
    let uri = Uri::parse(uri_text).map_err(|_| Malformed)?;
    let params = take_params(c)?;
    Ok(NameAddr {
        display: None,
        uri,
        uri_text,
        bracketed: false,
        params,
    })
}

/// `*(token LWS)` followed by `<`: an unquoted display name. Leaves the cursor untouched and
/// returns `None` when what follows is not one.
fn display_tokens<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let mut probe = *c;
    let start = probe.pos();
    loop {
        let t = probe.take_class(TOKEN);
        if t.is_empty() {
            break;
        }
        let end = probe.pos();
        probe.skip_lws();
        if probe.peek() == Some(b'<') {
            *c = probe;
            return Some(probe.slice(start, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a =
            parse_name_addr(" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(a.tag(), Some("1918181833n"));
        assert!(!a.bracketed);
        let a = parse_name_addr(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(a.display_name().unwrap(), "J Rosenberg \\\"");
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display, Some("caller"));
        let a = parse_name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x")
            .unwrap();
        assert_eq!(a.display, Some("token1~` token2'+_ token3*%!.-"));
        let a = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(a.params.has("unknownparam"));
        assert!(a.uri.as_sip().unwrap().params.is_empty());
        let a = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(a.params.is_empty());
        assert!(parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
    }

    #[test]
    fn rejects() {
        assert!(parse_name_addr("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(parse_name_addr("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(parse_name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(parse_name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(parse_name_addr("\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(parse_name_addr("<sip:a@b> junk").is_err());
        let mut n = 0;
        assert!(parse_name_addr_list("sip:a@b", false, |_| n += 1).is_err());
    }

    #[test]
    fn contacts() {
        let mut v = Vec::new();
        parse_contact_list(
            "\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33",
            |c| v.push(c),
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].q(), Some(330));
        let mut v = Vec::new();
        parse_contact_list("<sip:a@x>;expires=60, sip:b@y;q=1", |c| v.push(c)).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].expires(), Some(60));
        assert_eq!(v[1].q(), Some(1000));
        let mut v = Vec::new();
        parse_contact_list(" * ", |c| v.push(c)).unwrap();
        assert_eq!(v, vec![Contact::Star]);
    }
}
