//! Restamping events already indexed: `sync --verify` turns the
//! `ctindex.integrity` of a file's events from `unverified` to `verified`
//! or `failed` once the digest that lists the file has arrived, without
//! reading the file again.
//!
//! A search finds the files' events still `unverified` (by `ctindex.source`,
//! the file's name as stamped), a bulk request of partial updates sets the
//! stamp on them and refreshes, and so on until the search finds none. Not
//! `_update_by_query`: it needs the reindex module and painless, which
//! minimal distributions (and some managed services) lack; a search and
//! `_bulk` are everywhere, and need the same privileges (read, write).
//!
//! Every step is idempotent (the search matches only events still
//! `unverified`; an update sets a value), so retries are safe, and a
//! repeated run changes nothing more.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client::Cluster;
use crate::http::Method;
use crate::retry::Policy;

/// Events found and updated per round.
const PAGE: usize = 2000;

/// The search for the events of `files` still stamped `unverified`.
fn search(files: &[&str]) -> Value {
    json!({
        "size": PAGE,
        "_source": false,
        "track_total_hits": false,
        "query": {"bool": {"filter": [
            {"terms": {"ctindex.source": files}},
            {"term": {"ctindex.integrity": crate::verify::UNVERIFIED}},
        ]}},
    })
}

/// The hits of a search answer: (index, id) of each.
fn hits(answer: &Value) -> Result<Vec<(String, String)>> {
    let Some(hits) = answer["hits"]["hits"].as_array() else {
        bail!(
            "not a search answer: {}",
            crate::http::explain::truncate(&answer.to_string(), 300)
        );
    };
    hits.iter()
        .map(|hit| match (hit["_index"].as_str(), hit["_id"].as_str()) {
            (Some(index), Some(id)) => Ok((index.to_string(), id.to_string())),
            _ => bail!("a hit without _index or _id: {hit}"),
        })
        .collect()
}

/// The bulk body of partial updates setting `ctindex.integrity` to `stamp`.
fn updates(found: &[(String, String)], stamp: &str) -> Vec<u8> {
    let doc = json!({"doc": {"ctindex": {"integrity": stamp}}}).to_string();
    let mut body = Vec::new();
    for (index, id) in found {
        let action = json!({"update": {"_index": index, "_id": id, "retry_on_conflict": 3}});
        body.extend_from_slice(action.to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(doc.as_bytes());
        body.push(b'\n');
    }
    body
}

/// Sets `ctindex.integrity` to `stamp` on the events of `files` (names as
/// stamped in `ctindex.source`) still `unverified` under `alias`; returns
/// how many events changed. Searches are retried by the cluster's control
/// policy ([`Cluster::json`]), updates by [`Cluster::bulk_idempotent`].
pub async fn restamp(cluster: &Cluster, alias: &str, files: &[&str], stamp: &str) -> Result<u64> {
    if cluster.serverless {
        bail!("OpenSearch Serverless cannot make updates searchable at once (no refresh), which restamping needs");
    }
    let query = search(files);
    let what = format!("ctindex.integrity updates in {alias}");
    let mut updated = 0;
    let mut last: HashSet<(String, String)> = HashSet::new();
    loop {
        let answer = cluster
            .json(Method::POST, &format!("/{alias}/_search"), Some(&query))
            .await
            .with_context(|| format!("cannot search {alias} for the events to restamp"))?;
        let found = hits(&answer).with_context(|| format!("searching {alias} for the events to restamp"))?;
        if found.is_empty() {
            return Ok(updated);
        }
        // Refreshed, the events updated last round no longer match: seeing them again means they did not change.
        if found.iter().all(|hit| last.contains(hit)) {
            bail!(
                "restamping in {alias}: {} events still show unverified after their update",
                found.len()
            );
        }
        let results = cluster
            .bulk_idempotent(updates(&found, stamp).into(), Policy::CONTROL, &what, true)
            .await?;
        updated += results.iter().filter(|r| *r == "updated").count() as u64;
        last = found.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_and_updates() {
        let q = search(&["s3://b/AWSLogs/1/x.json.gz"]);
        assert_eq!(
            q["query"]["bool"]["filter"][1],
            json!({"term": {"ctindex.integrity": "unverified"}})
        );
        let answer = json!({"hits": {"hits": [{"_index": "p-2024.03", "_id": "e1"}]}});
        let found = hits(&answer).unwrap();
        assert_eq!(found, [("p-2024.03".to_string(), "e1".to_string())]);
        assert!(hits(&json!({"acknowledged": true})).is_err());
        assert!(hits(&json!({"hits": {"hits": [{"_id": "e1"}]}})).is_err());
        let body = String::from_utf8(updates(&found, "verified")).unwrap();
        assert_eq!(
            body,
            "{\"update\":{\"_id\":\"e1\",\"_index\":\"p-2024.03\",\"retry_on_conflict\":3}}\n\
             {\"doc\":{\"ctindex\":{\"integrity\":\"verified\"}}}\n"
        );
    }
}
