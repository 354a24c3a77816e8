//! Sigma rules for AWS CloudTrail (SigmaHQ and Suzaku) on a ctindex index:
//! `scripts/sigma-check.py check` loads the corpus into Elasticsearch and
//! OpenSearch, converts every rule with pySigma's Lucene backend, runs it, and
//! compares the hits with its own evaluation of the rule on the raw events
//! (docs/sigma.md). `scripts/sigma-check.py searches` turns rule folders into
//! saved searches; their structure is checked as tests/it/dashboards.rs checks
//! the dashboards' NDJSON, and their queries run on the real servers.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{self, Cluster};

fn script() -> String {
    support::root().join("scripts/sigma-check.py").display().to_string()
}

/// The Elasticsearch 8 and OpenSearch 2 clusters, if both are configured.
fn es_and_os(test: &str) -> Option<(Cluster, Cluster)> {
    let clusters = support::clusters(test);
    let es = clusters.iter().find(|c| c.name == "elasticsearch").cloned();
    let os = clusters.iter().find(|c| c.name == "opensearch").cloned();
    match (es, os) {
        (Some(es), Some(os)) => Some((es, os)),
        _ => {
            support::skipped(test, "ES_URL and OPENSEARCH_URL", "elasticsearch opensearch");
            None
        }
    }
}

fn python(args: &[&str]) -> support::Run {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") && key != "CTINDEX_CACHE" {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("cannot run python3").into()
}

#[test]
fn sigma_rules_run_and_find_the_corpus_events() {
    let Some(_corpus) = support::corpus() else {
        support::loud("SKIPPED sigma_rules_run_and_find_the_corpus_events: ../shared/cloudtrail-corpus is absent");
        return;
    };
    let Some((es, os)) = es_and_os("sigma_rules_run_and_find_the_corpus_events") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let prefix = support::prefix("sigma");
    let run = python(&[
        "check",
        "--url",
        &es.url,
        "--url",
        &os.url,
        "--ctindex",
        env!("CARGO_BIN_EXE_ctindex"),
        "--prefix",
        &prefix,
        "--json",
        report_path.to_str().unwrap(),
    ]);
    println!("{}", run.stdout);
    assert_eq!(run.code, 0, "sigma-check failed:\n{}\n{}", run.stdout, run.stderr);

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let clusters = report["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{report}");
    for cluster in clusters {
        let server = cluster["server"].as_str().unwrap();
        let rules = cluster["rules"].as_array().unwrap();
        let family = |name: &'static str| rules.iter().filter(move |r| r["family"] == name);
        // Every rule of both families was read; most convert.
        assert!(family("sigmahq").count() >= 60, "{server}: SigmaHQ rules missing");
        assert!(family("suzaku").count() >= 700, "{server}: Suzaku rules missing");
        assert!(family("suzaku").filter(|r| r["compiled"] == true).count() >= 700);
        // Every converted rule ran without a query error.
        for r in rules.iter().filter(|r| r["compiled"] == true) {
            assert_eq!(r["ran"], true, "{server}: {} did not run: {}", r["file"], r["error"]);
        }
        // The rules with events in the corpus find exactly those events,
        // unless the gap is a known, explained one.
        let with_events: Vec<&Value> = rules
            .iter()
            .filter(|r| r["expected"].as_u64().is_some_and(|n| n > 0))
            .collect();
        assert!(
            with_events.len() >= 180,
            "{server}: only {} rules with events",
            with_events.len()
        );
        let mut gaps = Vec::new();
        for r in &with_events {
            if r["matched"] != true {
                assert!(
                    r["known_gap"].is_string(),
                    "{server}: {} expected {} hits {} (missing {}, extra {})",
                    r["file"],
                    r["expected"],
                    r["hits"],
                    r["missing"],
                    r["extra"]
                );
                gaps.push(r["file"].as_str().unwrap());
            }
        }
        assert!(gaps.len() <= 5, "{server}: more known gaps than documented: {gaps:?}");
        // The run left nothing behind.
        let cluster = if server.starts_with("opensearch") { &os } else { &es };
        let left = cluster.get(&format!("/_cat/indices/{prefix}-*?format=json&h=index"));
        assert_eq!(left, json!([]), "{server}: sigma-check left indices behind");
    }
}

/// The objects of an NDJSON file.
fn objects(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect()
}

#[test]
fn sigma_rules_become_saved_searches_whose_queries_run() {
    let Some(corpus) = support::corpus() else {
        support::loud(
            "SKIPPED sigma_rules_become_saved_searches_whose_queries_run: ../shared/cloudtrail-corpus is absent",
        );
        return;
    };
    let rules = corpus.join("sigma-rules-aws-cloudtrail/rules");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sigma.ndjson");
    let run = python(&[
        "searches",
        rules.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--index-prefix",
        "ct-prod",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let objects = objects(&out);

    // The structure `ctindex dashboards export` writes: one index pattern
    // (the one the dashboards use for this prefix), searches that refer to it.
    let pattern_id = "ctindex-ct-prod-index-pattern";
    let patterns: Vec<&Value> = objects.iter().filter(|o| o["type"] == "index-pattern").collect();
    assert_eq!(patterns.len(), 1);
    assert_eq!(patterns[0]["id"], pattern_id);
    assert_eq!(patterns[0]["attributes"]["title"], "ct-prod");
    assert_eq!(patterns[0]["attributes"]["timeFieldName"], "eventTime");
    let searches: Vec<&Value> = objects.iter().filter(|o| o["type"] == "search").collect();
    assert_eq!(searches.len() + 1, objects.len(), "only searches and the index pattern");
    let rule_files = support::files_below(&rules)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .count();
    assert!(
        searches.len() * 10 >= rule_files * 8,
        "{} searches from {rule_files} rules",
        searches.len()
    );
    let mut ids = std::collections::BTreeSet::new();
    let mut queries = Vec::new();
    for s in &searches {
        let id = s["id"].as_str().unwrap();
        assert!(id.starts_with("ctindex-ct-prod-sigma-"), "{id}");
        assert!(ids.insert(id), "duplicate id {id}");
        assert!(s["attributes"]["title"].as_str().unwrap().starts_with("[Sigma"));
        assert_eq!(s["references"][0]["id"], pattern_id);
        assert_eq!(
            s["references"][0]["name"],
            "kibanaSavedObjectMeta.searchSourceJSON.index"
        );
        let source: Value = serde_json::from_str(
            s["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(source["indexRefName"], "kibanaSavedObjectMeta.searchSourceJSON.index");
        assert_eq!(source["query"]["language"], "lucene");
        queries.push((id.to_string(), source["query"]["query"].as_str().unwrap().to_string()));
    }

    // Each search's query, as Kibana sends it (a query_string), runs on real
    // servers against an index ctindex loaded.
    for cluster in support::clusters("sigma_rules_become_saved_searches_whose_queries_run") {
        if !matches!(cluster.name, "elasticsearch" | "opensearch") {
            continue;
        }
        let prefix = support::prefix("sigmass");
        let load = support::ctindex(&[
            "import",
            support::fixtures().join("samples").to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--replicas",
            "0",
        ]);
        assert!(load.code == 0 || load.code == 3, "{}", load.stderr);
        support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
        for (id, query) in &queries {
            let (status, body) = support::http_patient(
                "POST",
                &format!("{}/{prefix}/_count", cluster.url),
                Some(&json!({"query": {"query_string": {"query": query}}})),
            );
            assert_eq!(status, 200, "{}: {id}: {query}: {body}", cluster.name);
        }
        cluster.cleanup(&prefix);
    }
}
