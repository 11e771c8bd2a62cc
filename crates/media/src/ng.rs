//! rtpengine's `ng` control protocol, sans-io: the requests the gateway sends (offer, answer,
//! delete, ping) and the replies it reads, as bencoded dictionaries behind a cookie, one per
//! UDP datagram ("COOKIE d...e"). The server owns the socket; this builds and parses bytes.
//!
//! Bencode (the BitTorrent encoding rtpengine uses): `i42e` integers, `4:spam` byte strings,
//! `l...e` lists, `d...e` dictionaries with byte-string keys. The parser bounds depth and
//! element count, so a hostile or broken reply costs a bounded amount of work.

use std::fmt;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Self>),
    /// A dictionary, in the order written (rtpengine does not require sorted keys).
    Dict(Vec<(Vec<u8>, Self)>),
}

/// Why a reply could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    /// No cookie, or no space after it.
    #[error("no cookie")]
    Cookie,
    /// Not bencode, or more of it after the value.
    #[error("malformed bencode at byte {0}")]
    Malformed(usize),
    /// Deeper or longer than [`MAX_DEPTH`] / [`MAX_ITEMS`].
    #[error("bencode too deep or too long")]
    TooBig,
    /// Bencode, but not a dictionary with a `result`.
    #[error("not an ng reply")]
    NotReply,
}

/// Nesting the parser follows (rtpengine's replies nest five or six levels in statistics).
pub const MAX_DEPTH: usize = 16;
/// Values in one reply, all levels together.
pub const MAX_ITEMS: usize = 10_000;

impl Value {
    /// A byte string from text.
    pub fn text(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    /// Appends the encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Self::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Self::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Self::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Self::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The value under `key`, in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(d) => d
                .iter()
                .find(|(k, _)| k.as_slice() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Parses exactly one value filling `input`.
    pub fn decode(input: &[u8]) -> Result<Self, NgError> {
        let mut p = Parser {
            input,
            pos: 0,
            items: 0,
        };
        let v = p.value(0)?;
        if p.pos != input.len() {
            return Err(NgError::Malformed(p.pos));
        }
        Ok(v)
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, NgError> {
        self.items += 1;
        if depth > MAX_DEPTH || self.items > MAX_ITEMS {
            return Err(NgError::TooBig);
        }
        match self.peek() {
            Some(b'i') => {
                self.pos += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            Some(b'l') => {
                self.pos += 1;
                let mut l = Vec::new();
                while self.peek() != Some(b'e') {
                    l.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(l))
            }
            Some(b'd') => {
                self.pos += 1;
                let mut d = Vec::new();
                while self.peek() != Some(b'e') {
                    let k = self.string()?;
                    let v = self.value(depth + 1)?;
                    d.push((k, v));
                }
                self.pos += 1;
                Ok(Value::Dict(d))
            }
            Some(b'0'..=b'9') => Ok(Value::Bytes(self.string()?)),
            _ => Err(NgError::Malformed(self.pos)),
        }
    }

    /// Digits (with an optional minus) up to `end`, which is consumed.
    fn number(&mut self, end: u8) -> Result<i64, NgError> {
        let start = self.pos;
        let rest = self.input.get(start..).ok_or(NgError::Malformed(start))?;
        let len = rest
            .iter()
            .position(|&c| c == end)
            .ok_or(NgError::Malformed(start))?;
        let digits = rest.get(..len).ok_or(NgError::Malformed(start))?;
        let ok = match digits {
            [b'-', d @ ..] => !d.is_empty() && d.iter().all(u8::is_ascii_digit),
            d => !d.is_empty() && d.iter().all(u8::is_ascii_digit),
        };
        if !ok || digits.len() > 20 {
            return Err(NgError::Malformed(start));
        }
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(NgError::Malformed(start))?;
        self.pos = start + len + 1;
        Ok(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, NgError> {
        let start = self.pos;
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(NgError::Malformed(start));
        }
        let len = usize::try_from(self.number(b':')?).map_err(|_| NgError::Malformed(start))?;
        let end = self.pos.checked_add(len).ok_or(NgError::Malformed(start))?;
        let b = self
            .input
            .get(self.pos..end)
            .ok_or(NgError::Malformed(start))?;
        self.pos = end;
        Ok(b.to_vec())
    }
}

/// What an offer or answer asks of rtpengine, besides the SDP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// The media protocol of the SDP rtpengine writes (`RTP/AVP`, `RTP/SAVP` …): SRTP on one
    /// side and plain RTP on the other. `None`: as received.
    pub transport_protocol: Option<&'static str>,
    /// Remove ICE from the SDP rtpengine writes (the receiver does not do ICE).
    pub ice_remove: bool,
    /// rtpengine's interfaces the media comes in on and goes out on (`direction`), when it
    /// has one per side.
    pub direction: Option<(String, String)>,
}

/// A request: the cookie that pairs it with its reply, and its datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The cookie.
    pub cookie: String,
    /// What to send.
    pub datagram: Vec<u8>,
}

fn request(cookie: &str, dict: Vec<(&str, Value)>) -> Request {
    let mut datagram = Vec::with_capacity(256);
    datagram.extend_from_slice(cookie.as_bytes());
    datagram.push(b' ');
    Value::Dict(
        dict.into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
    .encode_into(&mut datagram);
    Request {
        cookie: cookie.to_owned(),
        datagram,
    }
}

/// Which end of the offer/answer exchange an SDP is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// An offer, from the side tagged `from_tag`.
    Offer,
    /// The answer to the last offer, from the side tagged `to_tag`.
    Answer,
}

/// The call an SDP belongs to, as rtpengine names it: a call id, the offerer's tag and the
/// answerer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTags<'a> {
    /// The call.
    pub call_id: &'a str,
    /// The side that made the offer.
    pub from_tag: &'a str,
    /// The side that answers it.
    pub to_tag: &'a str,
}

/// An `offer` or `answer` carrying `sdp`.
pub fn sdp_request(
    cookie: &str,
    exchange: Exchange,
    tags: CallTags<'_>,
    sdp: &[u8],
    flags: &Flags,
) -> Request {
    let mut d = vec![
        (
            "command",
            Value::text(match exchange {
                Exchange::Offer => "offer",
                Exchange::Answer => "answer",
            }),
        ),
        ("call-id", Value::text(tags.call_id)),
        ("from-tag", Value::text(tags.from_tag)),
    ];
    if exchange == Exchange::Answer {
        d.push(("to-tag", Value::text(tags.to_tag)));
    }
    d.push(("sdp", Value::Bytes(sdp.to_vec())));
    // The gateway's own origin and session address in what rtpengine writes: nothing of the
    // other side's o= or session c= crosses.
    d.push((
        "replace",
        Value::List(vec![
            Value::text("origin"),
            Value::text("session-connection"),
        ]),
    ));
    if let Some(p) = flags.transport_protocol {
        d.push(("transport-protocol", Value::text(p)));
        if p == "RTP/SAVP" {
            // SDES keys only, and none of the suites that authenticate without encrypting.
            d.push(("DTLS", Value::text("off")));
            d.push((
                "SDES",
                Value::List(vec![
                    Value::text("no-NULL_HMAC_SHA1_80"),
                    Value::text("no-NULL_HMAC_SHA1_32"),
                ]),
            ));
        }
    }
    if flags.ice_remove {
        d.push(("ICE", Value::text("remove")));
    }
    if let Some((from, to)) = &flags.direction {
        d.push((
            "direction",
            Value::List(vec![Value::text(from), Value::text(to)]),
        ));
    }
    request(cookie, d)
}

/// A `delete` of the whole call.
pub fn delete(cookie: &str, call_id: &str) -> Request {
    request(
        cookie,
        vec![
            ("command", Value::text("delete")),
            ("call-id", Value::text(call_id)),
        ],
    )
}

/// A `ping` (the answer is `pong`): whether rtpengine is there.
pub fn ping(cookie: &str) -> Request {
    request(cookie, vec![("command", Value::text("ping"))])
}

/// rtpengine's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The cookie of the request it answers.
    pub cookie: String,
    /// `ok`, `pong`, `error` …
    pub result: String,
    /// Why, when `result` is `error`.
    pub error_reason: Option<String>,
    /// The SDP to send on, for an offer or answer.
    pub sdp: Option<Vec<u8>>,
    /// The whole dictionary (statistics of a delete, warnings …).
    pub body: Value,
}

impl Reply {
    /// Whether the request did what it asked.
    pub fn is_ok(&self) -> bool {
        self.result == "ok" || self.result == "pong"
    }

    /// What rtpengine received from the party tagged `tag`, per media section, from a
    /// `query` reply: (section index from 0, packets, bytes), RTP and RTCP together.
    pub fn media_stats(&self, tag: &str) -> Vec<(usize, u64, u64)> {
        let Some(Value::List(medias)) = self
            .body
            .get("tags")
            .and_then(|t| t.get(tag))
            .and_then(|p| p.get("medias"))
        else {
            return Vec::new();
        };
        let n = |v: Option<&Value>| {
            v.and_then(Value::as_int)
                .and_then(|i| u64::try_from(i).ok())
                .unwrap_or(0)
        };
        medias
            .iter()
            .map(|m| {
                // rtpengine numbers sections from 1.
                let index = usize::try_from(n(m.get("index")).saturating_sub(1)).unwrap_or(0);
                let (mut packets, mut bytes) = (0, 0);
                if let Some(Value::List(streams)) = m.get("streams") {
                    for s in streams {
                        let stats = s.get("stats");
                        packets += n(stats.and_then(|st| st.get("packets")));
                        bytes += n(stats.and_then(|st| st.get("bytes")));
                    }
                }
                (index, packets, bytes)
            })
            .collect()
    }
}

impl Reply {
    /// When rtpengine last received a packet for the call, on any stream (Unix seconds), from
    /// a `query` reply: the newest `last packet` of every stream of every party.
    pub fn last_packet(&self) -> Option<i64> {
        let Value::Dict(tags) = self.body.get("tags")? else {
            return None;
        };
        tags.iter()
            .filter_map(|(_, party)| match party.get("medias") {
                Some(Value::List(m)) => Some(m),
                _ => None,
            })
            .flatten()
            .filter_map(|m| match m.get("streams") {
                Some(Value::List(s)) => Some(s),
                _ => None,
            })
            .flatten()
            .filter_map(|s| s.get("last packet").and_then(Value::as_int))
            .max()
    }
}

/// A `query` of the call: its parties, streams and their statistics.
pub fn query(cookie: &str, call_id: &str) -> Request {
    request(
        cookie,
        vec![
            ("command", Value::text("query")),
            ("call-id", Value::text(call_id)),
        ],
    )
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_reason {
            Some(r) => write!(f, "{}: {r}", self.result),
            None => f.write_str(&self.result),
        }
    }
}

/// Reads one reply datagram.
pub fn parse_reply(datagram: &[u8]) -> Result<Reply, NgError> {
    let space = datagram
        .iter()
        .position(|&c| c == b' ')
        .filter(|&i| i > 0)
        .ok_or(NgError::Cookie)?;
    let (cookie, rest) = datagram.split_at(space);
    let cookie = std::str::from_utf8(cookie).map_err(|_| NgError::Cookie)?;
    let body = Value::decode(rest.get(1..).unwrap_or_default())?;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let result = text("result").ok_or(NgError::NotReply)?;
    Ok(Reply {
        cookie: cookie.to_owned(),
        error_reason: text("error-reason"),
        sdp: body
            .get("sdp")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
        result,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_offer_is_the_dictionary_rtpengine_expects() {
        let r = sdp_request(
            "c1",
            Exchange::Offer,
            CallTags {
                call_id: "sw-7",
                from_tag: "a",
                to_tag: "b",
            },
            b"v=0\r\n",
            &Flags {
                transport_protocol: Some("RTP/SAVP"),
                ice_remove: true,
                direction: None,
            },
        );
        assert_eq!(
            String::from_utf8(r.datagram).unwrap(),
            "c1 d7:command5:offer7:call-id4:sw-78:from-tag1:a3:sdp5:v=0\r\n\
             7:replacel6:origin18:session-connectione\
             18:transport-protocol8:RTP/SAVP4:DTLS3:off4:SDESl20:no-NULL_HMAC_SHA1_80\
             20:no-NULL_HMAC_SHA1_32e3:ICE6:removee"
        );
    }

    #[test]
    fn an_answer_names_both_tags() {
        let r = sdp_request(
            "c2",
            Exchange::Answer,
            CallTags {
                call_id: "sw-7",
                from_tag: "a",
                to_tag: "b",
            },
            b"x",
            &Flags::default(),
        );
        let text = String::from_utf8(r.datagram).unwrap();
        assert!(text.contains("8:from-tag1:a6:to-tag1:b3:sdp1:x"), "{text}");
        assert!(!text.contains("transport-protocol"));
    }

    #[test]
    fn replies_are_read() {
        let r = parse_reply(b"c1 d6:result2:ok3:sdp3:v=0e").unwrap();
        assert!(r.is_ok());
        assert_eq!(r.sdp.as_deref(), Some(&b"v=0"[..]));
        let r = parse_reply(b"c2 d6:result5:error12:error-reason9:Bad thinge").unwrap();
        assert!(!r.is_ok());
        assert_eq!(r.to_string(), "error: Bad thing");
        let r = parse_reply(b"c3 d6:result4:ponge").unwrap();
        assert!(r.is_ok());
    }

    #[test]
    fn the_last_packet_is_the_newest_of_every_stream() {
        // As rtpengine 10.5 answers a query (shortened).
        let d = |kv: Vec<(&str, Value)>| {
            Value::Dict(
                kv.into_iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v))
                    .collect(),
            )
        };
        let stream = |last: i64| {
            d(vec![
                ("local port", Value::Int(30072)),
                ("last packet", Value::Int(last)),
                (
                    "stats",
                    d(vec![
                        ("packets", Value::Int(10)),
                        ("bytes", Value::Int(1720)),
                    ]),
                ),
            ])
        };
        let party = |streams: Vec<Value>| {
            d(vec![(
                "medias",
                Value::List(vec![d(vec![
                    ("index", Value::Int(1)),
                    ("streams", Value::List(streams)),
                ])]),
            )])
        };
        let body = d(vec![
            ("created", Value::Int(1_796_540_109)),
            (
                "tags",
                d(vec![
                    (
                        "a",
                        party(vec![stream(1_796_540_109), stream(1_796_540_150)]),
                    ),
                    ("b", party(vec![stream(1_796_540_120)])),
                ]),
            ),
            ("result", Value::text("ok")),
        ]);
        let mut datagram = b"q1 ".to_vec();
        body.encode_into(&mut datagram);
        let r = parse_reply(&datagram).unwrap();
        assert_eq!(r.last_packet(), Some(1_796_540_150));
        // Party a's two streams (RTP, RTCP) of section 1, party b's one.
        assert_eq!(r.media_stats("a"), [(0, 20, 3440)]);
        assert_eq!(r.media_stats("b"), [(0, 10, 1720)]);
        assert!(r.media_stats("c").is_empty());
        let none = parse_reply(b"q2 d6:result2:oke").unwrap();
        assert_eq!(none.last_packet(), None);
        let q = String::from_utf8(query("q3", "sipwarden-4").datagram).unwrap();
        assert_eq!(q, "q3 d7:command5:query7:call-id11:sipwarden-4e");
    }

    #[test]
    fn broken_replies_are_errors() {
        for bad in [
            &b""[..],
            b"nocookie",
            b" d6:result2:oke",
            b"c d6:result2:ok",
            b"c d6:result2:okee",
            b"c d6:result99:oke",
            b"c i-e",
            b"c i012345678901234567890e",
            b"c le",
            b"c d3:fooi1ee",
            b"c d1:ae",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("c {}{}", "l".repeat(100), "e".repeat(100));
        assert_eq!(parse_reply(deep.as_bytes()), Err(NgError::TooBig));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::vec(
                    (proptest::collection::vec(any::<u8>(), 0..8), inner),
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn encoding_round_trips(v in value()) {
            let mut out = Vec::new();
            v.encode_into(&mut out);
            prop_assert_eq!(Value::decode(&out), Ok(v));
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_reply(&b);
            let _ = Value::decode(&b);
        }
    }
}
