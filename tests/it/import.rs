//! `ctindex import` and `ctindex setup` against real Elasticsearch and OpenSearch.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::support::{self, Cluster, Oracle, Run};

/// One import of the corpus (or, on a plain clone, the fixtures) per cluster,
/// shared by the tests that only read from it (dashboards.rs reads it too).
pub(crate) struct Imported {
    pub(crate) prefix: String,
    run: Run,
    summary: std::collections::HashMap<String, Value>,
    dead_letters: PathBuf,
    _dir: tempfile::TempDir,
}

fn source() -> PathBuf {
    support::corpus().unwrap_or_else(support::fixtures)
}

fn oracle() -> &'static Oracle {
    static ORACLE: OnceLock<Oracle> = OnceLock::new();
    ORACLE.get_or_init(|| Oracle::read(&source()))
}

pub(crate) fn corpus_import(cluster: &Cluster) -> Arc<Imported> {
    type PerCluster = Vec<(String, Arc<Imported>)>;
    static DONE: OnceLock<Mutex<PerCluster>> = OnceLock::new();
    let done = DONE.get_or_init(|| Mutex::new(Vec::new()));
    let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, imported)) = done.iter().find(|(name, _)| name == cluster.name) {
        return imported.clone();
    }
    let prefix = support::prefix("corpus");
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let dead_letters = dir.path().join("dead.ndjson");
    let source = source();
    let run = support::ctindex_in(
        dir.path(),
        &[
            "import",
            source.to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--summary-json",
            summary_path.to_str().unwrap(),
            "--dead-letter",
            dead_letters.to_str().unwrap(),
            "--batch-bytes",
            "1MB",
            "--replicas",
            "0",
        ],
    );
    let summary = support::summary(&summary_path);
    let imported = Arc::new(Imported {
        prefix,
        run,
        summary,
        dead_letters,
        _dir: dir,
    });
    done.push((cluster.name.to_string(), imported.clone()));
    imported
}

#[test]
fn corpus_import_indexes_every_event_without_rejections() {
    for cluster in support::clusters("corpus_import_indexes_every_event_without_rejections") {
        let imported = corpus_import(&cluster);
        let oracle = oracle();
        let s = &imported.summary;
        let ctx = format!("{}: {}\n{}", cluster.name, imported.run.stdout, imported.run.stderr);
        assert_eq!(s["failed"], json!(0), "documents rejected by the cluster: {ctx}");
        assert_eq!(s["events_read"], json!(oracle.events), "{ctx}");
        assert!(
            oracle.events > 3000,
            "the test source holds too few events: {}",
            oracle.events
        );

        // _count equals the distinct event ids read (one per month for ids that
        // fixtures reuse across months), plus the distinct events without an id.
        let count = cluster.count(&imported.prefix, json!({"match_all": {}}));
        assert_eq!(count, oracle.expected_docs(), "{}: _count on the alias", cluster.name);

        // And the ids are exactly the ids read.
        let docs = cluster.all_docs(&imported.prefix);
        let indexed: BTreeSet<String> = docs
            .iter()
            .filter_map(|(_, _, s)| s["eventID"].as_str().map(|i| i.trim().to_string()))
            .filter(|i| !i.is_empty())
            .collect();
        let read: BTreeSet<String> = oracle.ids.keys().cloned().collect();
        assert_eq!(indexed.len(), read.len(), "{}", cluster.name);
        assert!(indexed == read, "{}: indexed ids differ from ids read", cluster.name);

        // Every document sits in the monthly index of its eventTime.
        for (index, id, source) in &docs {
            let month = support::month(source.as_object().unwrap());
            if month != "epoch" {
                let want = format!("{}-{}", imported.prefix, month.replace('-', "."));
                assert_eq!(index, &want, "{}: {id}", cluster.name);
            }
        }

        // Files that are not CloudTrail, broken or truncated are named and counted.
        assert_eq!(imported.run.code, 3, "skipped input gives exit code 3: {ctx}");
        let skipped = s["files_skipped"].as_u64().unwrap() + s["files_truncated"].as_u64().unwrap();
        assert!(skipped >= oracle.files_without_events.len() as u64, "{ctx}");
        for file in &oracle.files_without_events {
            assert!(
                imported.run.stderr.contains(file.as_str()),
                "{}: {file} not named in the output",
                cluster.name
            );
        }
        for broken in ["bad_cloudtrail.json", "CreateApiKey.json"] {
            if source().join("misc-small").exists() || broken == "bad_cloudtrail.json" {
                assert!(
                    imported.run.stderr.contains(broken),
                    "{}: {broken} not reported",
                    cluster.name
                );
            }
        }
        // Digest files are not events and not errors.
        assert!(s["files_digest"].as_u64().unwrap() >= 1, "{ctx}");
        // Nothing was dead-lettered because the cluster refused it.
        if let Ok(text) = std::fs::read_to_string(&imported.dead_letters) {
            for line in text.lines() {
                let letter: Value = serde_json::from_str(line).unwrap();
                assert!(
                    !letter["reason"].as_str().unwrap_or("").starts_with("status"),
                    "{}: {line}",
                    cluster.name
                );
            }
        }
    }
}

#[test]
fn default_import_leaves_no_access_key_ids() {
    let key_id = regex_lite::Regex::new(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b").unwrap();
    let oracle = oracle();
    let in_input = oracle
        .all
        .iter()
        .filter(|e| key_id.is_match(&Value::Object((*e).clone()).to_string()))
        .count();
    assert!(in_input > 100, "the test input should hold access key ids ({in_input})");
    for cluster in support::clusters("default_import_leaves_no_access_key_ids") {
        let imported = corpus_import(&cluster);
        let p = &imported.prefix;
        assert_eq!(
            cluster.count(p, json!({"exists": {"field": "userIdentity.accessKeyId"}})),
            0,
            "{}",
            cluster.name
        );
        for pattern in ["AKIA*", "ASIA*"] {
            let q = json!({"query_string": {"query": pattern, "default_field": "*", "lenient": true}});
            assert_eq!(cluster.count(p, q), 0, "{}: {pattern}", cluster.name);
        }
        let leaks: Vec<String> = cluster
            .all_docs(p)
            .into_iter()
            .filter(|(_, _, s)| key_id.is_match(&s.to_string()))
            .map(|(_, id, _)| id)
            .collect();
        assert!(leaks.is_empty(), "{}: access key ids in {:?}", cluster.name, leaks);
    }
}

#[test]
fn classification_puts_events_in_the_right_channel() {
    for cluster in support::clusters("classification_puts_events_in_the_right_channel") {
        let imported = corpus_import(&cluster);
        let p = &imported.prefix;
        let channel = |c: &str| json!({"term": {"ctindex.channel": c}});
        let cases = [
            ("console", json!({"terms": {"sessionCredentialFromConsole": ["true"]}})),
            ("console", json!({"term": {"eventName": "ConsoleLogin"}})),
            (
                "automation",
                json!({"bool": {"must": [{"prefix": {"userAgent": "aws-cli/"}}], "must_not": [{"exists": {"field": "sessionCredentialFromConsole"}}, {"exists": {"field": "userIdentity.invokedBy"}}]}}),
            ),
            (
                "automation",
                json!({"bool": {"must": [{"wildcard": {"userAgent": "*Terraform*"}}], "must_not": [{"exists": {"field": "sessionCredentialFromConsole"}}, {"exists": {"field": "userIdentity.invokedBy"}}]}}),
            ),
            (
                "automation",
                json!({"bool": {"must": [{"prefix": {"userAgent": "Boto3/"}}], "must_not": [{"exists": {"field": "sessionCredentialFromConsole"}}, {"exists": {"field": "userIdentity.invokedBy"}}]}}),
            ),
            (
                "aws-service",
                json!({"bool": {"must": [{"term": {"userIdentity.type": "AWSService"}}], "must_not": [{"exists": {"field": "sessionCredentialFromConsole"}}]}}),
            ),
        ];
        for (want, query) in cases {
            let all = cluster.count(p, query.clone());
            assert!(all > 0, "{}: no events match {query}", cluster.name);
            let right = cluster.count(p, json!({"bool": {"filter": [query.clone(), channel(want)]}}));
            assert_eq!(right, all, "{}: {query} should all be {want}", cluster.name);
        }
        for c in ["console", "automation", "aws-service"] {
            assert!(cluster.count(p, channel(c)) > 0, "{}: no {c} events", cluster.name);
        }
    }
}

#[test]
fn reimport_leaves_the_count_unchanged() {
    for cluster in support::clusters("reimport_leaves_the_count_unchanged") {
        let prefix = support::prefix("reimport");
        let trail = support::fixtures().join("trail");
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("s.json");
        let args = |s: &PathBuf| {
            vec![
                "import".to_string(),
                trail.display().to_string(),
                "--url".into(),
                cluster.url.clone(),
                "--index-prefix".into(),
                prefix.clone(),
                "--summary-json".into(),
                s.display().to_string(),
            ]
        };
        let first = support::ctindex_in(
            dir.path(),
            &args(&summary).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(first.code, 0, "{}: {}", cluster.name, first.stderr);
        let s1 = support::summary(&summary);
        let count1 = cluster.count(&prefix, json!({"match_all": {}}));
        assert!(count1 > 2000, "{}: {count1}", cluster.name);
        assert_eq!(s1["created"].as_u64().unwrap(), count1, "{}", cluster.name);

        let second = support::ctindex_in(
            dir.path(),
            &args(&summary).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(second.code, 0, "{}: {}", cluster.name, second.stderr);
        let s2 = support::summary(&summary);
        assert_eq!(
            cluster.count(&prefix, json!({"match_all": {}})),
            count1,
            "{}",
            cluster.name
        );
        assert_eq!(
            s2["created"],
            json!(0),
            "{}: a re-import must create nothing",
            cluster.name
        );
        assert_eq!(s2["updated"], s1["events_read"], "{}", cluster.name);

        // The alias spans the monthly indices and the template is in place.
        let aliases = cluster.get(&format!("/_alias/{prefix}"));
        assert!(
            aliases
                .as_object()
                .is_some_and(|m| m.keys().all(|k| k.starts_with(&format!("{prefix}-"))))
        );
        assert!(cluster.exists(&format!("/_index_template/ctindex-{prefix}")));
        cluster.cleanup(&prefix);
    }
}

#[test]
fn dry_run_reads_everything_and_sends_nothing() {
    let prefix = support::prefix("dryrun");
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    // An address nothing listens on: a dry run must not even connect.
    let run = support::ctindex(&[
        "import",
        support::fixtures().join("trail").to_str().unwrap(),
        "--url",
        "http://127.0.0.1:9",
        "--index-prefix",
        &prefix,
        "--dry-run",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let trail_events = Oracle::read(&support::fixtures().join("trail")).events;
    assert!(
        run.stdout.contains(&format!("{trail_events} events read")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    // The bulk bodies were built: every event encoded, in byte-bounded batches.
    let summary = support::summary(&summary_path);
    assert_eq!(summary["encoded"], json!(trail_events), "{summary:?}");
    assert_eq!(summary["indexed"], json!(0), "{summary:?}");
    assert!(summary["batches"].as_u64().unwrap() >= 1, "{summary:?}");
    let bytes = summary["bulk_bytes"].as_u64().unwrap();
    assert!(bytes > 200 * trail_events as u64, "{summary:?}");
}

#[test]
fn setup_installs_the_template_and_prints_it() {
    let printed = support::ctindex(&["setup", "--print", "opensearch", "--index-prefix", "ct-x"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(
        printed.stdout.contains("\"ct-x-*\"") && printed.stdout.contains("flat_object"),
        "{}",
        printed.stdout
    );

    for cluster in support::clusters("setup_installs_the_template_and_prints_it") {
        let prefix = support::prefix("setup");
        let run = support::ctindex(&["setup", "--url", &cluster.url, "--index-prefix", &prefix]);
        assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
        let template = cluster.get(&format!("/_index_template/ctindex-{prefix}"));
        let t = &template["index_templates"][0]["index_template"];
        assert_eq!(t["index_patterns"], json!([format!("{prefix}-*")]), "{}", cluster.name);
        assert!(t["template"]["aliases"].get(&prefix).is_some(), "{}: {t}", cluster.name);
        cluster.cleanup(&prefix);
    }
}

/// Nested prefixes (`p` and `p-sub`) have overlapping index patterns: both
/// templates install, each index gets the more specific one, and the alias
/// `p` never spans the indices of `p-sub`.
#[test]
fn nested_prefixes_install_side_by_side_and_keep_their_aliases_apart() {
    for cluster in support::clusters("nested_prefixes_install_side_by_side_and_keep_their_aliases_apart") {
        let outer = support::prefix("nest");
        let inner = format!("{outer}-sub");
        let setup = |prefix: &str| {
            let run = support::ctindex(&[
                "setup",
                "--url",
                &cluster.url,
                "--index-prefix",
                prefix,
                "--replicas",
                "0",
            ]);
            assert_eq!(run.code, 0, "{}: setup {prefix}: {}", cluster.name, run.stderr);
        };
        let create = |index: &str| {
            let (status, body) = support::http("PUT", &format!("{}/{index}", cluster.url), None);
            assert!(status < 300, "{}: PUT {index}: {status} {body}", cluster.name);
        };
        let aliases = |index: &str| -> Vec<String> {
            let body = cluster.get(&format!("/{index}/_alias"));
            let mut names: Vec<String> = body[index]["aliases"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            names.sort();
            names
        };
        setup(&inner);
        create(&format!("{inner}-2024.01"));
        // Made before its template: the alias is added by setup.
        create(&format!("{outer}-2024.02"));
        setup(&outer);
        create(&format!("{inner}-2024.03"));
        create(&format!("{outer}-2024.04"));
        assert_eq!(
            aliases(&format!("{inner}-2024.01")),
            vec![inner.as_str()],
            "{}",
            cluster.name
        );
        assert_eq!(
            aliases(&format!("{inner}-2024.03")),
            vec![inner.as_str()],
            "{}",
            cluster.name
        );
        assert_eq!(
            aliases(&format!("{outer}-2024.02")),
            vec![outer.as_str()],
            "{}",
            cluster.name
        );
        // The index made before its template got the template's mapping too.
        let mapping = cluster.get(&format!("/{outer}-2024.02/_mapping"));
        let properties = &mapping[format!("{outer}-2024.02")]["mappings"]["properties"];
        assert_eq!(
            properties["eventName"]["type"],
            json!("keyword"),
            "{}: {mapping}",
            cluster.name
        );
        assert_eq!(
            properties["ctindex"]["properties"]["identity"]["type"],
            json!("keyword"),
            "{}: {mapping}",
            cluster.name
        );
        assert_eq!(
            aliases(&format!("{outer}-2024.04")),
            vec![outer.as_str()],
            "{}",
            cluster.name
        );
        cluster.cleanup(&inner);
        cluster.cleanup(&outer);
    }
}

#[test]
fn oversized_and_overdeep_events_are_indexed_and_flagged() {
    for cluster in support::clusters("oversized_and_overdeep_events_are_indexed_and_flagged") {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = json!("bottom");
        for i in 0..60 {
            deep = json!({ format!("k{i}"): deep });
        }
        let events = json!({"Records": [
            {"eventVersion": "1.08", "eventID": "big-1", "eventTime": "2024-03-01T00:00:00Z", "eventName": "PutBucketPolicy",
             "eventSource": "s3.amazonaws.com", "requestParameters": {"policy": "x".repeat(300_000)}, "userAgent": "aws-cli/2.0"},
            {"eventVersion": "1.08", "eventID": "deep-1", "eventTime": "2024-03-01T00:00:01Z", "eventName": "PutThing",
             "eventSource": "s3.amazonaws.com", "requestParameters": deep, "responseElements": {"n": "ü😀\u{0}"}},
            {"eventVersion": "1.08", "eventID": "big-2", "eventTime": "2024-03-01T00:00:02Z", "eventName": "X",
             "eventSource": "s3.amazonaws.com", "errorMessage": "e".repeat(200_000), "newTopLevel": {"a": {"b": 1}}}
        ]});
        std::fs::write(dir.path().join("big.json"), events.to_string()).unwrap();
        let prefix = support::prefix("limits");
        let run = support::ctindex(&[
            "import",
            dir.path().to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
        ]);
        assert_eq!(run.code, 0, "{}: {}\n{}", cluster.name, run.stdout, run.stderr);
        assert_eq!(cluster.count(&prefix, json!({"match_all": {}})), 3, "{}", cluster.name);
        let flagged = cluster.count(&prefix, json!({"exists": {"field": "ctindex.truncated"}}));
        assert_eq!(flagged, 3, "{}", cluster.name);
        let emoji = cluster.get(&format!("/{prefix}/_search?q=eventID:deep-1"));
        assert_eq!(
            emoji["hits"]["hits"][0]["_source"]["responseElements"]["n"],
            json!("ü😀\u{0}"),
            "{}",
            cluster.name
        );
        cluster.cleanup(&prefix);
    }
}

#[test]
fn usage_errors_exit_2_and_unreachable_clusters_exit_1() {
    let trail = support::fixtures().join("trail");
    let trail = trail.to_str().unwrap();
    for (args, code, needle) in [
        (vec!["import", trail], 2, "--url"),
        (
            vec!["import", "/no/such/dir", "--url", "http://127.0.0.1:9"],
            2,
            "/no/such/dir",
        ),
        (vec!["import", trail, "--url", "ftp://x"], 2, "--url"),
        (
            vec!["import", trail, "--url", "http://127.0.0.1:9", "--index-prefix", "Bad"],
            2,
            "--index-prefix",
        ),
        (
            vec!["import", trail, "--url", "http://127.0.0.1:9", "--drop", "a..b"],
            2,
            "a..b",
        ),
        (
            vec!["import", trail, "--url", "http://127.0.0.1:9", "--batch-bytes", "5XB"],
            2,
            "5XB",
        ),
        (vec!["import", "--bogus"], 2, "--bogus"),
        (
            vec!["import", trail, "--url", "http://elastic:hunter2@127.0.0.1:9"],
            1,
            "cannot reach",
        ),
    ] {
        let run = support::ctindex(&args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("hunter2"),
            "{args:?} leaked a password: {}",
            run.stderr
        );
    }
}
