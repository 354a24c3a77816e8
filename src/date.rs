//! The calendar: UTC days and times, on top of `jiff`.
//!
//! The rest of ctindex counts delivery days as day numbers (days since
//! 1970-01-01, UTC: what the CloudTrail layout's `YYYY/MM/DD` folders, the
//! sync checkpoints and `--from`/`--to` are) and times as epoch
//! milliseconds. This module is the only one that turns them into calendar
//! dates and text, so the proleptic Gregorian rules live in one well-kept
//! crate rather than in hand-written arithmetic.
//!
//! Pure and at the bottom of the layers: it imports no other module.

use jiff::civil::{Date, DateTime};
use jiff::tz::Offset;
use jiff::{Timestamp, ToSpan};

const SECONDS_PER_DAY: i64 = 86_400;

/// The date of a day number. Days beyond the calendar's range (years
/// -9999 to 9999) are clamped to its ends.
fn date_of(day: i64) -> Date {
    let timestamp = day
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|second| Timestamp::from_second(second).ok())
        .unwrap_or(if day < 0 { Timestamp::MIN } else { Timestamp::MAX });
    Offset::UTC.to_datetime(timestamp).date()
}

/// The day number of a date.
fn day_of_date(date: Date) -> Option<i64> {
    let timestamp = Offset::UTC.to_timestamp(DateTime::from(date)).ok()?;
    Some(timestamp.as_second().div_euclid(SECONDS_PER_DAY))
}

/// (year, month, day) of a day number.
pub fn ymd(day: i64) -> (u32, u32, u32) {
    let date = date_of(day);
    (
        u32::try_from(date.year()).unwrap_or(0),
        u32::from(date.month().unsigned_abs()),
        u32::from(date.day().unsigned_abs()),
    )
}

/// The day number of a (year, month, day), if that date exists.
pub(crate) fn day(year: i64, month: u32, day: u32) -> Option<i64> {
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    day_of_date(date)
}

/// `months` calendar months after `day` (before, when negative), the day
/// clamped to the month's length (Mar 31 minus one month is Feb 28 or 29).
pub(crate) fn add_months(day: i64, months: i64) -> Option<i64> {
    let date = date_of(day).checked_add(months.months()).ok()?;
    day_of_date(date)
}

/// Parses `YYYY-MM-DD` (UTC, years 1970 to 2999) into a day number.
pub(crate) fn parse_day(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not a date (use YYYY-MM-DD, UTC)");
    let date = Date::strptime("%Y-%m-%d", text.trim()).map_err(|_| bad())?;
    if !(1970..=2999).contains(&date.year()) {
        return Err(bad());
    }
    day_of_date(date).ok_or_else(bad)
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn day_text(day: i64) -> String {
    date_of(day).strftime("%Y-%m-%d").to_string()
}

/// Today (UTC), as a day number.
pub fn today() -> i64 {
    Timestamp::now().as_second().div_euclid(SECONDS_PER_DAY)
}

/// The current UTC time as RFC 3339 with seconds.
pub(crate) fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// (year, month, day) of epoch milliseconds, if within the calendar.
pub(crate) fn millis_ymd(ms: i64) -> Option<(u32, u32, u32)> {
    let date = Offset::UTC.to_datetime(Timestamp::from_millisecond(ms).ok()?).date();
    Some((
        u32::try_from(date.year()).ok()?,
        u32::from(date.month().unsigned_abs()),
        u32::from(date.day().unsigned_abs()),
    ))
}

/// Epoch milliseconds as ISO 8601 UTC with milliseconds
/// (`2024-02-29T12:00:00.000Z`), if within the calendar.
pub(crate) fn millis_text(ms: i64) -> Option<String> {
    let timestamp = Timestamp::from_millisecond(ms).ok()?;
    Some(timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_and_dates() {
        assert_eq!(ymd(0), (1970, 1, 1));
        assert_eq!(ymd(19_782), (2024, 2, 29));
        assert_eq!(ymd(-1), (1969, 12, 31));
        assert_eq!(day(2024, 2, 29), Some(19_782));
        assert_eq!(day(2023, 2, 29), None);
        assert_eq!(day(2024, 13, 1), None);
        for d in (-719_000..2_900_000).step_by(997) {
            let (y, m, dd) = ymd(d);
            assert_eq!(day(i64::from(y), m, dd), Some(d));
        }
        assert_eq!(day_text(19_782), "2024-02-29");
    }

    #[test]
    fn parses_days() {
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(parse_day(" 2024-02-29 "), Ok(19_782));
        // As before jiff: months and days without their leading zero.
        assert_eq!(parse_day("2024-3-2"), parse_day("2024-03-02"));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "yesterday",
            "1969-12-31",
            "3000-01-01",
            "2024-01-01x",
            "",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months_are_calendar_months() {
        let d = |t: &str| parse_day(t).unwrap();
        assert_eq!(add_months(d("2024-03-31"), -1), Some(d("2024-02-29")));
        assert_eq!(add_months(d("2023-03-31"), -1), Some(d("2023-02-28")));
        assert_eq!(add_months(d("2024-01-15"), -13), Some(d("2022-12-15")));
        assert_eq!(add_months(d("2024-12-01"), 1), Some(d("2025-01-01")));
    }

    #[test]
    fn milliseconds() {
        assert_eq!(millis_text(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            millis_text(1_709_208_000_123).as_deref(),
            Some("2024-02-29T12:00:00.123Z")
        );
        assert_eq!(millis_ymd(1_709_208_000_123), Some((2024, 2, 29)));
        assert_eq!(millis_text(i64::MAX), None);
    }

    #[test]
    fn now_is_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(parse_day(&now[..10]).is_ok(), "{now}");
    }
}
