//! Sources: where input files come from, and reading them.
//!
//! Owns turning the SOURCE arguments into a stream of [`SourceObject`]s
//! (walking local folders of any depth, in name order, which is time order in
//! the CloudTrail layout) and reading one object's bytes. It knows which names
//! are candidate log files and which are digests; it does not look inside.
//!
//! Invariant: every object listed is either sent on to be read or reported
//! as skipped with its name; listing never stops at one bad entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;

/// One input file.
#[derive(Debug, Clone)]
pub struct SourceObject {
    /// What messages call it: the path as found.
    pub name: Arc<str>,
    pub size: u64,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
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

/// One SOURCE argument.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file or folder (a mirror of the S3 layout, or any folder).
    Local(PathBuf),
}

impl Source {
    /// Parses a SOURCE argument; the path must exist.
    pub fn parse(arg: &str) -> Result<Source> {
        if arg.starts_with("s3://") {
            bail!(
                "{arg}: S3 sources are not supported by this build yet; mirror the bucket locally (aws s3 sync) and import the folder"
            );
        }
        let path = PathBuf::from(arg);
        std::fs::metadata(&path).with_context(|| format!("source {arg} cannot be read (is the path right?)"))?;
        Ok(Source::Local(path))
    }

    /// Lists the source's candidate files into `tx`, in name order.
    /// Returns early (Ok) when the receiver is gone.
    pub async fn list(&self, tx: &mpsc::Sender<Listed>) -> Result<()> {
        match self {
            Source::Local(root) => list_local(root.clone(), tx.clone()).await,
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

async fn list_local(root: PathBuf, tx: mpsc::Sender<Listed>) -> Result<()> {
    tokio::task::spawn_blocking(move || walk(&root, &tx))
        .await
        .context("the folder listing task failed")?
}

fn walk(root: &Path, tx: &mpsc::Sender<Listed>) -> Result<()> {
    let explicit_file = root.is_file();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
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
                if is_digest(&name) {
                    Listed::Digest(name.into())
                } else if !explicit_file && !is_candidate(&entry.file_name().to_string_lossy()) {
                    tracing::trace!("{name}: not a .json/.json.gz/.ndjson/.jsonl file, ignored");
                    continue;
                } else {
                    match entry.metadata() {
                        Ok(meta) => Listed::Object(SourceObject {
                            name: name.into(),
                            size: meta.len(),
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
        if tx.blocking_send(listed).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

impl SourceObject {
    /// Reads the whole object.
    pub async fn read(&self) -> Result<Vec<u8>> {
        match &self.location {
            Location::File(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("{}: cannot read", self.name)),
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
        Source::Local(root.to_path_buf()).list(&tx).await.unwrap();
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
}
