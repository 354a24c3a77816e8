//! `ctindex sync` against a real S3 server and real clusters: late files,
//! SIGKILL in the middle of a run, two syncs at once, and a no-op sync over
//! a large trail.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::s3::{Server, client, gz, list_requests, server};
use crate::support::{self, Cluster};

const ACCOUNT: &str = "555555555555";

/// A CloudTrail object: `events` events with ids `<tag>-<n>`, delivered on `day` (YYYY/MM/DD).
fn object(tag: &str, day: &str, events: usize) -> Vec<u8> {
    let time = day.replace('/', "-");
    let records: Vec<Value> = (0..events)
        .map(|n| {
            json!({"eventVersion": "1.08", "eventID": format!("{tag}-{n}"), "eventTime": format!("{time}T12:{:02}:00Z", n % 60),
                   "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances", "awsRegion": "us-east-1",
                   "userAgent": "aws-cli/2.15.0", "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::555555555555:user/u"},
                   "requestParameters": {"n": n}, "recipientAccountId": ACCOUNT})
        })
        .collect();
    gz(json!({ "Records": records }).to_string().as_bytes())
}

fn key(day: &str, name: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{day}/{ACCOUNT}_CloudTrail_us-east-1_{name}.json.gz")
}

struct Bucket {
    name: String,
    server_endpoint: String,
}

impl Bucket {
    fn new(server: &Server, tag: &str) -> Bucket {
        let name = format!(
            "ctindex-{tag}-{}-{}",
            std::process::id(),
            support::prefix("b").rsplit('-').next().unwrap()
        );
        let rt = crate::s3::runtime();
        rt.block_on(client(&server.endpoint).create_bucket().bucket(&name).send())
            .unwrap();
        Bucket {
            name,
            server_endpoint: server.endpoint.clone(),
        }
    }

    fn put(&self, objects: Vec<(String, Vec<u8>)>) {
        crate::s3::put_many(&self.server_endpoint, &self.name, objects);
    }

    fn url(&self) -> String {
        format!("s3://{}", self.name)
    }
}

fn sync_command(
    cluster: &Cluster,
    server: &Server,
    source: &str,
    prefix: &str,
    state_index: &str,
    summary: &std::path::Path,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args([
        "sync",
        source,
        "--url",
        &cluster.url,
        "--index-prefix",
        prefix,
        "--state-index",
        state_index,
        "--endpoint-url",
        &server.endpoint,
        "--region",
        "us-east-1",
        "--replicas",
        "0",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var(key).is_err() {
            cmd.env(key, "test");
        }
    }
    cmd
}

fn sync(cluster: &Cluster, server: &Server, source: &str, prefix: &str, state_index: &str) -> (support::Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let run: support::Run = sync_command(cluster, server, source, prefix, state_index, &summary)
        .current_dir(dir.path())
        .output()
        .unwrap()
        .into();
    let s = std::fs::read_to_string(&summary)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (run, s)
}

fn count(cluster: &Cluster, prefix: &str) -> u64 {
    cluster.count(prefix, json!({"match_all": {}}))
}

fn state_objects(cluster: &Cluster, state_index: &str) -> u64 {
    support::http("POST", &format!("{}/{state_index}/_refresh", cluster.url), None);
    cluster.count(state_index, json!({"term": {"kind": "object"}}))
}

#[test]
fn sync_picks_up_new_and_late_files_exactly_once() {
    let Some(server) = server("sync_picks_up_new_and_late_files_exactly_once") else {
        return;
    };
    for cluster in support::clusters("sync_picks_up_new_and_late_files_exactly_once") {
        let bucket = Bucket::new(&server, "late");
        let (prefix, state) = (support::prefix("late"), support::prefix("state"));
        bucket.put(vec![
            (key("2024/03/01", "20240301T0000Z_a"), object("d1a", "2024/03/01", 10)),
            (key("2024/03/02", "20240302T0005Z_b"), object("d2b", "2024/03/02", 10)),
            (key("2024/03/02", "20240302T0010Z_m"), object("d2m", "2024/03/02", 10)),
        ]);
        let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
        assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
        assert_eq!(
            (s["events_read"].as_u64(), count(&cluster, &prefix)),
            (Some(30), 30),
            "{}",
            cluster.name
        );

        // Nothing new: nothing read.
        let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            (s["events_read"].as_u64(), s["files_already_done"].as_u64()),
            (Some(0), Some(3)),
            "{}",
            cluster.name
        );

        // A new day, a new file in the last day, and a late file whose key sorts
        // before the last processed key of an already-synced day.
        bucket.put(vec![
            (key("2024/03/03", "20240303T0000Z_c"), object("d3c", "2024/03/03", 7)),
            (key("2024/03/02", "20240302T0020Z_z"), object("d2z", "2024/03/02", 5)),
            (key("2024/03/02", "20240302T0001Z_a"), object("d2late", "2024/03/02", 3)),
        ]);
        let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            s["events_read"].as_u64(),
            Some(15),
            "{}: exactly the new events",
            cluster.name
        );
        assert_eq!(s["created"].as_u64(), Some(15), "{}", cluster.name);
        assert_eq!(count(&cluster, &prefix), 45, "{}", cluster.name);
        assert_eq!(
            cluster.count(&prefix, json!({"prefix": {"eventID": "d2late-"}})),
            3,
            "{}",
            cluster.name
        );
        assert_eq!(state_objects(&cluster, &state), 6, "{}", cluster.name);
        cluster.cleanup(&prefix);
        support::http("DELETE", &format!("{}/{state}", cluster.url), None);
    }
}

fn spawn_sync(
    cluster: &Cluster,
    server: &Server,
    source: &str,
    prefix: &str,
    state: &str,
    dir: &std::path::Path,
    n: u32,
) -> Child {
    sync_command(cluster, server, source, prefix, state, &dir.join(format!("s{n}.json")))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_sync_and_two_syncs_at_once_end_with_exact_counts() {
    let Some(server) = server("a_killed_sync_and_two_syncs_at_once_end_with_exact_counts") else {
        return;
    };
    let Some(cluster) = support::clusters("a_killed_sync").into_iter().next() else {
        return;
    };
    // 1,200 files of 50 events over 4 days.
    let bucket = Bucket::new(&server, "kill");
    let days = ["2024/04/01", "2024/04/02", "2024/04/03", "2024/04/04"];
    let objects: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|n| {
            let day = days[n % 4];
            (key(day, &format!("f{n:05}")), object(&format!("k{n}"), day, 50))
        })
        .collect();
    bucket.put(objects);
    let total = 1200 * 50;
    let (prefix, state) = (support::prefix("kill"), support::prefix("state"));
    let dir = tempfile::tempdir().unwrap();

    // Kill it once its own progress lines say events are being indexed.
    let mut child = sync_command(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &dir.path().join("s1.json"),
    )
    .args([
        "--progress",
        "log",
        "--progress-interval",
        "1",
        "--batch-bytes",
        "256KB",
        "--concurrency",
        "1",
    ])
    .current_dir(dir.path())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let indexed = regex_lite::Regex::new(r"events read, (\d+) indexed").unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(stderr) {
        let line = line.unwrap();
        let n: u64 = indexed.captures(&line).and_then(|c| c[1].parse().ok()).unwrap_or(0);
        seen.push(line);
        if n >= 8000 {
            break;
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync ended before it could be killed:\n{}",
        seen.join("\n")
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
    let partial = count(&cluster, &prefix);
    let recorded = state_objects(&cluster, &state);
    assert!(
        partial < total as u64,
        "the kill came too late to mean anything ({partial})"
    );
    eprintln!("killed after {partial} events indexed and {recorded} files recorded");

    // Two syncs at once pick up where the dead one stopped.
    let a = spawn_sync(&cluster, &server, &bucket.url(), &prefix, &state, dir.path(), 2);
    let b = spawn_sync(&cluster, &server, &bucket.url(), &prefix, &state, dir.path(), 3);
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
    assert_eq!(
        count(&cluster, &prefix),
        total as u64,
        "final count equals the distinct event ids"
    );
    assert_eq!(state_objects(&cluster, &state), 1200, "no file skipped");

    // And a third run finds nothing to do.
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(0), "{}", run.stderr);
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state}", cluster.url), None);
}

#[test]
fn a_noop_sync_over_ten_thousand_objects_is_quick_and_lists_little() {
    let Some(server) = server("a_noop_sync_over_ten_thousand_objects") else {
        return;
    };
    let Some(cluster) = support::clusters("a_noop_sync").into_iter().next() else {
        return;
    };
    // 10,000 one-event objects over 40 days.
    let bucket = Bucket::new(&server, "noop");
    let objects: Vec<(String, Vec<u8>)> = (0..10_000)
        .map(|n| {
            let day = format!("2024/{:02}/{:02}", 1 + (n % 40) / 28, 1 + (n % 40) % 28);
            (key(&day, &format!("n{n:05}")), object(&format!("n{n}"), &day, 1))
        })
        .collect();
    bucket.put(objects);
    let (prefix, state) = (support::prefix("noop"), support::prefix("state"));
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(10_000));

    let before = list_requests(&server, &bucket.name);
    let started = Instant::now();
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    let seconds = started.elapsed().as_secs_f64();
    let lists = list_requests(&server, &bucket.name) - before;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(0));
    let ctindex_lists = s["s3_list_requests"].as_u64().unwrap();
    eprintln!(
        "no-op sync over 10,000 objects: {seconds:.2} s, {ctindex_lists} LIST requests (server log: {lists}), {} objects in the look-back window",
        s["files_already_done"]
    );
    // Discovery (root, accounts, kinds, regions, years, months, days) plus the 2 days of the window.
    assert!(ctindex_lists <= 12, "{ctindex_lists} LIST requests");
    if server.request_log.is_some() {
        assert_eq!(lists as u64, ctindex_lists);
    }
    assert!(seconds < 15.0, "{seconds} s");
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state}", cluster.url), None);
}
