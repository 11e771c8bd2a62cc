//! The same events as JSON lines, for log shippers and for our own ban history.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::asterisk::MAX_VALUE_BYTES;
use crate::event::{SecurityEvent, push_ip};
use crate::time::{civil, push_padded};

/// Keys of our own; an IE of the same name is left out rather than shadow one of them.
const RESERVED: [&str; 11] = [
    "time",
    "event",
    "severity",
    "account",
    "session_id",
    "local",
    "remote",
    "remote_ip",
    "ban_expires",
    "ban_count",
    "reason",
];

/// One compact JSON object, without the trailing newline.
///
/// Keys, in this order: `time` (RFC 3339, UTC, milliseconds), `event`, `severity`, `account`
/// (`null` when unknown), `session_id`, `local` and `remote` (Asterisk's address form,
/// `IPV4/UDP/192.0.2.1/5060`), `remote_ip` (what a firewall bans; IPv4-mapped addresses as
/// IPv4), then each IE under its Asterisk name, then `reason`. Ban and Unban lines have
/// `time`, `event`, `severity`, `remote_ip`, `ban_expires` (Unix seconds, Ban only),
/// `ban_count`, their IEs if any, and `reason`.
///
/// JSON escaping keeps hostile values inside their strings (quotes, CR, LF and other control
/// characters are escaped); values are still cut to [`MAX_VALUE_BYTES`] bytes, at a character
/// boundary, to bound the line.
pub fn json_line(event: &SecurityEvent, time: SystemTime) -> String {
    let t = civil(time, 0);
    let mut out = String::with_capacity(512);
    out.push_str("{\"time\":\"");
    t.push_date(&mut out);
    out.push('T');
    t.push_clock(&mut out);
    out.push('.');
    push_padded(&mut out, t.milli.into(), 3);
    out.push_str("Z\"");
    push_str(&mut out, "event", event.kind.name());
    push_str(&mut out, "severity", event.kind.severity());
    if !event.kind.is_asterisk() {
        // Ban, Unban: an address, not an exchange.
        push_raw(&mut out, "remote_ip", |o| push_ip(o, event.remote.ip()));
        if let Some(ban) = event.ban {
            if let Some(expires) = ban.expires_unix {
                let _ = write!(out, ",\"ban_expires\":{expires}");
            }
            let _ = write!(out, ",\"ban_count\":{}", ban.count);
        }
    } else {
        match &event.account {
            Some(account) => push_str(&mut out, "account", account),
            None => out.push_str(",\"account\":null"),
        }
        push_str(&mut out, "session_id", &event.session_id);
        push_raw(&mut out, "local", |o| event.local.push_to(o));
        push_raw(&mut out, "remote", |o| event.remote.push_to(o));
        push_raw(&mut out, "remote_ip", |o| push_ip(o, event.remote.ip()));
    }
    for (name, value) in &event.extra {
        if !RESERVED.contains(name) {
            push_str(&mut out, name, value);
        }
    }
    push_str(&mut out, "reason", &event.reason);
    out.push('}');
    out
}

/// Appends `,"key":"…"` with `…` written by `value` in place: for addresses and endpoints,
/// whose text (digits, hex, `.`, `:`, `/`, transport names) never needs escaping.
fn push_raw(out: &mut String, key: &str, value: impl FnOnce(&mut String)) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":\"");
    value(out);
    out.push('"');
}

/// Appends `,"key":"value"` with `value` capped and both JSON-escaped.
fn push_str(out: &mut String, key: &str, value: &str) {
    out.push(',');
    push_json_string(out, key);
    out.push(':');
    push_json_string(out, cap(value));
}

/// Appends `s` as a JSON string (RFC 8259 §7): `"` and `\` escaped, control characters as
/// `\n`, `\r`, `\t` or `\u00XX`; everything else as is. Runs of plain bytes are copied
/// whole: most values (addresses, tags, nonces) need no escaping at all, and this runs for
/// every event on the message path.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both ends are character boundaries.
        out.push_str(s.get(plain..i).unwrap_or_default());
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        plain = i + 1;
    }
    out.push_str(s.get(plain..).unwrap_or_default());
    out.push('"');
}

/// The longest prefix of `s` of at most [`MAX_VALUE_BYTES`] bytes that ends on a character
/// boundary.
fn cap(s: &str) -> &str {
    let mut end = s.len().min(MAX_VALUE_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a value holds, the string written is valid JSON that reads back as it.
        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            let mut out = String::new();
            push_json_string(&mut out, &s);
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back.as_str(), Some(s.as_str()));
        }
    }

    #[test]
    fn hostile_values_stay_inside_their_string() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\r\nd\u{0}e\u{1f}\u{7f}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\r\\nd\\u0000e\\u001f\u{7f}é\"");
    }
}
