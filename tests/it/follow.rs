//! `ctindex follow` against the local S3 + SQS server (moto serves both on
//! one port) and real clusters: every message shape, a corrupt and a missing
//! object (left to the redrive policy), two followers and a SIGTERM, three
//! followers sharing a queue, a follower SIGKILLed, visibility extended past
//! a short timeout while a proxy answers bulk requests late (the fault proxy
//! of `faults.rs`), a sync beside follow catching a notification never sent;
//! and `import --shard` over the corpus.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use crate::s3::{Server, gz, put_many, runtime, server};
use crate::support::{self, Cluster, Oracle};

const ACCOUNT: &str = "666666666666";

/// A CloudTrail object: `events` events with ids `<tag>-<n>`.
fn object(tag: &str, events: usize) -> Vec<u8> {
    let records: Vec<Value> = (0..events)
        .map(|n| {
            json!({"eventVersion": "1.08", "eventID": format!("{tag}-{n}"), "eventTime": format!("2024-05-01T10:{:02}:00Z", n % 60),
                   "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "awsRegion": "us-east-1",
                   "userIdentity": {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
                   "requestParameters": {"n": n}, "recipientAccountId": ACCOUNT})
        })
        .collect();
    gz(json!({ "Records": records }).to_string().as_bytes())
}

fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/01/{ACCOUNT}_CloudTrail_us-east-1_{name}.json.gz")
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A bucket and a queue (with a dead-letter queue after `max_receives`).
struct Setup {
    endpoint: String,
    bucket: String,
    queue: String,
    dlq: String,
}

impl Setup {
    fn new(server: &Server, tag: &str, max_receives: u32) -> Setup {
        let name = format!(
            "ctf-{tag}-{}-{}",
            std::process::id(),
            support::prefix("q").rsplit('-').next().unwrap()
        );
        let rt = runtime();
        rt.block_on(crate::s3::client(&server.endpoint).create_bucket().bucket(&name).send())
            .unwrap();
        let sqs = sqs_client(&server.endpoint);
        let (queue, dlq) = rt.block_on(async {
            let dlq = sqs
                .create_queue()
                .queue_name(format!("{name}-dlq"))
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&dlq)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&QueueAttributeName::QueueArn]
                .clone();
            let policy = json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
            let queue = sqs
                .create_queue()
                .queue_name(&name)
                .attributes(QueueAttributeName::VisibilityTimeout, "4")
                .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            (queue, dlq)
        });
        Setup {
            endpoint: server.endpoint.clone(),
            bucket: name,
            queue,
            dlq,
        }
    }

    fn put(&self, objects: Vec<(String, Vec<u8>)>) {
        put_many(&self.endpoint, &self.bucket, objects);
    }

    /// Puts `files` CloudTrail objects of `per_file` events (ids `<tag><n>-<k>`)
    /// in the bucket; their keys.
    fn trail(&self, tag: &str, files: usize, per_file: usize) -> Vec<String> {
        let keys: Vec<String> = (0..files).map(|n| key("", &format!("{tag}{n:03}"))).collect();
        self.put(
            keys.iter()
                .enumerate()
                .map(|(n, k)| (k.clone(), object(&format!("{tag}{n}"), per_file)))
                .collect(),
        );
        keys
    }

    fn send(&self, bodies: &[String]) {
        let sqs = sqs_client(&self.endpoint);
        runtime().block_on(async {
            for body in bodies {
                sqs.send_message()
                    .queue_url(&self.queue)
                    .message_body(body)
                    .send()
                    .await
                    .unwrap();
            }
        });
    }

    /// Messages in a queue: waiting + in flight + delayed.
    fn depth(&self, queue: &str) -> u64 {
        let sqs = sqs_client(&self.endpoint);
        let attributes = runtime()
            .block_on(
                sqs.get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(QueueAttributeName::All)
                    .send(),
            )
            .unwrap()
            .attributes
            .unwrap();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|a| attributes.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
    }

    /// An S3 event notification for `key`, URL-encoded as S3 does.
    fn s3_event(&self, key: &str) -> String {
        let encoded = key.replace(' ', "+");
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T10:05:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "ctindex",
                   "bucket": {"name": self.bucket, "arn": format!("arn:aws:s3:::{}", self.bucket)},
                   "object": {"key": encoded, "size": 100, "eTag": "x", "sequencer": "0A"}}}]})
        .to_string()
    }

    fn cloudtrail(&self, keys: &[&str]) -> String {
        json!({"s3Bucket": self.bucket, "s3ObjectKey": keys}).to_string()
    }

    fn eventbridge(&self, key: &str) -> String {
        json!({"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
            "source": "aws.s3", "account": ACCOUNT, "time": "2024-05-01T10:05:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:s3:::{}", self.bucket)],
            "detail": {"version": "0", "bucket": {"name": self.bucket},
                       "object": {"key": key, "size": 100, "etag": "x", "sequencer": "0A"},
                       "request-id": "R", "requester": "cloudtrail.amazonaws.com", "reason": "PutObject"}})
        .to_string()
    }

    /// Starts `follow` on the queue, its log going to `dir/log<n>.txt`.
    fn follow(&self, cluster: &Cluster, prefix: &str, dir: &std::path::Path, n: u32, extra: &[&str]) -> Follower {
        self.follow_to(&cluster.url, prefix, dir, n, extra)
    }

    /// Starts `follow` on the queue sending to `url` (a cluster, or a proxy before one).
    fn follow_to(&self, url: &str, prefix: &str, dir: &std::path::Path, n: u32, extra: &[&str]) -> Follower {
        let summary = dir.join(format!("s{n}.json"));
        let log = dir.join(format!("log{n}.txt"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
        cmd.args([
            "follow",
            "--queue-url",
            &self.queue,
            "--url",
            url,
            "--index-prefix",
            prefix,
            "--endpoint-url",
            &self.endpoint,
            "--region",
            "us-east-1",
            "--replicas",
            "0",
            "--wait-seconds",
            "1",
            "--progress",
            "log",
            "--progress-interval",
            "1",
            "--summary-json",
            summary.to_str().unwrap(),
            "--dead-letter",
            dir.join(format!("dead{n}.ndjson")).to_str().unwrap(),
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
        Follower {
            child: cmd.spawn().unwrap(),
            log,
        }
    }
}

/// A `follow` process and the file its log goes to.
struct Follower {
    child: Child,
    log: std::path::PathBuf,
}

impl Follower {
    /// Its log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as Kubernetes stops a pod.
    fn terminate(&self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }
}

fn summary(dir: &std::path::Path, n: u32) -> Value {
    std::fs::read_to_string(dir.join(format!("s{n}.json")))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null)
}

fn count(cluster: &Cluster, prefix: &str) -> u64 {
    cluster.count(prefix, json!({"match_all": {}}))
}

/// Waits for a follower with a bound; its exit code and output (stdout, then its log).
fn finish(follower: Follower, bound: Duration) -> (i32, String) {
    let started = Instant::now();
    let Follower { child, log } = follower;
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        assert!(started.elapsed() < bound, "follow {pid} did not end within {bound:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = waiter.join().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn follow_indexes_every_message_shape_once_and_leaves_bad_objects_to_the_redrive() {
    let Some(server) = server("follow_every_message_shape") else {
        return;
    };
    for cluster in support::clusters("follow_every_message_shape") {
        let setup = Setup::new(&server, "shapes", 2);
        let prefix = support::prefix("follow");
        // Seven good objects (one under a prefix with a space, URL-encoded by S3), a corrupt one.
        let spaced = key("my trail/", "a");
        let keys: Vec<String> = [spaced.clone()]
            .into_iter()
            .chain(["b", "c", "d", "e", "f", "g"].iter().map(|n| key("", n)))
            .collect();
        let mut objects: Vec<(String, Vec<u8>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), object(&format!("shape{i}"), 10 + i)))
            .collect();
        let expected: u64 = (0..keys.len()).map(|i| 10 + i as u64).sum();
        let corrupt = key("", "corrupt");
        objects.push((corrupt.clone(), b"this is not gzip, nor JSON".to_vec()));
        setup.put(objects);
        let missing = key("", "missing");
        let digest = format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2024/05/01/d.json.gz");
        let sns = |message: &str| {
            json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                   "Message": message, "Timestamp": "2024-05-01T10:05:00.000Z"})
            .to_string()
        };
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-05-01T10:00:00.000Z",
                                "Bucket": setup.bucket, "RequestId": "R", "HostId": "H"})
        .to_string();
        let good = vec![
            setup.s3_event(&keys[0]),                         // straight, URL-encoded
            sns(&setup.s3_event(&keys[1])),                   // SNS envelope (raw delivery off)
            setup.s3_event(&keys[2]),                         // SNS raw delivery on is the same body
            setup.cloudtrail(&[&keys[3], &keys[4], &digest]), // CloudTrail's own notification
            sns(&setup.cloudtrail(&[&keys[5]])),              // ... in its SNS envelope
            setup.eventbridge(&keys[6]),                      // EventBridge "Object Created"
            setup.s3_event(&keys[1]),                         // a duplicate: no duplicate documents
            test_event,                                       // acknowledged, nothing read
            setup.s3_event(&digest),                          // a digest: acknowledged
            setup.s3_event("exports/other.json.gz"),          // outside the layout: acknowledged
        ];
        let bad = vec![setup.s3_event(&corrupt), setup.s3_event(&missing)];
        setup.send(&good);
        setup.send(&bad);

        let dir = tempfile::tempdir().unwrap();
        let child = setup.follow(&cluster, &prefix, dir.path(), 0, &["--until-empty", "6"]);
        let (code, log) = finish(child, Duration::from_secs(120));
        let ctx = format!("{}: {log}", cluster.name);
        // Input was skipped (the corrupt and the missing object): exit 3.
        assert_eq!(code, 3, "{ctx}");
        assert_eq!(count(&cluster, &prefix), expected, "{ctx}");
        let s = summary(dir.path(), 0);
        assert_eq!(s["follow"]["messages_deleted"], json!(good.len()), "{ctx}");
        assert!(s["events_read"].as_u64().unwrap() >= expected, "{ctx}");
        assert_eq!(s["failed"], json!(0), "{ctx}");
        // The bad objects' messages came back and, past maxReceiveCount, went to the dead-letter queue.
        assert!(s["follow"]["messages_failed"].as_u64().unwrap() >= 2, "{ctx}\n{s}");
        assert_eq!(setup.depth(&setup.queue), 0, "{ctx}");
        assert_eq!(setup.depth(&setup.dlq), 2, "{ctx}");
        assert!(log.contains(&corrupt), "the corrupt object is named: {ctx}");
        assert!(log.contains("s3:TestEvent of bucket"), "{ctx}");
        cluster.cleanup(&prefix);
    }
}

#[test]
fn two_followers_and_a_sigterm_lose_nothing_and_duplicate_nothing() {
    let Some(server) = server("two_followers_and_a_sigterm") else {
        return;
    };
    let Some(cluster) = support::clusters("two_followers_and_a_sigterm").into_iter().next() else {
        return;
    };
    let setup = Setup::new(&server, "two", 5);
    let prefix = support::prefix("follow2");
    let files = 60;
    let per_file = 300;
    let keys = setup.trail("two", files, per_file);
    // One message per object, and a second notification of a third of them.
    let mut bodies: Vec<String> = keys.iter().map(|k| setup.s3_event(k)).collect();
    bodies.extend(keys.iter().step_by(3).map(|k| setup.cloudtrail(&[k])));
    setup.send(&bodies);

    let dir = tempfile::tempdir().unwrap();
    let slow = ["--batch-bytes", "64KB", "--concurrency", "1", "--max-messages", "4"];
    let mut first = setup.follow(&cluster, &prefix, dir.path(), 1, &slow);
    let second = setup.follow(
        &cluster,
        &prefix,
        dir.path(),
        2,
        &[&slow[..], &["--until-empty", "8"]].concat(),
    );
    // SIGTERM the first once it has indexed something.
    let started = Instant::now();
    loop {
        let indexed = summary_less_count(&cluster, &prefix);
        if indexed > 0 {
            break;
        }
        assert!(
            first.child.try_wait().unwrap().is_none(),
            "the first follower ended early"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "nothing indexed in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    first.terminate();
    // Within the stop bound (--stop-timeout 20 s, and the release): exit 0.
    let (code, log1) = finish(first, Duration::from_secs(30));
    assert_eq!(code, 0, "after SIGTERM: {log1}");
    let (code, log2) = finish(second, Duration::from_secs(240));
    assert_eq!(code, 0, "{log2}");
    // What the first released (or never finished) the second picked up: exact.
    let expected = (files * per_file) as u64;
    assert_eq!(count(&cluster, &prefix), expected, "{log1}\n{log2}");
    assert_eq!(setup.depth(&setup.queue), 0, "{log1}\n{log2}");
    assert_eq!(setup.depth(&setup.dlq), 0, "{log1}\n{log2}");
    let (s1, s2) = (summary(dir.path(), 1), summary(dir.path(), 2));
    let deleted =
        s1["follow"]["messages_deleted"].as_u64().unwrap() + s2["follow"]["messages_deleted"].as_u64().unwrap();
    assert_eq!(deleted, bodies.len() as u64, "{s1}\n{s2}");
    assert_eq!(s1["interrupted"], json!(false), "{s1}");
    // The stopped follower settled everything it received: deleted, or given back to the queue.
    let f1 = &s1["follow"];
    let settled = ["messages_deleted", "messages_released", "messages_failed"]
        .iter()
        .map(|k| f1[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(f1["messages_received"].as_u64().unwrap(), settled, "{s1}");
    cluster.cleanup(&prefix);
}

/// Documents in the prefix's indices so far (refreshed first: a follower
/// refreshes only at its end), 0 before the first index exists.
fn summary_less_count(cluster: &Cluster, prefix: &str) -> u64 {
    let _ = support::http("POST", &format!("{}/{prefix}-*/_refresh", cluster.url), None);
    let (status, body) = support::http("GET", &format!("{}/{prefix}-*/_count", cluster.url), None);
    match status {
        200 => body["count"].as_u64().unwrap(),
        _ => 0,
    }
}

#[test]
fn a_sync_beside_follow_catches_an_object_whose_notification_was_lost() {
    let Some(server) = server("sync_beside_follow") else {
        return;
    };
    let Some(cluster) = support::clusters("sync_beside_follow").into_iter().next() else {
        return;
    };
    let setup = Setup::new(&server, "missed", 3);
    let prefix = support::prefix("follow-sync");
    let keys = setup.trail("missed", 3, 20);
    // The notification of the third is lost.
    setup.send(&[setup.s3_event(&keys[0]), setup.s3_event(&keys[1])]);
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = finish(
        setup.follow(&cluster, &prefix, dir.path(), 0, &["--until-empty", "3"]),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(count(&cluster, &prefix), 40, "{log}");
    let run = support::ctindex(&[
        "sync",
        &format!("s3://{}", setup.bucket),
        "--url",
        &cluster.url,
        "--index-prefix",
        &prefix,
        "--state-file",
        dir.path().join("state.json").to_str().unwrap(),
        "--since",
        "2024-05-01",
        "--endpoint-url",
        &setup.endpoint,
        "--region",
        "us-east-1",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Every event once: the sync's re-reads of the followed objects index the same ids.
    assert_eq!(count(&cluster, &prefix), 60, "{}", run.stdout);
    cluster.cleanup(&prefix);
}

#[test]
fn three_shards_of_the_corpus_import_every_event_once_and_no_file_twice() {
    let Some(cluster) = support::clusters("three_shards_of_the_corpus").into_iter().next() else {
        return;
    };
    let source = support::corpus().unwrap_or_else(support::fixtures);
    let oracle = Oracle::read(&source);
    let prefix = support::prefix("shards");
    let dir = tempfile::tempdir().unwrap();
    let mut files = 0;
    let mut events = 0;
    for i in 0..3 {
        let summary = dir.path().join(format!("s{i}.json"));
        let run = support::ctindex(&[
            "import",
            source.to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--replicas",
            "0",
            "--shard",
            &format!("{i}/3"),
            "--summary-json",
            summary.to_str().unwrap(),
            "--dead-letter",
            dir.path().join("dead.ndjson").to_str().unwrap(),
        ]);
        assert!(run.code == 0 || run.code == 3, "{}\n{}", run.stdout, run.stderr);
        let s = support::summary(&summary);
        files += s["files"].as_u64().unwrap() + s["files_skipped"].as_u64().unwrap();
        events += s["events_read"].as_u64().unwrap();
    }
    // The whole import, unsharded, for the number of files: the shards read each once.
    let whole = support::ctindex(&["import", "--dry-run", source.to_str().unwrap(), "--summary-json", "-"]);
    let whole: Value = serde_json::from_str(whole.stdout.trim_start_matches(|c| c != '{')).unwrap_or(Value::Null);
    let whole_files = whole["files"].as_u64().unwrap() + whole["files_skipped"].as_u64().unwrap();
    assert_eq!(files, whole_files, "no file read twice, none left out");
    assert_eq!(events, oracle.events as u64);
    assert_eq!(count(&cluster, &prefix), oracle.expected_docs());
    cluster.cleanup(&prefix);
}

#[test]
fn visibility_is_extended_while_objects_are_in_flight() {
    let Some(server) = server("visibility_is_extended") else {
        return;
    };
    let Some(cluster) = support::clusters("visibility_is_extended").into_iter().next() else {
        return;
    };
    let setup = Setup::new(&server, "slow", 5);
    let prefix = support::prefix("follow-slow");
    let keys = setup.trail("slow", 8, 4000);
    setup.send(&keys.iter().map(|k| setup.s3_event(k)).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    // A 2 s visibility timeout, and 2 MB bulk requests one at a time, each
    // answered 2 s late by a proxy (the 11 MB of the 32,000 events make 5 or
    // more): the messages are held far longer than 2 s, on a fast machine too.
    let proxy = crate::faults::Proxy::start(
        &cluster.url,
        Box::new(|_| crate::faults::Fault::Slow(Duration::from_secs(2))),
    );
    let started = Instant::now();
    let child = setup.follow_to(
        &proxy.url,
        &prefix,
        dir.path(),
        0,
        &[
            "--visibility-timeout",
            "2",
            "--batch-bytes",
            "2MB",
            "--concurrency",
            "1",
            "--until-empty",
            "4",
        ],
    );
    let (code, log) = finish(child, Duration::from_secs(180));
    assert_eq!(code, 0, "{log}");
    // Held for more than twice the visibility timeout (the run less the 4 s of --until-empty).
    let held = started.elapsed();
    assert!(held > Duration::from_secs(9), "too quick to show anything: {held:?}");
    assert_eq!(count(&cluster, &prefix), 32_000, "{log}");
    // Each message was received once: its visibility never ran out while it was held.
    let s = summary(dir.path(), 0);
    assert_eq!(s["follow"]["messages_received"], json!(8), "{s}\n{log}");
    assert_eq!(s["follow"]["messages_deleted"], json!(8), "{s}");
    assert_eq!(setup.depth(&setup.queue), 0);
    cluster.cleanup(&prefix);
}

#[test]
fn a_follower_killed_mid_run_loses_nothing() {
    let Some(server) = server("a_follower_killed_mid_run") else {
        return;
    };
    let Some(cluster) = support::clusters("a_follower_killed_mid_run").into_iter().next() else {
        return;
    };
    let setup = Setup::new(&server, "kill", 5);
    let prefix = support::prefix("follow-kill");
    let (files, per_file) = (30, 300);
    let keys = setup.trail("kill", files, per_file);
    setup.send(&keys.iter().map(|k| setup.s3_event(k)).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let slow = ["--batch-bytes", "64KB", "--concurrency", "1", "--max-messages", "4"];
    let mut first = setup.follow(&cluster, &prefix, dir.path(), 1, &slow);
    let started = Instant::now();
    while summary_less_count(&cluster, &prefix) == 0 {
        assert!(first.child.try_wait().unwrap().is_none(), "the follower ended early");
        assert!(started.elapsed() < Duration::from_secs(60), "nothing indexed in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGKILL: what it held is neither deleted nor released; it comes back after the visibility timeout.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let (code, log) = finish(
        setup.follow(&cluster, &prefix, dir.path(), 2, &["--until-empty", "8"]),
        Duration::from_secs(180),
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(count(&cluster, &prefix), (files * per_file) as u64, "{log}");
    assert_eq!(setup.depth(&setup.queue), 0, "{log}");
    cluster.cleanup(&prefix);
}

/// Waits until every follower has logged that it follows the queue (its
/// template is set up and it is polling), within a bound.
fn wait_until_following(followers: &mut [Follower], bound: Duration) {
    let started = Instant::now();
    for f in followers.iter_mut() {
        while !f.log().contains("following ") {
            assert!(
                f.child.try_wait().unwrap().is_none(),
                "a follower ended early: {}",
                f.log()
            );
            assert!(started.elapsed() < bound, "not following within {bound:?}: {}", f.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A summary's `follow` counter.
fn counter(s: &Value, name: &str) -> u64 {
    s["follow"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no follow.{name} in {s}"))
}

#[test]
fn three_followers_share_a_queue_exactly_and_exit_0_on_sigterm() {
    let Some(server) = server("three_followers_share_a_queue") else {
        return;
    };
    let Some(cluster) = support::clusters("three_followers_share_a_queue").into_iter().next() else {
        return;
    };
    let setup = Setup::new(&server, "three", 5);
    let prefix = support::prefix("follow3");
    let (files, per_file) = (45, 200);
    let keys = setup.trail("three", files, per_file);
    let dir = tempfile::tempdir().unwrap();
    // Three followers, each holding at most 4 messages and sending small bulk
    // requests one at a time, so that the queue outlasts any one of them.
    let slow = ["--batch-bytes", "64KB", "--concurrency", "1", "--max-messages", "4"];
    let mut followers: Vec<Follower> = (0..3)
        .map(|n| setup.follow(&cluster, &prefix, dir.path(), n, &slow))
        .collect();
    // All three poll the (empty) queue before the first message is sent.
    wait_until_following(&mut followers, Duration::from_secs(60));
    // One message per object, in three shapes, and a second notification of a fifth of them.
    let mut bodies: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| match n % 3 {
            0 => setup.s3_event(k),
            1 => setup.cloudtrail(&[k]),
            _ => setup.eventbridge(k),
        })
        .collect();
    bodies.extend(keys.iter().step_by(5).map(|k| setup.s3_event(k)));
    setup.send(&bodies);

    // Wait for the queue to drain and every event to be searchable.
    let expected = (files * per_file) as u64;
    let started = Instant::now();
    while !(setup.depth(&setup.queue) == 0 && summary_less_count(&cluster, &prefix) == expected) {
        for f in &mut followers {
            assert!(
                f.child.try_wait().unwrap().is_none(),
                "a follower ended early: {}",
                f.log()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "not drained in 240 s: {} of {expected} indexed, {} message(s) left",
            summary_less_count(&cluster, &prefix),
            setup.depth(&setup.queue)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // SIGTERM all three (idle on an empty queue): each exits 0 within the stop bound.
    for f in &followers {
        f.terminate();
    }
    let logs: Vec<String> = followers
        .into_iter()
        .map(|f| {
            let (code, log) = finish(f, Duration::from_secs(30));
            assert_eq!(code, 0, "after SIGTERM: {log}");
            log
        })
        .collect();
    let all = logs.join("\n----\n");
    assert_eq!(count(&cluster, &prefix), expected, "{all}");
    assert_eq!(setup.depth(&setup.queue), 0, "{all}");
    assert_eq!(setup.depth(&setup.dlq), 0, "{all}");
    let summaries: Vec<Value> = (0..3).map(|n| summary(dir.path(), n)).collect();
    let sum = |name: &str| summaries.iter().map(|s| counter(s, name)).sum::<u64>();
    // Every message was handed out once, to one follower, and deleted once.
    assert_eq!(sum("messages_received"), bodies.len() as u64, "{summaries:?}");
    assert_eq!(sum("messages_deleted"), bodies.len() as u64, "{summaries:?}");
    assert_eq!(sum("messages_failed") + sum("messages_released"), 0, "{summaries:?}");
    // The work was shared: each of the three took some of it.
    for (n, s) in summaries.iter().enumerate() {
        assert!(
            counter(s, "messages_received") > 0,
            "follower {n} received nothing: {s}"
        );
        assert_eq!(s["failed"], json!(0), "{s}");
    }
    cluster.cleanup(&prefix);
}

#[test]
fn a_slow_cluster_holds_messages_past_their_visibility_timeout_without_a_second_delivery() {
    let Some(server) = server("a_slow_cluster_holds_messages") else {
        return;
    };
    let Some(cluster) = support::clusters("a_slow_cluster_holds_messages").into_iter().next() else {
        return;
    };
    // Every bulk answer comes 5 s late: two and a half visibility timeouts (2 s).
    let delay = Duration::from_secs(5);
    let proxy = crate::faults::Proxy::start(&cluster.url, Box::new(move |_| crate::faults::Fault::Slow(delay)));
    let setup = Setup::new(&server, "slowc", 5);
    let prefix = support::prefix("follow-slowc");
    let (files, per_file) = (6, 1500);
    let keys = setup.trail("slowc", files, per_file);
    let dir = tempfile::tempdir().unwrap();
    // Two followers, so that a message whose visibility ran out would be
    // received again, by the other, while the first still holds it.
    let args = [
        "--visibility-timeout",
        "2",
        "--max-messages",
        "2",
        "--until-empty",
        "6",
        "-v",
    ];
    let mut followers: Vec<Follower> = (0..2)
        .map(|n| setup.follow_to(&proxy.url, &prefix, dir.path(), n, &args))
        .collect();
    wait_until_following(&mut followers, Duration::from_secs(60));
    setup.send(&keys.iter().map(|k| setup.s3_event(k)).collect::<Vec<_>>());
    let logs: Vec<String> = followers
        .into_iter()
        .map(|f| {
            let (code, log) = finish(f, Duration::from_secs(180));
            assert_eq!(code, 0, "{log}");
            log
        })
        .collect();
    let all = logs.join("\n----\n");
    let delayed: u32 = proxy.injected().values().sum();
    assert!(delayed >= 2, "bulk requests delayed: {delayed}");
    assert_eq!(count(&cluster, &prefix), (files * per_file) as u64, "{all}");
    assert_eq!(setup.depth(&setup.queue), 0, "{all}");
    // No message came back to be received a second time while it was held:
    // each was received once, by one of the two, and deleted once ...
    let summaries: Vec<Value> = (0..2).map(|n| summary(dir.path(), n)).collect();
    let sum = |name: &str| summaries.iter().map(|s| counter(s, name)).sum::<u64>();
    assert_eq!(sum("messages_received"), files as u64, "{summaries:?}\n{all}");
    // ... because its visibility was extended while the bulk answers were awaited.
    assert!(
        all.contains("visibility of") && all.contains("message(s) extended"),
        "{all}"
    );
    assert_eq!(sum("messages_deleted"), files as u64, "{summaries:?}");
    cluster.cleanup(&prefix);
}
