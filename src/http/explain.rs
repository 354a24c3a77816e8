//! One line for each way a request can fail, saying what to do: TLS
//! problems name `--ca-cert`, `--insecure` or the scheme to use; 401 names
//! the credentials refused; 403 names the operation refused and what grants
//! it, read from the server's own reason.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{SendError, Url};

/// The `Display` of [`SendError::Status`].
pub fn status(e: &SendError) -> String {
    let SendError::Status {
        method,
        path,
        status,
        body,
        auth,
        ..
    } = e
    else {
        return e.to_string();
    };
    let reason = reason(body);
    match status {
        401 => format!(
            "{method} {path}: the server refused {auth} (401 Unauthorized){}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        403 => {
            let why = match reason {
                Some(reason) => reason,
                // A HEAD answer has no body to say why.
                None if method == "HEAD" => "the server gives no reason to a HEAD request; checking that an index \
                    exists needs view_index_metadata (Elasticsearch) or indices:admin/get (OpenSearch) on it"
                    .into(),
                None => "no reason given".into(),
            };
            let needs = privilege_hint(&why).map(|h| format!("; {h}")).unwrap_or_default();
            format!("{method} {path}: permission denied (403 Forbidden) for {auth}: {why}{needs}")
        }
        _ => match reason {
            Some(reason) => format!("{method} {path} answered {status}: {reason}"),
            None => format!("{method} {path} answered {status}: {body}"),
        },
    }
}

/// The server's reason in an error body: Elasticsearch / OpenSearch
/// `error.reason` (or its first root cause), AWS's `message` / `Message`, a
/// plain string `error`. None for an empty or unknown body.
pub fn reason(body: &str) -> Option<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return (!text.is_empty() && !text.starts_with('{')).then(|| truncate(text, 300));
    };
    let error = &value["error"];
    let found = error["reason"]
        .as_str()
        .or_else(|| error["root_cause"][0]["reason"].as_str())
        .or_else(|| error.as_str())
        .or_else(|| value["message"].as_str())
        .or_else(|| value["Message"].as_str())?;
    // AWS appends the canonical request to a signature mismatch: the first line says it all.
    let first = found.lines().next().unwrap_or(found).trim();
    Some(truncate(first, 500))
}

/// What grants a refused action, in the words of the documentation, when
/// the reason names it. Elasticsearch says it itself ("this action is
/// granted by the cluster privileges [...]"); OpenSearch only names the
/// action ("no permissions for [indices:admin/index_template/put]"), so
/// the common ones are translated here.
fn privilege_hint(reason: &str) -> Option<String> {
    if reason.contains("is granted by") {
        return None;
    }
    let action = reason.split("no permissions for [").nth(1)?.split(']').next()?;
    let grant = match action {
        a if a.starts_with("indices:admin/index_template") => {
            "the cluster permission cluster_manage_index_templates (or indices:admin/index_template/*)"
        }
        a if a.starts_with("indices:data/write/bulk") && !a.contains("[s]") => {
            "the cluster permission indices:data/write/bulk (or cluster_composite_ops)"
        }
        a if a.starts_with("indices:data/write") => "the index permission index (or crud, write) on the target indices",
        "indices:admin/create" | "indices:admin/auto_create" => {
            "the index permission create_index on the target indices"
        }
        a if a.starts_with("indices:admin/aliases/get") || a.starts_with("indices:admin/get") => {
            "the index permission indices_monitor (or indices:admin/aliases/get) on the target indices"
        }
        a if a.starts_with("indices:admin/refresh") => {
            "the index permission indices:admin/refresh* on the target indices"
        }
        a if a.starts_with("indices:admin/mapping/put") => "the index permission indices:admin/mapping/put",
        a if a.starts_with("indices:data/read") => "the index permission read (or search) on the target index",
        a if a.starts_with("cluster:monitor") => "the cluster permission cluster_monitor",
        _ => return None,
    };
    Some(format!("it needs {grant}"))
}

/// One line for a request that got no answer, from the error and its
/// sources: TLS refusals say why and what to pass.
pub fn connection(e: &reqwest::Error, url: &Url, has_ca: bool) -> String {
    let chain = error_chain(e);
    let host = url.host_str().unwrap_or("the server");
    let https = url.scheme() == "https";
    let lower = chain.to_ascii_lowercase();
    if https && lower.contains("unknownissuer") {
        let fix = if has_ca {
            "the --ca-cert given did not sign it: pass the CA that did"
        } else {
            "pass the CA that signed it with --ca-cert FILE (PEM)"
        };
        return format!(
            "the TLS certificate of {host} is signed by a CA this machine does not trust; {fix} \
             (--insecure skips the check: for throwaway test servers only)"
        );
    }
    if https && (lower.contains("notvalidforname") || lower.contains("not valid for name")) {
        return format!(
            "the TLS certificate of {host} is made for another host name ({}); connect with a name the \
             certificate lists (--insecure skips the check: for throwaway test servers only)",
            detail_after(&chain, "invalid peer certificate:").unwrap_or("not valid for this name")
        );
    }
    if https && lower.contains("expired") && lower.contains("certificate") {
        return format!("the TLS certificate of {host} has expired: {chain}");
    }
    if https
        && (lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("wrong version number")
            || lower.contains("invalid http version"))
    {
        return format!(
            "{host} does not speak TLS on port {}: it answers plain HTTP; use http:// in the URL",
            url.port_or_known_default().unwrap_or(443)
        );
    }
    if lower.contains("certificate") || lower.contains("tls") {
        return format!("TLS with {host} failed: {chain}");
    }
    chain
}

/// One line for a server at `url` that answered the first request (`GET
/// path`) with `status` and `body`, but not as Elasticsearch or OpenSearch
/// do: what answered instead, as far as the headers and body tell
/// (Kibana, OpenSearch Dashboards, S3 or another XML service, a web
/// page), and that `--url` is to name the cluster.
pub fn not_a_cluster(url: &str, path: &str, status: u16, headers: Option<&HeaderMap>, body: &[u8]) -> String {
    let header = |name: &str| headers.and_then(|h| h.get(name)).is_some();
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let text = text.trim();
    let start = text.chars().take(100).collect::<String>().to_ascii_lowercase();
    let json = serde_json::from_str::<Value>(text).ok();
    let content_type = headers
        .and_then(|h| h.get(reqwest::header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Kibana and OpenSearch Dashboards (hapi) answer errors as {"statusCode", "error", "message"}.
    let hapi = json
        .as_ref()
        .is_some_and(|j| j.get("statusCode").is_some() && j.get("error").is_some());
    let (what, hint) = if header("kbn-name") || header("kbn-license-sig") {
        (
            "Kibana's answer".to_string(),
            "--url takes the cluster's address (Elasticsearch or OpenSearch, port 9200 by default), not \
             Kibana's (port 5601, for `ctindex dashboards install --kibana-url`)",
        )
    } else if header("osd-name") || hapi {
        (
            "an answer like Kibana's or OpenSearch Dashboards'".to_string(),
            "--url takes the cluster's address (Elasticsearch or OpenSearch, port 9200 by default), not that \
             of Kibana or OpenSearch Dashboards (port 5601, for `ctindex dashboards install --kibana-url`)",
        )
    } else if start.starts_with("<?xml") || start.starts_with("<error") || start.starts_with("<listallmybuckets") {
        (
            "XML, as S3 and other storage services answer".to_string(),
            "is --url the cluster's address (port 9200 by default)? S3 and S3-compatible storage go to \
             --endpoint-url",
        )
    } else if start.starts_with("<!doctype html") || start.starts_with("<html") || content_type.contains("html") {
        (
            "a web page (HTML)".to_string(),
            "is --url the cluster's address (port 9200 by default), not Kibana's or another service's?",
        )
    } else {
        let what = match &json {
            _ if text.is_empty() => "an empty answer".to_string(),
            Some(_) => format!("other JSON: {}", truncate(text, 120)),
            None => format!("text: {}", truncate(text.lines().next().unwrap_or(""), 120)),
        };
        (
            what,
            "is --url the cluster's address (port 9200 by default), not another service's?",
        )
    };
    let status = if status == 200 {
        String::new()
    } else {
        format!("{status} with ")
    };
    format!("{url} answered, but not like Elasticsearch or OpenSearch (GET {path} gave {status}{what}): {hint}")
}

/// The error and its sources, joined: reqwest hides the useful part below.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

fn detail_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let rest = text[start..].trim_start();
    Some(rest.split(": ").next().unwrap_or(rest))
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_error(status: u16, body: &str) -> String {
        SendError::Status {
            method: "PUT".into(),
            path: "/_index_template/ctindex-cloudtrail".into(),
            status,
            body: body.into(),
            auth: "the API key (--api-key)".into(),
            retry_after: None,
        }
        .to_string()
    }

    #[test]
    fn other_services_are_named() {
        let url = "http://127.0.0.1:9090";
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, reqwest::header::HeaderValue::from_static(v));
            }
            h
        };
        let kibana = headers(&[("kbn-name", "kibana"), ("content-type", "text/html; charset=utf-8")]);
        for (status, headers, body, says) in [
            (
                200,
                Some(&kibana),
                "<!DOCTYPE html><html>",
                "(GET / gave Kibana's answer): --url takes",
            ),
            (
                404,
                None,
                r#"{"statusCode":404,"error":"Not Found","message":"Not Found"}"#,
                "(GET / gave 404 with an answer like Kibana's or OpenSearch Dashboards')",
            ),
            (
                200,
                None,
                r#"<?xml version="1.0"?><ListAllMyBucketsResult>"#,
                "(GET / gave XML, as S3 and other storage services answer): is --url the cluster's address \
                 (port 9200 by default)? S3 and S3-compatible storage go to --endpoint-url",
            ),
            (
                200,
                None,
                "<!doctype html>\n<title>Grafana</title>",
                "(GET / gave a web page (HTML)): is --url the cluster's address (port 9200 by default), not \
                 Kibana's or another service's?",
            ),
            (
                200,
                None,
                r#"{"status":"ok"}"#,
                "(GET / gave other JSON: {\"status\":\"ok\"})",
            ),
            (200, None, "", "(GET / gave an empty answer)"),
            (200, None, "hello\nworld", "(GET / gave text: hello)"),
        ] {
            let shown = not_a_cluster(url, "/", status, headers, body.as_bytes());
            assert!(
                shown.starts_with("http://127.0.0.1:9090 answered, but not like Elasticsearch or OpenSearch"),
                "{shown}"
            );
            assert!(shown.contains(says), "{says}: {shown}");
        }
    }

    #[test]
    fn statuses_read_the_reason() {
        let es = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"action [indices:admin/index_template/put] is unauthorized for user [w] with effective roles [r], this action is granted by the cluster privileges [manage_index_templates,manage,all]"}],"type":"security_exception","reason":"action [indices:admin/index_template/put] is unauthorized for user [w] with effective roles [r], this action is granted by the cluster privileges [manage_index_templates,manage,all]"},"status":403}"#;
        let shown = status_error(403, es);
        assert!(
            shown.starts_with(
                "PUT /_index_template/ctindex-cloudtrail: permission denied (403 Forbidden) for the API key"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("granted by the cluster privileges [manage_index_templates"),
            "{shown}"
        );
        assert!(!shown.contains("root_cause"), "{shown}");

        let os = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for [indices:admin/index_template/put] and User [name=w, backend_roles=[], requestedTenant=null]"}],"type":"security_exception","reason":"no permissions for [indices:admin/index_template/put] and User [name=w, backend_roles=[], requestedTenant=null]"},"status":403}"#;
        let shown = status_error(403, os);
        assert!(
            shown.contains("it needs the cluster permission cluster_manage_index_templates"),
            "{shown}"
        );

        let shown = status_error(
            401,
            r#"{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials"},"status":401}"#,
        );
        assert_eq!(
            shown,
            "PUT /_index_template/ctindex-cloudtrail: the server refused the API key (--api-key) (401 Unauthorized): unable to authenticate with provided credentials"
        );
        // AWS answers {"message": ...}; OpenSearch's security plugin a plain text body.
        assert!(
            status_error(
                403,
                r#"{"message":"The security token included in the request is invalid."}"#
            )
            .contains("token included")
        );
        assert!(status_error(401, "Unauthorized").ends_with(": Unauthorized"));
        let aws = r#"{"message":"The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'GET\n/'"}"#;
        assert!(
            status_error(403, aws).ends_with("does not match the signature you provided."),
            "{}",
            status_error(403, aws)
        );
        assert!(status_error(400, "{}").ends_with("answered 400: {}"));
    }
}
