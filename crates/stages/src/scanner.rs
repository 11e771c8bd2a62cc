//! Scanner fingerprints: what SIP scanners and crackers put in User-Agent and in the users
//! and display names of From, To and Contact. A match is dropped without an answer and its
//! source banned: a scanner that hears nothing learns nothing, not even that a gateway
//! listens.

use sipwarden_sip::header::Contact;
use sipwarden_sip::{HeaderName, Message};

/// Patterns matched by default (case-insensitive substrings): SIPVicious (`friendly-scanner`,
/// `sipvicious`, its default `From: "sipvicious"` users), sipcli, VaxSIPUserAgent, pplsip,
/// sip-scan, and the tools that imitate them.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "pplsip",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "sip-sip",
    "smap",
    "sipptk",
    "voip sip v11",
    "siparmyknife",
];

/// The matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanner {
    patterns: Vec<String>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new(DEFAULT_PATTERNS.iter().copied())
    }
}

impl Scanner {
    /// A matcher for these patterns (empty ones are ignored).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    /// The first pattern `msg` matches, if any.
    pub fn check(&self, msg: &Message) -> Option<&str> {
        if self.patterns.is_empty() {
            return None;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(8);
        if let Some(ua) = msg.user_agent() {
            fields.push(ua);
        }
        // From and To as the parser already read them (display name, URI user).
        fields.extend(msg.from_display());
        fields.extend(msg.from_user());
        fields.extend(msg.to_display());
        fields.extend(msg.to_user());
        let contacts = msg.contacts().unwrap_or_default();
        for c in &contacts {
            if let Contact::Addr(a) = c {
                fields.extend(a.display);
                fields.extend(a.uri.user());
            }
        }
        // Headers the core never parses as addresses still carry a product string.
        if let Some(s) = msg.header(HeaderName::Server) {
            fields.push(s);
        }
        // Lower-case each field once, then plain substring searches (patterns are stored
        // lower-case): this runs on every request from the endpoint zone.
        let mut lowered = String::with_capacity(fields.iter().map(|f| f.len() + 1).sum());
        for f in &fields {
            lowered.extend(f.chars().map(|c| c.to_ascii_lowercase()));
            // A separator no pattern contains, so no match spans two fields.
            lowered.push('\n');
        }
        self.patterns
            .iter()
            .find(|p| lowered.contains(p.as_str()))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ua: &str, from_display: &str, from_user: &str) -> Message {
        let raw = format!(
            "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bK1\r\nFrom: \"{from_display}\" <sip:{from_user}@127.0.0.66>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nUser-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn defaults_catch_the_known_tools_and_not_phones() {
        let s = Scanner::default();
        assert_eq!(
            s.check(&msg("friendly-scanner", "", "100")),
            Some("friendly-scanner")
        );
        assert_eq!(
            s.check(&msg("Linksys", "sipvicious", "100")),
            Some("sipvicious")
        );
        assert_eq!(s.check(&msg("x", "", "sipvicious")), Some("sipvicious"));
        assert_eq!(
            s.check(&msg("VaxSIPUserAgent/3.1", "", "100")),
            Some("vaxsipuseragent")
        );
        assert_eq!(
            s.check(&msg("Yealink SIP-T46S 66.85", "Alice", "1001")),
            None
        );
        assert_eq!(
            s.check(&msg("baresip v1.0.0 (x86_64/linux)", "", "1001")),
            None
        );
        assert_eq!(
            Scanner::new([]).check(&msg("friendly-scanner", "", "1")),
            None
        );
    }
}
