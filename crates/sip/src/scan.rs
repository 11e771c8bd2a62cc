//! Byte classes of the RFC 3261 §25 grammar and a small cursor used by every typed parser.
//!
//! One lookup table answers "may this byte appear in a token / URI user / parameter …": the
//! parsers are loops over that table, never regular expressions, so their cost is linear and
//! their behaviour on hostile input is easy to reason about.

/// `token` characters (RFC 3261 §25.1).
pub(crate) const TOKEN: u16 = 1 << 0;
/// `word` characters (Call-ID): token plus `()<>:\"/[]?{}`.
pub(crate) const WORD: u16 = 1 << 1;
/// `unreserved` = alphanum / mark.
pub(crate) const UNRESERVED: u16 = 1 << 2;
/// characters allowed unescaped in a URI user part (unreserved / user-unreserved).
pub(crate) const USER: u16 = 1 << 3;
/// characters allowed unescaped in a URI password.
pub(crate) const PASSWORD: u16 = 1 << 4;
/// `paramchar` without the escape: param-unreserved / unreserved.
pub(crate) const PARAM: u16 = 1 << 5;
/// `hname` / `hvalue` characters without the escape.
pub(crate) const HNV: u16 = 1 << 6;
/// hostname characters (alphanum, `-`, `.`); IPv6 references are handled apart.
pub(crate) const HOST: u16 = 1 << 7;
/// `uric` of RFC 2396 (absolute URIs with a scheme we do not know), without the escape.
pub(crate) const URIC: u16 = 1 << 8;
/// ASCII digits.
pub(crate) const DIGIT: u16 = 1 << 9;
/// hexadecimal digits.
pub(crate) const HEX: u16 = 1 << 10;
/// characters a tel URI number may hold: digits, hex digits, `*#+` and visual separators.
pub(crate) const TEL: u16 = 1 << 11;

// Indexing a 256-entry table with a value below 256 in a const fn: cannot panic.
#[allow(clippy::indexing_slicing)]
const fn build_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alpha = c.is_ascii_alphabetic();
        let digit = c.is_ascii_digit();
        let alnum = alpha || digit;
        let mark = matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let mut f = 0u16;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            f |= TOKEN | WORD;
        }
        if matches!(
            c,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        ) {
            f |= WORD;
        }
        if alnum || mark {
            f |= UNRESERVED | USER | PASSWORD | PARAM | HNV | URIC;
        }
        if matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            f |= USER;
        }
        if matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
            f |= PASSWORD;
        }
        if matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            f |= PARAM;
        }
        if matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            f |= HNV;
        }
        if alnum || c == b'-' || c == b'.' {
            f |= HOST;
        }
        if matches!(
            c,
            b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
        ) {
            f |= URIC;
        }
        if digit {
            f |= DIGIT | TEL;
        }
        if c.is_ascii_hexdigit() {
            f |= HEX | TEL;
        }
        if matches!(c, b'*' | b'#' | b'+' | b'-' | b'.' | b'(' | b')') {
            f |= TEL;
        }
        t[i] = f;
        i += 1;
    }
    t
}

static TABLE: [u16; 256] = build_table();

/// Does byte `b` belong to class `class`?
#[inline]
pub(crate) fn is(b: u8, class: u16) -> bool {
    TABLE.get(usize::from(b)).is_some_and(|f| f & class != 0)
}

/// Is every byte of `s` in `class`, with `%HH` escapes allowed when `escapes` is set?
pub(crate) fn all_in(s: &[u8], class: u16, escapes: bool) -> bool {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if escapes && b == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(&h), Some(&l)) if is(h, HEX) && is(l, HEX) => i += 3,
                _ => return false,
            }
        } else if is(b, class) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `str::split_once` for an ASCII byte, by a plain loop: URIs and header parameters are a
/// few dozen bytes, where the generic char searcher's set-up costs more than the search.
/// Slicing at an ASCII byte is always on a char boundary.
pub(crate) fn split_once_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|c| c == b)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Is `s` a non-empty token?
#[inline]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && all_in(s.as_bytes(), TOKEN, false)
}

/// Linear white space as it survives in a header value: spaces, tabs and the CRLF of a fold.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space (including folds) from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// `n` in decimal, written into `buf` without allocating (a Content-Length per answer).
pub(crate) fn format_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut at = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        at -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(at..)
        .and_then(|d| std::str::from_utf8(d).ok())
        .unwrap_or("0")
}

/// Parses an unsigned decimal number of at most `max`, with leading zeros allowed (RFC 3261
/// §25.1 `1*DIGIT`). Checked arithmetic: "-999", "five" and overflow are all `None`.
pub(crate) fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// A cursor over a header value. Folds (CRLF followed by white space) count as white space:
/// the header splitter guarantees that no other CR or LF reaches a value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    /// Current position in bytes from the start of the value.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Text between two positions of this cursor.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    /// Skips linear white space; returns whether any was skipped.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_lws(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos != start
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `SWS b SWS` (the SEMI / COMMA / EQUAL / SLASH / COLON of §25.1).
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes bytes while they are in `class`; returns them.
    pub(crate) fn take_class(&mut self, class: u16) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is(b, class) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.slice(start, self.pos)
    }

    /// Consumes bytes while `f` holds.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if f(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.slice(start, self.pos)
    }

    /// A non-empty token, or `None` (position unchanged).
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_class(TOKEN);
        if t.is_empty() { None } else { Some(t) }
    }

    /// A quoted string starting at the cursor (which must be on `"`). Returns the text with its
    /// quotes, as written; escapes stay escaped (see [`unquote`]). `None` if unterminated or if a
    /// quoted-pair escapes CR or LF.
    pub(crate) fn quoted(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        let bytes = self.s.as_bytes();
        let mut i = self.pos;
        loop {
            match bytes.get(i) {
                None => {
                    self.pos = start;
                    return None;
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Some(self.slice(start, self.pos));
                }
                Some(b'\\') => match bytes.get(i + 1) {
                    Some(b'\r' | b'\n') | None => {
                        self.pos = start;
                        return None;
                    }
                    Some(_) => i += 2,
                },
                Some(_) => i += 1,
            }
        }
    }

    /// A token or a quoted string (a `gen-value` without hosts, which are tokens here).
    pub(crate) fn token_or_quoted(&mut self) -> Option<&'a str> {
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.token()
        }
    }
}

/// Removes the quotes of a quoted string and resolves its quoted-pairs. Text that is not quoted
/// is returned as is.
pub(crate) fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return std::borrow::Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes `%HH` escapes once (never recursively). Malformed escapes are kept literally: the
/// typed parsers have already rejected them where the grammar forbids them.
pub(crate) fn unescape(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex_val(*x)),
                b.get(i + 2).and_then(|x| hex_val(*x)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_token("INVITE"));
        assert!(is_token("!interesting-Method0123456789_*+`.%indeed'~"));
        assert!(!is_token("a b"));
        assert!(all_in(b"user%20x", USER, true));
        assert!(!all_in(b"user%2", USER, true));
        assert!(!all_in(b"us@er", USER, true));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0068", 255), Some(68));
        assert_eq!(parse_decimal("300", 255), None);
        assert_eq!(parse_decimal("-999", u64::MAX), None);
        assert_eq!(parse_decimal("36893488147419103232", u64::MAX), None);
        assert_eq!(parse_decimal("", 5), None);
    }

    #[test]
    fn quoting() {
        let mut c = Cursor::new(r#""J Rosenberg \\\""  <x"#);
        let q = c.quoted().unwrap();
        assert_eq!(q, r#""J Rosenberg \\\"""#);
        assert_eq!(unquote(q), r#"J Rosenberg \""#);
        let mut c = Cursor::new("\"open");
        assert!(c.quoted().is_none());
        assert_eq!(unescape("null-%00-null").as_ref(), b"null-\0-null");
        assert_eq!(unescape("%Z%45").as_ref(), b"%ZE");
    }
}
