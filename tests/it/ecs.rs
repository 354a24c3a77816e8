//! The ECS fields against three oracles: how Elastic's CloudTrail
//! integration (its pipeline tests), the older Filebeat module and Sekoia's
//! intake format map the same input events. Every input event is indexed by
//! ctindex into each configured cluster, its ECS fields are read back with
//! the search `fields` option (so that the template's aliases count as
//! fields), and each value ctindex gives must equal the oracle's value of the
//! same field, unless the difference is one of [`JUSTIFIED`] (each with its
//! reason; docs/ecs.md repeats them). The fields compared are every ECS field
//! of the template (`mappings/`), so a field added there is compared too.
//!
//! The oracles live in the corpus beside the checkout (their licences,
//! Elastic License 2.0 and none stated, do not let them be copied into
//! tests/fixtures): without it the test says so and does not run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{self, Cluster};

/// Where each oracle's inputs and expected outputs are, in the corpus.
const ELASTIC: &str = "elastic/integrations/packages/aws/data_stream/cloudtrail/_dev/test/pipeline";
const FILEBEAT: &str = "elastic/beats/x-pack/filebeat/module/aws/cloudtrail/test";
const SEKOIA: &str = "sekoia-intake-formats/AWS/aws-cloudtrail/tests";

/// Differences accepted, by oracle and field, and why. Any other difference
/// fails the test. `*` stands for every oracle.
const JUSTIFIED: &[(&str, &str, &str)] = &[
    (
        "elastic",
        "aws.cloudtrail.user_identity.arn",
        "an alias shows CloudTrail's value as it is, an empty string too (IdentityCenterUser's arn is \"\"); \
         Elastic's pipeline drops empty values first",
    ),
    (
        "sekoia",
        "event.category",
        "Sekoia files every call under network; ctindex categorises as Elastic's integration does \
         (iam, authentication, file, or none)",
    ),
    (
        "sekoia",
        "event.type",
        "Sekoia types every call access (sign-ins allowed); ctindex types as Elastic's integration does \
         (info, or user/group/admin with creation/change/deletion/info)",
    ),
    (
        "sekoia",
        "event.outcome",
        "Sekoia says success for a call with an errorCode (ec2-error: Client.AuthFailure); ctindex, as \
         Elastic, says failure",
    ),
    (
        "sekoia",
        "user.id",
        "Sekoia's user.id is userIdentity.accountId; ctindex's, as Elastic's, is userIdentity.principalId",
    ),
    (
        "sekoia",
        "user.name",
        "Sekoia names only some callers (the created user's id for CreateUser); ctindex, as Elastic, takes \
         userIdentity.userName, else the assumed role's name",
    ),
    (
        "sekoia",
        "related.user",
        "Sekoia relates the created user's id (CreateUser); ctindex, as Elastic, the user names of \
         userIdentity and requestParameters",
    ),
    (
        "sekoia",
        "source.address",
        "Sekoia leaves source.address out when it is neither an address nor a host name (AWS Internal, \
         00.000.000.00); ctindex, as Elastic, keeps sourceIPAddress as it is",
    ),
];

/// One input event and what an oracle makes of it.
struct Case {
    oracle: &'static str,
    /// File and position, for messages.
    name: String,
    /// The event as JSON text.
    input: String,
    expected: Value,
}

/// The cases of every oracle found in the corpus.
fn cases(corpus: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    // Elastic's pipeline tests and the Filebeat module's: `X.log` holds one
    // event a line, `X.log-expected.json` the outputs in the same order
    // (an object with `expected`, or a bare array).
    for (oracle, dir) in [("elastic", ELASTIC), ("filebeat", FILEBEAT)] {
        for path in support::files_below(&corpus.join(dir)) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(input_name) = file.strip_suffix("-expected.json") else {
                continue;
            };
            let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let expected = match expected {
                Value::Array(list) => list,
                mut other => other["expected"].as_array_mut().map(std::mem::take).unwrap_or_default(),
            };
            let inputs = std::fs::read_to_string(path.with_file_name(input_name)).unwrap();
            let lines = inputs.lines().filter(|l| !l.trim().is_empty());
            // An expected file may cover only the first inputs (the corpus
            // notes that tls-details' is older than its input).
            for (i, (line, expected)) in lines.zip(expected).enumerate() {
                out.push(Case {
                    oracle,
                    name: format!("{input_name}#{i}"),
                    input: line.to_string(),
                    expected,
                });
            }
        }
    }
    // Sekoia's intake tests: one file per event, the raw event as a string.
    for path in support::files_below(&corpus.join(SEKOIA)) {
        let test: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(input) = test["input"]["message"].as_str() else {
            continue;
        };
        out.push(Case {
            oracle: "sekoia",
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            input: input.to_string(),
            expected: test["expected"].clone(),
        });
    }
    out
}

/// Every ECS field the template defines (copies and aliases): the leaves
/// below the ECS objects, and `@timestamp`.
fn ecs_fields() -> Vec<String> {
    fn leaves(prefix: &str, mapping: &Value, out: &mut Vec<String>) {
        match mapping.get("properties").and_then(Value::as_object) {
            Some(properties) => {
                for (key, inner) in properties {
                    leaves(&format!("{prefix}.{key}"), inner, out);
                }
            }
            None => out.push(prefix.to_string()),
        }
    }
    let path = support::root().join("mappings/template-elasticsearch.json");
    let template: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let properties = &template["template"]["mappings"]["properties"];
    let mut out = vec!["@timestamp".to_string()];
    for root in ctindex::fields::ECS_ROOTS {
        leaves(root, &properties[*root], &mut out);
    }
    out
}

/// The oracle's value of a field: nested (`{"event": {"action": …}}`) or
/// flat (`{"event.action": …}`, the Filebeat module's), as a sorted list of
/// texts; None when absent, null or empty.
fn expected_values(doc: &Value, field: &str) -> Option<Vec<String>> {
    let nested = || field.split('.').try_fold(doc, |v, part| v.get(part));
    texts(doc.get(field).or_else(nested)?)
}

/// A value as a sorted list of texts (one for a scalar); None when empty.
fn texts(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut list: Vec<String> = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).map(one).collect(),
        other => vec![one(other)],
    };
    list.sort();
    (!list.is_empty()).then_some(list)
}

/// Times compare as instants: `2014-07-16T15:49:27Z` is `…27.000Z`.
fn same(field: &str, ours: &[String], theirs: &[String]) -> bool {
    if field == "@timestamp" && ours.len() == 1 && theirs.len() == 1 {
        let instant = |s: &str| s.parse::<jiff::Timestamp>().ok();
        if let (Some(a), Some(b)) = (instant(&ours[0]), instant(&theirs[0])) {
            return a == b;
        }
    }
    ours == theirs
}

/// What the comparison found for one oracle.
#[derive(Default)]
struct Tally {
    events: usize,
    compared: usize,
    equal: usize,
    /// (field, reason) → how many values differ so.
    justified: BTreeMap<(String, String), usize>,
    /// Differences not justified: messages.
    failures: Vec<String>,
    /// Fields the oracle has and ctindex leaves empty for that event: how many.
    not_given: BTreeMap<String, usize>,
    /// Fields ctindex gives that the oracle has in none of its outputs: how many.
    undefined: BTreeMap<String, usize>,
}

fn justification(oracle: &str, field: &str) -> Option<&'static str> {
    JUSTIFIED
        .iter()
        .find(|(o, f, _)| (*o == oracle || *o == "*") && *f == field)
        .map(|(_, _, why)| *why)
}

/// Indexes the cases into `cluster` and compares their ECS fields.
fn compare_on(cluster: &Cluster, cases: &[Case], fields: &[String]) -> BTreeMap<&'static str, Tally> {
    // Doc and fixture events reuse eventIDs (the document id): cases are
    // indexed in groups in which no id repeats, one index prefix a group.
    let mut groups: Vec<(BTreeSet<String>, Vec<usize>)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let event: Value = serde_json::from_str(&case.input).unwrap_or(Value::Null);
        let id = event["eventID"].as_str().unwrap_or("").to_string();
        match groups.iter_mut().find(|(ids, _)| !ids.contains(&id)) {
            Some((ids, members)) => {
                ids.insert(id);
                members.push(i);
            }
            None => groups.push((BTreeSet::from([id]), vec![i])),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut found: BTreeMap<usize, Value> = BTreeMap::new();
    for (g, (_, members)) in groups.iter().enumerate() {
        let folder = dir.path().join(format!("group-{g}"));
        std::fs::create_dir(&folder).unwrap();
        for &i in members {
            std::fs::write(
                folder.join(format!("case-{i:03}.json")),
                format!("{}\n", cases[i].input),
            )
            .unwrap();
        }
        let prefix = support::prefix("ecs");
        let run = support::ctindex(&[
            "import",
            folder.to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--progress",
            "off",
        ]);
        assert_eq!(run.code, 0, "{}: import failed:\n{}", cluster.name, run.stderr);
        support::http("POST", &format!("{}/{prefix}/_refresh", cluster.url), None);
        let page = cluster.post(
            &format!("/{prefix}/_search"),
            &json!({"size": 1000, "_source": ["ctindex.source"], "fields": fields}),
        );
        let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
        assert_eq!(hits.len(), members.len(), "{}: {page}", cluster.name);
        for hit in hits {
            let source = hit["_source"]["ctindex"]["source"].as_str().unwrap_or("");
            let i: usize = source
                .rsplit_once("case-")
                .and_then(|(_, n)| n.strip_suffix(".json"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{}: no case in {source}", cluster.name));
            found.insert(i, hit["fields"].clone());
        }
        cluster.cleanup(&prefix);
    }

    // The fields each oracle has in some output: the others it does not
    // define (Sekoia has no event.dataset, the Filebeat module no user.name
    // in its one output), so nothing can be compared to them.
    let defines: BTreeSet<(&str, &str)> = cases
        .iter()
        .flat_map(|c| {
            fields
                .iter()
                .filter(|f| expected_values(&c.expected, f).is_some())
                .map(|f| (c.oracle, f.as_str()))
        })
        .collect();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let tally = tallies.entry(case.oracle).or_default();
        tally.events += 1;
        let ours = &found[&i];
        for field in fields {
            if !defines.contains(&(case.oracle, field.as_str())) {
                if ours.get(field.as_str()).and_then(texts).is_some() {
                    *tally.undefined.entry(field.clone()).or_default() += 1;
                }
                continue;
            }
            let theirs = expected_values(&case.expected, field);
            let Some(ours) = ours.get(field.as_str()).and_then(texts) else {
                if theirs.is_some() {
                    *tally.not_given.entry(field.clone()).or_default() += 1;
                }
                continue;
            };
            tally.compared += 1;
            let theirs = theirs.unwrap_or_default();
            if same(field, &ours, &theirs) {
                tally.equal += 1;
            } else if let Some(why) = justification(case.oracle, field) {
                *tally.justified.entry((field.clone(), why.to_string())).or_default() += 1;
            } else {
                tally.failures.push(format!(
                    "{} {}: {field}: ctindex {ours:?}, {} {theirs:?}",
                    case.oracle, case.name, case.oracle
                ));
            }
        }
    }
    tallies
}

#[test]
fn ecs_fields_equal_the_oracles() {
    let test = "ecs_fields_equal_the_oracles";
    let Some(corpus) = support::corpus() else {
        support::loud(&format!(
            "SKIPPED {test}: ../shared/cloudtrail-corpus (the oracles) is absent"
        ));
        return;
    };
    let cases = cases(&corpus);
    let per_oracle = |name: &str| cases.iter().filter(|c| c.oracle == name).count();
    // What the corpus holds (SOURCES.md): 5 Elastic (console-login 3,
    // user-authentication 1, tls-details 1), 1 Filebeat, 15 Sekoia.
    assert!(
        per_oracle("elastic") >= 5 && per_oracle("filebeat") >= 1 && per_oracle("sekoia") >= 15,
        "oracle cases: elastic {}, filebeat {}, sekoia {}",
        per_oracle("elastic"),
        per_oracle("filebeat"),
        per_oracle("sekoia")
    );
    let fields = ecs_fields();
    for cluster in support::clusters(test) {
        let tallies = compare_on(&cluster, &cases, &fields);
        let mut failures = Vec::new();
        for (oracle, tally) in &tallies {
            println!(
                "{}: {oracle}: {} events, {} (event, field) values compared, {} equal, {} differ as justified",
                cluster.name,
                tally.events,
                tally.compared,
                tally.equal,
                tally.justified.values().sum::<usize>()
            );
            for ((field, why), n) in &tally.justified {
                println!("    justified: {field} ({n}): {why}");
            }
            for (field, n) in &tally.not_given {
                println!("    the oracle has, ctindex does not give for that event: {field} ({n})");
            }
            let undefined: Vec<String> = tally.undefined.iter().map(|(f, n)| format!("{f} ({n})")).collect();
            println!("    not in this oracle, not compared: {}", undefined.join(", "));
            failures.extend(tally.failures.iter().map(|f| format!("{}: {f}", cluster.name)));
        }
        assert!(failures.is_empty(), "differences:\n{}", failures.join("\n"));
        // Not vacuous: most of what is compared is equal, for every oracle.
        for (oracle, tally) in &tallies {
            assert!(
                tally.equal * 10 >= tally.compared * 7 && tally.equal >= tally.events * 5,
                "{}: {oracle}: only {} of {} equal",
                cluster.name,
                tally.equal,
                tally.compared
            );
        }
    }
}

/// The documents import and export make, with and without `--no-ecs`: the
/// copies are in every one, or in none (no cluster needed).
#[test]
fn no_ecs_leaves_the_copies_out() {
    let trail = support::fixtures().join("trail");
    let trail = trail.to_str().unwrap();
    let documents = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["import", trail, "--dry-run", "--print-documents", "--progress", "off"];
        args.extend(extra);
        let run = support::ctindex(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        // The documents, then the summary.
        run.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["document"].clone())
            .collect()
    };
    let exported = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["export", trail, "--out", "-", "--format", "ndjson", "--progress", "off"];
        args.extend(extra);
        let run = support::ctindex(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    for (what, with, without) in [
        ("import", documents(&[]), documents(&["--no-ecs"])),
        ("export", exported(&[]), exported(&["--no-ecs"])),
    ] {
        assert!(
            with.len() > 100 && with.len() == without.len(),
            "{what}: {} / {}",
            with.len(),
            without.len()
        );
        let mut stripped_all = Vec::new();
        for doc in &with {
            assert_eq!(doc["event"]["kind"], json!("event"), "{what}: {doc}");
            assert_eq!(doc["event"]["dataset"], json!("aws.cloudtrail"), "{what}");
            assert_eq!(doc["cloud"]["provider"], json!("aws"), "{what}");
            assert_eq!(doc["@timestamp"], doc["eventTime"], "{what}");
            let outcome = if doc.get("errorCode").is_some() {
                "failure"
            } else {
                "success"
            };
            assert_eq!(doc["event"]["outcome"], json!(outcome), "{what}: {doc}");
            let mut stripped = doc.as_object().unwrap().clone();
            for key in ["@timestamp", "cloud", "event", "related", "source", "user"] {
                stripped.remove(key);
            }
            stripped_all.push(Value::Object(stripped).to_string());
        }
        // Without: the same documents less the copies (in any order: files
        // are read concurrently).
        let mut bare: Vec<String> = without.iter().map(Value::to_string).collect();
        stripped_all.sort();
        bare.sort();
        assert!(
            stripped_all == bare,
            "{what}: --no-ecs changes more than the ECS copies"
        );
    }
}
