//! `[trunk.caller_id]`: which caller IDs a trunk may carry. Outbound, the number a call
//! presents (P-Asserted-Identity, else From) must be one the trunk owns, or it is replaced
//! with the trunk's default caller ID, or the call refused; inbound, a caller claiming one of
//! our own numbers is flagged to the PBX in a header, or refused.

use serde::Deserialize;

use crate::numbers::{NumberRange, canonical_number};
use crate::policy::PolicyMode;
use crate::values;

/// What an outbound call presenting a number the trunk does not own gets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutboundCallerId {
    /// Goes out with the trunk's default caller ID (default).
    #[default]
    Replace,
    /// Refused with 403.
    Reject,
    /// Goes out as it is (the carrier decides).
    Pass,
}

/// What an inbound call from the trunk claiming one of our numbers gets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InboundCallerId {
    /// Reaches the PBX with the flag header (default).
    #[default]
    Mark,
    /// Refused with 403.
    Reject,
    /// Reaches the PBX unmarked.
    Pass,
}

/// `[trunk.caller_id]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallerIdConfig {
    /// Numbers the trunk may present outbound; default: its `dids`.
    #[serde(default, deserialize_with = "values::number_ranges")]
    pub owned: Vec<NumberRange>,
    /// The caller ID replacing one that is not ours; default: the first owned number.
    #[serde(default)]
    pub default: Option<String>,
    /// `replace` (default), `reject` or `pass`.
    #[serde(default)]
    pub outbound: OutboundCallerId,
    /// `mark` (default), `reject` or `pass`.
    #[serde(default)]
    pub inbound: InboundCallerId,
    /// The header that carries the flag to the PBX (`X-Sipwarden-Caller-Id: own-number`).
    #[serde(default = "default_flag_header")]
    pub flag_header: String,
    /// `enforce` or `monitor`; default: `[policy] mode` (enforce without `[policy]`).
    #[serde(default)]
    pub mode: Option<PolicyMode>,
}

fn default_flag_header() -> String {
    "X-Sipwarden-Caller-Id".to_owned()
}

impl CallerIdConfig {
    /// The numbers the trunk may present: `owned`, else the trunk's DIDs.
    pub fn owned_or<'a>(&'a self, dids: &'a [NumberRange]) -> &'a [NumberRange] {
        if self.owned.is_empty() {
            dids
        } else {
            &self.owned
        }
    }

    /// The default caller ID, canonical: `default`, else the first owned number.
    pub fn default_number(&self, dids: &[NumberRange]) -> Option<String> {
        match &self.default {
            Some(d) => canonical_number(d),
            None => self.owned_or(dids).first().map(NumberRange::first),
        }
    }
}

/// A header name a PBX can match: a token (RFC 3261), not one the gateway writes itself.
fn is_header_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Checks `trunk[i].caller_id`.
pub(crate) fn validate(
    c: &CallerIdConfig,
    dids: &[NumberRange],
    bad: &mut dyn FnMut(&str, String),
) {
    if let Some(d) = &c.default {
        match canonical_number(d) {
            None => bad("default", format!("{d:?} is not a telephone number")),
            Some(n) if !c.owned_or(dids).iter().any(|r| r.contains(&n)) => bad(
                "default",
                format!("{d:?} is not one of the trunk's owned numbers (owned, else dids)"),
            ),
            Some(_) => {}
        }
    }
    if c.outbound == OutboundCallerId::Replace && c.default_number(dids).is_none() {
        bad(
            "default",
            "outbound = \"replace\" needs a default caller ID, or owned numbers (or dids)".into(),
        );
    }
    if !is_header_token(&c.flag_header) {
        bad(
            "flag_header",
            format!(
                "{:?} is not a header name (letters, digits, '-')",
                c.flag_header
            ),
        );
    }
    let reserved = [
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "route",
        "record-route",
        "content-length",
        "content-type",
        "max-forwards",
        "p-asserted-identity",
        "identity",
    ];
    if reserved.contains(&c.flag_header.to_ascii_lowercase().as_str()) {
        bad(
            "flag_header",
            format!("{:?} is a header the gateway writes itself", c.flag_header),
        );
    }
}
