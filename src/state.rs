//! Sync state: which objects of a source are done, how far each part of it
//! is synced, and who is syncing.
//!
//! Owns the two places state can live: a small index in the cluster itself
//! (the default, so a sync can run from any host or container) and a local
//! JSON file (`--state-file`). Each object read is one record (`source`,
//! `name`, `version`, delivery `day`, `scope`, outcome), so concurrent syncs
//! never overwrite each other's records. Each scope (an account/region
//! folder of the CloudTrail layout, see [`crate::source::layout`]) has a
//! checkpoint: the last day a complete run saw in it; a run reads only the
//! records of each scope's look-back window, and objects that failed to
//! read, wherever they are. A lease per source (a document updated with the
//! cluster's optimistic concurrency control, or a lock on the state file)
//! keeps two syncs from doing the same work at once.
//!
//! The state file is rewritten (pruned to what future windows can consult)
//! only at the end of a run; in between, records are appended to a journal
//! beside it, so a flush costs what it adds.
//!
//! Invariant: an object is recorded as done only after every one of its
//! events was acknowledged or dead-lettered (the pipeline's ledger says so),
//! and a checkpoint moves only after a run read everything it listed, so a
//! crash at any moment loses nothing: unrecorded objects are read again, and
//! events have stable ids.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::Method;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::assets;
use crate::retry::{Next, Policy, Retrier, Why};
use crate::sink::client::{Cluster, SendError};
use crate::source::layout::scope_and_day;

/// How long a lease lasts without renewal, by default (`--lease-seconds`).
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// Records read from the cluster per search request.
const PAGE: usize = 5000;

/// What became of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every event acknowledged or dead-lettered.
    Indexed,
    /// Content that cannot be read as CloudTrail: reading it again cannot help.
    Unusable,
    /// Could not be read (denied, archived, failing): tried again next run.
    Failed,
    /// Gone between listing and reading.
    Missing,
}

impl Outcome {
    /// Whether the object, at the same version, needs no reading again.
    pub fn is_done(self) -> bool {
        matches!(self, Outcome::Indexed | Outcome::Unusable)
    }
}

/// One object read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub size: u64,
    /// Delivery day (days since 1970-01-01), from the key's `YYYY/MM/DD/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<i64>,
    /// The account/region folder it belongs to ("" outside the layout).
    #[serde(default)]
    pub scope: String,
    pub outcome: Outcome,
    /// `sync --verify`: the hex SHA-256 of the uncompressed content of a
    /// file whose events were stamped `unverified` (no valid digest listed
    /// it yet), kept so that a later sync can judge them by the digest once
    /// it arrives without reading the file again; None once judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl Record {
    /// A record of `name`, with its scope and day from the name.
    pub fn new(name: &str, version: &str, size: u64, outcome: Outcome) -> Record {
        let (scope, day) = scope_and_day(name);
        Record {
            name: name.to_string(),
            version: version.to_string(),
            size,
            day,
            scope: scope.into_owned(),
            outcome,
            hash: None,
        }
    }
}

/// Which records a run consults: per scope, from its window's first day;
/// other scopes from `default_from` (None: all).
#[derive(Debug, Clone, Default)]
pub struct Windows {
    pub by_scope: HashMap<String, i64>,
    pub default_from: Option<i64>,
}

impl Windows {
    /// The cluster state's query clause for [`Windows::consults`]: one
    /// clause per distinct window start, one for scopes without a window,
    /// one for records without a day.
    fn clause(&self) -> Value {
        let mut by_start: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (scope, from) in &self.by_scope {
            by_start.entry(*from).or_default().push(scope);
        }
        let mut should: Vec<Value> = by_start
            .iter()
            .map(|(from, scopes)| {
                json!({"bool": {"filter": [{"terms": {"scope": scopes}}, {"range": {"day": {"gte": from}}}]}})
            })
            .collect();
        let windowed: Vec<&String> = self.by_scope.keys().collect();
        let mut others = json!({"bool": {"must_not": [{"terms": {"scope": windowed}}]}});
        if let Some(from) = self.default_from {
            others["bool"]["filter"] = json!([{"range": {"day": {"gte": from}}}]);
        }
        should.push(others);
        should.push(json!({"bool": {"must_not": {"exists": {"field": "day"}}}}));
        json!({"bool": {"should": should, "minimum_should_match": 1}})
    }

    fn consults(&self, record: &Record) -> bool {
        let from = self.by_scope.get(&record.scope).copied().or(self.default_from);
        match (record.day, from) {
            (Some(day), Some(from)) => day >= from,
            _ => true,
        }
    }
}

/// What one source's sync leaves to save: its records and the checkpoints
/// that may move. A plain sync saves them as it goes; a deferred one (`export
/// --incremental`) hands them back, to be saved once its output is committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Finish {
    pub source: String,
    pub records: Vec<Record>,
    pub checkpoints: HashMap<String, i64>,
    pub lookback_days: u32,
}

impl Finish {
    /// Saves the records and moves the checkpoints (idempotent: a replay
    /// after a crash changes nothing more).
    pub async fn save(&self, state: &StateStore) -> Result<()> {
        state.record(&self.source, &self.records).await?;
        state.finish(&self.source, &self.checkpoints, self.lookback_days).await
    }
}

/// Where state lives.
#[derive(Debug)]
pub enum StateStore {
    Cluster {
        cluster: Cluster,
        index: String,
    },
    File {
        path: PathBuf,
        /// Records since the file was last written, one JSON line each.
        journal: PathBuf,
        data: tokio::sync::Mutex<FileData>,
        _lock: std::fs::File,
    },
}

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FileData {
    version: u32,
    /// source → object name → record.
    sources: BTreeMap<String, BTreeMap<String, Record>>,
    /// source → scope → last synced day.
    #[serde(default)]
    checkpoints: BTreeMap<String, BTreeMap<String, i64>>,
}

impl FileData {
    fn insert(&mut self, source: &str, record: Record) {
        self.sources
            .entry(source.to_string())
            .or_default()
            .insert(record.name.clone(), record);
    }
}

/// One line of the state file's journal.
#[derive(Debug, Serialize, Deserialize)]
struct JournalLine {
    source: String,
    record: Record,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    id: String,
    seq_no: u64,
    primary_term: u64,
    body: Value,
    ttl: Duration,
}

/// Why a lease could not be had.
#[derive(Debug, thiserror::Error)]
#[error("another sync ({holder}) is working on this source until {expires}")]
pub struct Busy {
    pub holder: String,
    pub expires: String,
}

fn doc_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize()[..20].iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Whether a process of this host is alive (where /proc tells; else assumed alive).
fn process_alive(pid: u64) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

impl StateStore {
    /// State in the cluster, in `index` (created when missing; new fields
    /// added to an older one's mappings).
    pub async fn in_cluster(cluster: Cluster, index: &str) -> Result<StateStore> {
        let body: Value = serde_json::from_str(assets::STATE_INDEX).context("the embedded state index is not JSON")?;
        // Whether it exists, asked again while the cluster is busy or unreachable.
        let mut retrier = Retrier::new(Policy::STATE);
        let exists = loop {
            match cluster.send(Method::HEAD, &format!("/{index}"), None).await {
                Err(e) => match retrier.next(&e.answer()) {
                    Next::Retry(pause) => {
                        tracing::debug!("checking the sync state index failed ({e}); trying again");
                        tokio::time::sleep(pause).await;
                    }
                    _ => break Err(e),
                },
                answer => break answer,
            }
        };
        match exists {
            Ok(_) => {
                cluster
                    .json(Method::PUT, &format!("/{index}/_mapping"), Some(&body["mappings"]))
                    .await
                    .with_context(|| format!("cannot update the mappings of the sync state index {index}"))?;
            }
            Err(SendError::Status { status: 404, .. }) => {
                match cluster.json(Method::PUT, &format!("/{index}"), Some(&body)).await {
                    Ok(_) => {}
                    Err(e) if e.to_string().contains("resource_already_exists_exception") => {}
                    Err(e) => return Err(e.context(format!("cannot create the sync state index {index}"))),
                }
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot check the sync state index {index}"))),
        }
        Ok(StateStore::Cluster {
            cluster,
            index: index.to_string(),
        })
    }

    /// State in a local file, locked for the whole run. Returns `Busy` when
    /// another sync holds the file. Read on a blocking thread.
    pub async fn in_file(path: &Path) -> Result<StateStore> {
        let path = path.to_path_buf();
        blocking(move || StateStore::open_file(&path)).await
    }

    /// [`StateStore::in_file`], blocking.
    fn open_file(path: &Path) -> Result<StateStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder of {}", path.display()))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        if let Err(e) = lock.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => anyhow::Error::new(Busy {
                    holder: format!("lock on {}", lock_path.display()),
                    expires: "it exits".into(),
                }),
                std::fs::TryLockError::Error(e) => {
                    anyhow::Error::new(e).context(format!("cannot lock {}", lock_path.display()))
                }
            });
        }
        let mut data: FileData = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a ctindex state file (move it away to start over)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileData::default(),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        };
        data.version = 2;
        // Files written before records had scopes.
        for objects in data.sources.values_mut() {
            for record in objects.values_mut().filter(|r| r.scope.is_empty()) {
                record.scope = scope_and_day(&record.name).0.into_owned();
            }
        }
        let journal = PathBuf::from(format!("{}.journal", path.display()));
        match std::fs::read_to_string(&journal) {
            Ok(text) => {
                for line in text.lines() {
                    // A line cut off by a crash was never acknowledged: skip it.
                    match serde_json::from_str::<JournalLine>(line) {
                        Ok(JournalLine { source, record }) => data.insert(&source, record),
                        Err(e) => tracing::debug!("{}: incomplete line skipped: {e}", journal.display()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", journal.display()))),
        }
        Ok(StateStore::File {
            path: path.to_path_buf(),
            journal,
            data: tokio::sync::Mutex::new(data),
            _lock: lock,
        })
    }

    /// Every scope's checkpoint: the last day a complete run saw in it.
    pub async fn checkpoints(&self, source: &str) -> Result<HashMap<String, i64>> {
        match self {
            StateStore::Cluster { cluster, index } => {
                let filter = json!([{"term": {"kind": "scope"}}, {"term": {"source": source}}]);
                let hits = search_all(cluster, index, filter, &["scope", "day"], "scope").await?;
                Ok(hits
                    .iter()
                    .filter_map(|h| Some((h["scope"].as_str()?.to_string(), h["day"].as_i64()?)))
                    .collect())
            }
            StateStore::File { data, .. } => {
                let data = data.lock().await;
                Ok(data
                    .checkpoints
                    .get(source)
                    .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default())
            }
        }
    }

    /// The objects recorded as done that the windows consult: name → version.
    pub async fn done(&self, source: &str, windows: &Windows) -> Result<HashMap<String, String>> {
        match self {
            StateStore::Cluster { cluster, index } => {
                let filter = json!([{"term": {"kind": "object"}}, {"term": {"source": source}},
                                    {"terms": {"outcome": ["indexed", "unusable"]}}, windows.clause()]);
                let hits = search_all(cluster, index, filter, &["name", "version"], "name").await?;
                Ok(hits
                    .iter()
                    .filter_map(|h| Some((h["name"].as_str()?.to_string(), h["version"].as_str()?.to_string())))
                    .collect())
            }
            StateStore::File { data, .. } => {
                let data = data.lock().await;
                Ok(data
                    .sources
                    .get(source)
                    .into_iter()
                    .flat_map(|objects| objects.values())
                    .filter(|r| r.outcome.is_done() && windows.consults(r))
                    .map(|r| (r.name.clone(), r.version.clone()))
                    .collect())
            }
        }
    }

    /// The objects that failed to read, to try again.
    pub async fn failed(&self, source: &str) -> Result<Vec<Record>> {
        let clauses = vec![json!({"term": {"outcome": "failed"}})];
        self.records(source, clauses, &[], |r| r.outcome == Outcome::Failed)
            .await
    }

    /// `sync --verify`: the objects whose events were stamped `unverified`,
    /// with the hash of their content kept ([`Record::hash`]), that the
    /// windows consult (older ones are given up with the window).
    pub async fn unverified(&self, source: &str, windows: &Windows) -> Result<Vec<Record>> {
        let clauses = vec![
            json!({"term": {"outcome": "indexed"}}),
            json!({"exists": {"field": "hash"}}),
            windows.clause(),
        ];
        self.records(source, clauses, &["hash"], |r| {
            r.outcome == Outcome::Indexed && r.hash.is_some() && windows.consults(r)
        })
        .await
    }

    /// A source's object records that match: in the cluster, the filter
    /// `clauses` (reading `extra` fields beyond the record's own); in the
    /// file, `keep`. The two must say the same.
    async fn records(
        &self,
        source: &str,
        clauses: Vec<Value>,
        extra: &[&str],
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<Record>> {
        match self {
            StateStore::Cluster { cluster, index } => {
                let mut filter = vec![json!({"term": {"kind": "object"}}), json!({"term": {"source": source}})];
                filter.extend(clauses);
                let mut fields = vec!["name", "version", "size", "day", "scope", "outcome"];
                fields.extend_from_slice(extra);
                let hits = search_all(cluster, index, Value::Array(filter), &fields, "name").await?;
                Ok(hits
                    .into_iter()
                    .filter_map(|h| serde_json::from_value(h).ok())
                    .collect())
            }
            StateStore::File { data, .. } => {
                let data = data.lock().await;
                Ok(data
                    .sources
                    .get(source)
                    .into_iter()
                    .flat_map(|objects| objects.values())
                    .filter(|r| keep(r))
                    .cloned()
                    .collect())
            }
        }
    }

    /// Records objects read. Written at once (to the cluster, or appended to
    /// the state file's journal and synced), visible to other runs within a
    /// second.
    pub async fn record(&self, source: &str, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            StateStore::Cluster { cluster, index } => {
                let mut body = Vec::new();
                let done_at = crate::date::now_rfc3339();
                for r in records {
                    let action = json!({"index": {"_index": index, "_id": doc_id(&[source, &r.name])}});
                    let doc = json!({"kind": "object", "source": source, "name": r.name, "version": r.version,
                                     "size": r.size, "day": r.day, "scope": r.scope, "outcome": r.outcome,
                                     "hash": r.hash, "done_at": done_at});
                    body.extend_from_slice(action.to_string().as_bytes());
                    body.push(b'\n');
                    body.extend_from_slice(doc.to_string().as_bytes());
                    body.push(b'\n');
                }
                bulk(cluster, index, body).await
            }
            StateStore::File { journal, data, .. } => {
                let mut data = data.lock().await;
                let mut lines = Vec::new();
                for record in records {
                    serde_json::to_writer(
                        &mut lines,
                        &JournalLine {
                            source: source.to_string(),
                            record: record.clone(),
                        },
                    )?;
                    lines.push(b'\n');
                    data.insert(source, record.clone());
                }
                // The lock is held until the lines are durable: appends stay in order.
                let journal = journal.clone();
                blocking(move || {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&journal)
                        .with_context(|| format!("cannot open {}", journal.display()))?;
                    file.write_all(&lines)
                        .and_then(|()| file.sync_data())
                        .with_context(|| format!("cannot write {}", journal.display()))
                })
                .await
            }
        }
    }

    /// Ends a source's run: moves the checkpoints given (scope → last day
    /// seen; none after an incomplete run) and makes everything durable. The
    /// state file is rewritten without the records no future window can
    /// consult: older than their scope's checkpoint minus `keep_days` (those
    /// that failed to read are kept until read).
    pub async fn finish(&self, source: &str, checkpoints: &HashMap<String, i64>, keep_days: u32) -> Result<()> {
        match self {
            StateStore::Cluster { cluster, index } => {
                if !checkpoints.is_empty() {
                    let mut body = Vec::new();
                    for (scope, day) in checkpoints {
                        let action = json!({"index": {"_index": index, "_id": doc_id(&["scope", source, scope])}});
                        let doc = json!({"kind": "scope", "source": source, "scope": scope, "day": day,
                                         "done_at": crate::date::now_rfc3339()});
                        body.extend_from_slice(action.to_string().as_bytes());
                        body.push(b'\n');
                        body.extend_from_slice(doc.to_string().as_bytes());
                        body.push(b'\n');
                    }
                    bulk(cluster, index, body).await?;
                }
                cluster.refresh(index).await
            }
            StateStore::File {
                path, journal, data, ..
            } => {
                let mut data = data.lock().await;
                let saved = data.checkpoints.entry(source.to_string()).or_default();
                for (scope, day) in checkpoints {
                    saved.insert(scope.clone(), *day);
                }
                let saved = saved.clone();
                if let Some(objects) = data.sources.get_mut(source) {
                    objects.retain(|_, r| {
                        r.outcome == Outcome::Failed
                            || match (r.day, saved.get(&r.scope)) {
                                (Some(day), Some(last)) => day >= last - i64::from(keep_days),
                                _ => true,
                            }
                    });
                }
                let bytes = serde_json::to_vec(&*data)?;
                let (path, journal) = (path.clone(), journal.clone());
                blocking(move || {
                    write_atomically(&path, &bytes)?;
                    match std::fs::remove_file(&journal) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove {}", journal.display()))),
                    }
                })
                .await
            }
        }
    }

    /// Takes the lease on a source; `Busy` when a live sync holds it. A lease
    /// whose holder died on this host, or that expired, is taken over.
    ///
    /// The write is conditional (`_create`, or `if_seq_no` over an expired
    /// lease), so it is never re-sent blindly: after a failure that may have
    /// been applied (no answer, 5xx, 409), the lease is read again, and one
    /// that this process holds is its own.
    pub async fn acquire(&self, source: &str, ttl: Duration) -> Result<Option<Lease>> {
        let StateStore::Cluster { cluster, index } = self else {
            return Ok(None); // the state file's lock is the lease
        };
        let id = format!("lease-{}", doc_id(&[source]));
        let host = host_name();
        let pid = u64::from(std::process::id());
        let holder = format!("{host}:{pid}");
        let body = |expires: i64| {
            json!({"kind": "lease", "source": source, "holder": holder, "host": host,
                   "pid": pid, "expires_ms": expires})
        };
        let mut retrier = Retrier::new(Policy::LEASE);
        let gave_up = || {
            anyhow::anyhow!(
                "could not take the sync lease on {source}: it keeps changing hands, or the cluster keeps failing"
            )
        };
        loop {
            let current = match read_lease(cluster, index, &id).await {
                Ok(current) => current,
                Err(e) => match retrier.next(&e.answer()) {
                    Next::Retry(pause) => {
                        tracing::debug!("reading the sync lease failed ({e}); trying again");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    Next::GiveUp(Why::Exhausted) => return Err(anyhow::Error::new(e).context(gave_up())),
                    _ => return Err(anyhow::Error::new(e).context("cannot read the sync lease")),
                },
            };
            let path = match &current {
                None => format!("/{index}/_create/{id}?refresh=true"),
                Some(held) => {
                    if held.source["holder"].as_str() == Some(holder.as_str()) {
                        // Ours: an earlier attempt was applied although its answer was lost.
                        return Ok(Some(Lease {
                            id,
                            seq_no: held.seq_no,
                            primary_term: held.primary_term,
                            body: held.source.clone(),
                            ttl,
                        }));
                    }
                    let expires = held.source["expires_ms"].as_i64().unwrap_or(0);
                    let same_host_dead = held.source["host"].as_str() == Some(host.as_str())
                        && held.source["pid"]
                            .as_u64()
                            .is_some_and(|p| p != pid && !process_alive(p));
                    if expires > now_ms() && !same_host_dead {
                        return Err(anyhow::Error::new(Busy {
                            holder: held.source["holder"].as_str().unwrap_or("?").to_string(),
                            expires: format!("{} s from now", (expires - now_ms()) / 1000),
                        }));
                    }
                    tracing::info!(
                        "taking over the sync lease of {} (expired or dead)",
                        held.source["holder"]
                    );
                    format!(
                        "/{index}/_doc/{id}?if_seq_no={}&if_primary_term={}&refresh=true",
                        held.seq_no, held.primary_term
                    )
                }
            };
            let lease_body = body(now_ms() + ttl.as_millis() as i64);
            let answer = cluster
                .send(Method::PUT, &path, Some(lease_body.to_string().into()))
                .await;
            match answer {
                Ok(bytes) => {
                    let (seq_no, primary_term) = written_version(&bytes).context("taking the sync lease")?;
                    return Ok(Some(Lease {
                        id,
                        seq_no,
                        primary_term,
                        body: lease_body,
                        ttl,
                    }));
                }
                // Someone else wrote it first, or our write went through unanswered: look again.
                Err(e) if e.status() == Some(409) => {
                    if retrier.again().is_none() {
                        return Err(anyhow::Error::new(e).context(gave_up()));
                    }
                }
                // Never re-sent blindly: the next round reads the lease first.
                Err(e) => match retrier.next(&e.answer()) {
                    Next::Retry(pause) => {
                        tracing::debug!("taking the sync lease failed ({e}); reading it again");
                        tokio::time::sleep(pause).await;
                    }
                    Next::GiveUp(Why::Exhausted) => return Err(anyhow::Error::new(e).context(gave_up())),
                    _ => return Err(anyhow::Error::new(e).context("cannot take the sync lease")),
                },
            }
        }
    }

    /// Extends a held lease; an error means it was lost (or the cluster
    /// could not be reached for the whole of the attempts).
    ///
    /// A renewal is conditional (`if_seq_no`): after a failure that may have
    /// been applied, the lease is read back and kept if it is still ours.
    pub async fn renew(&self, lease: &mut Lease) -> Result<()> {
        let StateStore::Cluster { cluster, index } = self else {
            return Ok(());
        };
        lease.body["expires_ms"] = json!(now_ms() + lease.ttl.as_millis() as i64);
        let mut retrier = Retrier::new(Policy::LEASE);
        loop {
            let path = format!(
                "/{index}/_doc/{}?if_seq_no={}&if_primary_term={}",
                lease.id, lease.seq_no, lease.primary_term
            );
            let failure = match cluster
                .send(Method::PUT, &path, Some(lease.body.to_string().into()))
                .await
            {
                Ok(bytes) => {
                    let (seq_no, primary_term) = written_version(&bytes).context("renewing the sync lease")?;
                    lease.seq_no = seq_no;
                    lease.primary_term = primary_term;
                    return Ok(());
                }
                Err(e) if e.status() == Some(409) || transient(&e) => e,
                Err(e) => return Err(anyhow::Error::new(e).context("lost the sync lease")),
            };
            // Applied or not? The lease as it is now says.
            match read_lease(cluster, index, &lease.id).await {
                Ok(Some(held)) if renewal_applied(&held.source, &lease.body) => {
                    lease.seq_no = held.seq_no;
                    lease.primary_term = held.primary_term;
                    return Ok(());
                }
                Ok(Some(held)) if held.seq_no == lease.seq_no && held.primary_term == lease.primary_term => {
                    // Not applied, and unchanged since: the same write may go again.
                }
                Ok(Some(held)) => bail!("lost the sync lease: {} holds it now", held.source["holder"]),
                Ok(None) => bail!("lost the sync lease: it was removed"),
                Err(e) if transient(&e) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("lost the sync lease: cannot read it")),
            }
            // Not applied: the same write may go again, within the policy.
            let pause = match failure.status() {
                Some(409) => retrier.again(),
                _ => match retrier.next(&failure.answer()) {
                    Next::Retry(pause) => Some(pause),
                    _ => None,
                },
            };
            let Some(pause) = pause else {
                return Err(anyhow::Error::new(failure).context("lost the sync lease: the cluster keeps failing"));
            };
            tracing::debug!("renewing the sync lease failed ({failure}); trying again");
            tokio::time::sleep(pause).await;
        }
    }

    /// Gives a lease back.
    pub async fn release(&self, lease: Lease) -> Result<()> {
        let StateStore::Cluster { cluster, index } = self else {
            return Ok(());
        };
        let path = format!(
            "/{index}/_doc/{}?if_seq_no={}&if_primary_term={}&refresh=true",
            lease.id, lease.seq_no, lease.primary_term
        );
        cluster
            .send(Method::DELETE, &path, None)
            .await
            .context("cannot release the sync lease")?;
        Ok(())
    }
}

/// A failure worth another try: no answer, busy, or a server error (see
/// [`crate::retry`]).
fn transient(e: &SendError) -> bool {
    e.answer().is_transient()
}

/// A lease document as the cluster has it.
#[derive(Debug)]
struct HeldLease {
    source: Value,
    seq_no: u64,
    primary_term: u64,
}

/// Reads the lease document (None when there is none).
async fn read_lease(cluster: &Cluster, index: &str, id: &str) -> Result<Option<HeldLease>, SendError> {
    match cluster.send(Method::GET, &format!("/{index}/_doc/{id}"), None).await {
        Err(SendError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
        Ok(bytes) => parse_lease(&bytes).map(Some).map_err(|why| SendError::Status {
            method: "GET".into(),
            path: format!("/{index}/_doc/{id}"),
            status: 200,
            body: why,
            auth: "".into(),
            retry_after: None,
        }),
    }
}

/// A `GET _doc` answer: the lease, its sequence number and primary term;
/// anything else is an error, never an empty lease.
fn parse_lease(bytes: &[u8]) -> Result<HeldLease, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("the lease is not JSON: {e}"))?;
    match (&doc["_source"], doc["_seq_no"].as_u64(), doc["_primary_term"].as_u64()) {
        (source @ Value::Object(_), Some(seq_no), Some(primary_term)) => Ok(HeldLease {
            source: source.clone(),
            seq_no,
            primary_term,
        }),
        _ => Err(format!(
            "the lease document lacks _source, _seq_no or _primary_term: {}",
            crate::http::explain::truncate(&doc.to_string(), 200)
        )),
    }
}

/// The sequence number and primary term a write answers with.
fn written_version(bytes: &[u8]) -> Result<(u64, u64)> {
    let answer: Value = serde_json::from_slice(bytes).context("the answer is not JSON")?;
    match (answer["_seq_no"].as_u64(), answer["_primary_term"].as_u64()) {
        (Some(seq_no), Some(primary_term)) => Ok((seq_no, primary_term)),
        _ => bail!("the answer has no _seq_no and _primary_term: {answer}"),
    }
}

/// Whether the lease as read is our renewal: same holder, same expiry.
fn renewal_applied(held: &Value, ours: &Value) -> bool {
    held["holder"] == ours["holder"] && held["expires_ms"] == ours["expires_ms"]
}

/// Every hit's `_source` (only `fields`) of a search in the state index,
/// page by page in `sort` order (a field unique among the hits).
async fn search_all(cluster: &Cluster, index: &str, filter: Value, fields: &[&str], sort: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut query = json!({"size": PAGE, "query": {"bool": {"filter": filter}}, "_source": fields,
                               "sort": [{sort: "asc"}], "track_total_hits": false});
        if let Some(a) = &after {
            query["search_after"] = a.clone();
        }
        let page = cluster
            .json(Method::POST, &format!("/{index}/_search"), Some(&query))
            .await
            .with_context(|| format!("cannot read the sync state in {index}"))?;
        let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let full = hits.len() >= PAGE;
        after = hits.last().map(|h| h["sort"].clone());
        out.extend(hits.into_iter().map(|mut h| h["_source"].take()));
        if !full {
            return Ok(out);
        }
    }
}

/// Sends a bulk body of state documents (index actions with fixed ids, so
/// sending them again is harmless), retried under [`Policy::STATE`] (see
/// [`Cluster::bulk_idempotent`]).
async fn bulk(cluster: &Cluster, index: &str, body: Vec<u8>) -> Result<()> {
    cluster
        .bulk_idempotent(
            body.into(),
            Policy::STATE,
            &format!("sync state records in {index}"),
            false,
        )
        .await
        .map(drop)
}

/// Runs file I/O (writes, `fsync`) on a blocking thread, off the async runtime's.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a state file task failed")?
}

/// Writes a file via a temporary file, an `fsync` and a rename (and an
/// `fsync` of the folder, so that the rename itself is durable): a crash
/// leaves the old or the new one. Blocking: see [`blocking`].
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Not every system can open a folder to sync it; the rename is done either way.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, outcome: Outcome) -> Record {
        Record::new(name, "v1", 10, outcome)
    }

    #[test]
    fn lease_answers_are_read_strictly() {
        let held =
            parse_lease(br#"{"_id":"l","_seq_no":7,"_primary_term":2,"_source":{"holder":"h:1","expires_ms":5}}"#)
                .unwrap();
        assert_eq!((held.seq_no, held.primary_term), (7, 2));
        for bad in [
            &b"not json"[..],
            br#"{}"#,
            br#"{"_source":{},"_seq_no":1}"#,
            br#"{"_seq_no":1,"_primary_term":1,"_source":"x"}"#,
        ] {
            assert!(parse_lease(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            written_version(br#"{"_seq_no":3,"_primary_term":1,"result":"updated"}"#).unwrap(),
            (3, 1)
        );
        assert!(written_version(br#"{"result":"updated"}"#).is_err());
        assert!(written_version(b"").is_err());
        let ours = json!({"holder": "h:1", "expires_ms": 10});
        assert!(renewal_applied(
            &json!({"holder": "h:1", "expires_ms": 10, "x": 1}),
            &ours
        ));
        assert!(!renewal_applied(&json!({"holder": "h:1", "expires_ms": 9}), &ours));
        assert!(!renewal_applied(&json!({"holder": "h:2", "expires_ms": 10}), &ours));
        let status = |status| SendError::Status {
            method: "PUT".into(),
            path: "/".into(),
            status,
            body: String::new(),
            auth: "".into(),
            retry_after: None,
        };
        assert!(
            transient(&status(503)) && transient(&status(429)) && !transient(&status(409)) && !transient(&status(403))
        );
        assert!(transient(&SendError::Connection {
            url: "u".into(),
            message: "reset".into(),
            failure: crate::retry::Failure::Reset,
        }));
    }

    const A: &str = "s3://b/AWSLogs/111111111111/CloudTrail/us-east-1/";

    fn day(text: &str) -> i64 {
        crate::date::parse_day(text).unwrap()
    }

    #[tokio::test]
    async fn file_state_journal_windows_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sync.json");
        {
            let store = StateStore::in_file(&path).await.unwrap();
            assert!(
                StateStore::in_file(&path)
                    .await
                    .unwrap_err()
                    .downcast_ref::<Busy>()
                    .is_some(),
                "second opener is refused"
            );
            assert!(store.checkpoints("s").await.unwrap().is_empty());
            store
                .record(
                    "s",
                    &[
                        record(&format!("{A}2024/03/01/a.json.gz"), Outcome::Indexed),
                        record(&format!("{A}2024/03/05/b.json.gz"), Outcome::Indexed),
                        record(&format!("{A}2024/03/01/bad.json.gz"), Outcome::Failed),
                        record("s3://b/loose/c.json", Outcome::Indexed),
                    ],
                )
                .await
                .unwrap();
            store
                .record("other", &[record("s3://c/x/2024/01/01/x.json", Outcome::Indexed)])
                .await
                .unwrap();
            // Killed here: no finish. The journal holds the records.
            assert!(dir.path().join("state/sync.json.journal").exists());
        }
        let store = StateStore::in_file(&path).await.unwrap();
        let mut windows = Windows::default();
        assert_eq!(
            store.done("s", &windows).await.unwrap().len(),
            3,
            "failed ones are not done"
        );
        windows.by_scope.insert(A.into(), day("2024-03-04"));
        let mut done: Vec<String> = store.done("s", &windows).await.unwrap().into_keys().collect();
        done.sort();
        assert_eq!(done, [format!("{A}2024/03/05/b.json.gz"), "s3://b/loose/c.json".into()]);
        assert_eq!(store.failed("s").await.unwrap().len(), 1);

        // A complete run moves the checkpoint and prunes what no window will consult.
        store
            .finish("s", &[(A.to_string(), day("2024-03-05"))].into(), 1)
            .await
            .unwrap();
        assert!(!dir.path().join("state/sync.json.journal").exists());
        drop(store);
        let store = StateStore::in_file(&path).await.unwrap();
        assert_eq!(
            store.checkpoints("s").await.unwrap(),
            [(A.to_string(), day("2024-03-05"))].into()
        );
        let mut kept: Vec<String> = store
            .done("s", &Windows::default())
            .await
            .unwrap()
            .into_keys()
            .collect();
        kept.sort();
        assert_eq!(kept, [format!("{A}2024/03/05/b.json.gz"), "s3://b/loose/c.json".into()]);
        assert_eq!(
            store.failed("s").await.unwrap().len(),
            1,
            "failures are kept until read"
        );
        assert_eq!(store.done("other", &Windows::default()).await.unwrap().len(), 1);
    }

    /// `sync --verify`: the records of files stamped unverified carry their
    /// hash until judged, and only those of the windows are consulted.
    #[tokio::test]
    async fn unverified_records_keep_their_hash_until_judged() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::in_file(&dir.path().join("s.json")).await.unwrap();
        let with_hash = |name: &str, hash: Option<&str>| Record {
            hash: hash.map(str::to_string),
            ..record(name, Outcome::Indexed)
        };
        let (old, new) = (format!("{A}2024/03/01/a.json.gz"), format!("{A}2024/03/05/b.json.gz"));
        let plain = format!("{A}2024/03/05/c.json.gz");
        store
            .record(
                "s",
                &[
                    with_hash(&old, Some("aa")),
                    with_hash(&new, Some("bb")),
                    with_hash(&plain, None),
                ],
            )
            .await
            .unwrap();
        let names = |records: Vec<Record>| {
            let mut names: Vec<String> = records.into_iter().map(|r| r.name).collect();
            names.sort();
            names
        };
        assert_eq!(
            names(store.unverified("s", &Windows::default()).await.unwrap()),
            [old.clone(), new.clone()]
        );
        let mut windows = Windows::default();
        windows.by_scope.insert(A.into(), day("2024-03-04"));
        let kept = store.unverified("s", &windows).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].hash.as_deref(), Some("bb"));
        // Judged: recorded again without the hash, kept across a reopening.
        store.record("s", &[with_hash(&new, None)]).await.unwrap();
        assert!(store.unverified("s", &windows).await.unwrap().is_empty());
        drop(store);
        let store = StateStore::in_file(&dir.path().join("s.json")).await.unwrap();
        assert_eq!(names(store.unverified("s", &Windows::default()).await.unwrap()), [old]);
        assert_eq!(store.done("s", &windows).await.unwrap().len(), 2);
    }

    #[test]
    fn old_state_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        let name = format!("{A}2024/03/01/a.json.gz");
        let old = json!({"version": 1, "sources": {"s": {name.clone(): {"name": name, "version": "e", "day": 19783, "outcome": "indexed"}}}});
        std::fs::write(&path, old.to_string()).unwrap();
        let StateStore::File { data, .. } = StateStore::open_file(&path).unwrap() else {
            unreachable!()
        };
        let data = data.into_inner();
        assert_eq!(data.sources["s"][&name].scope, A);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(doc_id(&["a", "b"]), doc_id(&["a", "b"]));
        assert_ne!(doc_id(&["a", "b"]), doc_id(&["ab", ""]));
        assert_eq!(doc_id(&["a"]).len(), 40);
    }
}
