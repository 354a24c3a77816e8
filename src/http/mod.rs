//! HTTP to the servers ctindex talks to: the cluster (Elasticsearch or
//! OpenSearch, see [`crate::sink::client`]) and Kibana / OpenSearch
//! Dashboards ([`crate::kibana`]).
//!
//! Owns what both share: credentials ([`Auth`]), TLS (the system roots plus
//! `--ca-cert`, client certificates, `--insecure`), AWS SigV4 signing
//! ([`sigv4`]), and turning failures into one line that says what to do
//! ([`explain`]).
//!
//! Invariant: no credential ever appears in a `Debug` or `Display` of
//! anything here: secrets are [`SecretString`]s, header values carrying them
//! are marked sensitive, and URLs are shown without their user info.

pub mod explain;
pub mod sigv4;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
// Bodies are gzipped by the caller when asked (`--compress`), before
// signing, so that a SigV4 signature covers the bytes sent.
pub use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::retry::{Answer, Failure};

/// Credentials for a server. `Debug` prints only which kind is set.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: SecretString,
    },
    /// An API key, as the base64 `id:key` that Kibana and the API give.
    ApiKey(SecretString),
    Bearer(SecretString),
    /// A PEM file's bytes: client certificate and private key (PKI authentication).
    ClientCert(SecretSlice<u8>),
    /// AWS Signature V4 with the AWS credential chain (Amazon OpenSearch
    /// Service and Serverless).
    Aws(sigv4::AwsAuth),
}

impl Auth {
    /// What the credentials are, for messages: "the API key (--api-key)".
    pub fn describe(&self) -> String {
        match self {
            Auth::None => {
                "no credentials (none of --user, --api-key, --bearer-token, --client-cert, --aws-sigv4 given)".into()
            }
            Auth::Basic { user, .. } => format!("the user '{user}' and its password (--user/--password)"),
            Auth::ApiKey(_) => "the API key (--api-key)".into(),
            Auth::Bearer(_) => "the bearer token (--bearer-token)".into(),
            Auth::ClientCert(_) => "the client certificate (--client-cert)".into(),
            Auth::Aws(aws) => format!(
                "an AWS SigV4 signature for service '{}' (--aws-sigv4)",
                aws.service.name()
            ),
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Auth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::ClientCert(_) => f.write_str("ClientCert(<redacted>)"),
            Auth::Aws(aws) => write!(f, "{aws:?}"),
        }
    }
}

/// How to reach a server: the cluster, or Kibana / OpenSearch Dashboards.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub url: Url,
    pub auth: Auth,
    /// PEM file of a CA to trust besides the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS verification (only when asked for with --insecure).
    pub insecure: bool,
    pub timeout: Duration,
    /// Gzip request bodies (`--compress`; the cluster only).
    pub compress: bool,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request did not get an answer (refused, reset, timed out, TLS).
    #[error("no answer from {url}: {message}")]
    Connection {
        url: String,
        message: String,
        /// How it failed, for the retry policy.
        failure: Failure,
    },
    /// The server answered with an error status. `Display` reads the
    /// server's reason out of the body and, for 401 and 403, says which
    /// credentials were refused and what they lack (see [`explain::status`]).
    #[error("{}", explain::status(self))]
    Status {
        method: String,
        path: String,
        status: u16,
        body: String,
        /// The credentials used, as [`Auth::describe`] gives them.
        auth: Arc<str>,
        /// The server's `Retry-After` (seconds), if it sent one.
        retry_after: Option<Duration>,
    },
}

impl SendError {
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Status { status, .. } => Some(*status),
            SendError::Connection { .. } => None,
        }
    }

    /// The failure as the retry policy reads it.
    pub fn answer(&self) -> Answer {
        match self {
            SendError::Status {
                status, retry_after, ..
            } => Answer::Status {
                status: *status,
                retry_after: *retry_after,
            },
            SendError::Connection { failure, .. } => Answer::Failed(*failure),
        }
    }
}

/// An answer with a 2xx status.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How requests are authorized, ready to use.
enum Authorizer {
    /// Nothing, or a client certificate (which lives in the TLS client).
    None,
    /// A fixed `Authorization` header (marked sensitive).
    Header(HeaderValue),
    Aws(sigv4::Signer),
}

/// A connection to one server: the HTTP client and what every request gets.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The URL without user info and without a trailing slash; it may carry
    /// a base path (`/kibana`, `/_dashboards`).
    base: String,
    authorizer: Arc<Authorizer>,
    auth: Arc<str>,
    timeout: Duration,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.base)
    }
}

/// The URL with any password replaced, for messages.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        // Without `//`, what precedes `@` is no user info to the parser
        // (`elastic:pw@host` has the scheme `elastic`): cut it below.
        Ok(url) if !url.cannot_be_a_base() => display_url(&url),
        _ => match text.rfind('@') {
            Some(at) => format!("***{}", &text[at..]),
            None => text.to_string(),
        },
    }
}

/// The URL without user info, for messages.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string().trim_end_matches('/').to_string()
}

/// Whether the URL carries a password (`https://user:password@host`).
pub fn has_password(url: &Url) -> bool {
    url.password().is_some()
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
    Some(Auth::Basic {
        user,
        password: SecretString::from(password),
    })
}

impl Client {
    /// Builds the HTTP client: credentials (from the options, else the
    /// URL's user info), the CA, client certificate, `--insecure`, timeout;
    /// for SigV4, resolves the AWS credentials now, so that a missing one
    /// fails before any work.
    pub async fn new(config: &ServerConfig) -> Result<Client> {
        let mut url = config.url.clone();
        let mut auth = config.auth.clone();
        if let (Some(found), Auth::None) = (take_user_info(&mut url), &auth) {
            auth = found;
        }
        let base = display_url(&url);
        // Read off the async threads, as every file is.
        let ca = match (&config.ca_cert, config.insecure) {
            (Some(path), false) => Some(
                tokio::fs::read(path)
                    .await
                    .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?,
            ),
            _ => None,
        };
        let http = http_client(config, &auth, ca.as_deref(), config.insecure)?;
        let authorizer = match &auth {
            Auth::None | Auth::ClientCert(_) => Authorizer::None,
            Auth::Basic { user, password } => {
                let token = base64_encode(format!("{user}:{}", password.expose_secret()).as_bytes());
                Authorizer::Header(sensitive(&format!("Basic {token}"))?)
            }
            Auth::ApiKey(key) => Authorizer::Header(sensitive(&format!("ApiKey {}", key.expose_secret()))?),
            Auth::Bearer(token) => Authorizer::Header(sensitive(&format!("Bearer {}", token.expose_secret()))?),
            Auth::Aws(aws) => Authorizer::Aws(sigv4::Signer::new(aws, &url).await?),
        };
        Ok(Client {
            http,
            base,
            authorizer: Arc::new(authorizer),
            auth: Arc::from(auth.describe()),
            timeout: config.timeout,
            config: Arc::new(ServerConfig {
                url,
                auth,
                ..config.clone()
            }),
        })
    }

    /// The URL shown to users (no credentials).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The credentials used, for messages.
    pub fn auth_description(&self) -> &str {
        &self.auth
    }

    /// Sends one request to `path` (below the base URL, with its query);
    /// a non-2xx answer is an error carrying the body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<Response, SendError> {
        let url = format!("{}{path}", self.base);
        let mut builder = self
            .http
            .request(method.clone(), &url)
            .headers(headers)
            .timeout(timeout.unwrap_or(self.timeout));
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let mut request = builder.build().map_err(|e| self.connection_error(&e, false))?;
        match self.authorizer.as_ref() {
            Authorizer::None => {}
            Authorizer::Header(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
            Authorizer::Aws(signer) => signer
                .sign(&mut request)
                .await
                .map_err(|message| SendError::Connection {
                    url: self.base.clone(),
                    message,
                    failure: Failure::Other,
                })?,
        }
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.connection_error(&e, false))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.connection_error(&e, true))?;
        if (200..300).contains(&status) {
            Ok(Response {
                status,
                headers,
                body: bytes,
            })
        } else {
            Err(SendError::Status {
                method: method.as_str().to_string(),
                path: path.to_string(),
                status,
                // Long enough for the nested causes of a refused template.
                body: explain::truncate(&String::from_utf8_lossy(&bytes), 4000),
                auth: self.auth.clone(),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::retry::parse_retry_after),
            })
        }
    }

    /// `in_body`: the error came while reading the answer's body.
    fn connection_error(&self, e: &reqwest::Error, in_body: bool) -> SendError {
        SendError::Connection {
            url: self.base.clone(),
            message: explain::connection(e, &self.config.url, self.config.ca_cert.is_some()),
            failure: failure(e, in_body),
        }
    }

    /// After a request to an `http://` URL got no answer: whether the port
    /// speaks TLS instead (the servers close plain-HTTP connections on an
    /// HTTPS port without a word). Costs one short request.
    pub async fn speaks_tls(&self) -> bool {
        let mut url = self.config.url.clone();
        if url.scheme() != "http" || url.set_scheme("https").is_err() {
            return false;
        }
        let Ok(client) = http_client(&self.config, &Auth::None, None, true) else {
            return false;
        };
        client.get(url).timeout(Duration::from_secs(5)).send().await.is_ok()
    }
}

/// How a request failed to get an answer, from the error and its causes.
fn failure(e: &reqwest::Error, in_body: bool) -> Failure {
    if e.is_timeout() {
        return Failure::TimedOut;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Failure::Refused,
                std::io::ErrorKind::TimedOut => return Failure::TimedOut,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                    if !in_body =>
                {
                    return Failure::Reset;
                }
                _ => {}
            }
        }
        cause = error.source();
    }
    if in_body || e.is_body() || e.is_decode() {
        Failure::CutOff
    } else if e.is_request() && !e.is_connect() {
        // hyper's "connection closed before message completed" and kin.
        Failure::Reset
    } else {
        Failure::Other
    }
}

/// A reqwest client with the TLS settings of `config`: verification off
/// when `insecure`, else `ca` (the PEM bytes of `--ca-cert`) trusted
/// besides the system roots.
fn http_client(config: &ServerConfig, auth: &Auth, ca: Option<&[u8]>, insecure: bool) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(config.timeout)
        .connect_timeout(Duration::from_secs(10).min(config.timeout))
        .user_agent(concat!("ctindex/", env!("CARGO_PKG_VERSION")));
    if insecure {
        builder = builder.danger_accept_invalid_certs(true);
    } else if let Some(pem) = ca {
        let path = config.ca_cert.as_deref().unwrap_or(std::path::Path::new("-"));
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Auth::ClientCert(pem) = auth {
        let identity = reqwest::Identity::from_pem(pem.expose_secret())
            .context("--client-cert: the file must hold a PEM certificate and its private key")?;
        builder = builder.identity(identity);
    }
    builder.build().context("cannot set up the HTTP client")
}

/// A header value that is never printed (reqwest and hyper honour the flag).
fn sensitive(text: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text).context("the credential holds characters not allowed in a header")?;
    value.set_sensitive(true);
    Ok(value)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Elastic Cloud ids: `name:base64("<domain>$<es-uuid>$<kibana-uuid>")`,
/// the domain possibly with `:port`. Returns the cluster's URL.
pub fn cloud_id_url(id: &str) -> Result<Url, String> {
    use base64::Engine;
    let (_, data) = id.split_once(':').ok_or("expected NAME:BASE64")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(data.trim()))
        .map_err(|e| format!("the part after ':' is not base64 ({e})"))?;
    let text = String::from_utf8(decoded).map_err(|_| "the decoded id is not text")?;
    let mut parts = text.split('$');
    let domain = parts.next().filter(|d| !d.is_empty()).ok_or("no domain in the id")?;
    let es = parts
        .next()
        .filter(|e| !e.is_empty())
        .ok_or("no Elasticsearch id in the id")?;
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, port),
        _ => (domain, "443"),
    };
    Url::parse(&format!("https://{es}.{host}:{port}")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_have_no_credentials() {
        let url = Url::parse("https://elastic:s3cr%40t@example.com:9243/").unwrap();
        assert_eq!(display_url(&url), "https://example.com:9243");
        assert!(has_password(&url));
        assert_eq!(percent_decode("s3cr%40t"), "s3cr@t");
        assert_eq!(percent_decode("100%"), "100%");
        let mut url = url;
        let Some(Auth::Basic { user, password }) = take_user_info(&mut url) else {
            panic!("no user info taken")
        };
        assert_eq!((user.as_str(), password.expose_secret()), ("elastic", "s3cr@t"));
        assert_eq!(url.as_str(), "https://example.com:9243/");
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let basic = Auth::Basic {
            user: "u".into(),
            password: SecretString::from("hunter2"),
        };
        for auth in [
            basic,
            Auth::ApiKey(SecretString::from("k3y")),
            Auth::Bearer(SecretString::from("t0ken")),
            Auth::ClientCert(SecretSlice::from(b"-----BEGIN PRIVATE KEY-----".to_vec())),
        ] {
            let shown = format!("{auth:?} {}", auth.describe());
            for secret in ["hunter2", "k3y", "t0ken", "PRIVATE"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        let value = sensitive("Basic aHVudGVyMg==").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("aHVudGVyMg"));
    }

    #[test]
    fn cloud_ids() {
        // name:base64("us-east-1.aws.found.io$es-uuid$kibana-uuid")
        let url = cloud_id_url("prod:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRlcy11dWlkJGtpYmFuYS11dWlk").unwrap();
        assert_eq!(url.as_str(), "https://es-uuid.us-east-1.aws.found.io/");
        // With a port: base64("eu-west-1.aws.found.io:9243$abc$def")
        let url = cloud_id_url("x:ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbzo5MjQzJGFiYyRkZWY=").unwrap();
        assert_eq!(url.as_str(), "https://abc.eu-west-1.aws.found.io:9243/");
        for bad in ["garbage", "x:!!!", "x:JGFiYw==" /* "$abc" */] {
            assert!(cloud_id_url(bad).is_err(), "{bad}");
        }
    }
}
