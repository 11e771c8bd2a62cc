//! Why a message could not be parsed. Allocation-free and `Copy`, so that the hot path can
//! return it by value and the reply path can turn it into a reason phrase.

use std::fmt;

use crate::name::HeaderName;

/// What went wrong, precisely enough to pick a status and a reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but CRLF keep-alives.
    Empty,
    /// The message is larger than the configured maximum.
    MessageTooLarge,
    /// The header section did not end before the bytes did.
    Incomplete,
    /// Request-Line or Status-Line does not follow the grammar.
    BadStartLine,
    /// The SIP-Version is not `SIP/<digits>.<digits>`.
    BadVersion,
    /// The version is well-formed but not 2.0 (505).
    UnsupportedVersion,
    /// The status code is not three digits in 100–699.
    BadStatusCode,
    /// The Request-URI does not parse, or holds what a Request-URI may not.
    BadRequestUri,
    /// The Request-URI is longer than the configured maximum (414).
    UriTooLong,
    /// A line ends in a bare CR or LF instead of CRLF.
    BadLineEnding,
    /// A header line without a colon or with a name that is not a token.
    BadHeaderLine,
    /// A continuation line before the first header.
    BadFolding,
    /// One header (with its folds) is longer than the configured maximum.
    HeaderTooLong,
    /// More header lines than the configured maximum.
    TooManyHeaders,
    /// More Via values than the configured maximum.
    TooManyVias,
    /// The header section is not valid UTF-8.
    InvalidUtf8,
    /// Content-Length is missing where it is mandatory (streams).
    MissingContentLength,
    /// Content-Length is not a number within range.
    BadContentLength,
    /// Fewer body bytes than Content-Length announces.
    BodyTruncated,
    /// The body is longer than the configured maximum.
    BodyTooLarge,
    /// A header that must appear at most once appears twice.
    DuplicateHeader(HeaderName),
    /// A header the message cannot do without is absent.
    MissingHeader(HeaderName),
    /// A header's value does not follow its grammar.
    MalformedHeader(HeaderName),
    /// The CSeq method differs from the Request-Line method.
    CSeqMismatch,
}

/// A parse failure: what, and where (byte offset into the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Byte offset at which it was detected.
    pub offset: usize,
    /// Whether the start line said this is a response (bad responses are dropped, not answered).
    pub response: bool,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, offset: usize, response: bool) -> Self {
        Self {
            kind,
            offset,
            response,
        }
    }

    /// The reason phrase a rejection of this request carries.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl ParseErrorKind {
    /// A short reason phrase, fit for a status line and a log.
    pub fn reason(self) -> &'static str {
        use HeaderName as H;
        match self {
            Self::Empty => "Empty Message",
            Self::MessageTooLarge => "Message Too Large",
            Self::Incomplete => "Unterminated Header Section",
            Self::BadStartLine => "Malformed Start Line",
            Self::BadVersion => "Malformed SIP Version",
            Self::UnsupportedVersion => "Version Not Supported",
            Self::BadStatusCode => "Bad Status Code",
            Self::BadRequestUri => "Malformed Request-URI",
            Self::UriTooLong => "Request-URI Too Long",
            Self::BadLineEnding => "Bad Line Ending",
            Self::BadHeaderLine => "Malformed Header Line",
            Self::BadFolding => "Bad Header Folding",
            Self::HeaderTooLong => "Header Too Long",
            Self::TooManyHeaders => "Too Many Headers",
            Self::TooManyVias => "Too Many Via Headers",
            Self::InvalidUtf8 => "Invalid UTF-8",
            Self::MissingContentLength => "Missing Content-Length",
            Self::BadContentLength => "Bad Content-Length",
            Self::BodyTruncated => "Body Shorter Than Content-Length",
            Self::BodyTooLarge => "Body Too Large",
            Self::CSeqMismatch => "CSeq Method Mismatch",
            Self::DuplicateHeader(h) => match h {
                H::From => "Duplicate From Header",
                H::To => "Duplicate To Header",
                H::CallId => "Duplicate Call-ID Header",
                H::CSeq => "Duplicate CSeq Header",
                H::MaxForwards => "Duplicate Max-Forwards Header",
                H::ContentLength => "Conflicting Content-Length",
                H::ContentType => "Duplicate Content-Type Header",
                _ => "Duplicate Header",
            },
            Self::MissingHeader(h) => match h {
                H::From => "Missing From Header",
                H::To => "Missing To Header",
                H::CallId => "Missing Call-ID Header",
                H::CSeq => "Missing CSeq Header",
                H::Via => "Missing Via Header",
                _ => "Missing Header",
            },
            Self::MalformedHeader(h) => match h {
                H::Via => "Malformed Via Header",
                H::From => "Malformed From Header",
                H::To => "Malformed To Header",
                H::CallId => "Malformed Call-ID Header",
                H::CSeq => "Malformed CSeq Header",
                H::MaxForwards => "Malformed Max-Forwards Header",
                H::Contact => "Malformed Contact Header",
                H::Route => "Malformed Route Header",
                H::RecordRoute => "Malformed Record-Route Header",
                H::ContentType => "Malformed Content-Type Header",
                H::Expires => "Malformed Expires Header",
                H::Date => "Malformed Date Header",
                H::Authorization => "Malformed Authorization Header",
                H::ProxyAuthorization => "Malformed Proxy-Authorization Header",
                H::WwwAuthenticate => "Malformed WWW-Authenticate Header",
                H::ProxyAuthenticate => "Malformed Proxy-Authenticate Header",
                H::PAssertedIdentity => "Malformed P-Asserted-Identity Header",
                H::PPreferredIdentity => "Malformed P-Preferred-Identity Header",
                H::RemotePartyId => "Malformed Remote-Party-ID Header",
                H::Identity => "Malformed Identity Header",
                H::Require => "Malformed Require Header",
                H::ProxyRequire => "Malformed Proxy-Require Header",
                H::Supported => "Malformed Supported Header",
                H::Allow => "Malformed Allow Header",
                H::Reason => "Malformed Reason Header",
                H::SessionExpires => "Malformed Session-Expires Header",
                H::MinSe => "Malformed Min-SE Header",
                H::RSeq => "Malformed RSeq Header",
                H::RAck => "Malformed RAck Header",
                H::Event => "Malformed Event Header",
                H::ReferTo => "Malformed Refer-To Header",
                H::Path => "Malformed Path Header",
                _ => "Malformed Header",
            },
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}",
            self.kind.reason().to_ascii_lowercase(),
            self.offset
        )
    }
}

impl std::error::Error for ParseError {}
