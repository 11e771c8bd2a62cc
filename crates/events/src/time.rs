//! Calendar dates from `SystemTime`, by hand: the two formats we need do not justify a date
//! crate, and the caller passes the time and the UTC offset, so nothing here reads a clock or
//! the time zone database.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) milli: u32,
}

/// Appends `n` in decimal, zero-padded to `width` digits, without going through `core::fmt`:
/// every security event is written as two lines, each with a date and a time of day.
pub(crate) fn push_padded(out: &mut String, n: u64, width: usize) {
    if n >= 100 {
        // The leading digits first, then the last two from the table.
        push_padded(out, n / 100, width.saturating_sub(2));
        push_pair(out, n % 100);
        return;
    }
    for _ in 2..width {
        out.push('0');
    }
    if n >= 10 || width >= 2 {
        push_pair(out, n);
    } else {
        push_pair_last(out, n);
    }
}

/// "00" to "99": two digits pushed as one `&str`, with neither a division per digit nor a
/// UTF-8 check.
const PAIRS: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839\
40414243444546474849505152535455565758596061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn pair(n: u64) -> &'static str {
    let i = usize::try_from(n % 100).unwrap_or(0) * 2;
    PAIRS.get(i..i + 2).unwrap_or("00")
}

fn push_pair(out: &mut String, n: u64) {
    out.push_str(pair(n));
}

fn push_pair_last(out: &mut String, n: u64) {
    out.push_str(pair(n).get(1..).unwrap_or("0"));
}

impl Civil {
    /// `YYYY-MM-DD`.
    pub(crate) fn push_date(&self, out: &mut String) {
        push_padded(out, u64::try_from(self.year).unwrap_or(0), 4);
        out.push('-');
        push_padded(out, self.month.into(), 2);
        out.push('-');
        push_padded(out, self.day.into(), 2);
    }

    /// `HH:MM:SS`.
    pub(crate) fn push_clock(&self, out: &mut String) {
        push_padded(out, self.hour.into(), 2);
        out.push(':');
        push_padded(out, self.minute.into(), 2);
        out.push(':');
        push_padded(out, self.second.into(), 2);
    }
}

/// Whole minutes east of UTC, clamped to less than a day either way: Asterisk's `%z` has no
/// seconds, and the printed offset must be the one the printed time was shifted by.
pub(crate) fn offset_minutes(utc_offset_secs: i32) -> i64 {
    i64::from(utc_offset_secs / 60).clamp(-(24 * 60 - 1), 24 * 60 - 1)
}

/// Seconds and milliseconds since the epoch, flooring for times before it.
fn unix_millis(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_millis(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
            // Floor: 0.3 s before the epoch is second -1, millisecond 700.
            match d.subsec_nanos().div_ceil(1_000_000) {
                0 => (secs, 0),
                1000 => (secs.saturating_sub(1), 0),
                ms => (secs.saturating_sub(1), 1000 - ms),
            }
        }
    }
}

/// The wall-clock time `offset_minutes` east of UTC.
pub(crate) fn civil(time: SystemTime, offset_minutes: i64) -> Civil {
    let (secs, milli) = unix_millis(time);
    let secs = secs.saturating_add(offset_minutes * 60);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    // `rem` is in 0..86_400, so these fit.
    let rem = u32::try_from(rem).unwrap_or(0);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        milli,
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day) in the
/// proleptic Gregorian calendar, exact for every `i64` day count a `SystemTime` can give.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by the ranges above.
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    (year, small(month), small(day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    fn ymdhms(c: Civil) -> (i64, u32, u32, u32, u32, u32, u32) {
        (c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli)
    }

    proptest::proptest! {
        #[test]
        fn padded_digits_are_what_format_writes(n: u64, width in 0usize..24) {
            let mut out = String::from("x");
            push_padded(&mut out, n, width);
            proptest::prop_assert_eq!(out, format!("x{n:0width$}"));
        }
    }

    #[test]
    fn epoch() {
        assert_eq!(ymdhms(civil(UNIX_EPOCH, 0)), (1970, 1, 1, 0, 0, 0, 0));
    }

    #[test]
    fn known_instants() {
        // 2000-02-29 (a leap day of a year divisible by 400) 23:59:59.999
        assert_eq!(
            ymdhms(civil(at(951_868_799, 999), 0)),
            (2000, 2, 29, 23, 59, 59, 999)
        );
        // 2024-02-29 12:00:00
        assert_eq!(
            ymdhms(civil(at(1_709_208_000, 0), 0)),
            (2024, 2, 29, 12, 0, 0, 0)
        );
        // 2024-03-01 00:00:00, the day after
        assert_eq!(
            ymdhms(civil(at(1_709_251_200, 0), 0)),
            (2024, 3, 1, 0, 0, 0, 0)
        );
        // 2023-12-31 23:59:59 and the second after it
        assert_eq!(
            ymdhms(civil(at(1_704_067_199, 0), 0)),
            (2023, 12, 31, 23, 59, 59, 0)
        );
        assert_eq!(
            ymdhms(civil(at(1_704_067_200, 0), 0)),
            (2024, 1, 1, 0, 0, 0, 0)
        );
        // 2024-12-31 (day 366 of a leap year)
        assert_eq!(
            ymdhms(civil(at(1_735_603_200, 0), 0)),
            (2024, 12, 31, 0, 0, 0, 0)
        );
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01
        assert_eq!(
            ymdhms(civil(at(4_107_456_000, 0), 0)),
            (2100, 2, 28, 0, 0, 0, 0)
        );
        assert_eq!(
            ymdhms(civil(at(4_107_542_400, 0), 0)),
            (2100, 3, 1, 0, 0, 0, 0)
        );
        // 2038-01-19 03:14:08, one past i32 time_t
        assert_eq!(
            ymdhms(civil(at(2_147_483_648, 0), 0)),
            (2038, 1, 19, 3, 14, 8, 0)
        );
    }

    #[test]
    fn offsets_cross_days_and_years() {
        // 2023-12-31 23:30 UTC is 2024-01-01 01:30 at +02:00 ...
        let t = at(1_704_065_400, 0);
        assert_eq!(ymdhms(civil(t, 120)), (2024, 1, 1, 1, 30, 0, 0));
        // ... and the epoch is 1969-12-31 18:00 at -06:00.
        assert_eq!(ymdhms(civil(UNIX_EPOCH, -360)), (1969, 12, 31, 18, 0, 0, 0));
    }

    #[test]
    fn before_the_epoch_floors() {
        let t = UNIX_EPOCH - Duration::from_millis(300);
        assert_eq!(ymdhms(civil(t, 0)), (1969, 12, 31, 23, 59, 59, 700));
        let t = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(ymdhms(civil(t, 0)), (1969, 12, 31, 0, 0, 0, 0));
        // Sub-millisecond remainders round toward the past, like the positive side.
        let t = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(ymdhms(civil(t, 0)), (1969, 12, 31, 23, 59, 59, 999));
    }

    #[test]
    fn offset_clamps_and_drops_seconds() {
        assert_eq!(offset_minutes(5 * 3600 + 30 * 60 + 59), 330);
        assert_eq!(offset_minutes(-(3600 + 59)), -60);
        assert_eq!(offset_minutes(i32::MAX), 24 * 60 - 1);
        assert_eq!(offset_minutes(i32::MIN), -(24 * 60 - 1));
    }

    #[test]
    fn days_round_trip_over_many_years() {
        // Walk 1600-03-01 .. 2400-03-01 day by day and check the calendar advances by one.
        let start = -135_080; // 1600-03-01
        let mut prev = civil_from_days(start - 1);
        for d in start..start + 292_194 {
            let cur = civil_from_days(d);
            let (py, pm, pd) = prev;
            let next_day = (py, pm, pd + 1);
            let next_month = (py, pm + 1, 1);
            let next_year = (py + 1, 1, 1);
            assert!(
                cur == next_day || (cur == next_month && pm < 12) || (cur == next_year && pm == 12),
                "{prev:?} -> {cur:?}"
            );
            let leap = (cur.0 % 4 == 0 && cur.0 % 100 != 0) || cur.0 % 400 == 0;
            let len = match cur.1 {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!(cur.2 >= 1 && cur.2 <= len, "{cur:?}");
            prev = cur;
        }
    }
}
