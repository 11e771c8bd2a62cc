//! Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate
//! (RFC 3261 §20.7, §20.27, §20.28, §20.44, §25.1; RFC 7616; RFC 8760).
//!
//! One row is one challenge or one set of credentials: these headers are never split on
//! commas into several values (RFC 3261 §7.3.1), the commas separate parameters.

use std::borrow::Cow;

use super::{HResult, Malformed};
use crate::scan::{self, Cursor};

/// A challenge or credentials: scheme plus `name=value` parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Scheme as written (`Digest`).
    pub scheme: &'a str,
    /// Parameters.
    pub params: AuthParams<'a>,
}

/// Comma-separated `name=value` parameters, values as written (quoted ones keep quotes).
///
/// The pairs found while parsing are kept (up to [`KEPT`]): a digest check looks up ten of
/// them, and walking the whole list again for each was a twentieth of a REGISTER's cost.
#[derive(Clone, Copy, Debug)]
pub struct AuthParams<'a> {
    text: &'a str,
    pairs: [(&'a str, &'a str); KEPT],
    /// How many of `pairs` are filled; `None` when there were more than fit.
    kept: Option<u8>,
}

/// How many parameters [`AuthParams`] keeps decoded (Digest credentials carry about ten).
const KEPT: usize = 16;

impl PartialEq for AuthParams<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for AuthParams<'_> {}

impl<'a> AuthParams<'a> {
    /// Iterates `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut c = Cursor::new(self.text);
        std::iter::from_fn(move || {
            c.skip_lws();
            c.eat(b',');
            c.skip_lws();
            next_pair(&mut c).ok()
        })
    }

    /// The value of `name` (case-insensitive) as written.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let found = match self.kept {
            Some(n) => self
                .pairs
                .iter()
                .take(usize::from(n))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .copied(),
            None => self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)),
        };
        found.map(|(_, v)| v)
    }

    /// The value of `name`, unquoted.
    pub fn get_unquoted(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).map(scan::unquote)
    }
}

fn next_pair<'a>(c: &mut Cursor<'a>) -> HResult<(&'a str, &'a str)> {
    let name = c.token().ok_or(Malformed)?;
    if !c.eat_sep(b'=') {
        return Err(Malformed);
    }
    let value = c.token_or_quoted().ok_or(Malformed)?;
    Ok((name, value))
}

impl<'a> Auth<'a> {
    /// Parses one row. For `Digest`, a parameter given twice is an error: two `username`s or
    /// two `response`s are how credential-confusion attacks start.
    pub fn parse(value: &'a str) -> HResult<Self> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let scheme = c.token().ok_or(Malformed)?;
        if !c.skip_lws() {
            return Err(Malformed);
        }
        let start = c.pos();
        let mut names: [&str; 24] = [""; 24];
        let mut n = 0usize;
        let mut pairs = [("", ""); KEPT];
        let mut kept = Some(0u8);
        loop {
            let (name, value) = next_pair(&mut c)?;
            kept = match kept.map(usize::from) {
                Some(k) if k < KEPT => {
                    if let Some(slot) = pairs.get_mut(k) {
                        *slot = (name, value);
                    }
                    u8::try_from(k + 1).ok()
                }
                _ => None,
            };
            if scheme.eq_ignore_ascii_case("digest") {
                if names.iter().take(n).any(|x| x.eq_ignore_ascii_case(name)) {
                    return Err(Malformed);
                }
                *names.get_mut(n).ok_or(Malformed)? = name;
                n += 1;
            }
            let end = c.pos();
            c.skip_lws();
            if c.at_end() {
                return Ok(Self {
                    scheme,
                    params: AuthParams {
                        text: c.slice(start, end),
                        pairs,
                        kept,
                    },
                });
            }
            if !c.eat(b',') {
                return Err(Malformed);
            }
            c.skip_lws();
        }
    }

    /// Whether the scheme is Digest.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("digest")
    }

    /// `username`, unquoted.
    pub fn username(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("username")
    }

    /// `realm`, unquoted.
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("realm")
    }

    /// `nonce`, unquoted.
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("nonce")
    }

    /// `uri` (the digest-uri), unquoted.
    pub fn uri(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("uri")
    }

    /// `response`, unquoted.
    pub fn response(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("response")
    }

    /// `algorithm` (absent means MD5), unquoted: some clients quote it.
    pub fn algorithm(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("algorithm")
    }

    /// `cnonce`, unquoted.
    pub fn cnonce(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("cnonce")
    }

    /// `opaque`, unquoted.
    pub fn opaque(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("opaque")
    }

    /// `qop`, unquoted: one token in credentials, a list (`auth,auth-int`) in challenges.
    pub fn qop(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("qop")
    }

    /// `nc` (eight hex digits in valid credentials).
    pub fn nc(&self) -> Option<&'a str> {
        self.params.get("nc")
    }

    /// `stale=true` (case-insensitive) in a challenge.
    pub fn stale(&self) -> bool {
        self.params
            .get_unquoted("stale")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `domain`, unquoted (a space-separated URI list).
    pub fn domain(&self) -> Option<Cow<'a, str>> {
        self.params.get_unquoted("domain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let a = Auth::parse(
            "Digest username=\"bob\", realm=\"biloxi.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"89eb0059246c02b2f6ee02c7961d5ea3\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username().unwrap(), "bob");
        assert_eq!(a.uri().unwrap(), "sip:bob@biloxi.com");
        assert_eq!(a.nc(), Some("00000001"));
        assert_eq!(a.qop().unwrap(), "auth");
        assert_eq!(a.params.iter().count(), 9);
    }

    #[test]
    fn challenges_and_errors() {
        let a = Auth::parse(
            "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256, qop=\"auth,auth-int\", stale=TRUE",
        )
        .unwrap();
        assert!(a.stale());
        assert_eq!(a.algorithm().unwrap(), "SHA-256");
        assert!(Auth::parse("NoOneKnowsThisScheme opaque-data=here").is_ok());
        assert!(Auth::parse("Digest").is_err());
        assert!(Auth::parse("Digest username=\"a\", username=\"b\"").is_err());
        assert!(Auth::parse("Digest realm=\"x\",, nonce=\"n\"").is_err());
        assert!(Auth::parse("Digest realm=\"x").is_err());
    }
}

#[cfg(test)]
mod kept_tests {
    use super::*;

    /// Lookups answer the same from the kept pairs and, past [`KEPT`], from the text.
    #[test]
    fn lookups_past_the_kept_pairs() {
        let many: Vec<String> = (0..KEPT + 4).map(|i| format!("p{i}=\"v{i}\"")).collect();
        let row = format!("Other {}", many.join(", "));
        let a = Auth::parse(&row).unwrap();
        assert!(a.params.kept.is_none());
        assert_eq!(a.params.get("P19"), Some("\"v19\""));
        let d = Auth::parse("Digest username=\"bob\", realm=\"r\", NC=00000001").unwrap();
        assert_eq!(d.params.kept, Some(3));
        assert_eq!(d.params.get("nc"), Some("00000001"));
        assert_eq!(d.username().as_deref(), Some("bob"));
        assert_eq!(d.params.get("cnonce"), None);
        assert_eq!(d.params.iter().count(), 3);
    }
}
