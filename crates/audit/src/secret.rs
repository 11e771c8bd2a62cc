//! Password strength and generation, shared by the audit rules and `sipwarden secret`.
//!
//! PLACEHOLDER: only the length rule for now; the strength estimator, the common-password list
//! and generation come next. The signatures are what the rules and the CLI use.

/// The shortest secret the audit accepts (DESIGN: "shorter than 16 characters" is a finding).
pub const MIN_LENGTH: usize = 16;

/// Why a secret is weak. Never carries the secret itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Weakness {
    /// Fewer than [`MIN_LENGTH`] characters.
    TooShort {
        /// Its length in characters.
        len: usize,
    },
    /// The strength estimator (zxcvbn) scores it below 3 of 4.
    LowEntropy {
        /// zxcvbn's score, 0–4.
        score: u8,
    },
    /// Equal to (or a trivial variation of) the username, extension or another related string.
    MatchesRelated,
    /// In a list of commonly used passwords.
    Common,
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "{len} characters, fewer than {MIN_LENGTH}"),
            Self::LowEntropy { score } => write!(f, "easy to guess (strength {score} of 4)"),
            Self::MatchesRelated => f.write_str("the same as the username or extension"),
            Self::Common => f.write_str("a commonly used password"),
        }
    }
}

/// The verdict on one secret.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// Every reason it is weak; empty when strong.
    pub weaknesses: Vec<Weakness>,
}

impl Assessment {
    /// Strong enough by the audit's rule: no weakness at all.
    pub fn is_strong(&self) -> bool {
        self.weaknesses.is_empty()
    }
}

/// Judges `secret`. `related` holds strings an attacker would try first (the username, the
/// extension, the section name, the realm).
pub fn assess(secret: &str, related: &[&str]) -> Assessment {
    let _ = related;
    let len = secret.chars().count();
    let mut weaknesses = Vec::new();
    if len < MIN_LENGTH {
        weaknesses.push(Weakness::TooShort { len });
    }
    Assessment { weaknesses }
}
