//! Dead letters: the events ctindex read but could not index, with the reason.
//!
//! Owns the dead-letter NDJSON file: one line per event or rejected value,
//! `{"time", "reason", "source", "position", "index", "id", "event"}`. The file
//! is created on the first write only, appended to (a rerun never loses the
//! previous run's letters), and flushed at the end of the run.
//!
//! Writing blocks: callers on the async runtime make their [`Letters`]
//! first and hand them to [`DeadLetters::append_async`], which writes on a
//! blocking thread; the pipeline's decoders, on blocking threads already,
//! write directly.
//!
//! Invariant: every event that was read and not acknowledged by the cluster
//! ends up here exactly once, as the exit code 3 promises.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

/// The dead-letter file of one run.
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    /// Opened on first use, so a clean run leaves no file behind.
    file: Mutex<Option<BufWriter<File>>>,
    count: AtomicU64,
}

/// One dead letter's context.
pub struct Letter<'a> {
    pub reason: &'a str,
    pub source: &'a str,
    pub position: &'a str,
    pub index: Option<&'a str>,
    pub id: Option<&'a str>,
}

impl DeadLetters {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DeadLetters {
            path: path.into(),
            file: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many letters this run wrote.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes a letter whose event is a parsed value (or none).
    pub fn write_value(&self, letter: &Letter<'_>, event: Option<&Value>) -> Result<()> {
        let raw = match event {
            Some(v) => serde_json::to_vec(v).context("cannot encode a dead letter")?,
            None => b"null".to_vec(),
        };
        self.write_raw(letter, &raw)
    }

    /// Writes a letter whose event is already-encoded JSON (from a blocking
    /// thread: on the async runtime, use [`DeadLetters::append_async`]).
    pub fn write_raw(&self, letter: &Letter<'_>, event_json: &[u8]) -> Result<()> {
        let mut letters = Letters::default();
        letters.push(letter, event_json);
        self.append(letters)
    }

    /// Appends letters made beforehand, off the async threads (file I/O
    /// blocks). Their count is added once they are written.
    pub async fn append_async(self: &Arc<Self>, letters: Letters) -> Result<()> {
        if letters.count == 0 {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append(letters))
            .await
            .context("the dead-letter writer failed")?
    }

    /// Appends letters made beforehand (blocking).
    pub fn append(&self, letters: Letters) -> Result<()> {
        if letters.count == 0 {
            return Ok(());
        }
        let mut guard = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the folder of the dead-letter file {}",
                        self.path.display()
                    )
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(|| {
                    format!(
                        "cannot open the dead-letter file {} (set --dead-letter)",
                        self.path.display()
                    )
                })?;
            *guard = Some(BufWriter::new(file));
        }
        if let Some(writer) = guard.as_mut() {
            writer
                .write_all(&letters.lines)
                .with_context(|| format!("cannot write to the dead-letter file {}", self.path.display()))?;
        }
        self.count.fetch_add(letters.count, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&self) -> Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(writer) = guard.as_mut() {
            writer
                .flush()
                .with_context(|| format!("cannot write the dead-letter file {}", self.path.display()))?;
            writer.get_ref().sync_data().ok();
        }
        Ok(())
    }
}

/// Dead letters made, not yet written: NDJSON lines and their count.
#[derive(Debug, Default)]
pub struct Letters {
    lines: Vec<u8>,
    count: u64,
}

impl Letters {
    /// How many letters are held.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds a letter whose event is already-encoded JSON.
    pub fn push(&mut self, letter: &Letter<'_>, event_json: &[u8]) {
        let line = &mut self.lines;
        line.reserve(event_json.len() + 256);
        // Writing JSON strings to a Vec cannot fail.
        let string = |line: &mut Vec<u8>, s: &str| {
            let _ = serde_json::to_writer(&mut *line, s);
        };
        line.extend_from_slice(b"{\"time\":");
        string(line, &crate::date::now_rfc3339());
        line.extend_from_slice(b",\"reason\":");
        string(line, letter.reason);
        line.extend_from_slice(b",\"source\":");
        string(line, letter.source);
        line.extend_from_slice(b",\"position\":");
        string(line, letter.position);
        if let Some(index) = letter.index {
            line.extend_from_slice(b",\"index\":");
            string(line, index);
        }
        if let Some(id) = letter.id {
            line.extend_from_slice(b",\"id\":");
            string(line, id);
        }
        line.extend_from_slice(b",\"event\":");
        line.extend_from_slice(event_json);
        line.extend_from_slice(b"}\n");
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_ndjson_and_the_file_appears_on_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dead.ndjson");
        let dlq = DeadLetters::new(&path);
        dlq.flush().unwrap();
        assert!(!path.exists());
        let letter = Letter {
            reason: "mapper \"x\"",
            source: "a.json",
            position: "record 2",
            index: Some("i"),
            id: Some("e"),
        };
        dlq.write_raw(&letter, br#"{"eventID":"e"}"#).unwrap();
        dlq.write_value(
            &Letter {
                index: None,
                id: None,
                ..letter
            },
            Some(&serde_json::json!([1])),
        )
        .unwrap();
        dlq.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "mapper \"x\"");
        assert_eq!(lines[0]["event"]["eventID"], "e");
        assert_eq!(lines[1]["event"], serde_json::json!([1]));
        assert!(lines[1].get("index").is_none());
        assert_eq!(dlq.count(), 2);
    }
}
