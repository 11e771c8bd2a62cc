//! rtpengine's `ng` replies (`sipwarden_media::ng`) on arbitrary bytes: a reply either parses
//! or is refused, and whatever bencode parses encodes back to the same bytes' value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_media::ng::{self, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ng::parse_reply(data) {
        let _ = (r.is_ok(), r.last_packet(), r.media_stats("a"), r.to_string(), r.sdp.as_ref().map(Vec::len));
    }
    if let Ok(v) = Value::decode(data) {
        let mut out = Vec::new();
        v.encode_into(&mut out);
        assert_eq!(Value::decode(&out), Ok(v), "re-encoded bencode reads differently");
    }
});
