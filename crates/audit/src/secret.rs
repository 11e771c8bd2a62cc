//! Password strength and generation, shared by the audit rules and `sipwarden secret generate`.
//!
//! A SIP password is attacked two ways: guessed online (scanners try the extension, `1234` and
//! the top of the leaked-password lists), and cracked offline from one captured digest response
//! (MD5, billions of guesses a second). So the verdict combines a length floor, zxcvbn's
//! estimate (which knows keyboard walks, dates, l33t and its leaked-password dictionary), a
//! check against the strings an attacker tries first (username, extension, section name) and
//! zxcvbn's common-password list.

use std::fmt;

use zxcvbn::matching::patterns::MatchPattern;

/// The shortest secret the audit accepts (DESIGN: "shorter than 16 characters" is a finding).
pub const MIN_LENGTH: usize = 16;

/// Length of [`generate`]d secrets unless asked otherwise.
pub const DEFAULT_LENGTH: usize = 24;

/// Longest secret [`generate`] makes: beyond it nothing is gained and some SIP stacks truncate.
pub const MAX_LENGTH: usize = 128;

/// The characters of generated secrets: letters, digits and symbols that need no quoting in a
/// SIP digest `response`, an Asterisk `secret=` line (`;` starts a comment), a `register =>`
/// string (`:`, `@`, `/` delimit it), TOML or a shell. 70 characters, 6.1 bits each.
pub const ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+*!~^";

/// zxcvbn's lowest acceptable score (of 4): "safely unguessable, moderate protection from
/// offline slow-hash attacks" — anything less falls to an online guesser or a captured digest.
const MIN_SCORE: u8 = 3;

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

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// The detailed verdict `sipwarden secret check` prints. Holds nothing derived from the secret
/// but numbers and fixed phrases.
#[derive(Clone, Debug, PartialEq)]
pub struct Strength {
    /// zxcvbn's score, 0 (guessed at once) to 4 (more than 10¹⁰ guesses).
    pub score: u8,
    /// log10 of zxcvbn's estimated number of guesses.
    pub guesses_log10: f64,
    /// Time to guess it online against a service that does not throttle (10 guesses/s).
    pub crack_time_online: String,
    /// Time to crack it from a captured digest at 10¹⁰ guesses/s (MD5 on one GPU).
    pub crack_time_offline: String,
    /// zxcvbn's advice (its fixed English phrases), for the weak ones.
    pub suggestions: Vec<String>,
    /// The audit's verdict.
    pub assessment: Assessment,
}

/// Judges `secret`. `related` holds strings an attacker would try first (the username, the
/// extension, the section name, the realm).
pub fn assess(secret: &str, related: &[&str]) -> Assessment {
    strength(secret, related).assessment
}

/// Judges `secret` and says why, with zxcvbn's numbers.
pub fn strength(secret: &str, related: &[&str]) -> Strength {
    let len = secret.chars().count();
    let related: Vec<&str> = related
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    let entropy = zxcvbn::zxcvbn(secret, &related);
    let score = u8::from(entropy.score());
    let mut weaknesses = Vec::new();
    if len < MIN_LENGTH {
        weaknesses.push(Weakness::TooShort { len });
    }
    if score < MIN_SCORE {
        weaknesses.push(Weakness::LowEntropy { score });
    }
    if related.iter().any(|r| matches_related(secret, r)) {
        weaknesses.push(Weakness::MatchesRelated);
    }
    if is_common(&entropy) {
        weaknesses.push(Weakness::Common);
    }
    let times = entropy.crack_times();
    let mut suggestions = Vec::new();
    if let Some(fb) = entropy.feedback() {
        if let Some(w) = fb.warning() {
            suggestions.push(w.to_string());
        }
        suggestions.extend(fb.suggestions().iter().map(ToString::to_string));
    }
    Strength {
        score,
        guesses_log10: if entropy.guesses_log10().is_finite() {
            entropy.guesses_log10()
        } else {
            0.0
        },
        crack_time_online: times.online_no_throttling_10_per_second().to_string(),
        crack_time_offline: times.offline_fast_hashing_1e10_per_second().to_string(),
        suggestions,
        assessment: Assessment { weaknesses },
    }
}

/// Whether zxcvbn explains the whole secret as one entry (possibly reversed, l33t or with
/// changed case) of its leaked-password dictionary (the "passwords" list, ~30 000 entries from
/// real breaches). The dictionary type is not nameable outside zxcvbn, so it is recognised by
/// its Debug name.
fn is_common(entropy: &zxcvbn::Entropy) -> bool {
    let [only] = entropy.sequence() else {
        return false;
    };
    match &only.pattern {
        MatchPattern::Dictionary(d) => format!("{:?}", d.dictionary_name) == "Passwords",
        _ => false,
    }
}

/// Whether `secret` is `related` or a variation an attacker tries right after it: another case,
/// reversed, doubled, with digits or symbols before or after, or (for strings of four
/// characters or more) anywhere inside.
fn matches_related(secret: &str, related: &str) -> bool {
    let s = secret.to_lowercase();
    let r = related.to_lowercase();
    let rev: String = r.chars().rev().collect();
    let padding = |rest: &str| rest.chars().all(|c| !c.is_alphabetic());
    for form in [&r, &rev] {
        if s == *form || s == format!("{form}{form}") {
            return true;
        }
        if let Some(rest) = s.strip_prefix(form.as_str())
            && padding(rest)
        {
            return true;
        }
        if let Some(rest) = s.strip_suffix(form.as_str())
            && padding(rest)
        {
            return true;
        }
        if form.chars().count() >= 4 && s.contains(form.as_str()) {
            return true;
        }
    }
    false
}

/// Why [`generate`] made no secret.
#[derive(Debug)]
pub enum GenerateError {
    /// The requested length is below [`MIN_LENGTH`] or above [`MAX_LENGTH`].
    BadLength {
        /// What was asked for.
        len: usize,
    },
    /// The operating system's random source failed.
    Random(getrandom::Error),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength { len } => write!(
                f,
                "length {len}: a secret has {MIN_LENGTH} to {MAX_LENGTH} characters"
            ),
            Self::Random(e) => write!(f, "the system's random source failed: {e}"),
        }
    }
}

impl std::error::Error for GenerateError {}

/// A new secret of `len` characters from [`ALPHABET`], drawn from the OS CSPRNG with rejection
/// sampling (every character equally likely). It always assesses strong: in the astronomically
/// unlikely case that a draw looks like a word, it is drawn again.
pub fn generate(len: usize) -> Result<String, GenerateError> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&len) {
        return Err(GenerateError::BadLength { len });
    }
    // 256 - 256 % 70: bytes at or above it would favour the first characters.
    let limit = 256 - 256 % ALPHABET.len();
    loop {
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 64];
        while out.len() < len {
            getrandom::fill(&mut buf).map_err(GenerateError::Random)?;
            for &b in &buf {
                if usize::from(b) >= limit || out.len() == len {
                    continue;
                }
                if let Some(&c) = ALPHABET.get(usize::from(b) % ALPHABET.len()) {
                    out.push(char::from(c));
                }
            }
        }
        if assess(&out, &[]).is_strong() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak(secret: &str, related: &[&str], w: &Weakness) -> bool {
        assess(secret, related).weaknesses.contains(w)
    }

    const STRONG: &str = "T7q-Vx2!mK9^pLw4.Rz8";

    #[test]
    fn strong_secret_has_no_weakness() {
        let a = assess(STRONG, &["1001", "carrier"]);
        assert!(a.is_strong(), "{a:?}");
    }

    #[test]
    fn too_short_both_sides() {
        assert!(weak("Tq7!x", &[], &Weakness::TooShort { len: 5 }));
        // 15 characters is short, 16 is not (non-ASCII counts as one character each).
        assert!(weak(
            "ü".repeat(15).as_str(),
            &[],
            &Weakness::TooShort { len: 15 }
        ));
        let a = assess(&STRONG[..16], &[]);
        assert!(
            !a.weaknesses
                .iter()
                .any(|w| matches!(w, Weakness::TooShort { .. })),
            "{a:?}"
        );
    }

    #[test]
    fn low_entropy_both_sides() {
        // Long but predictable: a keyboard walk and a repeated word.
        let a = assess("qwertyuiopasdfgh", &[]);
        assert!(
            a.weaknesses
                .iter()
                .any(|w| matches!(w, Weakness::LowEntropy { score } if *score < 3)),
            "{a:?}"
        );
        assert!(
            assess("aaaaaaaaaaaaaaaaaaaa", &[])
                .weaknesses
                .iter()
                .any(|w| matches!(w, Weakness::LowEntropy { .. }))
        );
        assert!(
            !assess(STRONG, &[])
                .weaknesses
                .iter()
                .any(|w| matches!(w, Weakness::LowEntropy { .. }))
        );
    }

    #[test]
    fn matches_related_both_sides() {
        for (secret, related) in [
            ("1001", "1001"),
            ("Alice", "alice"),
            ("ecila", "alice"),
            ("alice2024", "alice"),
            ("alice2024!", "alice"),
            ("123alice", "alice"),
            ("10011001", "1001"),
            ("x-carrier-trunk-x", "carrier"),
            ("101", "101"),
            ("101999", "101"),
        ] {
            assert!(
                weak(secret, &[related], &Weakness::MatchesRelated),
                "{secret} / {related}"
            );
        }
        // Short related strings are not searched inside; unrelated secrets never match.
        assert!(!weak("x7101qzPz", &["101"], &Weakness::MatchesRelated));
        assert!(!weak(
            STRONG,
            &["1001", "alice", ""],
            &Weakness::MatchesRelated
        ));
        assert!(!weak("alice", &[], &Weakness::MatchesRelated));
        // A blank related string (an empty username) matches nothing.
        assert!(!weak("  ", &["  "], &Weakness::MatchesRelated));
    }

    #[test]
    fn common_both_sides() {
        for secret in [
            "password", "123456", "Password", "qwerty", "drowssap", "p4ssw0rd",
        ] {
            assert!(weak(secret, &[], &Weakness::Common), "{secret}");
        }
        // Two common words together are weak in other ways but not one list entry.
        assert!(!weak("passworddragon", &[], &Weakness::Common));
        assert!(!weak(STRONG, &[], &Weakness::Common));
    }

    #[test]
    fn empty_secret_is_weak_without_panicking() {
        let s = strength("", &[]);
        assert_eq!(s.score, 0);
        assert!(
            s.assessment
                .weaknesses
                .contains(&Weakness::TooShort { len: 0 })
        );
    }

    #[test]
    fn strength_summary_for_a_weak_and_a_strong_secret() {
        let w = strength("password1", &[]);
        assert!(w.score < 3);
        assert!(w.guesses_log10 < 6.0);
        assert!(!w.suggestions.is_empty());
        let s = strength(STRONG, &[]);
        assert_eq!(s.score, 4);
        assert!(s.guesses_log10 > 10.0);
        assert_eq!(s.crack_time_online, "centuries");
        assert!(s.assessment.is_strong());
    }

    #[test]
    fn generated_secrets_are_strong_distinct_and_quotable() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = generate(DEFAULT_LENGTH).unwrap();
            assert_eq!(s.len(), DEFAULT_LENGTH);
            assert!(s.bytes().all(|b| ALPHABET.contains(&b)), "{s}");
            assert!(assess(&s, &[]).is_strong(), "{s}");
            assert!(seen.insert(s));
        }
        for bad in b";#\"\\' =,[]$%&:@/" {
            assert!(!ALPHABET.contains(bad), "{}", char::from(*bad));
        }
    }

    #[test]
    fn generate_length_bounds() {
        assert_eq!(generate(MIN_LENGTH).unwrap().len(), MIN_LENGTH);
        assert_eq!(generate(MAX_LENGTH).unwrap().len(), MAX_LENGTH);
        assert!(matches!(
            generate(15),
            Err(GenerateError::BadLength { len: 15 })
        ));
        assert!(generate(MAX_LENGTH + 1).is_err());
    }
}
