//! `SdpEdit` on arbitrary bytes: the first bytes choose edits, the rest is the body. Whatever
//! body parses must still parse after any edits the editor accepted, show what they set, and
//! come out byte for byte unchanged when none were.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::sdp::{self, SdpEdit, Section};

const TEXTS: &[&str] = &[
    "-", "", "x", "gw name", "a\r\nb", "actpass", "sendonly", "é", "a b",
];
const NAMES: &[&str] = &[
    "x-gw", "setup", "sendrecv", "inactive", "rtcp-mux", "bad name",
];

fn addr(b: u8) -> IpAddr {
    if b % 2 == 0 {
        IpAddr::from([192, 0, 2, b])
    } else {
        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(b)])
    }
}

fn section(b: u8, media: usize) -> Section {
    match usize::from(b) % (media + 2) {
        0 => Section::Session,
        i => Section::Media(i - 1),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16) * 4;
    if rest.len() < n {
        return;
    }
    let (ops, body) = rest.split_at(n);
    let Ok(mut e) = SdpEdit::new(body) else {
        return;
    };
    let media = e.sdp().media.len();
    let mut name = None;
    for op in ops.chunks_exact(4) {
        let [kind, a, b, c] = [op[0], op[1], op[2], op[3]];
        let text = TEXTS[usize::from(c) % TEXTS.len()];
        let sec = section(a, media);
        let _ = match kind % 8 {
            0 => e.set_origin_username(text),
            1 => e.set_origin_address(addr(b)),
            2 => e.set_session_name(text).inspect(|()| name = Some(text)),
            3 => e.set_connection_address(sec, addr(b)),
            4 => e.set_media_port(usize::from(a), u16::from_be_bytes([b, c])),
            5 => e.remove_attribute(sec, usize::from(b)),
            6 => e.insert_attribute(
                sec,
                NAMES[usize::from(b) % NAMES.len()],
                (c % 3 != 0).then_some(text),
            ),
            _ => e.set_attribute_value(sec, usize::from(b), (c % 3 != 0).then_some(text)),
        };
    }
    let edited = e.is_edited();
    let out = e.finish();
    if !edited {
        assert_eq!(out, body, "no edit, yet the body changed");
    }
    let again = sdp::parse(&out).expect("an edited body that parsed no longer does");
    if let Some(name) = name {
        assert_eq!(again.session_name, name);
    }
});
