//! SDP edits made when a body crosses from one leg to the other.

use bytes::Bytes;

/// Rewrites the `o=` line's username and unicast address to the gateway's (topology hiding:
/// the origin line names the machine that wrote the offer) and the session name `s=` to `-`
/// (PBXs write their product and version there). Session id and version are kept, so the
/// version still moves when, and only when, the offerer changes its SDP. Other lines are
/// untouched (media addresses stay until media anchoring exists). A body that is not
/// SDP-shaped is returned unchanged.
pub(crate) fn rewrite_origin(body: &Bytes, username: &str, address: std::net::IpAddr) -> Bytes {
    let with_origin = rewrite_o(body, username, address);
    rewrite_session_name(&with_origin)
}

fn rewrite_session_name(body: &Bytes) -> Bytes {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.clone();
    };
    let Some(start) = text.find("\ns=").map(|i| i + 1) else {
        return body.clone();
    };
    let rest = text.get(start..).unwrap_or("");
    let line_len = rest.find('\n').unwrap_or(rest.len());
    let line = rest.get(..line_len).unwrap_or("");
    let cr = if line.ends_with('\r') { "\r" } else { "" };
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..start).unwrap_or(""));
    out.push_str("s=-");
    out.push_str(cr);
    out.push_str(text.get(start + line_len..).unwrap_or(""));
    Bytes::from(out)
}

fn rewrite_o(body: &Bytes, username: &str, address: std::net::IpAddr) -> Bytes {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.clone();
    };
    let Some(start) = text
        .find("\no=")
        .map(|i| i + 1)
        .or_else(|| text.starts_with("o=").then_some(0))
    else {
        return body.clone();
    };
    let rest = text.get(start..).unwrap_or("");
    let line_len = rest.find('\n').unwrap_or(rest.len());
    let line = rest.get(..line_len).unwrap_or("");
    let (line, cr) = match line.strip_suffix('\r') {
        Some(l) => (l, "\r"),
        None => (line, ""),
    };
    let fields: Vec<&str> = line.get(2..).unwrap_or("").split(' ').collect();
    let [_, sess_id, sess_ver, net, _, _] = fields.as_slice() else {
        return body.clone();
    };
    let addr_type = if address.is_ipv4() { "IP4" } else { "IP6" };
    let new_line = format!("o={username} {sess_id} {sess_ver} {net} {addr_type} {address}{cr}");
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(text.get(..start).unwrap_or(""));
    out.push_str(&new_line);
    out.push_str(text.get(start + line_len..).unwrap_or(""));
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_rewritten_and_nothing_else() {
        let body = Bytes::from_static(b"v=0\r\no=pbxuser 53655765 2353687637 IN IP4 10.0.0.10\r\ns=Asterisk\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n");
        let out = rewrite_origin(&body, "sipwarden", "192.0.2.1".parse().unwrap());
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.contains("\r\no=sipwarden 53655765 2353687637 IN IP4 192.0.2.1\r\ns=-\r\nc="));
        assert!(
            s.contains("c=IN IP4 10.0.0.10"),
            "media address stays (no anchoring yet)"
        );
        let v6 = rewrite_origin(&body, "sipwarden", "2001:db8::1".parse().unwrap());
        assert!(
            std::str::from_utf8(&v6)
                .unwrap()
                .contains("o=sipwarden 53655765 2353687637 IN IP6 2001:db8::1\r\n")
        );
        let junk = Bytes::from_static(b"not sdp");
        assert_eq!(
            rewrite_origin(&junk, "x", "192.0.2.1".parse().unwrap()),
            junk
        );
    }
}
