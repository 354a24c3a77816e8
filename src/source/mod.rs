//! Sources: where input files come from, and reading them.
//!
//! Owns turning the SOURCE arguments into a stream of [`SourceObject`]s and
//! reading one object's bytes: [`local`] walks folders of any depth in name
//! order (time order in the CloudTrail layout), [`s3`] lists buckets with the
//! CloudTrail layout in mind; both apply the same [`Selection`] through
//! [`layout`]. It knows which names are candidate log files and which are
//! digests; it does not look inside.
//!
//! Invariant: every object listed is either sent on to be read or reported
//! as skipped with its name; local walking never stops at one bad entry.

pub mod layout;
pub mod local;
pub mod s3;

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

/// Why an object could not be read: it is not there (any more).
#[derive(Debug, thiserror::Error)]
#[error("no such object: {0}")]
pub struct Missing(pub String);

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
        match self {
            Source::Local { path, selection } => local::list(path.clone(), selection.clone(), tx.clone()).await,
            Source::S3 {
                s3,
                bucket,
                prefix,
                selection,
            } => s3.list(bucket, prefix, selection, tx).await,
            Source::Known(objects) => {
                for object in objects {
                    if tx.send(Listed::Object(object.clone())).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
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
                from: layout::parse_day("2024-03-02").ok(),
                to: None,
            },
            windows: Default::default(),
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
}
