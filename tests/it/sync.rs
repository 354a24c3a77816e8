//! `ctindex sync` against a real S3 server and real clusters: late files
//! (state in the cluster or in a file), `--since`, accounts and regions that
//! lag or appear later, objects that fail to read, SIGKILL in the middle of
//! a run, two syncs at once, a lost lease, and a no-op sync over a large
//! trail.

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
    key_in(&format!("AWSLogs/{ACCOUNT}"), "us-east-1", day, name)
}

/// A key under an account's folder (`AWSLogs/<account>` or `AWSLogs/o-org/<account>`).
fn key_in(account_root: &str, region: &str, day: &str, name: &str) -> String {
    let account = account_root.rsplit('/').next().unwrap();
    format!("{account_root}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{name}.json.gz")
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
    sync_with(cluster, server, source, prefix, state_index, &[])
}

fn sync_with(
    cluster: &Cluster,
    server: &Server,
    source: &str,
    prefix: &str,
    state_index: &str,
    extra: &[&str],
) -> (support::Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let run: support::Run = sync_command(cluster, server, source, prefix, state_index, &summary)
        .args(extra)
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

/// Objects recorded as indexed in a state index.
fn state_objects(cluster: &Cluster, state_index: &str) -> u64 {
    support::http("POST", &format!("{}/{state_index}/_refresh", cluster.url), None);
    cluster.count(
        state_index,
        json!({"bool": {"filter": [{"term": {"kind": "object"}}, {"term": {"outcome": "indexed"}}]}}),
    )
}

/// Where a test keeps sync state.
enum StateAt {
    Index(String),
    /// The file's folder, and a state index name that must stay unused.
    File(tempfile::TempDir, String),
}

impl StateAt {
    fn path(&self) -> Option<std::path::PathBuf> {
        match self {
            StateAt::Index(_) => None,
            StateAt::File(dir, _) => Some(dir.path().join("state.json")),
        }
    }

    fn run(&self, cluster: &Cluster, server: &Server, source: &str, prefix: &str) -> (support::Run, Value) {
        match self {
            StateAt::Index(index) => sync(cluster, server, source, prefix, index),
            StateAt::File(_, unused) => {
                let path = self.path().unwrap();
                sync_with(
                    cluster,
                    server,
                    source,
                    prefix,
                    unused,
                    &["--state-file", path.to_str().unwrap()],
                )
            }
        }
    }

    /// Records (by name) and checkpoints of the state file's only source.
    fn file_contents(&self) -> (Vec<String>, Value) {
        let data: Value = serde_json::from_slice(&std::fs::read(self.path().unwrap()).unwrap()).unwrap();
        let sources = data["sources"].as_object().unwrap();
        assert_eq!(sources.len(), 1, "{data}");
        let names = sources
            .values()
            .next()
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let checkpoints = data["checkpoints"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        (names, checkpoints)
    }
}

#[test]
fn sync_picks_up_new_and_late_files_exactly_once() {
    let Some(server) = server("sync_picks_up_new_and_late_files_exactly_once") else {
        return;
    };
    for cluster in support::clusters("sync_picks_up_new_and_late_files_exactly_once") {
        late_files(&cluster, &server, StateAt::Index(support::prefix("state")));
    }
}

#[test]
fn sync_with_a_state_file_picks_up_late_files_and_prunes_its_state() {
    let Some(server) = server("sync_with_a_state_file_picks_up_late_files_and_prunes_its_state") else {
        return;
    };
    let Some(cluster) = support::clusters("sync_with_a_state_file").into_iter().next() else {
        return;
    };
    let unused = support::prefix("state-unused");
    late_files(
        &cluster,
        &server,
        StateAt::File(tempfile::tempdir().unwrap(), unused.clone()),
    );
    let (status, _) = support::http("GET", &format!("{}/{unused}", cluster.url), None);
    assert_eq!(status, 404, "--state-file keeps the state out of the cluster");
}

fn late_files(cluster: &Cluster, server: &Server, state: StateAt) {
    let bucket = Bucket::new(server, "late");
    let prefix = support::prefix("late");
    bucket.put(vec![
        (key("2024/03/01", "20240301T0000Z_a"), object("d1a", "2024/03/01", 10)),
        (key("2024/03/02", "20240302T0005Z_b"), object("d2b", "2024/03/02", 10)),
        (key("2024/03/02", "20240302T0010Z_m"), object("d2m", "2024/03/02", 10)),
    ]);
    let (run, s) = state.run(cluster, server, &bucket.url(), &prefix);
    assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
    assert_eq!(
        (s["events_read"].as_u64(), count(cluster, &prefix)),
        (Some(30), 30),
        "{}",
        cluster.name
    );

    // Nothing new: nothing read (and `s3://b/` is the same source as `s3://b`).
    let (run, s) = state.run(cluster, server, &format!("{}/", bucket.url()), &prefix);
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
    let (run, s) = state.run(cluster, server, &bucket.url(), &prefix);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        s["events_read"].as_u64(),
        Some(15),
        "{}: exactly the new events",
        cluster.name
    );
    assert_eq!(s["created"].as_u64(), Some(15), "{}", cluster.name);
    assert_eq!(count(cluster, &prefix), 45, "{}", cluster.name);
    assert_eq!(
        cluster.count(&prefix, json!({"prefix": {"eventID": "d2late-"}})),
        3,
        "{}",
        cluster.name
    );
    match &state {
        StateAt::Index(index) => {
            assert_eq!(state_objects(cluster, index), 6, "{}", cluster.name);
            support::http("DELETE", &format!("{}/{index}", cluster.url), None);
        }
        StateAt::File(dir, _) => {
            // Synced through 03/03 with one day of look-back: 03/01 is never consulted again.
            let (names, checkpoints) = state.file_contents();
            assert_eq!(names.len(), 5, "{names:?}");
            assert!(names.iter().all(|n| !n.contains("/2024/03/01/")), "{names:?}");
            assert_eq!(checkpoints.as_object().unwrap().len(), 1, "{checkpoints}");
            assert!(
                !dir.path().join("state.json.journal").exists(),
                "the journal is folded in"
            );
        }
    }
    cluster.cleanup(&prefix);
}

#[test]
fn since_applies_to_the_first_sync_only() {
    let Some(server) = server("since_applies_to_the_first_sync_only") else {
        return;
    };
    let Some(cluster) = support::clusters("since_applies").into_iter().next() else {
        return;
    };
    let bucket = Bucket::new(&server, "since");
    let (prefix, state) = (support::prefix("since"), support::prefix("state"));
    bucket.put(vec![
        (key("2024/03/01", "a"), object("s1", "2024/03/01", 4)),
        (key("2024/03/02", "a"), object("s2", "2024/03/02", 5)),
        (key("2024/03/03", "a"), object("s3", "2024/03/03", 6)),
    ]);
    let (run, s) = sync_with(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &["--since", "2024-03-02"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(11), "only the days from --since on");
    assert_eq!(cluster.count(&prefix, json!({"prefix": {"eventID": "s1-"}})), 0);

    // Later runs continue from the state, whatever --since says, and say so.
    bucket.put(vec![(key("2024/03/04", "a"), object("s4", "2024/03/04", 7))]);
    let (run, s) = sync_with(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &["--since", "2024-03-01"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(7), "{}", run.stderr);
    assert!(run.stderr.contains("--since 2024-03-01 is ignored"), "{}", run.stderr);
    assert_eq!(count(&cluster, &prefix), 18);
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state}", cluster.url), None);
}

#[test]
fn accounts_and_regions_that_lag_or_appear_later_are_synced() {
    let Some(server) = server("accounts_and_regions_that_lag_or_appear_later_are_synced") else {
        return;
    };
    let Some(cluster) = support::clusters("lagging_accounts").into_iter().next() else {
        return;
    };
    let bucket = Bucket::new(&server, "lag");
    let (prefix, state) = (support::prefix("lag"), support::prefix("state"));
    let (a, b, c) = (
        "AWSLogs/111111111111",
        "AWSLogs/222222222222",
        "AWSLogs/o-lag1234567/333333333333",
    );
    // Account a is current (03/01 to 03/10); b's deliveries stopped on 03/02;
    // a's eu-west-1 is left out of the first syncs by --regions.
    let mut objects: Vec<(String, Vec<u8>)> = (1..=10)
        .map(|d| {
            let day = format!("2024/03/{d:02}");
            (key_in(a, "us-east-1", &day, "x"), object(&format!("a{d}"), &day, 5))
        })
        .collect();
    objects.push((key_in(b, "us-east-1", "2024/03/01", "x"), object("b1", "2024/03/01", 5)));
    objects.push((key_in(b, "us-east-1", "2024/03/02", "x"), object("b2", "2024/03/02", 5)));
    objects.push((
        key_in(a, "eu-west-1", "2024/03/01", "x"),
        object("aeu", "2024/03/01", 2),
    ));
    bucket.put(objects);
    let (run, s) = sync_with(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &["--regions", "us-east-1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(60));

    // b catches up with days long before a's window (03/09 on), and an
    // organisation account appears with old days.
    bucket.put(vec![
        (key_in(b, "us-east-1", "2024/03/03", "x"), object("b3", "2024/03/03", 3)),
        (key_in(b, "us-east-1", "2024/03/04", "x"), object("b4", "2024/03/04", 3)),
        (key_in(c, "us-east-1", "2024/03/01", "x"), object("c1", "2024/03/01", 4)),
    ]);
    let (run, s) = sync_with(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &["--regions", "us-east-1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(10), "{}", run.stderr);

    // Without --regions, the region left out so far is synced from its beginning.
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"].as_u64(), Some(2), "{}", run.stderr);
    assert_eq!(count(&cluster, &prefix), 72);
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state}", cluster.url), None);
}

#[test]
fn objects_that_fail_to_read_are_read_again_later() {
    let Some(server) = server("objects_that_fail_to_read_are_read_again_later") else {
        return;
    };
    let Some(cluster) = support::clusters("failing_objects").into_iter().next() else {
        return;
    };
    let bucket = Bucket::new(&server, "fail");
    let (prefix, state) = (support::prefix("fail"), support::prefix("state"));
    let (archived, lost) = (key("2024/03/01", "archived"), key("2024/03/01", "lost"));
    bucket.put(vec![(key("2024/03/01", "ok"), object("ok1", "2024/03/01", 5))]);
    // Objects in Glacier cannot be downloaded until restored.
    let rt = crate::s3::runtime();
    let s3 = client(&server.endpoint);
    for (k, tag, n) in [(&archived, "arch", 4), (&lost, "lost", 3)] {
        rt.block_on(
            s3.put_object()
                .bucket(&bucket.name)
                .key(k)
                .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
                .body(object(tag, "2024/03/01", n).into())
                .send(),
        )
        .unwrap();
    }
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        (s["events_read"].as_u64(), s["files_skipped"].as_u64()),
        (Some(5), Some(2))
    );
    assert!(
        run.stderr.contains(&archived) && run.stderr.contains(&lost),
        "{}",
        run.stderr
    );

    // Days go by: 03/01 leaves the look-back window. The archived object is
    // restored, the other one deleted.
    bucket.put(vec![(key("2024/03/05", "ok"), object("ok5", "2024/03/05", 6))]);
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!((run.code, s["events_read"].as_u64()), (3, Some(6)), "{}", run.stderr);
    rt.block_on(
        s3.restore_object()
            .bucket(&bucket.name)
            .key(&archived)
            .restore_request(aws_sdk_s3::types::RestoreRequest::builder().days(1).build())
            .send(),
    )
    .unwrap();
    rt.block_on(s3.delete_object().bucket(&bucket.name).key(&lost).send())
        .unwrap();

    // Read again by name: the restored one is indexed, the deleted one is
    // reported by key and counted, once.
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        (s["events_read"].as_u64(), s["files_skipped"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(
        run.stderr.contains(&lost) && run.stderr.contains("no such object"),
        "{}",
        run.stderr
    );
    let (run, s) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (s["events_read"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(count(&cluster, &prefix), 15);
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state}", cluster.url), None);
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

/// A bucket of 1,200 files of 50 events over 4 days: (bucket, events).
fn large_trail(server: &Server, tag: &str) -> (Bucket, u64) {
    let bucket = Bucket::new(server, tag);
    let days = ["2024/04/01", "2024/04/02", "2024/04/03", "2024/04/04"];
    let objects: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|n| {
            let day = days[n % 4];
            (key(day, &format!("f{n:05}")), object(&format!("k{n}"), day, 50))
        })
        .collect();
    bucket.put(objects);
    (bucket, 1200 * 50)
}

/// Starts a slow sync (small batches, one at a time, a progress line every second).
fn spawn_slow_sync(command: &mut Command, dir: &std::path::Path, extra: &[&str]) -> Child {
    command
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
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's log until its progress lines say `events` are indexed;
/// returns the log so far and the rest of it, read on a thread.
fn wait_until_indexed(child: &mut Child, events: u64) -> (Vec<String>, std::thread::JoinHandle<Vec<String>>) {
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let indexed = regex_lite::Regex::new(r"events read, (\d+) indexed").unwrap();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let n: u64 = indexed.captures(&line).and_then(|c| c[1].parse().ok()).unwrap_or(0);
        seen.push(line);
        if n >= events {
            break;
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync ended too early:\n{}",
        seen.join("\n")
    );
    (seen, std::thread::spawn(move || lines.map_while(Result::ok).collect()))
}

#[test]
fn a_killed_sync_and_two_syncs_at_once_end_with_exact_counts() {
    let Some(server) = server("a_killed_sync_and_two_syncs_at_once_end_with_exact_counts") else {
        return;
    };
    let Some(cluster) = support::clusters("a_killed_sync").into_iter().next() else {
        return;
    };
    let (bucket, total) = large_trail(&server, "kill");
    let (prefix, state) = (support::prefix("kill"), support::prefix("state"));
    let dir = tempfile::tempdir().unwrap();

    // Kill it once events are being indexed and some files are recorded.
    let mut command = sync_command(
        &cluster,
        &server,
        &bucket.url(),
        &prefix,
        &state,
        &dir.path().join("s1.json"),
    );
    let mut child = spawn_slow_sync(&mut command, dir.path(), &[]);
    let (_, rest) = wait_until_indexed(&mut child, 8000);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while state_objects(&cluster, &state) == 0 {
        assert!(Instant::now() < deadline, "no file was recorded within a minute");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(rest);
    support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
    let partial = count(&cluster, &prefix);
    let recorded = state_objects(&cluster, &state);
    assert!(partial < total, "the kill came too late to mean anything ({partial})");
    assert!(
        recorded > 0 && recorded < 1200,
        "the kill came mid-way: {recorded} files recorded"
    );
    eprintln!("killed after {partial} events indexed and {recorded} files recorded");

    // Two syncs at once pick up where the dead one stopped: the lease lets
    // one of them work, the other reads nothing.
    let a = spawn_sync(&cluster, &server, &bucket.url(), &prefix, &state, dir.path(), 2);
    let b = spawn_sync(&cluster, &server, &bucket.url(), &prefix, &state, dir.path(), 3);
    let mut runs = Vec::new();
    for (child, n) in [(a, 2), (b, 3)] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        runs.push((support::summary(&dir.path().join(format!("s{n}.json"))), stderr));
    }
    let files = |i: usize| runs[i].0["files"].as_u64().unwrap();
    let done = |i: usize| runs[i].0["files_already_done"].as_u64().unwrap();
    let (worker, idle) = if files(0) >= files(1) { (0, 1) } else { (1, 0) };
    assert_eq!(
        files(idle),
        0,
        "no object is read by both: {} and {}",
        files(0),
        files(1)
    );
    assert!(
        runs[idle].1.contains("another sync") || done(idle) == 1200,
        "the other one found the source busy, or came after: {}",
        runs[idle].1
    );
    assert_eq!(files(worker) + done(worker), 1200);
    assert!(done(worker) >= recorded, "what the dead one recorded is not read again");
    support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
    assert_eq!(
        count(&cluster, &prefix),
        total,
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
fn a_sync_that_loses_its_lease_stops() {
    let Some(server) = server("a_sync_that_loses_its_lease_stops") else {
        return;
    };
    let Some(cluster) = support::clusters("a_sync_that_loses_its_lease").into_iter().next() else {
        return;
    };
    let (bucket, total) = large_trail(&server, "lease");
    let (prefix, state) = (support::prefix("lease"), support::prefix("state"));
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s1.json");
    let mut command = sync_command(&cluster, &server, &bucket.url(), &prefix, &state, &summary);
    // Renewed every second.
    let mut child = spawn_slow_sync(&mut command, dir.path(), &["--lease-seconds", "4"]);
    let (mut log, rest) = wait_until_indexed(&mut child, 2000);

    // Another sync takes the lease over, as it would after an expiry.
    let (_, found) = support::http(
        "POST",
        &format!("{}/{state}/_search", cluster.url),
        Some(&json!({"query": {"term": {"kind": "lease"}}})),
    );
    let hit = &found["hits"]["hits"][0];
    let mut lease = hit["_source"].clone();
    lease["holder"] = json!("elsewhere:1");
    lease["host"] = json!("elsewhere");
    lease["expires_ms"] = json!(0);
    let (status, _) = support::http(
        "PUT",
        &format!(
            "{}/{state}/_doc/{}?refresh=true",
            cluster.url,
            hit["_id"].as_str().unwrap()
        ),
        Some(&lease),
    );
    assert!(status < 300, "{status}");

    let code = child.wait().unwrap().code();
    log.extend(rest.join().unwrap());
    let log = log.join("\n");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("lost the sync lease"), "{log}");
    let s = support::summary(&summary);
    assert_eq!(s["interrupted"], json!(true), "{log}");
    assert!(s["events_read"].as_u64().unwrap() < total, "it stopped reading: {log}");

    // The next sync takes the expired lease and finishes the job.
    let (run, _) = sync(&cluster, &server, &bucket.url(), &prefix, &state);
    assert_eq!(run.code, 0, "{}", run.stderr);
    support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
    assert_eq!(count(&cluster, &prefix), total);
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
