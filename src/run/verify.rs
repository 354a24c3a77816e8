//! The trail check of `ctindex verify` and of `import --verify`: checks a trail's integrity with its digest files.
//!
//! Lists the sources with the same selection as import (and the digest
//! folders, and the digests of the day after `--to`, which cover the range's
//! last hour), reads every digest (from S3 with its signature in the
//! object's metadata), gets the public keys, hashes the log files the digests
//! list, and prints what [`crate::verify`] found.

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Outcome, open_selected};
use crate::cli::VerifyArgs;
use crate::config;
use crate::source::layout::Place;
use crate::source::{Listed, Location, NothingMatched, Selection, Source, SourceObject};
use crate::verify::{Check, DigestInput, DigestName, LogFound, Problem, PublicKeys, Report, content_hash, layout_key};

/// Digests read at once (small files).
const DIGEST_READS: usize = 16;

pub(crate) async fn verify(args: VerifyArgs) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let asked = config::selection(&args.s3)?;
    let (sources, _s3) = open_selected(&args.sources, &args.s3, with_digests(&asked)).await?;

    let mut digests = Vec::new();
    let mut logs = Vec::new();
    let mut unreadable = Vec::new();
    let mut empty = Vec::new();
    for source in &sources {
        let found = list(source).await?;
        if found.is_empty() {
            empty.push(source);
        }
        for item in found {
            match item {
                Listed::Object(object) => logs.push(object),
                Listed::Digest(name) => {
                    if let Some(object) = source.object_named(&name, 0, "") {
                        digests.push(object);
                    }
                }
                Listed::Unreadable { name, reason } => unreadable.push(Problem {
                    kind: "unreadable",
                    file: name.to_string(),
                    detail: reason,
                }),
            }
        }
    }
    if digests.is_empty() && logs.is_empty() && unreadable.is_empty() {
        let mut nothing = Vec::new();
        for source in empty {
            let why = match source.survey().await {
                Ok(seen) => seen.explain(&asked),
                Err(e) => format!("no file matched, and what is there could not be listed: {e:#}"),
            };
            nothing.push((source.name(), why));
        }
        return Err(NothingMatched { sources: nothing }.into());
    }

    let checked_digests = digests.len();
    let digest_inputs: Vec<DigestInput> = futures::stream::iter(digests)
        .map(|object| read_digest(object, &asked))
        .buffered(DIGEST_READS)
        .collect()
        .await;
    let keys = match &args.public_keys {
        Some(path) => PublicKeys::from_file(path)?,
        None if digest_inputs.is_empty() => PublicKeys::default(),
        None => {
            let (regions, start, end) = key_scope(&digest_inputs);
            let endpoint = args.cloudtrail_endpoint_url.as_deref();
            PublicKeys::from_api(&args.s3_aws(), &regions, start - 3600, end + 3600, endpoint)
                .await
                .context("cannot get CloudTrail's public keys to check the digests' signatures")?
        }
    };
    tracing::debug!("{} public keys ({})", keys.len(), keys.source());

    let wanted = asked.clone();
    let check = Check::new(digest_inputs, &keys, move |key| wanted.wants_file(key));
    let workers = args
        .workers
        .map(usize::from)
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let found: Vec<LogFound> = futures::stream::iter(logs)
        .map(|object| {
            let expected = check.expected(&object.name);
            let bytes = &bytes;
            async move {
                let name = object.name.to_string();
                if !expected {
                    return LogFound { name, hash: None };
                }
                LogFound {
                    name,
                    hash: Some(hash_log(object, bytes).await),
                }
            }
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    let no_digests = report_no_digests(&args.sources, checked_digests);
    let mut report = check.finish(found);
    report.notes.extend(no_digests);
    report.problems.extend(unreadable);
    report.problems.sort();

    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot write the report")?
        );
    } else {
        print!(
            "{}",
            text(&report, seconds, bytes.load(std::sync::atomic::Ordering::Relaxed))
        );
    }
    Ok(match report.problems.is_empty() {
        true => Outcome::Clean,
        false => Outcome::Partial,
    })
}

/// `import --verify` and `sync --verify`: the digests of the sources'
/// selection read and checked (signatures and chain, not the log files:
/// the import hashes those as it decodes them), and what they list.
///
/// `sync` gives the days it needs instead of `--from`/`--to` (which it does
/// not take): from `--since`, and per digest folder from its window
/// ([`crate::sync::digest_windows`]), open-ended; its local sources are
/// named as sync names them (absolute), so that the windows apply.
pub(crate) async fn integrity(
    args: &crate::cli::ImportArgs,
    sync: Option<SyncDays>,
) -> Result<crate::verify::Integrity> {
    let mut asked = config::selection(&args.s3)?;
    if let Some(days) = &sync {
        asked.days = crate::source::layout::Days {
            from: days.since,
            to: None,
        };
        asked.windows = days.windows.clone();
    }
    let (sources, _s3) = open_selected(&args.sources, &args.s3, with_digests(&asked)).await?;
    let mut digests = Vec::new();
    for source in sources {
        let source = match sync {
            Some(_) => crate::sync::keyed(source, "").0,
            None => source,
        };
        for item in list(&source).await? {
            if let Listed::Digest(digest) = item
                && let Some(object) = source.object_named(&digest, 0, "")
            {
                digests.push(object);
            }
        }
    }
    if let Some(note) = report_no_digests(&args.sources, digests.len()) {
        tracing::warn!("--verify: {note}: every event is stamped unverified");
    }
    let inputs: Vec<DigestInput> = futures::stream::iter(digests)
        .map(|object| read_digest(object, &asked))
        .buffered(DIGEST_READS)
        .collect()
        .await;
    let keys = match &args.verify.public_keys {
        Some(path) => PublicKeys::from_file(path)?,
        None if inputs.is_empty() => PublicKeys::default(),
        None => {
            let (regions, start, end) = key_scope(&inputs);
            let aws = crate::aws::AwsOptions {
                profile: args.s3.aws.profile.clone(),
                region: args.s3.aws.region.clone(),
            };
            let endpoint = args.verify.cloudtrail_endpoint_url.as_deref();
            PublicKeys::from_api(&aws, &regions, start - 3600, end + 3600, endpoint)
                .await
                .context("cannot get CloudTrail's public keys to check the digests' signatures")?
        }
    };
    let wanted = asked.clone();
    let check = Check::new(inputs, &keys, move |key| wanted.wants_file(key));
    let integrity = check.integrity();
    // The digests' own problems (the log files' are found as they are read).
    let report = check.finish(Vec::new());
    for problem in report.problems.iter().filter(|p| p.kind.starts_with("digest-")) {
        tracing::warn!(
            "--verify: {}\t{}\t{}: the log files it lists are stamped unverified",
            problem.kind,
            problem.file,
            problem.detail
        );
    }
    Ok(integrity)
}

/// The days `sync --verify` reads digests of (see [`integrity`]).
pub(crate) struct SyncDays {
    pub(crate) since: Option<i64>,
    /// Digest folder (scope) → its first day.
    pub(crate) windows: std::collections::HashMap<String, i64>,
}

/// What is listed to check `asked`: its log files and the digest folders,
/// and the day after `--to`, as the digest that covers the last hour of
/// `--to` is delivered the day after.
fn with_digests(asked: &Selection) -> Arc<Selection> {
    let mut listed = asked.clone();
    listed.digests = true;
    listed.days.to = asked.days.to.map(|to| to + 1);
    Arc::new(listed)
}

/// A note when no digest was found at all: validation off, or a source
/// below the trail's root that leaves `CloudTrail-Digest/` out.
fn report_no_digests(sources: &[String], digests: usize) -> Option<String> {
    (digests == 0).then(|| {
        let below = sources.iter().any(|s| s.contains("/CloudTrail/") || s.ends_with("/CloudTrail"));
        format!(
            "no digest file found: log file integrity validation was off for this trail{}",
            match below {
                true => ", or the source is inside CloudTrail/ (give the trail's root, so that CloudTrail-Digest/ is read too)",
                false => "",
            }
        )
    })
}

/// Lists one source whole.
async fn list(source: &Source) -> Result<Vec<Listed>> {
    let (tx, mut rx) = mpsc::channel(1024);
    let listing = async move {
        let result = source.list_counted(&tx).await;
        drop(tx);
        result
    };
    let collect = async {
        let mut found = Vec::new();
        while let Some(item) = rx.recv().await {
            found.push(item);
        }
        found
    };
    let (listing, found) = tokio::join!(listing, collect);
    listing.with_context(|| format!("cannot list {}", source.name()))?;
    Ok(found)
}

/// Reads a digest, and from S3 its signature.
async fn read_digest(object: SourceObject, asked: &crate::source::Selection) -> DigestInput {
    let name = object.name.to_string();
    let in_range = asked.wants_file(&name);
    let (bytes, metadata_signature, from_s3) = match &object.location {
        Location::S3 { s3, bucket, key } => match s3.read_with_metadata(bucket, key).await {
            Ok((bytes, metadata)) => (Ok(bytes), metadata.get("signature").cloned(), true),
            Err(e) => (Err(format!("{e:#}")), None, true),
        },
        Location::File(_) => match object.read().await {
            Ok((bytes, _)) => (Ok(bytes), None, false),
            Err(e) => (Err(format!("{e:#}")), None, false),
        },
    };
    DigestInput {
        name,
        bytes,
        metadata_signature,
        from_s3,
        in_range,
    }
}

/// Reads a log file and hashes its uncompressed content.
async fn hash_log(object: SourceObject, bytes: &std::sync::atomic::AtomicU64) -> Result<String, String> {
    let (data, permit) = object.read().await.map_err(|e| format!("{e:#}"))?;
    bytes.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let hash = tokio::task::spawn_blocking(move || content_hash(&data))
        .await
        .map_err(|e| format!("the hashing task failed: {e}"))?
        .map_err(|e| format!("cannot uncompress: {e}"));
    drop(permit);
    hash
}

/// The regions to ask for keys (each digest's region and its trail's home
/// region) and the digests' first and last end (seconds since 1970).
fn key_scope(digests: &[DigestInput]) -> (Vec<String>, i64, i64) {
    let mut regions = std::collections::BTreeSet::new();
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    for digest in digests {
        let Some(key) = layout_key(&digest.name) else { continue };
        if let Some(region) = Place::of_file(key).region {
            regions.insert(region.to_string());
        }
        if let Some(name) = DigestName::parse(key) {
            if let Some((_, home)) = name.chain.rsplit_once('_') {
                regions.insert(home.to_string());
            }
            if let Some(seconds) = compact_time(&name.end) {
                start = start.min(seconds);
                end = end.max(seconds);
            }
        }
    }
    if start > end {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        (start, end) = (now - 86_400, now);
    }
    (regions.into_iter().collect(), start, end)
}

/// Seconds since 1970 of `YYYYMMDDTHHMMSSZ`.
fn compact_time(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let days = crate::date::day(
        number(0..4)?,
        u32::try_from(number(4..6)?).ok()?,
        u32::try_from(number(6..8)?).ok()?,
    )?;
    Some(days * 86_400 + number(9..11)? * 3600 + number(11..13)? * 60 + number(13..15)?)
}

/// The report for people: counts, then each problem with its file, then notes.
fn text(report: &Report, seconds: f64, bytes: u64) -> String {
    let mut out = format!(
        "{} digests: {} valid, {} not checkable offline, {} with problems ({} backfill, {} listing no log file); \
         {} log files: {} valid; {} problems; {:.1} s, {:.1} MB hashed\n",
        report.digests,
        report.digests_valid,
        report.digests_unchecked,
        report
            .digests
            .saturating_sub(report.digests_valid + report.digests_unchecked),
        report.backfill_digests,
        report.empty_digests,
        report.log_files,
        report.log_files_valid,
        report.problems.len(),
        seconds,
        bytes as f64 / 1e6,
    );
    for chain in &report.chains {
        out.push_str(&format!(
            "  chain {}: {} digests, {} .. {}\n",
            chain.chain, chain.digests, chain.first_end, chain.last_end
        ));
    }
    if report.log_files_outside_layout > 0 {
        out.push_str(&format!(
            "  {} files outside CloudTrail's layout (AWSLogs/…) not checked\n",
            report.log_files_outside_layout
        ));
    }
    for problem in &report.problems {
        out.push_str(&format!("{}\t{}\t{}\n", problem.kind, problem.file, problem.detail));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_times() {
        assert_eq!(compact_time("19700101T000001Z"), Some(1));
        assert_eq!(compact_time("20150817T150131Z"), Some(1_439_823_691));
        assert_eq!(compact_time("2015"), None);
    }
}
