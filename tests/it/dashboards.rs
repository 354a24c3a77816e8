//! `ctindex dashboards export|install`: the saved objects' structure, their
//! fields and aggregations against real Elasticsearch and OpenSearch loaded
//! with the corpus, and `install` against a local HTTP endpoint.
//!
//! Kibana and OpenSearch Dashboards cannot run here, so each visualization is
//! translated the way they translate it (same aggregations, same Lucene
//! query, the time filter on eventTime) and sent to the real servers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::support::{self, Cluster, Endpoint, Request};

// ------------------------------------------------------------------ export

/// The objects `dashboards export` writes, parsed line by line.
fn export(args: &[&str]) -> Vec<Map<String, Value>> {
    let mut all = vec!["dashboards", "export"];
    all.extend_from_slice(args);
    let run = support::ctindex(&all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    parse_ndjson(&run.stdout)
}

fn parse_ndjson(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .enumerate()
        .map(|(i, line)| match serde_json::from_str(line) {
            Ok(Value::Object(o)) => o,
            other => panic!("line {}: not a JSON object: {other:?}", i + 1),
        })
        .collect()
}

fn name(o: &Map<String, Value>) -> String {
    format!("{}:{}", o["type"].as_str().unwrap(), o["id"].as_str().unwrap())
}

/// A string attribute that must hold JSON.
fn inner_json(o: &Map<String, Value>, path: &str) -> Value {
    let mut v = &o["attributes"];
    for key in path.split('.') {
        v = &v[key];
    }
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("{}: {path} is not a string: {v}", name(o)));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {path} is not JSON: {e}", name(o)))
}

fn search_source(o: &Map<String, Value>) -> Value {
    inner_json(o, "kibanaSavedObjectMeta.searchSourceJSON")
}

fn of_type<'a>(objects: &'a [Map<String, Value>], kind: &str) -> Vec<&'a Map<String, Value>> {
    objects.iter().filter(|o| o["type"] == kind).collect()
}

/// "7.10.0" → [7, 10, 0].
fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|p| p.parse().unwrap()).collect()
}

#[test]
fn export_writes_saved_objects_that_both_products_import() {
    let objects = export(&[]);
    assert!(objects.len() >= 20, "{} objects", objects.len());

    // Attributes Kibana 8.8+ accepts per type (its saved-object schemas
    // refuse others) that OpenSearch Dashboards 2.x knows too.
    let allowed: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "index-pattern",
            vec![
                "title",
                "timeFieldName",
                "fields",
                "fieldFormatMap",
                "sourceFilters",
                "typeMeta",
                "type",
            ],
        ),
        (
            "visualization",
            vec![
                "title",
                "description",
                "version",
                "kibanaSavedObjectMeta",
                "uiStateJSON",
                "visState",
                "savedSearchRefName",
            ],
        ),
        (
            "search",
            vec![
                "title",
                "description",
                "columns",
                "sort",
                "hits",
                "version",
                "kibanaSavedObjectMeta",
            ],
        ),
        (
            "dashboard",
            vec![
                "title",
                "description",
                "kibanaSavedObjectMeta",
                "timeRestore",
                "timeFrom",
                "timeTo",
                "refreshInterval",
                "panelsJSON",
                "optionsJSON",
                "hits",
                "version",
            ],
        ),
    ]);
    let newest = BTreeMap::from([
        ("index-pattern", "7.6.0"),
        ("visualization", "7.10.0"),
        ("dashboard", "7.9.3"),
        ("search", "7.9.3"),
    ]);

    let names: Vec<String> = objects.iter().map(name).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "type:id pairs repeat: {names:?}");

    for o in &objects {
        let n = name(o);
        let kind = o["type"].as_str().unwrap();
        for key in o.keys() {
            assert!(
                ["id", "type", "attributes", "references", "migrationVersion"].contains(&key.as_str()),
                "{n}: key {key}"
            );
        }
        assert!(!o.contains_key("typeMigrationVersion") && !o.contains_key("coreMigrationVersion"));
        let mv = o["migrationVersion"]
            .as_object()
            .unwrap_or_else(|| panic!("{n}: migrationVersion"));
        assert_eq!(mv.len(), 1, "{n}");
        assert!(
            version(mv[kind].as_str().unwrap()) <= version(newest[kind]),
            "{n}: migrationVersion {mv:?} newer than {}",
            newest[kind]
        );
        let attributes = o["attributes"].as_object().unwrap();
        for key in attributes.keys() {
            assert!(allowed[kind].contains(&key.as_str()), "{n}: attribute {key}");
        }
        assert!(attributes["title"].as_str().is_some_and(|t| !t.is_empty()), "{n}");
        if let Some(meta) = attributes.get("kibanaSavedObjectMeta") {
            assert_eq!(
                meta.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["searchSourceJSON"],
                "{n}"
            );
        }

        // The names this object gives its references.
        let mut used = BTreeSet::new();
        match kind {
            "visualization" => {
                let state = inner_json(o, "visState");
                assert_eq!(state["title"], attributes["title"], "{n}");
                assert!(state["aggs"].as_array().is_some_and(|a| !a.is_empty()), "{n}");
                assert!(inner_json(o, "uiStateJSON").is_object(), "{n}");
            }
            "dashboard" => {
                for panel in inner_json(o, "panelsJSON").as_array().unwrap() {
                    used.insert(panel["panelRefName"].as_str().unwrap().to_string());
                    assert!(
                        panel.get("id").is_none(),
                        "{n}: panels reference objects by panelRefName"
                    );
                    let g = &panel["gridData"];
                    assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 48, "{n}: {g}");
                }
                assert!(inner_json(o, "optionsJSON").is_object(), "{n}");
            }
            "search" => {
                assert!(attributes["columns"].as_array().is_some_and(|c| !c.is_empty()), "{n}");
                assert_eq!(attributes["sort"], json!([["eventTime", "desc"]]), "{n}");
            }
            "index-pattern" => {
                assert_eq!(attributes["title"], "cloudtrail", "{n}: the alias");
                assert_eq!(attributes["timeFieldName"], "eventTime", "{n}");
            }
            _ => panic!("{n}: unexpected type"),
        }
        if attributes.contains_key("kibanaSavedObjectMeta") {
            let source = search_source(o);
            assert!(
                source.get("index").is_none(),
                "{n}: the index goes through indexRefName"
            );
            if let Some(r) = source.get("indexRefName") {
                used.insert(r.as_str().unwrap().to_string());
            }
            if kind != "dashboard" {
                assert_eq!(source["query"]["language"], "lucene", "{n}");
                assert!(source.get("indexRefName").is_some(), "{n}");
            }
        }

        // Every reference is used, every used name has a reference, and each resolves in the file.
        let references = o["references"].as_array().unwrap();
        let named: BTreeSet<String> = references
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(named.len(), references.len(), "{n}: reference names repeat");
        assert_eq!(named, used, "{n}: references vs indexRefName/panelRefName");
        for r in references {
            let target = format!("{}:{}", r["type"].as_str().unwrap(), r["id"].as_str().unwrap());
            assert!(unique.contains(&target), "{n}: reference {target} is not in the file");
        }
    }

    // What the issue asks for.
    assert_eq!(of_type(&objects, "index-pattern").len(), 1);
    let dashboards: Vec<&str> = of_type(&objects, "dashboard")
        .iter()
        .map(|d| d["attributes"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        dashboards,
        ["[CloudTrail] Console vs automation", "[CloudTrail] Security"]
    );
    for id in [
        "channel-pie",
        "client-pie",
        "console-actions-pie",
        "console-writers",
        "channel-over-time",
        "services-per-channel",
        "console-writes-table",
        "denied-over-time",
        "denied-by-identity",
        "network-changes",
        "create-by-identity-region",
        "delete-by-identity-region",
        "signin-outcomes",
        "signins-without-mfa",
        "failed-signins",
    ] {
        assert!(
            names.contains(&format!("visualization:ctindex-cloudtrail-{id}")),
            "{id}"
        );
    }
    let ingress = objects
        .iter()
        .find(|o| o["id"] == "ctindex-cloudtrail-search-ingress-anywhere")
        .unwrap();
    let q = search_source(ingress)["query"]["query"].as_str().unwrap().to_string();
    assert!(q.contains("\"0.0.0.0/0\"") && q.contains("\"::/0\""), "{q}");
    let ports = objects
        .iter()
        .find(|o| o["id"] == "ctindex-cloudtrail-search-all-ports")
        .unwrap();
    let q = search_source(ports)["query"]["query"].as_str().unwrap().to_string();
    assert!(q.contains(":0 AND ") && q.contains(":65535"), "{q}");
}

/// dashboards/ctindex.ndjson is exactly what scripts/gen-dashboards.py
/// writes, so the file and its generator cannot drift apart.
#[test]
fn the_bundled_file_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("generated.ndjson");
    let script = support::root().join("scripts").join("gen-dashboards.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 {} ({e}); scripts/stack needs python3 too",
                script.display()
            )
        });
    assert!(
        run.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let generated = std::fs::read_to_string(&out).unwrap();
    let bundled = std::fs::read_to_string(support::root().join("dashboards").join("ctindex.ndjson")).unwrap();
    if generated != bundled {
        let line = generated
            .lines()
            .zip(bundled.lines())
            .position(|(g, b)| g != b)
            .map_or_else(|| "the line counts".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "dashboards/ctindex.ndjson differs from the output of scripts/gen-dashboards.py ({line}): \
             edit the generator, run it and commit both"
        );
    }
}

/// The panels of one dashboard, by id without the `ctindex-cloudtrail-` start.
fn dashboard_panels(objects: &[Map<String, Value>], id: &str) -> Vec<String> {
    let dashboard = objects
        .iter()
        .find(|o| o["id"] == format!("ctindex-cloudtrail-{id}"))
        .unwrap_or_else(|| panic!("no dashboard {id}"));
    dashboard["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap();
            id.trim_start_matches("ctindex-cloudtrail-").to_string()
        })
        .collect()
}

#[test]
fn the_panels_cover_the_issue_and_split_by_the_derived_fields() {
    let objects = export(&[]);
    let panels = panels();
    let find = |id: &str| {
        panels
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no panel {id}"))
    };
    // Bucket aggregations as (type, field or filter queries), outermost first.
    let splits = |id: &str| -> Vec<(String, String)> {
        find(id).state["aggs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["schema"] != "metric")
            .map(|a| {
                let p = &a["params"];
                let what = match p["field"].as_str() {
                    Some(field) => field.to_string(),
                    None => p["filters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["input"]["query"].as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(" | "),
                };
                (a["type"].as_str().unwrap().to_string(), what)
            })
            .collect()
    };
    let split = |kind: &str, what: &str| (kind.to_string(), what.to_string());
    let terms = |field: &str| split("terms", field);
    let time = || split("date_histogram", "eventTime");
    let vis_type = |id: &str| find(id).state["type"].as_str().unwrap().to_string();

    // Console vs automation.
    assert_eq!(
        dashboard_panels(&objects, "dashboard-console-vs-automation"),
        [
            "channel-pie",
            "client-pie",
            "console-actions-pie",
            "channel-over-time",
            "console-writers",
            "services-per-channel",
            "console-writes-table",
            "search-console-writes",
        ]
    );
    const CONSOLE: &str = "ctindex.channel:console";
    const WRITES: &str = "readOnly:false";
    assert_eq!(
        (vis_type("channel-pie"), splits("channel-pie")),
        ("pie".into(), vec![terms("ctindex.channel")])
    );
    assert_eq!(
        (vis_type("client-pie"), splits("client-pie")),
        ("pie".into(), vec![terms("ctindex.client")])
    );
    assert_eq!(vis_type("console-actions-pie"), "pie");
    assert_eq!(splits("console-actions-pie"), [terms("eventName")]);
    assert!(find("console-actions-pie").query.contains(CONSOLE));
    assert_eq!(splits("console-writers"), [terms("ctindex.identity")]);
    assert_eq!(splits("channel-over-time"), [time(), terms("ctindex.channel")]);
    assert_eq!(
        splits("services-per-channel"),
        [terms("ctindex.channel"), terms("eventSource")]
    );
    assert_eq!(vis_type("console-writes-table"), "table");
    for id in ["console-writers", "console-writes-table", "search-console-writes"] {
        let q = &find(id).query;
        assert!(q.contains(CONSOLE) && q.contains(WRITES), "{id}: {q}");
    }

    // Security.
    assert_eq!(
        dashboard_panels(&objects, "dashboard-security"),
        [
            "denied-over-time",
            "denied-by-identity",
            "network-changes",
            "search-ingress-anywhere",
            "search-all-ports",
            "create-by-identity-region",
            "delete-by-identity-region",
            "signin-outcomes",
            "signins-without-mfa",
            "failed-signins",
            "search-risky-signins",
            "integrity-over-time",
            "integrity-failed-files",
        ]
    );
    assert_eq!(splits("integrity-over-time"), [time(), terms("ctindex.integrity")]);
    assert_eq!(splits("integrity-failed-files"), [terms("ctindex.source")]);
    for id in ["denied-over-time", "denied-by-identity"] {
        let q = &find(id).query;
        assert!(
            q.contains("*AccessDenied*") && q.contains("*Unauthorized*"),
            "{id}: {q}"
        );
    }
    assert_eq!(splits("denied-over-time"), [time(), terms("errorCode")]);
    assert_eq!(splits("denied-by-identity"), [terms("ctindex.identity")]);
    assert_eq!(
        splits("network-changes"),
        [terms("eventName"), terms("ctindex.identity")]
    );
    for event in ["AuthorizeSecurityGroupIngress", "CreateNetworkAclEntry"] {
        assert!(find("network-changes").query.contains(event), "{event}");
    }
    for (id, words) in [
        ("create-by-identity-region", ["Run*", "Create*", "Launch*"].as_slice()),
        ("delete-by-identity-region", ["Delete*", "Terminate*"].as_slice()),
    ] {
        assert_eq!(splits(id), [terms("ctindex.identity"), terms("awsRegion")], "{id}");
        for word in words {
            assert!(find(id).query.contains(word), "{id}: {word}");
        }
    }
    // Sign-ins through the derived, typed fields only.
    assert_eq!(
        splits("signin-outcomes"),
        [
            terms("ctindex.signin.result"),
            split(
                "filters",
                "ctindex.signin.mfa:true | ctindex.signin.mfa:false | NOT _exists_:ctindex.signin.mfa"
            ),
        ]
    );
    assert_eq!(
        splits("signins-without-mfa"),
        [terms("ctindex.identity"), terms("sourceIPAddress")]
    );
    assert_eq!(
        splits("failed-signins"),
        [terms("sourceIPAddress"), terms("ctindex.identity")]
    );
    for (id, wanted) in [
        (
            "signins-without-mfa",
            "ctindex.signin.result:success AND ctindex.signin.mfa:false",
        ),
        ("failed-signins", "ctindex.signin.result:failure"),
        ("search-risky-signins", "ctindex.signin.mfa:false"),
        ("search-risky-signins", "ctindex.signin.result:failure"),
    ] {
        let q = &find(id).query;
        assert!(q.contains("eventName:ConsoleLogin") && q.contains(wanted), "{id}: {q}");
    }

    // No identity split on userIdentity.arn (one bucket per role session), no
    // aggregation on a free-form field, and no query on responseElements or
    // additionalEventData (sign-ins go through ctindex.signin).
    for panel in &panels {
        if panel.kind == "search" {
            assert!(
                !panel.query.contains("additionalEventData") && !panel.query.contains("responseElements"),
                "{}: {}",
                panel.id,
                panel.query
            );
            continue;
        }
        for (_, what) in splits(&panel.id) {
            assert!(!what.contains("userIdentity.arn"), "{}: {what}", panel.id);
            for free in ["requestParameters", "responseElements", "additionalEventData"] {
                assert!(!what.contains(free), "{}: {what}", panel.id);
            }
        }
        for (id, kind) in metric_ids(panel) {
            let field = panel.state["aggs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == id)
                .unwrap()["params"]["field"]
                .clone();
            assert_ne!(field, "userIdentity.arn", "{} {kind}", panel.id);
        }
        assert!(
            !panel.query.contains("additionalEventData") && !panel.query.contains("responseElements"),
            "{}: {}",
            panel.id,
            panel.query
        );
    }
}

#[test]
fn export_follows_the_index_prefix_and_writes_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dash.ndjson");
    let run = support::ctindex(&[
        "dashboards",
        "export",
        "--index-prefix",
        "ct-prod",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("ct-prod"), "{}", run.stderr);
    let objects = parse_ndjson(&std::fs::read_to_string(&out).unwrap());
    let ids: BTreeSet<String> = objects.iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    for o in &objects {
        assert!(o["id"].as_str().unwrap().starts_with("ctindex-ct-prod-"), "{}", name(o));
        for r in o["references"].as_array().unwrap() {
            assert!(ids.contains(r["id"].as_str().unwrap()), "{}: {r}", name(o));
        }
        let title = o["attributes"]["title"].as_str().unwrap();
        if o["type"] == "index-pattern" {
            assert_eq!(title, "ct-prod");
        } else {
            assert!(title.ends_with(" (ct-prod)"), "{title}");
        }
    }
    // Same objects as the default export, apart from ids and titles.
    assert_eq!(objects.len(), export(&[]).len());

    let bad = support::ctindex(&["dashboards", "export", "--index-prefix", "Bad Prefix"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--index-prefix"), "{}", bad.stderr);
}

// ------------------------------------------------------ translation to a search

/// What one visualization or saved search asks the server for.
struct Panel {
    id: String,
    kind: String,
    /// The Lucene query of its search source.
    query: String,
    /// The visState (visualizations only).
    state: Value,
    /// Saved search columns.
    columns: Vec<String>,
}

fn panels() -> Vec<Panel> {
    export(&[])
        .iter()
        .filter(|o| o["type"] == "visualization" || o["type"] == "search")
        .map(|o| Panel {
            id: o["id"]
                .as_str()
                .unwrap()
                .trim_start_matches("ctindex-cloudtrail-")
                .to_string(),
            kind: o["type"].as_str().unwrap().to_string(),
            query: search_source(o)["query"]["query"].as_str().unwrap().to_string(),
            state: if o["type"] == "visualization" {
                inner_json(o, "visState")
            } else {
                Value::Null
            },
            columns: o["attributes"]["columns"]
                .as_array()
                .map(|c| c.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Kibana's translation of a Lucene query (advanced setting
/// `query:queryString:options` defaults to analyze_wildcard).
fn lucene(query: &str) -> Value {
    json!({"query_string": {"query": query, "analyze_wildcard": true}})
}

/// The time filter Kibana adds for the dashboard's time range (here: wide
/// enough for the whole corpus).
fn time_filter() -> Value {
    json!({"range": {"eventTime": {
        "gte": "2000-01-01T00:00:00.000Z", "lte": "2030-01-01T00:00:00.000Z",
        "format": "strict_date_optional_time"}}})
}

fn request_query(query: &str) -> Value {
    let must: Vec<Value> = if query.trim().is_empty() {
        vec![]
    } else {
        vec![lucene(query)]
    };
    json!({"bool": {"must": must, "filter": [time_filter()], "should": [], "must_not": []}})
}

/// The search request for a visualization: bucket aggregations nested in
/// the order of visState.aggs, metrics (other than count) in the innermost
/// bucket, as Kibana's AggConfigs.toDsl builds it.
fn vis_request(panel: &Panel) -> Value {
    let aggs = panel.state["aggs"].as_array().unwrap();
    let enabled = |a: &&Value| a["enabled"] != false;
    let buckets: Vec<&Value> = aggs
        .iter()
        .filter(enabled)
        .filter(|a| ["terms", "date_histogram", "filters"].contains(&a["type"].as_str().unwrap()))
        .collect();
    let mut metrics = Map::new();
    for agg in aggs.iter().filter(enabled) {
        let p = &agg["params"];
        match agg["type"].as_str().unwrap() {
            "count" | "terms" | "date_histogram" | "filters" => {}
            "cardinality" => {
                metrics.insert(
                    agg["id"].as_str().unwrap().into(),
                    json!({"cardinality": {"field": p["field"]}}),
                );
            }
            "max" => {
                metrics.insert(
                    agg["id"].as_str().unwrap().into(),
                    json!({"max": {"field": p["field"]}}),
                );
            }
            other => panic!("{}: aggregation {other} not translated by this test", panel.id),
        }
    }
    let mut inner = if metrics.is_empty() {
        None
    } else {
        Some(Value::Object(metrics))
    };
    for agg in buckets.iter().rev() {
        let p = &agg["params"];
        let mut body = match agg["type"].as_str().unwrap() {
            "terms" => {
                let order = match p["orderBy"].as_str().unwrap() {
                    "1" => json!({"_count": p["order"]}),
                    "_key" => json!({"_key": p["order"]}),
                    metric => json!({ metric: p["order"] }),
                };
                let mut terms = json!({"field": p["field"], "size": p["size"], "order": order});
                if p["missingBucket"] == true {
                    terms["missing"] = json!("__missing__");
                }
                json!({ "terms": terms })
            }
            "date_histogram" => {
                assert_eq!(p["interval"], "auto", "{}", panel.id);
                // "auto" over the 30-year range above: Kibana picks a yearly interval.
                json!({"date_histogram": {"field": p["field"], "calendar_interval": "1y",
                    "time_zone": "UTC", "min_doc_count": p["min_doc_count"]}})
            }
            "filters" => {
                let mut named = Map::new();
                for f in p["filters"].as_array().unwrap() {
                    assert_eq!(f["input"]["language"], "lucene", "{}", panel.id);
                    let q = f["input"]["query"].as_str().unwrap();
                    named.insert(f["label"].as_str().unwrap().into(), lucene(q));
                }
                json!({"filters": {"filters": named}})
            }
            _ => unreachable!(),
        };
        if let Some(sub) = inner.take() {
            body["aggs"] = sub;
        }
        inner = Some(json!({ agg["id"].as_str().unwrap(): body }));
    }
    json!({
        "size": 0,
        "track_total_hits": true,
        "query": request_query(&panel.query),
        "aggs": inner.expect("a visualization without bucket aggregations"),
    })
}

/// Buckets of an aggregation result, as (key, doc_count, sub-result).
fn buckets(result: &Value) -> Vec<(String, u64, Value)> {
    match &result["buckets"] {
        Value::Array(list) => list
            .iter()
            .map(|b| {
                let key = b
                    .get("key_as_string")
                    .or(b.get("key"))
                    .map(|k| k.as_str().map_or_else(|| k.to_string(), String::from))
                    .unwrap_or_default();
                (key, b["doc_count"].as_u64().unwrap(), b.clone())
            })
            .collect(),
        Value::Object(named) => named
            .iter()
            .map(|(k, b)| (k.clone(), b["doc_count"].as_u64().unwrap(), b.clone()))
            .collect(),
        _ => panic!("not a bucket aggregation: {result}"),
    }
}

/// The key `vis_request` gives documents without the field (Kibana's
/// missing bucket).
const MISSING: &str = "__missing__";

/// Ids of a visualization's bucket aggregations, outermost first.
fn bucket_ids(panel: &Panel) -> Vec<&str> {
    panel.state["aggs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["enabled"] != false)
        .filter(|a| ["terms", "date_histogram", "filters"].contains(&a["type"].as_str().unwrap()))
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

/// (id, type) of its metrics other than count: they sit in the innermost bucket.
fn metric_ids(panel: &Panel) -> Vec<(&str, &str)> {
    panel.state["aggs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["enabled"] != false && a["schema"] == "metric" && a["type"] != "count")
        .map(|a| (a["id"].as_str().unwrap(), a["type"].as_str().unwrap()))
        .collect()
}

/// One row of a table, slice of a pie or point of a chart: the bucket keys
/// from the outermost aggregation inwards, and the innermost bucket.
type Leaf = (Vec<String>, Value);

/// The leaves with documents below `result`, through every bucket level.
fn leaf_buckets(result: &Value, ids: &[&str], path: &[String], out: &mut Vec<Leaf>) {
    let Some((first, rest)) = ids.split_first() else {
        out.push((path.to_vec(), result.clone()));
        return;
    };
    for (key, n, bucket) in buckets(&result[*first]) {
        if n > 0 {
            let mut path = path.to_vec();
            path.push(key);
            leaf_buckets(&bucket, rest, &path, out);
        }
    }
}

/// What a visualization shows for a search answer, or why it would show
/// nothing: no leaf bucket with documents, only missing-value buckets, or a
/// metric (cardinality, max) without a value in some leaf.
fn check_buckets(panel: &Panel, answer: &Value) -> Result<Vec<Leaf>, String> {
    let mut leaves = Vec::new();
    leaf_buckets(&answer["aggregations"], &bucket_ids(panel), &[], &mut leaves);
    if leaves.is_empty() {
        return Err(format!("no buckets with documents: {answer}"));
    }
    if leaves.iter().all(|(path, _)| path.iter().any(|k| k == MISSING)) {
        return Err(format!("only missing-value buckets: {answer}"));
    }
    for (path, leaf) in &leaves {
        for (id, kind) in metric_ids(panel) {
            let value = &leaf[id]["value"];
            let ok = match kind {
                // The leaf has documents, so at least one distinct value.
                "cardinality" => value.as_u64().is_some_and(|n| n >= 1),
                _ => value.is_number(),
            };
            if !ok {
                return Err(format!("{path:?}: metric {id} ({kind}) has no value: {}", leaf[id]));
            }
        }
    }
    Ok(leaves)
}

/// The distinct keys at one bucket level.
fn keys_at(leaves: &[Leaf], level: usize) -> BTreeSet<&str> {
    leaves.iter().map(|(path, _)| path[level].as_str()).collect()
}

// ------------------------------------------------------------ live clusters

/// A search that must succeed on every shard. A test node has a 512 MB heap
/// and other tests may load it at the same time, so a circuit-breaker
/// answer (whole or on some shards) is retried a few times; anything else fails.
fn search(cluster: &Cluster, prefix: &str, body: &Value) -> Value {
    let url = format!("{}/{prefix}/_search", cluster.url);
    const ATTEMPTS: u32 = 8;
    for attempt in 1..=ATTEMPTS {
        let (status, answer) = support::http("POST", &url, Some(body));
        if status < 300 && answer["_shards"]["failed"] == 0 {
            return answer;
        }
        let transient = answer.to_string().contains("circuit_breaking_exception");
        assert!(
            transient && attempt < ATTEMPTS,
            "{}: POST {url}: {status} {answer}",
            cluster.name
        );
        eprintln!(
            "{}: circuit breaker tripped (attempt {attempt}), retrying",
            cluster.name
        );
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    unreachable!()
}

/// The corpus (or, on a plain clone, the fixtures) imported into the
/// cluster: the import the tests of import.rs share, so the small test
/// nodes hold it once.
/// The signed synthetic trail imported with `--verify` into a prefix of
/// its own; None where it cannot be generated (said loudly by the generator).
fn verified_trail(cluster: &Cluster) -> Option<String> {
    let generated = crate::verify::generate("dashboards_integrity", false)?;
    let prefix = support::prefix("dashboards-integrity");
    let run = support::ctindex(&[
        "import",
        &generated.trail(),
        "--verify",
        "--public-keys",
        &generated.keys(),
        "--url",
        &cluster.url,
        "--index-prefix",
        &prefix,
        "--replicas",
        "0",
    ]);
    assert_eq!(run.code, 0, "{}: {run:?}", cluster.name);
    Some(prefix)
}

fn loaded(cluster: &Cluster) -> String {
    crate::import::corpus_import(cluster).prefix.clone()
}

fn template(cluster: &Cluster) -> Value {
    let file = if cluster.name.starts_with("opensearch") {
        "template-opensearch.json"
    } else {
        "template-elasticsearch.json"
    };
    let text = std::fs::read_to_string(support::root().join("mappings").join(file)).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["template"]["mappings"].clone()
}

/// Whether the cluster got the fallback template (no free-form object type:
/// OpenSearch before 2.7), whose free-form objects are unindexed and
/// searchable only through `ctindex.payload`.
fn unindexed_free_form(cluster: &Cluster, prefix: &str) -> bool {
    let mapping = cluster.get(&format!("/{prefix}/_mapping"));
    mapping
        .as_object()
        .into_iter()
        .flat_map(|indices| indices.values())
        .any(|index| !index["mappings"]["properties"]["ctindex"]["properties"]["payload"].is_null())
}

/// Whether a panel's queries read a field inside a free-form object.
fn reads_free_form(mappings: &Value, panel: &Panel) -> bool {
    panel_queries(panel)
        .iter()
        .flat_map(|q| query_fields(q))
        .chain(panel.columns.iter().cloned())
        .any(|field| template_type(mappings, &field).is_some_and(|(_, inside)| inside.is_some()))
}

/// The template's mapping for a field: (type, path of the free-form field
/// when `field` lies inside one).
fn template_type(mappings: &Value, field: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = field.split('.').collect();
    let mut props = &mappings["properties"];
    for (i, part) in parts.iter().enumerate() {
        let m = props.get(*part)?;
        let kind = m["type"].as_str().unwrap_or("object");
        if kind == "flattened" || kind == "flat_object" {
            let root = parts[..=i].join(".");
            return Some((kind.to_string(), (i + 1 < parts.len()).then_some(root)));
        }
        if i + 1 == parts.len() {
            return Some((kind.to_string(), None));
        }
        // A multi-field (errorMessage.keyword, sourceIPAddress.ip) or an object.
        props = match m.get("fields").and_then(|f| f.get(parts[i + 1])) {
            Some(sub) if i + 2 == parts.len() => {
                return Some((sub["type"].as_str().unwrap_or("?").to_string(), None));
            }
            _ => &m["properties"],
        };
    }
    None
}

/// Field names used in a Lucene query (quoted values removed first), with
/// the field of `_exists_:field`.
fn query_fields(query: &str) -> BTreeSet<String> {
    let unquoted = regex_lite::Regex::new(r#""[^"]*""#).unwrap().replace_all(query, "\"\"");
    let mut fields: BTreeSet<String> = regex_lite::Regex::new(r"([A-Za-z_@][\w.@]*):")
        .unwrap()
        .captures_iter(&unquoted)
        .map(|c| c[1].to_string())
        .collect();
    if fields.remove("_exists_") {
        let exists = regex_lite::Regex::new(r"_exists_:([\w.@]+)").unwrap();
        fields.extend(exists.captures_iter(&unquoted).map(|c| c[1].to_string()));
    }
    fields
}

#[test]
fn query_fields_finds_every_field_of_a_lucene_query() {
    let fields = query_fields(
        r#"eventName:(A OR B) AND NOT _exists_:ctindex.signin.mfa AND requestParameters.cidrIp:"0.0.0.0/0" AND x.y:"a:b""#,
    );
    assert_eq!(
        fields,
        BTreeSet::from(["eventName", "ctindex.signin.mfa", "requestParameters.cidrIp", "x.y"].map(String::from))
    );
}

/// Fields a visualization aggregates on.
fn agg_fields(panel: &Panel) -> BTreeSet<String> {
    panel.state["aggs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["params"]["field"].as_str().map(String::from))
        .collect()
}

/// Every query of a panel: its own and those of its filters aggregation.
fn panel_queries(panel: &Panel) -> Vec<String> {
    let mut queries = vec![panel.query.clone()];
    for agg in panel.state["aggs"].as_array().into_iter().flatten() {
        for f in agg["params"]["filters"].as_array().into_iter().flatten() {
            queries.push(f["input"]["query"].as_str().unwrap().to_string());
        }
    }
    queries
}

#[test]
fn every_field_exists_in_the_template_and_is_aggregatable_where_aggregated() {
    let panels = panels();
    for cluster in dashboard_clusters("every_field_exists_in_the_template_and_is_aggregatable_where_aggregated") {
        let prefix = loaded(&cluster);
        let caps = cluster.get(&format!("/{prefix}/_field_caps?fields=*"))["fields"].clone();
        let mappings = template(&cluster);
        let fallback = unindexed_free_form(&cluster, &prefix);
        let cap = |field: &str| -> Option<(bool, bool, Vec<String>)> {
            let types = caps.get(field)?.as_object()?;
            Some((
                types.values().all(|t| t["searchable"] == true),
                types.values().all(|t| t["aggregatable"] == true),
                types.keys().cloned().collect(),
            ))
        };
        let mut checked = BTreeSet::new();
        for panel in &panels {
            let ctx = format!("{} {}", cluster.name, panel.id);
            // Aggregated fields: typed, in the loaded index, aggregatable.
            for field in agg_fields(panel) {
                let (kind, inside) = template_type(&mappings, &field)
                    .unwrap_or_else(|| panic!("{ctx}: {field} is not in the index template"));
                assert!(
                    inside.is_none(),
                    "{ctx}: {field} is inside the free-form {kind} field {inside:?}"
                );
                let (_, aggregatable, types) =
                    cap(&field).unwrap_or_else(|| panic!("{ctx}: {field} not in _field_caps of {prefix}"));
                assert!(aggregatable, "{ctx}: {field} ({types:?}) is not aggregatable");
                checked.insert(field);
            }
            // Kibana offers a missing bucket only on string fields (its
            // `__missing__` placeholder is refused by a boolean or date field).
            for agg in panel.state["aggs"].as_array().into_iter().flatten() {
                if agg["params"]["missingBucket"] == true {
                    let field = agg["params"]["field"].as_str().unwrap();
                    let types = cap(field).map(|c| c.2).unwrap_or_default();
                    assert_eq!(types, ["keyword"], "{ctx}: missing bucket on {field}");
                }
            }
            // Queried fields (and saved-search columns): mapped and searchable,
            // directly or as a key of a free-form field.
            let mut searched: BTreeSet<String> = panel_queries(panel).iter().flat_map(|q| query_fields(q)).collect();
            searched.extend(panel.columns.iter().cloned());
            for field in searched {
                let (kind, inside) = template_type(&mappings, &field)
                    .unwrap_or_else(|| panic!("{ctx}: {field} is not in the index template"));
                if fallback && inside.is_some() {
                    // Unindexed here: the text of the object is in ctindex.payload.
                    let (searchable, _, types) =
                        cap("ctindex.payload").unwrap_or_else(|| panic!("{ctx}: no ctindex.payload"));
                    assert!(searchable && types == ["text"], "{ctx}: ctindex.payload {types:?}");
                    assert!(cap(&field).is_none(), "{ctx}: {field} is mapped in an unindexed object");
                    checked.insert(field);
                    continue;
                }
                let target = inside.clone().unwrap_or_else(|| field.clone());
                let (searchable, _, types) =
                    cap(&target).unwrap_or_else(|| panic!("{ctx}: {target} not in _field_caps of {prefix}"));
                assert!(searchable, "{ctx}: {target} ({types:?}) is not searchable");
                if inside.is_some() {
                    assert!(
                        kind == "flattened" || kind == "flat_object",
                        "{ctx}: {field} lies in {target} of type {kind}"
                    );
                }
                checked.insert(field);
            }
        }
        // The time field.
        let (_, aggregatable, types) = cap("eventTime").unwrap();
        assert!(
            aggregatable && types == ["date"],
            "{}: eventTime {types:?}",
            cluster.name
        );
        eprintln!(
            "{}: {} fields checked against _field_caps of {prefix}",
            cluster.name,
            checked.len()
        );
    }
}

/// The servers for the tests that prove the dashboards on real data. The
/// issue asks for both Elasticsearch and OpenSearch: with
/// `CTINDEX_REQUIRE_CLUSTERS=1` (scripts/test) a missing one fails the test,
/// otherwise it is reported past the output capture.
fn dashboard_clusters(test: &str) -> Vec<Cluster> {
    let clusters = support::clusters(test);
    let required = std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1");
    for (name, var) in [("elasticsearch", "ES_URL"), ("opensearch", "OPENSEARCH_URL")] {
        if clusters.iter().any(|c| c.name == name) {
            continue;
        }
        assert!(
            !required,
            "{test}: {var} not set but CTINDEX_REQUIRE_CLUSTERS=1: the dashboards must be proven on {name}"
        );
        if !clusters.is_empty() {
            support::loud(&format!("NOTE {test}: {var} not set: not run on {name}"));
        }
    }
    clusters
}

#[test]
fn every_visualization_returns_buckets_on_real_clusters() {
    let panels = panels();
    let corpus = support::corpus().is_some();
    for cluster in dashboard_clusters("every_visualization_returns_buckets_on_real_clusters") {
        let corpus_prefix = loaded(&cluster);
        // The integrity panels read ctindex.integrity, which only `import
        // --verify` stamps: they run on the signed synthetic trail (with its
        // planted changed file).
        let verified = verified_trail(&cluster);
        let mut report = Vec::new();
        let fallback = unindexed_free_form(&cluster, &corpus_prefix);
        let mappings = template(&cluster);
        for panel in &panels {
            let ctx = format!("{} {}", cluster.name, panel.id);
            let prefix = match panel_queries(panel).iter().any(|q| q.contains("ctindex.integrity")) {
                false => corpus_prefix.clone(),
                true => match &verified {
                    Some(prefix) => prefix.clone(),
                    None => {
                        report.push(format!(
                            "{}: not run (no signed trail: Python's cryptography is missing)",
                            panel.id
                        ));
                        continue;
                    }
                },
            };
            if fallback && reads_free_form(&mappings, panel) {
                // Documented: on a cluster without free-form objects these panels stay empty.
                report.push(format!(
                    "{}: not run (reads a free-form object, unindexed here)",
                    panel.id
                ));
                continue;
            }
            if panel.kind == "search" {
                let body = json!({"size": 5, "track_total_hits": true, "query": request_query(&panel.query),
                    "sort": [{"eventTime": "desc"}]});
                let answer = search(&cluster, &prefix, &body);
                let hits = answer["hits"]["total"]["value"].as_u64().unwrap();
                assert!(hits > 0, "{ctx}: the saved search finds nothing: {}", panel.query);
                report.push(format!("{}: {hits} hits", panel.id));
                continue;
            }
            let answer = search(&cluster, &prefix, &vis_request(panel));
            let leaves = check_buckets(panel, &answer).unwrap_or_else(|why| panic!("{ctx}: {why}"));

            // The same visualization on a query that matches nothing must
            // fail the check: it is what makes the check above mean something.
            let mut nothing = vis_request(panel);
            nothing["query"] = request_query("eventName:\"ctindex-no-such-event\"");
            let empty = search(&cluster, &prefix, &nothing);
            assert!(
                check_buckets(panel, &empty).is_err(),
                "{ctx}: the check passes an answer without documents: {empty}"
            );

            let top = keys_at(&leaves, 0);
            report.push(format!(
                "{}: {} buckets, {} rows/points [{}]",
                panel.id,
                top.len(),
                leaves.len(),
                top.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
            ));
            // Console and automation side by side, wherever channels are split.
            let channels = match panel.id.as_str() {
                "channel-pie" | "services-per-channel" => Some(keys_at(&leaves, 0)),
                "channel-over-time" => Some(keys_at(&leaves, 1)),
                _ => None,
            };
            if let Some(channels) = channels {
                assert!(
                    channels.contains("console") && channels.contains("automation"),
                    "{ctx}: {channels:?}"
                );
            }
            // The signed trail holds each stamp, and one changed log file.
            match panel.id.as_str() {
                "integrity-over-time" => {
                    let stamps = keys_at(&leaves, 1);
                    for stamp in ["verified", "unverified", "failed"] {
                        assert!(stamps.contains(stamp), "{ctx}: no {stamp}: {stamps:?}");
                    }
                }
                "integrity-failed-files" => assert_eq!(top.len(), 1, "{ctx}: {top:?}"),
                _ => {}
            }
            if panel.id == "signin-outcomes" {
                let rows: BTreeSet<Vec<String>> = leaves.iter().map(|(path, _)| path.clone()).collect();
                let row = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
                // The fixtures hold a sign-in without MFA; the corpus has all kinds.
                assert!(rows.contains(&row("success", "No MFA")), "{ctx}: {rows:?}");
                if corpus {
                    for (result, mfa) in [("success", "MFA"), ("failure", "No MFA")] {
                        assert!(rows.contains(&row(result, mfa)), "{ctx}: no {result}/{mfa}: {rows:?}");
                    }
                }
            }
        }
        eprintln!("{} ({}):\n  {}", cluster.name, corpus_prefix, report.join("\n  "));
        if let Some(prefix) = &verified {
            cluster.cleanup(prefix);
        }
    }
}

#[test]
fn the_bucket_check_rejects_answers_a_dashboard_would_show_empty() {
    let panels = panels();
    let find = |id: &str| panels.iter().find(|p| p.id == id).unwrap();
    // console-writes-table: terms 2 (service) › terms 3 (action), metrics 4
    // (cardinality of identities) and 5 (max eventTime) in each row.
    let table = find("console-writes-table");
    let row = |service: &str, identities: Value, last: Value| {
        json!({"aggregations": {"2": {"buckets": [{"key": service, "doc_count": 3,
            "3": {"buckets": [{"key": "RunInstances", "doc_count": 3,
                "4": {"value": identities}, "5": {"value": last, "value_as_string": "2024-01-01T00:00:00.000Z"}}]}}]}}})
    };
    assert!(check_buckets(table, &row("ec2.amazonaws.com", json!(2), json!(1.7e12))).is_ok());
    for (answer, needle) in [
        (
            row("ec2.amazonaws.com", json!(2), Value::Null),
            "metric 5 (max) has no value",
        ),
        (
            row("ec2.amazonaws.com", json!(0), json!(1.7e12)),
            "metric 4 (cardinality) has no value",
        ),
        (row(MISSING, json!(2), json!(1.7e12)), "only missing-value buckets"),
        (
            json!({"aggregations": {"2": {"buckets": []}}}),
            "no buckets with documents",
        ),
        (
            json!({"aggregations": {"2": {"buckets": [{"key": "ec2.amazonaws.com", "doc_count": 3, "3": {"buckets": []}}]}}}),
            "no buckets with documents",
        ),
    ] {
        let why = check_buckets(table, &answer).expect_err(needle);
        assert!(why.contains(needle), "{needle}: {why}");
    }
    // A filters aggregation answers every filter, with 0 documents where nothing matches.
    let signins = find("signin-outcomes");
    let zero = json!({"aggregations": {"2": {"buckets": [{"key": "success", "doc_count": 2,
        "3": {"buckets": {"MFA": {"doc_count": 0}, "No MFA": {"doc_count": 0}, "MFA not recorded": {"doc_count": 0}}}}]}}});
    assert!(check_buckets(signins, &zero).is_err());
}

// ------------------------------------------------------ install, local endpoint

/// The parts of a multipart/form-data body: (Content-Disposition, content).
fn multipart(request: &Request) -> Vec<(String, String)> {
    let kind = &request.headers["content-type"];
    let boundary = kind
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not multipart/form-data: {kind}"));
    let body = String::from_utf8(request.body.clone()).unwrap();
    let end = format!("--{boundary}--");
    assert!(
        body.trim_end().ends_with(&end),
        "the body does not end with the closing boundary"
    );
    body.split(&format!("--{boundary}"))
        .filter(|p| !p.trim().is_empty() && p.trim() != "--")
        .map(|part| {
            let part = part.strip_prefix("\r\n").unwrap();
            let (head, content) = part.split_once("\r\n\r\n").unwrap();
            let disposition = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
                .unwrap_or("")
                .to_string();
            (disposition, content.strip_suffix("\r\n").unwrap_or(content).to_string())
        })
        .collect()
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ok_answer(_: &Request) -> (u16, Vec<(&'static str, &'static str)>, String) {
    (
        200,
        vec![("kbn-name", "kibana")],
        r#"{"success":true,"successCount":22,"successResults":[]}"#.into(),
    )
}

#[test]
fn install_posts_the_ndjson_as_multipart_with_both_xsrf_headers() {
    let endpoint = Endpoint::start(Box::new(ok_answer));
    let run = support::ctindex(&[
        "dashboards",
        "install",
        "--kibana-url",
        &endpoint.url,
        "--user",
        "elastic",
        "--password",
        "s3cret",
        "--index-prefix",
        "ct-prod",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("installed 22 saved objects"), "{}", run.stdout);
    assert!(run.stdout.contains("into Kibana at"), "{}", run.stdout);
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));

    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/saved_objects/_import?overwrite=true");
    assert!(r.headers.contains_key("kbn-xsrf"), "{:?}", r.headers);
    assert!(r.headers.contains_key("osd-xsrf"), "{:?}", r.headers);
    assert_eq!(
        r.headers["authorization"],
        format!("Basic {}", base64(b"elastic:s3cret"))
    );
    let parts = multipart(r);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let (disposition, content) = &parts[0];
    assert!(disposition.contains("name=\"file\""), "{disposition}");
    let file_name = regex_lite::Regex::new(r#"filename="([^"]+)""#).unwrap();
    let file_name = &file_name.captures(disposition).expect("a file name")[1];
    assert!(file_name.ends_with(".ndjson"), "{file_name}");
    // Exactly what `export` writes for the same prefix.
    let exported = support::ctindex(&["dashboards", "export", "--index-prefix", "ct-prod"]);
    assert_eq!(content, &exported.stdout);
}

/// What OpenSearch Dashboards answers: its `osd-name` header, no `kbn-name`.
fn osd_answer(_: &Request) -> (u16, Vec<(&'static str, &'static str)>, String) {
    (
        200,
        vec![("osd-name", "opensearch-dashboards")],
        r#"{"success":true,"successCount":22}"#.into(),
    )
}

#[test]
fn install_with_the_opensearch_dashboards_flavor_sends_what_it_needs() {
    // An OpenSearch Dashboards: no space in the path, the osd-xsrf header it
    // checks, the same multipart body.
    let endpoint = Endpoint::start(Box::new(osd_answer));
    let run = support::ctindex(&[
        "dashboards",
        "install",
        "--kibana-url",
        &endpoint.url,
        "--flavor",
        "opensearch-dashboards",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("installed 22 saved objects") && run.stdout.contains("into OpenSearch Dashboards at"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("answers like"), "{}", run.stderr);
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/api/saved_objects/_import?overwrite=true")
    );
    assert_eq!(
        r.headers.get("osd-xsrf").map(String::as_str),
        Some("ctindex"),
        "{:?}",
        r.headers
    );
    let parts = multipart(r);
    assert_eq!(parts.len(), 1);
    assert!(
        parts[0].0.contains("name=\"file\"") && parts[0].0.contains(".ndjson\""),
        "{}",
        parts[0].0
    );
    let exported = support::ctindex(&["dashboards", "export"]);
    assert_eq!(parts[0].1, exported.stdout);

    // The flavor names the product when the server does not say which it is;
    // without it ctindex does not guess.
    let anonymous = Endpoint::start(Box::new(|_: &Request| {
        (200, vec![], r#"{"success":true,"successCount":22}"#.to_string())
    }));
    for (flavor, named) in [
        (Some("opensearch-dashboards"), "into OpenSearch Dashboards at"),
        (Some("kibana"), "into Kibana at"),
        (None, "into Kibana or OpenSearch Dashboards at"),
    ] {
        let mut args = vec!["dashboards", "install", "--kibana-url", anonymous.url.as_str()];
        if let Some(flavor) = flavor {
            args.extend(["--flavor", flavor]);
        }
        let run = support::ctindex(&args);
        assert_eq!(run.code, 0, "{flavor:?}: {}", run.stderr);
        assert!(run.stdout.contains(named), "{flavor:?}: {}", run.stdout);
    }

    // A flavor that contradicts the server: the server's word wins, with a warning.
    let run = support::ctindex(&[
        "dashboards",
        "install",
        "--kibana-url",
        &endpoint.url,
        "--flavor",
        "kibana",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("into OpenSearch Dashboards at"), "{}", run.stdout);
    assert!(
        run.stderr.contains("--flavor kibana given, but") && run.stderr.contains("answers like OpenSearch Dashboards"),
        "{}",
        run.stderr
    );
}

#[test]
fn install_uses_the_space_and_every_kind_of_credentials() {
    let endpoint = Endpoint::start(Box::new(ok_answer));
    let url = endpoint.url.clone();
    let cases: Vec<(Vec<&str>, &str, String)> = vec![
        (
            vec!["--space", "sec-ops"],
            "/s/sec-ops/api/saved_objects/_import?overwrite=true",
            String::new(),
        ),
        (
            vec!["--space", "default"],
            "/api/saved_objects/_import?overwrite=true",
            String::new(),
        ),
        (
            vec!["--api-key", "a2V5OnNlY3JldA=="],
            "/api/saved_objects/_import?overwrite=true",
            "ApiKey a2V5OnNlY3JldA==".into(),
        ),
        (
            vec!["--bearer-token", "tok3n"],
            "/api/saved_objects/_import?overwrite=true",
            "Bearer tok3n".into(),
        ),
    ];
    for (extra, path, authorization) in &cases {
        let mut args = vec!["dashboards", "install", "--kibana-url", url.as_str()];
        args.extend(extra.iter());
        let run = support::ctindex(&args);
        assert_eq!(run.code, 0, "{extra:?}: {}", run.stderr);
        let r = endpoint.requests().pop().unwrap();
        assert_eq!(&r.target, path, "{extra:?}");
        assert_eq!(
            r.headers.get("authorization").cloned().unwrap_or_default(),
            *authorization,
            "{extra:?}"
        );
    }
    // user:password@ in the URL; a base path is kept.
    let with_user = url.replace("http://", "http://admin:p%40ss@") + "/kibana/";
    let run = support::ctindex(&["dashboards", "install", "--kibana-url", &with_user]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains("p%40ss") && !run.stderr.contains("p%40ss"),
        "{}",
        run.stdout
    );
    let r = endpoint.requests().pop().unwrap();
    assert_eq!(r.target, "/kibana/api/saved_objects/_import?overwrite=true");
    assert_eq!(r.headers["authorization"], format!("Basic {}", base64(b"admin:p@ss")));
}

#[test]
fn install_reports_per_object_errors_and_http_failures() {
    let conflicts = r#"{"success":false,"successCount":20,"errors":[
        {"id":"ctindex-cloudtrail-dashboard-security","type":"dashboard","title":"[CloudTrail] Security","meta":{"title":"[CloudTrail] Security"},"error":{"type":"conflict"}},
        {"id":"ctindex-cloudtrail-channel-pie","type":"visualization","meta":{"title":"[CloudTrail] Events by channel"},"error":{"type":"ambiguous_conflict","destinations":[{"id":"a"},{"id":"b"}]}}]}"#;
    let missing = r#"{"success":false,"successCount":0,"errors":[
        {"id":"ctindex-cloudtrail-channel-pie","type":"visualization","meta":{"title":"[CloudTrail] Events by channel"},
         "error":{"type":"missing_references","references":[{"type":"index-pattern","id":"ctindex-cloudtrail-index-pattern"}]}}]}"#;
    let cases: Vec<(u16, &str, &str, i32, Vec<&str>)> = vec![
        (
            200,
            "osd-name",
            conflicts,
            3,
            vec![
                "dashboard ctindex-cloudtrail-dashboard-security \"[CloudTrail] Security\": conflict",
                "ambiguous conflict: 2 existing objects",
                "20 of 24 saved objects imported into OpenSearch Dashboards",
            ],
        ),
        (
            200,
            "kbn-name",
            missing,
            1,
            vec![
                "missing references: index-pattern:ctindex-cloudtrail-index-pattern",
                "0 of 24 saved objects imported into Kibana",
            ],
        ),
        (
            401,
            "kbn-name",
            r#"{"statusCode":401,"error":"Unauthorized","message":"[security_exception]: unable to authenticate user"}"#,
            1,
            vec![
                "answered 401: [security_exception]: unable to authenticate user",
                "--api-key",
            ],
        ),
        (
            403,
            "kbn-name",
            r#"{"statusCode":403,"error":"Forbidden","message":"Unable to bulk_create dashboard"}"#,
            1,
            vec!["answered 403: Unable to bulk_create dashboard", "privilege"],
        ),
        (
            404,
            "kbn-name",
            r#"{"statusCode":404,"error":"Not Found","message":"Not Found"}"#,
            1,
            vec!["answered 404", "does the space exist"],
        ),
        (
            415,
            "kbn-name",
            r#"{"statusCode":415,"error":"Unsupported Media Type","message":"Unsupported file extension"}"#,
            1,
            vec!["answered 415: Unsupported file extension"],
        ),
        (
            500,
            "osd-name",
            r#"{"statusCode":500,"error":"Internal Server Error","message":"An internal server error occurred."}"#,
            1,
            vec!["answered 500: An internal server error occurred."],
        ),
        (
            503,
            "x-none",
            "<html>upstream down</html>",
            1,
            vec!["answered 503: <html>upstream down</html>"],
        ),
        (
            200,
            "kbn-name",
            "<html>login page</html>",
            1,
            vec!["not with an import result"],
        ),
    ];
    for (status, header, body, code, needles) in cases {
        let body = body.to_string();
        let endpoint = Endpoint::start(Box::new(move |_| (status, vec![(header, "srv")], body.clone())));
        let run = support::ctindex(&["dashboards", "install", "--kibana-url", &endpoint.url]);
        assert_eq!(run.code, code, "{status}: {}\n{}", run.stdout, run.stderr);
        for needle in needles {
            assert!(
                run.stderr.contains(needle),
                "{status}: '{needle}' not in:\n{}",
                run.stderr
            );
        }
        assert_eq!(endpoint.requests().len(), 1, "{status}: one request, no retries");
    }
}

#[test]
fn install_usage_errors_exit_2_and_unreachable_servers_exit_1() {
    for (args, code, needle) in [
        (vec!["dashboards", "install"], 2, "--kibana-url"),
        (
            vec!["dashboards", "install", "--kibana-url", "localhost:5601"],
            2,
            "--kibana-url",
        ),
        (
            vec![
                "dashboards",
                "install",
                "--kibana-url",
                "http://127.0.0.1:9",
                "--space",
                "x",
                "--flavor",
                "opensearch-dashboards",
            ],
            2,
            "--space",
        ),
        (
            vec![
                "dashboards",
                "install",
                "--kibana-url",
                "http://127.0.0.1:9",
                "--space",
                "Sec Ops",
            ],
            2,
            "--space",
        ),
        (
            vec![
                "dashboards",
                "install",
                "--kibana-url",
                "http://127.0.0.1:9",
                "--index-prefix",
                "A*",
            ],
            2,
            "--index-prefix",
        ),
        (
            vec![
                "dashboards",
                "install",
                "--kibana-url",
                "http://127.0.0.1:9",
                "--flavor",
                "grafana",
            ],
            2,
            "grafana",
        ),
        (
            vec!["dashboards", "install", "--kibana-url", "http://u:hunter2@127.0.0.1:9"],
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
