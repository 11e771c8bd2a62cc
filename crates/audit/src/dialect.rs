//! Which dialect a file is written in: by its name, failing that by its content, or as the
//! user says (`--as`).
//!
//! Names are recognised by family, not only as Asterisk's own: FreePBX splits each file into
//! parts it `#include`s (`sip_additional.conf`, `sip_general_additional.conf`,
//! `pjsip.endpoint.conf`, `pjsip.auth.conf`, `extensions_custom.conf`, `iax_additional.conf`…),
//! admins split theirs (`pjsip-trunks.conf`) and keep copies (`sip.conf.bak`,
//! `sip.conf.2024-05-01`, `sip.conf~`). So a name is `FAMILY[SEP…].conf[COPY]`, where FAMILY
//! is `sip`, `pjsip`, `iax`, `extensions`, `acl` or `stir_shaken`, SEP is `_`, `.` or `-`, and
//! COPY is anything after `.conf` that starts with `.`, `-`, `_` or `~` (it is not a
//! compression suffix: a `.gz` copy is not text). `*.toml` is sipwarden's. Files that share a
//! family's prefix but another dialect (`sip_notify.conf`, `pjsip_wizard.conf`) are not
//! recognised.
//!
//! Content decides when the name says nothing: sipwarden's TOML has one of its top-level
//! tables; an Asterisk file is scored by the settings only one dialect has (`type=endpoint` is
//! res_pjsip, `allowguest` chan_sip, `requirecalltoken` chan_iax2, `exten =>` the dialplan,
//! only `permit`/`deny` in named sections acl.conf, `attest_level` res_stir_shaken). A tie,
//! or no evidence, is "don't know how to audit this": guessing wrong would audit a file
//! against the wrong checklist and report it clean.

use std::fmt;
use std::path::Path;

use sipwarden_config::{AccountsFile, Config, KeyLines};

use crate::asterisk::strip_comments;

/// A configuration dialect the audit knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dialect {
    /// chan_sip's `sip.conf`.
    Sip,
    /// res_pjsip's `pjsip.conf`.
    Pjsip,
    /// chan_iax2's `iax.conf`.
    Iax,
    /// The dialplan, `extensions.conf`.
    Extensions,
    /// Named ACLs, `acl.conf`.
    Acl,
    /// res_stir_shaken's `stir_shaken.conf`.
    StirShaken,
    /// sipwarden's own TOML (a configuration or an accounts file).
    Sipwarden,
}

impl Dialect {
    /// Every dialect, in the order `--as` lists them.
    pub const ALL: [Self; 7] = [
        Self::Sip,
        Self::Pjsip,
        Self::Iax,
        Self::Extensions,
        Self::Acl,
        Self::StirShaken,
        Self::Sipwarden,
    ];

    /// The name `--as` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::Pjsip => "pjsip",
            Self::Iax => "iax",
            Self::Extensions => "extensions",
            Self::Acl => "acl",
            Self::StirShaken => "stir",
            Self::Sipwarden => "sipwarden",
        }
    }

    /// Parses a name `--as` takes (also `stir_shaken`, any case).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("stir_shaken") {
            return Some(Self::StirShaken);
        }
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
    }

    /// The file this dialect is usually read from, for messages.
    pub fn file(self) -> &'static str {
        match self {
            Self::Sip => "sip.conf",
            Self::Pjsip => "pjsip.conf",
            Self::Iax => "iax.conf",
            Self::Extensions => "extensions.conf",
            Self::Acl => "acl.conf",
            Self::StirShaken => "stir_shaken.conf",
            Self::Sipwarden => "sipwarden TOML",
        }
    }

    /// Whether settings before any section of a part belong to `[general]`: FreePBX includes
    /// `sip_general_additional.conf`, `sip_nat.conf`, `sip_registrations.conf` and their iax
    /// counterparts right after `[general]` in `sip.conf`/`iax.conf`.
    pub(crate) fn headless_is_general(self) -> bool {
        matches!(self, Self::Sip | Self::Iax)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a file's name says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// Its dialect.
    pub dialect: Dialect,
    /// Whether it is the family's main file (`sip.conf`, or a copy of it such as
    /// `sip.conf.bak`) rather than a part (`sip_additional.conf`, `pjsip.endpoint.conf`).
    pub main: bool,
    /// What follows `.conf`/`.toml` in a copy's name (`.bak`, `.sample`, `~`), lowercase;
    /// empty for the file in use. Parts and main file with the same copy suffix belong to one
    /// configuration; each copy suffix is a configuration of its own.
    pub copy: String,
}

/// Asterisk families by the prefix of their names; `pjsip` before `sip` is not needed (a name
/// starting `pjsip` does not start `sip`) but longer prefixes are listed first anyway.
const FAMILIES: &[(&str, Dialect)] = &[
    ("stir_shaken", Dialect::StirShaken),
    ("extensions", Dialect::Extensions),
    ("pjsip", Dialect::Pjsip),
    ("sip", Dialect::Sip),
    ("iax", Dialect::Iax),
    ("acl", Dialect::Acl),
];

/// Names that start like a family but are another dialect: chan_sip's and res_pjsip's NOTIFY
/// templates, and res_pjsip_config_wizard's objects (another object model).
const NOT_FAMILY: &[&str] = &["sip_notify", "pjsip_notify", "pjsip_wizard"];

/// Suffixes of compressed or archived copies: not text the audit can read.
const COMPRESSED: &[&str] = &[
    ".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".tar", ".tgz", ".7z",
];

/// `base` and the copy suffix of `name` when `name` is `BASE.EXT` or `BASE.EXT<copy>`.
fn split_copy<'a>(name: &'a str, ext: &str) -> Option<(&'a str, &'a str)> {
    let at = name.rfind(ext)?;
    let (base, rest) = name.split_at(at);
    let copy = rest.get(ext.len()..)?;
    if base.is_empty() {
        return None;
    }
    let is_copy = copy.is_empty()
        || (copy.starts_with(['.', '-', '_', '~'])
            && !COMPRESSED.iter().any(|c| copy.ends_with(c)));
    is_copy.then_some((base, copy))
}

/// Recognises a file by its name alone.
pub fn by_name(path: &Path) -> Option<Named> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if let Some((_, copy)) = split_copy(&name, ".toml") {
        return Some(Named {
            dialect: Dialect::Sipwarden,
            main: true,
            copy: copy.to_owned(),
        });
    }
    let (stem, copy) = split_copy(&name, ".conf")?;
    if NOT_FAMILY.iter().any(|n| stem.starts_with(n)) {
        return None;
    }
    FAMILIES.iter().find_map(|&(prefix, dialect)| {
        let rest = stem.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with(['_', '.', '-'])).then(|| Named {
            dialect,
            main: rest.is_empty(),
            copy: copy.to_owned(),
        })
    })
}

/// Why content did not name a dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undecided {
    /// Nothing in it is particular to one dialect.
    NoEvidence,
    /// As much evidence for each of these.
    Ambiguous(Vec<Dialect>),
}

impl fmt::Display for Undecided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoEvidence => f.write_str("nothing in its content belongs to one dialect"),
            Self::Ambiguous(ds) => {
                let names: Vec<&str> = ds.iter().map(|d| d.file()).collect();
                write!(f, "its content could be {}", names.join(" or "))
            }
        }
    }
}

/// Keys and `type=` values by what they prove; each list holds only what one dialect has.
const PJSIP_TYPES: &[&str] = &[
    "endpoint",
    "aor",
    "auth",
    "identify",
    "registration",
    "transport",
    "domain_alias",
    "global",
    "system",
    "contact",
    "outbound-publish",
    "inbound-publication",
    "resource_list",
    "phoneprov",
];
const PJSIP_KEYS: &[&str] = &[
    "aors",
    "auth_type",
    "outbound_auth",
    "inbound_auth",
    "media_encryption",
    "max_contacts",
    "direct_media",
    "rewrite_contact",
    "rtp_symmetric",
    "force_rport",
    "identify_by",
    "match",
    "protocol",
    "client_uri",
    "server_uri",
    "remove_existing",
    "qualify_frequency",
    "from_user",
    "from_domain",
    "dtmf_mode",
    "cert_file",
    "priv_key_file",
    "stir_shaken_profile",
];
const STIR_TYPES: &[&str] = &[
    "profile",
    "tn",
    "attestation",
    "verification",
    "certificate",
    "store",
];
const STIR_SECTIONS: &[&str] = &["attestation", "verification"];
const STIR_KEYS: &[&str] = &[
    "global_disable",
    "public_cert_url",
    "private_key_file",
    "attest_level",
    "unknown_tn_attest_level",
    "check_tn_cert_public_url",
    "send_mky",
    "load_system_certs",
    "cert_cache_dir",
    "failure_action",
    "endpoint_behavior",
    "max_iat_age",
    "max_date_header_age",
    "max_cache_entry_age",
    "max_cache_size",
    "x5u_acl",
    "x5u_permit",
    "x5u_deny",
    "relax_x5u_port_scheme_restrictions",
    "relax_x5u_path_restrictions",
];
const SIP_KEYS: &[&str] = &[
    "allowguest",
    "alwaysauthreject",
    "udpbindaddr",
    "tcpbindaddr",
    "tlsbindaddr",
    "tcpenable",
    "tlsenable",
    "nat",
    "insecure",
    "directmedia",
    "canreinvite",
    "dtmfmode",
    "fromuser",
    "fromdomain",
    "sendrpid",
    "trustrpid",
    "srvlookup",
    "externip",
    "externaddr",
    "externhost",
    "localnet",
    "videosupport",
    "t38pt_udptl",
    "useragent",
    "defaultuser",
    "outboundproxy",
    "registertimeout",
    "session-timers",
    "transport",
    "directrtpsetup",
    "qualifyfreq",
    "allowoverlap",
    "callcounter",
    "busylevel",
    "rtptimeout",
    "rtpholdtimeout",
    "rtpkeepalive",
    "tlscertfile",
    "tlsprivatekey",
    "tlscafile",
    "tlscipher",
    "tlsclientmethod",
    "tlsdontverifyserver",
    "avpf",
    "icesupport",
    "dtlsenable",
    "match_auth_username",
];
const IAX_KEYS: &[&str] = &[
    "requirecalltoken",
    "calltokenoptional",
    "maxcallnumbers",
    "maxcallnumbers_nonvalidated",
    "maxauthreq",
    "iaxcompat",
    "trunk",
    "trunkfreq",
    "trunktimestamps",
    "trunkmtu",
    "bandwidth",
    "inkeys",
    "outkeys",
    "forceencryption",
    "delayreject",
    "iaxthreadcount",
    "iaxmaxthreadcount",
    "authdebug",
    "forcejitterbuffer",
];
/// `type=` values chan_sip and chan_iax2 share.
const PEER_TYPES: &[&str] = &["friend", "peer", "user"];
/// Keys of the dialplan's lines (`exten => …`).
const DIALPLAN_KEYS: &[&str] = &["exten", "same", "include", "switch", "ignorepat"];

/// Recognises a file by its content (`text`, as read).
pub fn by_content(text: &str) -> Result<Dialect, Undecided> {
    if looks_like_sipwarden(text) {
        return Ok(Dialect::Sipwarden);
    }
    let mut score = [0u32; 6];
    let mut add = |d: Dialect, n: u32| {
        if let Some(s) = score.get_mut(d as usize) {
            *s += n;
        }
    };
    let mut depth = 0u32;
    let mut in_section = false;
    let mut only_acl = true;
    let mut acl_lines = 0u32;
    // Lines shaped as Asterisk's (`[section]`, `key = value`), and lines that are not.
    let (mut lines, mut prose) = (0u32, 0u32);
    for raw in text.lines() {
        let line = strip_comments(raw, &mut depth);
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            in_section = true;
            let name = rest.split(']').next().unwrap_or("").trim();
            if STIR_SECTIONS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                add(Dialect::StirShaken, 3);
            }
            lines += 1;
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line
            .split_once('=')
            .filter(|(k, _)| is_key(k.trim().trim_end_matches('+').trim()))
        else {
            prose += 1;
            continue;
        };
        lines += 1;
        let (value, arrow) = match value.strip_prefix('>') {
            Some(v) => (v.trim(), true),
            None => (value.trim(), false),
        };
        let key = key.trim().trim_end_matches('+').trim().to_ascii_lowercase();
        let value = value.to_ascii_lowercase();
        let is = |list: &[&str], s: &str| list.contains(&s);
        if key == "permit" || key == "deny" {
            acl_lines += 1;
        } else {
            only_acl = false;
        }
        if key == "type" {
            if is(PJSIP_TYPES, &value) {
                add(Dialect::Pjsip, 3);
            }
            if is(STIR_TYPES, &value) {
                add(Dialect::StirShaken, 3);
            }
            if is(PEER_TYPES, &value) {
                add(Dialect::Sip, 1);
                add(Dialect::Iax, 1);
            }
        } else if is(DIALPLAN_KEYS, &key) && (arrow || value.contains(',')) {
            add(Dialect::Extensions, 3);
        } else if key == "auth"
            && ["md5", "rsa", "plaintext"]
                .iter()
                .any(|a| value.contains(a))
        {
            add(Dialect::Iax, 1);
        } else if key == "register" && arrow {
            add(Dialect::Sip, 1);
            add(Dialect::Iax, 1);
        } else {
            for (list, d) in [
                (PJSIP_KEYS, Dialect::Pjsip),
                (STIR_KEYS, Dialect::StirShaken),
                (SIP_KEYS, Dialect::Sip),
                (IAX_KEYS, Dialect::Iax),
            ] {
                if is(list, &key) {
                    add(d, 1);
                }
            }
        }
    }
    // Prose that happens to hold `key=value` (a README quoting a setting) is not a
    // configuration: Asterisk configurations hold next to no lines of prose outside comments.
    if prose > lines / 10 {
        return Err(Undecided::NoEvidence);
    }
    if only_acl && in_section && acl_lines > 0 {
        add(Dialect::Acl, acl_lines);
    }
    let best = score.iter().copied().max().unwrap_or(0);
    if best == 0 {
        return Err(Undecided::NoEvidence);
    }
    let winners: Vec<Dialect> = Dialect::ALL
        .into_iter()
        .zip(score)
        .filter(|&(_, s)| s == best)
        .map(|(d, _)| d)
        .collect();
    match winners.as_slice() {
        [one] => Ok(*one),
        _ => Err(Undecided::Ambiguous(winners)),
    }
}

/// A setting's name as Asterisk's files write them: letters, digits, `_`, `-`.
fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `text` is sipwarden's TOML (a configuration or an accounts file): it parses as
/// TOML and has one of their top-level keys.
pub(crate) fn looks_like_sipwarden(text: &str) -> bool {
    KeyLines::parse(text, None).is_ok_and(|k| top_level(&k).any(is_sipwarden_key))
}

/// Whether `text` is TOML written for something else: it parses, it has top-level keys, and
/// none is sipwarden's (a `Cargo.toml` next to the configuration). A directory audit leaves
/// such files alone; a sipwarden file with a mistake in it is still audited (and its errors
/// reported).
pub(crate) fn is_other_toml(text: &str) -> bool {
    KeyLines::parse(text, None).is_ok_and(|k| {
        let mut top = top_level(&k).peekable();
        top.peek().is_some() && !top.any(is_sipwarden_key)
    })
}

fn top_level(keys: &KeyLines) -> impl Iterator<Item = &str> + '_ {
    keys.iter()
        .map(|k| k.key.as_str())
        .filter(|k| !k.contains(['.', '[']))
}

fn is_sipwarden_key(key: &str) -> bool {
    Config::SECTIONS
        .iter()
        .chain(AccountsFile::KEYS)
        .any(|s| *s == key)
}

#[cfg(test)]
mod tests;
