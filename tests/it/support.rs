//! Test support: the clusters to test against, running the binary, HTTP
//! calls, an independent oracle of what the corpus holds, and a local HTTP
//! endpoint to stand in for a server.
//!
//! Clusters come from `ES_URL`, `OPENSEARCH_URL`, `ES9_URL`, `ES7_URL`,
//! `OPENSEARCH1_URL` and `OPENSEARCH3_URL` (what
//! `scripts/stack env` prints); the S3, secured, SigV4 and fault servers from
//! their own variables (see `s3.rs`, `secure.rs`, `sigv4.rs`, `faults.rs`).
//! A live test whose server is not configured passes without running and
//! calls [`skipped`]: when the test binary exits, one banner lists every
//! test that did not run, what it needed, and the command that starts it.
//! `CTINDEX_REQUIRE_CLUSTERS=1` (set by `scripts/test`) turns a missing
//! server into a failure instead.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One live cluster under test.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: &'static str,
    pub url: String,
}

/// The clusters to run live tests on; empty (with a loud message) when none.
pub fn clusters(test: &str) -> Vec<Cluster> {
    let mut found = Vec::new();
    for (name, var) in [
        ("elasticsearch", "ES_URL"),
        ("opensearch", "OPENSEARCH_URL"),
        ("elasticsearch9", "ES9_URL"),
        ("elasticsearch7", "ES7_URL"),
        ("opensearch1", "OPENSEARCH1_URL"),
        ("opensearch3", "OPENSEARCH3_URL"),
    ] {
        if let Ok(url) = std::env::var(var)
            && !url.trim().is_empty()
        {
            found.push(Cluster {
                name,
                url: url.trim_end_matches('/').to_string(),
            });
        }
    }
    static CLEAN: std::sync::Once = std::sync::Once::new();
    CLEAN.call_once(|| {
        for cluster in &found {
            cluster.remove_leftovers();
        }
    });
    // scripts/test requires both Elasticsearch and OpenSearch: a run that
    // lost one of them must not pass on the other alone.
    if std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1") {
        for required in [
            "elasticsearch",
            "opensearch",
            "elasticsearch7",
            "opensearch1",
            "opensearch3",
        ] {
            assert!(
                found.iter().any(|c| c.name == required),
                "{test}: {required} is not configured but CTINDEX_REQUIRE_CLUSTERS=1 \
                 (run scripts/stack start; eval \"$(scripts/stack env)\")"
            );
        }
    }
    if found.is_empty() {
        skipped(
            test,
            "ES_URL, OPENSEARCH_URL (the clusters)",
            "elasticsearch opensearch elasticsearch7 opensearch1 opensearch3",
        );
    }
    found
}

/// Live tests that did not run: what they needed → (tests, services that provide it).
static SKIPPED: Mutex<BTreeMap<String, (BTreeSet<String>, String)>> = Mutex::new(BTreeMap::new());

/// Notes that the live test `test` did not run because `needs` (the
/// variables) is not set; `services` are the `scripts/stack` services that
/// provide it. Everything noted is printed once, when the tests end.
pub fn skipped(test: &str, needs: &str, services: &str) {
    let mut skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    if skipped.is_empty() {
        // SAFETY: registers a plain function without arguments, as atexit requires.
        unsafe {
            libc::atexit(report_skipped);
        }
    }
    let entry = skipped
        .entry(needs.to_string())
        .or_insert_with(|| (BTreeSet::new(), services.to_string()));
    entry.0.insert(test.to_string());
}

/// The banner of the live tests not run (at exit, past the output capture).
extern "C" fn report_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let tests: BTreeSet<&String> = skipped.values().flat_map(|(tests, _)| tests).collect();
    let mut services: Vec<&str> = skipped.values().flat_map(|(_, s)| s.split_whitespace()).collect();
    services.sort();
    services.dedup();
    let services = services.join(" ");
    let mut text = format!(
        "\n==================== LIVE TESTS NOT RUN ====================\n\
         {} live tests passed WITHOUT RUNNING: their servers are not configured.\n",
        tests.len()
    );
    for (needs, (tests, _)) in skipped.iter() {
        text.push_str(&format!(
            "  no {needs}: {}\n",
            Vec::from_iter(tests.iter().map(String::as_str)).join(", ")
        ));
    }
    text.push_str(&format!(
        "To run them: scripts/stack start {services}\n\
         \x20             eval \"$(scripts/stack env {services})\"\n\
         \x20             cargo test --test it\n\
         (scripts/test starts every server and requires them all: CTINDEX_REQUIRE_CLUSTERS=1)\n\
         =============================================================\n"
    ));
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Prints past the test harness's output capture, so a skipped live test or
/// a missing corpus is seen even when every test passes.
pub fn loud(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below a folder, in name order.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The shared corpus beside the checkout, if there.
pub fn corpus() -> Option<PathBuf> {
    let path = root().join("../shared/cloudtrail-corpus");
    if path.is_dir() {
        Some(path)
    } else {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            loud("NOTE: ../shared/cloudtrail-corpus not found: corpus tests not run, using tests/fixtures only")
        });
        None
    }
}

/// A fresh index prefix for one test, so tests never see each other's data.
pub fn prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t-{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The result of running the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `ctindex` with the arguments, in `dir`, without inheriting CTINDEX_* settings.
pub fn ctindex_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("cannot run ctindex").into()
}

pub fn ctindex(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    ctindex_in(dir.path(), args)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// An HTTP call to a cluster; returns (status, JSON body or Null).
/// [`http`] for a read that a busy shared node may refuse for a moment: a
/// 429 (a circuit breaker under memory pressure) is asked again after a
/// pause doubling up to 8 s, 7 times at most; the last answer is returned.
pub fn http_patient(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut pause = Duration::from_secs(1);
    for _ in 0..7 {
        let answer = http(method, url, body);
        if answer.0 != 429 {
            return answer;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(8));
    }
    http(method, url, body)
}

pub fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let agent = agent();
    let result = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("content-type", "application/json")
            .send(b.to_string()),
        ("PUT", None) => agent.put(url).send_empty(),
        ("POST", Some(b)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b.to_string()),
        ("POST", None) => agent.post(url).send_empty(),
        _ => panic!("unsupported method {method}"),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Cluster {
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = http("GET", &format!("{}{path}", self.url), None);
        assert!(status < 300, "GET {path} on {}: {status} {body}", self.name);
        body
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = http("POST", &format!("{}{path}", self.url), Some(body));
        assert!(status < 300, "POST {path} on {}: {status} {answer}", self.name);
        answer
    }

    pub fn count(&self, target: &str, query: Value) -> u64 {
        let body = self.post(&format!("/{target}/_count"), &json!({ "query": query }));
        body["count"].as_u64().unwrap_or_else(|| panic!("no count in {body}"))
    }

    pub fn exists(&self, path: &str) -> bool {
        http("GET", &format!("{}{path}", self.url), None).0 == 200
    }

    /// Every (index, id, _source) under a target, read with the scroll API.
    pub fn all_docs(&self, target: &str) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        let mut page = self.post(
            &format!("/{target}/_search?scroll=2m"),
            &json!({"size": 1000, "sort": ["_doc"]}),
        );
        loop {
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            if hits.is_empty() {
                break;
            }
            for hit in &hits {
                out.push((
                    hit["_index"].as_str().unwrap_or("").to_string(),
                    hit["_id"].as_str().unwrap_or("").to_string(),
                    hit["_source"].clone(),
                ));
            }
            let scroll_id = page["_scroll_id"].as_str().unwrap_or("").to_string();
            page = self.post("/_search/scroll", &json!({"scroll": "2m", "scroll_id": scroll_id}));
        }
        out
    }

    /// Deletes the test's indices and template.
    /// Deletes the indices of earlier test runs (`t-<test>-<pid>-<n>…` whose
    /// process is gone), never those of a run still going on.
    pub fn remove_leftovers(&self) {
        let (_, indices) = http(
            "GET",
            &format!("{}/_cat/indices/t-*?format=json&h=index", self.url),
            None,
        );
        let stale: Vec<&str> = indices
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["index"].as_str())
            .filter(|name| {
                let pid = name.split('-').nth(2).and_then(|p| p.parse::<u32>().ok());
                pid.is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
            })
            .collect();
        for chunk in stale.chunks(50) {
            http("DELETE", &format!("{}/{}", self.url, chunk.join(",")), None);
        }
    }

    pub fn cleanup(&self, prefix: &str) {
        // Wildcard deletes may be refused (action.destructive_requires_name): delete by name.
        let (_, indices) = http(
            "GET",
            &format!("{}/_cat/indices/{prefix}-*?format=json&h=index", self.url),
            None,
        );
        let names: Vec<&str> = indices
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["index"].as_str())
            .collect();
        for chunk in names.chunks(50) {
            http("DELETE", &format!("{}/{}", self.url, chunk.join(",")), None);
        }
        http(
            "DELETE",
            &format!("{}/_index_template/ctindex-{prefix}", self.url),
            None,
        );
    }
}

/// An independent reading of a folder of CloudTrail files: what the test
/// expects, found without ctindex's own decoder.
#[derive(Debug, Default)]
pub struct Oracle {
    pub events: usize,
    /// eventID → the months (YYYY-MM, or "undated") it occurs in.
    pub ids: BTreeMap<String, BTreeSet<String>>,
    /// Distinct events without an eventID (by content).
    pub without_id: BTreeSet<String>,
    /// Candidate files that hold no event and are not digests.
    pub files_without_events: BTreeSet<String>,
    /// The raw events, for classification checks.
    pub all: Vec<serde_json::Map<String, Value>>,
}

impl Oracle {
    /// Documents the index must hold: one per (eventID, month) and per distinct id-less event.
    pub fn expected_docs(&self) -> u64 {
        (self.ids.values().map(BTreeSet::len).sum::<usize>() + self.without_id.len()) as u64
    }

    pub fn read(root: &Path) -> Oracle {
        let mut oracle = Oracle::default();
        let mut files = Vec::new();
        collect(root, &mut files);
        for path in files {
            let shown = path.display().to_string();
            if shown.contains("CloudTrail-Digest") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
            let stem = name.strip_suffix(".gz").unwrap_or(&name);
            if ![".json", ".ndjson", ".jsonl"].iter().any(|e| stem.ends_with(e)) {
                continue;
            }
            let mut raw = std::fs::read(&path).unwrap();
            if raw.starts_with(&[0x1f, 0x8b]) {
                let mut out = Vec::new();
                let _ = std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out);
                raw = out;
            }
            let text = String::from_utf8_lossy(&raw);
            let mut found = Vec::new();
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => extract(v, &mut found),
                Err(_) => {
                    for line in text.lines() {
                        if let Ok(v) = serde_json::from_str::<Value>(line) {
                            extract(v, &mut found);
                        }
                    }
                }
            }
            let is_digest = text.contains("\"digestStartTime\"");
            // An empty Records file or an empty array is a CloudTrail file with no events, not an error.
            let empty_container = (text.contains("\"Records\"") && text.trim_end().ends_with('}'))
                || text.split_whitespace().collect::<String>() == "[]";
            if found.is_empty() && !is_digest && !empty_container {
                oracle.files_without_events.insert(shown);
            }
            for event in found {
                oracle.events += 1;
                match event
                    .get("eventID")
                    .or_else(|| event.get("eventid"))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    Some(id) => {
                        oracle.ids.entry(id.to_string()).or_default().insert(month(&event));
                    }
                    None => {
                        oracle.without_id.insert(serde_json::to_string(&event).unwrap());
                    }
                }
                oracle.all.push(event);
            }
        }
        oracle
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn is_event(v: &serde_json::Map<String, Value>) -> bool {
    let has = |k: &str| v.contains_key(k) || v.contains_key(&k.to_lowercase());
    // Insights events have their eventName inside insightDetails.
    let insight = v.get("eventType").and_then(Value::as_str) == Some("AwsCloudTrailInsight")
        || v.get("eventCategory").and_then(Value::as_str) == Some("Insight");
    if insight && !v.contains_key("eventName") {
        return v.contains_key("eventID") || v.contains_key("eventTime");
    }
    (v.get("eventName").is_some_and(Value::is_string) || v.get("eventname").is_some_and(Value::is_string))
        && ["eventSource", "eventVersion", "eventTime", "eventID"]
            .iter()
            .any(|k| has(k))
}

fn extract(value: Value, out: &mut Vec<serde_json::Map<String, Value>>) {
    match value {
        Value::Array(items) => items.into_iter().for_each(|v| extract(v, out)),
        Value::Object(o) if is_event(&o) => out.push(o),
        Value::Object(mut o) => {
            if let Some(Value::Array(records)) = o.remove("Records") {
                records.into_iter().for_each(|v| extract(v, out));
            } else if let Some(Value::Array(events)) = o.remove("Events") {
                // `aws cloudtrail lookup-events` output.
                events.into_iter().for_each(|v| extract(v, out));
            } else if o.get("detail").is_some_and(Value::is_object)
                && (o.contains_key("detail-type") || o.contains_key("source"))
            {
                extract(o.remove("detail").unwrap(), out);
            } else if let Some(Value::String(s)) = o.get("CloudTrailEvent") {
                if let Ok(v) = serde_json::from_str(s) {
                    extract(v, out);
                }
            } else if let Some(Value::Array(logs)) = o.remove("logEvents") {
                for log in logs {
                    if let Some(Ok(v)) = log.get("message").and_then(Value::as_str).map(serde_json::from_str) {
                        extract(v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// "YYYY-MM" of eventTime (or @timestamp), "undated" when it is not a date.
pub fn month(event: &serde_json::Map<String, Value>) -> String {
    for key in ["eventTime", "eventtime", "@timestamp"] {
        match event.get(key) {
            Some(Value::String(s)) => {
                let b = s.trim().as_bytes();
                let ok = b.len() >= 10
                    && b[..4].iter().all(u8::is_ascii_digit)
                    && b[4] == b'-'
                    && b[5..7].iter().all(u8::is_ascii_digit)
                    && b[7] == b'-'
                    && (1..=12).contains(&s.trim()[5..7].parse::<u32>().unwrap_or(0))
                    && (1..=31).contains(&s.trim()[8..10].parse::<u32>().unwrap_or(0));
                if ok {
                    return s.trim()[..7].to_string();
                }
            }
            Some(Value::Number(_)) => return "epoch".into(),
            _ => {}
        }
    }
    "undated".into()
}

/// Parses the JSON summary file written by --summary-json.
pub fn summary(path: &Path) -> HashMap<String, Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("no summary at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The node that fault tests may kill and restart (`ES_FAULTS_URL`, the
/// `elasticsearch-faults` service of `scripts/stack`): never a shared one.
/// None, said loudly (or a failure under `CTINDEX_REQUIRE_CLUSTERS=1`), when unset.
pub fn faults_cluster(test: &str) -> Option<Cluster> {
    match std::env::var("ES_FAULTS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(Cluster {
            name: "elasticsearch-faults",
            url: url.trim().trim_end_matches('/').to_string(),
        }),
        _ if std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1") => panic!(
            "{test}: ES_FAULTS_URL is not set but CTINDEX_REQUIRE_CLUSTERS=1 \
             (scripts/stack start elasticsearch-faults; eval \"$(scripts/stack env elasticsearch-faults)\")"
        ),
        _ => {
            skipped(
                test,
                "ES_FAULTS_URL (the node the fault tests kill)",
                "elasticsearch-faults",
            );
            None
        }
    }
}

/// Runs `scripts/stack` with the arguments; panics when it fails.
pub fn stack(args: &[&str]) {
    let status = Command::new(root().join("scripts/stack"))
        .args(args)
        .status()
        .expect("cannot run scripts/stack");
    assert!(status.success(), "scripts/stack {}: {status}", args.join(" "));
}

// ------------------------------------------------------- local HTTP endpoint

/// A request as a local endpoint received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub type Responder = dyn Fn(&Request) -> (u16, Vec<(&'static str, &'static str)>, String) + Send + Sync;

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request and
/// answers with `respond` (one request per connection).
pub struct Endpoint {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Endpoint {
    pub fn start(respond: Box<Responder>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let (status, headers, body) = respond(&request);
                seen.lock().unwrap().push(request);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        Endpoint { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request (head and body) from a connection.
pub fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request = read_head(&mut reader)?;
    request.body = read_body(&mut reader, &request.headers)?;
    Some(request)
}

/// Reads the request line and headers; the body is left unread.
pub fn read_head(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Some(Request {
        method,
        target,
        headers,
        body: Vec::new(),
    })
}

/// Reads a body announced by `content-length` or sent chunked.
pub fn read_body(reader: &mut impl BufRead, headers: &BTreeMap<String, String>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(length) = headers.get("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(body)
}
