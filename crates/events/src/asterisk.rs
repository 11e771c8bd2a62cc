//! Asterisk's security-event log line, as res_security_log writes it to a file channel.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::event::{EventKind, SecurityEvent};
use crate::time::{civil, offset_minutes, push_padded};

/// The most bytes a value takes in either log line. Every value may come from the attacker;
/// this bounds the line (fail2ban reads it with regexes that backtrack) and the disk use.
pub const MAX_VALUE_BYTES: usize = 256;

/// The line Asterisk would log for `event`, without the trailing newline; `None` for Ban and
/// Unban, which Asterisk has no event for.
///
/// `time` is when it happened, `utc_offset_secs` the offset of the local time the line is
/// written in (fail2ban reads the bracketed date as its own local time, or the jail's
/// `logtimezone`), `pid` the number after `SECURITY` (Asterisk prints its thread id there).
///
/// # Values are made safe
///
/// Asterisk writes values between double quotes without escaping them, and the stock fail2ban
/// filter finds the banned host by matching `,RemoteAddress="…"` between `"`-free values. So
/// every value here (account, Call-ID, IEs) is written as printable ASCII without `"`, `\` or
/// `=`: every other byte (those three, control characters such as CR, LF and NUL, and all
/// non-ASCII bytes, each UTF-8 byte on its own) becomes `%XX`, uppercase hex, as in a URI.
/// A value then cannot end its quotes, start a line, or, ending in `…RemoteAddress=` just
/// before its closing quote, spell a second `RemoteAddress="`: `="` appears only where a field
/// starts. The filter still matches the line, so a hostile Call-ID can neither frame another
/// address nor get its sender out of a ban. `%` itself stays as it is, so ordinary values
/// (hex nonces and digests, most Call-IDs and user names) read unchanged; the JSON log keeps
/// the exact value. Each value is cut to [`MAX_VALUE_BYTES`] after encoding, never inside a
/// `%XX`.
pub fn asterisk_line(
    event: &SecurityEvent,
    time: SystemTime,
    utc_offset_secs: i32,
    pid: u32,
) -> Option<String> {
    if !event.kind.is_asterisk() {
        return None;
    }
    let offset = offset_minutes(utc_offset_secs);
    let t = civil(time, offset);
    let sign = if offset < 0 { '-' } else { '+' };
    let (oh, om) = (offset.abs() / 60, offset.abs() % 60);

    let mut line = String::with_capacity(512);
    line.push('[');
    t.push_date(&mut line);
    line.push(' ');
    t.push_clock(&mut line);
    line.push_str("] SECURITY[");
    push_padded(&mut line, pid.into(), 1);
    line.push_str("] res_security_log.c: SecurityEvent=\"");
    line.push_str(event.kind.name());
    line.push_str("\",EventTV=\"");
    t.push_date(&mut line);
    line.push('T');
    t.push_clock(&mut line);
    line.push('.');
    push_padded(&mut line, t.milli.into(), 3);
    line.push(sign);
    push_padded(&mut line, oh.unsigned_abs(), 2);
    push_padded(&mut line, om.unsigned_abs(), 2);
    line.push_str("\",Severity=\"");
    line.push_str(event.kind.severity());
    line.push_str("\",Service=\"SIP\",EventVersion=\"");
    line.push_str(event.kind.version());
    line.push('"');
    // RequestBadFormat is the one event whose AccountID is optional: Asterisk writes it
    // after the event's required IE (RequestType), and only when known.
    let account_late = event.kind == EventKind::RequestBadFormat;
    if !account_late {
        push_field(
            &mut line,
            "AccountID",
            event.account.as_deref().unwrap_or("<unknown>"),
        );
    }
    push_field(&mut line, "SessionID", &event.session_id);
    line.push_str(",LocalAddress=\"");
    event.local.push_to(&mut line);
    line.push_str("\",RemoteAddress=\"");
    event.remote.push_to(&mut line);
    line.push('"');
    let mut extra: Vec<(&str, &str)> = event.extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if let (true, Some(account)) = (account_late, event.account.as_deref()) {
        extra.insert(extra.len().min(1), ("AccountID", account));
    }
    for (name, value) in extra {
        push_field(&mut line, name, value);
    }
    Some(line)
}

/// Appends `,name="value"`, with `value` made safe as [`asterisk_line`] describes. The name is
/// ours (a `&'static str` from [`crate::ie`]) and written as is.
fn push_field(line: &mut String, name: &str, value: &str) {
    line.push(',');
    line.push_str(name);
    line.push_str("=\"");
    push_value(line, value);
    line.push('"');
}

/// Appends the safe form of `value`: see [`asterisk_line`].
pub(crate) fn push_value(out: &mut String, value: &str) {
    let start = out.len();
    for c in value.chars() {
        let plain = (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '=');
        let len = if plain { 1 } else { 3 * c.len_utf8() };
        if out.len() - start + len > MAX_VALUE_BYTES {
            break;
        }
        if plain {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}
