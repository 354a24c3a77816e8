//! Committing an export run to its output folder, exactly once.
//!
//! A run's lines are first written to staging files (one per output), in the
//! folder's work area `.ctindex/`. Then a journal names, for every output,
//! its length before the run and its staging file, and the sync records the
//! run completes; only then are the staging files appended to the outputs,
//! and the records saved. If the process dies at any point, the next run
//! finds the journal and finishes the appends from where the outputs stand
//! (an output already longer by the staged length is complete), so a monitor
//! tailing the outputs sees every line once: never half a run, never a run
//! twice.
//!
//! Invariant: an output only ever grows by whole lines, in journal order.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::LineWriter;
use crate::state::Finish;

/// The work area inside an output folder: lock, journal, staging, sort runs
/// and (by default) the `--incremental` state.
pub const WORK_DIR: &str = ".ctindex";
const JOURNAL: &str = "journal.json";
const STAGE_DIR: &str = "stage";

/// One output's share of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    /// The output, relative to the folder (`<account>/cloudtrail_<region>.log`).
    pub output: String,
    /// The staging file's name in the staging folder.
    pub stage: String,
    /// Bytes staged.
    pub len: u64,
    /// The output's length before the run (filled in by [`commit`]).
    #[serde(default)]
    pub base: u64,
}

/// What a run adds: output bytes, and the sync records it completes, per source.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Journal {
    pub files: Vec<Staged>,
    #[serde(default)]
    pub records: Vec<Finish>,
}

/// The output folder of an export, held for the run (a lock in its work area).
#[derive(Debug)]
pub struct Folder {
    root: PathBuf,
    _lock: File,
}

impl Folder {
    /// Creates and locks the folder. Fails when another export holds it.
    pub fn open(root: &Path) -> Result<Folder> {
        let work = root.join(WORK_DIR);
        std::fs::create_dir_all(work.join(STAGE_DIR))
            .with_context(|| format!("cannot create the output folder {}", work.display()))?;
        let lock_path = work.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another ctindex export is writing to {} (it holds {}); run one export per folder at a time",
                root.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("cannot lock {}", lock_path.display())));
            }
        }
        Ok(Folder {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The work area (sort runs, default state file).
    pub fn work(&self) -> PathBuf {
        self.root.join(WORK_DIR)
    }

    fn stage_dir(&self) -> PathBuf {
        self.work().join(STAGE_DIR)
    }

    fn journal_path(&self) -> PathBuf {
        self.work().join(JOURNAL)
    }

    /// A writer of staging files for this run.
    pub fn stager(&self) -> Result<Stager> {
        // Leftovers of a run that died before its journal: never committed.
        let dir = self.stage_dir();
        if !self.journal_path().exists()
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Stager {
            dir,
            files: Vec::new(),
            current: None,
        })
    }

    /// Finishes the commit of a run that died half-way, if any. Returns its
    /// journal: its records must still be saved, then [`Folder::clear`] called.
    pub fn recover(&self) -> Result<Option<Journal>> {
        let path = self.journal_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        };
        let journal: Journal = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is damaged; move it away (its run's lines may then be missing from the outputs)",
                path.display()
            )
        })?;
        tracing::warn!(
            "{}: an earlier export stopped while appending its lines; finishing it",
            self.root.display()
        );
        self.apply(&journal)?;
        Ok(Some(journal))
    }

    /// Journals the run, then appends its staged lines to the outputs.
    /// Returns the journal: save its records, then call [`Folder::clear`].
    pub fn commit(&self, files: Vec<Staged>, records: Vec<Finish>) -> Result<Journal> {
        let mut journal = Journal { files, records };
        for staged in &mut journal.files {
            staged.base = match std::fs::metadata(self.root.join(&staged.output)) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("cannot read {}", staged.output)));
                }
            };
        }
        let path = self.journal_path();
        let tmp = path.with_extension("json.tmp");
        write_synced(&tmp, &serde_json::to_vec(&journal)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        sync_dir(&self.work());
        self.apply(&journal)?;
        Ok(journal)
    }

    /// Appends what each output still lacks of its staged lines.
    fn apply(&self, journal: &Journal) -> Result<()> {
        for staged in &journal.files {
            let output = self.root.join(&staged.output);
            if let Some(parent) = output.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let mut out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&output)
                .with_context(|| format!("cannot open {} for appending", output.display()))?;
            let now = out
                .metadata()
                .with_context(|| format!("cannot read {}", output.display()))?
                .len();
            let skip = if now >= staged.base + staged.len {
                continue;
            } else if now >= staged.base {
                now - staged.base
            } else {
                // Shorter than before the run: rotated or truncated since.
                // Appending everything may repeat lines; skipping may lose them.
                tracing::warn!(
                    "{}: shorter than when the interrupted export began (rotated?): appending its lines again",
                    output.display()
                );
                0
            };
            let stage_path = self.stage_dir().join(&staged.stage);
            let mut stage = File::open(&stage_path)
                .with_context(|| format!("cannot open the staged lines {}", stage_path.display()))?;
            stage
                .seek(SeekFrom::Start(skip))
                .with_context(|| format!("cannot read {}", stage_path.display()))?;
            std::io::copy(&mut Read::by_ref(&mut stage).take(staged.len - skip), &mut out)
                .with_context(|| format!("cannot append to {}", output.display()))?;
            out.sync_data()
                .with_context(|| format!("cannot sync {}", output.display()))?;
        }
        Ok(())
    }

    /// Ends a commit whose records are saved: removes the journal and the staging files.
    pub fn clear(&self, journal: &Journal) -> Result<()> {
        let path = self.journal_path();
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        sync_dir(&self.work());
        for staged in &journal.files {
            let _ = std::fs::remove_file(self.stage_dir().join(&staged.stage));
        }
        Ok(())
    }
}

/// Writes the merged lines of a run into staging files, one per output.
pub struct Stager {
    dir: PathBuf,
    files: Vec<Staged>,
    current: Option<BufWriter<File>>,
}

impl Stager {
    /// What was staged.
    pub fn into_staged(self) -> Vec<Staged> {
        self.files
    }

    fn close(&mut self) -> Result<()> {
        if let Some(mut writer) = self.current.take() {
            writer.flush().context("cannot write a staging file")?;
            let file = writer
                .into_inner()
                .map_err(|e| e.into_error())
                .context("cannot write a staging file")?;
            file.sync_data().context("cannot sync a staging file")?;
        }
        Ok(())
    }
}

impl LineWriter for Stager {
    fn start(&mut self, output: &str) -> Result<()> {
        self.close()?;
        let stage = format!("{}.part", self.files.len());
        let path = self.dir.join(&stage);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        self.current = Some(BufWriter::with_capacity(1 << 20, file));
        self.files.push(Staged {
            output: output.to_string(),
            stage,
            len: 0,
            base: 0,
        });
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        let (Some(writer), Some(staged)) = (self.current.as_mut(), self.files.last_mut()) else {
            anyhow::bail!("internal: a line before its output");
        };
        writer.write_all(line).context("cannot write a staging file")?;
        writer.write_all(b"\n").context("cannot write a staging file")?;
        staged.len += line.len() as u64 + 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.close()
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a rename in `dir` durable (where the platform allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(folder: &Folder, outputs: &[(&str, &[&str])]) -> Vec<Staged> {
        let mut stager = folder.stager().unwrap();
        for (output, lines) in outputs {
            stager.start(output).unwrap();
            for line in *lines {
                stager.line(line.as_bytes()).unwrap();
            }
        }
        stager.finish().unwrap();
        stager.into_staged()
    }

    fn read(folder: &Folder, output: &str) -> String {
        std::fs::read_to_string(folder.root().join(output)).unwrap_or_default()
    }

    #[test]
    fn commits_append_and_an_interrupted_commit_is_finished_once() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        // A second export on the same folder is refused while this one holds it.
        let busy = Folder::open(dir.path()).unwrap_err().to_string();
        assert!(busy.contains("another ctindex export"), "{busy}");

        let files = stage(&folder, &[("1/a.log", &["a1", "a2"]), ("2/b.log", &["b1"])]);
        let journal = folder.commit(files, Vec::new()).unwrap();
        folder.clear(&journal).unwrap();
        assert_eq!(read(&folder, "1/a.log"), "a1\na2\n");
        assert_eq!(read(&folder, "2/b.log"), "b1\n");
        assert!(folder.recover().unwrap().is_none());

        // The next run dies after its journal, half-way through appending a.log.
        let files = stage(&folder, &[("1/a.log", &["a3", "a4"]), ("2/b.log", &["b2"])]);
        let journal = Journal {
            files: files
                .into_iter()
                .map(|s| Staged {
                    base: std::fs::metadata(folder.root().join(&s.output)).unwrap().len(),
                    ..s
                })
                .collect(),
            records: vec![Finish {
                source: "src".into(),
                ..Finish::default()
            }],
        };
        std::fs::write(folder.journal_path(), serde_json::to_vec(&journal).unwrap()).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(folder.root().join("1/a.log"))
            .unwrap()
            .write_all(b"a3\n")
            .unwrap();
        drop(folder);

        // Recovery appends exactly what is missing, hands back the records, and only once.
        let folder = Folder::open(dir.path()).unwrap();
        let recovered = folder.recover().unwrap().unwrap();
        assert_eq!(recovered.records.len(), 1);
        assert_eq!(read(&folder, "1/a.log"), "a1\na2\na3\na4\n");
        assert_eq!(read(&folder, "2/b.log"), "b1\nb2\n");
        folder.clear(&recovered).unwrap();
        assert!(folder.recover().unwrap().is_none());
        assert_eq!(read(&folder, "1/a.log"), "a1\na2\na3\na4\n");

        // Staging files of a run that died before its journal are dropped.
        let _ = stage(&folder, &[("1/a.log", &["never"])]);
        let _stager = folder.stager().unwrap();
        assert_eq!(std::fs::read_dir(folder.stage_dir()).unwrap().count(), 0);
        assert_eq!(read(&folder, "1/a.log"), "a1\na2\na3\na4\n");
    }
}
