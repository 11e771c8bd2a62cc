//! Telephone numbers and number ranges (DIDs, caller-ID allowlists).

use std::fmt;

/// The canonical form of a telephone number (RFC 8224 §8.3): visual separators and a leading
/// `+` removed, 1–15 digits left. `None` if what is left is not that.
pub fn canonical_number(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// An inclusive range of numbers of the same length, `+15551230000-+15551230099`, or one
/// number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberRange {
    start: u64,
    end: u64,
    digits: usize,
}

impl NumberRange {
    /// Parses `A-B` (both canonicalisable, same length, A ≤ B; write B with its `+` when the
    /// numbers carry separators, `+1555…-+1555…`) or a single number.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = match s.split_once("-+") {
            Some((a, b)) => (a.to_owned(), format!("+{b}")),
            None => match s.split_once('-') {
                // Without '+', a '-' is a range only between two plain digit strings of equal
                // length; otherwise it is a visual separator.
                Some((a, b))
                    if a.len() == b.len()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit()) =>
                {
                    (a.to_owned(), b.to_owned())
                }
                _ => (s.to_owned(), s.to_owned()),
            },
        };
        let bad = || {
            format!("{s:?} is not a telephone number or range like \"+15551230000-+15551230099\"")
        };
        let a = canonical_number(&a).ok_or_else(bad)?;
        let b = canonical_number(&b).ok_or_else(bad)?;
        if a.len() != b.len() {
            return Err(format!(
                "{s:?}: both ends of a range need the same number of digits"
            ));
        }
        let (start, end) = (
            a.parse::<u64>().map_err(|_| bad())?,
            b.parse::<u64>().map_err(|_| bad())?,
        );
        if start > end {
            return Err(format!("{s:?}: the range ends before it starts"));
        }
        Ok(Self {
            start,
            end,
            digits: a.len(),
        })
    }

    /// Whether the canonical number `n` is in the range.
    pub fn contains(&self, n: &str) -> bool {
        n.len() == self.digits
            && n.parse::<u64>()
                .is_ok_and(|v| (self.start..=self.end).contains(&v))
    }

    /// The first number of the range, canonical.
    pub fn first(&self) -> String {
        format!("{:0width$}", self.start, width = self.digits)
    }
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.digits;
        if self.start == self.end {
            write!(f, "+{:0w$}", self.start)
        } else {
            write!(f, "+{:0w$}-+{:0w$}", self.start, self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(
            canonical_number("+1-215-555-1212").as_deref(),
            Some("12155551212")
        );
        assert_eq!(
            canonical_number("(215) 555.1212").as_deref(),
            Some("2155551212")
        );
        assert_eq!(canonical_number("abc"), None);
        assert_eq!(canonical_number("+1234567890123456"), None);
        let r = NumberRange::parse("+15551230000-+15551230099").unwrap();
        assert!(r.contains("15551230000") && r.contains("15551230099"));
        assert!(!r.contains("15551230100") && !r.contains("5551230050"));
        assert_eq!(r.to_string(), "+15551230000-+15551230099");
        assert!(
            NumberRange::parse("+1-555-123-0000")
                .unwrap()
                .contains("15551230000")
        );
        assert!(NumberRange::parse("1000-1999").unwrap().contains("1500"));
        assert!(NumberRange::parse("+15551230099-+15551230000").is_err());
        assert!(NumberRange::parse("+1555-+15551230000").is_err());
        assert!(NumberRange::parse("x").is_err());
    }
}
