//! Digest authentication of the endpoint zone: phones registering (401 + WWW-Authenticate)
//! and placing calls (407 + Proxy-Authenticate), against the accounts file's HA1 values.
//!
//! Nonces are stateless: the issue time and an HMAC over it and the client's address, keyed
//! with a secret drawn at start. A nonce is therefore useless from another address and after
//! its lifetime (then the answer says `stale=true`, so the phone retries without asking the
//! user). Every failure — unknown account, wrong password, an account used from a network or
//! over a transport it may not use, a username that is not the registered address — gives
//! the same answers (the auth stage, `auth_stage.rs`, picks them from the one failure counter:
//! a fresh challenge, then 403). The kind goes to the logs only, as a typed `AuthFailure`, so
//! the answers never tell an attacker which accounts exist.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sipwarden_config::{AccountConfig, AccountsConfig, AccountsFile};
use sipwarden_sip::digest::{self, Algorithm, HexDigest, Qop, ResponseInput};
use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, Secret};
use sipwarden_stages::{AuthFailure, LruTable, TableStats};

use sipwarden_sip::Peer;

/// The nonces' lifetime and the bound of the table of used ones (`[accounts]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceSettings {
    /// How long a nonce is good for (then `stale=true`: the phone answers again unprompted).
    pub lifetime: Duration,
    /// Most nonces whose highest `nc` is remembered; the least recently used gives way.
    pub max_tracked: usize,
}

impl NonceSettings {
    /// From the `[accounts]` section.
    #[must_use]
    pub fn from_config(cfg: &AccountsConfig) -> Self {
        Self {
            lifetime: cfg.nonce_lifetime,
            max_tracked: cfg.max_nonces,
        }
    }
}

impl Default for NonceSettings {
    fn default() -> Self {
        Self::from_config(&AccountsConfig::default())
    }
}

/// What to do with a request after looking at its credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Authenticated as this account.
    Ok(String),
    /// No credentials for us, or an expired nonce (`stale`: the phone answers again
    /// unprompted): answer with fresh challenges. Not a failure.
    Challenge { stale: bool },
    /// A failed login. Whether it gets a fresh challenge or 403 is the auth stage's choice,
    /// from the failure counter of the edge stages.
    Failed(Failure),
}

impl AuthOutcome {
    /// The failed attempt, if this is one.
    pub(crate) fn failure(&self) -> Option<Failure> {
        match self {
            Self::Failed(f) => Some(*f),
            _ => None,
        }
    }
}

/// A failed login: its kind chooses the security event and the counters, `detail` is the
/// log's words for it (more precise than the kind, never matched on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: AuthFailure,
    pub(crate) detail: &'static str,
}

impl Failure {
    const fn of(kind: AuthFailure) -> Self {
        Self {
            kind,
            detail: kind.describe(),
        }
    }

    const fn said(kind: AuthFailure, detail: &'static str) -> Self {
        Self { kind, detail }
    }
}

/// Which digest challenges a client gets, chosen by its User-Agent and never by the account
/// it names (unknown and known users get the same answers). Clients differ: some answer only
/// the first challenge, some give up when any is not MD5, some answer SHA-256 (RFC 8760).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeTable {
    /// (lower-case User-Agent substring, algorithms), first match wins.
    entries: Vec<(String, Vec<Algorithm>)>,
    /// For clients no entry names.
    default: Vec<Algorithm>,
}

fn algorithms(names: &[impl AsRef<str>]) -> Vec<Algorithm> {
    names
        .iter()
        .filter_map(|a| Algorithm::from_token(a.as_ref()))
        .filter(|a| !a.is_session())
        .collect()
}

/// ASCII case-insensitive substring test; `needle` is already lower case.
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

impl ChallengeTable {
    /// The configured entries, then (unless turned off) the built-in ones.
    #[must_use]
    pub fn from_config(cfg: &AccountsConfig) -> Self {
        let mut entries: Vec<(String, Vec<Algorithm>)> = cfg
            .clients
            .iter()
            .map(|c| (c.user_agent.to_ascii_lowercase(), algorithms(&c.algorithms)))
            .collect();
        if cfg.builtin_clients {
            entries.extend(
                sipwarden_config::BUILTIN_CLIENTS
                    .iter()
                    .map(|(ua, algs)| (ua.to_ascii_lowercase(), algorithms(algs))),
            );
        }
        entries.retain(|(ua, algs)| !ua.is_empty() && !algs.is_empty());
        let mut default = algorithms(&cfg.algorithms);
        if default.is_empty() {
            default.push(Algorithm::Md5);
        }
        Self { entries, default }
    }

    /// The challenges for a client with this User-Agent (or none).
    #[must_use]
    pub fn for_user_agent(&self, ua: Option<&str>) -> &[Algorithm] {
        ua.and_then(|ua| {
            self.entries
                .iter()
                .find(|(needle, _)| contains_ignore_case(ua, needle))
        })
        .map_or(&self.default, |(_, algs)| algs)
    }
}

impl Default for ChallengeTable {
    fn default() -> Self {
        Self::from_config(&AccountsConfig::default())
    }
}

/// The nonce's record of which algorithms it was offered with (one bit each).
fn offered_mask(algorithms: &[Algorithm]) -> u8 {
    algorithms
        .iter()
        .fold(0, |m, a| m | algorithm_bit(a.base()))
}

fn algorithm_bit(a: Algorithm) -> u8 {
    match a {
        Algorithm::Md5 => 1,
        Algorithm::Sha256 => 2,
        _ => 4,
    }
}

/// What a nonce of ours says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NonceInfo {
    /// Within its lifetime.
    fresh: bool,
    /// The algorithms its challenges offered ([`offered_mask`]); all for nonces of the
    /// earlier format, which did not record them.
    offered: u8,
}

/// Which request is being authenticated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ask<'a> {
    /// REGISTER (Authorization, 401) or anything else (Proxy-Authorization, 407).
    pub(crate) register: bool,
    /// For REGISTER: the address-of-record user the credentials must be for.
    pub(crate) aor: Option<&'a str>,
    /// Where the request came from.
    pub(crate) src: Peer,
    /// Also accept nonces issued to this address: a phone that moved, or opened a connection
    /// from elsewhere, may answer with the nonce it got at its dialog's address. The response
    /// still proves the password, and `nc` replay is still refused.
    pub(crate) also_from: Option<IpAddr>,
}

pub(crate) struct Digest {
    /// HMAC-SHA256 with the nonce key already absorbed: cloned per nonce, which saves the two
    /// key-block compressions of starting from the key each time.
    keyed: Hmac<Sha256>,
    /// Nonce times count from here: the first moment the core saw (sans-io: no clock).
    epoch: Option<Instant>,
    /// Unix seconds at `epoch`, when the server has told us (nonces then carry wall-clock
    /// time and stay valid across a restart with the same key).
    base_unix: u64,
    /// How long a nonce is good for.
    lifetime: Duration,
    /// Per nonce: the highest `nc` accepted, and the request it came with (a retransmission
    /// of that same request may repeat it). A nonce is used when a request with it passes
    /// the password check; the least recently used gives way when the table is full.
    used: LruTable<String, NonceUse>,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// HMAC-SHA256 keyed with the nonce key. HMAC pads a key shorter than the hash's block with
/// zeros (RFC 2104 §2), so the 32-byte key padded to SHA-256's 64-byte block is the same key,
/// given in the one form that cannot fail.
fn keyed(key: &Secret<[u8; 32]>) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    for (b, k) in block.iter_mut().zip(key.expose()) {
        *b = *k;
    }
    let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    zeroize::Zeroize::zeroize(&mut block);
    mac
}

/// Lower-case hex, two digits a byte, without `core::fmt`: nonces are made and checked at
/// every challenge and every authenticated request.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// An account without a list may use any transport; the list holds only the five the
/// configuration accepts, so SCTP and unknown transports are refused whenever there is one.
fn transport_allowed(account: &AccountConfig, t: Transport) -> bool {
    account.transports.is_empty() || account.transports.contains(&t)
}

fn stored_ha1(account: &AccountConfig, alg: Algorithm) -> Option<HexDigest> {
    let v = match alg.base() {
        Algorithm::Md5 => account.ha1_md5.as_ref(),
        Algorithm::Sha256 => account.ha1_sha256.as_ref(),
        _ => account.ha1_sha512_256.as_ref(),
    };
    v.and_then(|ha1| HexDigest::from_hex(ha1.expose()))
}

/// What was accepted with a nonce.
#[derive(Debug)]
struct NonceUse {
    nc: u32,
    call_id: String,
    cseq: u32,
    /// When it was last used: a nonce is stale by then + lifetime (it was issued before).
    last: Instant,
}

impl Digest {
    /// Replay protection (RFC 7616 §3.3): each use of a nonce must count up. The same
    /// request again (Call-ID and CSeq alike: a retransmission, answered statelessly) may
    /// repeat its `nc`. A repeated `nc` is answered as a stale nonce (`Err(None)`: a fresh
    /// challenge with `stale=true`, not a failure), as Kamailio does: it is checked only
    /// after the response proved the password, and SIP.js sends every refresh with the
    /// previous nonce and `nc=00000001` again — counting that as a failed login would ban
    /// browsers. A replayed request gains nothing: the fresh nonce needs the password.
    fn note_nc(
        &mut self,
        now: Instant,
        nonce: &str,
        nc: &str,
        msg: &Message,
    ) -> Result<(), Option<Failure>> {
        let malformed = Some(Failure::said(AuthFailure::Malformed, "malformed nc"));
        if !digest::is_valid_nc(nc) {
            return Err(malformed);
        }
        let n = u32::from_str_radix(nc, 16).map_err(|_| malformed)?;
        let call_id = msg.call_id().unwrap_or("");
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        // Stale past this (freshness counts whole seconds, hence the second more), so the
        // entry can go without opening a replay.
        let stale_after = self.lifetime + Duration::from_secs(1);
        let u = self.used.entry(
            nonce,
            || NonceUse {
                nc: n,
                call_id: call_id.to_owned(),
                cseq,
                last: now,
            },
            |u| now.saturating_duration_since(u.last) >= stale_after,
        );
        u.last = now;
        let same_request = u.call_id == call_id && u.cseq == cseq;
        if n < u.nc || (n == u.nc && !same_request) {
            return Err(None);
        }
        if !same_request {
            u.call_id = call_id.to_owned();
            u.cseq = cseq;
        }
        u.nc = n;
        Ok(())
    }

    pub(crate) fn new(key: [u8; 32]) -> Self {
        let nonces = NonceSettings::default();
        Self {
            keyed: keyed(&Secret::new(key)),
            epoch: None,
            base_unix: 0,
            lifetime: nonces.lifetime,
            used: LruTable::new(nonces.max_tracked),
        }
    }

    /// The nonces' lifetime and table bound (start, or a reload: a lower bound evicts the
    /// least recently used down to it).
    pub(crate) fn set_nonces(&mut self, s: NonceSettings) {
        self.lifetime = s.lifetime;
        self.used.set_cap(s.max_tracked);
    }

    /// The used-nonce table's size and evictions.
    pub(crate) fn nonce_stats(&self) -> TableStats {
        self.used.stats()
    }

    /// A key from the durable secret file, and the wall clock's reading at `epoch`.
    pub(crate) fn set_key(&mut self, key: Secret<[u8; 32]>, epoch: Instant, unix: u64) {
        self.keyed = keyed(&key);
        self.epoch = Some(epoch);
        self.base_unix = unix;
    }

    /// `mask` is `None` for nonces of the earlier format (before the offered algorithms
    /// were recorded), which a running phone may still hold across an upgrade.
    fn mac(&self, ts: u32, salt: u32, mask: Option<u8>, ip: IpAddr) -> String {
        let mut m = self.keyed.clone();
        m.update(&ts.to_be_bytes());
        m.update(&salt.to_be_bytes());
        if let Some(mask) = mask {
            m.update(&[mask]);
        }
        match ip {
            IpAddr::V4(v4) => m.update(&v4.octets()),
            IpAddr::V6(v6) => m.update(&v6.octets()),
        }
        let out = m.finalize().into_bytes();
        hex(out.get(..16).unwrap_or_default())
    }

    fn epoch(&mut self, now: Instant) -> Instant {
        *self.epoch.get_or_insert(now)
    }

    fn clock(&mut self, now: Instant) -> u64 {
        let epoch = self.epoch(now);
        self.base_unix + now.saturating_duration_since(epoch).as_secs()
    }

    /// `ts ‖ salt ‖ offered ‖ HMAC(key, ts ‖ salt ‖ offered ‖ ip)`: the salt makes every
    /// challenge's nonce its own, so `nc` can be tracked per nonce even for phones behind one
    /// NAT address; `offered` records the algorithms the challenge offered, so an answer with
    /// another one is refused without keeping state.
    fn nonce(&mut self, now: Instant, ip: IpAddr, salt: u32, offered: u8) -> String {
        let ts = u32::try_from(self.clock(now)).unwrap_or(u32::MAX);
        let mut nonce = String::with_capacity(50);
        push_hex(&mut nonce, &ts.to_be_bytes());
        push_hex(&mut nonce, &salt.to_be_bytes());
        push_hex(&mut nonce, &[offered]);
        nonce.push_str(&self.mac(ts, salt, Some(offered), ip));
        nonce
    }

    /// `None` when the nonce is not ours (or not for `ip`).
    fn check_nonce(&mut self, nonce: &str, now: Instant, ip: IpAddr) -> Option<NonceInfo> {
        let ts = u32::from_str_radix(nonce.get(..8)?, 16).ok()?;
        let salt = u32::from_str_radix(nonce.get(8..16)?, 16).ok()?;
        // 16 + 32 hex digits: the earlier format, without the offered algorithms.
        let (mask, mac) = if nonce.len() == 48 {
            (None, nonce.get(16..)?)
        } else {
            let mask = u8::from_str_radix(nonce.get(16..18)?, 16).ok()?;
            (Some(mask), nonce.get(18..)?)
        };
        let expected = self.mac(ts, salt, mask, ip);
        if mac.len() != expected.len() || !digest::verify_response_str(&expected, mac) {
            return None;
        }
        let clock = self.clock(now);
        let issued = u64::from(ts);
        Some(NonceInfo {
            fresh: issued <= clock && clock - issued <= self.lifetime.as_secs(),
            offered: mask.unwrap_or(u8::MAX),
        })
    }

    /// A fresh nonce and the challenge header values for it, one per algorithm, in order.
    pub(crate) fn challenges(
        &mut self,
        now: Instant,
        ip: IpAddr,
        realm: &str,
        algorithms: &[Algorithm],
        (stale, salt): (bool, u32),
    ) -> (String, Vec<String>) {
        let nonce = self.nonce(now, ip, salt, offered_mask(algorithms));
        let values = algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    a.token()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect();
        (nonce, values)
    }

    /// Looks at a request's credentials. `locked(account)`: the account is locked against
    /// this source (see [`sipwarden_stages::FailureCounter::account_locked`]); right
    /// credentials then fail exactly as a wrong password does, answers included.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        msg: &Message,
        ask: Ask<'_>,
        accounts: &AccountsFile,
        locked: &dyn Fn(&str) -> bool,
    ) -> AuthOutcome {
        let header = if ask.register {
            HeaderName::Authorization
        } else {
            HeaderName::ProxyAuthorization
        };
        let mut malformed = false;
        let creds = msg
            .auths(header)
            .filter_map(|a| {
                malformed |= a.is_err();
                a.ok()
            })
            .find(|a| a.is_digest() && a.realm().as_deref() == Some(accounts.realm.as_str()));
        let Some(creds) = creds else {
            // Credentials that cannot be read count as a failure: a phone gets a fresh
            // challenge and then 403, a guessing tool cannot probe for free.
            if malformed {
                return AuthOutcome::Failed(Failure::of(AuthFailure::Malformed));
            }
            return AuthOutcome::Challenge { stale: false };
        };
        let username = creds.username().map(|u| u.into_owned()).unwrap_or_default();
        match self.verify(now, msg, &creds, &username, ask, accounts) {
            Ok(()) if locked(&username) => {
                AuthOutcome::Failed(Failure::of(AuthFailure::AccountLocked))
            }
            Ok(()) => AuthOutcome::Ok(username),
            Err(None) => AuthOutcome::Challenge { stale: true },
            Err(Some(failure)) => AuthOutcome::Failed(failure),
        }
    }

    /// `Ok` when the credentials are right; `Err(None)` for an expired nonce of ours;
    /// `Err(Some(failure))` for a failure.
    fn verify(
        &mut self,
        now: Instant,
        msg: &Message,
        creds: &sipwarden_sip::header::Auth<'_>,
        username: &str,
        ask: Ask<'_>,
        accounts: &AccountsFile,
    ) -> Result<(), Option<Failure>> {
        use AuthFailure as F;
        let algorithm = match creds.algorithm() {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(&a).ok_or(Some(Failure::said(
                F::AlgorithmNotOffered,
                "unsupported algorithm",
            )))?,
        };
        if algorithm.is_session() {
            return Err(Some(Failure::said(
                F::AlgorithmNotOffered,
                "session algorithms are not offered",
            )));
        }
        let nonce = creds
            .nonce()
            .ok_or(Some(Failure::said(F::Malformed, "no nonce")))?;
        let checked = match self.check_nonce(&nonce, now, ask.src.addr.ip()) {
            None => ask
                .also_from
                .and_then(|ip| self.check_nonce(&nonce, now, ip)),
            known => known,
        };
        let Some(info) = checked else {
            return Err(Some(Failure::of(F::ForeignNonce)));
        };
        if !info.fresh {
            return Err(None);
        }
        if info.offered & algorithm_bit(algorithm) == 0 {
            return Err(Some(Failure::of(F::AlgorithmNotOffered)));
        }
        if creds.qop().as_deref() != Some("auth") {
            return Err(Some(Failure::said(F::Malformed, "qop must be auth")));
        }
        let nc = creds
            .nc()
            .ok_or(Some(Failure::said(F::Malformed, "no nc")))?;
        let cnonce = creds
            .cnonce()
            .ok_or(Some(Failure::said(F::Malformed, "no cnonce")))?;
        let uri = creds
            .uri()
            .ok_or(Some(Failure::said(F::Malformed, "no uri")))?;
        if Some(uri.as_ref()) != msg.request_uri_str() {
            return Err(Some(Failure::of(F::UriMismatch)));
        }
        let response = creds
            .response()
            .ok_or(Some(Failure::said(F::Malformed, "no response")))?;
        let account = accounts.get(username);
        // An unknown account costs the same work as a known one.
        let ha1 = account
            .and_then(|a| stored_ha1(a, algorithm))
            .unwrap_or_else(|| digest::ha1(algorithm, username, &accounts.realm, "\u{0}"));
        let input = ResponseInput {
            algorithm,
            method: msg.method_str().unwrap_or(""),
            digest_uri: &uri,
            nonce: &nonce,
            cnonce: Some(&cnonce),
            nc: Some(nc),
            qop: Some(Qop::Auth),
            body: b"",
        };
        let expected = digest::response_from_ha1(&ha1, &input);
        let matches = digest::verify_response(&expected, &response);
        let Some(account) = account else {
            return Err(Some(Failure::of(F::UnknownAccount)));
        };
        if stored_ha1(account, algorithm).is_none() {
            return Err(Some(Failure::said(
                F::AlgorithmNotOffered,
                "no HA1 for this algorithm",
            )));
        }
        if !matches {
            return Err(Some(Failure::of(F::WrongPassword)));
        }
        if ask.aor.is_some_and(|aor| aor != username) {
            return Err(Some(Failure::of(F::AorMismatch)));
        }
        if ask.register && msg.from_user() != Some(username) {
            return Err(Some(Failure::said(
                F::AorMismatch,
                "username differs from the From user",
            )));
        }
        self.note_nc(now, &nonce, nc, msg)?;
        let ip = ask.src.addr.ip();
        if !account.networks.is_empty() && !account.networks.iter().any(|n| n.contains(&ip)) {
            return Err(Some(Failure::of(F::WrongNetwork)));
        }
        if !transport_allowed(account, ask.src.transport) {
            return Err(Some(Failure::of(F::WrongTransport)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
