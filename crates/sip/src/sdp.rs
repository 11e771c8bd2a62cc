//! Sans-io SDP (RFC 4566 / RFC 8866) parser for media-security policing, and
//! an editor ([`SdpEdit`]) for the bodies the gateway changes.
//!
//! Policy needs to *see* what a peer offers or answers: media lines and their
//! transport protocol, connection addresses, SDES `a=crypto` keys (RFC 4568),
//! DTLS `a=fingerprint` (RFC 8122), `a=setup` (RFC 4145) and the stream
//! direction. Rewrites (topology hiding, media anchoring) change a body through
//! [`SdpEdit`]: edits of values of the parsed model, as byte ranges of the
//! original, so nothing else of the body moves.
//!
//! Design points:
//! - Zero-copy: [`Sdp`] borrows every string from the input body.
//! - Bounded: [`SdpLimits`] is checked before any vector grows, and a line is
//!   never scanned past `max_line_len`.
//! - Panic-free on arbitrary bytes; the body must be UTF-8, lines end in CRLF or
//!   bare LF, and NUL or stray CR bytes are refused (they are classic parser
//!   differential tricks against downstream C stacks).
//! - Ambiguity is refused rather than resolved: duplicate `v=`/`o=`/`s=`/`c=`
//!   lines in a section, or two direction / `a=setup` attributes in one section,
//!   are parse errors.
//! - `a=crypto` and `a=fingerprint` values are parsed lazily per line
//!   ([`Media::crypto`], [`Media::fingerprints`]), so one malformed key line does
//!   not hide the rest of the SDP from policy: the caller can still reject the
//!   offending stream (or the call) cleanly.
//! - Protocol names, attribute names and address types are matched exactly
//!   (case-sensitive), so anything unusual classifies as "other" and fails
//!   closed under an encryption-required policy. Grammar literals defined by
//!   ABNF (crypto suites, `inline`, setup roles, hash names) are matched
//!   case-insensitively, as ABNF requires.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

mod edit;

pub use edit::{EditMark, SdpEdit, SdpEditError, Section};

/// Resource bounds applied while parsing, so a hostile body cannot make the
/// parser allocate or scan without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    /// Maximum number of physical lines (blank lines included).
    pub max_lines: usize,
    /// Maximum number of `m=` sections.
    pub max_media: usize,
    /// Maximum number of `a=` lines per section (session level counts as one).
    pub max_attributes: usize,
    /// Maximum line length in bytes, excluding the line terminator.
    pub max_line_len: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        Self {
            max_lines: 512,
            max_media: 16,
            max_attributes: 64,
            max_line_len: 1024,
        }
    }
}

/// What went wrong while parsing SDP (or one of its attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// A line is not valid UTF-8.
    InvalidUtf8,
    /// A line exceeds [`SdpLimits::max_line_len`].
    LineTooLong,
    /// The body has more than [`SdpLimits::max_lines`] lines.
    TooManyLines,
    /// More than [`SdpLimits::max_media`] `m=` sections.
    TooManyMedia,
    /// A section has more than [`SdpLimits::max_attributes`] `a=` lines.
    TooManyAttributes,
    /// A line contains NUL or a carriage return not followed by line feed.
    InvalidCharacter,
    /// A line is not of the form `<letter>=<value>`.
    MalformedLine,
    /// The first line is not `v=`.
    MissingVersion,
    /// `v=` carries something other than `0`.
    UnsupportedVersion,
    /// No `o=` line before the first `m=` line or the end of the body.
    MissingOrigin,
    /// No `s=` line before the first `m=` line or the end of the body.
    MissingSessionName,
    /// A line that may appear only once per section appears again.
    DuplicateLine,
    /// `o=` does not have exactly six fields.
    MalformedOrigin,
    /// `c=` is not `<nettype> <addrtype> <address>[/ttl][/count]`.
    MalformedConnection,
    /// `m=` is not `<media> <port>[/<count>] <proto> <fmt> ...`.
    MalformedMedia,
    /// The `m=` port (or port count) is not a valid 16-bit number.
    InvalidPort,
    /// An `a=` line has an invalid name, or a known attribute a bad value.
    MalformedAttribute,
    /// Two direction attributes or two `a=setup` in one section.
    ConflictingAttribute,
    /// An `a=crypto` value does not follow RFC 4568 §9.1.
    MalformedCrypto,
    /// An `a=fingerprint` value does not follow RFC 8122.
    MalformedFingerprint,
}

impl SdpErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid utf-8",
            Self::LineTooLong => "line too long",
            Self::TooManyLines => "too many lines",
            Self::TooManyMedia => "too many media sections",
            Self::TooManyAttributes => "too many attributes in section",
            Self::InvalidCharacter => "invalid control character",
            Self::MalformedLine => "malformed line",
            Self::MissingVersion => "missing v= line",
            Self::UnsupportedVersion => "unsupported sdp version",
            Self::MissingOrigin => "missing o= line",
            Self::MissingSessionName => "missing s= line",
            Self::DuplicateLine => "duplicate line",
            Self::MalformedOrigin => "malformed o= line",
            Self::MalformedConnection => "malformed c= line",
            Self::MalformedMedia => "malformed m= line",
            Self::InvalidPort => "invalid port",
            Self::MalformedAttribute => "malformed attribute",
            Self::ConflictingAttribute => "conflicting attribute",
            Self::MalformedCrypto => "malformed crypto attribute",
            Self::MalformedFingerprint => "malformed fingerprint attribute",
        }
    }
}

impl fmt::Display for SdpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SDP parse error with the 1-based line number it was detected on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SdpError {
    /// What went wrong.
    pub kind: SdpErrorKind,
    /// 1-based physical line number.
    pub line: u32,
}

impl SdpError {
    const fn new(kind: SdpErrorKind, line: u32) -> Self {
        Self { kind, line }
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sdp line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for SdpError {}

/// A parsed session description; every string borrows from the input body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp<'a> {
    /// Protocol version from `v=`; always 0.
    pub version: u32,
    /// The `o=` line.
    pub origin: Origin<'a>,
    /// The `s=` value (may be empty or `-`).
    pub session_name: &'a str,
    /// Session-level `c=`, the default for media sections without their own.
    pub connection: Option<Connection<'a>>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute<'a>>,
    /// Media sections in order.
    pub media: Vec<Media<'a>>,
}

/// The `o=` line: identifies the session and its originator (RFC 8866 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Originator's login, or `-`.
    pub username: &'a str,
    /// Session identifier (numeric string by convention, not checked).
    pub session_id: &'a str,
    /// Session version, bumped on every modification.
    pub session_version: &'a str,
    /// Network type, normally `IN`.
    pub net_type: &'a str,
    /// Address type, normally `IP4` or `IP6`.
    pub addr_type: &'a str,
    /// Originating host address or name (a topology-hiding concern).
    pub address: &'a str,
}

/// Address family of a `c=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
    /// Any other (case-sensitive) value.
    Other,
}

impl AddrType {
    /// Classifies an address-type token (exact match).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "IP4" => Self::Ip4,
            "IP6" => Self::Ip6,
            _ => Self::Other,
        }
    }
}

/// A `c=` line: where media is sent (RFC 8866 §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    /// Network type, normally `IN`.
    pub net_type: &'a str,
    /// Address family.
    pub addr_type: AddrType,
    /// Address without any `/ttl/count` suffix; an IP literal (IPv6 without
    /// brackets) or a host name.
    pub address: &'a str,
    /// Multicast TTL (`IP4` and other non-`IP6` types only).
    pub ttl: Option<u8>,
    /// Multicast address count.
    pub count: Option<u32>,
}

impl Connection<'_> {
    /// The address as an IP literal of the declared family, if it is one.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        match self.addr_type {
            AddrType::Ip4 => self.address.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            AddrType::Ip6 => self.address.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            AddrType::Other => None,
        }
    }
}

/// Classification of an `m=` proto field (SPEC §4.1), matched exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaTransport {
    /// `RTP/AVP`: plain RTP.
    RtpAvp,
    /// `RTP/AVPF`: plain RTP with feedback.
    RtpAvpf,
    /// `RTP/SAVP`: SRTP, normally keyed by SDES.
    RtpSavp,
    /// `RTP/SAVPF`: SRTP with feedback.
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP`: DTLS-SRTP.
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF`: DTLS-SRTP with feedback.
    UdpTlsRtpSavpf,
    /// `TCP/TLS/RTP/SAVP` (RFC 7850).
    TcpTlsRtpSavp,
    /// `TCP/TLS/RTP/SAVPF` (RFC 7850).
    TcpTlsRtpSavpf,
    /// `TCP/DTLS/RTP/SAVP` (RFC 7850).
    TcpDtlsRtpSavp,
    /// `TCP/DTLS/RTP/SAVPF` (RFC 7850).
    TcpDtlsRtpSavpf,
    /// `udptl`: T.38 fax, unencrypted.
    Udptl,
    /// Anything else (including other capitalisations).
    Other,
}

impl MediaTransport {
    /// Classifies a proto token (exact, case-sensitive match; fails closed).
    #[must_use]
    pub fn parse(proto: &str) -> Self {
        match proto {
            "RTP/AVP" => Self::RtpAvp,
            "RTP/AVPF" => Self::RtpAvpf,
            "RTP/SAVP" => Self::RtpSavp,
            "RTP/SAVPF" => Self::RtpSavpf,
            "UDP/TLS/RTP/SAVP" => Self::UdpTlsRtpSavp,
            "UDP/TLS/RTP/SAVPF" => Self::UdpTlsRtpSavpf,
            "TCP/TLS/RTP/SAVP" => Self::TcpTlsRtpSavp,
            "TCP/TLS/RTP/SAVPF" => Self::TcpTlsRtpSavpf,
            "TCP/DTLS/RTP/SAVP" => Self::TcpDtlsRtpSavp,
            "TCP/DTLS/RTP/SAVPF" => Self::TcpDtlsRtpSavpf,
            "udptl" => Self::Udptl,
            _ => Self::Other,
        }
    }

    /// True for any SRTP profile (SDES- or handshake-keyed).
    #[must_use]
    pub fn is_srtp(self) -> bool {
        self.is_sdes_srtp() || self.is_dtls_srtp()
    }

    /// True for `RTP/SAVP(F)`, whose keys come from `a=crypto`.
    #[must_use]
    pub fn is_sdes_srtp(self) -> bool {
        matches!(self, Self::RtpSavp | Self::RtpSavpf)
    }

    /// True for the (D)TLS-keyed SRTP profiles, which need `a=fingerprint`.
    #[must_use]
    pub fn is_dtls_srtp(self) -> bool {
        matches!(
            self,
            Self::UdpTlsRtpSavp
                | Self::UdpTlsRtpSavpf
                | Self::TcpTlsRtpSavp
                | Self::TcpTlsRtpSavpf
                | Self::TcpDtlsRtpSavp
                | Self::TcpDtlsRtpSavpf
        )
    }
}

/// An `a=` line: `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute name (an RFC 8866 token, case-sensitive).
    pub name: &'a str,
    /// Text after the first `:`, if any (may be empty).
    pub value: Option<&'a str>,
    /// 1-based line number, for error reports on lazily parsed values.
    pub line: u32,
}

/// One `m=` section with its own `c=` and `a=` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Media type: `audio`, `video`, `application`, `image`, `text`, `message`, ...
    pub media: &'a str,
    /// Transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// Optional `/<count>` after the port (at least 1).
    pub port_count: Option<u16>,
    /// Proto field as written.
    pub proto: &'a str,
    /// Classification of [`Media::proto`].
    pub transport: MediaTransport,
    /// Format list (payload types for RTP, `t38` for udptl); never empty.
    pub formats: Vec<&'a str>,
    /// Media-level `c=`, overriding the session-level one.
    pub connection: Option<Connection<'a>>,
    /// Media-level `a=` lines in order.
    pub attributes: Vec<Attribute<'a>>,
    /// 1-based line number of the `m=` line.
    pub line: u32,
}

impl<'a> Media<'a> {
    /// True unless the port is 0 (a rejected or disabled stream).
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.port != 0
    }

    /// Values of every media-level attribute with exactly this name.
    pub fn attribute_values<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = Option<&'a str>> + 's {
        attribute_values(&self.attributes, name)
    }

    /// True if a media-level attribute with exactly this name is present.
    #[must_use]
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// Each media-level `a=crypto` parsed on demand, in offer preference order.
    ///
    /// Per-line results, so a malformed key line can be reported (with its
    /// line number) without making the whole SDP unparseable. Session-level
    /// `a=crypto` is not valid (RFC 4568 §9.1) and is never consulted.
    pub fn crypto(&self) -> impl Iterator<Item = Result<Crypto<'a>, SdpError>> {
        self.attributes
            .iter()
            .filter(|a| a.name == "crypto")
            .map(|a| {
                Crypto::parse(a.value.unwrap_or("")).map_err(|kind| SdpError::new(kind, a.line))
            })
    }

    /// Each media-level `a=fingerprint` parsed on demand (see
    /// [`Sdp::fingerprints_for`] for the session-level fallback).
    pub fn fingerprints(&self) -> impl Iterator<Item = Result<Fingerprint<'a>, SdpError>> {
        fingerprints(&self.attributes)
    }

    /// The media-level `a=setup` role (validated and unique at parse time).
    #[must_use]
    pub fn setup(&self) -> Option<Setup> {
        setup(&self.attributes)
    }

    /// The media-level direction attribute, if any (see [`Sdp::direction_of`]).
    #[must_use]
    pub fn own_direction(&self) -> Option<Direction> {
        direction(&self.attributes)
    }
}

impl<'a> Sdp<'a> {
    /// Values of every session-level attribute with exactly this name.
    pub fn attribute_values<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = Option<&'a str>> + 's {
        attribute_values(&self.attributes, name)
    }

    /// The session-level direction attribute, if any.
    #[must_use]
    pub fn session_direction(&self) -> Option<Direction> {
        direction(&self.attributes)
    }

    /// Effective direction of a stream: media level, else session level, else
    /// `sendrecv` (RFC 4566 §6).
    #[must_use]
    pub fn direction_of(&self, media: &Media<'_>) -> Direction {
        media
            .own_direction()
            .or_else(|| self.session_direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// Effective `a=setup` role of a stream: media level, else session level.
    #[must_use]
    pub fn setup_of(&self, media: &Media<'_>) -> Option<Setup> {
        media.setup().or_else(|| setup(&self.attributes))
    }

    /// Effective connection of a stream: media-level `c=`, else session `c=`.
    #[must_use]
    pub fn connection_of<'s>(&'s self, media: &'s Media<'a>) -> Option<&'s Connection<'a>> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Effective fingerprints of a stream (RFC 8122 §5): the media-level ones
    /// if there is at least one `a=fingerprint` there, else the session-level ones.
    pub fn fingerprints_for<'s>(
        &'s self,
        media: &'s Media<'a>,
    ) -> impl Iterator<Item = Result<Fingerprint<'a>, SdpError>> + 's {
        let attrs = if media.has_attribute("fingerprint") {
            &media.attributes
        } else {
            &self.attributes
        };
        fingerprints(attrs)
    }
}

fn attribute_values<'a, 's>(
    attrs: &'s [Attribute<'a>],
    name: &'s str,
) -> impl Iterator<Item = Option<&'a str>> + 's {
    attrs
        .iter()
        .filter(move |a| a.name == name)
        .map(|a| a.value)
}

fn fingerprints<'a, 's>(
    attrs: &'s [Attribute<'a>],
) -> impl Iterator<Item = Result<Fingerprint<'a>, SdpError>> + 's {
    attrs.iter().filter(|a| a.name == "fingerprint").map(|a| {
        Fingerprint::parse(a.value.unwrap_or("")).map_err(|kind| SdpError::new(kind, a.line))
    })
}

fn setup(attrs: &[Attribute<'_>]) -> Option<Setup> {
    attrs
        .iter()
        .find(|a| a.name == "setup")
        .and_then(|a| a.value)
        .and_then(Setup::parse)
}

fn direction(attrs: &[Attribute<'_>]) -> Option<Direction> {
    attrs
        .iter()
        .find_map(|a| Direction::from_attribute_name(a.name))
}

/// DTLS connection role from `a=setup` (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `active`: this endpoint initiates the (D)TLS connection.
    Active,
    /// `passive`: this endpoint accepts it.
    Passive,
    /// `actpass`: either (offers only).
    ActPass,
    /// `holdconn`: no connection for now.
    HoldConn,
}

impl Setup {
    /// Parses a setup role (case-insensitive ABNF literal).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            ("active", Self::Active),
            ("passive", Self::Passive),
            ("actpass", Self::ActPass),
            ("holdconn", Self::HoldConn),
        ]
        .into_iter()
        .find_map(|(name, v)| s.eq_ignore_ascii_case(name).then_some(v))
    }
}

/// Stream direction from `a=sendrecv|sendonly|recvonly|inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Media flows both ways (the default).
    #[default]
    SendRecv,
    /// The describing side only sends.
    SendOnly,
    /// The describing side only receives.
    RecvOnly,
    /// No media flows (hold).
    Inactive,
}

impl Direction {
    /// Maps an attribute name to a direction (exact match).
    #[must_use]
    pub fn from_attribute_name(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// An SDES crypto suite (RFC 4568 §6.2, RFC 6188, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite<'a> {
    /// `AES_CM_128_HMAC_SHA1_80`.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    AesCm128HmacSha1_32,
    /// `F8_128_HMAC_SHA1_80`.
    F8_128HmacSha1_80,
    /// `AES_192_CM_HMAC_SHA1_80`.
    Aes192CmHmacSha1_80,
    /// `AES_192_CM_HMAC_SHA1_32`.
    Aes192CmHmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80`.
    Aes256CmHmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32`.
    Aes256CmHmacSha1_32,
    /// `AEAD_AES_128_GCM`.
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM`.
    AeadAes256Gcm,
    /// Unregistered name (e.g. `AES_CM_128_NULL_AUTH`, `AEAD_AES_128_GCM_8`).
    Other(&'a str),
}

impl<'a> CryptoSuite<'a> {
    /// Classifies a suite name (case-insensitive, as RFC 4568's ABNF literals are).
    #[must_use]
    pub fn parse(name: &'a str) -> Self {
        [
            ("AES_CM_128_HMAC_SHA1_80", Self::AesCm128HmacSha1_80),
            ("AES_CM_128_HMAC_SHA1_32", Self::AesCm128HmacSha1_32),
            ("F8_128_HMAC_SHA1_80", Self::F8_128HmacSha1_80),
            ("AES_192_CM_HMAC_SHA1_80", Self::Aes192CmHmacSha1_80),
            ("AES_192_CM_HMAC_SHA1_32", Self::Aes192CmHmacSha1_32),
            ("AES_256_CM_HMAC_SHA1_80", Self::Aes256CmHmacSha1_80),
            ("AES_256_CM_HMAC_SHA1_32", Self::Aes256CmHmacSha1_32),
            ("AEAD_AES_128_GCM", Self::AeadAes128Gcm),
            ("AEAD_AES_256_GCM", Self::AeadAes256Gcm),
        ]
        .into_iter()
        .find_map(|(n, v)| name.eq_ignore_ascii_case(n).then_some(v))
        .unwrap_or(Self::Other(name))
    }

    /// Master key and master salt lengths in bytes, for registered suites.
    #[must_use]
    pub fn key_salt_len(&self) -> Option<(usize, usize)> {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 | Self::F8_128HmacSha1_80 => {
                Some((16, 14))
            }
            Self::Aes192CmHmacSha1_80 | Self::Aes192CmHmacSha1_32 => Some((24, 14)),
            Self::Aes256CmHmacSha1_80 | Self::Aes256CmHmacSha1_32 => Some((32, 14)),
            Self::AeadAes128Gcm => Some((16, 12)),
            Self::AeadAes256Gcm => Some((32, 12)),
            Self::Other(_) => None,
        }
    }

    /// True if the suite both encrypts and authenticates; false for every
    /// unregistered name, including `*_NULL_*` ones.
    #[must_use]
    pub fn provides_encryption(&self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

/// One key parameter of `a=crypto` (RFC 4568 §9.1 / §6.1 `inline` method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParam<'a> {
    /// Key method as written, normally `inline`.
    pub method: &'a str,
    /// Base64 master key ‖ salt as written (for other methods, the whole info).
    pub key_salt: &'a str,
    /// Optional lifetime, `[2^]digits`.
    pub lifetime: Option<&'a str>,
    /// Optional MKI value and MKI length (1..=128 bytes).
    pub mki: Option<(&'a str, &'a str)>,
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

impl<'a> KeyParam<'a> {
    /// Parses one `method:info` key parameter.
    fn parse(s: &'a str) -> Result<Self, SdpErrorKind> {
        let bad = SdpErrorKind::MalformedCrypto;
        let (method, info) = s.split_once(':').ok_or(bad)?;
        if method.is_empty() || !method.bytes().all(is_token_char) || info.is_empty() {
            return Err(bad);
        }
        if !method.eq_ignore_ascii_case("inline") {
            return Ok(Self {
                method,
                key_salt: info,
                lifetime: None,
                mki: None,
            });
        }
        let mut parts = info.split('|');
        let key_salt = parts.next().unwrap_or("");
        if key_salt.is_empty()
            || !key_salt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(bad);
        }
        let (lifetime, mki) = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => (None, None),
            (Some(p), None, _) if p.contains(':') => (None, Some(p)),
            (Some(p), None, _) => (Some(p), None),
            (Some(l), Some(m), None) => (Some(l), Some(m)),
            (Some(_), Some(_), Some(_)) => return Err(bad),
        };
        if let Some(l) = lifetime {
            if !is_digits(l.strip_prefix("2^").unwrap_or(l)) {
                return Err(bad);
            }
        }
        let mki = match mki {
            None => None,
            Some(m) => {
                let (value, len) = m.split_once(':').ok_or(bad)?;
                let n = parse_digits::<u8>(len).ok_or(bad)?;
                if !is_digits(value) || len.len() > 3 || !(1..=128).contains(&n) {
                    return Err(bad);
                }
                Some((value, len))
            }
        };
        Ok(Self {
            method,
            key_salt,
            lifetime,
            mki,
        })
    }

    /// Length in bytes of the decoded key ‖ salt; base64 with or without
    /// padding (non-zero trailing bits tolerated); `None` if not valid base64.
    #[must_use]
    pub fn decoded_len(&self) -> Option<usize> {
        let engine = base64_engine();
        let mut buf = [0u8; 96];
        let res = engine.decode_slice(self.key_salt, &mut buf);
        // Best-effort scrub of key material from the stack.
        buf.fill(0);
        core::hint::black_box(&buf);
        match res {
            Ok(n) => Some(n),
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                let mut v = engine.decode(self.key_salt).ok()?;
                let n = v.len();
                v.fill(0);
                core::hint::black_box(&v);
                Some(n)
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => None,
        }
    }
}

/// A parsed `a=crypto` value (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto<'a> {
    /// Tag (1 to 9 digits), echoed by the answerer.
    pub tag: u32,
    /// The crypto suite.
    pub suite: CryptoSuite<'a>,
    /// One or more key parameters (more than one only with MKI).
    pub key_params: Vec<KeyParam<'a>>,
    /// Session parameters as written (`KDR=`, `UNENCRYPTED_SRTP`, ...).
    pub session_params: Vec<&'a str>,
}

impl<'a> Crypto<'a> {
    /// Parses the value of an `a=crypto` attribute (the text after `crypto:`),
    /// checking syntax only; see [`Crypto::is_well_formed`] for key checks.
    pub fn parse(value: &'a str) -> Result<Self, SdpErrorKind> {
        let bad = SdpErrorKind::MalformedCrypto;
        let mut it = value.split_ascii_whitespace();
        let tag_s = it.next().ok_or(bad)?;
        if tag_s.len() > 9 {
            return Err(bad);
        }
        let tag = parse_digits::<u32>(tag_s).ok_or(bad)?;
        let suite_s = it.next().ok_or(bad)?;
        if !suite_s.bytes().all(is_token_char) {
            return Err(bad);
        }
        let suite = CryptoSuite::parse(suite_s);
        let key_params = it
            .next()
            .ok_or(bad)?
            .split(';')
            .map(KeyParam::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let session_params = it.collect();
        Ok(Self {
            tag,
            suite,
            key_params,
            session_params,
        })
    }

    /// True if the suite is registered, every key is `inline` and decodes to
    /// exactly key + salt bytes, and several keys all carry an MKI.
    #[must_use]
    pub fn is_well_formed(&self) -> bool {
        let Some((key, salt)) = self.suite.key_salt_len() else {
            return false;
        };
        let multi = self.key_params.len() > 1;
        !self.key_params.is_empty()
            && self.key_params.iter().all(|k| {
                k.method.eq_ignore_ascii_case("inline")
                    && k.decoded_len() == Some(key + salt)
                    && (!multi || k.mki.is_some())
            })
    }

    /// True if any session parameter switches encryption or authentication off
    /// (`UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP`, `UNAUTHENTICATED_SRTP`, or any
    /// other `UNENCRYPTED_*` / `UNAUTHENTICATED_*`).
    #[must_use]
    pub fn weakens_protection(&self) -> bool {
        self.session_params.iter().any(|p| {
            starts_with_ignore_case(p, "UNENCRYPTED_")
                || starts_with_ignore_case(p, "UNAUTHENTICATED_")
        })
    }
}

/// A parsed `a=fingerprint` value (RFC 8122 §5): certificate hash for DTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint<'a> {
    /// Hash function name as written (`sha-256`, ...; compare case-insensitively).
    pub hash: &'a str,
    /// Colon-separated upper- or lower-case hex pairs as written.
    pub value: &'a str,
}

impl<'a> Fingerprint<'a> {
    /// Parses `<hash-func> SP <fingerprint>` (syntax only).
    pub fn parse(value: &'a str) -> Result<Self, SdpErrorKind> {
        let bad = SdpErrorKind::MalformedFingerprint;
        let mut it = value.split_ascii_whitespace();
        let (Some(hash), Some(fp), None) = (it.next(), it.next(), it.next()) else {
            return Err(bad);
        };
        if !hash.bytes().all(is_token_char) {
            return Err(bad);
        }
        Ok(Self { hash, value: fp })
    }

    /// Digest length in bytes for hash names defined by RFC 8122.
    #[must_use]
    pub fn digest_len(&self) -> Option<usize> {
        [
            ("sha-1", 20),
            ("sha-224", 28),
            ("sha-256", 32),
            ("sha-384", 48),
            ("sha-512", 64),
            ("md5", 16),
            ("md2", 16),
        ]
        .into_iter()
        .find_map(|(n, len)| self.hash.eq_ignore_ascii_case(n).then_some(len))
    }

    /// True if the hash is known and the value is exactly its length in
    /// colon-separated hex pairs.
    #[must_use]
    pub fn is_well_formed(&self) -> bool {
        let Some(len) = self.digest_len() else {
            return false;
        };
        let mut n = 0usize;
        for pair in self.value.split(':') {
            if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            n += 1;
        }
        n == len
    }

    /// True for a well-formed SHA-256, SHA-384 or SHA-512 fingerprint.
    #[must_use]
    pub fn is_strong(&self) -> bool {
        self.is_well_formed() && self.digest_len().is_some_and(|l| l >= 32)
    }
}

/// Parses an SDP body with [`SdpLimits::default`].
pub fn parse(body: &[u8]) -> Result<Sdp<'_>, SdpError> {
    parse_with(body, &SdpLimits::default())
}

/// Per-section state used to refuse ambiguous attribute sets.
#[derive(Default)]
struct SectionFlags {
    direction: bool,
    setup: bool,
}

/// Parses an SDP body under explicit limits.
pub fn parse_with<'a>(body: &'a [u8], limits: &SdpLimits) -> Result<Sdp<'a>, SdpError> {
    use SdpErrorKind as K;

    let mut rest = body;
    let mut line_no: u32 = 0;
    let mut origin: Option<Origin<'a>> = None;
    let mut session_name: Option<&'a str> = None;
    let mut connection: Option<Connection<'a>> = None;
    let mut attributes: Vec<Attribute<'a>> = Vec::new();
    let mut media: Vec<Media<'a>> = Vec::new();
    let mut flags = SectionFlags::default();

    while !rest.is_empty() {
        line_no = line_no.saturating_add(1);
        let err = |kind| SdpError::new(kind, line_no);
        if usize::try_from(line_no).unwrap_or(usize::MAX) > limits.max_lines {
            return Err(err(K::TooManyLines));
        }
        let raw = next_line(&mut rest, limits.max_line_len).ok_or_else(|| err(K::LineTooLong))?;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > limits.max_line_len {
            return Err(err(K::LineTooLong));
        }
        if memchr::memchr2(b'\0', b'\r', raw).is_some() {
            return Err(err(K::InvalidCharacter));
        }
        let text = core::str::from_utf8(raw).map_err(|_| err(K::InvalidUtf8))?;

        if line_no == 1 {
            match text.strip_prefix("v=") {
                Some("0") => continue,
                Some(_) => return Err(err(K::UnsupportedVersion)),
                None => return Err(err(K::MissingVersion)),
            }
        }
        if text.is_empty() {
            // Tolerated: stray blank lines (often a trailing extra CRLF).
            continue;
        }
        let (kind, value) = match (text.as_bytes(), text.get(2..)) {
            ([t, b'=', ..], Some(v)) if t.is_ascii_alphabetic() => (*t, v),
            _ => return Err(err(K::MalformedLine)),
        };
        let in_media = !media.is_empty();

        match kind {
            b'v' => return Err(err(K::DuplicateLine)),
            b'o' => {
                if origin.is_some() {
                    return Err(err(K::DuplicateLine));
                }
                origin = Some(parse_origin(value).ok_or_else(|| err(K::MalformedOrigin))?);
            }
            b's' => {
                if session_name.is_some() {
                    return Err(err(K::DuplicateLine));
                }
                session_name = Some(value);
            }
            b'c' => {
                let c = parse_connection(value).ok_or_else(|| err(K::MalformedConnection))?;
                let slot = match media.last_mut() {
                    Some(m) => &mut m.connection,
                    None => &mut connection,
                };
                if slot.is_some() {
                    return Err(err(K::DuplicateLine));
                }
                *slot = Some(c);
            }
            b'a' => {
                let attr =
                    parse_attribute(value, line_no).ok_or_else(|| err(K::MalformedAttribute))?;
                let list = match media.last_mut() {
                    Some(m) => &mut m.attributes,
                    None => &mut attributes,
                };
                if list.len() >= limits.max_attributes {
                    return Err(err(K::TooManyAttributes));
                }
                if Direction::from_attribute_name(attr.name).is_some() {
                    if flags.direction {
                        return Err(err(K::ConflictingAttribute));
                    }
                    flags.direction = true;
                } else if attr.name == "setup" {
                    if attr.value.and_then(Setup::parse).is_none() {
                        return Err(err(K::MalformedAttribute));
                    }
                    if flags.setup {
                        return Err(err(K::ConflictingAttribute));
                    }
                    flags.setup = true;
                }
                list.push(attr);
            }
            b'm' => {
                if !in_media {
                    if origin.is_none() {
                        return Err(err(K::MissingOrigin));
                    }
                    if session_name.is_none() {
                        return Err(err(K::MissingSessionName));
                    }
                }
                if media.len() >= limits.max_media {
                    return Err(err(K::TooManyMedia));
                }
                let m = parse_media(value, line_no).map_err(err)?;
                media.push(m);
                flags = SectionFlags::default();
            }
            // i, u, e, p, b, t, r, z, k and unknown types: accepted and ignored.
            _ => {}
        }
    }

    if line_no == 0 {
        return Err(SdpError::new(K::MissingVersion, 1));
    }
    let origin = origin.ok_or_else(|| SdpError::new(K::MissingOrigin, line_no))?;
    let session_name = session_name.ok_or_else(|| SdpError::new(K::MissingSessionName, line_no))?;
    Ok(Sdp {
        version: 0,
        origin,
        session_name,
        connection,
        attributes,
        media,
    })
}

/// Splits off the next line (without its LF), scanning at most
/// `max_len + 2` bytes; `None` if no line end lies within that window.
fn next_line<'a>(rest: &mut &'a [u8], max_len: usize) -> Option<&'a [u8]> {
    let window_len = max_len.saturating_add(2).min(rest.len());
    let window = rest.get(..window_len)?;
    match memchr::memchr(b'\n', window) {
        Some(i) => {
            let line = rest.get(..i)?;
            *rest = rest.get(i + 1..)?;
            Some(line)
        }
        None if window_len == rest.len() => {
            let line = *rest;
            *rest = &[];
            Some(line)
        }
        None => None,
    }
}

/// Splits on single spaces, tolerating repeated or trailing spaces.
fn fields(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ').filter(|f| !f.is_empty())
}

fn parse_origin(value: &str) -> Option<Origin<'_>> {
    let mut it = fields(value);
    let o = Origin {
        username: it.next()?,
        session_id: it.next()?,
        session_version: it.next()?,
        net_type: it.next()?,
        addr_type: it.next()?,
        address: it.next()?,
    };
    it.next().is_none().then_some(o)
}

fn parse_connection(value: &str) -> Option<Connection<'_>> {
    let mut it = fields(value);
    let (net_type, addr_type, full) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let addr_type = AddrType::parse(addr_type);
    let mut parts = full.split('/');
    let address = parts.next().filter(|a| !a.is_empty())?;
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    if c.is_some() {
        return None;
    }
    let (ttl, count) = match (addr_type, a, b) {
        (_, None, _) => (None, None),
        (AddrType::Ip6, Some(n), None) => (None, Some(parse_digits::<u32>(n)?)),
        (AddrType::Ip6, Some(_), Some(_)) => return None,
        (_, Some(t), None) => (Some(parse_digits::<u8>(t)?), None),
        (_, Some(t), Some(n)) => (Some(parse_digits::<u8>(t)?), Some(parse_digits::<u32>(n)?)),
    };
    if count == Some(0) {
        return None;
    }
    Some(Connection {
        net_type,
        addr_type,
        address,
        ttl,
        count,
    })
}

fn parse_media(value: &str, line: u32) -> Result<Media<'_>, SdpErrorKind> {
    let bad = SdpErrorKind::MalformedMedia;
    let mut it = fields(value);
    let media = it.next().ok_or(bad)?;
    let port_field = it.next().ok_or(bad)?;
    let proto = it.next().ok_or(bad)?;
    let formats: Vec<&str> = it.collect();
    if formats.is_empty() {
        return Err(bad);
    }
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port = parse_digits::<u16>(port).ok_or(SdpErrorKind::InvalidPort)?;
    let port_count = match port_count {
        Some(c) => Some(
            parse_digits::<u16>(c)
                .filter(|&n| n > 0)
                .ok_or(SdpErrorKind::InvalidPort)?,
        ),
        None => None,
    };
    Ok(Media {
        media,
        port,
        port_count,
        proto,
        transport: MediaTransport::parse(proto),
        formats,
        connection: None,
        attributes: Vec::new(),
        line,
    })
}

fn parse_attribute(value: &str, line: u32) -> Option<Attribute<'_>> {
    let (name, value) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    (!name.is_empty() && name.bytes().all(is_token_char)).then_some(Attribute { name, value, line })
}

/// RFC 8866 `token-char`.
fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a non-empty all-digit string (no sign, unlike `str::parse`).
fn parse_digits<T: core::str::FromStr>(s: &str) -> Option<T> {
    if is_digits(s) { s.parse().ok() } else { None }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SDP body of RFC 4475 wsinv.dat (§3.1.1.2), CRLF line ends.
    const WSINV: &str = "v=0\r\n\
o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n\
s=-\r\n\
c=IN IP4 192.0.2.4\r\n\
t=0 0\r\n\
m=audio 49217 RTP/AVP 0 12\r\n\
m=video 3227 RTP/AVP 31\r\n\
a=rtpmap:31 LPC\r\n";

    /// SDP body of RFC 4475 inv2543.dat (§3.4.1).
    const INV2543: &str = "v=0\r\n\
o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n\
s=-\r\n\
c=IN IP4 192.0.2.5\r\n\
t=0 0\r\n\
m=audio 49217 RTP/AVP 0\r\n";

    const SRTP_OFFER: &str = "v=0\r\n\
o=- 1 1 IN IP4 198.51.100.7\r\n\
s=-\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 40000 RTP/SAVP 0 8 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32\r\n\
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLQ==\r\n\
a=crypto:4 AES_256_CM_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLQ\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

    const FP256: &str = "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF";

    fn dtls_offer() -> String {
        format!(
            "v=0\n\
o=- 4611731400430051336 2 IN IP6 2001:db8::7\n\
s=-\n\
t=0 0\n\
a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\n\
a=recvonly\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\n\
c=IN IP6 2001:db8::7\n\
a=fingerprint:sha-256 {FP256}\n\
a=setup:actpass\n\
a=rtcp-mux\n\
a=inactive\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\n\
c=IN IP6 2001:db8::7\n"
        )
    }

    #[test]
    fn rfc4475_bodies() {
        let sdp = parse(WSINV.as_bytes()).unwrap();
        assert_eq!(sdp.version, 0);
        assert_eq!(sdp.origin.username, "mhandley");
        assert_eq!(sdp.origin.session_id, "29739");
        assert_eq!(sdp.origin.session_version, "7272939");
        assert_eq!(sdp.origin.address, "192.0.2.3");
        assert_eq!(sdp.session_name, "-");
        let c = sdp.connection.unwrap();
        assert_eq!(c.addr_type, AddrType::Ip4);
        assert_eq!(c.ip(), Some("192.0.2.4".parse().unwrap()));
        assert_eq!(sdp.media.len(), 2);
        let a = &sdp.media[0];
        assert_eq!((a.media, a.port, a.proto), ("audio", 49217, "RTP/AVP"));
        assert_eq!(a.transport, MediaTransport::RtpAvp);
        assert_eq!(a.formats, ["0", "12"]);
        assert_eq!(a.line, 6);
        let v = &sdp.media[1];
        assert_eq!((v.media, v.port), ("video", 3227));
        assert_eq!(v.attributes[0].name, "rtpmap");
        assert_eq!(v.attributes[0].value, Some("31 LPC"));
        assert_eq!(sdp.direction_of(v), Direction::SendRecv);
        assert_eq!(sdp.connection_of(v).unwrap().address, "192.0.2.4");

        let sdp = parse(INV2543.as_bytes()).unwrap();
        assert_eq!(sdp.media.len(), 1);
        assert!(sdp.media[0].is_active());
        assert_eq!(sdp.media[0].crypto().count(), 0);
    }

    #[test]
    fn rfc4475_corpus_files() {
        // Every SDP body in the RFC 4475 torture corpus parses without panic
        // and is accepted, except mismatch02's, which lacks the mandatory s=.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
        let entries = std::fs::read_dir(dir).unwrap();
        let mut seen = 0;
        let mut failed = Vec::new();
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let body = &data[i + 4..];
            let r = parse(body);
            if body.starts_with(b"v=0\r\n") {
                seen += 1;
                if let Err(e) = r {
                    failed.push((path.file_name().unwrap().to_owned(), e));
                }
            }
        }
        assert!(seen >= 10, "{seen}");
        let expected = SdpError {
            kind: SdpErrorKind::MissingSessionName,
            line: 4,
        };
        assert_eq!(failed, [("mismatch02.dat".into(), expected)]);
    }

    #[test]
    fn srtp_offer_crypto() {
        let sdp = parse(SRTP_OFFER.as_bytes()).unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.transport, MediaTransport::RtpSavp);
        assert!(m.transport.is_sdes_srtp() && m.transport.is_srtp());
        let c: Vec<_> = m.crypto().map(Result::unwrap).collect();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].tag, 1);
        assert_eq!(c[0].suite, CryptoSuite::AesCm128HmacSha1_80);
        assert_eq!(
            c[0].key_params,
            [KeyParam {
                method: "inline",
                key_salt: "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
                lifetime: Some("2^20"),
                mki: Some(("1", "32")),
            }]
        );
        assert_eq!(c[0].key_params[0].decoded_len(), Some(30));
        assert_eq!(c[1].suite, CryptoSuite::AesCm128HmacSha1_32);
        assert_eq!(c[2].suite, CryptoSuite::Aes256CmHmacSha1_80);
        assert_eq!(c[2].key_params[0].decoded_len(), Some(46));
        assert_eq!(c[3].key_params[0].decoded_len(), Some(46));
        for x in &c {
            assert!(x.is_well_formed(), "{x:?}");
            assert!(!x.weakens_protection());
            assert!(x.suite.provides_encryption());
            assert!(x.session_params.is_empty());
        }
        assert_eq!(sdp.direction_of(m), Direction::SendRecv);
        assert_eq!(m.own_direction(), Some(Direction::SendRecv));
        assert_eq!(
            m.attribute_values("rtpmap").collect::<Vec<_>>(),
            [Some("101 telephone-event/8000")]
        );
    }

    #[test]
    fn crypto_details() {
        // Suite-length mismatch: AES_256 suite with a 30-byte key.
        let c = Crypto::parse(
            "1 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        )
        .unwrap();
        assert!(!c.is_well_formed());
        // Unknown / NULL suites never count as encryption.
        let c =
            Crypto::parse("1 AES_CM_128_NULL_AUTH inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
                .unwrap();
        assert_eq!(c.suite, CryptoSuite::Other("AES_CM_128_NULL_AUTH"));
        assert!(!c.suite.provides_encryption());
        assert!(!c.is_well_formed());
        assert_eq!(c.suite.key_salt_len(), None);
        // Session params.
        let c = Crypto::parse(
            "7 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=1 UNENCRYPTED_SRTCP",
        )
        .unwrap();
        assert_eq!(c.session_params, ["KDR=1", "UNENCRYPTED_SRTCP"]);
        assert!(c.weakens_protection());
        assert!(c.is_well_formed());
        // MKI without lifetime, and multiple keys.
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4;inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|2:4",
        )
        .unwrap();
        assert_eq!(c.key_params.len(), 2);
        assert_eq!(c.key_params[0].mki, Some(("1", "4")));
        assert_eq!(c.key_params[0].lifetime, None);
        assert!(c.is_well_formed());
        // Multiple keys without MKI are not well formed.
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
        )
        .unwrap();
        assert!(!c.is_well_formed());
        // GCM suites: 28 bytes (16/12) and 44 bytes (32/12).
        assert_eq!(
            CryptoSuite::parse("aead_aes_128_gcm"),
            CryptoSuite::AeadAes128Gcm
        );
        assert_eq!(CryptoSuite::AeadAes256Gcm.key_salt_len(), Some((32, 12)));
        let c = Crypto::parse("1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==")
            .unwrap();
        assert!(c.is_well_formed());
        // Syntax errors.
        for bad in [
            "",
            "1",
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "+1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:",
            "1 AES_CM_128_HMAC_SHA1_80 inline:A*AA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:129",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0128",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20|1:4|x",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA;",
            "1 AES_CM_128_HMAC_SHA1_80 noColon",
        ] {
            assert_eq!(
                Crypto::parse(bad),
                Err(SdpErrorKind::MalformedCrypto),
                "{bad:?}"
            );
        }
        // Invalid base64 gives no length.
        let k = KeyParam {
            method: "inline",
            key_salt: "A",
            lifetime: None,
            mki: None,
        };
        assert_eq!(k.decoded_len(), None);
        let k = KeyParam {
            method: "inline",
            key_salt: "QUJD=A==",
            lifetime: None,
            mki: None,
        };
        assert_eq!(k.decoded_len(), None);
        // Long keys fall back to heap decoding.
        let long = "QUJD".repeat(100);
        let k = KeyParam {
            method: "inline",
            key_salt: &long,
            lifetime: None,
            mki: None,
        };
        assert_eq!(k.decoded_len(), Some(300));
    }

    #[test]
    fn malformed_crypto_line_does_not_fail_sdp() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 5000 RTP/SAVP 0\r\na=crypto:garbage\r\na=crypto\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
        let sdp = parse(body.as_bytes()).unwrap();
        let r: Vec<_> = sdp.media[0].crypto().collect();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            Err(SdpError {
                kind: SdpErrorKind::MalformedCrypto,
                line: 7
            })
        );
        assert_eq!(r[1].as_ref().unwrap_err().line, 8);
        assert!(r[2].as_ref().unwrap().is_well_formed());
    }

    #[test]
    fn dtls_offer_and_directions() {
        let body = dtls_offer();
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.origin.addr_type, "IP6");
        assert!(sdp.connection.is_none());
        assert_eq!(sdp.session_direction(), Some(Direction::RecvOnly));
        let a = &sdp.media[0];
        assert_eq!(a.transport, MediaTransport::UdpTlsRtpSavpf);
        assert!(a.transport.is_dtls_srtp() && !a.transport.is_sdes_srtp());
        let c = a.connection.unwrap();
        assert_eq!(c.addr_type, AddrType::Ip6);
        assert_eq!(c.address, "2001:db8::7");
        assert_eq!(c.ip(), Some("2001:db8::7".parse().unwrap()));
        let fps: Vec<_> = a.fingerprints().map(Result::unwrap).collect();
        assert_eq!(
            fps,
            [Fingerprint {
                hash: "sha-256",
                value: FP256
            }]
        );
        assert!(fps[0].is_strong());
        assert_eq!(a.setup(), Some(Setup::ActPass));
        assert!(a.has_attribute("rtcp-mux"));
        assert_eq!(sdp.direction_of(a), Direction::Inactive);

        // Second stream is rejected and falls back to session-level values.
        let v = &sdp.media[1];
        assert!(!v.is_active());
        assert_eq!(sdp.direction_of(v), Direction::RecvOnly);
        assert_eq!(v.setup(), None);
        assert_eq!(sdp.setup_of(v), None);
        let fps: Vec<_> = sdp.fingerprints_for(v).map(Result::unwrap).collect();
        assert_eq!(fps.len(), 1);
        assert_eq!(fps[0].digest_len(), Some(20));
        assert!(fps[0].is_well_formed() && !fps[0].is_strong());
        assert_eq!(sdp.fingerprints_for(a).count(), 1);
        assert!(sdp.fingerprints_for(a).all(|f| f.unwrap().is_strong()));
    }

    #[test]
    fn fingerprint_checks() {
        let lower = FP256.to_ascii_lowercase();
        assert!(
            Fingerprint {
                hash: "SHA-256",
                value: &lower
            }
            .is_strong()
        );
        let short = &FP256[..FP256.len() - 3];
        assert!(
            !Fingerprint {
                hash: "sha-256",
                value: short
            }
            .is_strong()
        );
        assert!(
            !Fingerprint {
                hash: "sha-256",
                value: &FP256.replace(':', "")
            }
            .is_strong()
        );
        assert!(
            !Fingerprint {
                hash: "sha-3000",
                value: FP256
            }
            .is_strong()
        );
        assert!(
            !Fingerprint {
                hash: "sha-256",
                value: &format!("{FP256}:")
            }
            .is_strong()
        );
        assert!(
            !Fingerprint {
                hash: "sha-256",
                value: &FP256.replacen("4A", "4G", 1)
            }
            .is_strong()
        );
        assert_eq!(
            Fingerprint::parse("sha-256"),
            Err(SdpErrorKind::MalformedFingerprint)
        );
        assert_eq!(
            Fingerprint::parse("sha-256 AA BB"),
            Err(SdpErrorKind::MalformedFingerprint)
        );
        assert_eq!(
            Fingerprint::parse(""),
            Err(SdpErrorKind::MalformedFingerprint)
        );
    }

    fn with_media(extra: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n{extra}")
    }

    #[test]
    fn connection_forms() {
        let p = parse_connection;
        let c = p("IN IP4 233.252.0.1/127/3").unwrap();
        assert_eq!(
            (c.address, c.ttl, c.count),
            ("233.252.0.1", Some(127), Some(3))
        );
        let c = p("IN IP4 233.252.0.1/127").unwrap();
        assert_eq!((c.ttl, c.count), (Some(127), None));
        let c = p("IN IP6 ff15::101/3").unwrap();
        assert_eq!((c.address, c.ttl, c.count), ("ff15::101", None, Some(3)));
        let c = p("IN IP4 media.example.com").unwrap();
        assert_eq!(c.ip(), None);
        assert_eq!(p("IN foo bar").unwrap().addr_type, AddrType::Other);
        for bad in [
            "",
            "IN",
            "IN IP4",
            "IN IP4 1.2.3.4 x",
            "IN IP4 /3",
            "IN IP4 1.2.3.4/256",
            "IN IP4 1.2.3.4/1/0",
            "IN IP6 ::1/1/2",
            "IN IP4 1.2.3.4/1/2/3",
            "IN IP4 1.2.3.4/+1",
        ] {
            assert!(p(bad).is_none(), "{bad:?}");
        }
        let e = parse(with_media("c=IN IP4\r\n").as_bytes()).unwrap_err();
        assert_eq!(
            e,
            SdpError {
                kind: SdpErrorKind::MalformedConnection,
                line: 5
            }
        );
        let e =
            parse(with_media("c=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n").as_bytes()).unwrap_err();
        assert_eq!(e.kind, SdpErrorKind::DuplicateLine);
    }

    #[test]
    fn media_forms() {
        let body = with_media(
            "m=image 0 udptl t38\r\nm=audio 5004/2 RTP/AVP 0 \r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        );
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.media[0].transport, MediaTransport::Udptl);
        assert!(!sdp.media[0].is_active());
        assert_eq!(sdp.media[1].port_count, Some(2));
        assert_eq!(sdp.media[1].formats, ["0"]);
        assert_eq!(sdp.media[2].transport, MediaTransport::Other);
        assert_eq!(MediaTransport::parse("rtp/savp"), MediaTransport::Other);
        for (m, kind) in [
            ("m=audio 70000 RTP/AVP 0", SdpErrorKind::InvalidPort),
            ("m=audio -1 RTP/AVP 0", SdpErrorKind::InvalidPort),
            ("m=audio +5 RTP/AVP 0", SdpErrorKind::InvalidPort),
            ("m=audio 5/0 RTP/AVP 0", SdpErrorKind::InvalidPort),
            ("m=audio 5/ RTP/AVP 0", SdpErrorKind::InvalidPort),
            ("m=audio 5000 RTP/AVP", SdpErrorKind::MalformedMedia),
            ("m=audio", SdpErrorKind::MalformedMedia),
            ("m=", SdpErrorKind::MalformedMedia),
        ] {
            let e = parse(with_media(&format!("{m}\r\n")).as_bytes()).unwrap_err();
            assert_eq!(e, SdpError { kind, line: 5 }, "{m}");
        }
    }

    #[test]
    fn malformed_inputs() {
        let e = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(
            e(b""),
            SdpError {
                kind: SdpErrorKind::MissingVersion,
                line: 1
            }
        );
        assert_eq!(
            e(b"o=- 1 1 IN IP4 1.2.3.4\r\n").kind,
            SdpErrorKind::MissingVersion
        );
        assert_eq!(e(b"\r\nv=0\r\n").kind, SdpErrorKind::MissingVersion);
        assert_eq!(e(b"v=1\r\n").kind, SdpErrorKind::UnsupportedVersion);
        assert_eq!(
            e(b"v=0\r\n"),
            SdpError {
                kind: SdpErrorKind::MissingOrigin,
                line: 1
            }
        );
        assert_eq!(
            e(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n").kind,
            SdpErrorKind::MissingSessionName
        );
        assert_eq!(
            e(b"v=0\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n"),
            SdpError {
                kind: SdpErrorKind::MissingOrigin,
                line: 3
            }
        );
        assert_eq!(
            e(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n").kind,
            SdpErrorKind::MissingSessionName
        );
        assert_eq!(
            e(b"v=0\r\no=- 1 1 IN IP4\r\n").kind,
            SdpErrorKind::MalformedOrigin
        );
        assert_eq!(
            e(b"v=0\r\no=- 1 1 IN IP4 a b\r\n").kind,
            SdpErrorKind::MalformedOrigin
        );
        assert_eq!(
            e(with_media("v=0\r\n").as_bytes()).kind,
            SdpErrorKind::DuplicateLine
        );
        assert_eq!(
            e(with_media("s=x\r\n").as_bytes()).kind,
            SdpErrorKind::DuplicateLine
        );
        assert_eq!(
            e(with_media("m=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 1.2.3.4\r\n").as_bytes()).kind,
            SdpErrorKind::DuplicateLine
        );
        // Line without '=' / space before '=' (RFC 4475 dblreq).
        assert_eq!(
            e(with_media("garbage\r\n").as_bytes()),
            SdpError {
                kind: SdpErrorKind::MalformedLine,
                line: 5
            }
        );
        assert_eq!(
            e(with_media("m =video 3227 RTP/AVP 31\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedLine
        );
        assert_eq!(
            e(with_media("1=x\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedLine
        );
        assert_eq!(
            e(with_media("a\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedLine
        );
        // Non-UTF-8, NUL, stray CR.
        let mut b = with_media("a=x:").into_bytes();
        b.extend_from_slice(b"\xff\xfe\r\n");
        assert_eq!(
            e(&b),
            SdpError {
                kind: SdpErrorKind::InvalidUtf8,
                line: 5
            }
        );
        assert_eq!(
            e(with_media("a=x\0y\r\n").as_bytes()).kind,
            SdpErrorKind::InvalidCharacter
        );
        assert_eq!(
            e(with_media("a=x\ry\r\n").as_bytes()).kind,
            SdpErrorKind::InvalidCharacter
        );
        assert_eq!(
            e(with_media("a=x\r\r\n").as_bytes()).kind,
            SdpErrorKind::InvalidCharacter
        );
        // Attributes.
        assert_eq!(
            e(with_media("a=\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedAttribute
        );
        assert_eq!(
            e(with_media("a=:x\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedAttribute
        );
        assert_eq!(
            e(with_media("a=a b\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedAttribute
        );
        assert_eq!(
            e(with_media("a=setup:sometimes\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedAttribute
        );
        assert_eq!(
            e(with_media("a=setup\r\n").as_bytes()).kind,
            SdpErrorKind::MalformedAttribute
        );
        assert_eq!(
            e(with_media("a=sendonly\r\na=recvonly\r\n").as_bytes()),
            SdpError {
                kind: SdpErrorKind::ConflictingAttribute,
                line: 6
            }
        );
        assert_eq!(
            e(
                with_media("m=audio 1 RTP/AVP 0\r\na=setup:active\r\na=setup:passive\r\n")
                    .as_bytes()
            )
            .kind,
            SdpErrorKind::ConflictingAttribute
        );
        // Display is lowercase without trailing period.
        let msg = e(b"v=1\r\n").to_string();
        assert_eq!(msg, "sdp line 1: unsupported sdp version");
    }

    #[test]
    fn lenient_forms() {
        // Bare LF, no final newline, blank lines, unknown line types, empty s=.
        let sdp = parse(b"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\nx=whatever\n\nt=0 0\nm=audio 1 RTP/AVP 0\nb=AS:64\nz=?\na=sendonly").unwrap();
        assert_eq!(sdp.session_name, "");
        assert_eq!(sdp.media.len(), 1);
        assert_eq!(sdp.direction_of(&sdp.media[0]), Direction::SendOnly);
        // Directions and setup per section do not conflict across sections.
        let body = with_media(
            "a=sendonly\r\na=setup:PASSIVE\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\na=setup:active\r\nm=video 1 RTP/AVP 0\r\n",
        );
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.setup_of(&sdp.media[0]), Some(Setup::Active));
        assert_eq!(sdp.setup_of(&sdp.media[1]), Some(Setup::Passive));
        assert_eq!(sdp.direction_of(&sdp.media[1]), Direction::SendOnly);
        assert_eq!(
            sdp.attribute_values("setup").collect::<Vec<_>>(),
            [Some("PASSIVE")]
        );
    }

    #[test]
    fn limits_exceeded() {
        let tight = SdpLimits {
            max_lines: 6,
            max_media: 1,
            max_attributes: 2,
            max_line_len: 40,
        };
        let e = |s: &str| parse_with(s.as_bytes(), &tight).unwrap_err();
        assert_eq!(
            e(&with_media("a=x\r\na=y\r\na=z\r\n")),
            SdpError {
                kind: SdpErrorKind::TooManyLines,
                line: 7
            }
        );
        assert_eq!(
            e(&with_media("a=x\r\na=y\r\n\r\n")).kind,
            SdpErrorKind::TooManyLines
        );
        assert_eq!(
            e(&with_media(
                "m=audio 1 RTP/AVP 0\r\nm=audio 1 RTP/AVP 0\r\n"
            )),
            SdpError {
                kind: SdpErrorKind::TooManyMedia,
                line: 6
            }
        );
        let tight2 = SdpLimits {
            max_lines: 100,
            ..tight
        };
        let e2 = |s: &str| parse_with(s.as_bytes(), &tight2).unwrap_err();
        assert_eq!(
            e2(&with_media("a=x\r\na=y\r\na=z\r\n")),
            SdpError {
                kind: SdpErrorKind::TooManyAttributes,
                line: 7
            }
        );
        assert_eq!(
            e2(&with_media("m=audio 1 RTP/AVP 0\r\na=x\r\na=y\r\na=z\r\n")).kind,
            SdpErrorKind::TooManyAttributes
        );
        let long = format!("a={}\r\n", "x".repeat(39));
        assert_eq!(
            e2(&with_media(&long)),
            SdpError {
                kind: SdpErrorKind::LineTooLong,
                line: 5
            }
        );
        // Exactly at the limit is fine, with CRLF, LF or no terminator.
        let ok = "a=".to_owned() + &"x".repeat(38);
        for end in ["\r\n", "\n", ""] {
            assert!(parse_with(with_media(&format!("{ok}{end}")).as_bytes(), &tight2).is_ok());
        }
        // Huge single line without newline is refused without scanning it all.
        let mut huge = with_media("a=").into_bytes();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        assert_eq!(parse(&huge).unwrap_err().kind, SdpErrorKind::LineTooLong);
        // Defaults.
        assert_eq!(
            SdpLimits::default(),
            SdpLimits {
                max_lines: 512,
                max_media: 16,
                max_attributes: 64,
                max_line_len: 1024
            }
        );
    }

    /// Touches every accessor so the property tests exercise them too.
    fn exercise(sdp: &Sdp<'_>) {
        let _ = sdp.session_direction();
        for m in &sdp.media {
            let _ = (
                m.is_active(),
                sdp.direction_of(m),
                sdp.setup_of(m),
                sdp.connection_of(m),
            );
            let _ = m.connection.map(|c| c.ip());
            for c in m.crypto().flatten() {
                let _ = (
                    c.is_well_formed(),
                    c.weakens_protection(),
                    c.suite.provides_encryption(),
                );
                for k in &c.key_params {
                    let _ = k.decoded_len();
                }
            }
            for f in sdp.fingerprints_for(m).flatten() {
                let _ = f.is_strong();
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(sdp) = parse(&body) {
                exercise(&sdp);
            }
        }

        #[test]
        fn line_soup_never_panics(
            lines in proptest::collection::vec(
                prop_oneof![
                    "[vosctmab]=[ -~]{0,60}",
                    "m=(audio|video) [0-9/]{1,7} (RTP/SAVP|UDP/TLS/RTP/SAVPF|udptl) [0-9 ]{0,8}",
                    "a=crypto:[0-9]{0,3} [A-Z_0-9]{0,24} inline:[A-Za-z0-9+/=|^:;]{0,60}( [A-Z_=0-9]{0,10})?",
                    "a=fingerprint:sha-[0-9]{1,3} [0-9A-F:]{0,100}",
                    "a=(setup:(active|actpass|x)|sendonly|recvonly|inactive)",
                    "c=IN IP[46x] [0-9a-f.:/]{0,30}",
                    "[ -~]{0,40}",
                ],
                0..40,
            ),
            lf in any::<bool>(),
            header in any::<bool>(),
        ) {
            let sep = if lf { "\n" } else { "\r\n" };
            let mut body = String::new();
            if header {
                body.push_str("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n");
            }
            body.push_str(&lines.join(sep));
            for limits in [SdpLimits::default(), SdpLimits { max_lines: 8, max_media: 2, max_attributes: 3, max_line_len: 50 }] {
                if let Ok(sdp) = parse_with(body.as_bytes(), &limits) {
                    exercise(&sdp);
                }
            }
        }
    }
}
