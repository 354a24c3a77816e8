//! Under faults ctindex keeps going and loses nothing: a proxy between it and
//! the cluster that refuses and drops connections, answers 429 and 503,
//! refuses items and answers slowly; a cluster node killed and restarted
//! mid-import; SIGTERM mid-import; a fatal answer mid-import; a directory of
//! hostile files. Each test checks the same promise: every event read is
//! indexed (once: `_count` equals the distinct ids) or in the dead-letter
//! file, and the exit code says which.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Cluster, Oracle, Request, Run};

// ------------------------------------------------------------- the proxy

/// What the proxy does with one bulk request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Forward it and pass the answer back.
    Pass,
    /// Forward it after a pause (longer than `--timeout`: the client gives up first).
    Slow(Duration),
    /// Answer this status without forwarding.
    Status(u16),
    /// Answer 200 with every item refused (429 es_rejected_execution_exception).
    RejectItems,
    /// Read half of the body, then close the connection.
    DropMidRequest,
    /// Forward it (the cluster indexes it), then close without answering.
    DropAnswer,
    /// Close the connection and the listening socket: connections are refused for a while.
    Refuse(Duration),
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Slow(d) if d < TIMEOUT => "slow",
            Fault::Slow(_) => "timeout",
            Fault::Status(429) => "429",
            Fault::Status(503) => "503",
            Fault::Status(_) => "other status",
            Fault::RejectItems => "rejected items",
            Fault::DropMidRequest => "dropped mid-request",
            Fault::DropAnswer => "answer dropped",
            Fault::Refuse(_) => "refused",
        }
    }
}

/// `--timeout` of the runs through the proxy.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The fault for the n-th bulk request (1-based); other requests pass.
pub(crate) type Schedule = dyn Fn(u32) -> Fault + Send + Sync;

/// The fault for the n-th request (1-based) of a kind (see [`request_kind`]).
type KindSchedule = dyn Fn(&str, u32) -> Fault + Send + Sync;

struct Shared {
    upstream: String,
    schedule: Box<Schedule>,
    /// When set, faults for every request by its kind, not only bulk requests.
    every: Option<Box<KindSchedule>>,
    per_kind: Mutex<BTreeMap<String, u32>>,
    bulk_requests: AtomicU32,
    injected: Mutex<BTreeMap<&'static str, u32>>,
    refuse_until: Mutex<Option<Instant>>,
    stop: AtomicBool,
    /// Each bulk request's `content-encoding` and body as received.
    bulk_bodies: Mutex<Vec<(Option<String>, Vec<u8>)>>,
}

/// An HTTP/1.1 proxy on 127.0.0.1, one request per connection, that
/// injects the faults of its schedule into bulk requests.
pub(crate) struct Proxy {
    pub(crate) url: String,
    shared: Arc<Shared>,
}

impl Proxy {
    pub(crate) fn start(upstream: &str, schedule: Box<Schedule>) -> Proxy {
        Proxy::start_with(upstream, schedule, None)
    }

    /// A proxy whose faults hit every kind of request.
    fn start_every(upstream: &str, schedule: Box<KindSchedule>) -> Proxy {
        Proxy::start_with(upstream, Box::new(|_| Fault::Pass), Some(schedule))
    }

    /// Requests seen, by kind.
    fn per_kind(&self) -> BTreeMap<String, u32> {
        self.shared.per_kind.lock().unwrap().clone()
    }

    fn start_with(upstream: &str, schedule: Box<Schedule>, every: Option<Box<KindSchedule>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_start_matches("http://").trim_end_matches('/').to_string(),
            schedule,
            every,
            per_kind: Mutex::new(BTreeMap::new()),
            bulk_requests: AtomicU32::new(0),
            injected: Mutex::new(BTreeMap::new()),
            refuse_until: Mutex::new(None),
            stop: AtomicBool::new(false),
            bulk_bodies: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept(listener, addr, &accepting));
        Proxy {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Each bulk request's `content-encoding` and body as received.
    fn bulk_bodies(&self) -> Vec<(Option<String>, Vec<u8>)> {
        self.shared.bulk_bodies.lock().unwrap().clone()
    }

    /// How many faults of each kind were injected.
    pub(crate) fn injected(&self) -> BTreeMap<&'static str, u32> {
        self.shared.injected.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Accepts connections, except while refusing: then the listening socket is
/// closed, so connection attempts get ECONNREFUSED, and bound again after.
fn accept(listener: TcpListener, addr: SocketAddr, shared: &Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::Relaxed) {
        let refusing = shared.refuse_until.lock().unwrap().filter(|t| *t > Instant::now());
        if let Some(until) = refusing {
            listener = None;
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            continue;
        }
        let open = match &listener {
            Some(open) => open,
            None => match TcpListener::bind(addr) {
                Ok(again) => {
                    again.set_nonblocking(true).unwrap();
                    listener.insert(again)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        match open.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    handle(stream, &shared);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn handle(mut client: TcpStream, shared: &Shared) {
    let Ok(read_half) = client.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let Some(mut request) = support::read_head(&mut reader) else {
        return;
    };
    let fault = if let Some(every) = &shared.every {
        let kind = request_kind(&request.method, &request.target);
        let n = {
            let mut per_kind = shared.per_kind.lock().unwrap();
            let n = per_kind.entry(kind.to_string()).or_default();
            *n += 1;
            *n
        };
        every(kind, n)
    } else if request.target.contains("_bulk") {
        let n = shared.bulk_requests.fetch_add(1, Ordering::SeqCst) + 1;
        (shared.schedule)(n)
    } else {
        Fault::Pass
    };
    if fault != Fault::Pass {
        *shared.injected.lock().unwrap().entry(fault.kind()).or_default() += 1;
    }
    match fault {
        Fault::DropMidRequest => {
            let length: usize = request
                .headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut half = vec![0; length / 2];
            let _ = reader.read_exact(&mut half);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::Refuse(pause) => {
            *shared.refuse_until.lock().unwrap() = Some(Instant::now() + pause);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Some(body) = support::read_body(&mut reader, &request.headers) else {
        return;
    };
    request.body = body;
    if request.target.contains("_bulk") {
        let encoding = request.headers.get("content-encoding").cloned();
        shared
            .bulk_bodies
            .lock()
            .unwrap()
            .push((encoding, request.body.clone()));
    }
    match fault {
        Fault::Status(status) => {
            let kind = match status {
                429 => "es_rejected_execution_exception",
                401 => "security_exception",
                _ => "unavailable_shards_exception",
            };
            let body = json!({"error": {"type": kind, "reason": "injected by the test proxy"}, "status": status});
            answer(&mut client, status, &body);
        }
        Fault::RejectItems => {
            let actions = request.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() / 2;
            let item = json!({"index": {"status": 429, "error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution (injected by the test proxy)"
            }}});
            answer(&mut client, 200, &json!({"errors": true, "items": vec![item; actions]}));
        }
        _ => {
            if let Fault::Slow(pause) = fault {
                std::thread::sleep(pause);
            }
            let forwarded = forward(&shared.upstream, &request);
            match (forwarded, fault) {
                (Some(answer), Fault::Pass | Fault::Slow(_)) => {
                    let _ = client.write_all(&answer);
                }
                _ => {
                    let _ = client.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// What a request to the cluster is for, from its method and path.
fn request_kind(method: &str, target: &str) -> &'static str {
    let path = target.split('?').next().unwrap_or(target);
    match method {
        _ if path == "/" || path.starts_with("/_nodes") => "info",
        _ if path.contains("_bulk") => "bulk",
        _ if path.contains("_index_template") => "template",
        _ if path.contains("_search") => "search",
        _ if path.contains("_refresh") => "refresh",
        "HEAD" => "index exists",
        "PUT" if path.contains("/_create/lease-") => "lease take",
        "PUT" if path.contains("/_doc/lease-") => "lease write",
        "GET" if path.contains("/_doc/lease-") => "lease read",
        "DELETE" if path.contains("lease-") => "lease release",
        _ => "other",
    }
}

fn answer(client: &mut TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(body.as_bytes());
}

/// Sends the request to the cluster on a new connection and returns the
/// answer with `connection: close`, so the client never reuses a connection.
fn forward(upstream: &str, request: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (k, v) in &request.headers {
        if !matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        request.body.len()
    ));
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&request.body).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let mut out = String::new();
    for line in String::from_utf8_lossy(&answer[..split]).split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer[split + 4..]);
    Some(bytes)
}

// ------------------------------------------------------------ the inputs

/// The events of the corpus (or, on a plain clone, the fixtures).
fn corpus_events() -> &'static [serde_json::Map<String, Value>] {
    static EVENTS: OnceLock<Vec<serde_json::Map<String, Value>>> = OnceLock::new();
    EVENTS.get_or_init(|| Oracle::read(&support::corpus().unwrap_or_else(support::fixtures)).all)
}

/// Writes events as gzipped `{"Records":[…]}` files of `per_file` events.
fn write_trail(dir: &Path, events: impl Iterator<Item = Value>, per_file: usize) {
    let day = dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01");
    std::fs::create_dir_all(&day).unwrap();
    let mut events = events.peekable();
    let mut n = 0;
    while events.peek().is_some() {
        let chunk: Vec<Value> = events.by_ref().take(per_file).collect();
        let text = json!({ "Records": chunk }).to_string();
        let path = day.join(format!(
            "123456789012_CloudTrail_us-east-1_20240101T0000Z_{n:05}.json.gz"
        ));
        std::fs::write(path, gzip(text.as_bytes())).unwrap();
        n += 1;
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The corpus's events written again as clean Records files: an import of
/// them has nothing to skip, so any exit code but 0 comes from the faults.
fn clean_corpus(dir: &Path) -> Oracle {
    write_trail(dir, corpus_events().iter().cloned().map(Value::Object), 50);
    let oracle = Oracle::read(dir);
    assert!(oracle.files_without_events.is_empty());
    assert!(oracle.events > 3000, "too few events: {}", oracle.events);
    oracle
}

/// The corpus's events with ids, eight times over with new ids: long
/// enough to stop, kill or signal in the middle of its import.
fn big_trail(dir: &Path) -> Oracle {
    let with_ids = || {
        corpus_events().iter().filter(|e| {
            e.get("eventID")
                .and_then(Value::as_str)
                .is_some_and(|id| !id.trim().is_empty())
        })
    };
    let copies = (0..8).flat_map(|k| {
        with_ids().map(move |e| {
            let mut e = e.clone();
            let id = format!("{}-copy{k}", e["eventID"].as_str().unwrap().trim());
            e.insert("eventID".into(), Value::String(id));
            Value::Object(e)
        })
    });
    write_trail(dir, copies, 200);
    let oracle = Oracle::read(dir);
    assert!(oracle.events > 20_000, "too few events: {}", oracle.events);
    oracle
}

// ------------------------------------------------------------- the runs

/// `import SOURCE --url URL` with the summary and dead letters in `dir`.
fn import_args(source: &Path, url: &str, prefix: &str, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "import",
        source.to_str().unwrap(),
        "--url",
        url,
        "--index-prefix",
        prefix,
        "--replicas",
        "0",
        "--summary-json",
        dir.join("summary.json").to_str().unwrap(),
        "--dead-letter",
        dir.join("dead.ndjson").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(dir: &Path, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::ctindex_in(dir, &args)
}

/// A run in the background, its output going to files that can be read while it runs.
struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn spawn(dir: &Path, args: &[String]) -> Background {
        let stdout = dir.join("stdout.txt");
        let stderr = dir.join("stderr.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
        cmd.args(args)
            .args(["--progress", "log", "--progress-interval", "1"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (key, _) in std::env::vars() {
            if key.starts_with("CTINDEX_") {
                cmd.env_remove(key);
            }
        }
        Background {
            child: cmd.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until some events are indexed (from the progress lines).
    fn wait_for_progress(&mut self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let indexed = indexed_so_far(&self.stderr());
            if indexed > 0 {
                return indexed;
            }
            assert!(
                self.running(),
                "the import ended before any progress: {}",
                tail(&self.stderr())
            );
            assert!(Instant::now() < deadline, "no progress: {}", tail(&self.stderr()));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the import did not end within {limit:?}: {}", tail(&self.stderr()));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: self.stderr(),
        }
    }
}

/// The highest "N indexed" of the progress lines.
fn indexed_so_far(stderr: &str) -> u64 {
    let re = regex_lite::Regex::new(r"progress: .* (\d+) indexed").unwrap();
    re.captures_iter(stderr)
        .filter_map(|c| c[1].parse().ok())
        .max()
        .unwrap_or(0)
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn number(summary: &std::collections::HashMap<String, Value>, key: &str) -> u64 {
    summary[key].as_u64().unwrap_or_else(|| panic!("{key} in {summary:?}"))
}

/// Asserts that the index holds exactly the expected documents.
fn assert_exact(cluster: &Cluster, prefix: &str, oracle: &Oracle, ctx: &str) {
    refresh(cluster, prefix);
    let count = cluster.count(prefix, json!({"match_all": {}}));
    assert_eq!(count, oracle.expected_docs(), "{ctx}: _count");
    let indexed: BTreeSet<String> = cluster
        .all_docs(prefix)
        .iter()
        .filter_map(|(_, _, s)| s["eventID"].as_str().map(|i| i.trim().to_string()))
        .collect();
    let read: BTreeSet<String> = oracle.ids.keys().cloned().collect();
    assert!(indexed == read, "{ctx}: indexed ids differ from ids read");
}

fn refresh(cluster: &Cluster, prefix: &str) {
    let (status, body) = support::http("POST", &format!("{}/{prefix}-*/_refresh", cluster.url), None);
    assert_eq!(status, 200, "refresh on {}: {body}", cluster.name);
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ------------------------------------------------------------ the tests

#[test]
fn faults_between_ctindex_and_the_cluster_lose_and_duplicate_nothing() {
    let clusters = support::clusters("faults_between_ctindex_and_the_cluster_lose_and_duplicate_nothing");
    let Some(cluster) = clusters.first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("trail");
    let oracle = clean_corpus(&source);
    // About 40% of the bulk requests fail, each kind in turn; now and then
    // connections are refused for a second, or the answer comes too late.
    let schedule = |n: u32| match n {
        _ if n.is_multiple_of(29) => Fault::Refuse(Duration::from_secs(1)),
        23 | 53 => Fault::Slow(TIMEOUT + Duration::from_secs(1)),
        _ => match n % 12 {
            1 => Fault::Status(429),
            3 => Fault::DropMidRequest,
            5 => Fault::Status(503),
            7 => Fault::RejectItems,
            9 => Fault::DropAnswer,
            11 => Fault::Slow(Duration::from_millis(300)),
            _ => Fault::Pass,
        },
    };
    let proxy = Proxy::start(&cluster.url, Box::new(schedule));
    let prefix = support::prefix("faults");
    let timeout = TIMEOUT.as_secs().to_string();
    let args = import_args(
        &source,
        &proxy.url,
        &prefix,
        dir.path(),
        &["--batch-bytes", "100KB", "--concurrency", "4", "--timeout", &timeout],
    );
    let run = run(dir.path(), &args);
    let injected = proxy.injected();
    let ctx = format!("{}: injected {injected:?}\n{}", cluster.name, tail(&run.stderr));
    assert_eq!(run.code, 0, "{ctx}");

    // Every kind of fault was injected, and the client saw the refusals.
    for kind in [
        "429",
        "503",
        "rejected items",
        "dropped mid-request",
        "answer dropped",
        "slow",
        "timeout",
        "refused",
    ] {
        assert!(
            injected.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} injected: {ctx}"
        );
    }
    assert!(
        run.stderr.contains("Connection refused"),
        "no refused connection seen: {ctx}"
    );

    // Nothing dead-lettered; every failure retried; concurrency went down.
    let s = support::summary(&dir.path().join("summary.json"));
    assert_eq!(number(&s, "failed"), 0, "{ctx}");
    assert_eq!(number(&s, "dead_letters"), 0, "{ctx}");
    assert!(!dir.path().join("dead.ndjson").exists(), "{ctx}");
    assert_eq!(number(&s, "events_read"), oracle.events as u64, "{ctx}");
    assert_eq!(number(&s, "indexed"), oracle.events as u64, "{ctx}");
    let failures: u32 = injected.iter().filter(|(k, _)| **k != "slow").map(|(_, n)| n).sum();
    assert!(number(&s, "retries") >= u64::from(failures), "{ctx}");
    assert_eq!(number(&s, "concurrency"), 4, "{ctx}");
    assert!(number(&s, "concurrency_low") < 4, "{ctx}");
    assert!(number(&s, "concurrency_decreases") > 0, "{ctx}");
    assert!(run.stderr.contains("the cluster pushes back: 4 -> 2"), "{ctx}");
    assert!(run.stdout.contains("retries, concurrency lowered to"), "{}", run.stdout);

    // Exactly the events read, once each.
    assert_exact(cluster, &prefix, &oracle, &ctx);
    eprintln!(
        "faults: {} bulk requests, injected {injected:?}, {} retries, concurrency down to {}, {} s",
        proxy.shared.bulk_requests.load(Ordering::SeqCst),
        s["retries"],
        s["concurrency_low"],
        s["seconds"]
    );
    cluster.cleanup(&prefix);
}

#[test]
fn concurrency_goes_down_under_pushback_and_back_up_after() {
    let clusters = support::clusters("concurrency_goes_down_under_pushback_and_back_up_after");
    let Some(cluster) = clusters.first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("trail");
    let oracle = clean_corpus(&source);
    // A burst of pushback at the start, then a cluster that keeps up: at most
    // a handful of answers come before the burst's, dozens after.
    let schedule = |n: u32| match n {
        1 | 3 => Fault::Status(429),
        2 => Fault::RejectItems,
        4 => Fault::Status(503),
        _ => Fault::Pass,
    };
    let proxy = Proxy::start(&cluster.url, Box::new(schedule));
    let prefix = support::prefix("recover");
    let args = import_args(
        &source,
        &proxy.url,
        &prefix,
        dir.path(),
        &["--batch-bytes", "50KB", "--concurrency", "4"],
    );
    let run = run(dir.path(), &args);
    let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
    assert_eq!(run.code, 0, "{ctx}");
    let s = support::summary(&dir.path().join("summary.json"));
    assert!(
        number(&s, "batches") > 20,
        "too few requests to see the recovery: {ctx}"
    );
    assert!(run.stderr.contains("the cluster pushes back: 4 -> 2"), "{ctx}");
    assert!(
        run.stderr
            .contains("the cluster keeps up again: 3 -> 4 bulk requests at once"),
        "{ctx}"
    );
    assert!(number(&s, "concurrency_low") <= 2, "{ctx}");
    assert_exact(cluster, &prefix, &oracle, &ctx);
    cluster.cleanup(&prefix);
}

#[test]
fn a_fatal_answer_mid_import_settles_what_is_in_flight_and_a_rerun_completes() {
    let clusters = support::clusters("a_fatal_answer_mid_import_settles_what_is_in_flight_and_a_rerun_completes");
    let Some(cluster) = clusters.first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("trail");
    let oracle = clean_corpus(&source);
    // Four batches through, four answered 503 (they wait to retry), then 401 for good.
    let schedule = |n: u32| match n {
        1..=4 => Fault::Pass,
        5..=8 => Fault::Status(503),
        _ => Fault::Status(401),
    };
    let proxy = Proxy::start(&cluster.url, Box::new(schedule));
    let prefix = support::prefix("fatal");
    let args = import_args(
        &source,
        &proxy.url,
        &prefix,
        dir.path(),
        &["--batch-bytes", "100KB", "--concurrency", "4"],
    );
    let run = run(dir.path(), &args);
    let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
    assert_eq!(run.code, 1, "{ctx}");
    assert!(run.stderr.contains("(401 Unauthorized)"), "{ctx}");
    assert!(run.stderr.contains("the server refused no credentials"), "{ctx}");
    assert!(run.stderr.contains("running the same command again is safe"), "{ctx}");

    // Every event read is indexed, dead-lettered, or counted in the error.
    let re = regex_lite::Regex::new(r"with (\d+) of (\d+) events read neither indexed nor dead-lettered").unwrap();
    let caps = re
        .captures(&run.stderr)
        .unwrap_or_else(|| panic!("no count of what was left: {ctx}"));
    let (left, read): (u64, u64) = (caps[1].parse().unwrap(), caps[2].parse().unwrap());
    let s = support::summary(&dir.path().join("summary.json"));
    assert_eq!(number(&s, "events_read"), read, "{ctx}");
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len() as u64, number(&s, "failed"), "{ctx}");
    assert!(!letters.is_empty(), "{ctx}");
    assert_eq!(number(&s, "indexed") + number(&s, "failed") + left, read, "{ctx}");
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            reason.contains("401") || reason.contains("not sent: the run stopped on an error"),
            "{reason}"
        );
        // The event itself, under its document id: its eventID, or a
        // stand-in for the corpus events that have none.
        let event = &letter["event"];
        assert!(event.is_object() && letter["id"].is_string(), "{letter}");
        if event["ctindex"]["id_generated"] != json!(true) {
            assert_eq!(letter["id"].as_str(), event["eventID"].as_str(), "{letter}");
        }
    }

    // A rerun straight to the cluster completes, without duplicates.
    let rerun_dir = tempfile::tempdir().unwrap();
    let again = self::run(
        rerun_dir.path(),
        &import_args(&source, &cluster.url, &prefix, rerun_dir.path(), &[]),
    );
    assert_eq!(again.code, 0, "{}", tail(&again.stderr));
    assert_exact(cluster, &prefix, &oracle, cluster.name);
    cluster.cleanup(&prefix);
}

/// Starts the faults node again if a test killed it and did not get to restart it.
struct Restart(bool);

impl Drop for Restart {
    fn drop(&mut self) {
        if self.0 {
            support::stack(&["start", "elasticsearch-faults"]);
        }
    }
}

#[test]
fn the_cluster_killed_and_restarted_mid_import_loses_and_duplicates_nothing() {
    let Some(cluster) =
        support::faults_cluster("the_cluster_killed_and_restarted_mid_import_loses_and_duplicates_nothing")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("trail");
    let oracle = big_trail(&source);
    let prefix = support::prefix("restart");
    let args = import_args(&source, &cluster.url, &prefix, dir.path(), &["--batch-bytes", "1MB"]);
    let mut import = Background::spawn(dir.path(), &args);
    let before = import.wait_for_progress();
    assert!(import.running(), "the import ended before the node could be killed");
    let mut restart = Restart(true);
    support::stack(&["kill", "elasticsearch-faults"]);
    let killed_while_running = import.running();
    support::stack(&["start", "elasticsearch-faults"]);
    restart.0 = false;
    let run = import.wait(Duration::from_secs(600));
    let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
    assert!(killed_while_running, "the import ended before the kill: {ctx}");
    let s = support::summary(&dir.path().join("summary.json"));
    eprintln!(
        "restart: killed after {before} events indexed; exit {}, {} retries, {} s",
        run.code, s["retries"], s["seconds"]
    );
    if run.code == 0 {
        assert!(number(&s, "retries") > 0, "the kill went unnoticed: {ctx}");
        assert_eq!(number(&s, "failed"), 0, "{ctx}");
        assert_eq!(number(&s, "indexed"), oracle.events as u64, "{ctx}");
    } else {
        // Allowed by the contract: the run fails, and a rerun completes.
        assert_eq!(run.code, 1, "{ctx}");
        assert!(run.stderr.contains("running the same command again is safe"), "{ctx}");
        let rerun_dir = tempfile::tempdir().unwrap();
        let again = self::run(
            rerun_dir.path(),
            &import_args(&source, &cluster.url, &prefix, rerun_dir.path(), &[]),
        );
        assert_eq!(again.code, 0, "{}", tail(&again.stderr));
    }
    assert_exact(&cluster, &prefix, &oracle, &ctx);
    cluster.cleanup(&prefix);
}

#[test]
fn sigterm_mid_import_settles_what_is_in_flight_and_a_rerun_completes() {
    let clusters = support::clusters("sigterm_mid_import_settles_what_is_in_flight_and_a_rerun_completes");
    let Some(cluster) = clusters.first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("trail");
    let oracle = big_trail(&source);
    let prefix = support::prefix("sigterm");
    let args = import_args(&source, &cluster.url, &prefix, dir.path(), &["--batch-bytes", "1MB"]);
    let mut import = Background::spawn(dir.path(), &args);
    import.wait_for_progress();
    assert!(import.running(), "the import ended before it could be stopped");
    let pid = import.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let run = import.wait(Duration::from_secs(300));
    let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
    assert_eq!(run.code, 3, "interrupted runs exit with 3: {ctx}");
    assert!(run.stdout.starts_with("interrupted: "), "{}\n{ctx}", run.stdout);
    assert!(run.stderr.contains("stopping: no new files are read"), "{ctx}");
    let s = support::summary(&dir.path().join("summary.json"));
    assert_eq!(s["interrupted"], json!(true));
    let read = number(&s, "events_read");
    assert!(
        read < oracle.events as u64,
        "it did not stop reading: {read} events read: {ctx}"
    );
    // What was read was settled: indexed, or dead-lettered.
    assert_eq!(number(&s, "indexed") + number(&s, "failed"), read, "{ctx}");
    assert_eq!(dead_letters(dir.path()).len() as u64, number(&s, "failed"), "{ctx}");

    // A second signal quits at once.
    let again_dir = tempfile::tempdir().unwrap();
    let mut again = Background::spawn(
        again_dir.path(),
        &import_args(
            &source,
            &cluster.url,
            &prefix,
            again_dir.path(),
            &["--batch-bytes", "1MB"],
        ),
    );
    again.wait_for_progress();
    let pid = again.child.id().to_string();
    let term = || assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    term();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !again.stderr().contains("stopping: no new files are read") {
        assert!(
            again.running(),
            "it ended before the second signal: {}",
            tail(&again.stderr())
        );
        assert!(Instant::now() < deadline, "the first signal was not heard");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        again.running(),
        "it ended before the second signal: {}",
        tail(&again.stderr())
    );
    term();
    let quit = again.wait(Duration::from_secs(60));
    assert_eq!(quit.code, 130, "{}", tail(&quit.stderr));
    // The last line says what was left, and that a rerun finishes the job.
    let last = quit.stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("ctindex: interrupted at once: ")
            && last.contains("events read were not yet indexed, written or dead-lettered")
            && last.contains("running the same command again finishes the job safely"),
        "{}",
        tail(&quit.stderr)
    );

    let rerun_dir = tempfile::tempdir().unwrap();
    let again = self::run(
        rerun_dir.path(),
        &import_args(&source, &cluster.url, &prefix, rerun_dir.path(), &[]),
    );
    assert_eq!(again.code, 0, "{}", tail(&again.stderr));
    assert_exact(cluster, &prefix, &oracle, cluster.name);
    cluster.cleanup(&prefix);
}

// ------------------------------------------------------------ bad input

fn event(id: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventID": id,
        "eventName": "PutObject",
        "eventSource": "s3.amazonaws.com",
        "eventTime": "2024-03-04T05:06:07Z",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
        "requestParameters": {"bucketName": "b", "key": id}
    })
}

fn with(mut event: Value, key: &str, value: Value) -> Value {
    event[key] = value;
    event
}

fn nested(depth: usize) -> String {
    format!("{}\"bottom\"{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

fn records(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut out = br#"{"Records":["#.to_vec();
    out.extend_from_slice(&elements.join(&b","[..]));
    out.extend_from_slice(b"]}");
    out
}

fn text(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// A directory of hostile files beside good ones.
struct Hostile {
    dir: tempfile::TempDir,
    /// Ids that must be indexed.
    indexed_ids: BTreeSet<String>,
    /// Events without an eventID that must be indexed too.
    indexed_without_id: u64,
    /// Values in the files that are read (not skipped whole), except a
    /// truncated file's broken tail: each is indexed or dead-lettered.
    values: u64,
    /// (file, position, words of the reason) of each expected dead letter.
    letters: Vec<(&'static str, &'static str, &'static str)>,
    /// (file, words) of each expected message.
    messages: Vec<(&'static str, String)>,
}

fn hostile_files() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Hostile {
        dir,
        indexed_ids: BTreeSet::new(),
        indexed_without_id: 0,
        values: 0,
        letters: Vec::new(),
        messages: Vec::new(),
    };
    let root = h.dir.path().to_path_buf();
    let write = |name: &str, bytes: &[u8]| std::fs::write(root.join(name), bytes).unwrap();
    let ids = |h: &mut Hostile, list: &[&str]| {
        h.indexed_ids.extend(list.iter().map(|s| s.to_string()));
        h.values += list.len() as u64;
    };

    // Good events beside the bad ones.
    write(
        "good.json",
        &records(&[text(&event("h-good-0")), text(&event("h-good-1"))]),
    );
    ids(&mut h, &["h-good-0", "h-good-1"]);

    // Whole files that cannot be used: named, counted as skipped.
    write(
        "corrupt.json.gz",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data at all",
    );
    write("empty.json", b"");
    write("blank.json.gz", &gzip(b""));
    write(
        "not-cloudtrail.json",
        br#"{"kind":"inventory","items":[{"sku":1},{"sku":2}]}"#,
    );
    h.messages
        .push(("corrupt.json.gz", "skipped: corrupt gzip data".into()));
    h.messages.push(("empty.json", "skipped: empty file".into()));
    h.messages.push(("blank.json.gz", "skipped: empty file".into()));
    h.messages
        .push(("not-cloudtrail.json", "skipped: not a CloudTrail file".into()));

    // Truncated JSON: the events before the break are kept.
    let mut cut = records(&[
        text(&event("h-cut-0")),
        text(&event("h-cut-1")),
        text(&event("h-cut-2")),
        text(&event("h-cut-3")),
    ]);
    cut.truncate(cut.len() - 60);
    write("truncated.json", &cut);
    ids(&mut h, &["h-cut-0", "h-cut-1", "h-cut-2"]);
    h.messages.push((
        "truncated.json",
        "incomplete, 3 events before the break kept: JSON breaks off inside record 3".into(),
    ));

    // Events of several MB: one of 2,000 fields of 2 KB, one with a 6 MB string.
    let mut many = serde_json::Map::new();
    for i in 0..2000 {
        many.insert(format!("field{i:04}"), Value::String("x".repeat(2000)));
    }
    let wide = with(event("h-big-wide"), "requestParameters", Value::Object(many));
    let long = with(
        event("h-big-long"),
        "requestParameters",
        json!({"policy": "p".repeat(6 << 20)}),
    );
    write("big.json", &records(&[text(&wide), text(&long)]));
    ids(&mut h, &["h-big-wide", "h-big-long"]);

    // Nesting: deeper than the cluster's limits (kept as a string), and
    // deeper than the parser's 128 levels (dead-lettered), in Records and NDJSON.
    let deep40 = format!(
        r#"{{"eventVersion":"1.08","eventID":"h-deep-40","eventName":"PutObject","eventSource":"s3.amazonaws.com","eventTime":"2024-03-04T05:06:07Z","requestParameters":{},"customField":{}}}"#,
        nested(40),
        nested(60)
    );
    let deep200 = format!(
        r#"{{"eventVersion":"1.08","eventID":"h-deep-200","eventName":"PutObject","eventSource":"s3.amazonaws.com","requestParameters":{}}}"#,
        nested(200)
    );
    write(
        "deep.json",
        &records(&[
            text(&event("h-deep-0")),
            deep40.clone().into_bytes(),
            deep200.clone().into_bytes(),
            text(&event("h-deep-3")),
        ]),
    );
    ids(&mut h, &["h-deep-0", "h-deep-40", "h-deep-3"]);
    h.values += 1;
    h.letters
        .push(("deep.json", "record 2", "nested deeper than 128 levels"));
    h.messages.push((
        "deep.json",
        "record 2: skipped: not valid JSON: nested deeper than 128 levels".into(),
    ));
    let deep_lines = format!(
        "{}\n{}\n{}\n",
        event("h-deepl-1"),
        deep200.replace("h-deep-200", "h-deepl-2"),
        event("h-deepl-3")
    );
    write("deep.ndjson", deep_lines.as_bytes());
    ids(&mut h, &["h-deepl-1", "h-deepl-3"]);
    h.values += 1;
    h.letters
        .push(("deep.ndjson", "line 2", "nested deeper than 128 levels"));

    // NULs: escaped (a valid string) and raw (invalid JSON); invalid UTF-8.
    let escaped = with(event("h-nul-0"), "userAgent", json!("aws-cli\u{0}/2 \u{0}"));
    let escaped = with(escaped, "requestParameters", json!({"key": "a\u{0}b"}));
    let raw_nul = text(&event("h-nul-1"))
        .iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect::<Vec<u8>>();
    let mut bad_utf8 = text(&event("h-nul-2"));
    let at = bad_utf8.windows(7).position(|w| w == b"aws-cli").unwrap();
    bad_utf8.splice(at..at, [0xff, 0xfe]);
    write(
        "nul.json",
        &records(&[text(&escaped), raw_nul, bad_utf8, text(&event("h-nul-3"))]),
    );
    ids(&mut h, &["h-nul-0", "h-nul-3"]);
    h.values += 2;
    h.letters.push(("nul.json", "record 1", "raw control character"));
    h.letters.push(("nul.json", "record 2", "invalid UTF-8"));
    h.messages.push((
        "nul.json",
        "record 1: skipped: not valid JSON: a raw control character".into(),
    ));
    h.messages
        .push(("nul.json", "record 2: skipped: not valid JSON: invalid UTF-8".into()));

    // Emoji and other non-ASCII text, everywhere.
    let uni1 = with(
        event("h-uni-1"),
        "userAgent",
        json!("Mozilla/5.0 \u{1F600} caf\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{5e2}\u{5d1}\u{5e8}\u{5d9}\u{5ea}"),
    );
    let uni1 = with(
        uni1,
        "requestParameters",
        json!({"\u{540d}\u{524d}": "\u{5024} \u{1F680}", "bucketName": "\u{fc}ber"}),
    );
    let uni2 = with(
        event("h-uni-2"),
        "errorMessage",
        json!("Zalgo t\u{338}\u{322}e\u{334}x\u{337}t \u{1F469}\u{200D}\u{1F4BB}"),
    );
    write("unicode.ndjson", format!("{uni1}\n{uni2}\n").as_bytes());
    ids(&mut h, &["h-uni-1", "h-uni-2"]);

    // Events without eventID or eventTime: indexed, named once per file.
    let mut no_id_a = event("x");
    no_id_a.as_object_mut().unwrap().remove("eventID");
    let mut no_id_b = no_id_a.clone();
    no_id_b["eventName"] = json!("GetObject");
    let mut no_time = event("h-miss-time");
    no_time.as_object_mut().unwrap().remove("eventTime");
    let no_either = json!({"eventName": "ListBuckets", "eventSource": "s3.amazonaws.com"});
    write(
        "missing.json",
        &records(&[text(&no_id_a), text(&no_id_b), text(&no_time), text(&no_either)]),
    );
    ids(&mut h, &["h-miss-time"]);
    h.indexed_without_id += 3;
    h.values += 3;
    h.messages.push((
        "missing.json",
        "3 events without a usable eventID (record 0, record 1, record 3)".into(),
    ));
    h.messages.push((
        "missing.json",
        "2 events without a readable eventTime (record 2, record 3): indexed in".into(),
    ));

    // NDJSON with a broken line and values that are not events.
    let mixed = format!(
        "{}\n{{broken json\n{{\"hello\":\"world\"}}\n42\n{}\n",
        event("h-mix-1"),
        event("h-mix-5")
    );
    write("mixed.ndjson", mixed.as_bytes());
    ids(&mut h, &["h-mix-1", "h-mix-5"]);
    h.values += 3;
    h.letters.push(("mixed.ndjson", "line 2", "not valid JSON"));
    h.letters.push(("mixed.ndjson", "line 3", "not a CloudTrail event"));
    h.letters.push(("mixed.ndjson", "line 4", "not a CloudTrail event"));
    h.messages
        .push(("mixed.ndjson", "line 2: skipped: not valid JSON".into()));
    h
}

#[test]
fn hostile_files_are_named_counted_and_everything_else_indexed() {
    for cluster in support::clusters("hostile_files_are_named_counted_and_everything_else_indexed") {
        let h = hostile_files();
        let out = tempfile::tempdir().unwrap();
        let prefix = support::prefix("hostile");
        let run = run(
            out.path(),
            &import_args(h.dir.path(), &cluster.url, &prefix, out.path(), &[]),
        );
        let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
        assert_eq!(run.code, 3, "{ctx}");

        // The documented messages, naming the file and the event's position.
        for (file, words) in &h.messages {
            let path = h.dir.path().join(file).display().to_string();
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l.contains(&format!("{path}: ")) && l.contains(words.as_str())),
                "no message '{words}' for {file}: {ctx}"
            );
        }
        // One message per file for the stand-ins, not one per event.
        assert_eq!(run.stderr.matches("without a usable eventID").count(), 1, "{ctx}");

        let s = support::summary(&out.path().join("summary.json"));
        assert_eq!(number(&s, "files_skipped"), 4, "{ctx}");
        assert_eq!(number(&s, "files_truncated"), 1, "{ctx}");
        assert_eq!(number(&s, "failed"), 0, "the cluster refused events: {ctx}");
        assert_eq!(number(&s, "without_id"), 3, "{ctx}");
        assert_eq!(number(&s, "undated"), 2, "{ctx}");

        // Every good event beside them is indexed, and nothing else.
        refresh(&cluster, &prefix);
        let docs = cluster.all_docs(&prefix);
        let ids: BTreeSet<String> = docs
            .iter()
            .filter_map(|(_, _, s)| s["eventID"].as_str().map(String::from))
            .collect();
        assert_eq!(ids, h.indexed_ids, "{ctx}");
        assert_eq!(
            docs.len() as u64,
            h.indexed_ids.len() as u64 + h.indexed_without_id,
            "{ctx}"
        );

        // Every value read is indexed or dead-lettered, with its file, position and reason.
        let letters = dead_letters(out.path());
        assert_eq!(docs.len() as u64 + letters.len() as u64, h.values, "{ctx}");
        assert_eq!(number(&s, "indexed"), docs.len() as u64, "{ctx}");
        assert_eq!(
            number(&s, "skipped") + number(&s, "failed"),
            letters.len() as u64,
            "{ctx}"
        );
        for (file, position, words) in &h.letters {
            let path = h.dir.path().join(file).display().to_string();
            assert!(
                letters.iter().any(|l| l["source"] == json!(path)
                    && l["position"] == json!(position)
                    && l["reason"].as_str().unwrap().contains(words)
                    && !l["event"].is_null()),
                "no dead letter for {file} {position} ({words}): {letters:?}"
            );
        }

        // What was indexed is what was read.
        let by_id: BTreeMap<&str, &Value> = docs
            .iter()
            .filter_map(|(_, _, s)| s["eventID"].as_str().map(|id| (id, s)))
            .collect();
        let wide = by_id["h-big-wide"];
        assert_eq!(
            wide["requestParameters"].as_object().map(|m| m.len()),
            Some(2000),
            "{ctx}"
        );
        let long = by_id["h-big-long"];
        assert!(long["ctindex"]["truncated"].is_array(), "{}", long["ctindex"]);
        assert!(long["requestParameters"]["policy"].as_str().unwrap().len() < 64 << 10);
        assert!(by_id["h-deep-40"]["ctindex"]["truncated"].is_array(), "{ctx}");
        assert_eq!(by_id["h-nul-0"]["userAgent"], json!("aws-cli\u{0}/2 \u{0}"));
        assert_eq!(by_id["h-nul-0"]["requestParameters"]["key"], json!("a\u{0}b"));
        assert_eq!(
            by_id["h-uni-1"]["userAgent"],
            json!("Mozilla/5.0 \u{1F600} caf\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{5e2}\u{5d1}\u{5e8}\u{5d9}\u{5ea}")
        );
        assert_eq!(
            by_id["h-uni-1"]["requestParameters"]["\u{540d}\u{524d}"],
            json!("\u{5024} \u{1F680}")
        );
        assert!(
            by_id["h-uni-2"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("\u{1F469}\u{200D}\u{1F4BB}")
        );
        // Searchable, not only stored.
        let emoji = cluster.count(&prefix, json!({"term": {"userAgent": by_id["h-uni-1"]["userAgent"]}}));
        assert_eq!(emoji, 1, "{ctx}");
        cluster.cleanup(&prefix);
    }
}

#[test]
fn a_stop_while_connecting_ends_the_run_at_once() {
    // A server that accepts the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener
            .incoming()
            .flatten()
            .inspect(|_| {
                let _ = accepted_tx.send(());
            })
            .collect();
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let source = support::fixtures().join("trail");
    let args = import_args(&source, &url, "t-connecting", dir.path(), &[]);
    let import = Background::spawn(dir.path(), &args);
    accepted_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ctindex did not connect");
    let pid = import.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Well before the 120 s request timeout.
    let run = import.wait(Duration::from_secs(60));
    assert_eq!(run.code, 3, "{}", tail(&run.stderr));
    assert!(
        run.stdout.starts_with("interrupted: 0 files; 0 events read"),
        "{}",
        run.stdout
    );
    let s = support::summary(&dir.path().join("summary.json"));
    assert_eq!(s["interrupted"], json!(true));
}

#[test]
fn compressed_requests_are_gzip_on_the_wire_and_indexed_in_full() {
    for cluster in support::clusters("compressed_requests_are_gzip_on_the_wire_and_indexed_in_full") {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("trail");
        let oracle = clean_corpus(&source);
        let proxy = Proxy::start(&cluster.url, Box::new(|_| Fault::Pass));
        let prefix = support::prefix("gzip");
        let args = import_args(
            &source,
            &proxy.url,
            &prefix,
            dir.path(),
            &["--compress", "--batch-bytes", "200KB"],
        );
        let run = run(dir.path(), &args);
        let ctx = format!("{}\n{}", cluster.name, tail(&run.stderr));
        assert_eq!(run.code, 0, "{ctx}");
        let bodies = proxy.bulk_bodies();
        assert!(bodies.len() > 2, "{} bulk requests: {ctx}", bodies.len());
        let mut on_the_wire = 0;
        for (encoding, body) in &bodies {
            assert_eq!(encoding.as_deref(), Some("gzip"), "{ctx}");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
            assert!(plain.ends_with(b"\n") && plain.starts_with(b"{"), "{ctx}");
            on_the_wire += body.len();
        }
        // The summary counts the bodies before compression.
        let s = support::summary(&dir.path().join("summary.json"));
        let built = number(&s, "bulk_bytes") as usize;
        assert!(on_the_wire * 3 < built, "{on_the_wire} bytes sent for {built}: {ctx}");
        assert_exact(&cluster, &prefix, &oracle, &ctx);
        cluster.cleanup(&prefix);
    }
}

/// A sync of the corpus from S3 through a proxy that hits every kind of
/// request to the cluster (lease reads, takes and renewals, the state
/// index, the template, searches, bulk requests, refreshes) with 429, 503,
/// dropped connections, answers lost after the cluster applied the request,
/// and slow answers: exact counts, the state complete (a second sync reads
/// nothing), exit 0, and the lease never lost.
#[test]
fn a_sync_through_faults_on_every_kind_of_request_loses_nothing() {
    let test = "a_sync_through_faults_on_every_kind_of_request_loses_nothing";
    let clusters = support::clusters(test);
    let Some(cluster) = clusters.first() else { return };
    let Some(server) = crate::s3::server(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    let oracle = clean_corpus(&trail);
    let bucket = format!("ctindex-faults-sync-{}", std::process::id());
    let rt = crate::s3::runtime();
    rt.block_on(
        crate::s3::client(&server.endpoint)
            .create_bucket()
            .bucket(&bucket)
            .send(),
    )
    .unwrap();
    let mut objects = Vec::new();
    for entry in support::files_below(&trail) {
        let key = entry.strip_prefix(&trail).unwrap().to_string_lossy().to_string();
        objects.push((key, std::fs::read(&entry).unwrap()));
    }
    crate::s3::put_many(&server.endpoint, &bucket, objects);

    // Connecting is asked once and fails fast by design; everything after
    // it meets a fault of each kind, at its first requests and then now and then.
    let schedule = |kind: &str, n: u32| match (kind, n) {
        ("info", _) => Fault::Pass,
        ("lease take" | "lease write" | "bulk", 1) => Fault::DropAnswer,
        (_, 1) => Fault::Status(503),
        (_, 2) => Fault::Status(429),
        ("bulk", n) if n % 6 == 3 => Fault::DropMidRequest,
        ("bulk", 5) | ("lease read", 3) => Fault::Slow(TIMEOUT + Duration::from_secs(1)),
        ("lease write", n) if n % 2 == 1 => Fault::DropAnswer,
        (_, n) if n % 8 == 0 => Fault::Slow(Duration::from_millis(300)),
        _ => Fault::Pass,
    };
    let proxy = Proxy::start_every(&cluster.url, Box::new(schedule));
    let prefix = support::prefix("faults-sync");
    let state_index = format!("state-{prefix}");
    let timeout = TIMEOUT.as_secs().to_string();
    let sync = |url: &str, out: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
        cmd.args([
            "sync",
            &format!("s3://{bucket}"),
            "--url",
            url,
            "--index-prefix",
            &prefix,
        ])
        .args([
            "--state-index",
            &state_index,
            "--endpoint-url",
            &server.endpoint,
            "--region",
            "us-east-1",
        ])
        .args(["--since", "2024-01-01", "--replicas", "0", "--timeout", &timeout])
        .args(["--lease-seconds", "4", "--batch-bytes", "100KB", "--concurrency", "2"])
        .args(["--summary-json", out.join("summary.json").to_str().unwrap()])
        .args(["--dead-letter", out.join("dead.ndjson").to_str().unwrap()])
        .current_dir(out);
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            if std::env::var(key).is_err() {
                cmd.env(key, "test");
            }
        }
        let run: Run = cmd.output().unwrap().into();
        run
    };
    let first_dir = tempfile::tempdir().unwrap();
    let first = sync(&proxy.url, first_dir.path());
    let injected = proxy.injected();
    let kinds = proxy.per_kind();
    let ctx = format!(
        "{}: injected {injected:?}, requests {kinds:?}\n{}",
        cluster.name,
        tail(&first.stderr)
    );
    assert_eq!(first.code, 0, "{ctx}");
    assert!(!first.stderr.contains("lost the sync lease"), "{ctx}");
    for kind in [
        "bulk",
        "template",
        "index exists",
        "lease take",
        "lease read",
        "lease write",
        "search",
        "refresh",
    ] {
        assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "no {kind} request: {ctx}");
    }
    for fault in ["answer dropped", "503", "429", "dropped mid-request", "timeout", "slow"] {
        assert!(
            injected.get(fault).copied().unwrap_or(0) > 0,
            "no {fault} injected: {ctx}"
        );
    }
    // Renewals were hit too (the lease lasts 4 s: renewed every second).
    assert!(kinds.get("lease write").copied().unwrap_or(0) >= 2, "{ctx}");
    let s = support::summary(&first_dir.path().join("summary.json"));
    assert_eq!(number(&s, "failed"), 0, "{ctx}");
    assert_eq!(number(&s, "indexed"), oracle.events as u64, "{ctx}");
    assert_exact(cluster, &prefix, &oracle, &ctx);

    // The state is complete: the next sync (through the same faults) reads nothing.
    let second_dir = tempfile::tempdir().unwrap();
    let second = sync(&proxy.url, second_dir.path());
    let ctx = format!("second sync: {}", tail(&second.stderr));
    assert_eq!(second.code, 0, "{ctx}");
    let s = support::summary(&second_dir.path().join("summary.json"));
    assert_eq!(number(&s, "files"), 0, "{ctx}");
    assert_eq!(number(&s, "events_read"), 0, "{ctx}");
    assert!(number(&s, "files_already_done") > 0, "{ctx}");
    assert!(!second.stderr.contains("lost the sync lease"), "{ctx}");
    eprintln!("faults on every request: {kinds:?}, injected {injected:?}");
    cluster.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state_index}", cluster.url), None);
}
