//! The rate table: what a minute to a destination costs, by E.164 prefix, read from the CSV
//! text the server hands over (`prefix,price_per_minute,increment,connection_fee`). Money is
//! `rust_decimal`, never a float: a cap of 1.00 is crossed where the carrier's invoice says,
//! not a rounding error later.
//!
//! A call is billed as carriers bill it: the connection fee, then the price per minute for
//! its talk time rounded up to whole increments, at least one increment once answered. An
//! unanswered call costs nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

/// Longest prefix (E.164 numbers have at most 15 digits).
const MAX_PREFIX: usize = 15;

/// Longest increment: a day (longer is a typo, and bounds the arithmetic).
const MAX_INCREMENT: u32 = 86_400;

/// The price of calls to one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    /// The prefix, E.164 with its `+` (`+44`).
    pub prefix: String,
    /// The price of a minute of talk.
    pub price_per_minute: Decimal,
    /// Talk time is billed in whole increments of this many seconds (at least 1).
    pub increment: u32,
    /// What an answered call costs on top of its minutes.
    pub connection_fee: Decimal,
}

impl Rate {
    /// The increment as a duration.
    fn step(&self) -> Duration {
        Duration::from_secs(u64::from(self.increment.max(1)))
    }

    /// The seconds billed for a call that talked `answered`: whole increments rounded up, at
    /// least one.
    pub fn billed_seconds(&self, answered: Duration) -> u64 {
        let step = self.step().as_nanos();
        let n = answered.as_nanos().div_ceil(step).max(1);
        let secs = n.saturating_mul(u128::from(self.increment.max(1)));
        u64::try_from(secs).unwrap_or(u64::MAX)
    }

    /// What a call that talked `answered` costs: the connection fee plus the price per minute
    /// for the billed seconds (exact: multiplied before it is divided by 60).
    pub fn price(&self, answered: Duration) -> Decimal {
        self.cost_of(self.billed_seconds(answered))
    }

    /// What a running call that has talked `elapsed` owes so far: every increment it has
    /// started, so the cost steps up at the very instant an increment begins (the moment
    /// [`Rate::next_step`] names). At least [`Rate::price`] of the same talk time (one
    /// increment more exactly on a boundary).
    pub fn running_cost(&self, elapsed: Duration) -> Decimal {
        let step = self.step().as_nanos();
        let started = (elapsed.as_nanos() / step).saturating_add(1);
        let secs = started.saturating_mul(u128::from(self.increment.max(1)));
        self.cost_of(u64::try_from(secs).unwrap_or(u64::MAX))
    }

    /// How long after the answer [`Rate::running_cost`] next steps up, for a call that has
    /// talked `elapsed`: the start of its next increment.
    pub fn next_step(&self, elapsed: Duration) -> Duration {
        let step = self.step();
        let started = elapsed.as_nanos() / step.as_nanos();
        let next = u32::try_from(started.saturating_add(1)).unwrap_or(u32::MAX);
        step.saturating_mul(next)
    }

    /// Whether every call to the prefix costs nothing (toll-free numbers priced at 0).
    pub fn is_free(&self) -> bool {
        self.price_per_minute.is_zero() && self.connection_fee.is_zero()
    }

    fn cost_of(&self, secs: u64) -> Decimal {
        let minutes = self
            .price_per_minute
            .saturating_mul(Decimal::from(secs))
            .checked_div(Decimal::from(60))
            .unwrap_or(Decimal::MAX);
        self.connection_fee.saturating_add(minutes)
    }
}

/// The rate table: the longest prefix of a number that the table holds prices it. Cheap to
/// clone (the rates are shared), so the call-record writer can price records with the very
/// table the policy uses.
#[derive(Clone, Debug, Default)]
pub struct RateTable {
    /// By prefix digits (without the `+`).
    rates: Arc<HashMap<Box<str>, Rate>>,
    /// The longest prefix held, in digits: look-ups try no longer ones.
    longest: usize,
}

impl RateTable {
    /// Reads the CSV text of a rate table: lines of `prefix,price_per_minute,increment,
    /// connection_fee` (prefix `+44` or `44`; prices decimal and not negative; increment in
    /// whole seconds, at least 1), an optional header line, `#` comments and blank lines. The
    /// error names the line (`line 7: price_per_minute "abc" is not a decimal`). A table that
    /// prices nothing is an error: a truncated file must not lift every cap.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rates: HashMap<Box<str>, Rate> = HashMap::new();
        let mut lines_of: HashMap<Box<str>, usize> = HashMap::new();
        let mut longest = 0;
        let mut first = true;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let header = first
                && fields
                    .first()
                    .is_some_and(|f| f.eq_ignore_ascii_case("prefix"));
            first = false;
            if header {
                continue;
            }
            let [prefix, price, increment, fee] = fields.as_slice() else {
                return Err(format!(
                    "line {n}: expected 4 fields (prefix,price_per_minute,increment,\
                     connection_fee), found {}",
                    fields.len()
                ));
            };
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if digits.is_empty()
                || digits.len() > MAX_PREFIX
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!(
                    "line {n}: prefix {prefix:?} is not an E.164 prefix such as +44 or 44"
                ));
            }
            let price_per_minute = amount(n, "price_per_minute", price)?;
            let connection_fee = amount(n, "connection_fee", fee)?;
            let increment = increment
                .parse::<u32>()
                .ok()
                .filter(|s| (1..=MAX_INCREMENT).contains(s))
                .ok_or_else(|| {
                    format!(
                        "line {n}: increment {increment:?} is not a whole number of seconds \
                         from 1 to {MAX_INCREMENT}"
                    )
                })?;
            if let Some(earlier) = lines_of.get(digits) {
                return Err(format!(
                    "line {n}: prefix +{digits} is already priced on line {earlier}"
                ));
            }
            lines_of.insert(digits.into(), n);
            longest = longest.max(digits.len());
            rates.insert(
                digits.into(),
                Rate {
                    prefix: format!("+{digits}"),
                    price_per_minute,
                    increment,
                    connection_fee,
                },
            );
        }
        if rates.is_empty() {
            return Err("the rate table prices no prefix".into());
        }
        Ok(Self {
            rates: Arc::new(rates),
            longest,
        })
    }

    /// The rate of a number (`+442079460000`, or its digits alone): the longest prefix that
    /// the table holds, or none.
    pub fn rate(&self, e164: &str) -> Option<&Rate> {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        (1..=digits.len().min(self.longest))
            .rev()
            .find_map(|len| digits.get(..len).and_then(|p| self.rates.get(p)))
    }

    /// What a call to `e164` cost: none when the table does not price the number, zero when
    /// it was never answered, else [`Rate::price`] of its talk time (`answered`: from the
    /// answer to the end). For call records.
    pub fn price_call(&self, e164: &str, answered: Option<Duration>) -> Option<Decimal> {
        let rate = self.rate(e164)?;
        Some(answered.map_or(Decimal::ZERO, |d| rate.price(d)))
    }

    /// Prefixes priced.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Whether the table prices nothing (only [`RateTable::default`]).
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}

/// A price field: a decimal, not negative.
fn amount(line: usize, field: &str, text: &str) -> Result<Decimal, String> {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && text.bytes().any(|b| b.is_ascii_digit());
    let d = plain
        .then(|| text.parse::<Decimal>().ok())
        .flatten()
        .ok_or_else(|| format!("line {line}: {field} {text:?} is not a decimal"))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("line {line}: {field} {text:?} is negative"));
    }
    Ok(d)
}

/// An amount for people: at most 4 decimal places, at least 2 (`1.02`, `0.0017`, `3.50`).
/// Only for display: totals keep every digit.
pub fn money(d: Decimal) -> String {
    let mut r = d.round_dp(4).normalize();
    if r.scale() < 2 {
        r.rescale(2);
    }
    r.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_longest_prefix_prices_a_number() {
        let t = RateTable::parse(
            "prefix,price_per_minute,increment,connection_fee\n\
             # the UK, and London cheaper\n\
             +44,0.10,60,0\n\
             4420, 0.02 ,1,0.01  # London\n\
             \n\
             +1,0.01,6,0\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.rate("+442079460000").unwrap().prefix, "+4420");
        assert_eq!(t.rate("442079460000").unwrap().prefix, "+4420");
        assert_eq!(t.rate("+447700900000").unwrap().prefix, "+44");
        assert_eq!(t.rate("+12125550100").unwrap().increment, 6);
        assert_eq!(t.rate("+33123456789"), None);
        assert_eq!(t.rate("+44x"), None);
        assert_eq!(t.rate(""), None);
        assert_eq!(t.price_call("+33123456789", Some(SEC)), None);
        assert_eq!(t.price_call("+447700900000", None), Some(Decimal::ZERO));
        // Shared, not copied.
        let u = t.clone();
        assert!(Arc::ptr_eq(&t.rates, &u.rates));
    }

    #[test]
    fn errors_name_the_line_and_field() {
        for (text, want) in [
            (
                "prefix,price_per_minute,increment,connection_fee\n+44,0.1,60,0\n\n# x\n+1,0.1,60,0\n+33,0.1,60,0\n+34,abc,60,0\n",
                "line 7: price_per_minute \"abc\" is not a decimal",
            ),
            ("+44,0.1,60\n", "line 1: expected 4 fields"),
            (
                "+44,0.1,0,0\n",
                "line 1: increment \"0\" is not a whole number",
            ),
            ("+44,0.1,1.5,0\n", "line 1: increment \"1.5\""),
            (
                "+44,0.1,60,-0.01\n",
                "line 1: connection_fee \"-0.01\" is negative",
            ),
            (
                "+44,0.1,60,1e3\n",
                "line 1: connection_fee \"1e3\" is not a decimal",
            ),
            (
                "44a,0.1,60,0\n",
                "line 1: prefix \"44a\" is not an E.164 prefix",
            ),
            ("+,0.1,60,0\n", "line 1: prefix \"+\""),
            (
                "+44,0.1,60,0\n44,0.2,60,0\n",
                "line 2: prefix +44 is already priced on line 1",
            ),
            (
                "# nothing\nprefix,price_per_minute,increment,connection_fee\n",
                "prices no prefix",
            ),
            ("+44,0.1,60,0\nprefix,a,b,c\n", "line 2: prefix \"prefix\""),
        ] {
            let e = RateTable::parse(text).unwrap_err();
            assert!(e.starts_with(want) || e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn calls_are_billed_in_increments_with_the_fee_exactly() {
        let r = Rate {
            prefix: "+44".into(),
            price_per_minute: dec("0.10"),
            increment: 6,
            connection_fee: dec("0.05"),
        };
        // Just answered: the fee and one increment (6 s of 0.10 a minute = 0.01).
        assert_eq!(r.price(Duration::ZERO), dec("0.06"));
        assert_eq!(r.price(Duration::from_millis(1)), dec("0.06"));
        assert_eq!(r.price(SEC * 6), dec("0.06"));
        assert_eq!(r.price(SEC * 6 + Duration::from_nanos(1)), dec("0.07"));
        assert_eq!(r.price(SEC * 60), dec("0.15"));
        assert_eq!(r.billed_seconds(SEC * 61), 66);
        // The running cost counts the increment begun: it steps up at 6 s sharp.
        assert_eq!(
            r.running_cost(SEC * 6 - Duration::from_nanos(1)),
            dec("0.06")
        );
        assert_eq!(r.running_cost(SEC * 6), dec("0.07"));
        assert_eq!(r.next_step(Duration::ZERO), SEC * 6);
        assert_eq!(r.next_step(SEC * 6), SEC * 12);
        assert_eq!(r.next_step(SEC * 7), SEC * 12);
        // Ten calls of a minute at 0.1: exactly 1, no float's 0.9999999.
        let tenth = Rate {
            price_per_minute: dec("0.1"),
            increment: 60,
            connection_fee: Decimal::ZERO,
            ..r.clone()
        };
        let sum = (0..10).fold(Decimal::ZERO, |s, _| s + tenth.price(SEC * 60));
        assert_eq!(sum, Decimal::ONE);
        assert_eq!(tenth.price(SEC * 60) + dec("0.2"), dec("0.3"));
        // Per-second billing of a cent a minute: half a minute is half a cent.
        let cent = Rate {
            price_per_minute: dec("0.01"),
            increment: 1,
            ..tenth
        };
        assert_eq!(cent.price(SEC * 30), dec("0.005"));
        assert!(!cent.is_free());
    }

    #[test]
    fn money_is_shown_with_two_to_four_places() {
        assert_eq!(money(dec("1.02")), "1.02");
        assert_eq!(money(dec("1")), "1.00");
        assert_eq!(money(dec("1.0200")), "1.02");
        assert_eq!(money(dec("0.001666666")), "0.0017");
        assert_eq!(money(dec("3.5")), "3.50");
    }
}
