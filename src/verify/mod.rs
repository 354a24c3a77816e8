//! Trail integrity: CloudTrail's digest files, their signatures and chain,
//! and the log files they list.
//!
//! Owns the rules of AWS's "custom implementations of CloudTrail log file
//! integrity validation": a digest is signed (SHA256withRSA, hex) over
//! `digestEndTime \n digestS3Bucket/digestS3Object \n hex(SHA-256 of the
//! uncompressed digest) \n previousDigestSignature (or "null")`, with the
//! public key whose fingerprint it names; it names the digest before it
//! (key, hash of its uncompressed content, signature) and the SHA-256 of the
//! uncompressed content of each log file delivered in its hour.
//!
//! Pure: no I/O. [`Check::new`] takes the digests as read (bytes, and the
//! signature from S3 metadata when there is one) and the public keys, and
//! checks signatures and the chain; it says which log files must be hashed
//! ([`Check::expected`]); [`Check::finish`] takes the log files found with
//! their hashes and gives the [`Report`]. `run::verify` does the reading.
//!
//! Invariant: every digest and log file in the selection ends in exactly one
//! count (valid, unchecked or a problem), and every problem names its file.
//! Files are matched by their key from `AWSLogs/` on, so a local mirror, a
//! copy in another bucket and a prefix all compare alike.

pub mod keys;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use keys::PublicKeys;

/// The one algorithm CloudTrail signs digests with.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// A digest file's fields that validation reads (CloudTrail writes more).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    pub aws_account_id: Option<String>,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub previous_digest_s3_bucket: Option<String>,
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    #[serde(default)]
    pub log_files: Vec<LogFileEntry>,
}

/// One log file a digest lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    pub hash_algorithm: String,
}

/// Uncompresses a file if it is gzip (by its magic bytes); else the bytes as they are.
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 8);
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Hex SHA-256 of a file's uncompressed content (streamed: the content is
/// never held whole).
pub fn content_hash(bytes: &[u8]) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = decoder.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
    } else {
        hasher.update(bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A file's key from `AWSLogs/` on (where CloudTrail's layout starts), or
/// None outside the layout.
pub fn layout_key(name: &str) -> Option<&str> {
    if name.starts_with("AWSLogs/") {
        return Some(name);
    }
    name.find("/AWSLogs/").map(|at| &name[at + 1..])
}

/// What a digest's key says: its chain (the region folder and the name up
/// to the time: account, region, trail, home region), its end time
/// (`YYYYMMDDTHHMMSSZ`, sortable) and whether it is a `_backfill` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestName {
    pub chain: String,
    pub end: String,
    pub backfill: bool,
}

impl DigestName {
    pub fn parse(key: &str) -> Option<DigestName> {
        let (dir, file) = key.rsplit_once('/')?;
        let stem = file.strip_suffix(".json.gz").or_else(|| file.strip_suffix(".json"))?;
        let (stem, backfill) = match stem.strip_suffix("_backfill") {
            Some(stem) => (stem, true),
            None => (stem, false),
        };
        let (trail, end) = stem.rsplit_once('_')?;
        if end.len() != 16 || !end.ends_with('Z') || end.as_bytes().get(8) != Some(&b'T') {
            return None;
        }
        // The region folder: the folder without its YYYY/MM/DD.
        let mut parts = dir.rsplitn(4, '/');
        let (_, _, _) = (parts.next()?, parts.next()?, parts.next()?);
        let region_dir = parts.next()?;
        Some(DigestName {
            chain: format!("{region_dir}/{trail}"),
            end: end.to_string(),
            backfill,
        })
    }
}

/// One digest file as read.
#[derive(Debug, Clone)]
pub struct DigestInput {
    /// As listed (a path or `s3://bucket/key`), for messages.
    pub name: String,
    /// The file's bytes (gzip or not), or why it could not be read.
    pub bytes: Result<Vec<u8>, String>,
    /// From S3: the object's `x-amz-meta-signature` (None there: unsigned);
    /// None for local files (the next digest holds it).
    pub metadata_signature: Option<String>,
    /// Read from S3 (with metadata), not from a local mirror.
    pub from_s3: bool,
    /// In the selection asked for; false for the day after `--to`, read only
    /// to find the digests that cover the range's last hour (their own
    /// problems are not reported).
    pub in_range: bool,
}

/// One log file found, with the hex SHA-256 of its uncompressed content (or
/// why it could not be read), for those a digest lists.
#[derive(Debug, Clone)]
pub struct LogFound {
    pub name: String,
    pub hash: Option<Result<String, String>>,
}

/// A finding that breaks the trail's integrity, with the file it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// `log-changed`, `log-missing`, `log-not-covered`, `log-unreadable`,
    /// `digest-missing`, `digest-changed`, `digest-signature-invalid`,
    /// `digest-unknown-key`, `digest-unsigned`, `digest-invalid`,
    /// `digest-moved`, `digest-chain-broken`.
    pub kind: &'static str,
    /// The file: as listed, or (missing files) its key as a digest names it.
    pub file: String,
    pub detail: String,
}

/// What was found, counted; the problems and notes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Digests in the selection, and of them: signature and chain checked
    /// and valid; not checkable (see notes).
    pub digests: u64,
    pub digests_valid: u64,
    pub digests_unchecked: u64,
    /// Backfill digests among `digests`.
    pub backfill_digests: u64,
    /// Digests that list no log file (hours without events).
    pub empty_digests: u64,
    /// Log files in the selection, and of them: covered by a digest and
    /// matching its hash.
    pub log_files: u64,
    pub log_files_valid: u64,
    /// Log files outside CloudTrail's layout (not checkable).
    pub log_files_outside_layout: u64,
    /// Chains (account, region and trail), and where each starts and ends.
    pub chains: Vec<ChainSummary>,
    pub problems: Vec<Problem>,
    /// What could not be checked and why; chain restarts (validation or
    /// logging was off). Not problems.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    pub chain: String,
    pub digests: u64,
    pub first_end: String,
    pub last_end: String,
}

/// A digest parsed.
struct Parsed {
    input: DigestInput,
    /// From `AWSLogs/` on: where it was found, or (outside the layout) where it says it was delivered.
    key: String,
    /// Found in CloudTrail's layout (its place can be checked).
    placed: bool,
    name: Option<DigestName>,
    /// Uncompressed content and its hex SHA-256.
    hash: String,
    file: DigestFile,
}

/// The checks of the digests done, waiting for the log files' hashes.
pub struct Check {
    report: Report,
    /// Log file key → (expected hex hash, the digest that lists it).
    expected: HashMap<String, (String, String)>,
    /// Keys of log files the selection wants (`wants` of a key).
    wants_log: Box<dyn Fn(&str) -> bool + Send>,
    /// Names of the digests whose signature was checked and found valid.
    valid: HashSet<String>,
}

impl Check {
    /// Checks the digests: format, place, signature, chain. `wants_key` says
    /// whether a key (from `AWSLogs/` on) is in the selection asked for.
    pub fn new(
        digests: Vec<DigestInput>,
        keys: &PublicKeys,
        wants_key: impl Fn(&str) -> bool + Send + 'static,
    ) -> Check {
        let mut report = Report::default();
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut parsed: Vec<Parsed> = Vec::new();
        let mut valid = HashSet::new();
        for input in digests {
            if input.in_range {
                report.digests += 1;
            }
            let problem = |kind, detail: String| Problem {
                kind,
                file: input.name.clone(),
                detail,
            };
            let content = match &input.bytes {
                Ok(bytes) => gunzip(bytes).map_err(|e| format!("not gzip: {e}")),
                Err(e) => Err(e.clone()),
            };
            let file = content.and_then(|content| {
                let file = serde_json::from_slice::<DigestFile>(&content)
                    .map_err(|e| format!("not a CloudTrail digest file: {e}"))?;
                Ok((hex::encode(Sha256::digest(&content)), file))
            });
            let (hash, file) = match file {
                Ok(found) => found,
                Err(e) => {
                    if input.in_range {
                        problems.push(problem("digest-invalid", e));
                    }
                    continue;
                }
            };
            // A digest outside the layout (a loose copy) is known by the key it names.
            let placed = layout_key(&input.name).is_some();
            let key = layout_key(&input.name)
                .unwrap_or(layout_key(&file.digest_s3_object).unwrap_or(&file.digest_s3_object))
                .to_string();
            if !placed && input.in_range {
                notes.push(format!(
                    "{}: outside CloudTrail's layout (AWSLogs/…): taken for {key}, its place not checked",
                    input.name
                ));
            }
            let name = DigestName::parse(&key);
            parsed.push(Parsed {
                input,
                key,
                placed,
                name,
                hash,
                file,
            });
        }

        // Chains, each in time order; backfill digests chain among themselves
        // (as the AWS CLI's validator follows them).
        let mut chains: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, digest) in parsed.iter().enumerate() {
            let chain = match &digest.name {
                Some(name) if !name.backfill => name.chain.clone(),
                Some(name) => format!("{} (backfill)", name.chain),
                None => digest.key.clone(),
            };
            chains.entry(chain).or_default().push(i);
        }
        let by_key: HashMap<&str, usize> = parsed.iter().enumerate().map(|(i, d)| (d.key.as_str(), i)).collect();
        // The signature each digest's successor recorded for it.
        let mut successor_signature: HashMap<usize, (usize, Option<String>)> = HashMap::new();
        for (chain, members) in &mut chains {
            members.sort_by(|a, b| parsed[*a].file.digest_end_time.cmp(&parsed[*b].file.digest_end_time));
            let in_range: Vec<&usize> = members.iter().filter(|i| parsed[**i].input.in_range).collect();
            if let (Some(first), Some(last)) = (in_range.first(), in_range.last()) {
                report.chains.push(ChainSummary {
                    chain: chain.clone(),
                    digests: in_range.len() as u64,
                    first_end: parsed[**first].file.digest_end_time.clone(),
                    last_end: parsed[**last].file.digest_end_time.clone(),
                });
            }
            for (position, &i) in members.iter().enumerate() {
                let digest = &parsed[i];
                let report_it = digest.input.in_range;
                let Some(previous) = digest.file.previous_digest_s3_object.as_deref() else {
                    if position > 0 && report_it {
                        let before = &parsed[members[position - 1]].file;
                        notes.push(format!(
                            "{}: the chain starts again (no previous digest): no digest between {} and {} \
                             (validation or logging was off then)",
                            digest.input.name, before.digest_end_time, digest.file.digest_start_time
                        ));
                    }
                    continue;
                };
                let previous_key = layout_key(previous).unwrap_or(previous);
                match by_key.get(previous_key) {
                    Some(&p) => {
                        successor_signature.insert(p, (i, digest.file.previous_digest_signature.clone()));
                        let before = &parsed[p];
                        let hash = digest.file.previous_digest_hash_value.as_deref().unwrap_or("");
                        if before.input.in_range && !hash.eq_ignore_ascii_case(&before.hash) {
                            problems.push(Problem {
                                kind: "digest-changed",
                                file: before.input.name.clone(),
                                detail: format!(
                                    "its SHA-256 is {}, but the next digest ({}) recorded {hash}",
                                    before.hash, digest.input.name
                                ),
                            });
                        }
                    }
                    None if wants_key(previous_key) && report_it => problems.push(Problem {
                        kind: "digest-missing",
                        file: previous_key.to_string(),
                        detail: format!("named as the previous digest by {}, but not found", digest.input.name),
                    }),
                    None => {
                        if report_it && position == 0 {
                            notes.push(format!(
                                "{}: the chain goes on before the range ({previous_key} not checked)",
                                digest.input.name
                            ));
                        }
                    }
                }
            }
        }

        // Each digest: place, key, signature.
        for (i, digest) in parsed.iter().enumerate() {
            if !digest.input.in_range {
                continue;
            }
            let name = &digest.input.name;
            let problem = |kind, detail: String| Problem {
                kind,
                file: name.clone(),
                detail,
            };
            if digest.name.as_ref().is_some_and(|n| n.backfill) {
                report.backfill_digests += 1;
            }
            if digest.file.log_files.is_empty() {
                report.empty_digests += 1;
            }
            let claimed = layout_key(&digest.file.digest_s3_object).unwrap_or(&digest.file.digest_s3_object);
            if digest.placed && claimed != digest.key {
                problems.push(problem(
                    "digest-moved",
                    format!("it says it was delivered as {}", digest.file.digest_s3_object),
                ));
                continue;
            }
            if digest.file.digest_signature_algorithm != SIGNATURE_ALGORITHM {
                problems.push(problem(
                    "digest-invalid",
                    format!(
                        "signature algorithm {} (not {SIGNATURE_ALGORITHM})",
                        digest.file.digest_signature_algorithm
                    ),
                ));
                continue;
            }
            let recorded = successor_signature.get(&i);
            let signature = if digest.input.from_s3 {
                let Some(signature) = &digest.input.metadata_signature else {
                    problems.push(problem(
                        "digest-unsigned",
                        "no x-amz-meta-signature on the S3 object".into(),
                    ));
                    continue;
                };
                if let Some((next, Some(theirs))) = recorded
                    && !theirs.eq_ignore_ascii_case(signature)
                {
                    problems.push(problem(
                        "digest-chain-broken",
                        format!(
                            "its signature differs from the one the next digest ({}) recorded",
                            parsed[*next].input.name
                        ),
                    ));
                }
                signature.clone()
            } else {
                match recorded {
                    Some((_, Some(signature))) => signature.clone(),
                    _ => {
                        report.digests_unchecked += 1;
                        notes.push(format!(
                            "{name}: signature not checked: it is in the S3 object's metadata, which a local \
                             copy does not keep, and no later digest records it (the newest of its chain, or \
                             the one after it is missing){}",
                            if digest.name.as_ref().is_some_and(|n| n.backfill) {
                                " (a backfill digest)"
                            } else {
                                ""
                            }
                        ));
                        continue;
                    }
                }
            };
            let Some(key) = keys.get(&digest.file.digest_public_key_fingerprint) else {
                problems.push(problem(
                    "digest-unknown-key",
                    format!(
                        "no public key with fingerprint {} ({})",
                        digest.file.digest_public_key_fingerprint,
                        keys.source()
                    ),
                ));
                continue;
            };
            let message = signing_string(&digest.file, &digest.hash);
            match hex::decode(signature.trim()) {
                Ok(signature) if key.verify(message.as_bytes(), &signature) => {
                    report.digests_valid += 1;
                    valid.insert(name.clone());
                }
                Ok(_) => problems.push(problem(
                    "digest-signature-invalid",
                    format!(
                        "the signature does not match its content under key {}",
                        digest.file.digest_public_key_fingerprint
                    ),
                )),
                Err(_) => problems.push(problem("digest-signature-invalid", "the signature is not hex".into())),
            }
        }

        // What the digests list, for the log files of the selection.
        let mut expected = HashMap::new();
        for digest in &parsed {
            for entry in &digest.file.log_files {
                let key = layout_key(&entry.s3_object).unwrap_or(&entry.s3_object).to_string();
                if !wants_key(&key) {
                    continue;
                }
                if !entry.hash_algorithm.eq_ignore_ascii_case("SHA-256") {
                    problems.push(Problem {
                        kind: "digest-invalid",
                        file: digest.input.name.clone(),
                        detail: format!("{key}: hash algorithm {} (not SHA-256)", entry.hash_algorithm),
                    });
                    continue;
                }
                expected
                    .entry(key)
                    .or_insert_with(|| (entry.hash_value.to_ascii_lowercase(), digest.input.name.clone()));
            }
        }
        report.problems = problems;
        report.notes = notes;
        Check {
            report,
            expected,
            wants_log: Box::new(wants_key),
            valid,
        }
    }

    /// What `import --verify` stamps events with: the hashes the digests
    /// list, each with whether its digest proved valid (signature checked,
    /// and no problem found with it).
    pub fn integrity(&self) -> Integrity {
        let broken: HashSet<&str> = self.report.problems.iter().map(|p| p.file.as_str()).collect();
        let expected = self
            .expected
            .iter()
            .map(|(key, (hash, digest))| {
                let proven = self.valid.contains(digest) && !broken.contains(digest.as_str());
                (key.clone(), (hash.clone(), proven))
            })
            .collect();
        Integrity {
            expected,
            ..Integrity::default()
        }
    }

    /// Whether a log file (by name as listed) is listed by a digest: only
    /// those need hashing.
    pub fn expected(&self, name: &str) -> bool {
        layout_key(name).is_some_and(|key| self.expected.contains_key(key))
    }

    /// Compares the log files found with what the digests list.
    pub fn finish(mut self, logs: Vec<LogFound>) -> Report {
        let mut found = HashSet::new();
        for log in logs {
            let Some(key) = layout_key(&log.name) else {
                self.report.log_files_outside_layout += 1;
                continue;
            };
            if !(self.wants_log)(key) {
                continue;
            }
            self.report.log_files += 1;
            found.insert(key.to_string());
            let problem = |kind, detail: String| Problem {
                kind,
                file: log.name.clone(),
                detail,
            };
            match (self.expected.get(key), &log.hash) {
                (None, _) => self.report.problems.push(problem(
                    "log-not-covered",
                    "no digest lists it (validation was off, its digest is missing, or it was added later)".into(),
                )),
                (Some(_), None) => self
                    .report
                    .problems
                    .push(problem("log-unreadable", "not hashed".into())),
                (Some(_), Some(Err(e))) => self.report.problems.push(problem("log-unreadable", e.clone())),
                (Some((want, digest)), Some(Ok(hash))) if hash.eq_ignore_ascii_case(want) => {
                    let _ = digest;
                    self.report.log_files_valid += 1;
                }
                (Some((want, digest)), Some(Ok(hash))) => self.report.problems.push(problem(
                    "log-changed",
                    format!("its SHA-256 is {hash}, but {digest} lists {want}"),
                )),
            }
        }
        let mut missing: Vec<_> = self.expected.iter().filter(|(key, _)| !found.contains(*key)).collect();
        missing.sort();
        for (key, (_, digest)) in missing {
            self.report.problems.push(Problem {
                kind: "log-missing",
                file: key.clone(),
                detail: format!("listed by {digest}, but not found"),
            });
        }
        self.report.problems.sort();
        self.report.problems.dedup();
        self.report
    }
}

/// `ctindex.integrity` of an event whose file a valid digest lists, with
/// the hash its file has.
pub const VERIFIED: &str = "verified";
/// … of an event whose file no valid digest covers (yet).
pub const UNVERIFIED: &str = "unverified";
/// … of an event whose file does not match the hash its digest lists.
pub const FAILED: &str = "failed";

/// The digests' word on each log file, for `import --verify`; and the
/// events stamped, counted by stamp.
#[derive(Debug, Default)]
pub struct Integrity {
    /// Log file key (from `AWSLogs/` on) → (expected hex SHA-256, listed by
    /// a digest proved valid).
    expected: HashMap<String, (String, bool)>,
    /// `sync --verify`: every log file of the layout is hashed, and the hash
    /// of each one stamped `unverified` is kept (by name, until
    /// [`Integrity::take_kept`]), for a later sync to compare with its digest.
    keep: bool,
    /// Name → hex SHA-256 of the files stamped `unverified` (with `keep`).
    kept: std::sync::Mutex<HashMap<String, String>>,
    /// Events stamped verified, unverified, failed.
    counts: [std::sync::atomic::AtomicU64; 3],
    /// The files that failed.
    failed: std::sync::Mutex<Vec<String>>,
    /// Files of earlier syncs upgraded from `unverified`, and their events:
    /// to verified (files, events), to failed (files, events).
    upgraded: [std::sync::atomic::AtomicU64; 4],
}

impl Integrity {
    /// For `sync --verify`: hash every log file of the layout, and keep the
    /// hash of those stamped `unverified` (see [`Integrity::take_kept`]).
    pub fn keeping(self) -> Integrity {
        Integrity { keep: true, ..self }
    }

    /// Whether a file (by name as listed) is to be hashed: those a valid
    /// digest lists; with `keep`, every file of the layout.
    pub fn wants_hash(&self, name: &str) -> bool {
        layout_key(name).is_some_and(|key| self.keep || self.expected.get(key).is_some_and(|(_, proven)| *proven))
    }

    /// The stamp of a file's events, given the hex SHA-256 of its
    /// uncompressed content when [`Integrity::wants_hash`] asked for it
    /// (empty: it could not be uncompressed whole).
    pub fn stamp(&self, name: &str, hash: Option<&str>) -> &'static str {
        let want = layout_key(name).and_then(|key| self.expected.get(key));
        match (want, hash) {
            (Some((want, true)), Some(hash)) if want.eq_ignore_ascii_case(hash) => VERIFIED,
            (Some((_, true)), Some(_)) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(name.to_string());
                FAILED
            }
            (_, hash) => {
                if let Some(hash) = hash.filter(|h| self.keep && !h.is_empty()) {
                    self.kept
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_string(), hash.to_ascii_lowercase());
                }
                UNVERIFIED
            }
        }
    }

    /// The hash kept for a file stamped `unverified` (with `keep`), taken
    /// out: the sync records it with the file.
    pub fn take_kept(&self, name: &str) -> Option<String> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).remove(name)
    }

    /// The hash a digest proved valid lists for a file (by name as listed).
    pub fn proven_hash(&self, name: &str) -> Option<&str> {
        let (hash, proven) = self.expected.get(layout_key(name)?)?;
        proven.then_some(hash.as_str())
    }

    /// What the digests now say of a file stamped `unverified` before, whose
    /// content had the hex SHA-256 `kept`: `verified`, `failed`, or None
    /// while no valid digest lists it.
    pub fn judge_kept(&self, name: &str, kept: &str) -> Option<&'static str> {
        let want = self.proven_hash(name)?;
        Some(if want.eq_ignore_ascii_case(kept) {
            VERIFIED
        } else {
            FAILED
        })
    }

    /// Counts `events` events stamped `stamp`.
    pub fn count(&self, stamp: &str, events: u64) {
        let slot = match stamp {
            VERIFIED => 0,
            UNVERIFIED => 1,
            _ => 2,
        };
        self.counts[slot].fetch_add(events, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts files of earlier syncs restamped from `unverified` to `stamp`
    /// (verified or failed), and their events; a failed one is named among
    /// [`Integrity::failed_files`].
    pub fn upgraded(&self, stamp: &str, files: &[&str], events: u64) {
        let slot = if stamp == VERIFIED { 0 } else { 2 };
        self.upgraded[slot].fetch_add(files.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.upgraded[slot + 1].fetch_add(events, std::sync::atomic::Ordering::Relaxed);
        if stamp != VERIFIED {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.extend(files.iter().map(|f| f.to_string()));
        }
    }

    /// Events stamped verified, unverified and failed.
    pub fn counts(&self) -> (u64, u64, u64) {
        let get = |i: usize| self.counts[i].load(std::sync::atomic::Ordering::Relaxed);
        (get(0), get(1), get(2))
    }

    /// Files of earlier syncs upgraded from `unverified`, and their events:
    /// ((files, events) now verified, (files, events) now failed).
    pub fn upgrades(&self) -> ((u64, u64), (u64, u64)) {
        let get = |i: usize| self.upgraded[i].load(std::sync::atomic::Ordering::Relaxed);
        ((get(0), get(1)), (get(2), get(3)))
    }

    /// The files whose content did not match their digest, sorted.
    pub fn failed_files(&self) -> Vec<String> {
        let mut files = self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        files.sort();
        files
    }
}

/// The string CloudTrail signs for a digest (AWS's "data signing string").
pub fn signing_string(file: &DigestFile, content_hash: &str) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        file.digest_end_time,
        file.digest_s3_bucket,
        file.digest_s3_object,
        content_hash,
        file.previous_digest_signature.as_deref().unwrap_or("null")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names() {
        let key = "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/\
                   111122223333_CloudTrail-Digest_us-east-2_my_trail_us-east-2_20150817T150131Z.json.gz";
        let name = DigestName::parse(key).unwrap();
        assert_eq!(
            name.chain,
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/111122223333_CloudTrail-Digest_us-east-2_my_trail_us-east-2"
        );
        assert_eq!(name.end, "20150817T150131Z");
        assert!(!name.backfill);
        let backfill = key.replace("Z.json.gz", "Z_backfill.json.gz");
        let name = DigestName::parse(&backfill).unwrap();
        assert!(name.backfill);
        assert_eq!(name.end, "20150817T150131Z");
        assert_eq!(DigestName::parse("AWSLogs/x/digest.json.gz"), None);
        assert_eq!(layout_key("s3://b/p/AWSLogs/1/x"), Some("AWSLogs/1/x"));
        assert_eq!(layout_key("/m/AWSLogs/1/x"), Some("AWSLogs/1/x"));
        assert_eq!(layout_key("AWSLogs/1/x"), Some("AWSLogs/1/x"));
        assert_eq!(layout_key("/m/logs/x"), None);
    }

    #[test]
    fn hashes_are_of_the_uncompressed_content() {
        let text = b"{\"Records\":[]}";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text).unwrap();
        let gz = gz.finish().unwrap();
        let want = hex::encode(Sha256::digest(text));
        assert_eq!(content_hash(&gz).unwrap(), want);
        assert_eq!(content_hash(text).unwrap(), want);
        assert!(content_hash(&gz[..gz.len() - 4]).is_err());
    }

    /// `sync --verify` hashes every file of the layout and keeps the hash of
    /// those stamped unverified, to judge them once their digest is valid.
    #[test]
    fn kept_hashes_are_judged_by_the_digest_that_arrives_later() {
        let log = |n: u32| format!("/m/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/{n}.json.gz");
        let key = |n: u32| layout_key(&log(n)).unwrap().to_string();
        let first = Integrity {
            expected: HashMap::from([(key(1), ("aa".to_string(), true)), (key(2), ("bb".to_string(), false))]),
            ..Integrity::default()
        };
        // An import hashes only what a valid digest lists, and keeps nothing.
        assert!(first.wants_hash(&log(1)) && !first.wants_hash(&log(2)) && !first.wants_hash("/m/loose.json"));
        assert_eq!(first.stamp(&log(3), None), UNVERIFIED);
        assert_eq!(first.take_kept(&log(3)), None);
        let sync = first.keeping();
        assert!(sync.wants_hash(&log(2)) && sync.wants_hash(&log(3)) && !sync.wants_hash("/m/loose.json"));
        assert_eq!(sync.stamp(&log(1), Some("AA")), VERIFIED);
        assert_eq!(sync.stamp(&log(2), Some("BB")), UNVERIFIED, "its digest is not proven");
        assert_eq!(sync.stamp(&log(3), Some("CC")), UNVERIFIED);
        assert_eq!(
            sync.stamp(&log(4), Some("")),
            UNVERIFIED,
            "not uncompressed whole: nothing to keep"
        );
        assert_eq!(sync.take_kept(&log(1)), None);
        assert_eq!(sync.take_kept(&log(2)).as_deref(), Some("bb"));
        assert_eq!(sync.take_kept(&log(3)).as_deref(), Some("cc"));
        assert_eq!(sync.take_kept(&log(3)), None, "taken once");
        assert_eq!(sync.take_kept(&log(4)), None);

        // Later: the digests of 2 and 3 proved valid, 3 lists another hash.
        let later = Integrity {
            expected: HashMap::from([(key(2), ("bb".to_string(), true)), (key(3), ("dd".to_string(), true))]),
            ..Integrity::default()
        };
        assert_eq!(later.judge_kept(&log(2), "bb"), Some(VERIFIED));
        assert_eq!(later.judge_kept(&log(3), "cc"), Some(FAILED));
        assert_eq!(later.judge_kept(&log(5), "ee"), None);
        later.upgraded(VERIFIED, &[&log(2)], 3);
        later.upgraded(FAILED, &[&log(3)], 4);
        assert_eq!(later.upgrades(), ((1, 3), (1, 4)));
        assert_eq!(later.failed_files(), [log(3)]);
    }

    /// The real digest files of the shared corpus (and the bundled one)
    /// parse, and their names give a chain and a time.
    #[test]
    fn real_digest_files_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<std::path::PathBuf> = walkdir::WalkDir::new(root.join("tests/fixtures"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .filter(|p| p.to_string_lossy().contains("CloudTrail-Digest"))
            .collect();
        let corpus = root.join("../shared/cloudtrail-corpus");
        // The bundled one, and in the corpus: 2 from AWS's guide, 1 real (llm-guard), 1 of Elastic's.
        let want = if corpus.is_dir() { 5 } else { 1 };
        for entry in walkdir::WalkDir::new(&corpus).into_iter().filter_map(Result::ok) {
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.contains("CloudTrail-Digest")
                || name.contains("digest-file-structure")
                || name.contains("digest-json")
            {
                files.push(entry.into_path());
            }
        }
        assert!(!files.is_empty());
        let mut parsed = 0;
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let content = gunzip(&bytes).unwrap();
            // Pretty-printed files hold one digest; the Elastic fixture one per line.
            let digests: Vec<DigestFile> = match serde_json::from_slice(&content) {
                Ok(digest) => vec![digest],
                Err(_) => std::str::from_utf8(&content)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
                    .collect(),
            };
            for digest in digests {
                assert_eq!(digest.digest_signature_algorithm, SIGNATURE_ALGORITHM);
                assert!(
                    DigestName::parse(&digest.digest_s3_object).is_some(),
                    "{}",
                    digest.digest_s3_object
                );
                assert!(
                    digest.log_files.iter().all(|f| f.hash_value.len() == 64),
                    "{}",
                    path.display()
                );
                assert!(signing_string(&digest, "00").contains(&digest.digest_s3_object));
                parsed += 1;
            }
        }
        assert_eq!(parsed, want);
    }
}
