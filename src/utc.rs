//! UTC calendar arithmetic without a date crate: the status message stamps its time, a
//! client certificate's validity is read and compared with the clock, and a server
//! certificate's dates are shown as dates. Seconds since 1970, and dates of the proleptic
//! Gregorian calendar (Howard Hinnant's algorithms).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970 now (0 for a clock set before it).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The date `days` after 1970-01-01: year, month (1 to 12), day (1 to 31).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DDThh:mm:ssZ` for `secs` since 1970.
pub(crate) fn iso8601(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days from 1970-01-01 to a date, if it is one: a month past 12 or a day past the month's end
/// would count on into the next ones and read as another date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    // Years counted from March, so that the leap day ends each.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((i64::from(month) + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_convert_both_ways() {
        // Values from Python's datetime.date(...).toordinal() - date(1970, 1, 1).toordinal().
        for (date, days) in [
            ((1970, 1, 1), 0),
            ((1950, 1, 1), -7305),
            ((2000, 2, 29), 11_016),
            ((2026, 12, 4), 20_791),
            ((2049, 12, 31), 29_219),
            ((9999, 12, 31), 2_932_896),
        ] {
            assert_eq!(
                days_from_civil(date.0, date.1, date.2),
                Some(days),
                "{date:?}"
            );
            assert_eq!(civil_from_days(days), date);
        }
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }

    #[test]
    fn what_is_no_date_is_refused() {
        for (y, m, d) in [
            (2026, 2, 29),
            (2100, 2, 29),
            (2026, 2, 30),
            (2026, 4, 31),
            (2026, 13, 1),
            (2026, 0, 1),
            (2026, 1, 0),
            (2026, 1, 32),
        ] {
            assert_eq!(days_from_civil(y, m, d), None, "{y}-{m}-{d}");
        }
        assert!(days_from_civil(2024, 2, 29).is_some());
        assert!(days_from_civil(2000, 2, 29).is_some());
    }
}
