//! Sync state: which objects of a source are fully indexed, and who is syncing.
//!
//! Owns the two places state can live: a small index in the cluster itself
//! (the default, so a sync can run from any host or container) and a local
//! JSON file (`--state-file`). Each finished object is one record
//! (`source`, `name`, `version`, delivery `day`), so concurrent syncs never
//! overwrite each other's records, and a run reads only the records of its
//! look-back window. A lease per source (a document updated with the
//! cluster's optimistic concurrency control, or a lock on the state file)
//! keeps two syncs from doing the same work at once.
//!
//! Invariant: an object is recorded only after every one of its events was
//! acknowledged or dead-lettered (the pipeline's ledger says so), so a crash
//! at any moment loses nothing: unrecorded objects are read again, and
//! events have stable ids.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::assets;
use crate::sink::client::{Cluster, SendError};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// One finished object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub version: String,
    /// Delivery day (days since 1970-01-01), from the key's `YYYY/MM/DD/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<i64>,
    /// "indexed", or "unusable" for content that cannot be read as CloudTrail.
    pub outcome: String,
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
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    id: String,
    seq_no: u64,
    primary_term: u64,
    body: Value,
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
    /// State in the cluster, in `index` (created when missing).
    pub async fn in_cluster(cluster: Cluster, index: &str) -> Result<StateStore> {
        let exists = cluster.send(Method::Head, &format!("/{index}"), None).await;
        match exists {
            Ok(_) => {}
            Err(SendError::Status { status: 404, .. }) => {
                let body: Value =
                    serde_json::from_str(assets::STATE_INDEX).context("the embedded state index is not JSON")?;
                match cluster.json(Method::Put, &format!("/{index}"), Some(&body)).await {
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
    /// another sync holds the file.
    pub fn in_file(path: &Path) -> Result<StateStore> {
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
        let data = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a ctindex state file (move it away to start over)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileData {
                version: 1,
                ..FileData::default()
            },
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        };
        Ok(StateStore::File {
            path: path.to_path_buf(),
            data: tokio::sync::Mutex::new(data),
            _lock: lock,
        })
    }

    /// The latest delivery day recorded for a source.
    pub async fn last_day(&self, source: &str) -> Result<Option<i64>> {
        match self {
            StateStore::Cluster { cluster, index } => {
                let query = json!({"size": 0, "query": {"bool": {"filter": [{"term": {"kind": "object"}}, {"term": {"source": source}}]}},
                                   "aggs": {"last": {"max": {"field": "day"}}}});
                let answer = cluster
                    .json(Method::Post, &format!("/{index}/_search"), Some(&query))
                    .await
                    .with_context(|| format!("cannot read the sync state in {index}"))?;
                Ok(answer["aggregations"]["last"]["value"].as_f64().map(|d| d as i64))
            }
            StateStore::File { data, .. } => {
                let data = data.lock().await;
                Ok(data
                    .sources
                    .get(source)
                    .and_then(|objects| objects.values().filter_map(|r| r.day).max()))
            }
        }
    }

    /// The objects of a source recorded as done, from `since` on (and those
    /// without a day): name → version.
    pub async fn done_since(&self, source: &str, since: Option<i64>) -> Result<HashMap<String, String>> {
        let mut done = HashMap::new();
        match self {
            StateStore::Cluster { cluster, index } => {
                let mut filter = vec![json!({"term": {"kind": "object"}}), json!({"term": {"source": source}})];
                if let Some(day) = since {
                    filter.push(json!({"bool": {"should": [{"range": {"day": {"gte": day}}},
                                                           {"bool": {"must_not": {"exists": {"field": "day"}}}}]}}));
                }
                let mut after: Option<Value> = None;
                loop {
                    let mut query = json!({"size": 5000, "query": {"bool": {"filter": filter}},
                                           "_source": ["name", "version"], "sort": [{"name": "asc"}], "track_total_hits": false});
                    if let Some(a) = &after {
                        query["search_after"] = a.clone();
                    }
                    let page = cluster
                        .json(Method::Post, &format!("/{index}/_search"), Some(&query))
                        .await
                        .with_context(|| format!("cannot read the sync state in {index}"))?;
                    let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
                    for hit in &hits {
                        if let (Some(name), Some(version)) =
                            (hit["_source"]["name"].as_str(), hit["_source"]["version"].as_str())
                        {
                            done.insert(name.to_string(), version.to_string());
                        }
                    }
                    if hits.len() < 5000 {
                        break;
                    }
                    after = hits.last().map(|h| h["sort"].clone());
                }
            }
            StateStore::File { data, .. } => {
                let data = data.lock().await;
                if let Some(objects) = data.sources.get(source) {
                    for record in objects.values() {
                        if since.is_none_or(|s| record.day.is_none_or(|d| d >= s)) {
                            done.insert(record.name.clone(), record.version.clone());
                        }
                    }
                }
            }
        }
        Ok(done)
    }

    /// Records finished objects; `durable` makes them visible to the next run
    /// before returning (a refresh, or the file written).
    pub async fn record(&self, source: &str, records: &[Record], durable: bool) -> Result<()> {
        match self {
            StateStore::Cluster { cluster, index } => {
                if !records.is_empty() {
                    let mut body = Vec::new();
                    let done_at = crate::dlq::now_rfc3339();
                    for r in records {
                        let action = json!({"index": {"_index": index, "_id": doc_id(&[source, &r.name])}});
                        let doc = json!({"kind": "object", "source": source, "name": r.name, "version": r.version,
                                         "day": r.day, "outcome": r.outcome, "done_at": done_at});
                        body.extend_from_slice(action.to_string().as_bytes());
                        body.push(b'\n');
                        body.extend_from_slice(doc.to_string().as_bytes());
                        body.push(b'\n');
                    }
                    let answer = cluster
                        .send(
                            Method::Post,
                            "/_bulk?filter_path=errors,items.*.error",
                            Some(body.into()),
                        )
                        .await
                        .with_context(|| format!("cannot record sync state in {index}"))?;
                    let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
                    if answer["errors"].as_bool() == Some(true) {
                        bail!("the cluster refused sync state records in {index}: {}", answer["items"]);
                    }
                }
                if durable {
                    cluster.refresh(index).await?;
                }
            }
            StateStore::File { path, data, .. } => {
                let mut data = data.lock().await;
                let objects = data.sources.entry(source.to_string()).or_default();
                for r in records {
                    objects.insert(r.name.clone(), r.clone());
                }
                if durable || !records.is_empty() {
                    write_atomically(path, &serde_json::to_vec_pretty(&*data)?)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the lease on a source; `Busy` when a live sync holds it. A lease
    /// whose holder died on this host, or that expired, is taken over.
    pub async fn acquire(&self, source: &str) -> Result<Option<Lease>> {
        let StateStore::Cluster { cluster, index } = self else {
            return Ok(None); // the state file's lock is the lease
        };
        let id = format!("lease-{}", doc_id(&[source]));
        let host = host_name();
        let pid = u64::from(std::process::id());
        let body = |expires: i64| {
            json!({"kind": "lease", "source": source, "holder": format!("{host}:{pid}"), "host": host,
                   "pid": pid, "expires_ms": expires})
        };
        for _ in 0..5 {
            let current = cluster.send(Method::Get, &format!("/{index}/_doc/{id}"), None).await;
            let (path, current) = match current {
                Err(SendError::Status { status: 404, .. }) => (format!("/{index}/_create/{id}?refresh=true"), None),
                Err(e) => return Err(anyhow::Error::new(e).context("cannot read the sync lease")),
                Ok(bytes) => {
                    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    let (seq, term) = (
                        doc["_seq_no"].as_u64().unwrap_or(0),
                        doc["_primary_term"].as_u64().unwrap_or(0),
                    );
                    (
                        format!("/{index}/_doc/{id}?if_seq_no={seq}&if_primary_term={term}&refresh=true"),
                        Some(doc),
                    )
                }
            };
            if let Some(doc) = &current {
                let held = &doc["_source"];
                let expires = held["expires_ms"].as_i64().unwrap_or(0);
                let same_host_dead = held["host"].as_str() == Some(host.as_str())
                    && held["pid"].as_u64().is_some_and(|p| p != pid && !process_alive(p));
                if expires > now_ms() && !same_host_dead {
                    return Err(anyhow::Error::new(Busy {
                        holder: held["holder"].as_str().unwrap_or("?").to_string(),
                        expires: format!("{} s from now", (expires - now_ms()) / 1000),
                    }));
                }
                tracing::info!("taking over the sync lease of {} (expired or dead)", held["holder"]);
            }
            let lease_body = body(now_ms() + LEASE_TTL.as_millis() as i64);
            match cluster.json(Method::Put, &path, Some(&lease_body)).await {
                Ok(answer) => {
                    return Ok(Some(Lease {
                        id,
                        seq_no: answer["_seq_no"].as_u64().unwrap_or(0),
                        primary_term: answer["_primary_term"].as_u64().unwrap_or(0),
                        body: lease_body,
                    }));
                }
                // Someone else wrote it first: look again.
                Err(e)
                    if matches!(
                        e.downcast_ref::<SendError>(),
                        Some(SendError::Status { status: 409, .. })
                    ) => {}
                Err(e) => return Err(e.context("cannot take the sync lease")),
            }
        }
        bail!("could not take the sync lease on {source}: it keeps changing hands")
    }

    /// Extends a held lease; an error means it was lost.
    pub async fn renew(&self, lease: &mut Lease) -> Result<()> {
        let StateStore::Cluster { cluster, index } = self else {
            return Ok(());
        };
        lease.body["expires_ms"] = json!(now_ms() + LEASE_TTL.as_millis() as i64);
        let path = format!(
            "/{index}/_doc/{}?if_seq_no={}&if_primary_term={}",
            lease.id, lease.seq_no, lease.primary_term
        );
        let answer = cluster
            .json(Method::Put, &path, Some(&lease.body))
            .await
            .context("lost the sync lease")?;
        lease.seq_no = answer["_seq_no"].as_u64().unwrap_or(lease.seq_no);
        lease.primary_term = answer["_primary_term"].as_u64().unwrap_or(lease.primary_term);
        Ok(())
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
            .send(Method::Delete, &path, None)
            .await
            .context("cannot release the sync lease")?;
        Ok(())
    }
}

/// Writes a file via a temporary file and a rename, so a crash leaves the old or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, day: Option<i64>) -> Record {
        Record {
            name: name.into(),
            version: "v1".into(),
            day,
            outcome: "indexed".into(),
        }
    }

    #[tokio::test]
    async fn file_state_round_trip_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sync.json");
        {
            let store = StateStore::in_file(&path).unwrap();
            assert!(
                StateStore::in_file(&path).unwrap_err().downcast_ref::<Busy>().is_some(),
                "second opener is refused"
            );
            assert_eq!(store.last_day("s").await.unwrap(), None);
            store
                .record(
                    "s",
                    &[record("a", Some(10)), record("b", Some(12)), record("c", None)],
                    true,
                )
                .await
                .unwrap();
            store.record("other", &[record("x", Some(99))], true).await.unwrap();
        }
        let store = StateStore::in_file(&path).unwrap();
        assert_eq!(store.last_day("s").await.unwrap(), Some(12));
        let done = store.done_since("s", Some(11)).await.unwrap();
        let mut names: Vec<_> = done.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(store.done_since("s", None).await.unwrap().len(), 3);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(doc_id(&["a", "b"]), doc_id(&["a", "b"]));
        assert_ne!(doc_id(&["a", "b"]), doc_id(&["ab", ""]));
        assert_eq!(doc_id(&["a"]).len(), 40);
    }
}
