//! Retention: keeping a trail's monthly indices in bounds.
//!
//! [`prune`] deletes the prefix's own monthly indices (`<prefix>-YYYY.MM`)
//! whose whole month is older than a cut-off: never an index of another
//! prefix, never `<prefix>-undated`, never the current month. It goes by the
//! month in the name, so it is exact for back-filled history too.
//! [`install_policy`] installs the same rule as an ILM policy
//! (Elasticsearch) or an ISM policy (OpenSearch) where the cluster offers
//! one; those count from each index's creation, not from its month.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client::{Cluster, Flavor, SendError};
use super::template::{is_own_index, template_priority};
use crate::date::{self, today};
use crate::http::Method;

/// An age: calendar months and days (`13mo`, `400d`, `2y`, `8w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age {
    pub months: u32,
    pub days: u32,
}

impl Age {
    /// About as many days, for ILM and ISM, which count in days.
    pub fn approx_days(self) -> u32 {
        self.months * 31 + self.days
    }
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.months, self.days) {
            (0, d) => write!(f, "{d} days"),
            (m, 0) => write!(f, "{m} months"),
            (m, d) => write!(f, "{m} months and {d} days"),
        }
    }
}

/// Parses `13mo`, `12months`, `2y`, `400d`, `8w` (one number and a unit).
pub fn parse_age(text: &str) -> Result<Age, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("'{text}' is not an age (use e.g. 13mo, 2y, 400d, 8w)");
    let n: u32 = number.parse().map_err(|_| bad())?;
    let age = match unit.trim() {
        "mo" | "month" | "months" => Age { months: n, days: 0 },
        "y" | "year" | "years" => Age {
            months: n.checked_mul(12).ok_or_else(bad)?,
            days: 0,
        },
        "d" | "day" | "days" => Age { months: 0, days: n },
        "w" | "week" | "weeks" => Age {
            months: 0,
            days: n.checked_mul(7).ok_or_else(bad)?,
        },
        "m" => return Err(format!("'{text}': m is ambiguous, write mo for months")),
        _ => return Err(bad()),
    };
    if age.months == 0 && age.days == 0 {
        return Err(format!("'{text}': the age must be more than 0"));
    }
    Ok(age)
}

/// The first day (days since 1970-01-01) that is kept: `age` before `today`,
/// months counted on the calendar (the day clamped to the month's length).
pub fn cutoff_day(today: i64, age: Age) -> i64 {
    // Beyond the calendar's first day: nothing is old enough.
    date::add_months(today, -i64::from(age.months)).map_or(i64::MIN, |day| day - i64::from(age.days))
}

/// The month of one of the prefix's monthly indices: (year, month).
pub fn index_month(prefix: &str, index: &str) -> Option<(i64, u32)> {
    if !is_own_index(prefix, index) {
        return None;
    }
    let rest = &index[prefix.len() + 1..];
    let (y, m) = rest.split_once('.')?;
    let m: u32 = m.parse().ok()?;
    (1..=12).contains(&m).then_some((y.parse().ok()?, m))
}

/// Whether the index's whole month lies before the cut-off (and it is not
/// the current month, whatever the cut-off).
pub fn expired(prefix: &str, index: &str, cutoff: i64, today: i64) -> bool {
    let Some((y, m)) = index_month(prefix, index) else {
        return false;
    };
    let (ty, tm, _) = date::ymd(today);
    if (y, m) >= (i64::from(ty), tm) {
        return false;
    }
    date::day(y, m, 1)
        .and_then(|first| date::add_months(first, 1))
        .is_some_and(|next| next <= cutoff)
}

/// One of the prefix's indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    pub name: String,
    pub docs: u64,
}

/// What `prune` did (or would do, with `dry_run`).
#[derive(Debug, Default)]
pub struct Pruned {
    /// Deleted (or to delete), oldest first.
    pub expired: Vec<IndexInfo>,
    /// The prefix's indices kept.
    pub kept: usize,
    /// The first day kept.
    pub cutoff: i64,
}

/// The prefix's own indices (monthly and undated), by name.
pub async fn own_indices(cluster: &Cluster, prefix: &str) -> Result<Vec<IndexInfo>> {
    let path = format!("/_cat/indices/{prefix}-*?format=json&h=index,docs.count&expand_wildcards=open,closed");
    let answer = cluster
        .json(Method::GET, &path, None)
        .await
        .with_context(|| format!("cannot list the indices {prefix}-*"))?;
    let Some(rows) = answer.as_array() else {
        bail!("listing the indices {prefix}-* did not answer a list: {answer}");
    };
    let mut out: Vec<IndexInfo> = rows
        .iter()
        .filter_map(|row| {
            let name = row["index"].as_str()?;
            is_own_index(prefix, name).then(|| IndexInfo {
                name: name.to_string(),
                docs: row["docs.count"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .or_else(|| row["docs.count"].as_u64())
                    .unwrap_or(0),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Deletes the prefix's monthly indices wholly older than `age` (none with
/// `dry_run`), by name, after listing them.
pub async fn prune(cluster: &Cluster, prefix: &str, age: Age, dry_run: bool) -> Result<Pruned> {
    let today = today();
    let cutoff = cutoff_day(today, age);
    let all = own_indices(cluster, prefix).await?;
    let (expired, kept): (Vec<IndexInfo>, Vec<IndexInfo>) =
        all.into_iter().partition(|i| expired(prefix, &i.name, cutoff, today));
    if !dry_run {
        for chunk in expired.chunks(20) {
            let names: Vec<&str> = chunk.iter().map(|i| i.name.as_str()).collect();
            cluster
                .json(Method::DELETE, &format!("/{}", names.join(",")), None)
                .await
                .with_context(|| format!("cannot delete {}", names.join(", ")))?;
        }
    }
    Ok(Pruned {
        expired,
        kept: kept.len(),
        cutoff,
    })
}

/// The policy's name for a prefix.
pub fn policy_name(prefix: &str) -> String {
    format!("ctindex-{prefix}")
}

/// What installing a retention policy did.
#[derive(Debug, PartialEq, Eq)]
pub enum Policy {
    /// An ILM policy, named in the template's `index.lifecycle.name`.
    Ilm(String),
    /// An ISM policy whose `ism_template` matches the prefix's indices.
    Ism(String),
    /// The cluster has neither; the reason, for the user.
    Unsupported(String),
}

/// The ILM policy: delete an index `age` (plus a month, since a monthly
/// index is made during its month) after its creation.
pub fn ilm_body(age: Age) -> Value {
    json!({"policy": {
        "_meta": {"managed_by": "ctindex"},
        "phases": {"delete": {"min_age": format!("{}d", age.approx_days() + 31), "actions": {"delete": {}}}}
    }})
}

/// The ISM policy, attached to new indices of the prefix by its `ism_template`.
pub fn ism_body(prefix: &str, age: Age) -> Value {
    json!({"policy": {
        "description": format!("ctindex: delete {prefix}-* indices {age} after their month"),
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": [], "transitions": [
                {"state_name": "delete", "conditions": {"min_index_age": format!("{}d", age.approx_days() + 31)}}
            ]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        ],
        "ism_template": [{"index_patterns": [format!("{prefix}-*")], "priority": template_priority(prefix)}]
    }})
}

/// Whether a failed probe means the API is not there at all.
fn missing_api(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<SendError>() {
        Some(SendError::Status { status, body, .. }) => {
            matches!(status, 400 | 404 | 405)
                && (body.contains("no handler") || body.contains("Incorrect HTTP method") || *status == 405)
        }
        _ => false,
    }
}

/// Installs the retention policy where the cluster offers ILM or ISM, and
/// reads it back. The template must then name an ILM policy (see
/// [`super::template::install`]).
pub async fn install_policy(cluster: &Cluster, prefix: &str, age: Age) -> Result<Policy> {
    let name = policy_name(prefix);
    match cluster.flavor {
        Flavor::Elasticsearch => {
            if let Err(e) = cluster.json(Method::GET, "/_ilm/status", None).await {
                if missing_api(&e) {
                    return Ok(Policy::Unsupported(format!(
                        "{} {} has no index lifecycle management (ILM)",
                        cluster.flavor.name(),
                        cluster.version
                    )));
                }
                return Err(e.context("cannot ask whether the cluster has ILM"));
            }
            let path = format!("/_ilm/policy/{name}");
            cluster
                .json(Method::PUT, &path, Some(&ilm_body(age)))
                .await
                .with_context(|| format!("cannot install the ILM policy {name}"))?;
            let back = cluster.json(Method::GET, &path, None).await?;
            if back[&name]["policy"]["phases"]["delete"].is_null() {
                bail!("the ILM policy {name} did not read back as installed: {back}");
            }
            Ok(Policy::Ilm(name))
        }
        Flavor::OpenSearch => {
            let path = format!("/_plugins/_ism/policies/{name}");
            let existing = match cluster.json(Method::GET, &path, None).await {
                Ok(v) => Some(v),
                Err(e) if missing_api(&e) => {
                    return Ok(Policy::Unsupported(format!(
                        "{} {} has no index state management (ISM)",
                        cluster.flavor.name(),
                        cluster.version
                    )));
                }
                Err(e) if e.downcast_ref::<SendError>().and_then(SendError::status) == Some(404) => None,
                Err(e) => return Err(e.context("cannot ask whether the cluster has ISM")),
            };
            // An update must name the version it replaces.
            let put = match existing
                .as_ref()
                .and_then(|v| Some((v["_seq_no"].as_u64()?, v["_primary_term"].as_u64()?)))
            {
                Some((seq, term)) => format!("{path}?if_seq_no={seq}&if_primary_term={term}"),
                None => path.clone(),
            };
            cluster
                .json(Method::PUT, &put, Some(&ism_body(prefix, age)))
                .await
                .with_context(|| format!("cannot install the ISM policy {name}"))?;
            let back = cluster.json(Method::GET, &path, None).await?;
            if back["policy"]["ism_template"].is_null() {
                bail!("the ISM policy {name} did not read back as installed: {back}");
            }
            Ok(Policy::Ism(name))
        }
    }
}

/// Shown when a policy cannot be installed: what to do instead.
pub fn unsupported_hint(prefix: &str, age: Age) -> String {
    format!(
        "no retention policy installed; run `ctindex prune --index-prefix {prefix} --older-than {}` \
         from cron, or `sync --retention`, which do the same by the month in the index names",
        if age.days == 0 {
            format!("{}mo", age.months)
        } else {
            format!("{}d", age.approx_days())
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> i64 {
        crate::date::parse_day(text).unwrap()
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("13mo"), Ok(Age { months: 13, days: 0 }));
        assert_eq!(parse_age("2y"), Ok(Age { months: 24, days: 0 }));
        assert_eq!(parse_age("400d"), Ok(Age { months: 0, days: 400 }));
        assert_eq!(parse_age("8w"), Ok(Age { months: 0, days: 56 }));
        assert_eq!(parse_age(" 6 months "), Ok(Age { months: 6, days: 0 }));
        for bad in ["", "13", "13m", "0mo", "-1mo", "13 parsecs", "99999999999y"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cutoffs_follow_the_calendar() {
        let months = |m| Age { months: m, days: 0 };
        assert_eq!(cutoff_day(day("2026-12-02"), months(13)), day("2025-11-02"));
        // The day is clamped to the shorter month.
        assert_eq!(cutoff_day(day("2026-03-31"), months(1)), day("2026-02-28"));
        assert_eq!(cutoff_day(day("2024-01-15"), months(2)), day("2023-11-15"));
        assert_eq!(
            cutoff_day(day("2026-12-02"), Age { months: 0, days: 2 }),
            day("2026-11-30")
        );
    }

    #[test]
    fn only_the_prefix_months_wholly_before_the_cutoff_expire() {
        let today = day("2026-12-02");
        let cutoff = cutoff_day(today, Age { months: 13, days: 0 }); // 2025-11-02
        for (index, want) in [
            ("ct-2025.10", true),  // ends 2025-11-01, before the cut-off
            ("ct-2025.11", false), // partly after it
            ("ct-2019.01", true),
            ("ct-2026.12", false), // the current month
            ("ct-2027.01", false), // the future
            ("ct-undated", false),
            ("ct-prod-2019.01", false), // another prefix
            ("ct-2019.13", false),
            ("ct-2019-01", false),
            ("other-2019.01", false),
        ] {
            assert_eq!(expired("ct", index, cutoff, today), want, "{index}");
        }
        // Never the current month, whatever the cut-off.
        assert!(!expired("ct", "ct-2026.12", today + 400, today));
    }

    #[test]
    fn policies_name_the_prefix_and_the_age() {
        let age = Age { months: 13, days: 0 };
        assert_eq!(ilm_body(age)["policy"]["phases"]["delete"]["min_age"], json!("434d"));
        let ism = ism_body("ct", age);
        assert_eq!(ism["policy"]["ism_template"][0]["index_patterns"], json!(["ct-*"]));
        assert_eq!(ism["policy"]["states"][1]["actions"], json!([{"delete": {}}]));
    }
}
