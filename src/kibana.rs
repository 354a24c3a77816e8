//! The HTTP connection to Kibana or OpenSearch Dashboards: the saved
//! objects import API, and the reading of its answers.
//!
//! One request matters: `POST [/s/<space>]/api/saved_objects/_import?overwrite=true`
//! with the NDJSON as the multipart field `file` (a name ending in `.ndjson`)
//! and both `kbn-xsrf` (Kibana) and `osd-xsrf` (OpenSearch Dashboards), so
//! the same request works on either product. Credentials and TLS come from
//! the same options as the cluster's, through [`crate::http`] (SigV4 too,
//! for OpenSearch Dashboards on Amazon OpenSearch Service).
//!
//! The import goes through the retry policy of every call
//! ([`Policy::KIBANA`]: one attempt, so a failing server is reported at once).
//!
//! Invariant, as in [`crate::http`]: no credential appears in a
//! message; URLs are shown without their user info.

use anyhow::Result;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::http::explain::truncate;
use crate::http::{Client, Method, SendError, ServerConfig};
use crate::retry::{Next, Policy, Retrier};

/// The name the NDJSON is uploaded under (the API wants `.ndjson`).
pub const FILE_NAME: &str = "ctindex.ndjson";

const IMPORT_PATH: &str = "/api/saved_objects/_import?overwrite=true";

/// Which product serves the dashboards (`--flavor`). The import request is
/// the same for both: it carries the XSRF header of each, and the saved
/// objects import into both. What the flavor changes is checked before the
/// request (`--space` is refused for OpenSearch Dashboards, which has no
/// spaces) and the product named in messages when the server does not name
/// itself (Kibana sends `kbn-name`, OpenSearch Dashboards `osd-name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Product {
    /// Kibana 8.x (Elasticsearch); --space selects a space.
    Kibana,
    /// OpenSearch Dashboards 2.x; no spaces, so no --space.
    OpensearchDashboards,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Kibana => "Kibana",
            Product::OpensearchDashboards => "OpenSearch Dashboards",
        }
    }

    /// The value of `--flavor` that names the product.
    pub fn flag(self) -> &'static str {
        match self {
            Product::Kibana => "kibana",
            Product::OpensearchDashboards => "opensearch-dashboards",
        }
    }
}

/// A failed import request (not a per-object failure: see [`ImportAnswer`]).
#[derive(Debug, thiserror::Error)]
pub enum KibanaError {
    /// The request got no answer (refused, reset, timed out, TLS failure).
    #[error("no answer from {url}: {message}")]
    Connection { url: String, message: String },
    /// The server answered with an error status.
    #[error("POST {path} answered {status}: {message}{hint}")]
    Status {
        path: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    /// A 2xx answer that is not an import result.
    #[error("POST {path} answered {status}, but not with an import result: {body}")]
    Answer { path: String, status: u16, body: String },
}

/// The import API's answer: `{"success", "successCount", "errors": […]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportAnswer {
    pub success: bool,
    pub success_count: u64,
    pub errors: Vec<ImportFailure>,
    /// Kibana 8 may add warnings (e.g. an action to take after import).
    pub warnings: Vec<String>,
}

/// One object the server did not import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    /// The object's type, e.g. `dashboard`.
    pub kind: String,
    pub id: String,
    pub title: Option<String>,
    /// The server's error type: `conflict`, `ambiguous_conflict`,
    /// `missing_references`, `unsupported_type` or `unknown`.
    pub reason: String,
    /// What the server said beyond the type, made readable.
    pub detail: String,
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.id)?;
        if let Some(title) = &self.title {
            write!(f, " \"{title}\"")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Reads the body of a 2xx import answer.
pub fn read_import_answer(body: &[u8]) -> Result<ImportAnswer, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let Some(success) = value.get("success").and_then(Value::as_bool) else {
        return Err("no \"success\" field".into());
    };
    let success_count = value.get("successCount").and_then(Value::as_u64).unwrap_or(0);
    let errors = value
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(read_failure)
        .collect();
    let warnings = value
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            w.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| w.to_string(), String::from)
        })
        .collect();
    Ok(ImportAnswer {
        success,
        success_count,
        errors,
        warnings,
    })
}

fn read_failure(error: &Value) -> ImportFailure {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let cause = error.get("error").cloned().unwrap_or(Value::Null);
    let reason = text(&cause, "type").unwrap_or_else(|| "unknown".into());
    let detail = match reason.as_str() {
        "conflict" => match text(&cause, "destinationId") {
            Some(other) => format!("conflict with the existing object {other} (not overwritten)"),
            None => "conflict: an object with this id exists and was not overwritten".into(),
        },
        "ambiguous_conflict" => {
            let n = cause.get("destinations").and_then(Value::as_array).map_or(0, Vec::len);
            format!("ambiguous conflict: {n} existing objects match (resolve it in Stack Management › Saved objects)")
        }
        "missing_references" => {
            let missing: Vec<String> = cause
                .get("references")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| {
                    format!(
                        "{}:{}",
                        text(r, "type").unwrap_or_default(),
                        text(r, "id").unwrap_or_default()
                    )
                })
                .collect();
            format!("missing references: {}", missing.join(", "))
        }
        "unsupported_type" => "unsupported type (this server does not know the type)".into(),
        _ => {
            let message = text(&cause, "message").unwrap_or_else(|| cause.to_string());
            match cause.get("statusCode").and_then(Value::as_u64) {
                Some(code) => format!("{reason} error ({code}): {message}"),
                None => format!("{reason} error: {message}"),
            }
        }
    };
    ImportFailure {
        kind: text(error, "type").unwrap_or_else(|| "?".into()),
        id: text(error, "id").unwrap_or_else(|| "?".into()),
        title: text(error, "title").or_else(|| error.get("meta").and_then(|m| text(m, "title"))),
        reason,
        detail,
    }
}

/// An import that got an answer: what it says, and which product said it
/// (from the `kbn-name` / `osd-name` headers both send).
#[derive(Debug, Clone)]
pub struct Imported {
    pub answer: ImportAnswer,
    pub product: Option<Product>,
}

/// A client for one Kibana or OpenSearch Dashboards.
pub struct Kibana {
    client: Client,
}

impl std::fmt::Debug for Kibana {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kibana({})", self.client.url())
    }
}

/// The multipart boundary: a fixed string that cannot occur in the NDJSON,
/// whose lines are JSON objects (they never start with `--`).
const BOUNDARY: &str = "ctindex-saved-objects-6b1f0a9e";

/// The import request's body: one multipart field `file` holding the NDJSON.
/// Built whole, so that a SigV4 signature covers it.
fn multipart_body(ndjson: &str) -> Bytes {
    let mut body = String::with_capacity(ndjson.len() + 256);
    body.push_str(&format!("--{BOUNDARY}\r\n"));
    body.push_str(&format!(
        "Content-Disposition: form-data; name=\"file\"; filename=\"{FILE_NAME}\"\r\n"
    ));
    body.push_str("Content-Type: application/ndjson\r\n\r\n");
    body.push_str(ndjson);
    body.push_str(&format!("\r\n--{BOUNDARY}--\r\n"));
    Bytes::from(body)
}

impl Kibana {
    /// Builds the HTTP client (credentials, CA, --insecure, timeout, SigV4).
    pub async fn new(config: &ServerConfig) -> Result<Kibana> {
        Ok(Kibana {
            client: Client::new(config).await?,
        })
    }

    /// The URL shown to users (no credentials).
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// The import path, within a Kibana space when one is given.
    pub fn import_path(space: Option<&str>) -> String {
        match space {
            Some(space) if space != "default" => format!("/s/{space}{IMPORT_PATH}"),
            _ => IMPORT_PATH.to_string(),
        }
    }

    /// Sends the NDJSON to the saved objects import API (overwriting objects
    /// with the same ids).
    pub async fn import(&self, space: Option<&str>, ndjson: String) -> Result<Imported, KibanaError> {
        let path = Kibana::import_path(space);
        let mut headers = HeaderMap::new();
        headers.insert("kbn-xsrf", HeaderValue::from_static("ctindex"));
        headers.insert("osd-xsrf", HeaderValue::from_static("ctindex"));
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            headers.insert(CONTENT_TYPE, value);
        }
        let body = multipart_body(&ndjson);
        let mut retrier = Retrier::new(Policy::KIBANA);
        let answer = loop {
            let answer = self
                .client
                .send(Method::POST, &path, headers.clone(), Some(body.clone()), None)
                .await;
            if let Err(e) = &answer
                && let Next::Retry(pause) = retrier.next(&e.answer())
            {
                tracing::debug!("{e}; retrying in {:.1}s", pause.as_secs_f64());
                tokio::time::sleep(pause).await;
                continue;
            }
            break answer;
        };
        let (status, headers, body) = match answer {
            Ok(response) => (response.status, response.headers, response.body),
            Err(SendError::Connection { url, message, .. }) => {
                return Err(KibanaError::Connection { url, message });
            }
            Err(SendError::Status { status, body, .. }) => {
                return Err(KibanaError::Status {
                    path,
                    status,
                    message: error_message(body.as_bytes()),
                    hint: hint(status),
                });
            }
        };
        let product = if headers.contains_key("osd-name") {
            Some(Product::OpensearchDashboards)
        } else if headers.contains_key("kbn-name") {
            Some(Product::Kibana)
        } else {
            None
        };
        match read_import_answer(&body) {
            Ok(answer) => Ok(Imported { answer, product }),
            Err(why) => Err(KibanaError::Answer {
                path,
                status,
                body: format!("{why}: {}", truncate(&String::from_utf8_lossy(&body), 300)),
            }),
        }
    }
}

/// The readable part of an error answer: Kibana's `message`, an
/// Elasticsearch `error.reason` (when pointed at the cluster by mistake), or
/// the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = value.get("message").and_then(Value::as_str) {
            return truncate(message, 500);
        }
        if let Some(reason) = value.pointer("/error/reason").and_then(Value::as_str) {
            return truncate(reason, 500);
        }
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return truncate(error, 500);
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(empty answer)".into()
    } else {
        truncate(text.trim(), 500)
    }
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (check --user/--password, --api-key or --bearer-token)",
        403 => {
            " (the credentials may not write saved objects: they need the All privilege on Dashboards, Visualize and Discover, or Saved Objects Management, in the space)"
        }
        404 => {
            " (is --kibana-url the Kibana or OpenSearch Dashboards URL, not the cluster's? with --space: does the space exist?)"
        }
        400 | 405 => " (is --kibana-url the Kibana or OpenSearch Dashboards URL, not the cluster's?)",
        413 => " (the server's maximum payload is too small: raise server.maxPayload)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_flags_are_the_values_clap_accepts() {
        use clap::ValueEnum;
        for product in Product::value_variants() {
            let value = product.to_possible_value().unwrap();
            assert_eq!(value.get_name(), product.flag());
        }
    }

    #[test]
    fn a_clean_import() {
        let answer = read_import_answer(br#"{"success":true,"successCount":22,"successResults":[]}"#).unwrap();
        assert!(answer.success);
        assert_eq!(answer.success_count, 22);
        assert!(answer.errors.is_empty());
    }

    #[test]
    fn per_object_errors_are_made_readable() {
        let body = br#"{"success":false,"successCount":20,"errors":[
            {"id":"d1","type":"dashboard","title":"[CloudTrail] Security","meta":{"title":"[CloudTrail] Security"},"error":{"type":"conflict"}},
            {"id":"v1","type":"visualization","meta":{"title":"Pie"},"error":{"type":"missing_references","references":[{"type":"index-pattern","id":"ip1"},{"type":"search","id":"s1"}]}},
            {"id":"x","type":"lens","error":{"type":"unsupported_type"}},
            {"id":"y","type":"search","error":{"type":"unknown","message":"boom","statusCode":500}},
            {"id":"z","type":"search","error":{"type":"ambiguous_conflict","destinations":[{"id":"a"},{"id":"b"}]}}
        ],"warnings":[{"type":"simple","message":"check the data view"}]}"#;
        let answer = read_import_answer(body).unwrap();
        assert!(!answer.success);
        assert_eq!(answer.success_count, 20);
        let shown: Vec<String> = answer.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "dashboard d1 \"[CloudTrail] Security\": conflict: an object with this id exists and was not overwritten",
                "visualization v1 \"Pie\": missing references: index-pattern:ip1, search:s1",
                "lens x: unsupported type (this server does not know the type)",
                "search y: unknown error (500): boom",
                "search z: ambiguous conflict: 2 existing objects match (resolve it in Stack Management › Saved objects)",
            ]
        );
        assert_eq!(answer.warnings, ["check the data view"]);
    }

    #[test]
    fn answers_that_are_not_import_results() {
        assert!(read_import_answer(b"<html>").is_err());
        assert!(read_import_answer(br#"{"acknowledged":true}"#).is_err());
    }

    #[test]
    fn error_messages_and_paths() {
        assert_eq!(
            error_message(
                br#"{"statusCode":415,"error":"Unsupported Media Type","message":"Unsupported file extension"}"#
            ),
            "Unsupported file extension"
        );
        assert_eq!(
            error_message(br#"{"error":{"type":"x","reason":"no handler found"},"status":400}"#),
            "no handler found"
        );
        assert_eq!(
            error_message(br#"{"error":"no handler found for uri [/api/saved_objects/_import]"}"#),
            "no handler found for uri [/api/saved_objects/_import]"
        );
        assert_eq!(error_message(b""), "(empty answer)");
        assert_eq!(Kibana::import_path(None), "/api/saved_objects/_import?overwrite=true");
        assert_eq!(
            Kibana::import_path(Some("default")),
            "/api/saved_objects/_import?overwrite=true"
        );
        assert_eq!(
            Kibana::import_path(Some("sec-ops")),
            "/s/sec-ops/api/saved_objects/_import?overwrite=true"
        );
    }
}
