//! The auth stage (DESIGN §3, after the edge stages): digest authentication of the endpoint
//! zone as a verdict. Failures are counted by the one failure counter of the edge stages
//! (`stages::FailureCounter`, with the configured `find_time`): the first failure from a
//! source within the window gets a fresh challenge, later ones 403, and `max_retry` bans.

use std::time::Instant;

use sipwarden_sip::{HeaderName, Message, Peer, StatusCode};
use sipwarden_stages::{Reason, StageName, Verdict};

use crate::Core;
use crate::endpoint_auth::{Ask, AuthOutcome, Failure};

/// What the auth stage decided.
pub(crate) enum Authed {
    /// Authenticated as this account: go on.
    Account(String),
    /// Stopped. `answer` is the challenge or the 403 to send (built, with its security
    /// event written); `banned`: this failure banned the source (a stateless answer is then
    /// better left unsent: from now on the source hears nothing).
    Stop {
        answer: Option<Box<Message>>,
        verdict: Verdict,
        banned: bool,
    },
}

impl Core {
    /// Authenticates `msg` as `ask` describes; records the verdict.
    pub(crate) fn auth_stage(&mut self, now: Instant, msg: &Message, ask: Ask<'_>) -> Authed {
        let routes = std::sync::Arc::clone(&self.routes);
        let src = ask.src;
        let ip = src.addr.ip();
        let failures = &self.defence.failures;
        let locked = |account: &str| failures.account_locked(account, ip, now);
        let outcome = self.digest.check(now, msg, ask, &routes.accounts, &locked);
        self.defence.after_auth(now, ip, &outcome);
        let challenge_status = if ask.register {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED
        };
        let (verdict, banned) = match outcome {
            AuthOutcome::Ok(account) => {
                self.verdicts.record(StageName::Auth, &Verdict::Continue);
                self.event_success(msg, src, &account);
                return Authed::Account(account);
            }
            AuthOutcome::Challenge { stale } => {
                let reason = if stale {
                    Reason::StaleNonce
                } else {
                    Reason::AuthRequired
                };
                (Verdict::reply(challenge_status, reason), false)
            }
            AuthOutcome::Failed(failure) => {
                // Counted before this one: the first failure in the window is a phone that
                // mistyped or used a stale nonce; it gets another chance.
                let earlier = self.defence.failures.recent(ip, now);
                let banned = self.note_auth_failure(now, msg, src, failure);
                let status = if earlier == 0 {
                    challenge_status
                } else {
                    StatusCode::FORBIDDEN
                };
                (Verdict::reply(status, Reason::Auth(failure.kind)), banned)
            }
        };
        self.verdicts.record(StageName::Auth, &verdict);
        let answer = match &verdict {
            Verdict::Reply { status, reason, .. } if *status == challenge_status => {
                let stale = *reason == Reason::StaleNonce;
                self.challenge(now, msg, src, ask.register, stale)
                    .map(Box::new)
            }
            Verdict::Reply { status, .. } => {
                let tag = self.ids.tag();
                let r = Message::response_to(msg, *status, None, Some(&tag));
                self.built(r).map(Box::new)
            }
            _ => None,
        };
        Authed::Stop {
            answer,
            verdict,
            banned,
        }
    }

    /// 401 (REGISTER) or 407 with one challenge per algorithm the client's family gets
    /// ([`crate::endpoint_auth::ChallengeTable`]).
    pub(crate) fn challenge(
        &mut self,
        now: Instant,
        msg: &Message,
        src: Peer,
        register: bool,
        stale: bool,
    ) -> Option<Message> {
        let (status, header) = if register {
            (StatusCode::UNAUTHORIZED, HeaderName::WwwAuthenticate)
        } else {
            (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                HeaderName::ProxyAuthenticate,
            )
        };
        let algorithms = self.routes.challenges.for_user_agent(msg.user_agent());
        let (nonce, challenges) = self.digest.challenges(
            now,
            src.addr.ip(),
            &self.routes.accounts.realm,
            algorithms,
            (stale, self.ids.salt()),
        );
        self.event_challenge(msg, src, &nonce);
        let mut rsp = Message::response_to(msg, status, None, Some(&self.ids.tag())).ok()?;
        for c in &challenges {
            rsp.push_header(header, c).ok()?;
        }
        rsp.finish().ok()?;
        Some(rsp)
    }

    /// Records an authentication failure (security event) and counts it toward a ban
    /// (fail2ban semantics); returns whether the source is now banned.
    pub(crate) fn note_auth_failure(
        &mut self,
        now: Instant,
        msg: &Message,
        src: Peer,
        failure: Failure,
    ) -> bool {
        self.stats.auth_failures += 1;
        let user = msg
            .auths(HeaderName::Authorization)
            .chain(msg.auths(HeaderName::ProxyAuthorization))
            .filter_map(Result::ok)
            .find_map(|a| a.username().map(|u| u.into_owned()))
            .unwrap_or_default();
        self.event_auth_failure(msg, src, failure);
        self.defence
            .failure(src.addr.ip(), Some(&user), now)
            .is_some()
    }
}
