//! The accounts file: the endpoint zone's users, with HA1 digests, never passwords. An HA1 is
//! password-equivalent for its realm, so each is held in a [`Secret`].
//!
//! ```toml
//! realm = "sipwarden.lab"
//!
//! [[account]]
//! user = "1001"
//! ha1_md5 = "42a3bbc213144377ae531e125246ffb7"
//! ha1_sha256 = "47b91c65…"
//! networks = ["127.0.0.0/8"]     # optional: where it may register and call from
//! max_contacts = 3               # optional
//! transports = ["tls", "wss"]    # optional: the only transports it may use
//! ```

use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use sipwarden_sip::Secret;
use sipwarden_sip::header::Transport;

use crate::error::ConfigError;
use crate::values;

/// The whole accounts file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccountsFile {
    /// Digest realm the HA1 values were computed for.
    pub realm: String,
    /// The accounts.
    #[serde(default, rename = "account")]
    pub accounts: Vec<AccountConfig>,
}

/// Whether an account's calls must use SRTP.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediaEncryption {
    /// Plain RTP is accepted.
    #[default]
    Optional,
    /// Only SRTP (SDES or DTLS) is accepted.
    Required,
}

/// One account.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The user (usually an extension number).
    pub user: String,
    /// MD5(user:realm:password), lowercase hex.
    #[serde(default, deserialize_with = "values::opt_secret")]
    pub ha1_md5: Option<Secret<String>>,
    /// SHA-256(user:realm:password), lowercase hex.
    #[serde(default, deserialize_with = "values::opt_secret")]
    pub ha1_sha256: Option<Secret<String>>,
    /// SHA-512/256(user:realm:password), lowercase hex.
    #[serde(default, deserialize_with = "values::opt_secret")]
    pub ha1_sha512_256: Option<Secret<String>>,
    /// Networks the account may register and call from (default: anywhere).
    #[serde(default, deserialize_with = "values::networks")]
    pub networks: Vec<IpNet>,
    /// Most contacts registered at once (default 5).
    #[serde(default = "default_max_contacts")]
    pub max_contacts: usize,
    /// Transports the account may use: udp, tcp, tls, ws, wss (default: any).
    #[serde(default, deserialize_with = "values::account_transports")]
    pub transports: Vec<Transport>,
    /// Media encryption policy for its calls.
    #[serde(default)]
    pub media_encryption: MediaEncryption,
}

fn default_max_contacts() -> usize {
    5
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl AccountsFile {
    /// The top-level keys of an accounts file (`account` for `[[account]]`); a test keeps
    /// the list equal to the fields the parser accepts.
    pub const KEYS: &'static [&'static str] = &["realm", "account"];

    /// Parses and checks an accounts file; errors name the file, line and key.
    pub fn from_toml(text: &str, file: Option<&Path>) -> Result<Self, Vec<ConfigError>> {
        let f: Self =
            toml::from_str(text).map_err(|e| vec![ConfigError::from_toml(&e, text, file)])?;
        let mut errors = Vec::new();
        let mut err = |key: String, message: String| {
            errors.push(ConfigError::at_key(text, file, &key, message))
        };
        if f.realm.is_empty() || f.realm.contains('"') {
            err(
                "realm".into(),
                "the realm must be a non-empty string without quotes".into(),
            );
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, a) in f.accounts.iter().enumerate() {
            let key = |k: &str| format!("account[{i}].{k}");
            let user_ok = !a.user.is_empty()
                && a.user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
            if !user_ok {
                err(
                    key("user"),
                    format!("{:?} is not a usable SIP user name", a.user),
                );
            }
            if seen.contains(&a.user.as_str()) {
                err(key("user"), format!("account {:?} is listed twice", a.user));
            }
            seen.push(&a.user);
            let checks = [
                (&a.ha1_md5, "ha1_md5", 32),
                (&a.ha1_sha256, "ha1_sha256", 64),
                (&a.ha1_sha512_256, "ha1_sha512_256", 64),
            ];
            for (v, name, len) in checks {
                if let Some(v) = v {
                    if !is_hex(v.expose(), len) {
                        err(key(name), format!("must be {len} lowercase hex digits"));
                    }
                }
            }
            if a.ha1_md5.is_none() && a.ha1_sha256.is_none() && a.ha1_sha512_256.is_none() {
                err(
                    key("user"),
                    format!(
                        "account {:?} has no HA1 (ha1_md5, ha1_sha256 or ha1_sha512_256)",
                        a.user
                    ),
                );
            }
            if a.max_contacts == 0 {
                err(key("max_contacts"), "must be at least 1".into());
            }
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(errors)
        }
    }

    /// Reads and checks an accounts file.
    pub fn load(path: &Path) -> Result<Self, Vec<ConfigError>> {
        let text =
            std::fs::read_to_string(path).map_err(|e| vec![ConfigError::unreadable(path, &e)])?;
        Self::from_toml(&text, Some(path))
    }

    /// The account named `user`.
    pub fn get(&self, user: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.user == user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let f = AccountsFile::from_toml(
            "realm = \"sipwarden.lab\"\n[[account]]\nuser = \"1001\"\nha1_md5 = \"42a3bbc213144377ae531e125246ffb7\"\n\n[[account]]\nuser = \"1002\"\nha1_sha256 = \"57013699339d58d8a27dcfb0e82eed3fd3a080d04a27103262c3c0506a546e32\"\ntransports = [\"tls\", \"wss\"]\nmedia_encryption = \"required\"\nnetworks = [\"127.0.0.2\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(f.get("1001").unwrap().max_contacts, 5);
        let b = f.get("1002").unwrap();
        assert_eq!(b.transports, [Transport::Tls, Transport::Wss]);
        assert_eq!(b.media_encryption, MediaEncryption::Required);
        assert_eq!(b.networks[0].to_string(), "127.0.0.2/32");
        let e = AccountsFile::from_toml("realm = \"r\"\n[[account]]\nuser = \"1001\"\nha1_md5 = \"XYZ\"\n[[account]]\nuser = \"1001\"\nha1_md5 = \"42a3bbc213144377ae531e125246ffb7\"\n[[account]]\nuser = \"a b\"\n", Some(Path::new("acc.toml"))).unwrap_err();
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            e[0].starts_with("acc.toml:4: account[0].ha1_md5: must be 32"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("acc.toml:6: account[1].user: account \"1001\" is listed twice"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|x| x.contains("\"a b\" is not a usable SIP user name")),
            "{e:?}"
        );
        assert!(e.iter().any(|x| x.contains("has no HA1")), "{e:?}");
        let e = AccountsFile::from_toml(
            "realm = \"r\"\n[[account]]\nuser = \"1\"\npassword = \"x\"\n",
            Some(Path::new("acc.toml")),
        )
        .unwrap_err();
        assert!(
            e[0].to_string()
                .contains("acc.toml:4: account.password: unknown field `password`"),
            "{e:?}"
        );
        let transports = |t: &str| {
            AccountsFile::from_toml(
                &format!("realm = \"r\"\n[[account]]\nuser = \"1\"\nha1_md5 = \"42a3bbc213144377ae531e125246ffb7\"\ntransports = {t}\n"),
                Some(Path::new("acc.toml")),
            )
            .map(|f| f.accounts[0].transports.clone())
            .map_err(|e| e[0].to_string())
        };
        assert_eq!(
            transports("[\"udp\", \"tcp\", \"ws\"]"),
            Ok(vec![Transport::Udp, Transport::Tcp, Transport::Ws])
        );
        assert_eq!(
            transports("[\"sctp\"]").unwrap_err(),
            "acc.toml:5: account.transports: unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`, `ws`, `wss`"
        );
        assert_eq!(
            transports("\"tls\"").unwrap_err(),
            "acc.toml:5: account.transports: invalid type: string \"tls\", expected a sequence"
        );
    }
}
