//! The caller-ID policy (`[trunk.caller_id]`). Outbound through a trunk, the number a call
//! presents (P-Asserted-Identity, else From) must be one the trunk owns: otherwise it is
//! replaced with the trunk's default caller ID (a carrier may bill or block a call with a
//! number that is not ours, and a cracked PBX that spoofs numbers should not get them out),
//! or the call is refused. Inbound from a trunk, a caller claiming one of our own numbers is
//! what spoofers use to look internal: the PBX learns it from a header the operator names, or
//! the call is refused.
//!
//! Two halves built from the same rules: [`CallerIdPolicy`] decides (refusals, and the
//! decisions the call records show) and [`CallerIdRewrite`] edits the B leg (the number the
//! core presents, the flag header).

use std::collections::HashMap;
use std::sync::Arc;

use sipwarden_config::{
    Config, InboundCallerId, NumberRange, OutboundCallerId, PolicyMode, canonical_number,
};
use sipwarden_sip::{HeaderName, Message, StatusCode};
use sipwarden_stages::{
    CallPolicy, CallRequest, Decision, Destination, Origin, Outcome, Reason, Rewrite, RewriteError,
    Verdict,
};

use crate::numbers::{DialContext, NUMBER_CACHE, NumberCache};

/// The rule's name in decisions and the refusals' reason.
pub const CALLER_ID: &str = "caller_id";

/// The flag's value in the operator's header.
pub const OWN_NUMBER: &str = "own-number";

/// One trunk's rules.
#[derive(Debug)]
struct TrunkRules {
    owned: Vec<NumberRange>,
    /// Canonical digits.
    default: Option<String>,
    outbound: OutboundCallerId,
    inbound: InboundCallerId,
    flag_header: String,
    monitor: bool,
}

/// The rules of every trunk with `[trunk.caller_id]`, and our numbers.
#[derive(Debug)]
pub struct Rules {
    ctx: Option<DialContext>,
    trunks: HashMap<String, TrunkRules>,
    /// Every number we own, on any trunk (DIDs and owned ranges).
    ours: Vec<NumberRange>,
    numbers: Arc<NumberCache>,
}

/// What the rules make of a new call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Judgement {
    /// Nothing to do.
    Pass,
    /// Outbound, not ours: present this number instead (canonical digits).
    Replace { presented: String, with: String },
    /// Outbound, not ours: refuse.
    RejectOutbound { presented: String },
    /// Inbound, claims ours: mark with this header.
    Mark { presented: String, header: String },
    /// Inbound, claims ours: refuse.
    RejectInbound { presented: String },
}

impl Rules {
    /// The rules of a configuration (`None` when no trunk has `[trunk.caller_id]`).
    pub fn from_config(cfg: &Config) -> Option<Arc<Self>> {
        Self::from_config_with(cfg, NumberCache::new(NUMBER_CACHE))
    }

    /// As [`Rules::from_config`], reading numbers through `numbers`.
    pub fn from_config_with(cfg: &Config, numbers: Arc<NumberCache>) -> Option<Arc<Self>> {
        let policy_mode = cfg.policy.as_ref().map_or(PolicyMode::Enforce, |p| p.mode);
        let country = cfg.policy.as_ref().map_or("US", |p| p.country.as_str());
        let trunks: HashMap<String, TrunkRules> = cfg
            .trunks
            .iter()
            .filter_map(|t| {
                let c = t.caller_id.as_ref()?;
                Some((
                    t.name.clone(),
                    TrunkRules {
                        owned: c.owned_or(&t.dids).to_vec(),
                        default: c.default_number(&t.dids),
                        outbound: c.outbound,
                        inbound: c.inbound,
                        flag_header: c.flag_header.clone(),
                        monitor: c.mode.unwrap_or(policy_mode) == PolicyMode::Monitor,
                    },
                ))
            })
            .collect();
        if trunks.is_empty() {
            return None;
        }
        let ours = cfg
            .trunks
            .iter()
            .flat_map(|t| {
                t.dids
                    .iter()
                    .chain(t.caller_id.iter().flat_map(|c| c.owned.iter()))
            })
            .cloned()
            .collect();
        Some(Arc::new(Self {
            ctx: DialContext::new(country).ok(),
            trunks,
            ours,
            numbers,
        }))
    }

    /// The number a call presents, canonical: its P-Asserted-Identity's, else its From's.
    fn presented(&self, call: &CallRequest<'_>) -> String {
        let pai = call
            .invite
            .name_addrs(HeaderName::PAssertedIdentity)
            .ok()
            .and_then(|ids| ids.first().and_then(|na| na.uri.user().map(str::to_owned)));
        let raw = pai.unwrap_or_else(|| call.caller.to_owned());
        self.ctx
            .and_then(|ctx| self.numbers.normalise(&raw, ctx).ok())
            .and_then(|n| canonical_number(&n.e164))
            .or_else(|| canonical_number(&raw))
            .unwrap_or(raw)
    }

    fn judge(&self, call: &CallRequest<'_>) -> (Judgement, bool) {
        if let Destination::Trunk(t) = call.destination {
            if let Some(r) = self.trunks.get(t) {
                let presented = self.presented(call);
                if r.owned.iter().any(|o| o.contains(&presented)) {
                    return (Judgement::Pass, r.monitor);
                }
                let j = match (r.outbound, &r.default) {
                    (OutboundCallerId::Replace, Some(d)) => Judgement::Replace {
                        presented,
                        with: d.clone(),
                    },
                    (OutboundCallerId::Reject, _) => Judgement::RejectOutbound { presented },
                    _ => Judgement::Pass,
                };
                return (j, r.monitor);
            }
        }
        if call.origin == Origin::Trunk {
            if let Some(r) = call.trunk.and_then(|t| self.trunks.get(t)) {
                let presented = self.presented(call);
                if !self.ours.iter().any(|o| o.contains(&presented)) {
                    return (Judgement::Pass, r.monitor);
                }
                let j = match r.inbound {
                    InboundCallerId::Mark => Judgement::Mark {
                        presented,
                        header: r.flag_header.clone(),
                    },
                    InboundCallerId::Reject => Judgement::RejectInbound { presented },
                    InboundCallerId::Pass => Judgement::Pass,
                };
                return (j, r.monitor);
            }
        }
        (Judgement::Pass, false)
    }
}

/// The deciding half.
#[derive(Debug)]
pub struct CallerIdPolicy {
    rules: Arc<Rules>,
    decisions: Vec<Decision>,
}

impl CallerIdPolicy {
    /// The policy over `rules`.
    pub fn new(rules: Arc<Rules>) -> Self {
        Self {
            rules,
            decisions: Vec::new(),
        }
    }

    fn decide(&mut self, call: u64, outcome: Outcome, detail: String) {
        self.decisions.push(Decision {
            call,
            rule: CALLER_ID.to_owned(),
            outcome,
            detail,
            disable: None,
        });
    }
}

fn refusal(code: &'static str, phrase: &'static str, text: &str) -> Verdict {
    let text = text.replace(['"', '\\'], "");
    Verdict::Reply {
        status: StatusCode::FORBIDDEN,
        reason: Reason::Policy(code),
        phrase: Some(phrase),
        headers: vec![(
            HeaderName::Reason,
            format!("SIP;cause=403;text=\"{code}: {text}\""),
        )],
    }
}

impl CallPolicy for CallerIdPolicy {
    fn name(&self) -> &'static str {
        CALLER_ID
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        let (j, monitor) = self.rules.judge(call);
        match j {
            Judgement::Pass => Verdict::Continue,
            Judgement::Replace { presented, with } => {
                let (outcome, verb) = if monitor {
                    (Outcome::WouldRefuse, "would be sent as")
                } else {
                    (Outcome::Replaced, "sent as")
                };
                self.decide(
                    call.call,
                    outcome,
                    format!("caller ID {presented} is not the trunk's: {verb} +{with}"),
                );
                Verdict::Continue
            }
            Judgement::RejectOutbound { presented } => {
                let why = format!("caller ID {presented} is not the trunk's");
                if monitor {
                    self.decide(call.call, Outcome::WouldRefuse, why);
                    return Verdict::Continue;
                }
                self.decide(call.call, Outcome::Refused, why.clone());
                refusal("caller_id_not_owned", "Caller ID Not Allowed", &why)
            }
            Judgement::Mark { presented, header } => {
                let outcome = if monitor {
                    Outcome::WouldRefuse
                } else {
                    Outcome::Flagged
                };
                self.decide(
                    call.call,
                    outcome,
                    format!("inbound caller ID {presented} claims one of our numbers ({header})"),
                );
                Verdict::Continue
            }
            Judgement::RejectInbound { presented } => {
                let why = format!("inbound caller ID {presented} claims one of our numbers");
                if monitor {
                    self.decide(call.call, Outcome::WouldRefuse, why);
                    return Verdict::Continue;
                }
                self.decide(call.call, Outcome::Refused, why.clone());
                refusal("caller_id_spoofed", "Caller ID Not Allowed", &why)
            }
        }
    }

    fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        out.append(&mut self.decisions);
    }
}

/// The editing half.
#[derive(Debug)]
pub struct CallerIdRewrite {
    rules: Arc<Rules>,
}

impl CallerIdRewrite {
    /// The rewrite over `rules`.
    pub fn new(rules: Arc<Rules>) -> Self {
        Self { rules }
    }
}

impl Rewrite for CallerIdRewrite {
    fn name(&self) -> &'static str {
        CALLER_ID
    }

    fn caller_id(&mut self, call: &CallRequest<'_>) -> Option<String> {
        match self.rules.judge(call) {
            (Judgement::Replace { with, .. }, false) => Some(format!("+{with}")),
            _ => None,
        }
    }

    fn invite(&mut self, call: &CallRequest<'_>, out: &mut Message) -> Result<(), RewriteError> {
        if let (Judgement::Mark { header, .. }, false) = self.rules.judge(call) {
            // Whatever the caller sent under that name is not the gateway's word.
            out.retain_headers(|_, name| !name.eq_ignore_ascii_case(&header));
            out.push_header_text(&header, OWN_NUMBER)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "[pbx]\naddress = \"127.0.0.10:5080\"\nnetworks = [\"127.0.0.10/32\"]\n\n[[trunk]]\nname = \"carrier\"\nnetworks = [\"127.0.0.3/32\"]\nproxy = \"sip:127.0.0.3:5060\"\ndids = [\"+15551230000-+15551230099\"]\n";

    fn rules(extra: &str) -> Arc<Rules> {
        let cfg = Config::from_toml(&format!("{LAB}{extra}"), None).unwrap();
        Rules::from_config(&cfg).unwrap()
    }

    fn invite(from: &str, pai: Option<&str>) -> Message {
        let pai = pai.map_or(String::new(), |p| {
            format!("P-Asserted-Identity: <sip:{p}@10.0.0.1>\r\n")
        });
        Message::parse(format!(
            "INVITE sip:+12125550100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1\r\nFrom: <sip:{from}@gw>;tag=1\r\nTo: <sip:+12125550100@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{pai}Content-Length: 0\r\n\r\n"
        ).as_bytes())
        .unwrap()
    }

    fn request<'a>(m: &'a Message, caller: &'a str, inbound: bool) -> CallRequest<'a> {
        CallRequest {
            call: 1,
            invite: m,
            origin: if inbound { Origin::Trunk } else { Origin::Pbx },
            trunk: inbound.then_some("carrier"),
            account: None,
            callee_account: None,
            destination: if inbound {
                Destination::Pbx
            } else {
                Destination::Trunk("carrier")
            },
            source: "10.0.0.10:5060".parse().unwrap(),
            transport: sipwarden_sip::header::Transport::Udp,
            caller,
            callee: "+12125550100",
            offer: None,
            now: std::time::Instant::now(),
            wall: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn outbound_numbers_not_ours_are_replaced_by_default() {
        let r = rules("[trunk.caller_id]\n");
        let (mut p, mut w) = (CallerIdPolicy::new(Arc::clone(&r)), CallerIdRewrite::new(r));
        // Ours, in any spelling (national, E.164): untouched.
        for ours in ["+15551230042", "5551230042", "15551230042"] {
            let m = invite(ours, None);
            let c = request(&m, ours, false);
            assert!(p.admit(&c).is_continue());
            assert_eq!(w.caller_id(&c), None, "{ours}");
        }
        // Not ours: the first DID goes out instead; P-Asserted-Identity counts before From.
        let m = invite("+15551230042", Some("+19995550000"));
        let c = request(&m, "+15551230042", false);
        assert!(p.admit(&c).is_continue());
        assert_eq!(w.caller_id(&c).as_deref(), Some("+15551230000"));
        let mut d = Vec::new();
        p.take_decisions(&mut d);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].outcome, Outcome::Replaced);
        assert!(d[0].detail.contains("19995550000"), "{}", d[0].detail);
        // Inbound calls are not the outbound rule's.
        let m = invite("+19995550000", None);
        assert_eq!(w.caller_id(&request(&m, "+19995550000", true)), None);
    }

    #[test]
    fn reject_refuses_and_monitor_only_records() {
        let r = rules("[trunk.caller_id]\noutbound = \"reject\"\n");
        let mut p = CallerIdPolicy::new(r);
        let m = invite("anonymous", None);
        let v = p.admit(&request(&m, "anonymous", false));
        let Verdict::Reply {
            status, headers, ..
        } = &v
        else {
            panic!("{v:?}")
        };
        assert_eq!(*status, StatusCode::FORBIDDEN);
        assert!(headers[0].1.contains("caller_id_not_owned"), "{headers:?}");
        let r = rules("[trunk.caller_id]\noutbound = \"reject\"\nmode = \"monitor\"\n");
        let mut p = CallerIdPolicy::new(r);
        assert!(p.admit(&request(&m, "anonymous", false)).is_continue());
        let mut d = Vec::new();
        p.take_decisions(&mut d);
        assert_eq!(d[0].outcome, Outcome::WouldRefuse);
    }

    #[test]
    fn inbound_callers_claiming_our_numbers_are_flagged_or_refused() {
        let r = rules("[trunk.caller_id]\nflag_header = \"X-Spoofed\"\n");
        let (mut p, mut w) = (CallerIdPolicy::new(Arc::clone(&r)), CallerIdRewrite::new(r));
        let m = invite("+15551230007", None);
        let c = request(&m, "+15551230007", true);
        assert!(p.admit(&c).is_continue());
        let mut out = invite("+15551230007", None);
        out.push_header_text("x-spoofed", "forged-by-the-caller")
            .unwrap();
        w.invite(&c, &mut out).unwrap();
        let flags: Vec<_> = out.header_values_by_text("X-Spoofed").collect();
        assert_eq!(flags, [OWN_NUMBER]);
        let mut d = Vec::new();
        p.take_decisions(&mut d);
        assert_eq!(d[0].outcome, Outcome::Flagged);
        // A foreign caller is not flagged.
        let m = invite("+442079460000", None);
        let c = request(&m, "+442079460000", true);
        let mut out = invite("+442079460000", None);
        w.invite(&c, &mut out).unwrap();
        assert_eq!(out.header_values_by_text("X-Spoofed").count(), 0);
        // reject: 403.
        let r = rules("[trunk.caller_id]\ninbound = \"reject\"\n");
        let mut p = CallerIdPolicy::new(r);
        let m = invite("+15551230007", None);
        assert!(!p.admit(&request(&m, "+15551230007", true)).is_continue());
    }

    #[test]
    fn no_caller_id_table_no_rules() {
        let cfg = Config::from_toml(LAB, None).unwrap();
        assert!(Rules::from_config(&cfg).is_none());
    }
}
