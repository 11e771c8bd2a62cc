//! `StreamFramer` fed in chunks whose boundaries come from the input's first bytes.
//!
//! Input layout: byte 0 = number of cut points (mod 16), then that many bytes, each a chunk
//! length (0 means 1); the rest is the stream. The last chunk takes whatever is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::{Limits, Message, StreamFramer, StreamItem};

/// What an item was, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ping,
    Message(Vec<u8>),
    Failed,
}

/// Drains the framer, checking the per-item invariants; returns what it produced.
fn drain(f: &mut StreamFramer, limits: &Limits, failed: &mut bool, out: &mut Vec<Seen>) {
    while let Some(item) = f.next_item() {
        assert!(!*failed, "framer produced an item after a failure");
        match item {
            Ok(StreamItem::Ping) => out.push(Seen::Ping),
            Ok(StreamItem::Message(m)) => {
                let bytes = m.to_bytes();
                assert!(bytes.len() <= limits.max_message_bytes);
                assert_eq!(m.content_length().map(|n| n as usize), Some(m.body().len()));
                let re = Message::parse_datagram(bytes.to_vec(), limits)
                    .expect("a framed message does not re-parse as a datagram");
                assert_eq!(&re.to_bytes()[..], &bytes[..]);
                assert_eq!(re.header_count(), m.header_count());
                assert_eq!(re.call_id(), m.call_id());
                assert_eq!(re.cseq(), m.cseq());
                assert_eq!(re.branch(), m.branch());
                assert_eq!(re.body(), m.body());
                out.push(Seen::Message(bytes.to_vec()));
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(f.is_failed(), "error returned but is_failed() is false");
                assert_eq!(f.buffered(), 0, "a failed framer still buffers bytes");
                *failed = true;
                out.push(Seen::Failed);
            }
        }
    }
    assert_eq!(f.is_failed(), *failed);
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let limits = Limits::default();

    // Chunked.
    let mut f = StreamFramer::new(limits.clone());
    let mut failed = false;
    let mut chunked = Vec::new();
    let mut pos = 0;
    let mut cut = cuts.iter();
    while pos < stream.len() {
        let len = match cut.next() {
            Some(&c) => usize::from(c.max(1)),
            None => stream.len() - pos,
        };
        let chunk = &stream[pos..(pos + len).min(stream.len())];
        pos += chunk.len();
        f.push(chunk);
        assert!(
            f.buffered() <= limits.max_message_bytes + chunk.len(),
            "framer buffers {} bytes",
            f.buffered()
        );
        drain(&mut f, &limits, &mut failed, &mut chunked);
        if failed {
            // More bytes after a failure change nothing.
            f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n");
            assert!(
                f.next_item().is_none(),
                "framer produced an item after a failure"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    // All at once: framing must not depend on where the transport cut the stream.
    let mut g = StreamFramer::new(limits.clone());
    let mut g_failed = false;
    let mut whole = Vec::new();
    g.push(stream);
    drain(&mut g, &limits, &mut g_failed, &mut whole);
    assert_eq!(
        chunked, whole,
        "chunked and one-shot framing of the same stream differ"
    );
});
