//! Restamping events already indexed: `sync --verify` turns the
//! `ctindex.integrity` of a file's events from `unverified` to `verified`
//! or `failed` once the digest that lists the file has arrived, with one
//! `_update_by_query` per batch of files, without reading the files again.
//!
//! The query matches the files' events by `ctindex.source` (the file's name
//! as stamped) and only those still `unverified`, so sending it again is
//! harmless: retries are safe, and a repeated run changes nothing more.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client::Cluster;
use crate::http::Method;
use crate::retry::{Policy, Retrier};

/// The `_update_by_query` body that sets `ctindex.integrity` to `stamp` on
/// the events of `files` still stamped `unverified`.
fn body(files: &[&str], stamp: &str) -> Value {
    json!({
        "query": {"bool": {"filter": [
            {"terms": {"ctindex.source": files}},
            {"term": {"ctindex.integrity": crate::verify::UNVERIFIED}},
        ]}},
        "script": {
            "lang": "painless",
            "source": "ctx._source.ctindex.integrity = params.stamp",
            "params": {"stamp": stamp},
        },
    })
}

/// What one `_update_by_query` answered: events updated, and events it
/// skipped because they changed while it ran (version conflicts).
fn read_answer(answer: &Value) -> Result<(u64, u64)> {
    if let Some(failures) = answer["failures"].as_array()
        && !failures.is_empty()
    {
        bail!(
            "{} events could not be restamped: {}",
            failures.len(),
            crate::http::explain::truncate(&Value::Array(failures.clone()).to_string(), 300)
        );
    }
    match (answer["updated"].as_u64(), answer["version_conflicts"].as_u64()) {
        (Some(updated), conflicts) => Ok((updated, conflicts.unwrap_or(0))),
        _ => bail!(
            "not an _update_by_query answer: {}",
            crate::http::explain::truncate(&answer.to_string(), 300)
        ),
    }
}

/// Sets `ctindex.integrity` to `stamp` on the events of `files` (names as
/// stamped in `ctindex.source`) still `unverified` under `alias`; returns
/// how many events changed. Each request is retried by the cluster's
/// control policy ([`Cluster::json`]); events that changed while it ran
/// (version conflicts) are matched again by a new request, within
/// [`Policy::CONTROL`]'s attempts.
pub async fn restamp(cluster: &Cluster, alias: &str, files: &[&str], stamp: &str) -> Result<u64> {
    let path = format!("/{alias}/_update_by_query?conflicts=proceed&refresh=true");
    let body = body(files, stamp);
    let mut updated = 0;
    let mut retrier = Retrier::new(Policy::CONTROL);
    loop {
        let answer = cluster
            .json(Method::POST, &path, Some(&body))
            .await
            .with_context(|| format!("cannot restamp ctindex.integrity in {alias}"))?;
        let (done, conflicts) =
            read_answer(&answer).with_context(|| format!("restamping ctindex.integrity in {alias}"))?;
        updated += done;
        if conflicts == 0 {
            return Ok(updated);
        }
        let Some(pause) = retrier.again() else {
            bail!("restamping ctindex.integrity in {alias}: {conflicts} events kept changing while they were updated");
        };
        tracing::debug!("restamping: {conflicts} events changed meanwhile; again");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            read_answer(&json!({"took": 3, "updated": 12, "version_conflicts": 0, "failures": []})).unwrap(),
            (12, 0)
        );
        assert_eq!(
            read_answer(&json!({"updated": 2, "version_conflicts": 1, "failures": []})).unwrap(),
            (2, 1)
        );
        assert!(read_answer(&json!({"updated": 1, "failures": [{"cause": {"type": "x"}}]})).is_err());
        assert!(read_answer(&json!({"acknowledged": true})).is_err());
        let b = body(&["s3://b/AWSLogs/1/x.json.gz"], "verified");
        assert_eq!(b["script"]["params"]["stamp"], "verified");
        assert_eq!(
            b["query"]["bool"]["filter"][1],
            json!({"term": {"ctindex.integrity": "unverified"}})
        );
    }
}
