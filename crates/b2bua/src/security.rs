//! Security events from the call core: every authentication failure, challenge and success,
//! ACL denial, scanner and malformed request from outside, in the terms of Asterisk's
//! security log (see `sipwarden-events`), for the log files and fail2ban. Values the peer
//! chose (Call-ID, user names) go in as they are; the events crate makes them harmless.

use sipwarden_events::{Endpoint, SecurityEvent, ie};
use sipwarden_sip::{HeaderName, Message};

use crate::Core;
use sipwarden_stages::AuthFailure;

use crate::endpoint_auth::Failure;
use sipwarden_sip::Peer;

/// The credentials a request carried: (username, nonce, response).
fn credentials(msg: &Message) -> (String, String) {
    msg.auths(HeaderName::Authorization)
        .chain(msg.auths(HeaderName::ProxyAuthorization))
        .filter_map(Result::ok)
        .find(|a| a.is_digest())
        .map(|a| {
            (
                a.username().map(|u| u.into_owned()).unwrap_or_default(),
                a.nonce().map(|u| u.into_owned()).unwrap_or_default(),
            )
        })
        .unwrap_or_default()
}

impl Core {
    /// Our end and theirs, as the log names them.
    fn ends(&self, src: Peer) -> (Endpoint, Endpoint) {
        (
            Endpoint::new(src.transport, self.local.addr(src.transport)),
            Endpoint::new(src.transport, src.addr),
        )
    }

    /// Queues a security event. Bounded (`storage.event_queue`): the server drains the
    /// queue every round, so it fills only when the server falls behind; then the event is
    /// dropped and counted, never silently.
    pub(crate) fn security(&mut self, e: SecurityEvent) {
        self.stats.security_events += 1;
        if self.security.len() < self.routes.event_queue {
            self.security.push(e);
        } else {
            self.stats.security_events_dropped += 1;
        }
    }

    /// An authentication failure: its kind picks the Asterisk event (and so what fail2ban
    /// sees), its detail is the JSON log's reason.
    pub(crate) fn event_auth_failure(&mut self, msg: &Message, src: Peer, failure: Failure) {
        let (local, remote) = self.ends(src);
        let call_id = msg.call_id().unwrap_or("");
        let (user, nonce) = credentials(msg);
        let e = auth_failure_event(failure.kind, call_id, (local, remote), nonce);
        let e = if user.is_empty() {
            e
        } else {
            e.with_account(user)
        };
        self.security(e.with_reason(failure.detail));
    }

    /// A call policy (or the kill switch) refused a call: RequestNotAllowed, with the
    /// rule's words as its reason (not a failure: fail2ban does not count it).
    pub(crate) fn event_call_refused(&mut self, msg: &Message, src: Peer, why: String) {
        let (local, remote) = self.ends(src);
        let e = SecurityEvent::request_not_allowed(
            msg.call_id().unwrap_or(""),
            local,
            remote,
            "INVITE",
        );
        let user = msg.from_user().map(str::to_owned).unwrap_or_default();
        let e = if user.is_empty() {
            e
        } else {
            e.with_account(user)
        };
        self.security(e.with_reason(why));
    }

    /// A challenge went out.
    pub(crate) fn event_challenge(&mut self, msg: &Message, src: Peer, nonce: &str) {
        let (local, remote) = self.ends(src);
        let user = msg.from_user().map(str::to_owned).unwrap_or_default();
        let e = SecurityEvent::challenge_sent(msg.call_id().unwrap_or(""), local, remote, nonce);
        let e = if user.is_empty() {
            e
        } else {
            e.with_account(user)
        };
        self.security(e);
    }

    /// A phone proved who it is.
    pub(crate) fn event_success(&mut self, msg: &Message, src: Peer, account: &str) {
        let (local, remote) = self.ends(src);
        let e = SecurityEvent::successful_auth(msg.call_id().unwrap_or(""), local, remote, true)
            .with_account(account);
        self.security(e);
    }

    /// Refused by an allow/deny list (or as a scanner: `acl` "scanner").
    pub(crate) fn event_acl(&mut self, msg: &Message, src: Peer, acl: &str, reason: &str) {
        let (local, remote) = self.ends(src);
        let e = SecurityEvent::failed_acl(msg.call_id().unwrap_or(""), local, remote, acl)
            .with_reason(reason);
        self.security(e);
    }

    /// A malformed request from outside.
    pub(crate) fn event_bad_format(&mut self, msg: &Message, src: Peer, reason: &str) {
        self.event_request(msg, src, reason, SecurityEvent::request_bad_format);
    }

    /// A request this source may not make (REGISTER from the PBX or a trunk).
    pub(crate) fn event_not_allowed(&mut self, msg: &Message, src: Peer, reason: &str) {
        self.event_request(msg, src, reason, SecurityEvent::request_not_allowed);
    }

    /// An event about a request as a whole: its method is the RequestType.
    fn event_request(
        &mut self,
        msg: &Message,
        src: Peer,
        reason: &str,
        make: fn(String, Endpoint, Endpoint, String) -> SecurityEvent,
    ) {
        let (local, remote) = self.ends(src);
        let method = msg.method_str().unwrap_or("unknown").to_owned();
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let e = make(call_id, local, remote, method).with_reason(reason);
        self.security(e);
    }
}

/// The Asterisk security event for a failed login of this kind: every kind is one that
/// fail2ban's stock `asterisk` filter bans on (`EventKind::is_failure`).
fn auth_failure_event(
    kind: AuthFailure,
    call_id: &str,
    (local, remote): (Endpoint, Endpoint),
    nonce: String,
) -> SecurityEvent {
    use AuthFailure as F;
    match kind {
        F::UnknownAccount => SecurityEvent::invalid_account_id(call_id, local, remote),
        // Never the digest response: with the nonce it is an offline guessing target for the
        // password, and neither fail2ban nor an operator needs it.
        F::WrongPassword => SecurityEvent::invalid_password(call_id, local, remote)
            .with_ie(ie::CHALLENGE, nonce.clone())
            .with_ie(ie::RECEIVED_CHALLENGE, nonce),
        F::WrongNetwork => SecurityEvent::failed_acl(call_id, local, remote, "account_networks"),
        F::WrongTransport => {
            let attempted = remote.transport_token();
            SecurityEvent::failed_acl(call_id, local, remote, "account_transports")
                .with_ie(ie::ATTEMPTED_TRANSPORT, attempted)
        }
        F::AorMismatch
        | F::AccountLocked
        | F::ForeignNonce
        | F::AlgorithmNotOffered
        | F::Malformed
        | F::UriMismatch => {
            // Response is a required IE of the event: written empty (see WrongPassword).
            SecurityEvent::challenge_response_failed(call_id, local, remote, nonce, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_events::EventKind;
    use sipwarden_sip::header::Transport;

    /// Each kind of failed login writes the Asterisk event it should, and each of those is a
    /// failure line for fail2ban (whose stock filter the events crate tests against the real
    /// fail2ban-regex, event kind by event kind).
    #[test]
    fn each_failure_kind_writes_its_asterisk_event() {
        let ep = |a: &str| Endpoint::new(Transport::Udp, a.parse().unwrap());
        for kind in AuthFailure::ALL {
            let e = auth_failure_event(
                kind,
                "cid",
                (ep("127.0.0.1:5060"), ep("127.0.0.66:5062")),
                "n".into(),
            );
            let want = match kind {
                AuthFailure::UnknownAccount => EventKind::InvalidAccountID,
                AuthFailure::WrongPassword => EventKind::InvalidPassword,
                AuthFailure::WrongNetwork | AuthFailure::WrongTransport => EventKind::FailedACL,
                _ => EventKind::ChallengeResponseFailed,
            };
            assert_eq!(e.kind, want, "{kind:?}");
            assert!(e.kind.is_failure(), "{kind:?}");
            assert_eq!(e.remote.ip().to_string(), "127.0.0.66");
        }
    }
}
