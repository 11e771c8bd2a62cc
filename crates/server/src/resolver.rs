//! Trunks named by DNS, resolved off the call path: one task runs the RFC 3263 procedure of
//! `sipwarden-dns` with hickory-resolver for each named trunk, keeps each answer for its TTL
//! (and, while look-ups fail, for `dns.keep_stale` after), and hands the core the targets
//! whenever they change. The core never waits for DNS: a trunk without an answer yet has no
//! address, and routing skips it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use sipwarden_config::DnsConfig;
use sipwarden_dns::cache::{Change, Entry, Settings};
use sipwarden_dns::{Answer, Lookup, NaptrRecord, Query, Spec, SrvRecord};
use tokio::sync::{mpsc, watch};

use crate::core_task::Control;

/// A trunk to resolve: its name and proxy.
pub(crate) type Named = Vec<(String, Spec)>;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct DnsStats {
    /// Look-ups that gave targets.
    pub(crate) ok: std::sync::atomic::AtomicU64,
    /// Look-ups that failed (the last good answer, if any, stood).
    pub(crate) failed: std::sync::atomic::AtomicU64,
    /// Trunks left with no address (no answer, or the last good one too old).
    pub(crate) lost: std::sync::atomic::AtomicU64,
}

/// Builds the resolver: the configured name servers (UDP and TCP), else the system's.
pub(crate) fn build(cfg: &DnsConfig) -> Result<TokioResolver, ResolveError> {
    let mut builder = if cfg.servers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let mut rc = ResolverConfig::new();
        for s in &cfg.servers {
            rc.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
            rc.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
    };
    let o: &mut ResolverOpts = builder.options_mut();
    o.timeout = cfg.timeout;
    o.attempts = 2;
    // Our cache keeps answers (with their TTLs); the resolver's would hide expiry.
    o.cache_size = 0;
    o.ndots = 0;
    Ok(builder.build())
}

/// How long records found at `now` may be used, from the resolver's expiry.
fn ttl(valid_until: Instant, now: Instant) -> Duration {
    valid_until.saturating_duration_since(now)
}

/// "No such name" and "no records of that type" are answers (empty), not failures.
fn empty_or_failed(e: &ResolveError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

/// Makes one query of the procedure.
async fn ask(r: &TokioResolver, q: &Query) -> Result<Answer, String> {
    let now = Instant::now();
    let none = Duration::from_secs(60);
    match q {
        Query::Naptr(name) => match r.lookup(format!("{name}."), RecordType::NAPTR).await {
            Ok(l) => {
                let records = l
                    .iter()
                    .filter_map(|d| match d {
                        RData::NAPTR(n) => Some(NaptrRecord {
                            order: n.order(),
                            preference: n.preference(),
                            flags: String::from_utf8_lossy(n.flags()).into_owned(),
                            services: String::from_utf8_lossy(n.services()).into_owned(),
                            replacement: n.replacement().to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect();
                Ok(Answer::Naptr(records, ttl(l.valid_until(), now)))
            }
            Err(e) if empty_or_failed(&e) => Ok(Answer::Naptr(Vec::new(), none)),
            Err(e) => Err(e.to_string()),
        },
        Query::Srv(name) => match r.lookup(format!("{name}."), RecordType::SRV).await {
            Ok(l) => {
                let records = l
                    .iter()
                    .filter_map(|d| match d {
                        RData::SRV(s) => Some(SrvRecord {
                            priority: s.priority(),
                            weight: s.weight(),
                            port: s.port(),
                            target: s.target().to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect();
                Ok(Answer::Srv(records, ttl(l.valid_until(), now)))
            }
            Err(e) if empty_or_failed(&e) => Ok(Answer::Srv(Vec::new(), none)),
            Err(e) => Err(e.to_string()),
        },
        Query::Ip(name) => match r.lookup_ip(format!("{name}.")).await {
            Ok(l) => Ok(Answer::Ip(l.iter().collect(), ttl(l.valid_until(), now))),
            Err(e) if empty_or_failed(&e) => Ok(Answer::Ip(Vec::new(), none)),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Runs the procedure for one proxy.
async fn resolve(
    r: &TokioResolver,
    spec: &Spec,
) -> Result<sipwarden_dns::Resolved, sipwarden_dns::LookupError> {
    let mut lookup = Lookup::new(spec.clone());
    // The procedure asks a handful of questions; the bound is a guard, not a limit.
    for _ in 0..32 {
        let Some(q) = lookup.next_query() else {
            break;
        };
        let a = ask(r, &q).await;
        lookup.on_answer(a);
    }
    lookup.finish()
}

/// Resolves the named trunks of `trunks` for as long as the gateway runs, and hands the core
/// each trunk's targets when they change.
pub(crate) async fn run(
    resolver: TokioResolver,
    settings: Settings,
    mut trunks: watch::Receiver<Named>,
    (control, transports): (mpsc::Sender<Control>, sipwarden_transport::Transports),
    stats: std::sync::Arc<DnsStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut entries: HashMap<String, (Spec, Entry)> = HashMap::new();
    loop {
        // The trunk list of the routes in force (a reload may change it).
        {
            let named = trunks.borrow_and_update().clone();
            let now = Instant::now();
            entries.retain(|n, (spec, _)| named.iter().any(|(m, s)| m == n && s == spec));
            for (name, spec) in named {
                entries
                    .entry(name)
                    .or_insert_with(|| (spec, Entry::new(now)));
            }
        }
        let now = Instant::now();
        let due: Vec<String> = entries
            .iter()
            .filter(|(_, (_, e))| e.refresh_at().is_some_and(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some((spec, _)) = entries.get(&name) else {
                continue;
            };
            let spec = spec.clone();
            let outcome = resolve(&resolver, &spec).await;
            let Some((_, entry)) = entries.get_mut(&name) else {
                continue;
            };
            let now = Instant::now();
            if let Err(e) = &outcome {
                stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(trunk = %name, "DNS: {e}");
            } else {
                stats.ok.fetch_add(1, Relaxed);
            }
            match entry.on_lookup(now, outcome, &settings) {
                Change::Updated | Change::Lost => {
                    let targets = entry.targets(now, &settings).to_vec();
                    if targets.is_empty() {
                        stats.lost.fetch_add(1, Relaxed);
                        tracing::error!(trunk = %name, "DNS: no usable address for the trunk; calls skip it");
                    } else {
                        tracing::info!(
                            trunk = %name,
                            targets = %describe(&targets),
                            "DNS: trunk addresses"
                        );
                    }
                    // TLS to these addresses is verified against the trunk's name, and
                    // sends it as SNI (RFC 5922: the domain of the URI, not the SRV target).
                    if let Some((spec, _)) = entries.get(&name) {
                        let tls = targets
                            .iter()
                            .filter(|t| t.transport == sipwarden_dns::Transport::Tls);
                        for addr in tls.flat_map(sipwarden_dns::Target::sockets) {
                            transports.set_tls_name(addr, Some(spec.host.clone()));
                        }
                    }
                    let msg = Control::TrunkTargets {
                        trunk: name,
                        targets,
                    };
                    if control.send(msg).await.is_err() {
                        return;
                    }
                }
                Change::Same | Change::Stale => {}
            }
        }
        // Entries past keep_stale lose their targets without a look-up telling them so.
        let now = Instant::now();
        let next = entries
            .values()
            .filter_map(|(_, e)| e.refresh_at())
            .min()
            .map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(now)
            });
        tokio::select! {
            changed = trunks.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(next.max(Duration::from_millis(50))) => {}
        }
    }
}

/// Targets for the log: `host:port/transport [addresses]`.
fn describe(targets: &[sipwarden_dns::Target]) -> String {
    targets
        .iter()
        .map(|t| {
            format!(
                "{}:{}/{} p{} w{} {:?}",
                t.host,
                t.port,
                t.transport.as_str().unwrap_or("?"),
                t.priority,
                t.weight,
                t.addrs
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trunks of `routes` that need DNS.
pub(crate) fn named(routes: &sipwarden_b2bua::Routes) -> Named {
    routes
        .trunks
        .iter()
        .filter(|t| t.fixed_targets.is_none())
        .map(|t| (t.name.clone(), t.proxy.clone()))
        .collect()
}
