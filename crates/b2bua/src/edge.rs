//! The edge of the message path (DESIGN §3), as one runner over the verdict contract: ban →
//! rate limit → sanity → scanner → zone/ACL for requests; ban → sanity for responses. Each
//! stage returns a [`Verdict`]; only [`Core::perform_edge`] acts on it (answers, bans, logs,
//! counts), and every verdict is counted by stage, verdict and reason.

use std::borrow::Cow;
use std::time::Instant;

use sipwarden_sip::{Decision, Policy, validate};
use sipwarden_sip::{Message, Method};
use sipwarden_stages::{Reason, RequestClass, StageName, Verdict};

use crate::build;
use crate::defence::BanCause;
use crate::routes::Zone;
use crate::{Core, stamp_received};
use sipwarden_sip::Peer;

/// The edge stages, in their fixed order.
const EDGE: [StageName; 5] = [
    StageName::Ban,
    StageName::RateLimit,
    StageName::Sanity,
    StageName::Scanner,
    StageName::Acl,
];

/// The sanity stage: the validator's decision as a verdict. The phrase naming what was wrong
/// goes only to trusted peers (the runner blanks it for the endpoint zone).
fn sanity(msg: &Message, policy: &Policy) -> (Verdict, Option<Cow<'static, str>>) {
    match validate(msg, policy) {
        Decision::Accept => (Verdict::Continue, None),
        Decision::Reject {
            status,
            reason,
            headers,
        } => (
            Verdict::Reply {
                status,
                reason: Reason::Malformed,
                phrase: Some(reason),
                headers,
            },
            Some(Cow::Borrowed(reason)),
        ),
        Decision::Drop { reason } => (
            Verdict::Drop {
                reason: Reason::Malformed,
            },
            Some(Cow::Borrowed(reason)),
        ),
    }
}

/// The words a ban table entry keeps for a flood.
fn flood_words(class: RequestClass) -> &'static str {
    match class {
        RequestClass::Register => "REGISTER flood",
        RequestClass::Invite => "INVITE flood",
        RequestClass::Options => "OPTIONS flood",
        RequestClass::Other => "request flood",
    }
}

impl Core {
    /// Runs the edge stages over a message from `src` in `zone`; `false` when one stopped
    /// it (and the runner has done what its verdict says).
    pub(crate) fn run_edge(
        &mut self,
        now: Instant,
        msg: &mut Message,
        src: Peer,
        zone: Zone,
    ) -> bool {
        let ip = src.addr.ip();
        let request = msg.is_request();
        for stage in EDGE {
            let (verdict, detail) = match stage {
                StageName::Ban => (self.defence.ban_stage(now, ip), None),
                StageName::RateLimit if request => (
                    self.defence.ratelimit_stage(now, ip, zone, msg.method()),
                    None,
                ),
                StageName::Sanity => sanity(msg, &self.policy),
                StageName::Scanner if request && zone == Zone::Endpoint => {
                    match self
                        .routes
                        .defence
                        .scanner
                        .as_ref()
                        .and_then(|s| s.check(msg))
                    {
                        // No answer at all: a scanner that hears nothing learns nothing.
                        Some(pattern) => (
                            Verdict::Ban {
                                reason: Reason::Scanner,
                                ttl: None,
                            },
                            Some(Cow::Owned(format!("scanner: {pattern}"))),
                        ),
                        None => (Verdict::Continue, None),
                    }
                }
                StageName::Acl if request => (self.defence.acl_stage(ip, zone), None),
                _ => continue,
            };
            self.verdicts.record(stage, &verdict);
            if !verdict.is_continue() {
                self.perform_edge(now, verdict, detail.as_deref(), msg, src, zone);
                return false;
            }
        }
        true
    }

    /// Carries out an edge stage's stop verdict.
    fn perform_edge(
        &mut self,
        now: Instant,
        verdict: Verdict,
        detail: Option<&str>,
        msg: &mut Message,
        src: Peer,
        zone: Zone,
    ) {
        let ip = src.addr.ip();
        let outside = zone == Zone::Endpoint && msg.is_request();
        let reason = verdict.reason();
        // What each reason leaves in the security log and the counters.
        match reason {
            Reason::Malformed => {
                self.stats.rejected += 1;
                if outside {
                    self.event_bad_format(msg, src, detail.unwrap_or("malformed"));
                    // A malformed request counts toward a ban; the one that bans gets no
                    // answer.
                    if self.defence.failure(ip, None, now).is_some() {
                        return;
                    }
                }
            }
            Reason::AclDenied => {
                let name = match zone {
                    Zone::Pbx => "pbx",
                    Zone::Trunk(_) => "trunk",
                    Zone::Endpoint => "endpoint",
                };
                self.event_acl(msg, src, name, "denied by an allow/deny list");
            }
            Reason::Scanner => {
                self.event_acl(msg, src, "scanner", detail.unwrap_or("scanner"));
            }
            _ => {}
        }
        match verdict {
            Verdict::Continue | Verdict::Drop { .. } => {}
            Verdict::Ban { reason, .. } => {
                let (cause, words) = match reason {
                    Reason::Flood(class) => (BanCause::Flood, flood_words(class)),
                    Reason::Scanner => (BanCause::Scanner, detail.unwrap_or("scanner")),
                    other => (BanCause::Failures, other.code()),
                };
                self.defence.ban(ip, now, cause, words);
            }
            Verdict::Reply {
                status,
                phrase,
                headers,
                ..
            } => {
                if !msg.is_request() || msg.method() == Some(Method::Ack) {
                    return;
                }
                // Outside the trusted zones the answer says no more than its status code: a
                // reason phrase naming the broken header is a fingerprint.
                let phrase = if outside {
                    stamp_received(msg, src.addr);
                    None
                } else {
                    phrase
                };
                let r = build::response(msg, status, phrase, None, &headers);
                if let Some(r) = self.built(r) {
                    self.txl.send_stateless(src, &r);
                }
            }
        }
    }

    /// The verdict counts, for `/metrics`.
    pub fn verdict_counts(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        self.verdicts.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sipwarden_config::Config;
    use sipwarden_sip::header::Transport;

    use super::*;
    use crate::{Local, Routes, Settings};

    const CFG: &str = "[pbx]\naddress = \"127.0.0.10:5080\"\nnetworks = [\"127.0.0.10/32\"]\n[ratelimit]\noptions_rps = 1\noptions_burst = 1\n";

    fn core() -> Core {
        let routes = Routes::from_config(&Config::from_toml(CFG, None).unwrap()).unwrap();
        let local = Local {
            udp: Some("127.0.0.1:5060".parse().unwrap()),
            tcp: None,
            tls: None,
            wss: None,
        };
        Core::new(routes, local, Settings::default(), [1; 32])
    }

    fn from(ip: &str) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: format!("{ip}:5062").parse().unwrap(),
            flow: None,
        }
    }

    fn options(branch: &str, extra: &str) -> Message {
        Message::parse(format!(
            "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5062;branch=z9hG4bK{branch}\r\nFrom: <sip:a@127.0.0.66>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        ).as_bytes())
        .unwrap()
    }

    fn count(c: &Core, stage: &str, verdict: &str, reason: &str) -> u64 {
        c.verdict_counts()
            .iter()
            .filter(|r| (r.0, r.1, r.2) == (stage, verdict, reason))
            .map(|r| r.3)
            .sum()
    }

    /// Each kind of verdict goes through the one runner, which performs it and counts it by
    /// stage, verdict and reason.
    #[test]
    fn every_verdict_kind_is_performed_and_counted() {
        let mut c = core();
        let now = Instant::now();
        // Continue: a well-formed OPTIONS from the PBX passes every edge stage.
        c.on_message(now, options("ok1", ""), from("127.0.0.10"));
        for stage in ["ban", "sanity", "acl"] {
            assert_eq!(count(&c, stage, "continue", "none"), 1, "{stage}");
        }
        assert!(c.poll_transmit().is_some(), "answered by the core");
        while c.poll_transmit().is_some() {}
        // Reply: a malformed request from the PBX gets 400 with the phrase naming the fault.
        c.on_message(
            now,
            options("bad1", "Expires: soon\r\n"),
            from("127.0.0.10"),
        );
        assert_eq!(count(&c, "sanity", "reply", "malformed"), 1);
        let sent = c.poll_transmit().expect("a 400");
        assert!(String::from_utf8_lossy(&sent.bytes).starts_with("SIP/2.0 400"));
        // Ban: a phone-zone source over its OPTIONS limit (1/s, burst 1) is banned.
        c.on_message(now, options("f1", ""), from("127.0.0.66"));
        c.on_message(now, options("f2", ""), from("127.0.0.66"));
        assert_eq!(count(&c, "ratelimit", "ban", "flood_options"), 1);
        assert!(c.ban_entry("127.0.0.66".parse().unwrap()).is_some());
        // Drop: the banned source's next message costs the ban stage only.
        while c.poll_transmit().is_some() {}
        c.on_message(
            now + Duration::from_millis(1),
            options("f3", ""),
            from("127.0.0.66"),
        );
        assert_eq!(count(&c, "ban", "drop", "banned"), 1);
        assert!(c.poll_transmit().is_none(), "silent");
    }
}
