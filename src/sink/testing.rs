//! For unit tests of the send loop and the pipeline: a real HTTP server on
//! 127.0.0.1 that answers `GET /` as Elasticsearch does and every bulk
//! request from a script, recording each bulk body as it arrived.
//!
//! Test-only. One request per connection (`connection: close`), so every
//! attempt of the sink is one connection and one recorded body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::Sink;
use super::client::Cluster;
use crate::dlq::DeadLetters;
use crate::http::{Auth, ServerConfig, Url};
use crate::progress::Stats;
use tokio_util::sync::CancellationToken;

/// An answer to a bulk request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: String,
    /// Held back this long before answering (a slow cluster).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: "{}".into(),
            delay: Duration::ZERO,
        }
    }

    /// A 200 bulk answer with one item per status given.
    pub fn items(statuses: &[u16]) -> Reply {
        let items: Vec<serde_json::Value> = statuses
            .iter()
            .map(|&status| match status {
                200..=299 => serde_json::json!({"index": {"status": status, "result": "created"}}),
                _ => serde_json::json!({"index": {"status": status,
                                                  "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}}),
            })
            .collect();
        let errors = statuses.iter().any(|s| *s >= 300);
        Reply {
            body: serde_json::json!({"errors": errors, "items": items}).to_string(),
            ..Reply::status(200)
        }
    }

    /// Every item of the request created.
    pub fn all_created(body: &[u8]) -> Reply {
        Reply::items(&vec![201; body.iter().filter(|b| **b == b'\n').count() / 2])
    }

    pub fn retry_after(mut self, seconds: u64) -> Reply {
        self.retry_after = Some(seconds);
        self
    }
}

/// What to answer to the n-th bulk request (from 0), given its body.
pub type Script = dyn Fn(usize, &[u8]) -> Reply + Send + Sync;

/// A scripted cluster.
pub struct Server {
    pub url: String,
    bulks: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Server {
    pub async fn start(script: Box<Script>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("a local address"));
        let bulks = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::from(script);
        let seen = bulks.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, seen) = (script.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let Some((line, body)) = read_request(&mut stream).await else {
                        return;
                    };
                    let reply = if line.starts_with("GET / ") {
                        Reply {
                            body: r#"{"version":{"number":"8.15.0"},"tagline":"You Know, for Search"}"#.into(),
                            ..Reply::status(200)
                        }
                    } else if line.contains(" /_bulk") {
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(body.clone());
                            seen.len() - 1
                        };
                        script(n, &body)
                    } else {
                        Reply::status(404)
                    };
                    tokio::time::sleep(reply.delay).await;
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    if let Some(seconds) = reply.retry_after {
                        head.push_str(&format!("retry-after: {seconds}\r\n"));
                    }
                    head.push_str("\r\n");
                    let stream = stream.get_mut();
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(reply.body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server { url, bulks }
    }

    /// The bulk bodies received, in order.
    pub fn bulks(&self) -> Vec<Vec<u8>> {
        self.bulks.lock().unwrap().clone()
    }

    pub async fn cluster(&self) -> Cluster {
        let config = ServerConfig {
            url: Url::parse(&self.url).expect("a URL"),
            auth: Auth::None,
            ca_cert: None,
            insecure: false,
            timeout: Duration::from_secs(30),
            compress: false,
        };
        Cluster::connect(&config)
            .await
            .expect("the scripted cluster answers GET /")
    }
}

/// The request line and the body (by `content-length`).
async fn read_request(stream: &mut BufReader<tokio::net::TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((line, body))
}

/// A sink to the scripted server, its parts for the assertions.
pub struct Harness {
    pub sink: Arc<Sink>,
    pub stats: Arc<Stats>,
    pub dlq: Arc<DeadLetters>,
    pub stop: CancellationToken,
    pub _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(server: &Server, retry_budget: Duration, concurrency: usize, stop: CancellationToken) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let dlq = Arc::new(DeadLetters::new(dir.path().join("dead.ndjson")));
        let stats = Arc::new(Stats::default());
        let sink = Sink::new(
            server.cluster().await,
            dlq.clone(),
            stats.clone(),
            Arc::default(),
            retry_budget,
            concurrency,
            stop.clone(),
        );
        Harness {
            sink: Arc::new(sink),
            stats,
            dlq,
            stop,
            _dir: dir,
        }
    }

    /// The dead letters written: (id, reason), in file order.
    pub fn letters(&self) -> Vec<(String, String)> {
        self.dlq.flush().expect("flush the dead letters");
        let text = std::fs::read_to_string(self.dlq.path()).unwrap_or_default();
        text.lines()
            .map(|line| {
                let letter: serde_json::Value = serde_json::from_str(line).expect("a JSON letter");
                (
                    letter["id"].as_str().unwrap_or("").to_string(),
                    letter["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// The ids of the documents of a bulk body, in order.
pub fn ids(body: &[u8]) -> Vec<String> {
    body.split(|b| *b == b'\n')
        .step_by(2)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let action: serde_json::Value = serde_json::from_slice(line).expect("a JSON action line");
            action["index"]["_id"].as_str().unwrap_or("").to_string()
        })
        .collect()
}
