//! Sans-io HTTP/SIP digest-authentication math (RFC 2617, RFC 7616, RFC 8760).
//!
//! The gateway uses this module both as a client (answering trunk challenges) and as a
//! server (verifying phones' credentials). It does no header parsing and owns no RNG or
//! clock: callers pass already-extracted, unquoted parameter values and any randomness.
//!
//! ```text
//! HA1            = H(username ":" realm ":" password)
//! HA1 (*-sess)   = H(HA1 ":" nonce ":" cnonce)
//! HA2            = H(method ":" digest-uri)                      ; qop=auth or absent
//! HA2 (auth-int) = H(method ":" digest-uri ":" H(entity-body))
//! response       = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   ; qop present
//! response       = H(HA1 ":" nonce ":" HA2)                             ; no qop (RFC 2069)
//! ```

use core::fmt;

use md5::{Digest, Md5};
use sha2::{Sha256, Sha512_256};

/// Hash algorithm of a digest challenge/credential (the `algorithm` parameter).
///
/// An absent `algorithm` parameter means [`Algorithm::Md5`] (RFC 2617 §3.2.1), which is
/// also the [`Default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617); the only algorithm most legacy SIP devices support.
    #[default]
    Md5,
    /// `MD5-sess`: MD5 with a per-session HA1 bound to nonce and cnonce.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`: FIPS 180-4 SHA-512/256 (not truncated SHA-512).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, for iteration in tests and configuration validation.
    pub const ALL: [Self; 6] = [
        Self::Md5,
        Self::Md5Sess,
        Self::Sha256,
        Self::Sha256Sess,
        Self::Sha512_256,
        Self::Sha512_256Sess,
    ];

    /// Non-session algorithms in the order a UAS should offer challenges, most preferred
    /// first (RFC 8760; the order OpenSIPS used at `OpenSIPIt` 2020).
    pub const PREFERENCE: [Self; 3] = [Self::Sha512_256, Self::Sha256, Self::Md5];

    /// Parses an `algorithm` token case-insensitively; `None` for unknown algorithms so the
    /// caller can skip that challenge. An absent parameter should be treated as `Md5`.
    #[must_use]
    pub fn from_token(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.token().eq_ignore_ascii_case(s))
    }

    /// Canonical spelling used when emitting challenges and credentials.
    #[must_use]
    pub const fn token(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Length of this algorithm's lowercase hex output, for validating `response` values.
    #[must_use]
    pub const fn hex_len(self) -> usize {
        match self.base() {
            Self::Md5 => 32,
            _ => 64,
        }
    }

    /// Whether HA1 must be re-derived per session from nonce and cnonce (`*-sess`).
    #[must_use]
    pub const fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    /// The non-session variant, i.e. the hash function proper (stored HA1 is per base alg).
    #[must_use]
    pub const fn base(self) -> Self {
        match self {
            Self::Md5 | Self::Md5Sess => Self::Md5,
            Self::Sha256 | Self::Sha256Sess => Self::Sha256,
            Self::Sha512_256 | Self::Sha512_256Sess => Self::Sha512_256,
        }
    }
}

impl fmt::Display for Algorithm {
    /// Writes the canonical token, so it can be formatted straight into a header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Quality of protection (`qop`) chosen by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authenticates method and URI only.
    Auth,
    /// `auth-int`: additionally authenticates the message body.
    AuthInt,
}

impl Qop {
    /// Parses a single qop token case-insensitively; `None` for unknown values.
    ///
    /// Note that the response hash uses the canonical lowercase [`Qop::token`], so a client
    /// that hashed an odd-cased spelling will simply fail verification.
    #[must_use]
    pub fn from_token(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }

    /// Canonical token, as emitted in credentials and hashed into the response.
    #[must_use]
    pub const fn token(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    /// Writes the canonical token, so it can be formatted straight into a header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A lowercase hex digest (32 or 64 chars), stack-allocated so the computation chain
/// needs no heap allocation.
///
/// Equality is constant-time; the value may be an HA1, which is password-equivalent.
#[derive(Clone, Copy)]
pub struct HexDigest {
    /// Lowercase ASCII hex in `buf[..len]`; bytes past `len` are always zero.
    buf: [u8; 64],
    /// 32 or 64.
    len: u8,
}

impl HexDigest {
    /// The digest as lowercase hex, ready to hash further or to quote into a header.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..usize::from(self.len))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// Parses a stored or received hex digest (e.g. a provisioned HA1): `None` unless it
    /// is exactly 32 or 64 hex digits; normalises to lowercase.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let len = u8::try_from(s.len()).ok().filter(|&l| l == 32 || l == 64)?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut buf = [0u8; 64];
        for (dst, src) in buf.iter_mut().zip(s.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        Some(Self { buf, len })
    }

    /// Length in hex characters (32 or 64).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Always `false`; present because `len` exists.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hex-encodes raw hash output (at most 32 bytes) without branching on the data.
    fn from_raw(raw: &[u8]) -> Self {
        let mut buf = [0u8; 64];
        let mut len = 0u8;
        for (pair, &byte) in buf.chunks_exact_mut(2).zip(raw) {
            if let [hi, lo] = pair {
                *hi = hex_nibble(byte >> 4);
                *lo = hex_nibble(byte & 0x0f);
                len = len.wrapping_add(2);
            }
        }
        Self { buf, len }
    }

    /// The hex text as bytes, for hashing.
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl PartialEq for HexDigest {
    /// Constant-time (for equal lengths) comparison.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && ct_eq_lower(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for HexDigest {}

impl core::hash::Hash for HexDigest {
    /// Hashes the hex text, consistent with `Eq`.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Display for HexDigest {
    /// Writes the lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HexDigest").field(&self.as_str()).finish()
    }
}

/// Maps a nibble (0..=15) to a lowercase hex digit without a data-dependent branch.
const fn hex_nibble(n: u8) -> u8 {
    let n = n & 0x0f;
    // (9 - n) has its top bit set iff n > 9; then add the gap from '9'+1 to 'a' (39).
    let above_nine = (9u8.wrapping_sub(n) >> 7) & 1;
    b'0'.wrapping_add(n)
        .wrapping_add(above_nine.wrapping_mul(39))
}

/// Constant-time equality of `expected` (lowercase) with `received` folded to lowercase.
/// Lengths are assumed public; unequal lengths return `false` immediately.
fn ct_eq_lower(expected: &[u8], received: &[u8]) -> bool {
    if expected.len() != received.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (&e, &r)| acc | (e ^ r.to_ascii_lowercase()));
    core::hint::black_box(diff) == 0
}

/// Incremental hasher over the three supported hash functions.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512_256(Sha512_256),
}

impl Hasher {
    fn new(alg: Algorithm) -> Self {
        match alg.base() {
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha512_256 => Self::Sha512_256(Sha512_256::new()),
            _ => Self::Md5(Md5::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha512_256(h) => h.update(data),
        }
    }

    fn finish(self) -> HexDigest {
        match self {
            Self::Md5(h) => HexDigest::from_raw(&h.finalize()),
            Self::Sha256(h) => HexDigest::from_raw(&h.finalize()),
            Self::Sha512_256(h) => HexDigest::from_raw(&h.finalize()),
        }
    }
}

/// `H(parts[0] ":" parts[1] ":" ...)` with `alg`'s base hash, streamed without joining.
fn hash_joined(alg: Algorithm, parts: &[&[u8]]) -> HexDigest {
    let mut h = Hasher::new(alg);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part);
    }
    h.finish()
}

/// Computes HA1 = H(username ":" realm ":" password) with `alg`'s base hash; this is the
/// value to store per (user, realm, algorithm) instead of the password.
#[must_use]
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> HexDigest {
    hash_joined(
        alg,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// Derives the `*-sess` HA1 = H(HA1 ":" nonce ":" cnonce) from a stored base HA1.
/// Computed with `alg`'s base hash regardless of whether `alg` is a session variant.
#[must_use]
pub fn session_ha1(alg: Algorithm, ha1: &HexDigest, nonce: &str, cnonce: &str) -> HexDigest {
    hash_joined(alg, &[ha1.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()])
}

/// Computes HA2 = H(method ":" digest-uri), plus ":" H(body) for `auth-int`; `body` is
/// ignored otherwise and must be the entity body exactly as sent (may be empty).
#[must_use]
pub fn ha2(
    alg: Algorithm,
    method: &str,
    digest_uri: &str,
    qop: Option<Qop>,
    body: &[u8],
) -> HexDigest {
    if qop == Some(Qop::AuthInt) {
        let body_hash = hash_joined(alg, &[body]);
        hash_joined(
            alg,
            &[
                method.as_bytes(),
                digest_uri.as_bytes(),
                body_hash.as_bytes(),
            ],
        )
    } else {
        hash_joined(alg, &[method.as_bytes(), digest_uri.as_bytes()])
    }
}

/// Per-request inputs to the response computation, as extracted (unquoted) from the
/// challenge and credentials, so client and server share one code path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseInput<'a> {
    /// Algorithm from the challenge (absent ⇒ `Md5`).
    pub algorithm: Algorithm,
    /// Method of the request carrying the credentials (e.g. `INVITE`, `REGISTER`).
    pub method: &'a str,
    /// The `uri` parameter; a server must also check it equals the Request-URI.
    pub digest_uri: &'a str,
    /// Server nonce.
    pub nonce: &'a str,
    /// Client nonce; required when `qop` is present or the algorithm is `*-sess`.
    pub cnonce: Option<&'a str>,
    /// Nonce count, exactly as sent (8 hex digits); required when `qop` is present.
    pub nc: Option<&'a str>,
    /// Chosen qop; `None` selects the RFC 2069 compatibility form.
    pub qop: Option<Qop>,
    /// Entity body as sent; only hashed for `auth-int`.
    pub body: &'a [u8],
}

impl ResponseInput<'_> {
    /// Whether the parameters a server must insist on are present and well-formed:
    /// with `qop`, a `cnonce` and a valid `nc`; with a `*-sess` algorithm, `qop` and a
    /// `cnonce`. The response functions substitute `""` for missing values instead of
    /// failing, so servers should check this first.
    #[must_use]
    pub fn is_well_formed(&self) -> bool {
        let qop_ok =
            self.qop.is_none() || (self.cnonce.is_some() && self.nc.is_some_and(is_valid_nc));
        let sess_ok = !self.algorithm.is_session() || (self.qop.is_some() && self.cnonce.is_some());
        qop_ok && sess_ok
    }
}

/// Computes the `response` value from a (stored, base) HA1, covering `*-sess`, qop
/// `auth`/`auth-int` and the no-qop RFC 2069 form. Missing `cnonce`/`nc` hash as `""`.
#[must_use]
pub fn response_from_ha1(ha1: &HexDigest, input: &ResponseInput<'_>) -> HexDigest {
    let alg = input.algorithm;
    let cnonce = input.cnonce.unwrap_or_default();
    let ha1 = if alg.is_session() {
        session_ha1(alg, ha1, input.nonce, cnonce)
    } else {
        *ha1
    };
    let ha2 = ha2(alg, input.method, input.digest_uri, input.qop, input.body);
    match input.qop {
        Some(qop) => hash_joined(
            alg,
            &[
                ha1.as_bytes(),
                input.nonce.as_bytes(),
                input.nc.unwrap_or_default().as_bytes(),
                cnonce.as_bytes(),
                qop.token().as_bytes(),
                ha2.as_bytes(),
            ],
        ),
        None => hash_joined(
            alg,
            &[ha1.as_bytes(), input.nonce.as_bytes(), ha2.as_bytes()],
        ),
    }
}

/// Computes the `response` value from a cleartext password (client side: answering a
/// trunk's challenge).
#[must_use]
pub fn response(
    username: &str,
    realm: &str,
    password: &str,
    input: &ResponseInput<'_>,
) -> HexDigest {
    response_from_ha1(&ha1(input.algorithm, username, realm, password), input)
}

/// Computes the RFC 7616 §3.4.4 `userhash` = H(username ":" realm), for peers that send
/// `userhash=true` (accepted, never required, in SIP).
#[must_use]
pub fn userhash(alg: Algorithm, username: &str, realm: &str) -> HexDigest {
    hash_joined(alg, &[username.as_bytes(), realm.as_bytes()])
}

/// Checks a received `response` against the expected one in constant time (for equal
/// lengths), accepting uppercase hex; `false` on any length mismatch.
#[must_use]
pub fn verify_response(expected: &HexDigest, received: &str) -> bool {
    ct_eq_lower(expected.as_bytes(), received.as_bytes())
}

/// Compares lowercase hex `expected` with `received` in constant time (for equal lengths),
/// accepting uppercase hex: for nonce MACs and other hex tokens that are not a [`HexDigest`].
#[must_use]
pub fn verify_response_str(expected: &str, received: &str) -> bool {
    ct_eq_lower(expected.as_bytes(), received.as_bytes())
}

/// Whether `nc` has the required form: exactly 8 hex digits (RFC 2617 §3.2.2).
#[must_use]
pub fn is_valid_nc(nc: &str) -> bool {
    nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Formats caller-supplied randomness as a 32-char lowercase hex `cnonce`; the module
/// has no RNG (sans-io), so the caller draws the 16 bytes.
#[must_use]
pub fn make_cnonce(random: &[u8; 16]) -> String {
    HexDigest::from_raw(random).as_str().to_owned()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests may panic"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIP_NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
    const SIP_URI: &str = "sip:bob@biloxi.com";
    const SIP_CNONCE: &str = "0a4f113b";
    const SIP_BODY: &[u8] = b"v=0\r\n\
o=bob 2890844526 2890844526 IN IP4 media.biloxi.com\r\n\
s=\r\n\
c=IN IP4 media.biloxi.com\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=video 51372 RTP/AVP 31\r\n\
a=rtpmap:31 H261/90000\r\n\
m=video 53000 RTP/AVP 32\r\n\
a=rtpmap:32 MPV/90000\r\n";

    fn sip_input(algorithm: Algorithm, qop: Option<Qop>) -> ResponseInput<'static> {
        let with_qop = qop.is_some();
        ResponseInput {
            algorithm,
            method: "INVITE",
            digest_uri: SIP_URI,
            nonce: SIP_NONCE,
            cnonce: with_qop.then_some(SIP_CNONCE),
            nc: with_qop.then_some("00000001"),
            qop,
            body: SIP_BODY,
        }
    }

    fn sip_response(algorithm: Algorithm, qop: Option<Qop>) -> String {
        response("bob", "biloxi.com", "zanzibar", &sip_input(algorithm, qop)).to_string()
    }

    #[test]
    fn rfc2617_3_5() {
        let input = ResponseInput {
            algorithm: Algorithm::Md5,
            method: "GET",
            digest_uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            cnonce: Some("0a4f113b"),
            nc: Some("00000001"),
            qop: Some(Qop::Auth),
            body: b"",
        };
        let r = response("Mufasa", "testrealm@host.com", "Circle Of Life", &input);
        assert_eq!(r.as_str(), "6629fae49393a05397450978507c4ef1");
        assert!(input.is_well_formed());
    }

    fn rfc7616_391(algorithm: Algorithm) -> HexDigest {
        let input = ResponseInput {
            algorithm,
            method: "GET",
            digest_uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            nc: Some("00000001"),
            qop: Some(Qop::Auth),
            body: b"",
        };
        response("Mufasa", "http-auth@example.org", "Circle of Life", &input)
    }

    #[test]
    fn rfc7616_3_9_1_md5() {
        assert_eq!(
            rfc7616_391(Algorithm::Md5).as_str(),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_3_9_1_sha256() {
        assert_eq!(
            rfc7616_391(Algorithm::Sha256).as_str(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc7616_3_9_2_sha512_256_errata_4897() {
        let username = "J\u{e4}s\u{f8}n Doe";
        assert_eq!(username.as_bytes(), "Jäsøn Doe".as_bytes());
        let realm = "api@example.org";
        let input = ResponseInput {
            algorithm: Algorithm::Sha512_256,
            method: "GET",
            digest_uri: "/doe.json",
            nonce: "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
            cnonce: Some("NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v"),
            nc: Some("00000001"),
            qop: Some(Qop::Auth),
            body: b"",
        };
        assert_eq!(
            response(username, realm, "Secret, or not?", &input).as_str(),
            "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
        );
        assert_eq!(
            userhash(Algorithm::Sha512_256, username, realm).as_str(),
            "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
        );
    }

    #[test]
    fn sip_no_qop() {
        assert_eq!(
            sip_response(Algorithm::Md5, None),
            "bf57e4e0d0bffc0fbaedce64d59add5e"
        );
        assert!(sip_input(Algorithm::Md5, None).is_well_formed());
    }

    #[test]
    fn sip_qop_auth() {
        assert_eq!(
            sip_response(Algorithm::Md5, Some(Qop::Auth)),
            "89eb0059246c02b2f6ee02c7961d5ea3"
        );
    }

    #[test]
    fn sip_md5_sess_auth() {
        assert_eq!(
            sip_response(Algorithm::Md5Sess, Some(Qop::Auth)),
            "e4e4ea61d186d07a92c9e1f6919902e9"
        );
    }

    #[test]
    fn sip_auth_int() {
        assert_eq!(SIP_BODY.split(|&b| b == b'\n').count(), 12);
        assert_eq!(
            sip_response(Algorithm::Md5, Some(Qop::AuthInt)),
            "41f1bde42dcddbee8ae7d65fd3474dc0"
        );
    }

    #[test]
    fn sip_md5_sess_auth_int() {
        assert_eq!(
            sip_response(Algorithm::Md5Sess, Some(Qop::AuthInt)),
            "10e4c79b16d21d51995ab98083d134d8"
        );
    }

    #[test]
    fn sip_sha256_auth() {
        assert_eq!(
            sip_response(Algorithm::Sha256, Some(Qop::Auth)),
            "b3b5a6c69453abafaab9ae4dccdac90a076b6c80615d5f3498e7433b6e93bf4f"
        );
    }

    #[test]
    fn sip_sha512_256_auth() {
        assert_eq!(
            sip_response(Algorithm::Sha512_256, Some(Qop::Auth)),
            "7f1a09de0f19af0a1eac2b28d33e3f2fb89cca1ad8fb01bba5e1883b288bac14"
        );
    }

    #[test]
    fn sess_via_stored_ha1() {
        let stored = ha1(Algorithm::Md5Sess, "bob", "biloxi.com", "zanzibar");
        assert_eq!(stored, ha1(Algorithm::Md5, "bob", "biloxi.com", "zanzibar"));
        let r = response_from_ha1(&stored, &sip_input(Algorithm::Md5Sess, Some(Qop::Auth)));
        assert_eq!(r.as_str(), "e4e4ea61d186d07a92c9e1f6919902e9");
    }

    #[test]
    fn verify_response_cases() {
        let expected = HexDigest::from_hex("89eb0059246c02b2f6ee02c7961d5ea3").unwrap();
        assert!(verify_response(
            &expected,
            "89eb0059246c02b2f6ee02c7961d5ea3"
        ));
        assert!(verify_response(
            &expected,
            "89EB0059246C02B2F6EE02C7961D5EA3"
        ));
        assert!(!verify_response(
            &expected,
            "89eb0059246c02b2f6ee02c7961d5ea4"
        ));
        assert!(!verify_response(
            &expected,
            "89eb0059246c02b2f6ee02c7961d5ea"
        ));
        assert!(!verify_response(
            &expected,
            "89eb0059246c02b2f6ee02c7961d5ea30"
        ));
        assert!(!verify_response(&expected, ""));
        // Non-hex bytes never fold into a match.
        assert!(!verify_response(
            &expected,
            "89eb0059246c02b2f6ee02c7961d5eA\u{3}"
        ));
        let long = sip_response(Algorithm::Sha256, Some(Qop::Auth));
        let long = HexDigest::from_hex(&long).unwrap();
        assert!(!verify_response(&long, expected.as_str()));
    }

    #[test]
    fn hex_digest_from_hex() {
        let d = HexDigest::from_hex("89EB0059246C02B2F6EE02C7961D5EA3").unwrap();
        assert_eq!(d.as_str(), "89eb0059246c02b2f6ee02c7961d5ea3");
        assert_eq!(d.len(), 32);
        assert!(!d.is_empty());
        assert_eq!(d.to_string(), d.as_str());
        assert_eq!(
            format!("{d:?}"),
            "HexDigest(\"89eb0059246c02b2f6ee02c7961d5ea3\")"
        );
        assert!(HexDigest::from_hex("").is_none());
        assert!(HexDigest::from_hex("89eb0059246c02b2f6ee02c7961d5ea").is_none());
        assert!(HexDigest::from_hex("89eb0059246c02b2f6ee02c7961d5eag").is_none());
        assert!(HexDigest::from_hex(&"a".repeat(48)).is_none());
        assert!(HexDigest::from_hex(&"A".repeat(64)).is_some());
        assert!(HexDigest::from_hex(&"a".repeat(65)).is_none());
        assert!(HexDigest::from_hex(&"é".repeat(16)).is_none());
    }

    #[test]
    fn nc_validation() {
        assert!(is_valid_nc("00000001"));
        assert!(is_valid_nc("deadBEEF"));
        assert!(!is_valid_nc("0000001"));
        assert!(!is_valid_nc("000000001"));
        assert!(!is_valid_nc("0000000g"));
        assert!(!is_valid_nc("+0000001"));
        assert!(!is_valid_nc(""));
    }

    #[test]
    fn well_formedness() {
        let mut i = sip_input(Algorithm::Md5, Some(Qop::Auth));
        assert!(i.is_well_formed());
        i.nc = Some("1");
        assert!(!i.is_well_formed());
        i.nc = None;
        assert!(!i.is_well_formed());
        let mut i = sip_input(Algorithm::Md5Sess, Some(Qop::Auth));
        assert!(i.is_well_formed());
        i.cnonce = None;
        assert!(!i.is_well_formed());
        assert!(!sip_input(Algorithm::Sha256Sess, None).is_well_formed());
    }

    #[test]
    fn algorithm_tokens() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(alg.token()), Some(alg));
            assert_eq!(
                Algorithm::from_token(&alg.token().to_lowercase()),
                Some(alg)
            );
            assert_eq!(
                Algorithm::from_token(&alg.token().to_uppercase()),
                Some(alg)
            );
            assert_eq!(alg.to_string(), alg.token());
            assert!(!alg.base().is_session());
            assert_eq!(alg.base().hex_len(), alg.hex_len());
            assert_eq!(alg.is_session(), alg != alg.base());
            assert_eq!(alg.token().ends_with("-sess"), alg.is_session());
        }
        assert_eq!(Algorithm::Md5.hex_len(), 32);
        assert_eq!(Algorithm::Md5Sess.hex_len(), 32);
        assert_eq!(Algorithm::Sha256Sess.hex_len(), 64);
        assert_eq!(Algorithm::Sha512_256.hex_len(), 64);
        assert_eq!(Algorithm::from_token("SHA-512"), None);
        assert_eq!(Algorithm::from_token("SHA-512/256"), None);
        assert_eq!(Algorithm::from_token("\"MD5\""), None);
        assert_eq!(Algorithm::from_token(""), None);
        assert_eq!(Algorithm::default(), Algorithm::Md5);
    }

    #[test]
    fn qop_tokens() {
        for qop in [Qop::Auth, Qop::AuthInt] {
            assert_eq!(Qop::from_token(qop.token()), Some(qop));
            assert_eq!(Qop::from_token(&qop.token().to_uppercase()), Some(qop));
            assert_eq!(qop.to_string(), qop.token());
        }
        assert_eq!(Qop::from_token("auth,auth-int"), None);
        assert_eq!(Qop::from_token(""), None);
    }

    #[test]
    fn cnonce_is_hex() {
        let c = make_cnonce(&[
            0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x9b, 0xc3, 0, 0, 0, 0, 0, 0, 0, 0xfe,
        ]);
        assert_eq!(c, "00017f80ff0a9bc300000000000000fe");
    }

    #[test]
    fn hex_nibble_all() {
        for n in 0u8..16 {
            assert_eq!(
                char::from(hex_nibble(n)),
                char::from_digit(u32::from(n), 16).unwrap()
            );
        }
    }

    fn any_alg() -> impl Strategy<Value = Algorithm> {
        proptest::sample::select(Algorithm::ALL.to_vec())
    }

    fn any_qop() -> impl Strategy<Value = Option<Qop>> {
        proptest::option::of(prop_oneof![Just(Qop::Auth), Just(Qop::AuthInt)])
    }

    proptest! {
        #[test]
        fn from_ha1_matches_password_path(
            alg in any_alg(),
            qop in any_qop(),
            user in ".*",
            realm in ".*",
            pass in ".*",
            method in ".*",
            uri in ".*",
            nonce in ".*",
            cnonce in proptest::option::of(".*"),
            nc in proptest::option::of(".*"),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let input = ResponseInput {
                algorithm: alg,
                method: &method,
                digest_uri: &uri,
                nonce: &nonce,
                cnonce: cnonce.as_deref(),
                nc: nc.as_deref(),
                qop,
                body: &body,
            };
            let r = response(&user, &realm, &pass, &input);
            prop_assert_eq!(r, response_from_ha1(&ha1(alg, &user, &realm, &pass), &input));
            prop_assert_eq!(r.len(), alg.hex_len());
            prop_assert!(verify_response(&r, r.as_str()));
            prop_assert!(verify_response(&r, &r.as_str().to_uppercase()));
            prop_assert_eq!(HexDigest::from_hex(r.as_str()), Some(r));
        }

        #[test]
        fn from_hex_accepts_only_valid(s in "[0-9a-fA-F]{32}|[0-9a-fA-F]{64}|[0-9a-fA-F]{0,70}|.{0,70}") {
            let parsed = HexDigest::from_hex(&s);
            let valid = (s.len() == 32 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
            prop_assert_eq!(parsed.is_some(), valid);
            if let Some(d) = parsed {
                prop_assert_eq!(d.as_str(), s.to_ascii_lowercase());
            }
        }
    }
}
