//! Header names: one enum for the headers a gateway reads, compact forms folded in.
//!
//! Attackers hide headers behind compact forms (`v:` for Via, `i:` for Call-ID); every check
//! keyed on a header goes through [`HeaderName`], so the two spellings can never diverge.

use std::fmt;

/// A header name the gateway knows, or [`HeaderName::Other`] (whose spelling stays in the
/// message). Matching is case-insensitive and maps compact forms (RFC 3261 §7.3.3, IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Via` (compact `v`), RFC 3261 §20.42.
    Via,
    /// `From` (compact `f`), RFC 3261 §20.20.
    From,
    /// `To` (compact `t`), RFC 3261 §20.39.
    To,
    /// `Call-ID` (compact `i`), RFC 3261 §20.8.
    CallId,
    /// `CSeq`, RFC 3261 §20.16.
    CSeq,
    /// `Max-Forwards`, RFC 3261 §20.22.
    MaxForwards,
    /// `Contact` (compact `m`), RFC 3261 §20.10.
    Contact,
    /// `Route`, RFC 3261 §20.34.
    Route,
    /// `Record-Route`, RFC 3261 §20.30.
    RecordRoute,
    /// `Content-Length` (compact `l`), RFC 3261 §20.14.
    ContentLength,
    /// `Content-Type` (compact `c`), RFC 3261 §20.15.
    ContentType,
    /// `Content-Encoding` (compact `e`), RFC 3261 §20.12.
    ContentEncoding,
    /// `Content-Disposition`, RFC 3261 §20.11.
    ContentDisposition,
    /// `Content-Language`, RFC 3261 §20.13.
    ContentLanguage,
    /// `Authorization`, RFC 3261 §20.7.
    Authorization,
    /// `Proxy-Authorization`, RFC 3261 §20.28.
    ProxyAuthorization,
    /// `WWW-Authenticate`, RFC 3261 §20.44.
    WwwAuthenticate,
    /// `Proxy-Authenticate`, RFC 3261 §20.27.
    ProxyAuthenticate,
    /// `Authentication-Info`, RFC 3261 §20.6.
    AuthenticationInfo,
    /// `User-Agent`, RFC 3261 §20.41.
    UserAgent,
    /// `Server`, RFC 3261 §20.35.
    Server,
    /// `P-Asserted-Identity`, RFC 3325.
    PAssertedIdentity,
    /// `P-Preferred-Identity`, RFC 3325.
    PPreferredIdentity,
    /// `Remote-Party-ID`, draft-ietf-sip-privacy-04.
    RemotePartyId,
    /// `Privacy`, RFC 3323.
    Privacy,
    /// `Identity` (compact `y`), RFC 8224.
    Identity,
    /// `Date`, RFC 3261 §20.17.
    Date,
    /// `Expires`, RFC 3261 §20.19.
    Expires,
    /// `Min-Expires`, RFC 3261 §20.23.
    MinExpires,
    /// `Supported` (compact `k`), RFC 3261 §20.37.
    Supported,
    /// `Require`, RFC 3261 §20.32.
    Require,
    /// `Proxy-Require`, RFC 3261 §20.29.
    ProxyRequire,
    /// `Unsupported`, RFC 3261 §20.40.
    Unsupported,
    /// `Allow`, RFC 3261 §20.5.
    Allow,
    /// `Accept`, RFC 3261 §20.1.
    Accept,
    /// `Accept-Encoding`, RFC 3261 §20.2.
    AcceptEncoding,
    /// `Accept-Language`, RFC 3261 §20.3.
    AcceptLanguage,
    /// `Reason`, RFC 3326.
    Reason,
    /// `Session-Expires` (compact `x`), RFC 4028.
    SessionExpires,
    /// `Min-SE`, RFC 4028.
    MinSe,
    /// `Event` (compact `o`), RFC 6665.
    Event,
    /// `Allow-Events` (compact `u`), RFC 6665.
    AllowEvents,
    /// `Subscription-State`, RFC 6665.
    SubscriptionState,
    /// `Refer-To` (compact `r`), RFC 3515.
    ReferTo,
    /// `Referred-By` (compact `b`), RFC 3892.
    ReferredBy,
    /// `Replaces`, RFC 3891.
    Replaces,
    /// `RSeq`, RFC 3262.
    RSeq,
    /// `RAck`, RFC 3262.
    RAck,
    /// `Path`, RFC 3327.
    Path,
    /// `Service-Route`, RFC 3608.
    ServiceRoute,
    /// `Subject` (compact `s`), RFC 3261 §20.36.
    Subject,
    /// `Organization`, RFC 3261 §20.25.
    Organization,
    /// `Warning`, RFC 3261 §20.43.
    Warning,
    /// `Retry-After`, RFC 3261 §20.33.
    RetryAfter,
    /// `Timestamp`, RFC 3261 §20.38.
    Timestamp,
    /// `Priority`, RFC 3261 §20.26.
    Priority,
    /// `Call-Info`, RFC 3261 §20.9.
    CallInfo,
    /// `Alert-Info`, RFC 3261 §20.4.
    AlertInfo,
    /// `Error-Info`, RFC 3261 §20.18.
    ErrorInfo,
    /// `In-Reply-To`, RFC 3261 §20.21.
    InReplyTo,
    /// `Reply-To`, RFC 3261 §20.31.
    ReplyTo,
    /// `MIME-Version`, RFC 3261 §20.24.
    MimeVersion,
    /// `Flow-Timer`, RFC 5626.
    FlowTimer,
    /// `Max-Breadth`, RFC 5393.
    MaxBreadth,
    /// `Accept-Contact` (compact `a`), RFC 3841.
    AcceptContact,
    /// `Reject-Contact` (compact `j`), RFC 3841.
    RejectContact,
    /// `Request-Disposition` (compact `d`), RFC 3841.
    RequestDisposition,
    /// Any other header.
    Other,
}

impl HeaderName {
    /// Classifies a header name as written (case-insensitive, compact forms included).
    pub fn from_bytes(name: &[u8]) -> Self {
        let mut lower = [0u8; 24];
        let Some(dst) = lower.get_mut(..name.len()) else {
            return Self::Other;
        };
        for (d, s) in dst.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        match &*dst {
            b"via" | b"v" => Self::Via,
            b"from" | b"f" => Self::From,
            b"to" | b"t" => Self::To,
            b"call-id" | b"i" => Self::CallId,
            b"cseq" => Self::CSeq,
            b"max-forwards" => Self::MaxForwards,
            b"contact" | b"m" => Self::Contact,
            b"route" => Self::Route,
            b"record-route" => Self::RecordRoute,
            b"content-length" | b"l" => Self::ContentLength,
            b"content-type" | b"c" => Self::ContentType,
            b"content-encoding" | b"e" => Self::ContentEncoding,
            b"content-disposition" => Self::ContentDisposition,
            b"content-language" => Self::ContentLanguage,
            b"authorization" => Self::Authorization,
            b"proxy-authorization" => Self::ProxyAuthorization,
            b"www-authenticate" => Self::WwwAuthenticate,
            b"proxy-authenticate" => Self::ProxyAuthenticate,
            b"authentication-info" => Self::AuthenticationInfo,
            b"user-agent" => Self::UserAgent,
            b"server" => Self::Server,
            b"p-asserted-identity" => Self::PAssertedIdentity,
            b"p-preferred-identity" => Self::PPreferredIdentity,
            b"remote-party-id" => Self::RemotePartyId,
            b"privacy" => Self::Privacy,
            b"identity" | b"y" => Self::Identity,
            b"date" => Self::Date,
            b"expires" => Self::Expires,
            b"min-expires" => Self::MinExpires,
            b"supported" | b"k" => Self::Supported,
            b"require" => Self::Require,
            b"proxy-require" => Self::ProxyRequire,
            b"unsupported" => Self::Unsupported,
            b"allow" => Self::Allow,
            b"accept" => Self::Accept,
            b"accept-encoding" => Self::AcceptEncoding,
            b"accept-language" => Self::AcceptLanguage,
            b"reason" => Self::Reason,
            b"session-expires" | b"x" => Self::SessionExpires,
            b"min-se" => Self::MinSe,
            b"event" | b"o" => Self::Event,
            b"allow-events" | b"u" => Self::AllowEvents,
            b"subscription-state" => Self::SubscriptionState,
            b"refer-to" | b"r" => Self::ReferTo,
            b"referred-by" | b"b" => Self::ReferredBy,
            b"replaces" => Self::Replaces,
            b"rseq" => Self::RSeq,
            b"rack" => Self::RAck,
            b"path" => Self::Path,
            b"service-route" => Self::ServiceRoute,
            b"subject" | b"s" => Self::Subject,
            b"organization" => Self::Organization,
            b"warning" => Self::Warning,
            b"retry-after" => Self::RetryAfter,
            b"timestamp" => Self::Timestamp,
            b"priority" => Self::Priority,
            b"call-info" => Self::CallInfo,
            b"alert-info" => Self::AlertInfo,
            b"error-info" => Self::ErrorInfo,
            b"in-reply-to" => Self::InReplyTo,
            b"reply-to" => Self::ReplyTo,
            b"mime-version" => Self::MimeVersion,
            b"flow-timer" => Self::FlowTimer,
            b"max-breadth" => Self::MaxBreadth,
            b"accept-contact" | b"a" => Self::AcceptContact,
            b"reject-contact" | b"j" => Self::RejectContact,
            b"request-disposition" | b"d" => Self::RequestDisposition,
            _ => Self::Other,
        }
    }

    /// The canonical (long) spelling, used when the gateway writes the header;
    /// `None` for [`HeaderName::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::MaxForwards => "Max-Forwards",
            Self::Contact => "Contact",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::ContentEncoding => "Content-Encoding",
            Self::ContentDisposition => "Content-Disposition",
            Self::ContentLanguage => "Content-Language",
            Self::Authorization => "Authorization",
            Self::ProxyAuthorization => "Proxy-Authorization",
            Self::WwwAuthenticate => "WWW-Authenticate",
            Self::ProxyAuthenticate => "Proxy-Authenticate",
            Self::AuthenticationInfo => "Authentication-Info",
            Self::UserAgent => "User-Agent",
            Self::Server => "Server",
            Self::PAssertedIdentity => "P-Asserted-Identity",
            Self::PPreferredIdentity => "P-Preferred-Identity",
            Self::RemotePartyId => "Remote-Party-ID",
            Self::Privacy => "Privacy",
            Self::Identity => "Identity",
            Self::Date => "Date",
            Self::Expires => "Expires",
            Self::MinExpires => "Min-Expires",
            Self::Supported => "Supported",
            Self::Require => "Require",
            Self::ProxyRequire => "Proxy-Require",
            Self::Unsupported => "Unsupported",
            Self::Allow => "Allow",
            Self::Accept => "Accept",
            Self::AcceptEncoding => "Accept-Encoding",
            Self::AcceptLanguage => "Accept-Language",
            Self::Reason => "Reason",
            Self::SessionExpires => "Session-Expires",
            Self::MinSe => "Min-SE",
            Self::Event => "Event",
            Self::AllowEvents => "Allow-Events",
            Self::SubscriptionState => "Subscription-State",
            Self::ReferTo => "Refer-To",
            Self::ReferredBy => "Referred-By",
            Self::Replaces => "Replaces",
            Self::RSeq => "RSeq",
            Self::RAck => "RAck",
            Self::Path => "Path",
            Self::ServiceRoute => "Service-Route",
            Self::Subject => "Subject",
            Self::Organization => "Organization",
            Self::Warning => "Warning",
            Self::RetryAfter => "Retry-After",
            Self::Timestamp => "Timestamp",
            Self::Priority => "Priority",
            Self::CallInfo => "Call-Info",
            Self::AlertInfo => "Alert-Info",
            Self::ErrorInfo => "Error-Info",
            Self::InReplyTo => "In-Reply-To",
            Self::ReplyTo => "Reply-To",
            Self::MimeVersion => "MIME-Version",
            Self::FlowTimer => "Flow-Timer",
            Self::MaxBreadth => "Max-Breadth",
            Self::AcceptContact => "Accept-Contact",
            Self::RejectContact => "Reject-Contact",
            Self::RequestDisposition => "Request-Disposition",
            Self::Other => return None,
        })
    }

    /// The compact form, if the header has one.
    pub fn compact(self) -> Option<&'static str> {
        Some(match self {
            Self::Via => "v",
            Self::From => "f",
            Self::To => "t",
            Self::CallId => "i",
            Self::Contact => "m",
            Self::ContentLength => "l",
            Self::ContentType => "c",
            Self::ContentEncoding => "e",
            Self::Identity => "y",
            Self::Supported => "k",
            Self::SessionExpires => "x",
            Self::Event => "o",
            Self::AllowEvents => "u",
            Self::ReferTo => "r",
            Self::ReferredBy => "b",
            Self::Subject => "s",
            Self::AcceptContact => "a",
            Self::RejectContact => "j",
            Self::RequestDisposition => "d",
            _ => return None,
        })
    }

    /// Headers defined as comma-separated lists (`#(...)` in the grammar): one row `a, b`
    /// means the same as two rows. The authentication headers are deliberately absent
    /// (RFC 3261 §7.3.1: never split or combine them).
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Self::Via
                | Self::Contact
                | Self::Route
                | Self::RecordRoute
                | Self::ContentEncoding
                | Self::ContentLanguage
                | Self::PAssertedIdentity
                | Self::PPreferredIdentity
                | Self::RemotePartyId
                | Self::Supported
                | Self::Require
                | Self::ProxyRequire
                | Self::Unsupported
                | Self::Allow
                | Self::Accept
                | Self::AcceptEncoding
                | Self::AcceptLanguage
                | Self::Reason
                | Self::AllowEvents
                | Self::Path
                | Self::ServiceRoute
                | Self::Warning
                | Self::CallInfo
                | Self::AlertInfo
                | Self::ErrorInfo
                | Self::InReplyTo
                | Self::AcceptContact
                | Self::RejectContact
                | Self::RequestDisposition
        )
    }

    /// Headers that may appear at most once; a second one makes the message malformed.
    pub fn is_single(self) -> bool {
        matches!(
            self,
            Self::From
                | Self::To
                | Self::CallId
                | Self::CSeq
                | Self::MaxForwards
                | Self::ContentLength
                | Self::ContentType
                | Self::ContentDisposition
                | Self::AuthenticationInfo
                | Self::UserAgent
                | Self::Server
                | Self::Privacy
                | Self::Date
                | Self::Expires
                | Self::MinExpires
                | Self::SessionExpires
                | Self::MinSe
                | Self::Event
                | Self::SubscriptionState
                | Self::ReferTo
                | Self::ReferredBy
                | Self::Replaces
                | Self::RSeq
                | Self::RAck
                | Self::Subject
                | Self::Organization
                | Self::RetryAfter
                | Self::Timestamp
                | Self::Priority
                | Self::ReplyTo
                | Self::MimeVersion
                | Self::FlowTimer
                | Self::MaxBreadth
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().unwrap_or("extension header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(&[b'x'; 40]), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"y"), HeaderName::Identity);
        assert!(!HeaderName::Authorization.is_list());
        assert!(HeaderName::Contact.is_list());
        assert!(HeaderName::CSeq.is_single());
    }
}
