//! `ctindex import s3://…` against a real S3 server (`scripts/stack start s3`)
//! and real clusters.
//!
//! The test trail is built from the bundled fixture logs: several accounts
//! (one of them in an organisation trail), regions and delivery days, a
//! digest and an Insight file. The same objects are also written to a local
//! folder, the mirror the S3 import is compared against.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use crate::support::{self, Cluster};

/// The S3 server from `scripts/stack env s3`, if configured.
pub(crate) struct Server {
    pub(crate) endpoint: String,
    pub(crate) request_log: Option<PathBuf>,
}

pub(crate) fn server(test: &str) -> Option<Server> {
    match std::env::var("S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(Server {
            endpoint,
            request_log: std::env::var("S3_REQUEST_LOG").ok().map(PathBuf::from),
        }),
        _ => {
            if std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1") {
                panic!("{test}: S3_ENDPOINT not set but CTINDEX_REQUIRE_CLUSTERS=1 (scripts/stack start s3)");
            }
            support::skipped(test, "S3_ENDPOINT (the S3 server)", "s3");
            None
        }
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
            None,
            None,
            "test",
        ))
        .build();
    Client::from_conf(conf)
}

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const DAYS: [&str; 3] = ["2023/07/08", "2023/07/09", "2023/07/10"];

/// The account's folder: the third account sits in an organisation trail.
fn account_root(account: &str) -> String {
    if account == ACCOUNTS[2] {
        format!("AWSLogs/o-test123456/{account}")
    } else {
        format!("AWSLogs/{account}")
    }
}

/// One uploaded trail: key → (account, region, day, events in the file).
struct Trail {
    bucket: String,
    mirror: tempfile::TempDir,
    files: BTreeMap<String, (String, String, String, usize)>,
}

pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn records(path: &Path) -> usize {
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    v["Records"].as_array().map(Vec::len).unwrap_or(0)
}

fn put(rt: &tokio::runtime::Runtime, c: &Client, bucket: &str, key: &str, body: Vec<u8>, mirror: &Path) {
    let local = mirror.join(key);
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(&local, &body).unwrap();
    rt.block_on(
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send(),
    )
    .unwrap_or_else(|e| panic!("put {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
}

/// Builds the test trail once per test run.
fn trail(server: &Server) -> &'static Trail {
    static TRAIL: OnceLock<Trail> = OnceLock::new();
    TRAIL.get_or_init(|| {
        let rt = runtime();
        let c = client(&server.endpoint);
        let bucket = format!("ctindex-test-{}", std::process::id());
        rt.block_on(c.create_bucket().bucket(&bucket).send()).unwrap();
        let mirror = tempfile::tempdir().unwrap();
        let source = support::fixtures().join("trail/AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&source)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        let mut files = BTreeMap::new();
        for (n, path) in names.iter().enumerate() {
            let account = ACCOUNTS[n % 3];
            let region = REGIONS[(n / 3) % 2];
            let day = DAYS[(n / 6) % 3];
            let name = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace("218007301253", account);
            let key = format!("{}/CloudTrail/{region}/{day}/{name}", account_root(account));
            put(&rt, &c, &bucket, &key, std::fs::read(path).unwrap(), mirror.path());
            files.insert(
                key,
                (account.to_string(), region.to_string(), day.to_string(), records(path)),
            );
        }
        // A digest (never read) and an Insight file (read, marked as Insight).
        let digest = format!(
            "AWSLogs/{}/CloudTrail-Digest/us-east-1/2023/07/10/digest.json.gz",
            ACCOUNTS[0]
        );
        put(
            &rt,
            &c,
            &bucket,
            &digest,
            gz(br#"{"digestStartTime":"x","digestEndTime":"y","logFiles":[]}"#),
            mirror.path(),
        );
        let insight = json!({"Records": [{
            "eventVersion": "1.08", "eventTime": "2023-07-09T10:00:00Z", "awsRegion": "us-east-1",
            "eventID": "insight-0001", "eventType": "AwsCloudTrailInsight", "eventCategory": "Insight",
            "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "recipientAccountId": ACCOUNTS[0],
            "sharedEventID": "s-1", "insightDetails": {"state": "Start", "insightType": "ApiCallRateInsight"}
        }]});
        let key = format!(
            "AWSLogs/{}/CloudTrail-Insight/us-east-1/2023/07/09/insight.json.gz",
            ACCOUNTS[0]
        );
        put(
            &rt,
            &c,
            &bucket,
            &key,
            gz(insight.to_string().as_bytes()),
            mirror.path(),
        );
        files.insert(key, (ACCOUNTS[0].into(), "us-east-1".into(), "2023/07/09".into(), 1));
        Trail { bucket, mirror, files }
    })
}

fn s3_env_args<'a>(server: &'a Server, args: &mut Vec<&'a str>) {
    args.extend(["--endpoint-url", server.endpoint.as_str(), "--region", "us-east-1"]);
}

fn import(
    cluster: &Cluster,
    server: &Server,
    source: &str,
    prefix: &str,
    extra: &[&str],
) -> (support::Run, BTreeMap<String, Value>) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let summary_arg = summary.to_str().unwrap().to_string();
    let mut args = vec![
        "import",
        source,
        "--url",
        &cluster.url,
        "--index-prefix",
        prefix,
        "--summary-json",
        &summary_arg,
    ];
    s3_env_args(server, &mut args);
    args.extend_from_slice(extra);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(&args).current_dir(dir.path());
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var(key).is_err() {
            cmd.env(key, "test");
        }
    }
    let run: support::Run = cmd.output().unwrap().into();
    let s = std::fs::read_to_string(&summary)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    (run, s)
}

/// Uploads objects, 16 at a time.
pub(crate) fn put_many(endpoint: &str, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = client(endpoint);
    rt.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(objects)
            .map(|(key, body)| {
                let c = c.clone();
                async move {
                    c.put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    });
}

/// LIST requests the server logged for one bucket (tests run in parallel).
pub(crate) fn list_requests(server: &Server, bucket: &str) -> usize {
    let (plain, slashed) = (format!("GET /{bucket}?"), format!("GET /{bucket}/?"));
    server
        .request_log
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter(|l| (l.contains(&plain) || l.contains(&slashed)) && l.contains("list-type=2"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn s3_import_equals_the_local_mirror() {
    let Some(server) = server("s3_import_equals_the_local_mirror") else {
        return;
    };
    for cluster in support::clusters("s3_import_equals_the_local_mirror") {
        let trail = trail(&server);
        let expected: usize = trail.files.values().map(|f| f.3).sum();
        let (from_s3, from_mirror) = (support::prefix("s3"), support::prefix("mirror"));
        let url = format!("s3://{}", trail.bucket);
        let (run, s) = import(&cluster, &server, &url, &from_s3, &[]);
        assert_eq!(run.code, 0, "{}: {}\n{}", cluster.name, run.stdout, run.stderr);
        assert_eq!(s["events_read"], json!(expected), "{}", cluster.name);
        // Digest prefixes are not even listed.
        assert_eq!(s["files_digest"], json!(0), "{}", cluster.name);
        let mirror = trail.mirror.path().to_str().unwrap();
        let (run, s) = import(&cluster, &server, mirror, &from_mirror, &[]);
        assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
        assert_eq!(
            (s["events_read"].clone(), s["files_digest"].clone()),
            (json!(expected), json!(1)),
            "{}",
            cluster.name
        );

        let count = cluster.count(&from_s3, json!({"match_all": {}}));
        assert_eq!(
            count,
            cluster.count(&from_mirror, json!({"match_all": {}})),
            "{}",
            cluster.name
        );
        assert!(count > 2000, "{}: {count}", cluster.name);
        // Same documents, but for where they came from.
        let strip = |mut doc: Value| {
            doc["ctindex"].as_object_mut().unwrap().remove("source");
            doc
        };
        let a: BTreeMap<String, Value> = cluster
            .all_docs(&from_s3)
            .into_iter()
            .map(|(i, id, d)| (format!("{i}/{id}"), strip(d)))
            .collect();
        let b: BTreeMap<String, Value> = cluster
            .all_docs(&from_mirror)
            .into_iter()
            .map(|(i, id, d)| (format!("{}/{id}", i.replacen(&from_mirror, &from_s3, 1)), strip(d)))
            .collect();
        assert_eq!(a.len(), b.len());
        for (key, doc) in a.iter().step_by(37) {
            assert_eq!(Some(doc), b.get(key), "{}: {key}", cluster.name);
        }
        // Insight events are indexed and marked.
        assert_eq!(
            cluster.count(&from_s3, json!({"term": {"ctindex.insight": true}})),
            1,
            "{}",
            cluster.name
        );
        let sources = cluster.count(
            &from_s3,
            json!({"prefix": {"ctindex.source": format!("s3://{}/AWSLogs/", trail.bucket)}}),
        );
        assert_eq!(sources, count, "{}: ctindex.source names the S3 object", cluster.name);
        cluster.cleanup(&from_s3);
        cluster.cleanup(&from_mirror);
    }
}

#[test]
fn s3_selection_lists_only_what_is_asked_for() {
    let Some(server) = server("s3_selection_lists_only_what_is_asked_for") else {
        return;
    };
    let Some(cluster) = support::clusters("s3_selection_lists_only_what_is_asked_for")
        .into_iter()
        .next()
    else {
        return;
    };
    let trail = trail(&server);
    let url = format!("s3://{}", trail.bucket);
    let two_accounts = format!("{},{}", ACCOUNTS[1], ACCOUNTS[2]);
    type Pick = Box<dyn Fn(&(String, String, String, usize)) -> bool>;
    let cases: Vec<(Vec<&str>, Pick)> = vec![
        (vec!["--accounts", ACCOUNTS[0]], Box::new(|f| f.0 == ACCOUNTS[0])),
        (vec!["--accounts", ACCOUNTS[2]], Box::new(|f| f.0 == ACCOUNTS[2])),
        (vec!["--regions", "eu-west-1"], Box::new(|f| f.1 == "eu-west-1")),
        (
            vec!["--from", "2023-07-09", "--to", "2023-07-09"],
            Box::new(|f| f.2 == "2023/07/09"),
        ),
        (
            vec![
                "--accounts",
                &two_accounts,
                "--regions",
                "us-east-1",
                "--from",
                "2023-07-09",
                "--to",
                "2023-07-10",
            ],
            Box::new(|f| f.0 != ACCOUNTS[0] && f.1 == "us-east-1" && f.2 != "2023/07/08"),
        ),
    ];
    for (extra, wanted) in &cases {
        let prefix = support::prefix("select");
        let expected: usize = trail.files.values().filter(|f| wanted(f)).map(|f| f.3).sum();
        assert!(expected > 0, "{extra:?} selects nothing; the test trail is wrong");
        let (run, s) = import(&cluster, &server, &url, &prefix, extra);
        assert_eq!(run.code, 0, "{extra:?}: {}", run.stderr);
        assert_eq!(s["events_read"], json!(expected), "{extra:?}");
        assert!(cluster.count(&prefix, json!({"match_all": {}})) > 0, "{extra:?}");
        cluster.cleanup(&prefix);
    }
}

/// `import --dry-run` (reads and encodes everything, sends nothing): the
/// run and its summary.
fn dry_run(server: &Server, source: &str, extra: &[&str]) -> (support::Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let mut args = vec![
        "import",
        source,
        "--dry-run",
        "--summary-json",
        summary.to_str().unwrap(),
    ];
    s3_env_args(server, &mut args);
    args.extend_from_slice(extra);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(&args).current_dir(dir.path());
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var(key).is_err() {
            cmd.env(key, "test");
        }
    }
    let run: support::Run = cmd.output().unwrap().into();
    let s = std::fs::read_to_string(&summary)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (run, s)
}

/// A bucket of its own with a one-account trail (`days` of one file each in
/// us-east-1); returns its name.
fn small_trail(server: &Server, tag: &str, days: &[&str]) -> String {
    let bucket = format!("ctindex-{tag}-{}", std::process::id());
    runtime()
        .block_on(client(&server.endpoint).create_bucket().bucket(&bucket).send())
        .unwrap();
    let sample = support::fixtures().join("trail/AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10");
    let sample = std::fs::read_dir(&sample).unwrap().flatten().next().unwrap().path();
    let body = std::fs::read(&sample).unwrap();
    put_many(
        &server.endpoint,
        &bucket,
        days.iter()
            .map(|day| {
                (
                    format!("AWSLogs/{}/CloudTrail/us-east-1/{day}/f.json.gz", ACCOUNTS[0]),
                    body.clone(),
                )
            })
            .collect(),
    );
    bucket
}

#[test]
fn list_requests_do_not_grow_with_the_days_outside_the_range() {
    let Some(server) = server("list_requests_do_not_grow_with_the_days_outside_the_range") else {
        return;
    };
    let bucket = small_trail(&server, "lists", &["2023/07/08", "2023/07/09", "2023/07/10"]);
    let url = format!("s3://{bucket}");
    let selections: [&[&str]; 3] = [
        // One day: listed directly.
        &["--regions", "us-east-1", "--from", "2023-07-09", "--to", "2023-07-09"],
        // A month: years, months and days are walked, in range only.
        &["--accounts", ACCOUNTS[0], "--from", "2023-07-01", "--to", "2023-07-31"],
        // From a day on, open-ended.
        &["--from", "2023-07-09"],
    ];
    let measure = || -> Vec<(usize, Value)> {
        selections
            .iter()
            .map(|select| {
                let before = list_requests(&server, &bucket);
                let (run, s) = dry_run(&server, &url, select);
                assert_eq!(run.code, 0, "{select:?}: {}", run.stderr);
                (list_requests(&server, &bucket) - before, s)
            })
            .collect()
    };
    let first = measure();
    // 40 days of files outside every range, in two other months.
    let extra: Vec<(String, Vec<u8>)> = (1..=20)
        .flat_map(|day| {
            ["05", "06"].map(|month| {
                (
                    format!(
                        "AWSLogs/{}/CloudTrail/us-east-1/2023/{month}/{day:02}/extra.json.gz",
                        ACCOUNTS[0]
                    ),
                    gz(b"{\"Records\":[]}"),
                )
            })
        })
        .collect();
    put_many(&server.endpoint, &bucket, extra);
    let second = measure();
    for ((select, (a, s1)), (b, s2)) in selections.iter().zip(&first).zip(&second) {
        assert!(s1["events_read"].as_u64().unwrap() > 0, "{select:?}");
        assert_eq!(s1["events_read"], s2["events_read"], "{select:?}");
        assert_eq!(s1["files"], s2["files"], "{select:?}");
        assert_eq!(
            s1["s3_list_requests"], s2["s3_list_requests"],
            "{select:?}: ctindex's own count"
        );
        if server.request_log.is_some() {
            assert!(*a > 0, "the server's request log shows no LIST requests");
            assert_eq!(a, b, "{select:?}: LIST requests grew with days outside the range");
            assert_eq!(*a as u64, s1["s3_list_requests"].as_u64().unwrap(), "{select:?}");
        }
        eprintln!(
            "LIST requests for {select:?}: {a} (server log), {} (ctindex)",
            s1["s3_list_requests"]
        );
    }
    // The bucket root, AWSLogs/, the account's folders, then the day itself.
    assert_eq!(first[0].1["s3_list_requests"], json!(4), "one day is listed directly");
}

#[test]
fn selection_applies_to_every_prefix_shape_and_to_local_mirrors() {
    let Some(server) = server("selection_applies_to_every_prefix_shape_and_to_local_mirrors") else {
        return;
    };
    let trail = trail(&server);
    let org = "AWSLogs/o-test123456";
    let region_level = format!("{org}/{}/CloudTrail/us-east-1", ACCOUNTS[2]);
    let deep = format!("AWSLogs/{}/CloudTrail/eu-west-1/2023", ACCOUNTS[1]);
    let two = format!("{},{}", ACCOUNTS[2], ACCOUNTS[0]);
    type Pick = Box<dyn Fn(&(String, String, String, usize)) -> bool>;
    // (prefix under the bucket / mirror, options, what is expected, LIST requests if known)
    let cases: Vec<(&str, Vec<&str>, Pick, Option<u64>)> = vec![
        // No trailing slash: still the layout.
        (
            "AWSLogs",
            vec!["--accounts", ACCOUNTS[1]],
            Box::new(|f| f.0 == ACCOUNTS[1]),
            None,
        ),
        (
            org,
            vec!["--regions", "eu-west-1"],
            Box::new(|f| f.0 == ACCOUNTS[2] && f.1 == "eu-west-1"),
            None,
        ),
        (
            "AWSLogs/111111111111/",
            vec!["--from", "2023-07-09", "--to", "2023-07-09"],
            Box::new(|f| f.0 == ACCOUNTS[0] && f.2 == "2023/07/09"),
            None,
        ),
        // At region level, a day is one LIST, not a recursive listing of the region.
        (
            &region_level,
            vec!["--from", "2023-07-10", "--to", "2023-07-10"],
            Box::new(|f| f.0 == ACCOUNTS[2] && f.1 == "us-east-1" && f.2 == "2023/07/10"),
            Some(1),
        ),
        // --to alone: everything up to that day.
        (
            &region_level,
            vec!["--to", "2023-07-09"],
            Box::new(|f| f.0 == ACCOUNTS[2] && f.1 == "us-east-1" && f.2 != "2023/07/10"),
            None,
        ),
        // Deeper than the region: listed recursively, keys still selected.
        (
            &deep,
            vec!["--from", "2023-07-10"],
            Box::new(|f| f.0 == ACCOUNTS[1] && f.1 == "eu-west-1" && f.2 == "2023/07/10"),
            None,
        ),
        (&deep, vec!["--accounts", ACCOUNTS[0]], Box::new(|_| false), None),
        (&deep, vec!["--regions", "us-east-1"], Box::new(|_| false), None),
        (
            "",
            vec!["--accounts", &two, "--regions", "us-east-1", "--to", "2023-07-09"],
            Box::new(|f| f.0 != ACCOUNTS[1] && f.1 == "us-east-1" && f.2 != "2023/07/10"),
            None,
        ),
    ];
    for (prefix, options, wanted, lists) in &cases {
        let expected: usize = trail.files.values().filter(|f| wanted(f)).map(|f| f.3).sum();
        let url = format!("s3://{}/{prefix}", trail.bucket);
        let (run, s) = dry_run(&server, &url, options);
        if expected == 0 {
            // Nothing matched: an error that says so (issue 19), in S3 and in the mirror alike.
            let mirror = trail.mirror.path().join(prefix);
            for (run, s) in [(run, s), dry_run(&server, mirror.to_str().unwrap(), options)] {
                assert!(
                    run.code == 4 && run.stderr.contains("nothing matched in"),
                    "{url} {options:?}: {}",
                    run.stderr
                );
                assert_eq!(s["events_read"], json!(0), "{url} {options:?}");
            }
            continue;
        }
        assert_eq!(run.code, 0, "{url} {options:?}: {}", run.stderr);
        assert_eq!(s["events_read"], json!(expected), "{url} {options:?}");
        if let Some(lists) = lists {
            assert_eq!(s["s3_list_requests"], json!(lists), "{url} {options:?}");
        }
        let mirror = trail.mirror.path().join(prefix);
        let (run, s) = dry_run(&server, mirror.to_str().unwrap(), options);
        assert_eq!(run.code, 0, "{} {options:?}: {}", mirror.display(), run.stderr);
        assert_eq!(s["events_read"], json!(expected), "{} {options:?}", mirror.display());
    }
}

#[test]
fn bad_selections_are_usage_errors_for_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    for (options, named) in [
        (vec!["--accounts", "12345"], "--accounts"),
        (vec!["--accounts", "123456789012,abcdefghijkl"], "--accounts"),
        (vec!["--from", "2024-03-02", "--to", "2024-03-01"], "--from"),
    ] {
        let mut args = vec!["import", path, "--dry-run"];
        args.extend(&options);
        let run = support::ctindex(&args);
        assert_eq!(run.code, 2, "{options:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{options:?}: {}", run.stderr);
    }
}

#[test]
fn an_unreadable_object_is_reported_by_key_and_counted() {
    let Some(server) = server("an_unreadable_object_is_reported_by_key_and_counted") else {
        return;
    };
    let bucket = small_trail(&server, "glacier", &["2023/07/08", "2023/07/09"]);
    // An object moved to Glacier cannot be downloaded until restored.
    let key = format!(
        "AWSLogs/{}/CloudTrail/us-east-1/2023/07/09/archived.json.gz",
        ACCOUNTS[0]
    );
    runtime()
        .block_on(
            client(&server.endpoint)
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
                .body(ByteStream::from(gz(b"{\"Records\":[]}")))
                .send(),
        )
        .unwrap();
    let (run, s) = dry_run(&server, &format!("s3://{bucket}"), &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        (s["files"].as_u64(), s["files_skipped"].as_u64()),
        (Some(2), Some(1)),
        "{}",
        run.stderr
    );
    assert!(s["events_read"].as_u64().unwrap() > 0);
    assert!(
        run.stderr.contains(&format!("s3://{bucket}/{key}")) && run.stderr.contains("InvalidObjectState"),
        "the key and the reason are named: {}",
        run.stderr
    );
}
#[test]
fn missing_credentials_fail_fast_with_what_was_tried() {
    let start = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args([
        "import",
        "s3://some-bucket/AWSLogs/",
        "--dry-run",
        "--region",
        "us-east-1",
    ])
    .current_dir(dir.path())
    .env_clear()
    .env("HOME", dir.path())
    .env("AWS_CONFIG_FILE", dir.path().join("none"))
    .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
    // Instance metadata: an address where nothing listens, so the test does not depend on the network.
    .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    let run: support::Run = cmd.output().unwrap().into();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no AWS credentials found"), "{}", run.stderr);
    assert!(
        run.stderr.contains("AWS_ACCESS_KEY_ID") && run.stderr.contains("--profile"),
        "{}",
        run.stderr
    );
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

#[test]
fn memory_stays_bounded_on_a_trail_of_thousands_of_files() {
    let Some(server) = server("memory_stays_bounded_on_a_trail_of_thousands_of_files") else {
        return;
    };
    let Some(cluster) = support::clusters("memory_stays_bounded").into_iter().next() else {
        return;
    };
    // 2,400 files of 40 events each (96,000 events), made from the fixture events with fresh ids.
    let oracle = support::Oracle::read(&support::fixtures().join("trail"));
    let events: Vec<Value> = oracle.all.iter().map(|e| Value::Object(e.clone())).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = client(&server.endpoint);
    let bucket = format!("ctindex-mem-{}", std::process::id());
    rt.block_on(c.create_bucket().bucket(&bucket).send()).unwrap();
    let (files, per_file) = (2400usize, 40usize);
    let bodies: Vec<(String, Vec<u8>)> = (0..files)
        .map(|f| {
            let day = 1 + f % 28;
            let records: Vec<Value> = (0..per_file)
                .map(|i| {
                    let mut e = events[(f * per_file + i) % events.len()].clone();
                    e["eventID"] = json!(format!("mem-{f}-{i}"));
                    e["eventTime"] = json!(format!("2024-02-{day:02}T{:02}:{:02}:00Z", i % 24, f % 60));
                    e
                })
                .collect();
            let key = format!("AWSLogs/444444444444/CloudTrail/us-east-1/2024/02/{day:02}/f{f:05}.json.gz");
            (key, gz(json!({ "Records": records }).to_string().as_bytes()))
        })
        .collect();
    put_many(&server.endpoint, &bucket, bodies);
    let prefix = support::prefix("memory");
    let url = format!("s3://{bucket}");
    let (run, s) = import(
        &cluster,
        &server,
        &url,
        &prefix,
        &[
            "--max-bytes-in-flight",
            "8MB",
            "--batch-bytes",
            "2MB",
            "--replicas",
            "0",
            "--progress",
            "off",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s["events_read"], json!(files * per_file));
    assert_eq!(
        cluster.count(&prefix, json!({"match_all": {}})),
        (files * per_file) as u64
    );
    let peak = s["peak_rss_bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "memory: {files} files, {} events, {} bytes of gzip: peak RSS {:.1} MB, {} events/s",
        files * per_file,
        s["bytes"],
        peak as f64 / 1e6,
        s["events_per_second"]
    );
    assert!(peak > 0 && peak < 250_000_000, "peak RSS {peak} bytes");
    cluster.cleanup(&prefix);
}
