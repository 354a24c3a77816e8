//! CloudTrail's key layout, and the selection applied to it.
//!
//! CloudTrail writes `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail[-Insight]/<region>/YYYY/MM/DD/<file>`.
//! This module says where an S3 key or a local path sits in that layout
//! ([`Place`]) and whether a [`Selection`] (`--accounts`, `--regions`,
//! `--from`/`--to`, and sync's per-folder windows) wants a file, or may find
//! one under a folder. S3 listing and local walking both ask it, so both
//! select alike. Pure: no I/O.
//!
//! Invariant: what the layout does not tell is never filtered out on that
//! ground: a key outside the layout is kept whatever `--accounts` says, and
//! a key without `YYYY/MM/DD` folders whatever the days.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use crate::date;

/// Where a key or a path sits in the layout; `None` where it does not tell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Place<'a> {
    pub account: Option<&'a str>,
    /// `CloudTrail`, `CloudTrail-Insight` or `CloudTrail-Digest`.
    pub kind: Option<&'a str>,
    pub region: Option<&'a str>,
    /// Where the region folder's name ends in the name (its scope's end).
    region_end: Option<usize>,
    pub year: Option<u32>,
    pub month: Option<u32>,
    pub day: Option<u32>,
}

fn is_separator(c: char) -> bool {
    c == '/' || c == '\\'
}

/// A field of `digits` digits, as a number.
fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Whether `text` is an AWS account id: 12 digits.
pub fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> Place<'a> {
    /// Where a file sits: its last segment is the file's name.
    pub fn of_file(name: &'a str) -> Place<'a> {
        Self::parse(name, false)
    }

    /// Where a folder sits: every segment is a folder.
    pub fn of_folder(path: &'a str) -> Place<'a> {
        Self::parse(path.trim_end_matches(is_separator), true)
    }

    fn parse(name: &'a str, folder: bool) -> Place<'a> {
        // Folder segments, each with the offset where it ends.
        let mut segments: Vec<(&str, usize)> = Vec::new();
        let mut start = 0;
        for (i, c) in name.char_indices() {
            if is_separator(c) {
                segments.push((&name[start..i], i));
                start = i + 1;
            }
        }
        if folder {
            segments.push((&name[start..], name.len()));
        }
        let mut place = Place::default();
        let Some(root) = segments.iter().position(|(s, _)| *s == "AWSLogs") else {
            return place;
        };
        let mut rest = segments[root + 1..].iter().peekable();
        rest.next_if(|(s, _)| s.starts_with("o-"));
        let Some(&(account, _)) = rest.next().filter(|(s, _)| is_account(s)) else {
            return place;
        };
        place.account = Some(account);
        let Some(&(kind, _)) = rest
            .next()
            .filter(|(s, _)| matches!(*s, "CloudTrail" | "CloudTrail-Insight" | "CloudTrail-Digest"))
        else {
            return place;
        };
        place.kind = Some(kind);
        let Some(&(region, end)) = rest.next().filter(|(s, _)| !s.is_empty()) else {
            return place;
        };
        place.region = Some(region);
        place.region_end = Some(end);
        place.year = rest.next().and_then(|(s, _)| number(s, 4));
        place.month = place
            .year
            .and(rest.next())
            .and_then(|(s, _)| number(s, 2))
            .filter(|m| (1..=12).contains(m));
        place.day = place
            .month
            .and(rest.next())
            .and_then(|(s, _)| number(s, 2))
            .filter(|d| (1..=31).contains(d));
        place
    }

    /// The delivery day (days since 1970-01-01), when the folders give a valid date.
    pub fn delivery_day(&self) -> Option<i64> {
        date::day(i64::from(self.year?), self.month?, self.day?)
    }

    /// The scope of `name` (which this place was parsed from): the name up to
    /// and including its region folder and a separator. Sync keeps one window
    /// per scope.
    pub fn scope<'n>(&self, name: &'n str) -> Option<Cow<'n, str>> {
        let end = self.region_end?;
        Some(match name[end..].chars().next() {
            Some(c) if is_separator(c) => Cow::Borrowed(&name[..end + c.len_utf8()]),
            _ => Cow::Owned(format!("{}/", &name[..end])),
        })
    }
}

/// A file's scope ("" outside the layout) and delivery day (from its
/// `YYYY/MM/DD` folders; outside the layout, from any such folders).
pub fn scope_and_day(name: &str) -> (Cow<'_, str>, Option<i64>) {
    let place = Place::of_file(name);
    match place.scope(name) {
        Some(scope) => (scope, place.delivery_day()),
        None => (Cow::Borrowed(""), key_day(name)),
    }
}

/// The delivery day of any key with `YYYY/MM/DD` folders.
pub fn key_day(key: &str) -> Option<i64> {
    let parts: Vec<&str> = key.split(is_separator).collect();
    parts.windows(3).find_map(|w| {
        let (y, m, d) = (number(w[0], 4)?, number(w[1], 2)?, number(w[2], 2)?);
        date::day(i64::from(y), m, d)
    })
}

/// A range of delivery days (days since 1970-01-01), inclusive; open where None.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Days {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Days {
    pub fn contains(&self, day: i64) -> bool {
        self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t)
    }

    /// Whether this is every day.
    pub fn is_open(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// Whether a `YYYY[/MM[/DD]]` folder may hold days in the range.
    pub fn may_hold(&self, year: u32, month: Option<u32>, day: Option<u32>) -> bool {
        let (from, to) = (self.from.map(date::ymd), self.to.map(date::ymd));
        match (month, day) {
            (None, _) => from.is_none_or(|f| year >= f.0) && to.is_none_or(|t| year <= t.0),
            (Some(m), None) => {
                from.is_none_or(|f| (year, m) >= (f.0, f.1)) && to.is_none_or(|t| (year, m) <= (t.0, t.1))
            }
            (Some(m), Some(d)) => from.is_none_or(|f| (year, m, d) >= f) && to.is_none_or(|t| (year, m, d) <= t),
        }
    }
}

/// What to read of a source: the same for S3 and local folders.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these accounts, when not empty.
    pub accounts: BTreeSet<String>,
    /// Only these regions, when not empty.
    pub regions: BTreeSet<String>,
    /// Delivery days (`--from`/`--to`; sync: from `--since`), for scopes
    /// without a window of their own.
    pub days: Days,
    /// Sync: the first day of each scope's look-back window (scope → day).
    pub windows: HashMap<String, i64>,
    /// S3: walk the `CloudTrail-Digest/` folders too (`verify`); imports
    /// skip them, they hold no events. Local walks always list digests.
    pub digests: bool,
}

impl Selection {
    pub fn wants_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.contains(account)
    }

    pub fn wants_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.contains(region)
    }

    /// The days to read in a scope ("" for files outside the layout).
    pub fn days_for(&self, scope: &str) -> Days {
        match self.windows.get(scope) {
            Some(&from) => Days {
                from: Some(from),
                to: self.days.to,
            },
            None => self.days,
        }
    }

    /// Whether a file, by name, is selected.
    pub fn wants_file(&self, name: &str) -> bool {
        let place = Place::of_file(name);
        if place.account.is_some_and(|a| !self.wants_account(a)) || place.region.is_some_and(|r| !self.wants_region(r))
        {
            return false;
        }
        let (scope, day) = match place.scope(name) {
            Some(scope) => (scope, place.delivery_day()),
            None => (Cow::Borrowed(""), key_day(name)),
        };
        day.is_none_or(|d| self.days_for(&scope).contains(d))
    }

    /// Whether a folder may hold selected files (walking skips the others whole).
    pub fn may_hold(&self, folder: &str) -> bool {
        let place = Place::of_folder(folder);
        if place.account.is_some_and(|a| !self.wants_account(a)) || place.region.is_some_and(|r| !self.wants_region(r))
        {
            return false;
        }
        match (place.scope(folder), place.year) {
            (Some(scope), Some(year)) => self.days_for(&scope).may_hold(year, place.month, place.day),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::{day_text, parse_day};

    #[test]
    fn places() {
        let key = "trail/AWSLogs/o-abc123/111111111111/CloudTrail/eu-west-1/2024/02/29/x.json.gz";
        let place = Place::of_file(key);
        assert_eq!(
            (place.account, place.kind, place.region),
            (Some("111111111111"), Some("CloudTrail"), Some("eu-west-1"))
        );
        assert_eq!(place.delivery_day(), parse_day("2024-02-29").ok());
        assert_eq!(
            place.scope(key).as_deref(),
            Some("trail/AWSLogs/o-abc123/111111111111/CloudTrail/eu-west-1/")
        );
        // Folders: every segment counts, with or without a trailing separator.
        let folder = "/m/AWSLogs/111111111111/CloudTrail/us-east-1";
        let place = Place::of_folder(folder);
        assert_eq!(place.region, Some("us-east-1"));
        assert_eq!(place.year, None);
        assert_eq!(
            place.scope(folder).as_deref(),
            Some("/m/AWSLogs/111111111111/CloudTrail/us-east-1/")
        );
        let place = Place::of_folder("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/");
        assert_eq!((place.year, place.month, place.day), (Some(2024), Some(3), None));
        // A file directly in a region folder, and names outside the layout.
        assert_eq!(Place::of_file("AWSLogs/111111111111/CloudTrail/x.json").region, None);
        assert_eq!(
            Place::of_file("AWSLogs/12345/CloudTrail/us-east-1/x.json"),
            Place::default()
        );
        assert_eq!(Place::of_file("logs/2024/01/01/x.json"), Place::default());
        assert_eq!(key_day("logs/2024/01/01/x.json"), parse_day("2024-01-01").ok());
        assert_eq!(
            scope_and_day("logs/2024/01/01/x.json"),
            (Cow::Borrowed(""), parse_day("2024-01-01").ok())
        );
    }

    #[test]
    fn selections() {
        let day = |t: &str| parse_day(t).unwrap();
        let mut s = Selection {
            accounts: ["111111111111".to_string()].into(),
            regions: ["us-east-1".to_string()].into(),
            days: Days {
                from: Some(day("2024-03-02")),
                to: Some(day("2024-03-03")),
            },
            windows: HashMap::new(),
            digests: false,
        };
        let file = |acct: &str, region: &str, date: &str| {
            format!("s3://b/AWSLogs/{acct}/CloudTrail/{region}/{date}/f.json.gz")
        };
        for (name, want) in [
            (file("111111111111", "us-east-1", "2024/03/02"), true),
            (file("111111111111", "us-east-1", "2024/03/04"), false),
            (file("222222222222", "us-east-1", "2024/03/02"), false),
            (file("111111111111", "eu-west-1", "2024/03/02"), false),
            ("s3://b/other/f.json".to_string(), true),
            ("s3://b/other/2024/03/09/f.json".to_string(), false),
        ] {
            assert_eq!(s.wants_file(&name), want, "{name}");
        }
        for (folder, want) in [
            ("/m/AWSLogs", true),
            ("/m/AWSLogs/o-x/222222222222", false),
            ("/m/AWSLogs/111111111111/CloudTrail/eu-west-1", false),
            ("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2023", false),
            ("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2024", true),
            ("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2024/02", false),
            ("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/01", false),
            ("/m/AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/03", true),
        ] {
            assert_eq!(s.may_hold(folder), want, "{folder}");
        }
        // A window replaces the days' start in its scope only.
        s.windows.insert(
            "s3://b/AWSLogs/111111111111/CloudTrail/us-east-1/".into(),
            day("2024-03-03"),
        );
        assert!(!s.wants_file(&file("111111111111", "us-east-1", "2024/03/02")));
        assert!(s.wants_file(&file("111111111111", "us-east-1", "2024/03/03")));
        let open = Selection::default();
        assert!(open.wants_file(&file("999999999999", "ap-south-1", "1999/01/01")));
    }

    #[test]
    fn days() {
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(parse_day("2024-02-29"), Ok(19_782));
        assert!(parse_day("2023-02-29").is_err());
        assert!(parse_day("2024-13-01").is_err());
        assert!(parse_day("yesterday").is_err());
        for d in [-1000, 0, 19_000, 30_000] {
            let (y, m, dd) = date::ymd(d);
            assert_eq!(date::day(i64::from(y), m, dd), Some(d));
        }
        assert_eq!(day_text(19_782), "2024-02-29");
        let open_end = Days {
            from: Some(19_782),
            to: None,
        };
        assert!(open_end.may_hold(2030, Some(1), None));
        assert!(!open_end.may_hold(2024, Some(1), None));
    }
}
