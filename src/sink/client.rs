//! The HTTP connection to Elasticsearch or OpenSearch.
//!
//! Owns building the transport of the official `elasticsearch` client (auth,
//! TLS, timeouts), finding out which product and version answers, and raw
//! requests. Requests are sent as plain `application/json` through the
//! client's transport, which both Elasticsearch and OpenSearch accept.
//!
//! Invariant: no credential ever appears in a `Debug` or `Display` of
//! anything here; the URL shown to users has its user info removed.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_ENCODING, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::{Method, Url};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

/// Credentials for the cluster. `Debug` prints only which kind is set.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    /// An API key, as the base64 `id:key` that Kibana and the API give.
    ApiKey(String),
    Bearer(String),
    /// A PEM file's bytes: client certificate and private key (PKI authentication).
    ClientCert(Vec<u8>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic { .. } => "Basic(<redacted>)",
            Auth::ApiKey(_) => "ApiKey(<redacted>)",
            Auth::Bearer(_) => "Bearer(<redacted>)",
            Auth::ClientCert(_) => "ClientCert(<redacted>)",
        })
    }
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub url: Url,
    pub auth: Auth,
    /// PEM file of a CA to trust besides the system roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Skip TLS verification (only when asked for with --insecure).
    pub insecure: bool,
    pub timeout: Duration,
    /// Gzip request bodies (`--compress`).
    pub compress: bool,
}

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

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request did not get an answer (refused, reset, timed out).
    #[error("no answer from {url}: {message}")]
    Connection { url: String, message: String },
    /// The cluster answered with an error status.
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    transport: Transport,
    url: String,
    pub flavor: Flavor,
    pub version: String,
    timeout: Duration,
    compress: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({} {} at {})", self.flavor.name(), self.version, self.url)
    }
}

/// The URL without user info, for messages.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string().trim_end_matches('/').to_string()
}

/// Removes `user:password@` from the URL and returns it as basic
/// credentials (explicit options win over it; see the callers).
pub fn take_user_info(url: &mut Url) -> Option<Auth> {
    if url.username().is_empty() {
        return None;
    }
    let user = percent_decode(url.username());
    let password = percent_decode(url.password().unwrap_or(""));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(Auth::Basic { user, password })
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
    /// Builds the transport and asks the cluster who it is.
    pub async fn connect(config: &ClusterConfig) -> Result<Cluster> {
        let shown = display_url(&config.url);
        let mut url = config.url.clone();
        let mut auth = config.auth.clone();
        if let (Some(found), Auth::None) = (take_user_info(&mut url), &auth) {
            auth = found;
        }
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .enable_meta_header(false)
            .timeout(config.timeout);
        builder = match auth {
            Auth::None => builder,
            Auth::Basic { user, password } => builder.auth(Credentials::Basic(user, password)),
            Auth::ApiKey(key) => builder.auth(Credentials::EncodedApiKey(key)),
            Auth::Bearer(token) => builder.auth(Credentials::Bearer(token)),
            Auth::ClientCert(pem) => builder.auth(Credentials::Certificate(ClientCertificate::Pem(pem))),
        };
        if config.insecure {
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("cannot read the CA file {}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot set up the HTTP client")?;
        let mut cluster = Cluster {
            transport,
            url: shown.clone(),
            flavor: Flavor::Elasticsearch,
            version: String::new(),
            timeout: config.timeout,
            compress: config.compress,
        };
        let reach = || format!("cannot reach the cluster at {shown} (check --url, and the cluster's state)");
        match cluster.json_once(Method::Get, "/", None).await {
            Ok(info) => {
                let version = &info["version"];
                cluster.version = version["number"].as_str().unwrap_or("unknown").to_string();
                if version["distribution"].as_str() == Some("opensearch") {
                    cluster.flavor = Flavor::OpenSearch;
                } else if info["tagline"].as_str().is_none() {
                    bail!(
                        "{shown} answered, but not like Elasticsearch or OpenSearch: {}",
                        truncate(&info.to_string(), 200)
                    );
                }
            }
            // Minimal distributions (the integ-test zips) do not serve `GET /`: ask the node itself.
            Err(e)
                if matches!(
                    e.downcast_ref::<SendError>(),
                    Some(SendError::Status { status: 404 | 405, .. })
                ) =>
            {
                let nodes = cluster
                    .json_once(Method::Get, "/_nodes/_local?filter_path=nodes.*.version", None)
                    .await
                    .with_context(reach)?;
                let version = nodes["nodes"]
                    .as_object()
                    .and_then(|n| n.values().next())
                    .map(|n| &n["version"]);
                cluster.version = version.and_then(Value::as_str).unwrap_or("unknown").to_string();
            }
            Err(e) => return Err(e.context(reach())),
        }
        Ok(cluster)
    }

    pub fn url(&self) -> &str {
        &self.url
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
        let connection_error = |e: &dyn std::error::Error| SendError::Connection {
            url: self.url.clone(),
            message: error_chain(e),
        };
        let mut headers = HeaderMap::new();
        let body = match body {
            Some(body) if self.compress && body.len() >= COMPRESS_FROM => {
                let compressed = gzip(body).await;
                if compressed.encoded {
                    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                Some(compressed.bytes)
            }
            body => body,
        };
        let response = self
            .transport
            .send(method, path, headers, None::<&()>, body, Some(timeout))
            .await
            .map_err(|e| connection_error(&e))?;
        let status = response.status_code().as_u16();
        let bytes = response.bytes().await.map_err(|e| connection_error(&e))?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(SendError::Status {
                method: format!("{method:?}").to_uppercase(),
                path: path.to_string(),
                status,
                body: truncate(&String::from_utf8_lossy(&bytes), 1000),
            })
        }
    }

    /// Sends a request and parses the answer as JSON.
    ///
    /// Control requests (templates, state, leases) are retried a few times
    /// when the cluster is busy or briefly unreachable (429, 502-504, no answer).
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let mut backoff = super::retry::Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        let bytes = loop {
            match self.send(method, path, body.clone()).await {
                Ok(bytes) => break bytes,
                Err(e) if backoff.attempts() < 5 && is_transient(&e) => {
                    let delay = backoff.next_delay();
                    tracing::debug!("{e}; retrying in {:.1}s", delay.as_secs_f64());
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        serde_json::from_slice(&bytes).with_context(|| format!("{path} did not answer JSON"))
    }

    /// Sends a request once and parses the answer as JSON (for fast failures).
    async fn json_once(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let bytes = self
            .send(method, path, body.map(|b| Bytes::from(b.to_string())))
            .await?;
        serde_json::from_slice(&bytes).with_context(|| format!("{path} did not answer JSON"))
    }

    /// Makes recent writes visible to searches (used at the end of a run),
    /// retried like other control requests.
    pub async fn refresh(&self, target: &str) -> Result<()> {
        self.json(Method::Post, &format!("/{target}/_refresh"), None)
            .await
            .with_context(|| format!("cannot refresh {target}"))?;
        Ok(())
    }
}

/// Whether a failed request is worth another try.
fn is_transient(e: &SendError) -> bool {
    match e {
        SendError::Connection { .. } => true,
        SendError::Status { status, .. } => matches!(status, 429 | 502..=504),
    }
}

/// The error and its sources, joined: reqwest hides the useful part below.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_have_no_credentials() {
        let url = Url::parse("https://elastic:s3cr%40t@example.com:9243/").unwrap();
        assert_eq!(display_url(&url), "https://example.com:9243");
        assert_eq!(percent_decode("s3cr%40t"), "s3cr@t");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let shown = format!(
            "{:?}",
            Auth::Basic {
                user: "u".into(),
                password: "hunter2".into()
            }
        );
        assert!(!shown.contains("hunter2"));
        assert!(!format!("{:?}", Auth::ApiKey("k3y".into())).contains("k3y"));
    }
}
