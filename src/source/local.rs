//! Local folders and files: walking them in name order, skipping whole
//! folders the selection rules out (accounts, regions, days in the
//! CloudTrail layout).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::layout::Place;
use super::{Listed, Listing, Location, Missing, Seen, Selection, SourceObject, is_candidate, is_digest};

/// Entries a survey looks at, at most (a mirror of many years of a large
/// organisation); beyond, what it found is a part.
const SURVEY_ENTRIES: u64 = 2_000_000;

/// Lists `root` (a folder of any depth, or one file) into `tx`.
pub async fn list(root: PathBuf, selection: Arc<Selection>, tx: mpsc::Sender<Listed>) -> Result<Listing> {
    tokio::task::spawn_blocking(move || walk(&root, &selection, &tx))
        .await
        .context("the folder listing task failed")?
}

/// What `root` holds, whatever the selection's days (see [`Seen`]): walks
/// the folders the selection's accounts and regions allow.
pub async fn survey(root: PathBuf, selection: Arc<Selection>) -> Result<Seen> {
    tokio::task::spawn_blocking(move || look(&root, &selection))
        .await
        .context("the folder survey task failed")
}

fn look(root: &Path, selection: &Selection) -> Seen {
    let mut seen = Seen::default();
    let explicit_file = root.is_file();
    let mut entries = 0u64;
    let mut walker = walkdir::WalkDir::new(root).follow_links(true).into_iter();
    while let Some(entry) = walker.next() {
        let Ok(entry) = entry else { continue };
        entries += 1;
        if entries > SURVEY_ENTRIES {
            seen.partial = true;
            break;
        }
        let hidden = entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.');
        let name = entry.path().to_string_lossy();
        if entry.file_type().is_dir() {
            let place = Place::of_folder(&name);
            if hidden || !seen.note(&place, place.delivery_day(), selection) {
                walker.skip_current_dir();
            }
        } else if !hidden && (explicit_file || is_candidate(&entry.file_name().to_string_lossy())) {
            seen.note_file(&name, selection);
        }
    }
    seen
}

/// Reads one local file.
pub async fn read(name: &str, path: &Path) -> Result<Vec<u8>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(Missing(format!("no such file: {e}"))).context(format!("{name}: cannot read")))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("{name}: cannot read"))),
    }
}

fn walk(root: &Path, selection: &Selection, tx: &mpsc::Sender<Listed>) -> Result<Listing> {
    let mut listing = Listing::default();
    let explicit_file = root.is_file();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            (e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
                && (!e.file_type().is_dir() || selection.may_hold(&e.path().to_string_lossy()))
        });
    for entry in walker {
        let listed = match entry {
            Err(e) => {
                let name = e.path().unwrap_or(root).display().to_string();
                Listed::Unreadable {
                    name: name.into(),
                    reason: e.to_string(),
                }
            }
            Ok(entry) if entry.file_type().is_dir() => continue,
            Ok(entry) => {
                let path = entry.path();
                let name = path.display().to_string();
                if !selection.wants_file(&name) {
                    continue;
                } else if is_digest(&name) {
                    Listed::Digest(name.into())
                } else if !explicit_file && !is_candidate(&entry.file_name().to_string_lossy()) {
                    tracing::trace!("{name}: not a .json/.json.gz/.ndjson/.jsonl file, ignored");
                    continue;
                } else {
                    match entry.metadata() {
                        Ok(meta) => Listed::Object(SourceObject {
                            name: name.into(),
                            size: meta.len(),
                            version: format!(
                                "{}-{}",
                                meta.len(),
                                meta.modified()
                                    .ok()
                                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                    .map(|d| d.as_secs())
                                    .unwrap_or(0)
                            ),
                            location: Location::File(path.to_path_buf()),
                        }),
                        Err(e) => Listed::Unreadable {
                            name: name.into(),
                            reason: e.to_string(),
                        },
                    }
                }
            }
        };
        match &listed {
            Listed::Digest(_) => listing.digests += 1,
            Listed::Object(_) | Listed::Unreadable { .. } => listing.files += 1,
        }
        if tx.blocking_send(listed).is_err() {
            listing.stopped = true;
            return Ok(listing);
        }
    }
    Ok(listing)
}
