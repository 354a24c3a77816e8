//! Sources: where input files come from, and reading them.
//!
//! Owns turning the SOURCE arguments into a stream of [`SourceObject`]s and
//! reading one object's bytes: [`local`] walks folders of any depth in name
//! order (time order in the CloudTrail layout), [`s3`] lists buckets with the
//! CloudTrail layout in mind; both apply the same [`Selection`] through
//! [`layout`]. It knows which names are candidate log files and which are
//! digests; it does not look inside.
//!
//! When a run's sources list no file at all, [`list_all`] says so with
//! what each source holds ([`NothingMatched`], from a [`Seen`] survey):
//! the accounts, regions and days there are.
//!
//! Invariant: every object listed is either sent on to be read or reported
//! as skipped with its name; local walking never stops at one bad entry.

pub mod aws_errors;
pub mod layout;
pub mod local;
pub mod notification;
pub mod s3;
pub mod shard;
pub mod sqs;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

pub use layout::Selection;
use s3::S3;

/// One input file.
#[derive(Debug, Clone)]
pub struct SourceObject {
    /// What messages call it: the path as found.
    pub name: Arc<str>,
    pub size: u64,
    /// What changes when the object is rewritten: the ETag in S3, size and
    /// modification time locally. Sync state remembers it.
    pub version: String,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    S3 { s3: Arc<S3>, bucket: String, key: String },
}

/// What listing finds.
#[derive(Debug)]
pub enum Listed {
    Object(SourceObject),
    /// A CloudTrail digest file: skipped on purpose, it holds no events.
    Digest(Arc<str>),
    /// An entry that could not be listed.
    Unreadable {
        name: Arc<str>,
        reason: String,
    },
}

/// One SOURCE argument, with what to read of it.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file or folder (a mirror of the S3 layout, or any folder).
    Local { path: PathBuf, selection: Arc<Selection> },
    /// `s3://bucket/prefix`.
    S3 {
        s3: Arc<S3>,
        bucket: String,
        /// Empty, a folder (ending in `/`), or one object's key.
        prefix: String,
        selection: Arc<Selection>,
    },
    /// Objects named by an earlier sync that could not be read then: read
    /// again without listing.
    Known(Vec<SourceObject>),
}

/// Why an object could not be read: it is not there (any more). The text
/// says which object and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Missing(pub String);

/// What one source's listing sent on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    /// Files to read, and entries that could not be listed.
    pub files: u64,
    /// Digest files (skipped: they hold no events).
    pub digests: u64,
    /// The receiver went away before the end: what was sent is a part.
    pub stopped: bool,
}

/// What a source holds, whatever the selection: said when nothing matched.
///
/// Accounts are noted wherever found; regions only in the accounts the
/// selection wants, days only in the accounts and regions it wants (so each
/// says what the criterion before it left to choose from).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Candidate log files seen (S3: only where objects were listed; a day
    /// folder found by its name counts for its days, not here).
    pub files: u64,
    pub digests: u64,
    pub accounts: BTreeSet<String>,
    pub regions: BTreeSet<String>,
    /// The first and last delivery day seen (days since 1970-01-01).
    pub first_day: Option<i64>,
    pub last_day: Option<i64>,
    /// S3: the folders beside an empty prefix (a typo in it shows there).
    pub nearby: Vec<String>,
    /// The look stopped early (too many folders or requests): a part.
    pub partial: bool,
}

impl Seen {
    /// Notes a file or folder at `place`, with its delivery day; false when
    /// the selection's accounts or regions rule it out (nothing below it is
    /// worth looking at).
    pub fn note(&mut self, place: &layout::Place<'_>, day: Option<i64>, selection: &Selection) -> bool {
        if let Some(account) = place.account {
            self.accounts.insert(account.to_string());
            if !selection.wants_account(account) {
                return false;
            }
        }
        // Digests hold no events: their regions and days are not the trail's.
        if place.kind == Some("CloudTrail-Digest") {
            return true;
        }
        if let Some(region) = place.region {
            self.regions.insert(region.to_string());
            if !selection.wants_region(region) {
                return false;
            }
        }
        if let Some(day) = day {
            self.first_day = Some(self.first_day.map_or(day, |d| d.min(day)));
            self.last_day = Some(self.last_day.map_or(day, |d| d.max(day)));
        }
        true
    }

    /// Notes a file, by name.
    pub fn note_file(&mut self, name: &str, selection: &Selection) {
        if is_digest(name) {
            self.digests += 1;
            return;
        }
        let place = layout::Place::of_file(name);
        let day = match place.scope(name) {
            Some(_) => place.delivery_day(),
            None => layout::key_day(name),
        };
        self.files += 1;
        self.note(&place, day, selection);
    }

    /// Whether no log file was found: no file, no region, no day (an
    /// account folder may hold digests only).
    pub fn is_empty(&self) -> bool {
        self.files == 0 && self.regions.is_empty() && self.first_day.is_none()
    }

    /// Why `selection` matched nothing here, and what there is, in words:
    /// e.g. `no file in regions us-east1; regions seen: eu-west-1, us-east-1`.
    pub fn explain(&self, selection: &Selection) -> String {
        let mut text = self.why(selection);
        if self.partial {
            text.push_str(" (from a partial look: there may be more)");
        }
        text
    }

    fn why(&self, selection: &Selection) -> String {
        let days = selection.days;
        let accounts_failed = !selection.accounts.is_empty()
            && !self.accounts.is_empty()
            && selection.accounts.is_disjoint(&self.accounts);
        if accounts_failed {
            return format!(
                "no file in accounts {}; accounts seen: {}",
                list(selection.accounts.iter()),
                list(self.accounts.iter())
            );
        }
        if self.is_empty() {
            let mut text = "no log file in it (.json, .json.gz, .ndjson, .jsonl, in folders of any depth)".to_string();
            if self.digests > 0 {
                text.push_str(&format!("; only {} digest file(s), which hold no events", self.digests));
            }
            if !self.nearby.is_empty() {
                text.push_str(&format!("; beside it: {}", list(self.nearby.iter())));
            }
            return text;
        }
        let regions_failed =
            !selection.regions.is_empty() && !self.regions.is_empty() && selection.regions.is_disjoint(&self.regions);
        if regions_failed {
            return format!(
                "no file in regions {}; regions seen: {}",
                list(selection.regions.iter()),
                list(self.regions.iter())
            );
        }
        let seen_days = self.days_text();
        let days_failed = match (self.first_day, self.last_day) {
            (Some(first), Some(last)) => {
                !days.is_open() && (days.from.is_some_and(|f| f > last) || days.to.is_some_and(|t| t < first))
            }
            _ => false,
        };
        if days_failed {
            return format!("no file {}; {seen_days}", days_text(days));
        }
        // No one criterion explains it (a gap in the days, or criteria that
        // each match alone): all of them, and all that was seen.
        let mut asked = Vec::new();
        if !selection.accounts.is_empty() {
            asked.push(format!("accounts {}", list(selection.accounts.iter())));
        }
        if !selection.regions.is_empty() {
            asked.push(format!("regions {}", list(selection.regions.iter())));
        }
        if !days.is_open() {
            asked.push(format!("days {}", days_text(days)));
        }
        let mut seen = Vec::new();
        if !self.accounts.is_empty() {
            seen.push(format!("accounts seen: {}", list(self.accounts.iter())));
        }
        if !self.regions.is_empty() {
            seen.push(format!("regions seen: {}", list(self.regions.iter())));
        }
        if self.first_day.is_some() {
            seen.push(seen_days);
        }
        if self.files > 0 && self.accounts.is_empty() {
            seen.push(format!("{} log file(s) outside the CloudTrail layout", self.files));
        }
        let asked = match asked.is_empty() {
            true => "the selection".to_string(),
            false => asked.join(", "),
        };
        match seen.is_empty() {
            true => format!("no file matched {asked}"),
            false => format!("no file matched {asked}; {}", seen.join("; ")),
        }
    }

    fn days_text(&self) -> String {
        match (self.first_day, self.last_day) {
            (Some(first), Some(last)) if first == last => format!("days seen: {}", crate::date::day_text(first)),
            (Some(first), Some(last)) => {
                format!(
                    "days seen: {} .. {}",
                    crate::date::day_text(first),
                    crate::date::day_text(last)
                )
            }
            _ => "no days seen".into(),
        }
    }
}

/// `from X to Y`, `from X`, `to Y`.
fn days_text(days: layout::Days) -> String {
    match (days.from, days.to) {
        (Some(f), Some(t)) => format!("from {} to {}", crate::date::day_text(f), crate::date::day_text(t)),
        (Some(f), None) => format!("from {}", crate::date::day_text(f)),
        (None, Some(t)) => format!("to {}", crate::date::day_text(t)),
        (None, None) => "on any day".into(),
    }
}

/// Names, comma-separated: at most 12, then how many in all.
fn list<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = names.len();
    let shown: Vec<&str> = names.take(12).map(String::as_str).collect();
    match total > shown.len() {
        true => format!("{} … ({total} in all)", shown.join(", ")),
        false => shown.join(", "),
    }
}

/// A run whose sources listed no file to read (for `import` and `export`;
/// `sync` finding nothing new is not this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NothingMatched {
    /// Each source (as given) and why nothing in it matched.
    pub sources: Vec<(String, String)>,
}

impl fmt::Display for NothingMatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sources.as_slice() {
            [(source, why)] => write!(f, "nothing matched in {source}: {why}"),
            sources => {
                write!(f, "nothing matched in any of the {} sources: ", sources.len())?;
                for (i, (source, why)) in sources.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{source}: {why}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for NothingMatched {}

/// Lists `sources` in turn into `tx`, until `stopped()` says to stop.
///
/// With `require_match` (import, export; not sync, whose windows may
/// rightly hold nothing new), a run that lists no file to read from any
/// source fails with [`NothingMatched`], which says what each source holds;
/// when only some sources list nothing, each of those gets a warning. A
/// stop (or the receiver going away) is never "nothing matched".
pub async fn list_all(
    sources: &[Source],
    tx: &mpsc::Sender<Listed>,
    require_match: bool,
    stopped: impl Fn() -> bool,
) -> Result<()> {
    let mut matched = false;
    let mut empty = Vec::new();
    for source in sources {
        if stopped() {
            return Ok(());
        }
        let listing = source.list_counted(tx).await?;
        if listing.stopped {
            return Ok(());
        }
        if listing.files > 0 {
            matched = true;
        } else {
            empty.push(source);
        }
    }
    if !require_match || empty.is_empty() || stopped() || tx.is_closed() {
        return Ok(());
    }
    let mut unmatched = Vec::new();
    for source in empty {
        let why = match source.survey().await {
            Ok(seen) => seen.explain(&source.selection()),
            Err(e) => format!("no file matched, and what is there could not be listed: {e:#}"),
        };
        unmatched.push((source.name(), why));
    }
    if matched {
        for (source, why) in unmatched {
            tracing::warn!("{source}: nothing matched: {why}");
        }
        return Ok(());
    }
    Err(NothingMatched { sources: unmatched }.into())
}

/// Whether a read failed because the object is gone.
pub fn is_missing(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<Missing>())
}

impl Source {
    /// Parses a SOURCE argument: `s3://…` (needs the S3 client) or a local
    /// path, which must exist.
    pub fn parse(arg: &str, s3: Option<&Arc<S3>>, selection: Arc<Selection>) -> Result<Source> {
        if arg.starts_with("s3://") {
            let (bucket, prefix) = s3::parse_url(arg)?;
            let s3 = s3.context("internal: S3 source without an S3 client")?.clone();
            return Ok(Source::S3 {
                s3,
                bucket,
                prefix,
                selection,
            });
        }
        let path = PathBuf::from(arg);
        std::fs::metadata(&path).with_context(|| format!("source {arg} cannot be read (is the path right?)"))?;
        Ok(Source::Local { path, selection })
    }

    /// A stable name for the source, for sync state: the normalised S3 URL,
    /// or the canonical local path.
    pub fn id(&self) -> String {
        match self {
            Source::Local { path, .. } => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            Source::Known(_) => "objects to read again".into(),
        }
    }

    /// The source as the user gave it (normalised for S3), for messages.
    pub fn name(&self) -> String {
        match self {
            Source::Local { path, .. } => path.display().to_string(),
            other => other.id(),
        }
    }

    /// What is read of the source.
    pub fn selection(&self) -> Arc<Selection> {
        match self {
            Source::Local { selection, .. } | Source::S3 { selection, .. } => selection.clone(),
            Source::Known(_) => Arc::default(),
        }
    }

    /// The same source with another selection.
    pub fn with_selection(self, selection: Arc<Selection>) -> Source {
        match self {
            Source::Local { path, .. } => Source::Local { path, selection },
            Source::S3 { s3, bucket, prefix, .. } => Source::S3 {
                s3,
                bucket,
                prefix,
                selection,
            },
            known => known,
        }
    }

    /// The object of this source with the name `name` (as listing names it),
    /// to read without listing; None when the name is not of this source.
    pub fn object_named(&self, name: &str, size: u64, version: &str) -> Option<SourceObject> {
        let location = match self {
            Source::Local { .. } => Location::File(PathBuf::from(name)),
            Source::S3 { s3, bucket, .. } => {
                let (b, key) = name.strip_prefix("s3://")?.split_once('/')?;
                if b != bucket {
                    return None;
                }
                Location::S3 {
                    s3: s3.clone(),
                    bucket: bucket.clone(),
                    key: key.to_string(),
                }
            }
            Source::Known(_) => return None,
        };
        Some(SourceObject {
            name: name.into(),
            size,
            version: version.to_string(),
            location,
        })
    }

    /// Lists the source's candidate files into `tx`.
    /// Returns early (Ok) when the receiver is gone.
    pub async fn list(&self, tx: &mpsc::Sender<Listed>) -> Result<()> {
        self.list_counted(tx).await.map(drop)
    }

    /// Lists the source's candidate files into `tx`, and says how many.
    /// Returns early (Ok, `stopped`) when the receiver is gone.
    pub async fn list_counted(&self, tx: &mpsc::Sender<Listed>) -> Result<Listing> {
        match self {
            Source::Local { path, selection } => local::list(path.clone(), selection.clone(), tx.clone()).await,
            Source::S3 {
                s3,
                bucket,
                prefix,
                selection,
            } => s3.list(bucket, prefix, selection, tx).await,
            Source::Known(objects) => {
                let mut listing = Listing::default();
                for object in objects {
                    if tx.send(Listed::Object(object.clone())).await.is_err() {
                        listing.stopped = true;
                        break;
                    }
                    listing.files += 1;
                }
                Ok(listing)
            }
        }
    }

    /// What the source holds whatever the selection (accounts, regions,
    /// days), to say what there is when nothing matched. Bounded: a local
    /// walk of the folders the selection's accounts and regions allow, a
    /// few LIST requests per S3 region.
    pub async fn survey(&self) -> Result<Seen> {
        match self {
            Source::Local { path, selection } => local::survey(path.clone(), selection.clone()).await,
            Source::S3 {
                s3,
                bucket,
                prefix,
                selection,
            } => s3.survey(bucket, prefix, selection).await,
            Source::Known(_) => Ok(Seen::default()),
        }
    }
}

/// True for names ctindex reads when walking a folder.
pub fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    [".json", ".ndjson", ".jsonl"].iter().any(|ext| stem.ends_with(ext))
}

/// True for CloudTrail digest files (by folder or by name).
pub fn is_digest(path: &str) -> bool {
    path.split(['/', '\\']).any(|part| part == "CloudTrail-Digest") || path.contains("_CloudTrail-Digest_")
}

impl SourceObject {
    /// Reads the whole object. The permit, if any, holds the object's share of
    /// the download budget: keep it until the bytes are decoded.
    pub async fn read(&self) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>)> {
        match &self.location {
            Location::File(path) => Ok((local::read(&self.name, path).await?, None)),
            Location::S3 { s3, bucket, key } => {
                let (bytes, permit) = s3.read(bucket, key, self.size).await?;
                Ok((bytes, Some(permit)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, want) in [
            ("123_CloudTrail_us-east-1_20240101T0000Z_abc.json.gz", true),
            ("events.JSON", true),
            ("events.ndjson", true),
            ("events.jsonl.gz", true),
            ("events.json.bak", false),
            ("rule.yml", false),
            ("events.gz", false),
        ] {
            assert_eq!(is_candidate(name), want, "{name}");
        }
        assert!(is_digest("AWSLogs/1/CloudTrail-Digest/us-east-1/2024/01/01/x.json.gz"));
        assert!(is_digest(
            "x/123_CloudTrail-Digest_us-east-1_trail_us-east-1_20240101T000000Z.json.gz"
        ));
        assert!(!is_digest("AWSLogs/1/CloudTrail/us-east-1/2024/01/01/x.json.gz"));
    }

    #[tokio::test]
    async fn walks_in_name_order_skipping_digests_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "b/2.json.gz",
            "a/1.json",
            "a/CloudTrail-Digest/d.json.gz",
            ".hidden/x.json",
            "a/notes.txt",
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"{}").unwrap();
        }
        let (tx, mut rx) = mpsc::channel(16);
        Source::Local {
            path: root.to_path_buf(),
            selection: Arc::default(),
        }
        .list(&tx)
        .await
        .unwrap();
        drop(tx);
        let mut seen = Vec::new();
        while let Some(listed) = rx.recv().await {
            seen.push(match listed {
                Listed::Object(o) => format!("file {}", o.name.strip_prefix(root.to_str().unwrap()).unwrap()),
                Listed::Digest(n) => {
                    format!("digest {}", n.strip_prefix(root.to_str().unwrap()).unwrap())
                }
                Listed::Unreadable { name, .. } => format!("unreadable {name}"),
            });
        }
        assert_eq!(
            seen,
            [
                "file /a/1.json",
                "digest /a/CloudTrail-Digest/d.json.gz",
                "file /b/2.json.gz"
            ]
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn local_walks_apply_the_selection_and_skip_whole_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mirror");
        let file = |acct: &str, region: &str, date: &str| {
            format!("{acct}/CloudTrail/{region}/{date}/{acct}_CloudTrail_{region}_x.json.gz")
        };
        for rel in [
            format!("AWSLogs/{}", file("111111111111", "us-east-1", "2024/03/01")),
            format!("AWSLogs/{}", file("111111111111", "us-east-1", "2024/03/02")),
            format!("AWSLogs/{}", file("111111111111", "eu-west-1", "2024/03/02")),
            format!("AWSLogs/o-org1/{}", file("222222222222", "us-east-1", "2024/03/02")),
            format!("AWSLogs/o-org1/{}", file("444444444444", "us-east-1", "2024/03/02")),
            format!("AWSLogs/{}", file("333333333333", "us-east-1", "2024/03/02")),
            "notes/loose.json".to_string(),
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"{}").unwrap();
        }
        // Walking into these folders would report the broken links as unreadable.
        for skipped in [
            "AWSLogs/333333333333/CloudTrail/us-east-1/2024/03/broken",
            "AWSLogs/o-org1/444444444444/broken",
            "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/01/broken",
            "AWSLogs/111111111111/CloudTrail/eu-west-1/broken",
        ] {
            std::os::unix::fs::symlink(dir.path().join("nowhere"), root.join(skipped)).unwrap();
        }
        let selection = Selection {
            accounts: ["111111111111".to_string(), "222222222222".to_string()].into(),
            regions: ["us-east-1".to_string()].into(),
            days: layout::Days {
                from: crate::date::parse_day("2024-03-02").ok(),
                to: None,
            },
            windows: Default::default(),
            digests: false,
        };
        let (tx, mut rx) = mpsc::channel(16);
        Source::Local {
            path: root.clone(),
            selection: Arc::new(selection),
        }
        .list(&tx)
        .await
        .unwrap();
        drop(tx);
        let mut seen = Vec::new();
        while let Some(listed) = rx.recv().await {
            seen.push(match listed {
                Listed::Object(o) => o.name.strip_prefix(root.to_str().unwrap()).unwrap().to_string(),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            seen,
            [
                format!("/AWSLogs/{}", file("111111111111", "us-east-1", "2024/03/02")),
                format!("/AWSLogs/o-org1/{}", file("222222222222", "us-east-1", "2024/03/02")),
                "/notes/loose.json".to_string(),
            ]
        );
    }

    /// A mirror with two accounts (one only digests), two regions and three days.
    fn mirror() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/09/a.json.gz",
            "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/11/b.json.gz",
            "AWSLogs/111111111111/CloudTrail/eu-west-1/2023/07/10/c.json.gz",
            "AWSLogs/222222222222/CloudTrail-Digest/ap-south-1/2024/01/01/d.json.gz",
        ] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"{}").unwrap();
        }
        dir
    }

    fn selection(accounts: &[&str], regions: &[&str], from: Option<&str>, to: Option<&str>) -> Arc<Selection> {
        Arc::new(Selection {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            days: layout::Days {
                from: from.map(|d| crate::date::parse_day(d).unwrap()),
                to: to.map(|d| crate::date::parse_day(d).unwrap()),
            },
            windows: Default::default(),
            digests: false,
        })
    }

    /// Lists the sources as a run does; the files sent and the outcome.
    async fn run(sources: &[Source], require_match: bool) -> (usize, Result<()>) {
        let (tx, mut rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(listed) = rx.recv().await {
                n += usize::from(matches!(listed, Listed::Object(_)));
            }
            n
        });
        let result = list_all(sources, &tx, require_match, || false).await;
        drop(tx);
        (reader.await.unwrap(), result)
    }

    fn nothing_matched(result: Result<()>) -> String {
        let error = result.expect_err("nothing matched, yet Ok");
        let nothing = error.downcast_ref::<NothingMatched>().expect("a NothingMatched");
        let text = nothing.to_string();
        assert_eq!(format!("{error:#}"), text);
        assert!(!text.contains('\n'), "{text}");
        text
    }

    #[tokio::test]
    async fn a_selection_that_matches_nothing_says_what_is_there() {
        let dir = mirror();
        let root = dir.path().to_path_buf();
        let local = |selection| Source::Local {
            path: root.clone(),
            selection,
        };
        let name = root.display().to_string();
        for (selection, want) in [
            (
                selection(&[], &["us-east1"], None, None),
                "no file in regions us-east1; regions seen: eu-west-1, us-east-1",
            ),
            (
                selection(&["333333333333"], &[], None, None),
                "no file in accounts 333333333333; accounts seen: 111111111111, 222222222222",
            ),
            (
                selection(&[], &[], Some("2023-08-01"), Some("2023-08-31")),
                "no file from 2023-08-01 to 2023-08-31; days seen: 2023-07-09 .. 2023-07-11",
            ),
            // Regions of the accounts asked for only; days of the regions asked for only.
            (
                selection(&["111111111111"], &["eu-west-1"], Some("2023-07-11"), None),
                "no file from 2023-07-11; days seen: 2023-07-10",
            ),
            // A gap: no one criterion explains it.
            (
                selection(&[], &["us-east-1"], Some("2023-07-10"), Some("2023-07-10")),
                "no file matched regions us-east-1, days from 2023-07-10 to 2023-07-10; accounts seen: \
                 111111111111, 222222222222; regions seen: eu-west-1, us-east-1; days seen: 2023-07-09 .. 2023-07-11",
            ),
        ] {
            let (sent, result) = run(&[local(selection)], true).await;
            assert_eq!(sent, 0);
            assert_eq!(nothing_matched(result), format!("nothing matched in {name}: {want}"));
        }
        // The same selections in a sync (no match required) are fine.
        let (_, result) = run(&[local(selection(&[], &["us-east1"], None, None))], false).await;
        result.unwrap();
        // A selection that matches: no error, the files are sent.
        let (sent, result) = run(&[local(selection(&[], &["us-east-1"], None, None))], true).await;
        result.unwrap();
        assert_eq!(sent, 2);
    }

    #[tokio::test]
    async fn empty_folders_and_digests_only_match_nothing() {
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), b"x").unwrap();
        let source = |path: &std::path::Path| Source::Local {
            path: path.to_path_buf(),
            selection: Arc::default(),
        };
        let text = nothing_matched(run(&[source(empty.path())], true).await.1);
        assert!(
            text.ends_with(": no log file in it (.json, .json.gz, .ndjson, .jsonl, in folders of any depth)"),
            "{text}"
        );

        let dir = mirror();
        let digests = dir.path().join("AWSLogs/222222222222");
        let text = nothing_matched(run(&[source(&digests)], true).await.1);
        assert!(text.contains("only 1 digest file(s), which hold no events"), "{text}");

        // Two sources, one empty: a warning for it, not an error.
        let (sent, result) = run(&[source(empty.path()), source(dir.path())], true).await;
        result.unwrap();
        assert_eq!(sent, 3);
        // Two empty: both are named.
        let text = nothing_matched(run(&[source(empty.path()), source(&digests)], true).await.1);
        assert!(text.starts_with("nothing matched in any of the 2 sources: "), "{text}");
        assert!(
            text.contains(" | ") && text.contains("222222222222: no log file"),
            "{text}"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let seen = Seen {
            files: 40,
            accounts: (0..40).map(|i| format!("{i:012}")).collect(),
            partial: true,
            ..Seen::default()
        };
        let text = seen.explain(&selection(&["999999999999"], &[], None, None));
        assert!(text.contains("000000000011 … (40 in all)"), "{text}");
        assert!(!text.contains("000000000012"), "{text}");
        assert!(text.ends_with("(from a partial look: there may be more)"), "{text}");
    }
}
