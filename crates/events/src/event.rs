//! The event model: what happened, to whom, from where.

use std::net::{IpAddr, SocketAddr};

use sipwarden_sip::header::Transport;

/// Names of the information elements (IEs) an event can carry in [`SecurityEvent::extra`],
/// spelled as Asterisk's main/event.c spells them, so that a typo cannot invent a field.
pub mod ie {
    /// FailedACL: which ACL refused the request.
    pub const ACL_NAME: &str = "ACLName";
    /// The nonce we sent.
    pub const CHALLENGE: &str = "Challenge";
    /// The digest response the peer sent.
    pub const RESPONSE: &str = "Response";
    /// The digest response we expected (we always log it empty: see
    /// [`SecurityEvent::challenge_response_failed`](super::SecurityEvent::challenge_response_failed)).
    pub const EXPECTED_RESPONSE: &str = "ExpectedResponse";
    /// InvalidPassword: the nonce the peer answered.
    pub const RECEIVED_CHALLENGE: &str = "ReceivedChallenge";
    /// InvalidPassword: the digest response the peer sent.
    pub const RECEIVED_HASH: &str = "ReceivedHash";
    /// SuccessfulAuth: "1" when a password (digest) was checked, "0" for address-only trust.
    pub const USING_PASSWORD: &str = "UsingPassword";
    /// RequestBadFormat, RequestNotAllowed: the request's method.
    pub const REQUEST_TYPE: &str = "RequestType";
    /// RequestBadFormat, RequestNotAllowed: what was wrong with it, or its parameters.
    pub const REQUEST_PARAMS: &str = "RequestParams";
    /// InvalidTransport: the transport the peer tried.
    pub const ATTEMPTED_TRANSPORT: &str = "AttemptedTransport";
    /// The module that raised the event.
    pub const MODULE: &str = "Module";
    /// Trunk events (JSON only): the trunk's name.
    pub const TRUNK: &str = "trunk";
    /// Trunk events: the address qualified or registered to.
    pub const ADDRESS: &str = "address";
    /// TrunkUp: the OPTIONS round-trip time in milliseconds.
    pub const RTT_MS: &str = "rtt_ms";
    /// Trunk registration events: the registration's lifetime in seconds, or the status that
    /// refused it.
    pub const DETAIL: &str = "detail";
}

/// What happened. The first eight are Asterisk's security events of the same name (main/
/// security_events.c), kept with Asterisk's spelling because that spelling is the log format;
/// the last two are ours and appear in the JSON log only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A request was refused by an ACL (source address, trunk or registration rules).
    FailedACL,
    /// The account named in the request does not exist.
    InvalidAccountID,
    /// A digest response did not match.
    ChallengeResponseFailed,
    /// A password was wrong (Asterisk's chan_sip and AMI event; PJSIP reports
    /// ChallengeResponseFailed instead).
    InvalidPassword,
    /// A request authenticated.
    SuccessfulAuth,
    /// We sent a 401/407 challenge.
    ChallengeSent,
    /// A request could not be parsed or failed sanity checks.
    RequestBadFormat,
    /// A well-formed request that policy does not allow (method, destination).
    RequestNotAllowed,
    /// We banned an address. JSON only: fail2ban must not count our own bans as failures.
    Ban,
    /// A ban ended (expired or lifted). JSON only.
    Unban,
    /// A trunk address answers OPTIONS again (qualify). JSON only.
    TrunkUp,
    /// A trunk address stopped answering OPTIONS (qualify): routing skips it. JSON only.
    TrunkDown,
    /// The gateway registered to a carrier (or refreshed). JSON only.
    TrunkRegistered,
    /// A registration to a carrier failed or was lost. JSON only.
    TrunkRegistrationFailed,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 14] = [
        Self::FailedACL,
        Self::InvalidAccountID,
        Self::ChallengeResponseFailed,
        Self::InvalidPassword,
        Self::SuccessfulAuth,
        Self::ChallengeSent,
        Self::RequestBadFormat,
        Self::RequestNotAllowed,
        Self::Ban,
        Self::Unban,
        Self::TrunkUp,
        Self::TrunkDown,
        Self::TrunkRegistered,
        Self::TrunkRegistrationFailed,
    ];

    /// The `SecurityEvent` value of the Asterisk line and the `event` of the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Self::FailedACL => "FailedACL",
            Self::InvalidAccountID => "InvalidAccountID",
            Self::ChallengeResponseFailed => "ChallengeResponseFailed",
            Self::InvalidPassword => "InvalidPassword",
            Self::SuccessfulAuth => "SuccessfulAuth",
            Self::ChallengeSent => "ChallengeSent",
            Self::RequestBadFormat => "RequestBadFormat",
            Self::RequestNotAllowed => "RequestNotAllowed",
            Self::Ban => "Ban",
            Self::Unban => "Unban",
            Self::TrunkUp => "TrunkUp",
            Self::TrunkDown => "TrunkDown",
            Self::TrunkRegistered => "TrunkRegistered",
            Self::TrunkRegistrationFailed => "TrunkRegistrationFailed",
        }
    }

    /// Asterisk's severity: "Informational" for SuccessfulAuth and ChallengeSent, "Error" for
    /// the other Asterisk events. Of ours, a ban is "Error" and its end "Informational": an
    /// expiring ban is routine and should not page anyone.
    pub fn severity(self) -> &'static str {
        match self {
            Self::SuccessfulAuth
            | Self::ChallengeSent
            | Self::Unban
            | Self::TrunkUp
            | Self::TrunkRegistered => "Informational",
            _ => "Error",
        }
    }

    /// Asterisk's EventVersion (security_events.h): InvalidPassword is at version 2 since it
    /// gained its challenge IEs; the others are at 1.
    pub fn version(self) -> &'static str {
        match self {
            Self::InvalidPassword => "2",
            _ => "1",
        }
    }

    /// Whether the stock fail2ban `asterisk` filter counts this event against the address.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::FailedACL
                | Self::InvalidAccountID
                | Self::ChallengeResponseFailed
                | Self::InvalidPassword
        )
    }

    /// Whether the event has an Asterisk line (Ban and Unban do not).
    pub fn is_asterisk(self) -> bool {
        !matches!(
            self,
            Self::Ban
                | Self::Unban
                | Self::TrunkUp
                | Self::TrunkDown
                | Self::TrunkRegistered
                | Self::TrunkRegistrationFailed
        )
    }
}

/// One end of the exchange that caused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The transport.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// An endpoint.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self { transport, addr }
    }

    /// The IP as logs show it: an IPv4-mapped IPv6 address (a dual-stack socket's view of an
    /// IPv4 peer) becomes the IPv4 address, as Asterisk prints it, so that fail2ban bans the
    /// address the firewall sees.
    pub fn ip(&self) -> IpAddr {
        self.addr.ip().to_canonical()
    }

    /// The transport's token as Asterisk writes it, in addresses (main/json.c
    /// `ast_json_ipaddr`) and in the AttemptedTransport IE: Asterisk names these five; SCTP
    /// and unknown tokens, which no listener of ours produces, are written as UDP.
    pub fn transport_token(&self) -> &'static str {
        match self.transport {
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            _ => "UDP",
        }
    }
}

/// Formats as Asterisk's address IE: `IPV4/UDP/192.0.2.1/5060`, `IPV6/TLS/2001:db8::1/5061`.
impl Endpoint {
    /// Appends the same text as `Display`, without `core::fmt` for IPv4 (what nearly every
    /// event carries, twice per log line).
    pub(crate) fn push_to(&self, out: &mut String) {
        let ip = self.ip();
        out.push_str(if ip.is_ipv4() { "IPV4/" } else { "IPV6/" });
        out.push_str(self.transport_token());
        out.push('/');
        push_ip(out, ip);
        out.push('/');
        crate::time::push_padded(out, self.addr.port().into(), 1);
    }
}

/// Appends an address as `Display` writes it; IPv4 without `core::fmt`.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                crate::time::push_padded(out, octet.into(), 1);
            }
        }
        IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{ip}"));
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.ip();
        let family = if ip.is_ipv4() { "IPV4" } else { "IPV6" };
        write!(
            f,
            "{family}/{}/{ip}/{}",
            self.transport_token(),
            self.addr.port()
        )
    }
}

/// What a ban event adds: when the ban ends and how often the address was banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BanInfo {
    /// When the ban ends, Unix seconds; `None` for an unban (and for a ban without end).
    pub expires_unix: Option<u64>,
    /// How many times the address has been banned, as the ban store counts it (1 on the first
    /// ban), so escalating bans can be read from the log.
    pub count: u32,
}

/// One security event.
///
/// Every string in here may come from the attacker (Call-ID, user names, digest fields); the
/// formatters make them safe, so callers pass them through unchanged.
///
/// Ban and Unban carry the banned address as `remote` (port 0: a ban covers every port and
/// transport) and their details in `ban`; their JSON line leaves out `local`, `remote`,
/// `account` and `session_id`, which mean nothing for a ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: EventKind,
    /// The account (AccountID): the authenticated or attempted user. Logged as `<unknown>`
    /// when `None`, as PJSIP logs requests that match no endpoint.
    pub account: Option<String>,
    /// The session (SessionID): the SIP Call-ID, as PJSIP logs it.
    pub session_id: String,
    /// Our end (LocalAddress).
    pub local: Endpoint,
    /// The peer (RemoteAddress): the address fail2ban bans.
    pub remote: Endpoint,
    /// The event's own IEs, in Asterisk's order: its required IEs first, then optional ones.
    /// Names come from [`ie`].
    pub extra: Vec<(&'static str, String)>,
    /// Our own words for why (JSON only: not an Asterisk IE, and fail2ban does not need it).
    pub reason: String,
    /// Ban and Unban only.
    pub ban: Option<BanInfo>,
}

impl SecurityEvent {
    /// An event with no account, IEs or reason yet; the constructors below add the IEs each
    /// kind requires.
    pub fn new(
        kind: EventKind,
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
    ) -> Self {
        Self {
            kind,
            account: None,
            session_id: session_id.into(),
            local,
            remote,
            extra: Vec::new(),
            reason: String::new(),
            ban: None,
        }
    }

    /// FailedACL, with the name of the ACL that refused (ACLName; optional in Asterisk, but
    /// we always know it).
    pub fn failed_acl(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        acl_name: impl Into<String>,
    ) -> Self {
        Self::new(EventKind::FailedACL, session_id, local, remote).with_ie(ie::ACL_NAME, acl_name)
    }

    /// InvalidAccountID; set the attempted name with [`with_account`](Self::with_account).
    pub fn invalid_account_id(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
    ) -> Self {
        Self::new(EventKind::InvalidAccountID, session_id, local, remote)
    }

    /// ChallengeResponseFailed, with its required Challenge, Response and ExpectedResponse.
    ///
    /// ExpectedResponse is always empty, as PJSIP logs it: the right answer to a nonce that is
    /// in the same line lets anyone who reads the log guess the password offline.
    pub fn challenge_response_failed(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        challenge: impl Into<String>,
        response: impl Into<String>,
    ) -> Self {
        Self::new(
            EventKind::ChallengeResponseFailed,
            session_id,
            local,
            remote,
        )
        .with_ie(ie::CHALLENGE, challenge)
        .with_ie(ie::RESPONSE, response)
        .with_ie(ie::EXPECTED_RESPONSE, "")
    }

    /// InvalidPassword (no required IEs; Challenge, ReceivedChallenge and ReceivedHash are
    /// optional, add them with [`with_ie`](Self::with_ie)).
    pub fn invalid_password(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
    ) -> Self {
        Self::new(EventKind::InvalidPassword, session_id, local, remote)
    }

    /// SuccessfulAuth, with its required UsingPassword.
    pub fn successful_auth(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        using_password: bool,
    ) -> Self {
        let using = if using_password { "1" } else { "0" };
        Self::new(EventKind::SuccessfulAuth, session_id, local, remote)
            .with_ie(ie::USING_PASSWORD, using)
    }

    /// ChallengeSent, with its required Challenge (the nonce).
    pub fn challenge_sent(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        challenge: impl Into<String>,
    ) -> Self {
        Self::new(EventKind::ChallengeSent, session_id, local, remote)
            .with_ie(ie::CHALLENGE, challenge)
    }

    /// RequestBadFormat, with its required RequestType (the method, or what we could read of
    /// it). In Asterisk's table this event's AccountID is optional and follows RequestType.
    pub fn request_bad_format(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        request_type: impl Into<String>,
    ) -> Self {
        Self::new(EventKind::RequestBadFormat, session_id, local, remote)
            .with_ie(ie::REQUEST_TYPE, request_type)
    }

    /// RequestNotAllowed, with its required RequestType.
    pub fn request_not_allowed(
        session_id: impl Into<String>,
        local: Endpoint,
        remote: Endpoint,
        request_type: impl Into<String>,
    ) -> Self {
        Self::new(EventKind::RequestNotAllowed, session_id, local, remote)
            .with_ie(ie::REQUEST_TYPE, request_type)
    }

    /// We banned `ip` until `expires_unix` (Unix seconds); `count` as in [`BanInfo::count`].
    pub fn ban(ip: IpAddr, expires_unix: u64, count: u32) -> Self {
        Self::ban_event(EventKind::Ban, ip, Some(expires_unix), count)
    }

    /// A trunk event (`TrunkUp`, `TrunkDown`, `TrunkRegistered`, `TrunkRegistrationFailed`)
    /// for `trunk` at `addr`.
    pub fn trunk(kind: EventKind, trunk: &str, addr: SocketAddr, transport: Transport) -> Self {
        let at = Endpoint::new(transport, addr);
        Self::new(kind, "", at, at)
            .with_ie(ie::TRUNK, trunk)
            .with_ie(ie::ADDRESS, addr.to_string())
    }

    /// The ban of `ip` ended; the reason says why (expired, lifted by an operator).
    pub fn unban(ip: IpAddr, count: u32) -> Self {
        Self::ban_event(EventKind::Unban, ip, None, count)
    }

    fn ban_event(kind: EventKind, ip: IpAddr, expires_unix: Option<u64>, count: u32) -> Self {
        let at = Endpoint::new(Transport::Udp, SocketAddr::new(ip, 0));
        let mut event = Self::new(kind, "", at, at);
        event.ban = Some(BanInfo {
            expires_unix,
            count,
        });
        event
    }

    /// Sets the account (AccountID).
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Appends an IE (a name from [`ie`]); IEs are written in the order they were added.
    pub fn with_ie(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// Sets our reason (JSON only).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
}
