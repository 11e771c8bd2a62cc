//! Framing for stream transports (TCP, TLS): where one message ends and the next begins.
//!
//! On a stream, Content-Length is mandatory (RFC 3261 §18.3); a message without it, or with
//! one that does not parse, cannot be delimited, so the stream must be closed. CRLFs between
//! messages are keep-alives (RFC 5626 §4.4.1): a double CRLF is a ping the caller answers with
//! a single CRLF. Datagrams are framed by [`Message::parse_datagram`].

use bytes::{Buf, BytesMut};

use crate::error::{ParseError, ParseErrorKind};
use crate::limits::Limits;
use crate::message::{Head, Message, parse_head};

/// What the framer produced.
// Boxing the message would cost an allocation per message for a value moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum StreamItem {
    /// A complete message.
    Message(Message),
    /// A CRLFCRLF keep-alive ping: answer with a single CRLF (RFC 5626 §4.4.1).
    Ping,
}

/// Incremental framer for one stream connection.
///
/// Feed bytes with [`StreamFramer::push`], then call [`StreamFramer::next_item`] until it
/// returns `None` (needs more bytes). After it returns an error the stream is broken: the
/// caller answers 400 if it can and closes the connection; the framer yields nothing more.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// Bytes already searched for the end of the header section.
    scanned: usize,
    /// The head of a message whose body has not fully arrived.
    pending: Option<PendingHead>,
    failed: bool,
}

#[derive(Debug)]
struct PendingHead {
    head: HeadBox,
    total: usize,
}

/// `Head` is not `Debug`; this wrapper keeps the framer printable.
struct HeadBox(Head);

impl std::fmt::Debug for HeadBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Head")
    }
}

impl StreamFramer {
    /// A framer with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            limits,
            scanned: 0,
            pending: None,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream saw a framing error.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn fail(
        &mut self,
        kind: ParseErrorKind,
        response: bool,
    ) -> Option<Result<StreamItem, ParseError>> {
        self.failed = true;
        self.buf.clear();
        self.pending = None;
        Some(Err(ParseError::new(kind, 0, response)))
    }

    /// The next complete item, `None` if more bytes are needed.
    pub fn next_item(&mut self) -> Option<Result<StreamItem, ParseError>> {
        if self.failed {
            return None;
        }
        if let Some(p) = &self.pending {
            if self.buf.len() < p.total {
                return None;
            }
            let total = p.total;
            let head = self.pending.take()?.head.0;
            let bytes = self.buf.split_to(total).freeze();
            self.scanned = 0;
            return Some(Ok(StreamItem::Message(Message::from_head(bytes, head))));
        }
        // Keep-alives between messages.
        loop {
            match (
                self.buf.first(),
                self.buf.get(1),
                self.buf.get(2),
                self.buf.get(3),
            ) {
                (Some(b'\r'), Some(b'\n'), Some(b'\r'), Some(b'\n')) => {
                    self.buf.advance(4);
                    return Some(Ok(StreamItem::Ping));
                }
                (Some(b'\r'), Some(b'\n'), Some(b'\r'), None) => return None,
                (Some(b'\r'), Some(b'\n'), Some(_), _) => self.buf.advance(2),
                (Some(b'\r'), None, ..) | (Some(b'\r'), Some(b'\n'), None, _) => return None,
                _ => break,
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let response = self
            .buf
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
        let from = self.scanned.saturating_sub(3);
        let Some(found) = memchr::memmem::find(self.buf.get(from..).unwrap_or(&[]), b"\r\n\r\n")
        else {
            self.scanned = self.buf.len();
            // The blank line may start at max_head_bytes at the latest (as parse_head counts):
            // only past that plus its CRLF can no valid head still arrive. Failing earlier
            // would make the verdict depend on how the bytes were chunked.
            if self.buf.len() > self.limits.max_head_bytes + 2 {
                return self.fail(ParseErrorKind::MessageTooLarge, response);
            }
            return None;
        };
        let head_end = from + found + 4;
        let head = match parse_head(self.buf.get(..head_end).unwrap_or(&[]), &self.limits) {
            Ok(h) => h,
            Err(e) => return self.fail(e.kind, e.response),
        };
        let Some(cl) = head.core.content_length else {
            return self.fail(ParseErrorKind::MissingContentLength, response);
        };
        let cl = cl as usize;
        if cl > self.limits.max_body_bytes {
            return self.fail(ParseErrorKind::BodyTooLarge, response);
        }
        let total = head.body_start + cl;
        if total > self.limits.max_message_bytes {
            return self.fail(ParseErrorKind::MessageTooLarge, response);
        }
        self.pending = Some(PendingHead {
            head: HeadBox(head),
            total,
        });
        self.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    fn drain(f: &mut StreamFramer) -> Vec<Result<StreamItem, ParseError>> {
        std::iter::from_fn(|| f.next_item()).collect()
    }

    #[test]
    fn byte_by_byte_with_keepalives() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(MSG);
        let mut f = StreamFramer::new(Limits::default());
        let mut msgs = 0;
        let mut pings = 0;
        for b in &stream {
            f.push(std::slice::from_ref(b));
            for item in drain(&mut f) {
                match item.unwrap() {
                    StreamItem::Message(m) => {
                        assert_eq!(m.body(), b"body");
                        assert_eq!(m.to_bytes().as_ref(), MSG);
                        msgs += 1;
                    }
                    StreamItem::Ping => pings += 1,
                }
            }
        }
        assert_eq!((msgs, pings), (2, 1));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn missing_content_length_breaks_the_stream() {
        let no_cl = String::from_utf8_lossy(MSG).replace("Content-Length: 4\r\n", "");
        let mut f = StreamFramer::new(Limits::default());
        f.push(no_cl.as_bytes());
        let items = drain(&mut f);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().unwrap_err().kind,
            ParseErrorKind::MissingContentLength
        );
        f.push(MSG);
        assert!(f.next_item().is_none());
        assert!(f.is_failed());
    }

    /// Found by the stream_framing fuzz target's chunking check (a head of exactly
    /// max_head_bytes): one push or two must give the same verdict.
    #[test]
    fn a_head_of_exactly_the_limit_frames_the_same_in_any_chunking() {
        let limits = Limits {
            max_head_bytes: 256,
            ..Limits::default()
        };
        let mut head = String::from(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n",
        );
        let pad = 256 - head.len() - "X-Pad: \r\n".len();
        head.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
        assert_eq!(head.len(), 256);
        let msg = format!("{head}\r\n");
        assert!(Message::parse_datagram(msg.clone().into_bytes(), &limits).is_ok());
        for split in [1, 100, 255, 256, 257, msg.len() - 1, msg.len()] {
            let mut f = StreamFramer::new(limits.clone());
            f.push(&msg.as_bytes()[..split]);
            let mut items: Vec<_> = std::iter::from_fn(|| f.next_item()).collect();
            f.push(&msg.as_bytes()[split..]);
            items.extend(std::iter::from_fn(|| f.next_item()));
            assert_eq!(items.len(), 1, "split at {split}");
            assert!(
                matches!(items[0], Ok(StreamItem::Message(_))),
                "split at {split}: {:?}",
                items[0]
            );
        }
        // One byte more head can never be valid, whatever the chunking.
        let mut f = StreamFramer::new(limits);
        f.push(format!("{head}X").as_bytes());
        f.push(b"\r\n\r\n");
        assert!(matches!(f.next_item(), Some(Err(_))));
    }

    #[test]
    fn oversized_head_fails_without_blank_line() {
        let mut f = StreamFramer::new(Limits {
            max_head_bytes: 64,
            ..Limits::default()
        });
        f.push(&[b'a'; 100]);
        assert!(matches!(f.next_item(), Some(Err(_))));
    }
}
