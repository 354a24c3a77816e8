//! What a run tells its user: the summary's arithmetic and details,
//! `--list`, and the progress display on a real terminal (tmux).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// The files an import of `dir` finds, by an independent walk: (files, bytes)
/// of the candidates that are not digest files, and the digest files.
fn walk(dir: &Path) -> (u64, u64, u64) {
    let (mut files, mut bytes, mut digests) = (0, 0, 0);
    for p in support::files_below(dir) {
        let name = p.to_string_lossy().to_string();
        let lower = name.to_ascii_lowercase();
        let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
        if ![".json", ".ndjson", ".jsonl"].iter().any(|e| stem.ends_with(e)) {
            continue;
        }
        if name.contains("CloudTrail-Digest") {
            digests += 1;
        } else {
            files += 1;
            bytes += std::fs::metadata(&p).unwrap().len();
        }
    }
    (files, bytes, digests)
}

fn number(line: &str, pattern: &str) -> Option<u64> {
    regex_lite::Regex::new(pattern)
        .unwrap()
        .captures(line)
        .map(|c| c[1].parse().unwrap())
}

#[test]
fn the_summary_adds_up_and_says_where_the_events_went() {
    let clusters = support::clusters("the_summary_adds_up_and_says_where_the_events_went");
    let Some(cluster) = clusters.first() else { return };
    let source = support::fixtures().join("trail");
    let prefix = support::prefix("summary");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let run = support::ctindex(&[
        "import",
        source.to_str().unwrap(),
        "--url",
        &cluster.url,
        "--index-prefix",
        &prefix,
        "--summary-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut lines = run.stdout.lines();
    let line = lines.next().unwrap();
    // Files found = read + skipped + digest, and the walk agrees.
    let found = number(line, r"^(\d+) files").unwrap();
    let read = number(line, r"(\d+) read").unwrap();
    let skipped = number(line, r"(\d+) skipped \(").unwrap_or(0);
    let digest = number(line, r"(\d+) digest").unwrap_or(0);
    assert_eq!(found, read + skipped + digest, "{line}");
    let (files, _, digests) = walk(&source);
    assert_eq!((found, digest), (files + digests, digests), "{line}");
    assert!(!line.contains(" skipped,"), "values are not called skipped: {line}");
    assert!(line.contains("values not events"), "{line}");

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events = summary["events_read"].as_u64().unwrap();
    let by_place: u64 = summary["accounts"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|regions| regions.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_place, events, "per account and region: {}", summary["accounts"]);
    let by_index: BTreeMap<String, u64> = summary["indices"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(by_index.values().sum::<u64>(), events);
    for (index, n) in &by_index {
        let count = cluster.count(index, serde_json::json!({"match_all": {}}));
        assert_eq!(count, *n, "{index}");
    }

    let details: Vec<&str> = lines.collect();
    let text = details.join("\n");
    assert!(text.contains(&format!("under the alias {prefix}")), "{text}");
    for index in by_index.keys() {
        assert!(text.contains(index.as_str()), "{index} not named: {text}");
    }
    assert!(
        text.contains("by account and region: 218007301253: us-east-1"),
        "{text}"
    );
    assert!(
        text.contains("next: search the alias") && text.contains("ctindex dashboards install"),
        "{text}"
    );
    cluster.cleanup(&prefix);
}

#[test]
fn list_counts_what_an_import_reads_without_reading_it() {
    let source = support::fixtures().join("trail");
    let run = support::ctindex(&["import", source.to_str().unwrap(), "--list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let total = run.stdout.lines().last().unwrap();
    let (files, bytes, digests) = walk(&source);
    assert_eq!(number(total, r"total: (\d+) files"), Some(files), "{total}");
    assert_eq!(number(total, r"(\d+) bytes"), Some(bytes), "{total}");
    assert_eq!(number(total, r"(\d+) digest file"), Some(digests), "{total}");
    // One row per account, region and day, adding up to the total.
    let rows: u64 = run
        .stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, files);
    // And a dry run reads exactly those files.
    let dry = support::ctindex(&["import", source.to_str().unwrap(), "--dry-run"]);
    let line = dry.stdout.lines().next().unwrap();
    let read = number(line, r"(\d+) read").unwrap() + number(line, r"(\d+) skipped \(").unwrap_or(0);
    assert_eq!(read, files, "{line}");
    assert!(run.stderr.is_empty() || !run.stderr.contains("ERROR"), "{}", run.stderr);
}

/// The progress bars on a real terminal: they show the indexing rate, stay
/// in one piece while warnings scroll above them, and are gone when the
/// summary is printed.
#[test]
fn progress_bars_on_a_terminal_show_the_indexing_rate_under_the_warnings() {
    let clusters = support::clusters("progress_bars_on_a_terminal_show_the_indexing_rate_under_the_warnings");
    let Some(cluster) = clusters.first() else { return };
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() != Ok("1"),
            "tmux is needed for the terminal test (apt-get install tmux)"
        );
        support::loud("SKIPPED the terminal test: no tmux");
        return;
    }
    // The corpus has files that warn; small requests one at a time make the run last.
    let source = support::corpus().unwrap_or_else(support::fixtures);
    let prefix = support::prefix("tty");
    let dir = tempfile::tempdir().unwrap();
    let session = format!("ctindex-tty-{}", std::process::id());
    let done = dir.path().join("done");
    let script = format!(
        "{} import {} --url {} --index-prefix {prefix} --batch-bytes 64KB --concurrency 1 \
         --dead-letter {}/dead.ndjson; echo $? > {}; sleep 600",
        env!("CARGO_BIN_EXE_ctindex"),
        source.display(),
        cluster.url,
        dir.path().display(),
        done.display()
    );
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let capture = || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rate = regex_lite::Regex::new(r"events \S \d+ read, \d+ indexed \(\d+/s now\), \d+ failed").unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen_rate = false;
    let mut screens = 0;
    while !done.exists() {
        assert!(Instant::now() < deadline, "the import did not end: {}", capture());
        let screen = capture();
        let bar_lines: Vec<usize> = screen
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("files [") || l.trim_start().starts_with("bytes ["))
            .map(|(i, _)| i)
            .collect();
        if !bar_lines.is_empty() {
            screens += 1;
            // Each bar once, whole, below every warning.
            assert!(bar_lines.len() <= 2, "bars drawn twice:\n{screen}");
            let last_warning = screen
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains("WARN"))
                .map(|(i, _)| i)
                .max();
            if let Some(w) = last_warning {
                assert!(w < bar_lines[0], "a warning below the bars:\n{screen}");
            }
            seen_rate |= screen.lines().any(|l| rate.is_match(l));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = capture();
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).status();
    let code = std::fs::read_to_string(&done).unwrap();
    assert!(matches!(code.trim(), "0" | "3"), "exit {code}:\n{screen}");
    assert!(screens > 0, "no bars were seen:\n{screen}");
    assert!(seen_rate, "the events bar never showed the indexing rate:\n{screen}");
    // At the end the bars are gone and the summary is there.
    assert!(
        !screen.lines().any(|l| l.trim_start().starts_with("files [")),
        "{screen}"
    );
    assert!(screen.contains("events read,"), "{screen}");
    cluster.cleanup(&prefix);
}
