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

/// Leaf buckets (with documents) below a bucket aggregation, through every level.
fn leaves(result: &Value, ids: &[&str]) -> usize {
    let Some((first, rest)) = ids.split_first() else {
        return 1;
    };
    buckets(&result[*first])
        .iter()
        .filter(|(_, n, _)| *n > 0)
        .map(|(_, _, b)| leaves(b, rest))
        .sum()
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
fn loaded(cluster: &Cluster) -> String {
    crate::import::corpus_import(cluster).prefix.clone()
}

fn template(cluster: &Cluster) -> Value {
    let file = if cluster.name == "opensearch" {
        "template-opensearch.json"
    } else {
        "template-elasticsearch.json"
    };
    let text = std::fs::read_to_string(support::root().join("mappings").join(file)).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["template"]["mappings"].clone()
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

/// Field names used in a Lucene query (quoted values removed first).
fn query_fields(query: &str) -> BTreeSet<String> {
    let unquoted = regex_lite::Regex::new(r#""[^"]*""#).unwrap().replace_all(query, "\"\"");
    regex_lite::Regex::new(r"([A-Za-z_@][\w.@]*):")
        .unwrap()
        .captures_iter(&unquoted)
        .map(|c| c[1].to_string())
        .collect()
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
    for cluster in support::clusters("every_field_exists_in_the_template_and_is_aggregatable_where_aggregated") {
        let prefix = loaded(&cluster);
        let caps = cluster.get(&format!("/{prefix}/_field_caps?fields=*"))["fields"].clone();
        let mappings = template(&cluster);
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
            // Queried fields (and saved-search columns): mapped and searchable,
            // directly or as a key of a free-form field.
            let mut searched: BTreeSet<String> = panel_queries(panel).iter().flat_map(|q| query_fields(q)).collect();
            searched.extend(panel.columns.iter().cloned());
            for field in searched {
                let (kind, inside) = template_type(&mappings, &field)
                    .unwrap_or_else(|| panic!("{ctx}: {field} is not in the index template"));
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

#[test]
fn every_visualization_returns_buckets_on_real_clusters() {
    let panels = panels();
    let corpus = support::corpus().is_some();
    for cluster in support::clusters("every_visualization_returns_buckets_on_real_clusters") {
        let prefix = loaded(&cluster);
        let mut report = Vec::new();
        for panel in &panels {
            let ctx = format!("{} {}", cluster.name, panel.id);
            if panel.kind == "search" {
                let body = json!({"size": 5, "track_total_hits": true, "query": request_query(&panel.query),
                    "sort": [{"eventTime": "desc"}]});
                let answer = search(&cluster, &prefix, &body);
                let hits = answer["hits"]["total"]["value"].as_u64().unwrap();
                assert!(hits > 0, "{ctx}: the saved search finds nothing: {}", panel.query);
                report.push(format!("{}: {hits} hits", panel.id));
                continue;
            }
            let request = vis_request(panel);
            let answer = search(&cluster, &prefix, &request);
            let ids: Vec<&str> = panel.state["aggs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| ["terms", "date_histogram", "filters"].contains(&a["type"].as_str().unwrap()))
                .map(|a| a["id"].as_str().unwrap())
                .collect();
            let top = buckets(&answer["aggregations"][ids[0]]);
            let nonempty: Vec<&(String, u64, Value)> = top.iter().filter(|(_, n, _)| *n > 0).collect();
            assert!(!nonempty.is_empty(), "{ctx}: no buckets: {answer}");
            let leaf_count = leaves(&answer["aggregations"], &ids);
            assert!(leaf_count > 0, "{ctx}: no leaf buckets");
            // Every metric of every leaf has a value (max of a date, cardinality).
            let keys: Vec<String> = nonempty.iter().map(|(k, n, _)| format!("{k}={n}")).collect();
            report.push(format!(
                "{}: {} buckets, {leaf_count} rows/points [{}]",
                panel.id,
                nonempty.len(),
                keys.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
            ));
            if panel.id == "channel-pie" {
                let channels: BTreeSet<&str> = nonempty.iter().map(|(k, _, _)| k.as_str()).collect();
                assert!(
                    channels.contains("console") && channels.contains("automation"),
                    "{ctx}: {channels:?}"
                );
            }
            if panel.id == "signin-outcomes" && corpus {
                assert_eq!(nonempty.len(), 3, "{ctx}: with MFA, without MFA and failed: {keys:?}");
            }
        }
        eprintln!("{} ({}):\n  {}", cluster.name, prefix, report.join("\n  "));
    }
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
                "20 of 22 saved objects imported into OpenSearch Dashboards",
            ],
        ),
        (
            200,
            "kbn-name",
            missing,
            1,
            vec![
                "missing references: index-pattern:ctindex-cloudtrail-index-pattern",
                "0 of 22 saved objects imported into Kibana",
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
