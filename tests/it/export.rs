//! `ctindex export`: line formats, routing, order, repeats, the filter, and
//! the classic alert regexes a log monitor would use (README, *Export*).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::support::{self, Oracle};

/// The README's alert regexes (asserted to be there, literally).
const UNAPPROVED_INSTANCES: &str =
    r"^[^\t]*\t[^\t]*\tec2\.amazonaws\.com\tRunInstances\t[^\t]*\t[^\t]*\t-\t(console|unknown)\t";
const SECURITY_GROUP_CHANGES: &str = r"^[^\t]*\t[^\t]*\tec2\.amazonaws\.com\t(AuthorizeSecurityGroup(Ingress|Egress)|RevokeSecurityGroup(Ingress|Egress)|CreateSecurityGroup|DeleteSecurityGroup|ModifySecurityGroupRules)\t";
const ACCESS_DENIED: &str = r"^([^\t]*\t){6}(AccessDenied[A-Za-z]*|(Client\.)?Unauthorized[A-Za-z]*)\t";

const SG_CHANGES: [&str; 7] = [
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "ModifySecurityGroupRules",
];

/// The corpus when it is there, else the bundled trail.
fn input() -> PathBuf {
    support::corpus().unwrap_or_else(|| support::fixtures().join("trail"))
}

/// Every output file under `dir` (not the work area), relative path → lines.
fn read_outputs(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in support::files_below(dir) {
        let rel = entry.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        if rel.starts_with(".ctindex") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{rel} does not end with a newline"
        );
        out.insert(rel, text.lines().map(String::from).collect());
    }
    out
}

/// A field of a raw corpus event, whatever the key's case (data-lake exports).
fn field<'a>(event: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    event
        .get(key)
        .or_else(|| event.get(&key.to_lowercase()))
        .and_then(Value::as_str)
}

/// A line of the `lines` format: its nine header fields and its event.
fn parse_line(line: &str) -> (Vec<&str>, Map<String, Value>) {
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 10, "not 9 header fields and the JSON: {line}");
    let event: Value = serde_json::from_str(fields[9]).unwrap_or_else(|e| panic!("{e}: {line}"));
    (fields[..9].to_vec(), event.as_object().cloned().unwrap())
}

/// What identifies an event across the corpus and the export: its id and time.
fn key(event: &Map<String, Value>) -> String {
    let time = match event.get("eventTime").or_else(|| event.get("eventtime")) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match field(event, "eventID").map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => format!("{id}@{time}"),
        None => format!("{}@{time}", field(event, "eventName").unwrap_or_default()),
    }
}

fn any_key_named(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == name || any_key_named(v, name)),
        Value::Array(items) => items.iter().any(|v| any_key_named(v, name)),
        _ => false,
    }
}

#[test]
fn lines_put_the_alert_fields_at_fixed_places() {
    let input = input();
    let oracle = Oracle::read(&input);
    let dir = tempfile::tempdir().unwrap();
    let lines_dir = dir.path().join("lines");
    let run = support::ctindex(&[
        "export",
        input.to_str().unwrap(),
        "--format",
        "lines",
        "--out",
        lines_dir.to_str().unwrap(),
        "--progress",
        "off",
    ]);
    assert!(run.code == 0 || run.code == 3, "{}\n{}", run.stdout, run.stderr);
    let outputs = read_outputs(&lines_dir);
    assert!(!outputs.is_empty());

    let key_id = regex_lite::Regex::new(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b").unwrap();
    let mut events = Vec::new();
    for (file, lines) in &outputs {
        assert!(file.ends_with(".log"), "{file}");
        let mut last_time = String::new();
        for line in lines {
            let (header, event) = parse_line(line);
            // The header holds the event's own values, in the documented order.
            let text = |path: &[&str]| {
                let mut v = Value::Object(event.clone());
                for p in path {
                    v = v.get(*p).cloned().unwrap_or(Value::Null);
                }
                match v {
                    Value::String(s) if !s.is_empty() && !s.contains(['\t', '\n', '\r', '\\']) => Some(s),
                    Value::Null => Some("-".to_string()),
                    Value::String(s) if s.is_empty() => Some("-".to_string()),
                    _ => None, // escaped or not a string: checked by the unit tests
                }
            };
            for (i, path) in [
                &["eventTime"][..],
                &["awsRegion"],
                &["eventSource"],
                &["eventName"],
                &["ctindex", "identity"],
                &["sourceIPAddress"],
                &["errorCode"],
                &["ctindex", "channel"],
            ]
            .iter()
            .enumerate()
            {
                if let Some(want) = text(path) {
                    assert_eq!(header[i], want, "field {i} of {line}");
                }
            }
            // Routed by account and region.
            let region = event.get("awsRegion").and_then(Value::as_str).unwrap_or("unknown");
            assert!(
                file.ends_with(&format!("/cloudtrail_{region}.log"))
                    || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{file}: {line}"
            );
            if let Some(account) = event.get("recipientAccountId").and_then(Value::as_str)
                && account.chars().all(|c| c.is_ascii_digit())
                && !account.is_empty()
            {
                assert!(file.starts_with(&format!("{account}/")), "{file}: {line}");
            }
            // The last header field is the account the file is named after.
            match header[8] {
                "-" => assert!(file.starts_with("unknown/"), "{file}: {line}"),
                account if account.bytes().all(|b| b.is_ascii_digit()) => {
                    assert!(file.starts_with(&format!("{account}/")), "{file}: {line}")
                }
                _ => {}
            }
            // In time order within the file (ISO times compare as text).
            if header[0].len() >= 19 && header[0].as_bytes()[10] == b'T' {
                assert!(
                    last_time.as_str() <= header[0],
                    "{file}: {last_time} before {}",
                    header[0]
                );
                last_time = header[0].to_string();
            }
            // Filtered: no access key id, as a field or inside a value.
            assert!(!any_key_named(&Value::Object(event.clone()), "accessKeyId"), "{line}");
            assert!(!key_id.is_match(line), "{line}");
            events.push((line.clone(), event));
        }
    }

    // Every event once. An event is its id and time in its output file
    // (the corpus reuses some ids in other accounts, which are other files);
    // events without an id are told apart by their content.
    let mut seen = BTreeSet::new();
    for (file, lines) in &outputs {
        for line in lines {
            let event = parse_line(line).1;
            if field(&event, "eventID").is_some_and(|id| !id.trim().is_empty()) {
                assert!(seen.insert(format!("{file}:{}", key(&event))), "written twice: {line}");
            }
        }
    }
    let with_id = |e: &&Map<String, Value>| field(e, "eventID").is_some_and(|id| !id.trim().is_empty());
    let expected: BTreeSet<String> = oracle.all.iter().filter(with_id).map(key).collect();
    let written: BTreeSet<String> = events.iter().map(|(_, e)| e).filter(with_id).map(key).collect();
    assert_eq!(written, expected);
    let without_id = events.iter().filter(|(_, e)| !with_id(&e)).count();
    assert_eq!(without_id, oracle.without_id.len());

    // Test corpora reuse ids (`"eventID": "1"` for different events at the
    // same time); ctindex keeps one event per id and time, as the index does.
    // Alerts are compared on the unambiguous ids.
    let mut contents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &oracle.all {
        contents
            .entry(key(e))
            .or_default()
            .insert(Value::Object(e.clone()).to_string());
    }
    let ambiguous: BTreeSet<String> = contents
        .into_iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(ambiguous.len() * 20 < events.len(), "{} ambiguous ids", ambiguous.len());
    let clear = |k: &String| !ambiguous.contains(k);

    // The three classic alerts match exactly the events they are about.
    for (regex, expect) in [
        (
            SECURITY_GROUP_CHANGES,
            Box::new(|e: &Map<String, Value>| {
                field(e, "eventSource") == Some("ec2.amazonaws.com")
                    && SG_CHANGES.contains(&field(e, "eventName").unwrap_or_default())
            }) as Box<dyn Fn(&Map<String, Value>) -> bool>,
        ),
        (
            ACCESS_DENIED,
            Box::new(|e: &Map<String, Value>| {
                let code = field(e, "errorCode").unwrap_or_default();
                let code = code.strip_prefix("Client.").unwrap_or(code);
                code.starts_with("AccessDenied") || code.starts_with("Unauthorized")
            }),
        ),
    ] {
        let from_corpus: BTreeSet<String> = oracle.all.iter().filter(|e| expect(e)).map(key).filter(clear).collect();
        let re = regex_lite::Regex::new(regex).unwrap();
        let matched: BTreeSet<String> = events
            .iter()
            .filter(|(l, _)| re.is_match(l))
            .map(|(_, e)| key(e))
            .filter(clear)
            .collect();
        assert_eq!(matched, from_corpus, "{regex}");
        if support::corpus().is_some() {
            assert!(!matched.is_empty(), "the corpus has events for {regex}");
        }
    }
    // Unapproved instances: successful RunInstances not made by automation
    // (the channel is ctindex's, from the line's own event).
    let re = regex_lite::Regex::new(UNAPPROVED_INSTANCES).unwrap();
    let manual = |e: &Map<String, Value>| {
        field(e, "eventSource") == Some("ec2.amazonaws.com")
            && field(e, "eventName") == Some("RunInstances")
            && field(e, "errorCode").is_none_or(str::is_empty)
            && matches!(e["ctindex"]["channel"].as_str(), Some("console" | "unknown"))
    };
    let matched: BTreeSet<String> = events
        .iter()
        .filter(|(l, _)| re.is_match(l))
        .map(|(_, e)| key(e))
        .collect();
    let expected: BTreeSet<String> = events.iter().filter(|(_, e)| manual(e)).map(|(_, e)| key(e)).collect();
    assert_eq!(matched, expected);
    let all_runs = oracle
        .all
        .iter()
        .filter(|e| field(e, "eventName") == Some("RunInstances"))
        .count();
    if support::corpus().is_some() {
        assert!(
            !matched.is_empty() && matched.len() < all_runs,
            "{} of {all_runs}",
            matched.len()
        );
    }

    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    for regex in [UNAPPROVED_INSTANCES, SECURITY_GROUP_CHANGES, ACCESS_DENIED] {
        assert!(readme.contains(regex), "README lacks {regex}");
    }
}

fn write_gz(path: &Path, value: &Value) {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(value.to_string().as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn event(id: &str, time: &str, account: &str, region: &str) -> Value {
    json!({
        "eventVersion": "1.08", "eventID": id, "eventTime": time, "eventName": "DescribeInstances",
        "eventSource": "ec2.amazonaws.com", "awsRegion": region, "recipientAccountId": account,
        "userIdentity": {"type": "IAMUser", "accountId": account, "accessKeyId": "AKIAIOSFODNN7EXAMPLE"},
        "userAgent": "aws-cli/2.15.0", "requestParameters": {"note": "key AKIAIOSFODNN7EXAMPLE in text"}
    })
}

#[test]
fn stdout_export_is_sorted_once_per_event_filtered_and_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json.gz");
    let b = dir.path().join("b.json");
    write_gz(
        &a,
        &json!({"Records": [
            event("e3", "2024-01-01T00:00:03Z", "111111111111", "us-east-1"),
            event("e1", "2024-01-01T00:00:01Z", "222222222222", "eu-west-1"),
            event("e4", "2024-01-01T00:00:04Z", "111111111111", "us-east-1"),
        ]}),
    );
    let mut nasty = event("e2", "2024-01-01 00:00:02", "111111111111", "us-east-1");
    nasty["eventName"] = json!("Odd\tName\nWith\u{2028}Breaks");
    nasty["requestParameters"] = json!({"text": "tab\there\r\nnewline \u{2029} \u{85} and \\ backslash"});
    std::fs::write(
        &b,
        [
            event("e4", "2024-01-01T00:00:04Z", "111111111111", "us-east-1"),
            nasty,
            event("e3", "2024-01-01T00:00:03Z", "111111111111", "us-east-1"),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n"),
    )
    .unwrap();
    let summary = dir.path().join("summary.json");
    let args = |format: &'static str, extra: &'static [&'static str]| {
        let mut v = vec![
            "export".to_string(),
            a.display().to_string(),
            b.display().to_string(),
            "--format".into(),
            format.into(),
            "--summary-json".into(),
            summary.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run_with = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        support::ctindex(&refs)
    };

    let run = run_with(args("lines", &[]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The summary goes to stderr: stdout is the data.
    assert!(
        run.stderr.contains("4 written (2 repeated events dropped)"),
        "{}",
        run.stderr
    );
    let s = support::summary(&summary);
    assert_eq!((s["written"].clone(), s["duplicates"].clone()), (json!(4), json!(2)));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    let ids: Vec<String> = lines
        .iter()
        .map(|l| parse_line(l).1["eventID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
    let (header, nasty) = parse_line(lines[1]);
    assert_eq!(header[3], r"Odd\tName\nWith\u2028Breaks");
    assert_eq!(nasty["eventName"], json!("Odd\tName\nWith\u{2028}Breaks"));
    assert_eq!(
        nasty["requestParameters"]["text"],
        json!("tab\there\r\nnewline \u{2029} \u{85} and \\ backslash")
    );
    assert!(!run.stdout.contains('\u{2028}') && !run.stdout.contains('\u{2029}') && !run.stdout.contains('\u{85}'));
    assert!(!run.stdout.contains("AKIA"), "{}", run.stdout);
    assert!(!run.stdout.contains("accessKeyId"));

    // NDJSON: the same events, and --drop/--keep apply.
    let run = run_with(args(
        "ndjson",
        &[
            "--drop",
            "requestParameters",
            "--keep",
            "userIdentity.accessKeyId",
            "--no-redact",
        ],
    ));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 4);
    for e in &events {
        assert!(e.get("requestParameters").is_none(), "{e}");
        assert_eq!(e["userIdentity"]["accessKeyId"], json!("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(e["ctindex"]["channel"], json!("automation"));
    }
}

#[test]
fn folder_export_writes_one_file_per_account_and_region() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir
        .path()
        .join("trail/AWSLogs/o-abc123/333333333333/CloudTrail/us-west-2/2024/01/02");
    std::fs::create_dir_all(&trail).unwrap();
    let mut no_account = event("n1", "2024-01-02T00:00:09Z", "", "us-west-2");
    no_account.as_object_mut().unwrap().remove("recipientAccountId");
    write_gz(
        &trail.join("f.json.gz"),
        &json!({"Records": [
            event("a1", "2024-01-02T00:00:02Z", "111111111111", "us-east-1"),
            event("a2", "2024-01-02T00:00:01Z", "111111111111", "us-east-1"),
            event("b1", "2024-01-02T00:00:01Z", "111111111111", "eu-west-1"),
            event("c1", "2024-01-02T00:00:01Z", "222222222222", "us-east-1"),
            no_account,
        ]}),
    );
    let out = dir.path().join("out");
    let run = support::ctindex(&[
        "export",
        dir.path().join("trail").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let outputs = read_outputs(&out);
    let ids = |file: &str| -> Vec<String> {
        outputs[file]
            .iter()
            .map(|l| parse_line(l).1["eventID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        outputs.keys().cloned().collect::<Vec<_>>(),
        [
            "111111111111/cloudtrail_eu-west-1.log",
            "111111111111/cloudtrail_us-east-1.log",
            "222222222222/cloudtrail_us-east-1.log",
            // No recipientAccountId: the account of the key (organization trail).
            "333333333333/cloudtrail_us-west-2.log",
        ]
    );
    assert_eq!(ids("111111111111/cloudtrail_us-east-1.log"), ["a2", "a1"]);
    assert_eq!(ids("333333333333/cloudtrail_us-west-2.log"), ["n1"]);
    // Nothing is left in the work area but the lock.
    let work: Vec<PathBuf> = support::files_below(&out.join(".ctindex"));
    assert_eq!(work, [out.join(".ctindex/lock")], "{work:?}");
}

/// A CloudTrail file of `n` events with ids `<tag>-<i>`, in `dir` (a day folder).
fn trail_file(root: &Path, day: &str, name: &str, tag: &str, n: usize) {
    let dir = root.join(format!("AWSLogs/111111111111/CloudTrail/us-east-1/{day}"));
    std::fs::create_dir_all(&dir).unwrap();
    let time = day.replace('/', "-");
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = event(
                &format!("{tag}-{i}"),
                &format!("{time}T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60),
                "111111111111",
                "us-east-1",
            );
            e["requestParameters"] = json!({ "n": i, "pad": "x".repeat(200) });
            e
        })
        .collect();
    write_gz(
        &dir.join(format!("111111111111_CloudTrail_us-east-1_{name}.json.gz")),
        &json!({ "Records": records }),
    );
}

fn event_ids(outputs: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    outputs
        .values()
        .flatten()
        .map(|l| parse_line(l).1["eventID"].as_str().unwrap().to_string())
        .collect()
}

fn incremental(trail: &Path, out: &Path) -> support::Run {
    support::ctindex(&[
        "export",
        trail.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--incremental",
        "--progress",
        "off",
    ])
}

#[test]
fn incremental_exports_append_only_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, out) = (dir.path().join("trail"), dir.path().join("out"));
    trail_file(&trail, "2024/03/01", "20240301T1000Z_b", "b", 20);
    trail_file(&trail, "2024/03/01", "20240301T1100Z_c", "c", 20);
    trail_file(&trail, "2024/03/02", "20240302T1000Z_d", "d", 20);
    let run = incremental(&trail, &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = out.join("111111111111/cloudtrail_us-east-1.log");
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(first.lines().count(), 60);

    // A new file, and a late one whose key sorts before the others of a day
    // already exported.
    trail_file(&trail, "2024/03/02", "20240302T1100Z_e", "e", 7);
    trail_file(&trail, "2024/03/01", "20240301T0900Z_a", "a", 5);
    let run = incremental(&trail, &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("12 written"), "{}", run.stdout);
    let second = std::fs::read_to_string(&file).unwrap();
    assert!(second.starts_with(&first), "earlier lines changed");
    let added: Vec<String> = second[first.len()..]
        .lines()
        .map(|l| parse_line(l).1["eventID"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = (0..5)
        .map(|i| format!("a-{i}"))
        .chain((0..7).map(|i| format!("e-{i}")))
        .collect();
    let mut got = added.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // The run's own lines are in time order (the late day first).
    assert!(added[0].starts_with("a-"), "{added:?}");

    // Nothing new: nothing written.
    let run = incremental(&trail, &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("0 written"), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), second);
}

#[test]
fn a_killed_incremental_export_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, out) = (dir.path().join("trail"), dir.path().join("out"));
    let (files, per_file) = (120, 250);
    for f in 0..files {
        trail_file(
            &trail,
            "2024/04/01",
            &format!("20240401T{:04}Z_{f:03}", f),
            &format!("f{f:03}"),
            per_file,
        );
    }
    trail_file(&trail, "2024/03/31", "20240331T2300Z_z", "z", 10);
    // Export the first day alone, so the kill leaves committed lines behind.
    assert_eq!(incremental(&trail, &out).code, 0);
    let before = event_ids(&read_outputs(&out)).len();
    assert_eq!(before, files * per_file + 10);

    // A second trail folder of the same account, killed part-way.
    let more = dir.path().join("more");
    for f in 0..files {
        trail_file(
            &more,
            "2024/04/02",
            &format!("20240402T{:04}Z_{f:03}", f),
            &format!("g{f:03}"),
            per_file,
        );
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"))
        .args([
            "export",
            more.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--incremental",
        ])
        .args(["--progress", "log", "--progress-interval", "1", "--workers", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read = regex_lite::Regex::new(r"(\d+) events read").unwrap();
    let mut log = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let line = line.unwrap();
        let n: usize = read.captures(&line).and_then(|c| c[1].parse().ok()).unwrap_or(0);
        log.push(line);
        if n > 0 {
            break;
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the export ended too early:\n{}",
        log.join("\n")
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let run = incremental(&more, &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut ids = event_ids(&read_outputs(&out));
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "an event was written twice");
    assert_eq!(total, 2 * files * per_file + 10);
}
