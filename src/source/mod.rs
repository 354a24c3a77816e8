//! Sources: where input files come from, and reading them.
//!
//! Owns turning the SOURCE arguments into a stream of [`SourceObject`]s and
//! reading one object's bytes: [`local`] walks folders of any depth in name
//! order (time order in the CloudTrail layout), [`s3`] lists buckets with the
//! CloudTrail layout in mind. It knows which names are candidate log files
//! and which are digests; it does not look inside.
//!
//! Invariant: every object listed is either sent on to be read or reported
//! as skipped with its name; listing never stops at one bad entry.

pub mod local;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

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

/// One SOURCE argument.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file or folder (a mirror of the S3 layout, or any folder).
    Local(PathBuf),
    /// `s3://bucket/prefix`, optionally limited to a range of delivery days.
    S3 {
        s3: Arc<S3>,
        bucket: String,
        prefix: String,
        days: Option<s3::Days>,
    },
}

impl Source {
    /// Parses a SOURCE argument: `s3://…` (needs the S3 client) or a local
    /// path, which must exist.
    pub fn parse(arg: &str, s3: Option<&Arc<S3>>) -> Result<Source> {
        if arg.starts_with("s3://") {
            let (bucket, prefix) = s3::parse_url(arg)?;
            let s3 = s3.context("internal: S3 source without an S3 client")?.clone();
            return Ok(Source::S3 {
                s3,
                bucket,
                prefix,
                days: None,
            });
        }
        let path = PathBuf::from(arg);
        std::fs::metadata(&path).with_context(|| format!("source {arg} cannot be read (is the path right?)"))?;
        Ok(Source::Local(path))
    }

    /// A stable name for the source, for sync state: the S3 URL, or the
    /// canonical local path.
    pub fn id(&self) -> String {
        match self {
            Source::Local(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Lists the source's candidate files into `tx`.
    /// Returns early (Ok) when the receiver is gone.
    pub async fn list(&self, tx: &mpsc::Sender<Listed>) -> Result<()> {
        match self {
            Source::Local(root) => local::list(root.clone(), tx.clone()).await,
            Source::S3 {
                s3,
                bucket,
                prefix,
                days,
            } => s3.list(bucket, prefix, *days, tx).await,
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
