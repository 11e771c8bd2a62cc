//! RFC 3263 §4 as a state machine: [`Lookup::next_query`] names the query, the caller makes
//! it and passes the answer to [`Lookup::on_answer`], until [`Lookup::next_query`] returns
//! `None`; then [`Lookup::finish`] gives the targets.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::{Target, Transport, default_port};

/// What to locate: a trunk's proxy URI, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Host: a name or an address literal (IPv6 with or without brackets).
    pub host: String,
    /// The port, when the URI names one (then no SRV look-up, §4.2).
    pub port: Option<u16>,
    /// The transport, when the URI names one (`;transport=`, or TLS for `sips:`; then no
    /// NAPTR look-up, §4.1).
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS will do.
    pub secure: bool,
}

/// A query for the caller to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// NAPTR records of the name.
    Naptr(String),
    /// SRV records of the name (`_sip._udp.example.com`).
    Srv(String),
    /// A and AAAA records of the name.
    Ip(String),
}

/// A NAPTR record (RFC 3403), as far as SIP uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower first.
    pub order: u16,
    /// Lower first among equal `order`.
    pub preference: u16,
    /// `s` for a record that points at SRV records.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, …
    pub services: String,
    /// The SRV name to look up.
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower first.
    pub priority: u16,
    /// Share among equal priorities.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host (`.` means: no service here).
    pub target: String,
}

/// The records a query found, with the smallest TTL among them. No record at all (NXDOMAIN
/// or an empty answer) is an empty answer, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// NAPTR records.
    Naptr(Vec<NaptrRecord>, Duration),
    /// SRV records.
    Srv(Vec<SrvRecord>, Duration),
    /// Addresses.
    Ip(Vec<IpAddr>, Duration),
}

/// Why a look-up gave no targets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// A query failed (timeout, server failure): the answer is unknown, so the last good one
    /// may stand.
    #[error("DNS query for {0} failed: {1}")]
    Failed(String, String),
    /// The name exists in no form the procedure can use: no address for it.
    #[error("{0} has no SIP service and no address")]
    NotFound(String),
}

/// The targets found, and how long they may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// In record order; order them per attempt with [`crate::srv::order`].
    pub targets: Vec<Target>,
    /// The smallest TTL of the records used; `None` for an address literal (never expires).
    pub ttl: Option<Duration>,
}

#[derive(Debug)]
enum Step {
    /// Waiting for the NAPTR answer.
    Naptr,
    /// Trying SRV names in order: (transport, name) still to try.
    Srv(VecDeque<(Transport, String)>),
    /// Waiting for the addresses of these SRV targets (transport, record), one query each.
    SrvTargets(Transport, VecDeque<SrvRecord>),
    /// Waiting for the host's own addresses.
    Host(Transport, u16),
    Done,
}

/// One run of the procedure for one [`Spec`].
#[derive(Debug)]
pub struct Lookup {
    spec: Spec,
    step: Step,
    /// The query handed out and not yet answered.
    asked: Option<Query>,
    targets: Vec<Target>,
    ttl: Option<Duration>,
    error: Option<LookupError>,
}

/// The transports the gateway can open toward a trunk, by NAPTR service.
fn service_transport(service: &str, secure: bool) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIPS+D2T" => Some(Transport::Tls),
        "SIP+D2U" if !secure => Some(Transport::Udp),
        "SIP+D2T" if !secure => Some(Transport::Tcp),
        _ => None,
    }
}

/// The SRV name of a transport (§4.1: `_sips._tcp` for TLS).
fn srv_name(transport: Transport, host: &str) -> String {
    match transport {
        Transport::Tls => format!("_sips._tcp.{host}"),
        Transport::Tcp => format!("_sip._tcp.{host}"),
        _ => format!("_sip._udp.{host}"),
    }
}

fn strip_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

impl Lookup {
    /// Starts the procedure. An address literal needs no query at all.
    pub fn new(spec: Spec) -> Self {
        let mut l = Self {
            step: Step::Done,
            asked: None,
            targets: Vec::new(),
            ttl: None,
            error: None,
            spec,
        };
        let host = l
            .spec
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let default_transport = l.spec.transport.unwrap_or(if l.spec.secure {
            Transport::Tls
        } else {
            Transport::Udp
        });
        if let Ok(ip) = host.parse::<IpAddr>() {
            // §4.1/§4.2: a numeric address is used as it is.
            l.targets.push(Target {
                priority: 0,
                weight: 1,
                transport: default_transport,
                port: l
                    .spec
                    .port
                    .unwrap_or_else(|| default_port(default_transport)),
                host,
                addrs: vec![ip],
            });
        } else if let Some(port) = l.spec.port {
            l.step = Step::Host(default_transport, port);
        } else if let Some(t) = l.spec.transport {
            l.step = Step::Srv(VecDeque::from([(t, srv_name(t, &host))]));
        } else {
            l.step = Step::Naptr;
        }
        l
    }

    /// The next query to make, or `None` when the procedure is over (call
    /// [`Lookup::finish`]). The same query is returned again until it is answered.
    pub fn next_query(&mut self) -> Option<Query> {
        if let Some(q) = &self.asked {
            return Some(q.clone());
        }
        let host = strip_dot(&self.spec.host).to_owned();
        let q = match &self.step {
            Step::Done => return None,
            Step::Naptr => Query::Naptr(host),
            Step::Srv(names) => Query::Srv(names.front()?.1.clone()),
            Step::SrvTargets(_, records) => {
                Query::Ip(strip_dot(&records.front()?.target).to_owned())
            }
            Step::Host(..) => Query::Ip(host),
        };
        self.asked = Some(q.clone());
        Some(q)
    }

    fn note_ttl(&mut self, ttl: Duration) {
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }

    /// The SRV names to try when NAPTR gives nothing usable (§4.1: each supported transport,
    /// in order of preference).
    fn srv_fallback(&self) -> Step {
        let host = strip_dot(&self.spec.host);
        let order: &[Transport] = if self.spec.secure {
            &[Transport::Tls]
        } else {
            &[Transport::Udp, Transport::Tcp, Transport::Tls]
        };
        Step::Srv(order.iter().map(|t| (*t, srv_name(*t, host))).collect())
    }

    /// The host's own addresses with the default port (§4.2: no SRV records).
    fn host_fallback(&self, transport: Transport) -> Step {
        Step::Host(transport, default_port(transport))
    }

    /// The answer to the query [`Lookup::next_query`] returned (`Err`: the query failed).
    /// An answer of the wrong kind, or to no question, is ignored.
    pub fn on_answer(&mut self, answer: Result<Answer, String>) {
        let Some(asked) = self.asked.take() else {
            return;
        };
        let answer = match answer {
            Ok(a) => a,
            Err(why) => {
                let name = match &asked {
                    Query::Naptr(n) | Query::Srv(n) | Query::Ip(n) => n.clone(),
                };
                self.error = Some(LookupError::Failed(name, why));
                self.targets.clear();
                self.step = Step::Done;
                return;
            }
        };
        let step = std::mem::replace(&mut self.step, Step::Done);
        self.step = match (step, answer) {
            (Step::Naptr, Answer::Naptr(mut records, ttl)) => {
                records.sort_by_key(|r| (r.order, r.preference));
                let secure = self.spec.secure;
                let names: VecDeque<(Transport, String)> = records
                    .iter()
                    .filter(|r| r.flags.eq_ignore_ascii_case("s"))
                    .filter_map(|r| {
                        service_transport(&r.services, secure)
                            .map(|t| (t, strip_dot(&r.replacement).to_owned()))
                    })
                    .collect();
                if names.is_empty() {
                    self.srv_fallback()
                } else {
                    self.note_ttl(ttl);
                    Step::Srv(names)
                }
            }
            (Step::Srv(mut names), Answer::Srv(records, ttl)) => {
                let Some((transport, _)) = names.pop_front() else {
                    return;
                };
                let usable: VecDeque<SrvRecord> = records
                    .into_iter()
                    .filter(|r| !strip_dot(&r.target).is_empty() && r.target != ".")
                    .collect();
                if !usable.is_empty() {
                    self.note_ttl(ttl);
                    Step::SrvTargets(transport, usable)
                } else if !names.is_empty() {
                    Step::Srv(names)
                } else {
                    // Without SRV: the name's own addresses, with the transport the URI
                    // names, else UDP (TLS for sips).
                    let t = self.spec.transport.unwrap_or(if self.spec.secure {
                        Transport::Tls
                    } else {
                        Transport::Udp
                    });
                    self.host_fallback(t)
                }
            }
            (Step::SrvTargets(transport, mut records), Answer::Ip(addrs, ttl)) => {
                if let Some(r) = records.pop_front() {
                    if !addrs.is_empty() {
                        self.note_ttl(ttl);
                        self.targets.push(Target {
                            priority: r.priority,
                            weight: r.weight,
                            transport,
                            port: r.port,
                            host: strip_dot(&r.target).to_owned(),
                            addrs,
                        });
                    }
                }
                if records.is_empty() {
                    Step::Done
                } else {
                    Step::SrvTargets(transport, records)
                }
            }
            (Step::Host(transport, port), Answer::Ip(addrs, ttl)) => {
                if !addrs.is_empty() {
                    self.note_ttl(ttl);
                    self.targets.push(Target {
                        priority: 0,
                        weight: 1,
                        transport,
                        port,
                        host: strip_dot(&self.spec.host).to_owned(),
                        addrs,
                    });
                }
                Step::Done
            }
            // An answer of another kind than asked: ask again.
            (step, _) => {
                self.asked = Some(asked);
                step
            }
        };
    }

    /// The targets, once [`Lookup::next_query`] returns `None`.
    pub fn finish(self) -> Result<Resolved, LookupError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.targets.is_empty() {
            return Err(LookupError::NotFound(self.spec.host));
        }
        Ok(Resolved {
            targets: self.targets,
            ttl: self.ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(300);

    fn spec(host: &str, port: Option<u16>, transport: Option<Transport>, secure: bool) -> Spec {
        Spec {
            host: host.into(),
            port,
            transport,
            secure,
        }
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn naptr(order: u16, pref: u16, services: &str, replacement: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: "s".into(),
            services: services.into(),
            replacement: replacement.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Runs a lookup against a table of answers; returns the queries made and the result.
    fn run(
        spec: Spec,
        answer: impl Fn(&Query) -> Result<Answer, String>,
    ) -> (Vec<Query>, Result<Resolved, LookupError>) {
        let mut l = Lookup::new(spec);
        let mut asked = Vec::new();
        while let Some(q) = l.next_query() {
            assert!(asked.len() < 20, "runaway: {asked:?}");
            asked.push(q.clone());
            l.on_answer(answer(&q));
        }
        (asked, l.finish())
    }

    /// The lab's zone (LAB.md): NAPTR for UDP and TLS, SRV for UDP with weights 3 and 1, TLS
    /// on carrier1 only.
    fn lab(q: &Query) -> Result<Answer, String> {
        Ok(match q {
            Query::Naptr(n) if n == "carrier.lab" => Answer::Naptr(
                vec![
                    naptr(20, 10, "SIPS+D2T", "_sips._tcp.carrier.lab."),
                    naptr(10, 10, "SIP+D2U", "_sip._udp.carrier.lab."),
                ],
                T,
            ),
            Query::Srv(n) if n == "_sip._udp.carrier.lab" => Answer::Srv(
                vec![
                    srv(10, 3, 5060, "carrier1.lab."),
                    srv(10, 1, 5060, "carrier2.lab."),
                ],
                Duration::from_secs(60),
            ),
            Query::Srv(n) if n == "_sips._tcp.carrier.lab" => {
                Answer::Srv(vec![srv(10, 1, 5061, "carrier1.lab.")], T)
            }
            Query::Ip(n) if n == "carrier1.lab" => Answer::Ip(vec![ip("127.0.0.3")], T),
            Query::Ip(n) if n == "carrier2.lab" => Answer::Ip(vec![ip("127.0.0.4")], T),
            Query::Naptr(_) => Answer::Naptr(Vec::new(), T),
            Query::Srv(_) => Answer::Srv(Vec::new(), T),
            Query::Ip(_) => Answer::Ip(Vec::new(), T),
        })
    }

    #[test]
    fn a_bare_name_goes_naptr_srv_then_addresses() {
        let (asked, r) = run(spec("carrier.lab", None, None, false), lab);
        assert_eq!(
            asked,
            vec![
                Query::Naptr("carrier.lab".into()),
                Query::Srv("_sip._udp.carrier.lab".into()),
                Query::Ip("carrier1.lab".into()),
                Query::Ip("carrier2.lab".into()),
            ]
        );
        let r = r.unwrap();
        assert_eq!(
            r.ttl,
            Some(Duration::from_secs(60)),
            "the smallest TTL used"
        );
        let t: Vec<_> = r
            .targets
            .iter()
            .map(|t| {
                (
                    t.host.as_str(),
                    t.transport,
                    t.port,
                    t.weight,
                    t.addrs.clone(),
                )
            })
            .collect();
        assert_eq!(
            t,
            vec![
                (
                    "carrier1.lab",
                    Transport::Udp,
                    5060,
                    3,
                    vec![ip("127.0.0.3")]
                ),
                (
                    "carrier2.lab",
                    Transport::Udp,
                    5060,
                    1,
                    vec![ip("127.0.0.4")]
                ),
            ]
        );
    }

    #[test]
    fn sips_takes_only_the_tls_service() {
        let (asked, r) = run(spec("carrier.lab", None, None, true), lab);
        assert_eq!(asked[1], Query::Srv("_sips._tcp.carrier.lab".into()));
        let r = r.unwrap();
        assert_eq!(r.targets.len(), 1);
        assert_eq!(
            (r.targets[0].transport, r.targets[0].port),
            (Transport::Tls, 5061)
        );
        // With the transport named (sips: URI) there is no NAPTR query at all.
        let (asked, r) = run(spec("carrier.lab", None, Some(Transport::Tls), true), lab);
        assert_eq!(asked[0], Query::Srv("_sips._tcp.carrier.lab".into()));
        assert_eq!(r.unwrap().targets[0].addrs, vec![ip("127.0.0.3")]);
    }

    #[test]
    fn a_port_means_addresses_only() {
        let (asked, r) = run(spec("carrier1.lab", Some(5070), None, false), lab);
        assert_eq!(asked, vec![Query::Ip("carrier1.lab".into())]);
        let t = &r.unwrap().targets[0];
        assert_eq!((t.transport, t.port), (Transport::Udp, 5070));
    }

    #[test]
    fn an_address_needs_no_query_and_never_expires() {
        for (host, want) in [
            ("192.0.2.1", ip("192.0.2.1")),
            ("[2001:db8::1]", ip("2001:db8::1")),
        ] {
            let (asked, r) = run(spec(host, None, Some(Transport::Tls), true), lab);
            assert!(asked.is_empty());
            let r = r.unwrap();
            assert_eq!(r.ttl, None);
            assert_eq!(
                (r.targets[0].addrs.clone(), r.targets[0].port),
                (vec![want], 5061)
            );
        }
    }

    #[test]
    fn without_naptr_each_transport_srv_then_the_name_itself() {
        let zone = |q: &Query| -> Result<Answer, String> {
            Ok(match q {
                Query::Srv(n) if n == "_sip._tcp.x.example" => {
                    Answer::Srv(vec![srv(1, 1, 5080, "pbx.x.example")], T)
                }
                Query::Ip(n) if n == "pbx.x.example" => Answer::Ip(vec![ip("192.0.2.9")], T),
                Query::Ip(n) if n == "y.example" => Answer::Ip(vec![ip("192.0.2.10")], T),
                Query::Naptr(_) => Answer::Naptr(Vec::new(), T),
                Query::Srv(_) => Answer::Srv(Vec::new(), T),
                Query::Ip(_) => Answer::Ip(Vec::new(), T),
            })
        };
        let (asked, r) = run(spec("x.example", None, None, false), zone);
        assert_eq!(asked[1], Query::Srv("_sip._udp.x.example".into()));
        assert_eq!(asked[2], Query::Srv("_sip._tcp.x.example".into()));
        let t = &r.unwrap().targets[0];
        assert_eq!(
            (t.transport, t.port, t.addrs.clone()),
            (Transport::Tcp, 5080, vec![ip("192.0.2.9")])
        );
        // No NAPTR, no SRV: A/AAAA of the name, UDP on 5060.
        let (asked, r) = run(spec("y.example", None, None, false), zone);
        assert_eq!(asked.last(), Some(&Query::Ip("y.example".into())));
        let t = &r.unwrap().targets[0];
        assert_eq!((t.transport, t.port), (Transport::Udp, 5060));
        // Nothing at all: not found.
        let (_, r) = run(spec("z.example", None, None, false), zone);
        assert_eq!(r, Err(LookupError::NotFound("z.example".into())));
    }

    #[test]
    fn naptr_of_unusable_services_falls_back_to_srv() {
        let zone = |q: &Query| -> Result<Answer, String> {
            Ok(match q {
                Query::Naptr(_) => {
                    Answer::Naptr(vec![naptr(1, 1, "SIP+D2S", "_sip._sctp.x.example")], T)
                }
                Query::Srv(n) if n == "_sip._udp.x.example" => {
                    Answer::Srv(vec![srv(1, 1, 5060, "a.x.example")], T)
                }
                Query::Ip(_) => Answer::Ip(vec![ip("192.0.2.1")], T),
                Query::Srv(_) => Answer::Srv(Vec::new(), T),
            })
        };
        let (asked, r) = run(spec("x.example", None, None, false), zone);
        assert_eq!(asked[1], Query::Srv("_sip._udp.x.example".into()));
        assert!(r.is_ok());
    }

    #[test]
    fn a_failed_query_fails_the_lookup_so_the_last_good_answer_stands() {
        let zone = |q: &Query| match q {
            Query::Ip(n) if n == "carrier2.lab" => Err("timed out".to_owned()),
            q => lab(q),
        };
        let (_, r) = run(spec("carrier.lab", None, None, false), zone);
        assert_eq!(
            r,
            Err(LookupError::Failed(
                "carrier2.lab".into(),
                "timed out".into()
            ))
        );
    }

    #[test]
    fn an_srv_target_without_addresses_is_left_out_and_dot_means_no_service() {
        let zone = |q: &Query| match q {
            Query::Ip(n) if n == "carrier2.lab" => Ok(Answer::Ip(Vec::new(), T)),
            q => lab(q),
        };
        let (_, r) = run(spec("carrier.lab", None, Some(Transport::Udp), false), zone);
        assert_eq!(r.unwrap().targets.len(), 1);
        let zone = |q: &Query| -> Result<Answer, String> {
            Ok(match q {
                Query::Srv(_) => Answer::Srv(vec![srv(0, 0, 0, ".")], T),
                Query::Ip(_) => Answer::Ip(Vec::new(), T),
                Query::Naptr(_) => Answer::Naptr(Vec::new(), T),
            })
        };
        let (_, r) = run(spec("x.example", None, Some(Transport::Tls), true), zone);
        assert!(matches!(r, Err(LookupError::NotFound(_))));
    }

    proptest::proptest! {
        /// Whatever the DNS answers (any records, any kind, failures), the procedure ends
        /// within a bounded number of queries, and its targets are never empty on success.
        #[test]
        fn any_answers_end_in_bounded_queries(
            secure in proptest::bool::ANY,
            port in proptest::option::of(1u16..),
            transport in proptest::option::of(proptest::sample::select(vec![Transport::Udp, Transport::Tcp, Transport::Tls])),
            script in proptest::collection::vec((0u8..5, 0usize..4, 0u16..4, "[a-z.]{0,12}"), 0..40),
        ) {
            let mut l = Lookup::new(spec("x.example", port, transport, secure));
            let mut steps = 0;
            let mut script = script.into_iter();
            while l.next_query().is_some() {
                steps += 1;
                proptest::prop_assert!(steps <= 64, "runaway");
                let Some((kind, n, v, name)) = script.next() else {
                    l.on_answer(Err("exhausted".into()));
                    continue;
                };
                let a = match kind {
                    0 => Err("servfail".to_owned()),
                    1 => Ok(Answer::Naptr((0..n).map(|i| naptr(v, i as u16, ["SIP+D2U", "SIP+D2T", "SIPS+D2T", "X"][i % 4], &name)).collect(), T)),
                    2 => Ok(Answer::Srv((0..n).map(|i| srv(v, i as u16, v, &name)).collect(), T)),
                    _ => Ok(Answer::Ip((0..n).map(|i| IpAddr::from([192, 0, 2, i as u8])).collect(), T)),
                };
                l.on_answer(a);
            }
            if let Ok(r) = l.finish() {
                proptest::prop_assert!(!r.targets.is_empty());
                proptest::prop_assert!(r.targets.iter().all(|t| !t.addrs.is_empty()));
            }
        }
    }

    #[test]
    fn an_answer_of_the_wrong_kind_is_asked_again() {
        let mut l = Lookup::new(spec("carrier.lab", None, None, false));
        let q = l.next_query().unwrap();
        l.on_answer(Ok(Answer::Ip(vec![ip("192.0.2.1")], T)));
        assert_eq!(l.next_query(), Some(q));
        // An answer to nothing asked changes nothing.
        let mut l = Lookup::new(spec("192.0.2.1", None, None, false));
        l.on_answer(Ok(Answer::Ip(vec![ip("192.0.2.2")], T)));
        assert_eq!(l.finish().unwrap().targets[0].addrs, vec![ip("192.0.2.1")]);
    }
}
