//! `[policy]`: which destinations calls out through the trunks may reach (the toll-fraud
//! destination policy). Without the table every destination is callable, as before.

use serde::Deserialize;

/// Whether a rule refuses calls or only says it would have.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Refuse what the rule refuses.
    #[default]
    Enforce,
    /// Refuse nothing; count and record what would have been refused.
    Monitor,
}

/// The named lists shipped with the program (`sipwarden-policy`'s `numbers`).
pub const NAMED_LISTS: &[&str] = &["premium", "high-risk", "satellite"];

/// `[policy]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The dialling context of numbers dialled through the gateway (ISO country, whose national
    /// and international prefixes apply: `011…` and `1…` in the US). Default "US".
    #[serde(default = "default_country")]
    pub country: String,
    /// Countries (ISO codes) calls may reach; empty: every country not blocked.
    #[serde(default)]
    pub allow_countries: Vec<String>,
    /// Countries (ISO codes) and named lists (`premium`, `high-risk`, `satellite`) calls may
    /// not reach; checked before `allow_countries`.
    #[serde(default)]
    pub block_countries: Vec<String>,
    /// `enforce` (default) or `monitor`.
    #[serde(default)]
    pub mode: PolicyMode,
}

fn default_country() -> String {
    "US".to_owned()
}

fn is_iso(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks `[policy]`: ISO codes are two capital letters (whether the country exists is checked
/// when the policy is built, against libphonenumber's countries), lists are known by name.
pub(crate) fn validate(p: &PolicyConfig, err: &mut dyn FnMut(String, String)) {
    if !is_iso(&p.country) {
        err(
            "policy.country".into(),
            format!(
                "{:?} is not an ISO 3166 country code such as \"US\"",
                p.country
            ),
        );
    }
    for c in &p.allow_countries {
        if !is_iso(c) {
            err(
                "policy.allow_countries".into(),
                format!("{c:?} is not an ISO 3166 country code such as \"CA\""),
            );
        }
    }
    for c in &p.block_countries {
        if !is_iso(c) && !NAMED_LISTS.contains(&c.as_str()) {
            err(
                "policy.block_countries".into(),
                format!(
                    "{c:?} is neither an ISO 3166 country code such as \"CU\" nor a named list ({})",
                    NAMED_LISTS.join(", ")
                ),
            );
        }
    }
}
