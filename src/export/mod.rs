//! Export: events as lines in files (or on stdout) instead of a cluster.
//!
//! The pipeline encodes every event as one record — its output file, its sort
//! key (event time), its id and its line (see [`format`]) — and hands batches
//! of records to the [`Exporter`]. The exporter keeps them in memory up to a
//! budget, spills sorted runs to disk beyond it, and at the end merges the
//! runs, so that each output gets its events in time order, each event id
//! once, whatever the size of the run. [`commit`] then appends the result to
//! the output files so that a crash never leaves half a run behind nor
//! writes it twice.
//!
//! Invariant: a record's bytes are `<output>\t<time>\t<id>\t<line>`, with
//! no tab in the first three fields and no newline anywhere, so sorting the
//! raw bytes sorts by output, time and id, and equal events are neighbours.

pub mod commit;
pub mod format;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::progress::Stats;
use crate::sink::bulk::{Batch, Origin};
use crate::transform::Document;
use format::Format;

/// How records are made for one run.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: Format,
    /// One output per account and region (a folder), or a single one (stdout).
    pub route: bool,
}

impl Encoder {
    /// Appends one event to `batch` as an export record.
    pub fn push(&self, doc: &impl Document, source_name: &str, origin: Origin, batch: &mut Batch) {
        batch.push_entry(
            origin,
            |head| {
                if self.route {
                    head.extend_from_slice(format::route(doc, source_name, self.format).as_bytes());
                }
                head.push(b'\t');
                format::escape_field(&format::sort_time(doc), head);
                head.push(b'\t');
                format::escape_field(doc.id(), head);
            },
            |line| format::write_line(self.format, doc, source_name, line),
        );
    }
}

/// Sorts and deduplicates the records of one run, within a memory budget.
pub struct Exporter {
    inner: Mutex<Sorter>,
    stats: Arc<Stats>,
}

struct Sorter {
    /// Records in memory, each followed by a newline.
    arena: Vec<u8>,
    /// (start, end) of each record in `arena`, without the newline.
    records: Vec<(usize, usize)>,
    budget: usize,
    /// Sorted runs already spilled to disk.
    runs: Vec<PathBuf>,
    spill_dir: PathBuf,
}

/// Where merged records go.
pub trait LineWriter {
    /// One record's output changed (or the first record came).
    fn start(&mut self, output: &str) -> Result<()>;
    fn line(&mut self, line: &[u8]) -> Result<()>;
    fn finish(&mut self) -> Result<()>;
}

impl Exporter {
    /// An exporter that keeps up to `budget` bytes of records in memory and
    /// spills sorted runs into `spill_dir` beyond that.
    pub fn new(budget: usize, spill_dir: PathBuf, stats: Arc<Stats>) -> Exporter {
        Exporter {
            inner: Mutex::new(Sorter {
                arena: Vec::new(),
                records: Vec::new(),
                budget: budget.max(1 << 20),
                runs: Vec::new(),
                spill_dir,
            }),
            stats,
        }
    }

    /// Takes the records of a batch (spilling to disk when over budget).
    pub fn add(&self, batch: &Batch) -> Result<()> {
        let mut sorter = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..batch.len() {
            let start = sorter.arena.len();
            sorter.arena.extend_from_slice(batch.head_bytes(i));
            sorter.arena.push(b'\t');
            sorter.arena.extend_from_slice(batch.doc_bytes(i));
            let end = sorter.arena.len();
            sorter.arena.push(b'\n');
            sorter.records.push((start, end));
        }
        if sorter.arena.len() >= sorter.budget {
            sorter.spill()?;
        }
        Ok(())
    }

    /// Merges everything taken into `sink`, in order, each event once.
    pub fn finish(self, sink: &mut dyn LineWriter) -> Result<()> {
        let mut sorter = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut merged = Merged::new(&self.stats, sink);
        if sorter.runs.is_empty() {
            sorter.sort();
            for &(start, end) in &sorter.records {
                merged.record(&sorter.arena[start..end])?;
            }
        } else {
            if !sorter.records.is_empty() {
                sorter.spill()?;
            }
            merge_runs(&sorter.runs, &mut merged)?;
            for run in &sorter.runs {
                let _ = std::fs::remove_file(run);
            }
        }
        merged.sink.finish()
    }
}

impl Sorter {
    fn sort(&mut self) {
        let arena = &self.arena;
        self.records
            .sort_unstable_by(|a, b| arena[a.0..a.1].cmp(&arena[b.0..b.1]));
    }

    /// Writes the records in memory to a new sorted run and frees the memory.
    fn spill(&mut self) -> Result<()> {
        self.sort();
        std::fs::create_dir_all(&self.spill_dir)
            .with_context(|| format!("cannot create the sort folder {}", self.spill_dir.display()))?;
        let path = self
            .spill_dir
            .join(format!("run-{}-{}", std::process::id(), self.runs.len()));
        let file = File::create(&path).with_context(|| format!("cannot create the sort run {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for &(start, end) in &self.records {
            out.write_all(&self.arena[start..=end])
                .with_context(|| format!("cannot write the sort run {}", path.display()))?;
        }
        out.flush()
            .with_context(|| format!("cannot write the sort run {}", path.display()))?;
        tracing::debug!(
            "spilled {} records ({} bytes) to {}",
            self.records.len(),
            self.arena.len(),
            path.display()
        );
        self.runs.push(path);
        self.records.clear();
        self.arena.clear();
        Ok(())
    }
}

/// k-way merge of sorted runs.
fn merge_runs(runs: &[PathBuf], merged: &mut Merged<'_>) -> Result<()> {
    let mut readers = runs
        .iter()
        .map(|path| {
            File::open(path)
                .map(|f| BufReader::with_capacity(256 << 10, f))
                .with_context(|| format!("cannot open the sort run {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::new();
    for (n, reader) in readers.iter_mut().enumerate() {
        if let Some(record) = next_record(reader, &runs[n])? {
            heap.push(Reverse((record, n)));
        }
    }
    while let Some(Reverse((record, n))) = heap.pop() {
        merged.record(&record)?;
        if let Some(next) = next_record(&mut readers[n], &runs[n])? {
            heap.push(Reverse((next, n)));
        }
    }
    Ok(())
}

fn next_record(reader: &mut BufReader<File>, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    let n = reader
        .read_until(b'\n', &mut record)
        .with_context(|| format!("cannot read the sort run {}", path.display()))?;
    if n == 0 {
        return Ok(None);
    }
    if record.last() == Some(&b'\n') {
        record.pop();
    }
    Ok(Some(record))
}

/// The end of the merge: drops repeated events, follows output changes.
struct Merged<'a> {
    stats: &'a Stats,
    sink: &'a mut dyn LineWriter,
    output: Option<Vec<u8>>,
    /// `<output>\t<time>\t<id>` of the last record written.
    last_key: Vec<u8>,
}

impl<'a> Merged<'a> {
    fn new(stats: &'a Stats, sink: &'a mut dyn LineWriter) -> Self {
        Merged {
            stats,
            sink,
            output: None,
            last_key: Vec::new(),
        }
    }

    fn record(&mut self, record: &[u8]) -> Result<()> {
        let (key, line) = split_record(record)?;
        if self.output.is_some() && key == self.last_key.as_slice() {
            Stats::add(&self.stats.duplicates, 1);
            return Ok(());
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        let output = key.split(|&b| b == b'\t').next().unwrap_or_default();
        if self.output.as_deref() != Some(output) {
            self.sink.start(&String::from_utf8_lossy(output))?;
            self.output = Some(output.to_vec());
        }
        self.sink.line(line)?;
        Stats::add(&self.stats.written, 1);
        Ok(())
    }
}

/// Splits a record into its key (`<output>\t<time>\t<id>`) and its line.
fn split_record(record: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut tabs = record.iter().enumerate().filter(|(_, b)| **b == b'\t').map(|(i, _)| i);
    match (tabs.next(), tabs.next(), tabs.next()) {
        (Some(_), Some(_), Some(third)) => Ok((&record[..third], &record[third + 1..])),
        _ => anyhow::bail!("internal: a sort record without its three key fields"),
    }
}

/// Lines to stdout (a single output). A closed pipe (`| head`) ends the
/// writing quietly, as it does for other command-line tools.
pub struct Stdout {
    out: BufWriter<std::io::Stdout>,
    closed: bool,
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout {
            out: BufWriter::with_capacity(1 << 20, std::io::stdout()),
            closed: false,
        }
    }
}

impl Stdout {
    fn check(&mut self, result: std::io::Result<()>) -> Result<()> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other.context("cannot write to stdout"),
        }
    }
}

impl LineWriter for Stdout {
    fn start(&mut self, _output: &str) -> Result<()> {
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.out.write_all(line).and_then(|()| self.out.write_all(b"\n"));
        self.check(result)
    }

    fn finish(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.out.flush();
        self.check(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Doc;
    use serde_json::json;

    /// Collects what a merge writes, per output.
    #[derive(Default)]
    struct Collect(Vec<(String, Vec<String>)>);

    impl LineWriter for Collect {
        fn start(&mut self, output: &str) -> Result<()> {
            self.0.push((output.to_string(), Vec::new()));
            Ok(())
        }
        fn line(&mut self, line: &[u8]) -> Result<()> {
            let last = self.0.last_mut().unwrap();
            last.1.push(String::from_utf8(line.to_vec()).unwrap());
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn batch(events: &[serde_json::Value], encoder: &Encoder) -> Batch {
        let mut batch = Batch::default();
        for (i, e) in events.iter().enumerate() {
            let doc = Doc {
                index: String::new(),
                id: e["eventID"].as_str().unwrap().to_string(),
                source: e.as_object().cloned().unwrap(),
            };
            encoder.push(
                &doc,
                "f",
                Origin {
                    file: 0,
                    record: i as u32,
                },
                &mut batch,
            );
        }
        batch
    }

    fn run(budget: usize, batches: &[Vec<serde_json::Value>]) -> (Vec<(String, Vec<String>)>, u64, usize) {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let exporter = Exporter::new(budget, dir.path().join("sort"), stats.clone());
        let encoder = Encoder {
            format: Format::Ndjson,
            route: true,
        };
        for events in batches {
            exporter.add(&batch(events, &encoder)).unwrap();
            // Force a spill after every batch when asked to (budget 0).
            if budget == 0 {
                exporter.inner.lock().unwrap().spill().unwrap();
            }
        }
        let runs = exporter.inner.lock().unwrap().runs.len();
        let mut out = Collect::default();
        exporter.finish(&mut out).unwrap();
        let ids = out
            .0
            .into_iter()
            .map(|(o, lines)| {
                let ids = lines
                    .iter()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).unwrap()["eventID"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                (o, ids)
            })
            .collect();
        assert_eq!(
            std::fs::read_dir(dir.path().join("sort"))
                .map(|d| d.count())
                .unwrap_or(0),
            0
        );
        (ids, Stats::get(&stats.duplicates), runs)
    }

    fn ev(id: &str, account: &str, time: &str) -> serde_json::Value {
        json!({"eventID": id, "recipientAccountId": account, "awsRegion": "us-east-1", "eventTime": time})
    }

    #[test]
    fn merges_in_time_order_per_output_and_drops_repeats_in_memory_and_on_disk() {
        let batches = vec![
            vec![
                ev("c", "111111111111", "2024-01-01T00:00:03Z"),
                ev("a", "222222222222", "2024-01-01T00:00:09Z"),
            ],
            vec![
                ev("b", "111111111111", "2024-01-01T00:00:01Z"),
                ev("c", "111111111111", "2024-01-01T00:00:03Z"),
            ],
            vec![
                ev("d", "111111111111", "2024-01-01T00:00:02Z"),
                ev("a", "222222222222", "2024-01-01T00:00:09Z"),
            ],
        ];
        let want = vec![
            (
                "111111111111/cloudtrail_us-east-1.ndjson".to_string(),
                vec!["b".to_string(), "d".into(), "c".into()],
            ),
            (
                "222222222222/cloudtrail_us-east-1.ndjson".to_string(),
                vec!["a".to_string()],
            ),
        ];
        let (in_memory, dups, runs) = run(64 << 20, &batches);
        assert_eq!((in_memory, dups, runs), (want.clone(), 2, 0));
        let (spilled, dups, runs) = run(0, &batches);
        assert_eq!((spilled, dups, runs), (want, 2, 3));
    }
}
