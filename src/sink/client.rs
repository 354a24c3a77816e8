//! The connection to Elasticsearch or OpenSearch: finding out which product
//! and version answers, raw and JSON requests, and gzipped bodies
//! (`--compress`). Credentials, TLS and signing are [`crate::http`]'s.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::http::sigv4::Service;
use crate::http::{Auth, Client, explain};
pub use crate::http::{Method, SendError, ServerConfig};
use crate::retry::{Answer, Next, Policy, Retrier, Why};

/// Which product answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch,
    OpenSearch,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Elasticsearch => "Elasticsearch",
            Flavor::OpenSearch => "OpenSearch",
        }
    }
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pub flavor: Flavor,
    pub version: String,
    timeout: Duration,
    compress: bool,
    /// An OpenSearch Serverless collection (`--aws-service aoss`): it has
    /// no `GET /`, no node info and no `_refresh`.
    pub serverless: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cluster({} {} at {})",
            self.flavor.name(),
            self.version,
            self.client.url()
        )
    }
}

/// Bodies smaller than this are sent as they are, compressed or not.
const COMPRESS_FROM: usize = 1024;

/// A request body, gzipped when that worked.
struct Body {
    bytes: Bytes,
    encoded: bool,
}

/// Gzips a body at the fastest level (CloudTrail's JSON still shrinks about
/// sevenfold), off the async threads: a 5 MB body takes tens of
/// milliseconds. Should that fail, the body goes as it is.
async fn gzip(body: Bytes) -> Body {
    let plain = body.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        encoder.write_all(&body)?;
        encoder.finish()
    })
    .await;
    match encoded {
        Ok(Ok(bytes)) => Body {
            bytes: Bytes::from(bytes),
            encoded: true,
        },
        _ => Body {
            bytes: plain,
            encoded: false,
        },
    }
}

impl Cluster {
    /// Builds the client and asks the cluster who it is. Failing to
    /// connect or to authenticate is one line that says what to do.
    pub async fn connect(config: &ServerConfig) -> Result<Cluster> {
        let client = Client::new(config).await?;
        let shown = client.url().to_string();
        let mut cluster = Cluster {
            client,
            flavor: Flavor::Elasticsearch,
            version: String::new(),
            timeout: config.timeout,
            compress: config.compress,
            serverless: matches!(&config.auth, Auth::Aws(aws) if aws.service == Service::Aoss),
        };
        if cluster.serverless {
            // Serverless answers neither `GET /` nor `_nodes`: nothing to ask.
            cluster.flavor = Flavor::OpenSearch;
            cluster.version = "serverless".into();
            return Ok(cluster);
        }
        match cluster
            .client
            .send(Method::GET, "/", HeaderMap::new(), None, Some(cluster.timeout))
            .await
        {
            Ok(answer) => {
                // Both answer `GET /` with the version and a tagline; nothing else does.
                let info = serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .filter(|info| info["tagline"].is_string() || is_opensearch(info))
                    .ok_or_else(|| {
                        anyhow!(explain::not_a_cluster(
                            &shown,
                            "/",
                            answer.status,
                            Some(&answer.headers),
                            &answer.body
                        ))
                    })?;
                let version = &info["version"];
                cluster.version = version["number"].as_str().unwrap_or("unknown").to_string();
                if is_opensearch(&info) {
                    cluster.flavor = Flavor::OpenSearch;
                }
            }
            // Minimal distributions (the integ-test zips) do not serve `GET /`: ask the node itself.
            Err(SendError::Status {
                status: status @ (404 | 405),
                body,
                ..
            }) => {
                let not_a_cluster = || anyhow!(explain::not_a_cluster(&shown, "/", status, None, body.as_bytes()));
                let nodes = match cluster
                    .send(Method::GET, "/_nodes/_local?filter_path=nodes.*.version", None)
                    .await
                {
                    Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .filter(|nodes| nodes["nodes"].is_object())
                        .ok_or_else(not_a_cluster)?,
                    Err(e) if matches!(e.status(), Some(404 | 405)) => return Err(not_a_cluster()),
                    Err(e) => return Err(cluster.first_failure(e.into()).await),
                };
                let version = nodes["nodes"]
                    .as_object()
                    .and_then(|n| n.values().next())
                    .map(|n| &n["version"]);
                cluster.version = version.and_then(Value::as_str).unwrap_or("unknown").to_string();
            }
            Err(e) => return Err(cluster.first_failure(e.into()).await),
        }
        Ok(cluster)
    }

    /// The first request's failure, made plain: a refused login, a TLS
    /// problem or a plain-HTTP URL pointing at a TLS port is one line of its own.
    async fn first_failure(&self, e: anyhow::Error) -> anyhow::Error {
        let url = self.client.url();
        match e.downcast_ref::<SendError>() {
            Some(SendError::Status { status: 401, body, .. }) => anyhow::anyhow!(
                "{url} refused {} (401 Unauthorized){}: check the credentials",
                self.client.auth_description(),
                explain::reason(body).map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Some(SendError::Connection { message, .. }) => {
                if url.starts_with("http://") && self.client.speaks_tls().await {
                    anyhow::anyhow!(
                        "{url} speaks HTTPS, not plain HTTP: use https:// in the URL (with --ca-cert FILE \
                         when its certificate is not from a public CA)"
                    )
                } else if message.contains("TLS") {
                    anyhow::anyhow!("cannot connect to {url}: {message}")
                } else {
                    anyhow::anyhow!(
                        "cannot reach the cluster at {url} (check --url, and the cluster's state): {message}"
                    )
                }
            }
            Some(SendError::Status { .. }) => e.context(format!("cannot ask the cluster at {url} what it is")),
            None => e,
        }
    }

    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// Sends one request; a non-2xx answer is an error carrying the body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes, SendError> {
        self.send_with_timeout(method, path, body, self.timeout).await
    }

    pub async fn send_with_timeout(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, SendError> {
        let mut headers = HeaderMap::new();
        let body = match body {
            Some(body) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if self.compress && body.len() >= COMPRESS_FROM {
                    let compressed = gzip(body).await;
                    if compressed.encoded {
                        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    }
                    Some(compressed.bytes)
                } else {
                    Some(body)
                }
            }
            None => None,
        };
        let response = self.client.send(method, path, headers, body, Some(timeout)).await?;
        Ok(response.body)
    }

    /// Sends a request and parses the answer as JSON.
    ///
    /// Control requests (templates, state, leases) are retried under
    /// [`Policy::CONTROL`] when the cluster is busy, failing or briefly
    /// unreachable.
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let mut retrier = Retrier::new(Policy::CONTROL);
        let bytes = loop {
            match self.send(method.clone(), path, body.clone()).await {
                Ok(bytes) => break bytes,
                Err(e) => match retrier.next(&e.answer()) {
                    Next::Retry(pause) => {
                        tracing::debug!("{e}; retrying in {:.1}s", pause.as_secs_f64());
                        tokio::time::sleep(pause).await;
                    }
                    Next::Split | Next::GiveUp(_) => return Err(e.into()),
                },
            }
        };
        serde_json::from_slice(&bytes).with_context(|| format!("{path} did not answer JSON"))
    }

    /// Sends a bulk body whose actions are idempotent (index actions with
    /// fixed ids, partial updates that set a value), so that sending it
    /// again is harmless: retried under `policy` on no answer, 429 and 5xx,
    /// whether the whole request or only some of its items failed so (the
    /// whole body goes again); any other refusal is an error. `what` names
    /// the documents in messages; with `refresh`, the writes are searchable
    /// when it returns. Returns each item's `result` (`created`, `updated`,
    /// `noop`…), in order.
    pub async fn bulk_idempotent(&self, body: Bytes, policy: Policy, what: &str, refresh: bool) -> Result<Vec<String>> {
        let path = format!(
            "/_bulk?filter_path=errors,items.*.status,items.*.result,items.*.error{}",
            if refresh { "&refresh=true" } else { "" }
        );
        let mut retrier = Retrier::new(policy);
        loop {
            let (failure, pause) = match self.send(Method::POST, &path, Some(body.clone())).await {
                Ok(answer) => {
                    let answer: Value = serde_json::from_slice(&answer)
                        .with_context(|| format!("writing {what}: the answer is not JSON"))?;
                    let (Some(errors), Some(items)) = (answer["errors"].as_bool(), answer["items"].as_array()) else {
                        bail!("writing {what}: the answer is not a bulk answer: {answer}");
                    };
                    let item = |item: &Value| item.as_object().and_then(|o| o.values().next()).cloned();
                    if !errors {
                        return Ok(items
                            .iter()
                            .map(|i| {
                                item(i)
                                    .and_then(|i| i["result"].as_str().map(str::to_string))
                                    .unwrap_or_default()
                            })
                            .collect());
                    }
                    let statuses: Vec<u64> = items
                        .iter()
                        .filter_map(|i| item(i)?["status"].as_u64())
                        .filter(|s| *s >= 300)
                        .collect();
                    let transient = |s: &u64| u16::try_from(*s).is_ok_and(|s| Answer::status(s).is_transient());
                    if statuses.is_empty() || !statuses.iter().all(transient) {
                        bail!("the cluster refused {what}: {}", answer["items"]);
                    }
                    // Only busy or failing shards: the whole body again (the actions are idempotent).
                    let failure = format!("{} items refused for now (status {:?})", statuses.len(), statuses[0]);
                    (failure, retrier.again())
                }
                Err(e) => match retrier.next(&e.answer()) {
                    Next::Retry(pause) => (e.to_string(), Some(pause)),
                    Next::GiveUp(Why::Exhausted) => (e.to_string(), None),
                    _ => return Err(anyhow::Error::new(e).context(format!("cannot write {what}"))),
                },
            };
            let Some(pause) = pause else {
                bail!("cannot write {what} after {} attempts: {failure}", retrier.attempts());
            };
            tracing::debug!("writing {what} failed ({failure}); trying again");
            tokio::time::sleep(pause).await;
        }
    }

    /// Makes recent writes visible to searches (used at the end of a run),
    /// retried like other control requests.
    pub async fn refresh(&self, target: &str) -> Result<()> {
        if self.serverless {
            // Serverless refreshes by itself (every 10 to 30 s) and refuses `_refresh`.
            tracing::debug!("not refreshing {target}: OpenSearch Serverless makes writes visible by itself");
            return Ok(());
        }
        self.json(Method::POST, &format!("/{target}/_refresh"), None)
            .await
            .with_context(|| format!("cannot refresh {target}"))?;
        Ok(())
    }
}

/// Whether `GET /` answered as OpenSearch does.
fn is_opensearch(info: &Value) -> bool {
    info["version"]["distribution"].as_str() == Some("opensearch")
}
