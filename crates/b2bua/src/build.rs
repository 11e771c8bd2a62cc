//! Message regeneration: every request and response a leg sees is built here from parsed
//! values of the other leg's message. Only what is listed crosses; Via, Contact, Call-ID,
//! tags, CSeq, Route/Record-Route are the leg's own; User-Agent, Server, X-* and P-* headers
//! (but a regenerated P-Asserted-Identity) never cross. An SDP body crosses through the
//! call's rewrites (`rewrites`), which the builders of messages with bodies are given.

use sipwarden_sip::header::{NameAddr, Transport};
use sipwarden_sip::uri::{Scheme, Uri};
use sipwarden_sip::{EditError, HeaderName, Message, Method, StatusCode};
use sipwarden_stages::{RewriteError, SdpKind};

use crate::Local;
use crate::call::{Call, Leg, Side};
use crate::ids::Ids;
use crate::rewrites::CallRewrites;
use crate::routes::Routes;
use sipwarden_sip::Peer;

/// Methods the gateway accepts, for Allow.
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, NOTIFY, REFER, MESSAGE";
/// Extensions the gateway supports end to end.
pub(crate) const SUPPORTED: &str = "100rel, timer, replaces";

/// Headers copied from one leg's message to the other's as they are.
const ALLOWLIST: &[HeaderName] = &[
    HeaderName::Allow,
    HeaderName::Accept,
    HeaderName::ContentDisposition,
    HeaderName::SessionExpires,
    HeaderName::MinSe,
    HeaderName::Privacy,
    HeaderName::Reason,
    HeaderName::Event,
    HeaderName::SubscriptionState,
    HeaderName::AllowEvents,
    HeaderName::Expires,
    HeaderName::Date,
    HeaderName::ReferTo,
    HeaderName::ReferredBy,
    HeaderName::Replaces,
    HeaderName::AcceptLanguage,
    HeaderName::Priority,
    HeaderName::Subject,
];

/// Option tags that may cross in Supported / Require.
const TAGS: &[&str] = &["100rel", "timer", "replaces"];

/// Why a message could not be built.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// An edit the message refused (a value that does not parse, CR/LF injection).
    Edit,
    /// A rewrite failed on a body the message carries, and the message is one to refuse
    /// rather than send half rewritten: the rewrite's name and error.
    Rewrite(&'static str, RewriteError),
}

impl From<EditError> for BuildError {
    fn from(_: EditError) -> Self {
        Self::Edit
    }
}

pub(crate) type Built = Result<Message, BuildError>;

fn transport_param(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
        Transport::Ws => ";transport=ws",
        Transport::Wss => ";transport=wss",
        _ => "",
    }
}

/// A whole response — every header given, then Content-Length — or the error: never one
/// sent with some of its headers missing.
pub(crate) fn response<V: AsRef<str>>(
    req: &Message,
    status: StatusCode,
    reason: Option<&str>,
    tag: Option<&str>,
    headers: &[(HeaderName, V)],
) -> Result<Message, EditError> {
    let mut r = Message::response_to(req, status, reason, tag)?;
    for (h, v) in headers {
        r.push_header(*h, v.as_ref())?;
    }
    r.finish()?;
    Ok(r)
}

/// Our Contact on a leg that uses `target`'s transport.
pub(crate) fn contact(local: &Local, target: &Peer) -> String {
    let addr = local.addr(target.transport);
    match target.transport {
        Transport::Tls => format!("<sips:{addr}>"),
        t => format!("<sip:{addr}{}>", transport_param(t)),
    }
}

/// Our Contact on `side`'s leg of `call`. B's dialog is ours to start: `sips:` over TLS. On
/// A we answer, and follow the caller: `sips:` only when its INVITE's Request-URI was one
/// (RFC 3261 §12.1.1), else `sip:…;transport=tls`, since a caller without SIPS (baresip 1.0.0)
/// cannot send its ACK or BYE to a `sips:` target.
fn leg_contact(local: &Local, call: &Call, side: Side) -> String {
    let target = call.leg(side).target;
    let caller_sips = call
        .a_invite
        .request_uri()
        .is_some_and(|u| u.scheme() == Scheme::Sips);
    if side == Side::A && target.transport == Transport::Tls && !caller_sips {
        let addr = local.addr(target.transport);
        return format!("<sip:{addr};transport=tls>");
    }
    contact(local, &target)
}

fn via(local: &Local, target: &Peer, branch: &str) -> String {
    let t = target.transport.as_str().unwrap_or("UDP");
    format!(
        "SIP/2.0/{t} {};branch={branch};rport",
        local.addr(target.transport)
    )
}

/// A name-addr as `display <uri>;params`, without its tag.
fn without_tag(na: &NameAddr<'_>) -> String {
    let mut s = String::new();
    if let Some(d) = na.display {
        s.push_str(d);
        s.push(' ');
    }
    s.push('<');
    s.push_str(na.uri_text);
    s.push('>');
    for (n, v) in na
        .params
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("tag"))
    {
        s.push(';');
        s.push_str(n);
        if let Some(v) = v {
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

/// The first Contact's URI of a message.
pub(crate) fn contact_uri(msg: &Message) -> Option<String> {
    let contacts = msg.contacts().ok()?;
    contacts.iter().find_map(|c| match c {
        sipwarden_sip::header::Contact::Addr(a) => Some(a.uri_text.to_owned()),
        sipwarden_sip::header::Contact::Star => None,
    })
}

/// A UAC's route set from a dialog-creating response: Record-Route, reversed (§12.1.2).
pub(crate) fn route_set_from_response(rsp: &Message) -> Vec<String> {
    let mut v: Vec<String> = rsp
        .name_addrs(HeaderName::RecordRoute)
        .map(|r| r.iter().map(|na| format!("<{}>", na.uri_text)).collect())
        .unwrap_or_default();
    v.reverse();
    v
}

/// The RSeq of a reliable provisional response (RFC 3262), if it is one.
pub(crate) fn reliable_rseq(rsp: &Message) -> Option<u32> {
    let requires = rsp
        .tokens(HeaderName::Require)
        .ok()?
        .iter()
        .any(|t| t.eq_ignore_ascii_case("100rel"));
    if !requires {
        return None;
    }
    rsp.header(HeaderName::RSeq)
        .and_then(sipwarden_sip::header::parse_delta_seconds)
}

/// The A leg of a new call, from the INVITE that created it.
pub(crate) fn a_leg(invite: &Message, local_tag: String, src: Peer, _local: &Local) -> Leg {
    let from = invite.from_header();
    let to = invite.to_header();
    let route_set = invite
        .name_addrs(HeaderName::RecordRoute)
        .map(|r| r.iter().map(|na| format!("<{}>", na.uri_text)).collect())
        .unwrap_or_default();
    Leg {
        call_id: invite.call_id().unwrap_or("").to_owned(),
        local_tag,
        remote_tag: invite.from_tag().map(str::to_owned),
        local_uri: to.as_ref().map(without_tag).unwrap_or_default(),
        remote_uri: from.as_ref().map(without_tag).unwrap_or_default(),
        remote_target: contact_uri(invite)
            .or_else(|| from.map(|f| f.uri_text.to_owned()))
            .unwrap_or_default(),
        route_set,
        local_cseq: 0,
        target: src,
        account: None,
    }
}

fn uri_user(na: Option<NameAddr<'_>>) -> Option<String> {
    na.and_then(|n| n.uri.user().map(str::to_owned))
}

/// The B leg of a new call: fresh Call-ID and tag, identities on the gateway's address.
pub(crate) fn b_leg(
    invite: &Message,
    callee: &str,
    caller: Option<&str>,
    host: &str,
    target: Peer,
    local: &Local,
    ids: &mut Ids,
) -> Leg {
    let caller = caller
        .map(str::to_owned)
        .or_else(|| uri_user(invite.from_header()))
        .unwrap_or_else(|| "anonymous".to_owned());
    let display = invite
        .from_header()
        .and_then(|f| f.display.map(str::to_owned));
    let gw = local.addr(target.transport).ip();
    let gw = match gw {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let scheme = if target.transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let mut local_uri = String::new();
    if let Some(d) = display {
        local_uri.push_str(&d);
        local_uri.push(' ');
    }
    local_uri.push_str(&format!("<{scheme}:{caller}@{gw}>"));
    let port = target.addr.port();
    // A host name stays as configured (with its port only if it names one): the carrier
    // sees the name it gave, not the address its DNS led to.
    let host_port = if !is_ip_literal(host) {
        host.to_owned()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Leg {
        call_id: ids.call_id(),
        local_tag: ids.tag(),
        remote_tag: None,
        local_uri,
        remote_uri: format!("<{scheme}:{callee}@{host}>"),
        remote_target: format!(
            "{scheme}:{callee}@{host_port}{}",
            if target.transport == Transport::Tls {
                ""
            } else {
                transport_param(target.transport)
            }
        ),
        route_set: Vec::new(),
        local_cseq: 1,
        target,
        account: None,
    }
}

/// The B leg toward one registered contact of a phone: the contact URI as Request-URI, the
/// registered Path as route set, sent where the REGISTER came from.
pub(crate) fn phone_leg(
    invite: &Message,
    binding: &crate::Binding,
    realm: &str,
    local: &Local,
    ids: &mut Ids,
) -> Leg {
    let mut leg = b_leg(
        invite,
        &binding.aor,
        None,
        realm,
        binding.source,
        local,
        ids,
    );
    leg.remote_target.clone_from(&binding.contact);
    leg.route_set.clone_from(&binding.path);
    leg
}

/// An OPTIONS the gateway sends to a phone registered over UDP, to keep the NAT binding in
/// front of it open (any answer will do; none is needed).
pub(crate) fn keepalive_options(binding: &crate::Binding, local: &Local, ids: &mut Ids) -> Built {
    let leg = Leg {
        call_id: ids.call_id(),
        local_tag: ids.tag(),
        remote_tag: None,
        local_uri: format!("<sip:keepalive@{}>", local.addr(binding.source.transport)),
        remote_uri: format!("<{}>", binding.contact),
        remote_target: binding.contact.clone(),
        route_set: binding.path.clone(),
        local_cseq: 1,
        target: binding.source,
        account: None,
    };
    options_on(&leg, local, ids)
}

/// An out-of-dialog OPTIONS on a fresh leg (keep-alives and qualify).
fn options_on(leg: &Leg, local: &Local, ids: &mut Ids) -> Built {
    let r = Req {
        method: Method::Options,
        text: "OPTIONS",
        uri: &leg.remote_target,
        to_tag: None,
        cseq: 1,
    };
    let mut m = leg_request(r, leg, &ids.branch(), local)?;
    m.set_max_forwards(70)?;
    m.finish()?;
    Ok(m)
}

/// Whether a host as written (IPv6 with or without brackets) is an address, not a name.
fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// An OPTIONS to a trunk address (qualify): Request-URI and To the trunk's host (its name, or
/// the address with its port), from the gateway.
pub(crate) fn trunk_options(host: &str, target: Peer, local: &Local, ids: &mut Ids) -> Built {
    let scheme = if target.transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let uri = if is_ip_literal(host) {
        format!("{scheme}:{}", target.addr)
    } else {
        format!("{scheme}:{host}")
    };
    let leg = Leg {
        call_id: ids.call_id(),
        local_tag: ids.tag(),
        remote_tag: None,
        local_uri: format!("<{scheme}:qualify@{}>", local.addr(target.transport)),
        remote_uri: format!("<{uri}>"),
        remote_target: uri.clone(),
        route_set: Vec::new(),
        local_cseq: 1,
        target,
        account: None,
    };
    options_on(&leg, local, ids)
}

/// What a REGISTER to a carrier says: who registers, where calls go, for how long.
pub(crate) struct RegisterTo<'a> {
    /// The registrar's domain (the trunk's host).
    pub(crate) host: &'a str,
    /// The account at the carrier (From, To).
    pub(crate) user: &'a str,
    /// The user part of our Contact.
    pub(crate) contact_user: &'a str,
    /// Requested lifetime, in seconds.
    pub(crate) expires: u64,
    pub(crate) call_id: &'a str,
    pub(crate) from_tag: &'a str,
    pub(crate) cseq: u32,
}

/// A REGISTER of the gateway to a carrier (RFC 3261 §10.2): Request-URI the registrar's
/// domain, To and From the account, Contact the gateway's own address.
pub(crate) fn register_to_carrier(
    r: &RegisterTo<'_>,
    target: Peer,
    local: &Local,
    ids: &mut Ids,
) -> Built {
    let scheme = if target.transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let gw = local.addr(target.transport);
    let aor = format!("<{scheme}:{}@{}>", r.user, r.host);
    let leg = Leg {
        call_id: r.call_id.to_owned(),
        local_tag: r.from_tag.to_owned(),
        remote_tag: None,
        local_uri: aor.clone(),
        remote_uri: aor,
        remote_target: format!("{scheme}:{}", r.host),
        route_set: Vec::new(),
        local_cseq: r.cseq,
        target,
        account: None,
    };
    let req = Req {
        method: Method::Register,
        text: "REGISTER",
        uri: &leg.remote_target,
        to_tag: None,
        cseq: r.cseq,
    };
    let mut m = leg_request(req, &leg, &ids.branch(), local)?;
    m.set_max_forwards(70)?;
    let transport = match target.transport {
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
        _ => "",
    };
    m.push_header(
        HeaderName::Contact,
        &format!("<{scheme}:{}@{gw}{transport}>", r.contact_user),
    )?;
    m.push_header(HeaderName::Expires, &r.expires.to_string())?;
    m.finish()?;
    Ok(m)
}

fn copy_allowlisted(from: &Message, to: &mut Message, extra: &[String]) -> Result<(), EditError> {
    for h in from.headers() {
        if ALLOWLIST.contains(&h.name) {
            to.push_header(h.name, h.value)?;
        } else if extra.iter().any(|e| e.eq_ignore_ascii_case(h.name_text)) {
            to.push_header_text(h.name_text, h.value)?;
        }
    }
    Ok(())
}

/// Supported and Require, filtered to the tags that can cross (100rel only when the gateway
/// maps the reliable provisional responses it concerns).
fn copy_tags(from: &Message, to: &mut Message, allow_100rel: bool) -> Result<(), EditError> {
    for name in [HeaderName::Supported, HeaderName::Require] {
        let tags: Vec<&str> = from
            .tokens(name)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| TAGS.iter().any(|k| k.eq_ignore_ascii_case(t)))
            .filter(|t| allow_100rel || !t.eq_ignore_ascii_case("100rel"))
            .collect();
        if !tags.is_empty() {
            to.push_header(name, &tags.join(", "))?;
        }
    }
    Ok(())
}

/// Copies the body; SDP goes through the call's rewrites on its way (`toward` the leg of
/// `target`, in a message of `kind`).
fn copy_body(
    from: &Message,
    to: &mut Message,
    (local, target): (&Local, &Peer),
    (rw, toward, kind): (&mut CallRewrites<'_>, Side, SdpKind),
) -> Result<(), BuildError> {
    if from.body().is_empty() {
        return Ok(());
    }
    let ct = from.header(HeaderName::ContentType).map(str::to_owned);
    let is_sdp = from
        .content_type()
        .and_then(Result::ok)
        .is_some_and(|c| c.is_sdp());
    let body = if is_sdp {
        let ends = (local.addr(target.transport), target.addr);
        rw.sdp(from.body(), (toward, kind), ends)?
    } else {
        bytes::Bytes::copy_from_slice(from.body())
    };
    Ok(to.set_body(body, ct.as_deref())?)
}

/// P-Asserted-Identity for the other leg: the user part kept, the host the gateway's.
fn copy_identity(
    from: &Message,
    to: &mut Message,
    local: &Local,
    target: &Peer,
) -> Result<(), EditError> {
    let Ok(ids) = from.name_addrs(HeaderName::PAssertedIdentity) else {
        return Ok(());
    };
    let gw = local.addr(target.transport).ip();
    for na in ids {
        let value = match (&na.uri, na.uri.user()) {
            (Uri::Tel(_), _) => format!("<{}>", na.uri_text),
            (Uri::Sip(_), Some(user)) => {
                let d = na.display.map(|d| format!("{d} ")).unwrap_or_default();
                match gw {
                    std::net::IpAddr::V6(v6) => format!("{d}<sip:{user}@[{v6}]>"),
                    v4 => format!("{d}<sip:{user}@{v4}>"),
                }
            }
            _ => continue,
        };
        to.push_header(HeaderName::PAssertedIdentity, &value)?;
    }
    Ok(())
}

/// Max-Forwards for the other leg: the received value minus one (RFC 7332), 70 if absent.
fn max_forwards(from: &Message) -> u8 {
    from.max_forwards().map_or(70, |m| m.saturating_sub(1))
}

/// The start of a request on a leg: what differs between the requests the gateway sends.
struct Req<'a> {
    method: Method,
    text: &'a str,
    uri: &'a str,
    to_tag: Option<&'a str>,
    cseq: u32,
}

fn leg_request(r: Req<'_>, leg: &Leg, branch: &str, local: &Local) -> Built {
    let Req {
        method,
        text: method_text,
        uri,
        to_tag,
        cseq,
    } = r;
    let mut m = Message::request(method, method_text, uri)?;
    m.push_header(HeaderName::Via, &via(local, &leg.target, branch))?;
    m.push_header(
        HeaderName::From,
        &format!("{};tag={}", leg.local_uri, leg.local_tag),
    )?;
    match to_tag {
        Some(t) => m.push_header(HeaderName::To, &format!("{};tag={t}", leg.remote_uri))?,
        None => m.push_header(HeaderName::To, &leg.remote_uri)?,
    }
    m.push_header(HeaderName::CallId, &leg.call_id)?;
    m.push_header(HeaderName::CSeq, &format!("{cseq} {method_text}"))?;
    for r in &leg.route_set {
        m.push_header(HeaderName::Route, r)?;
    }
    Ok(m)
}

/// Who the B leg says the caller is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Identity<'a> {
    /// Whatever the trusted A side asserted (PBX, trunk), regenerated on our host.
    Copy,
    /// An authenticated account: its P-Asserted-Identity, whatever the phone claimed.
    Account(&'a str),
}

/// The INVITE that starts the B leg. `reliable`: whether 100rel may be offered (not when
/// the call forks: reliable provisional responses of several forks cannot be mapped onto
/// one A leg).
pub(crate) fn initial_invite(
    a: &Message,
    b: &Leg,
    local: &Local,
    routes: &Routes,
    (identity, reliable): (Identity<'_>, bool),
    ids: &mut Ids,
    rw: &mut CallRewrites<'_>,
) -> Built {
    let mut m = leg_request(
        Req {
            method: Method::Invite,
            text: "INVITE",
            uri: &b.remote_target,
            to_tag: None,
            cseq: b.local_cseq,
        },
        b,
        &ids.branch(),
        local,
    )?;
    m.set_max_forwards(max_forwards(a))?;
    m.push_header(HeaderName::Contact, &contact(local, &b.target))?;
    match identity {
        Identity::Copy => copy_identity(a, &mut m, local, &b.target)?,
        Identity::Account(user) => {
            let gw = match local.addr(b.target.transport).ip() {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            m.push_header(HeaderName::PAssertedIdentity, &format!("<sip:{user}@{gw}>"))?;
        }
    }
    copy_tags(a, &mut m, reliable)?;
    copy_allowlisted(a, &mut m, &routes.header_allowlist)?;
    copy_body(
        a,
        &mut m,
        (local, &b.target),
        (rw, Side::B, SdpKind::Invite),
    )?;
    m.finish()?;
    Ok(m)
}

/// A response built on one leg from the response the other leg sent: status (with the
/// standard reason phrase: reason phrases can carry product strings), our Contact when it
/// establishes or refreshes the target, the option tags that may cross (with our RSeq for a
/// reliable provisional one), the allowlisted headers and the body.
struct Crossing<'a> {
    req: &'a Message,
    to_tag: Option<&'a str>,
    contact: bool,
    rel: Option<u32>,
    side: Side,
    target: Peer,
    kind: SdpKind,
}

fn cross_response(
    rsp: &Message,
    x: Crossing<'_>,
    (call, local): (&Call, &Local),
    rw: &mut CallRewrites<'_>,
) -> Built {
    let status = rsp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    let reason = match status.default_reason() {
        "" => rsp.reason_phrase().unwrap_or(""),
        r => r,
    };
    let mut m = Message::response_to(x.req, status, Some(reason), x.to_tag)?;
    if x.contact {
        m.push_header(HeaderName::Contact, &leg_contact(local, call, x.side))?;
    }
    copy_tags(rsp, &mut m, x.rel.is_some())?;
    if let Some(r) = x.rel {
        let has = m
            .tokens(HeaderName::Require)
            .unwrap_or_default()
            .iter()
            .any(|t| t.eq_ignore_ascii_case("100rel"));
        if !has {
            m.push_header(HeaderName::Require, "100rel")?;
        }
        m.push_header(HeaderName::RSeq, &r.to_string())?;
    }
    copy_allowlisted(rsp, &mut m, &call.routes.header_allowlist)?;
    copy_body(rsp, &mut m, (local, &x.target), (rw, x.side, x.kind))?;
    m.finish()?;
    Ok(m)
}

/// The response on A for a response B sent to the initial INVITE. `rel` is the RSeq to use
/// when the response is a reliable provisional one.
pub(crate) fn response_to_a(
    rsp: &Message,
    call: &Call,
    local: &Local,
    rel: Option<u32>,
    rw: &mut CallRewrites<'_>,
) -> Built {
    let status = rsp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    let x = Crossing {
        req: &call.a_invite,
        to_tag: Some(&call.a.local_tag),
        contact: (101..300).contains(&status.as_u16()),
        rel,
        side: Side::A,
        target: call.a.target,
        kind: SdpKind::InviteResponse(status),
    };
    cross_response(rsp, x, (call, local), rw)
}

/// An in-dialog request from one leg, rebuilt for the `to` leg (which it updates: CSeq).
pub(crate) fn relay_request(
    msg: &Message,
    call: &mut Call,
    to: Side,
    local: &Local,
    ids: &mut Ids,
    rw: &mut CallRewrites<'_>,
) -> Built {
    let method = msg.method().unwrap_or(Method::Extension);
    let method_text = msg.method_str().unwrap_or("");
    let b_invite_cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
    let rack = if method == Method::Prack && to == Side::B {
        prack_target(msg, call, b_invite_cseq)
    } else {
        None
    };
    let leg = call.leg_mut(to);
    leg.local_cseq += 1;
    let cseq = leg.local_cseq;
    let (uri, to_tag) = match &rack {
        Some((_, tag, target)) => (target.clone(), Some(tag.clone())),
        None => (leg.remote_target.clone(), leg.remote_tag.clone()),
    };
    let leg = call.leg(to).clone();
    let mut m = leg_request(
        Req {
            method,
            text: method_text,
            uri: &uri,
            to_tag: to_tag.as_deref(),
            cseq,
        },
        &leg,
        &ids.branch(),
        local,
    )?;
    m.set_max_forwards(max_forwards(msg))?;
    if matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    ) {
        m.push_header(HeaderName::Contact, &leg_contact(local, call, to))?;
    }
    if let Some((value, _, _)) = rack {
        m.push_header(HeaderName::RAck, &value)?;
    }
    copy_tags(msg, &mut m, false)?;
    copy_allowlisted(msg, &mut m, &call.routes.header_allowlist)?;
    let kind = SdpKind::InDialogRequest(method);
    copy_body(msg, &mut m, (local, &leg.target), (rw, to, kind))?;
    m.finish()?;
    Ok(m)
}

/// The RAck for a PRACK from A, translated to B's numbering, with the B fork's tag and target.
fn prack_target(
    msg: &Message,
    call: &Call,
    b_invite_cseq: u32,
) -> Option<(String, String, String)> {
    let rack = msg.header(HeaderName::RAck)?;
    let a_rseq: u32 = rack.split_ascii_whitespace().next()?.parse().ok()?;
    let rel = call.rel.iter().find(|r| r.a_rseq == a_rseq)?;
    Some((
        format!("{} {b_invite_cseq} INVITE", rel.b_rseq),
        rel.b_tag.clone(),
        rel.b_target.clone(),
    ))
}

/// The response on the `from` leg (where request `req` came from) for a response the other
/// leg sent to the relayed request.
pub(crate) fn relay_response(
    rsp: &Message,
    req: &Message,
    call: &Call,
    from: Side,
    local: &Local,
    rw: &mut CallRewrites<'_>,
) -> Built {
    let refresh = matches!(
        req.method(),
        Some(Method::Invite | Method::Update | Method::Subscribe)
    );
    let status = rsp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    let method = req.method().unwrap_or(Method::Extension);
    let x = Crossing {
        req,
        to_tag: None,
        contact: refresh && status.is_success(),
        rel: None,
        side: from,
        target: call.leg(from).target,
        kind: SdpKind::InDialogResponse(method, status),
    };
    cross_response(rsp, x, (call, local), rw)
}

/// A request of the gateway's own inside the leg's dialog (ACK for a 2xx, BYE): to the peer's
/// target with its tag, a fresh branch, Max-Forwards 70.
fn dialog_request(
    leg: &Leg,
    method: Method,
    text: &str,
    cseq: u32,
    local: &Local,
    ids: &mut Ids,
) -> Built {
    let r = Req {
        method,
        text,
        uri: &leg.remote_target,
        to_tag: leg.remote_tag.as_deref(),
        cseq,
    };
    let mut m = leg_request(r, leg, &ids.branch(), local)?;
    m.set_max_forwards(70)?;
    Ok(m)
}

/// The ACK for a 2xx on leg `side`; `body_from` supplies the body (the other leg's ACK, which
/// may carry the SDP answer of a late offer).
pub(crate) fn ack_for_2xx(
    call: &Call,
    side: Side,
    body_from: &Message,
    cseq: u32,
    local: &Local,
    ids: &mut Ids,
    rw: &mut CallRewrites<'_>,
) -> Built {
    let leg = call.leg(side);
    let mut m = dialog_request(leg, Method::Ack, "ACK", cseq, local, ids)?;
    if body_from.method() == Some(Method::Ack) {
        let initial = side == Side::B && call.b_invite.cseq().is_some_and(|c| c.seq == cseq);
        let kind = if initial {
            SdpKind::Ack
        } else {
            SdpKind::InDialogRequest(Method::Ack)
        };
        copy_body(body_from, &mut m, (local, &leg.target), (rw, side, kind))?;
    }
    m.finish()?;
    Ok(m)
}

/// The ACK for a fork's 2xx that came too late, without a body: the call went elsewhere, and
/// a BYE follows.
pub(crate) fn ack_on_leg(leg: &Leg, cseq: u32, local: &Local, ids: &mut Ids) -> Built {
    let mut m = dialog_request(leg, Method::Ack, "ACK", cseq, local, ids)?;
    m.finish()?;
    Ok(m)
}

/// A BYE the gateway sends on its own on leg `side`.
pub(crate) fn bye(
    call: &mut Call,
    side: Side,
    reason: &str,
    local: &Local,
    ids: &mut Ids,
) -> Built {
    bye_on_leg(call.leg_mut(side), reason, local, ids)
}

/// A BYE the gateway sends on its own on `leg`.
pub(crate) fn bye_on_leg(leg: &mut Leg, reason: &str, local: &Local, ids: &mut Ids) -> Built {
    leg.local_cseq += 1;
    let cseq = leg.local_cseq;
    let mut m = dialog_request(leg, Method::Bye, "BYE", cseq, local, ids)?;
    let text: String = reason
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    m.push_header(HeaderName::Reason, &format!("SIP;text=\"{text}\""))?;
    m.finish()?;
    Ok(m)
}
