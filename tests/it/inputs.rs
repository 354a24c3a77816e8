//! Input the user has, and selections that find none of it (issue 19):
//! `aws cloudtrail lookup-events` output and Insights events are read; a
//! selection that matches nothing fails and says what is there, locally and
//! in S3; S3 errors are one line with the likely fix. Dry runs and exports:
//! no cluster is needed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::s3;
use crate::support::{self, Run};

fn trail() -> String {
    support::fixtures().join("trail").to_str().unwrap().to_string()
}

fn lookup_fixture() -> std::path::PathBuf {
    support::fixtures().join("samples/lookup-events/lookup-events.json")
}

/// The events of an export to stdout in ndjson.
/// `export PATH --format ndjson`: the run (exit 0) and the events it wrote.
fn export_ndjson(path: &std::path::Path) -> (Run, Vec<Value>) {
    let run = support::ctindex(&[
        "export",
        path.to_str().unwrap(),
        "--format",
        "ndjson",
        "--progress",
        "off",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (run, events)
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["eventID"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn lookup_events_output_is_read() {
    let fixture = lookup_fixture();
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let entries = raw["Events"].as_array().unwrap();
    assert!(raw["NextToken"].is_string() && entries.len() >= 20);
    let want: BTreeSet<String> = entries
        .iter()
        .map(|e| {
            let inner: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
            inner["eventID"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(want.len(), entries.len());

    // Exported: every entry's CloudTrailEvent, as an event.
    let (run, events) = export_ndjson(&fixture);
    assert_eq!(events.len(), entries.len(), "{}", run.stderr);
    assert_eq!(ids(&events), want);
    assert!(
        events
            .iter()
            .all(|e| e["eventName"].is_string() && e.get("CloudTrailEvent").is_none())
    );
    assert!(!run.stderr.contains("skipped"), "{}", run.stderr);

    // Imported (dry run): the same count, nothing skipped.
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let run = support::ctindex(&[
        "import",
        fixture.to_str().unwrap(),
        "--dry-run",
        "--progress",
        "off",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let s = support::summary(&summary);
    assert_eq!(s["events_read"], json!(entries.len()), "{s:?}");
    assert_eq!(s["files_skipped"], json!(0), "{s:?}");
}

/// Insights events have no eventName of their own (it is in insightDetails):
/// read, in CloudTrail's S3 format and in lookup-events output, and marked.
#[test]
fn insight_events_are_read_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let insight = |id: &str, state: &str| {
        json!({
            "eventVersion": "1.07", "eventTime": "2024-05-06T07:08:00Z", "awsRegion": "eu-west-1",
            "eventID": id, "eventType": "AwsCloudTrailInsight", "recipientAccountId": "123456789012",
            "sharedEventID": "shared-1",
            "insightDetails": {"state": state, "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                "insightType": "ApiCallRateInsight",
                "insightContext": {"statistics": {"baseline": {"average": 0.01}, "insight": {"average": 2.5}}}},
            "eventCategory": "Insight"
        })
    };
    let folder = dir.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("records.json"),
        json!({"Records": [insight("ins-1", "Start"), insight("ins-2", "End")]}).to_string(),
    )
    .unwrap();
    // lookup-events --event-category insight: entries around the events, NextToken first.
    let entry = |id: &str| {
        json!({"EventId": id, "EventName": "RunInstances", "EventTime": "2024-05-06T07:08:00+00:00",
               "CloudTrailEvent": insight(id, "Start").to_string()})
    };
    std::fs::write(
        folder.join("lookup.json"),
        serde_json::to_string_pretty(&json!({"NextToken": "abc", "Events": [entry("ins-3"), entry("ins-4")]})).unwrap(),
    )
    .unwrap();
    let (_, events) = export_ndjson(&folder);
    assert_eq!(
        ids(&events),
        ["ins-1", "ins-2", "ins-3", "ins-4"].map(String::from).into()
    );
    for event in &events {
        assert_eq!(event["ctindex"]["insight"], json!(true), "{event}");
    }
}

/// `import --dry-run SOURCES… EXTRA…` and `export` alike.
fn dry_run(sources: &[&str], extra: &[&str]) -> Run {
    let mut args = vec!["import"];
    args.extend_from_slice(sources);
    args.extend_from_slice(&["--dry-run", "--progress", "off"]);
    args.extend_from_slice(extra);
    support::ctindex(&args)
}

/// The run failed, with one line saying that nothing matched: that line.
fn nothing_matched(run: &Run) -> String {
    assert_eq!(run.code, 4, "nothing matched: exit code 4 expected:\n{}", run.stderr);
    assert_ne!(run.code, 3, "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("nothing matched in"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    lines[0].to_string()
}

#[test]
fn a_selection_that_matches_nothing_fails_and_says_what_is_there() {
    let trail = trail();
    for (extra, says) in [
        (
            &["--regions", "us-east1"][..],
            "no file in regions us-east1; regions seen: us-east-1",
        ),
        (&["--from", "2024-01-01"], "no file from 2024-01-01 to "),
        (
            &["--accounts", "111111111111"],
            "no file in accounts 111111111111; accounts seen: 218007301253, 327878933619",
        ),
    ] {
        let line = nothing_matched(&dry_run(&[&trail], extra));
        assert!(
            line.contains(&format!("nothing matched in {trail}: {says}")),
            "{extra:?}: {line}"
        );
    }
    // The days there are, when the days asked for miss them.
    let line = nothing_matched(&dry_run(&[&trail], &["--from", "2024-01-01"]));
    assert!(line.ends_with("; days seen: 2023-07-10"), "{line}");

    // An empty folder.
    let empty = tempfile::tempdir().unwrap();
    let line = nothing_matched(&dry_run(&[empty.path().to_str().unwrap()], &[]));
    assert!(
        line.contains(": no log file in it (.json, .json.gz, .ndjson, .jsonl"),
        "{line}"
    );

    // export too.
    let run = support::ctindex(&["export", &trail, "--regions", "us-east1", "--progress", "off"]);
    assert!(nothing_matched(&run).contains("regions seen: us-east-1"));
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn a_source_that_matches_nothing_beside_others_is_a_warning() {
    let trail = trail();
    let empty = tempfile::tempdir().unwrap();
    let run = dry_run(&[empty.path().to_str().unwrap(), &trail], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let warning = format!("{}: nothing matched: no log file in it", empty.path().display());
    assert!(run.stderr.contains(&warning), "{}", run.stderr);
}

/// A bucket of its own: two regions, two days, an organisation account.
fn bucket(server: &s3::Server, name: &str) -> String {
    let bucket = format!("ctindex-inputs-{name}-{}", std::process::id());
    let rt = s3::runtime();
    rt.block_on(s3::client(&server.endpoint).create_bucket().bucket(&bucket).send())
        .unwrap();
    let event = |id: &str| {
        s3::gz(
            json!({"Records": [{"eventVersion": "1.08", "eventID": id, "eventName": "ListBuckets",
                "eventSource": "s3.amazonaws.com", "eventTime": "2023-07-10T10:00:00Z"}]})
            .to_string()
            .as_bytes(),
        )
    };
    let objects = [
        "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/09/a.json.gz",
        "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/11/b.json.gz",
        "AWSLogs/111111111111/CloudTrail/eu-west-1/2023/07/10/c.json.gz",
        "AWSLogs/o-abc1234567/222222222222/CloudTrail/ap-south-1/2023/08/01/d.json.gz",
    ]
    .iter()
    .enumerate()
    .map(|(i, key)| (key.to_string(), event(&format!("e{i}"))))
    .collect();
    s3::put_many(&server.endpoint, &bucket, objects);
    bucket
}

fn s3_run(server: &s3::Server, source: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "import",
        source,
        "--dry-run",
        "--progress",
        "off",
        "--endpoint-url",
        server.endpoint.as_str(),
        "--region",
        "us-east-1",
    ];
    args.extend_from_slice(extra);
    support::ctindex(&args)
}

#[test]
fn s3_selections_that_match_nothing_say_what_is_there() {
    let Some(server) = s3::server("s3_selections_that_match_nothing_say_what_is_there") else {
        return;
    };
    let bucket = bucket(&server, "nothing");
    let url = format!("s3://{bucket}/");
    // It reads when the selection matches.
    let run = s3_run(&server, &url, &["--regions", "eu-west-1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (extra, says) in [
        (
            &["--regions", "us-east1"][..],
            "no file in regions us-east1; regions seen: ap-south-1, eu-west-1, us-east-1".to_string(),
        ),
        (
            &["--accounts", "333333333333"],
            "no file in accounts 333333333333; accounts seen: 111111111111, 222222222222".into(),
        ),
        (
            &[
                "--accounts",
                "111111111111",
                "--from",
                "2023-07-12",
                "--to",
                "2023-07-30",
            ],
            "no file from 2023-07-12 to 2023-07-30; days seen: 2023-07-09 .. 2023-07-11".into(),
        ),
        (&["--from", "2024-01-01"], "no file from 2024-01-01 to ".into()),
    ] {
        let line = nothing_matched(&s3_run(&server, &url, extra));
        assert!(
            line.contains(&format!("nothing matched in {url}: {says}")),
            "{extra:?}: {line}"
        );
    }
    // A typo in the prefix: what is beside it.
    let line = nothing_matched(&s3_run(&server, &format!("s3://{bucket}/AWSLog"), &[]));
    assert!(
        line.contains(&format!("s3://{bucket}/AWSLog/: no log file in it"))
            && line.contains(&format!("beside it: s3://{bucket}/AWSLogs/")),
        "{line}"
    );
}

/// One line, naming what failed, without the SDK's debug dump.
fn s3_error_line(run: &Run, bucket: &str) -> String {
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("ServiceError(") && !run.stderr.contains("DispatchFailure("),
        "{}",
        run.stderr
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(&format!("s3://{bucket}/")) && l.contains("cannot list"))
        .unwrap_or_else(|| panic!("no line names s3://{bucket}/:\n{}", run.stderr));
    assert!(line.len() < 400, "{} chars: {line}", line.len());
    line.to_string()
}

#[test]
fn s3_errors_are_one_line_with_the_fix() {
    let Some(server) = s3::server("s3_errors_are_one_line_with_the_fix") else {
        return;
    };
    let missing = format!("ctindex-no-such-bucket-{}", std::process::id());
    let line = s3_error_line(&s3_run(&server, &format!("s3://{missing}/AWSLogs/"), &[]), &missing);
    assert!(line.contains(&format!("bucket {missing} does not exist")), "{line}");
    assert!(
        line.contains("check the bucket name") && line.contains("--endpoint-url"),
        "{line}"
    );

    // Nothing listens there (port 9: discard, closed on test machines).
    let run = support::ctindex(&[
        "import",
        "s3://any-bucket/",
        "--dry-run",
        "--progress",
        "off",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--region",
        "us-east-1",
    ]);
    let line = s3_error_line(&run, "any-bucket");
    assert!(
        line.contains("cannot connect to the S3 endpoint http://127.0.0.1:9")
            && line.contains("is --endpoint-url right"),
        "{line}"
    );
}
