//! Bulk encoding and bulk-response reading.
//!
//! Owns the NDJSON body of a Bulk API request (an `index` action line and the
//! document line per event), the byte range of every item inside a body (so
//! any item can be resent or dead-lettered without re-encoding), and the
//! item-by-item reading of the response.
//!
//! Pure and synchronous: no I/O. Invariant: `Batch::items[i]` describes the
//! i-th action of `Batch::body`, which is what the cluster answers as
//! `items[i]`.

use serde::Deserialize;
use serde_json::Value;

use crate::transform::Document;

/// Which input a document came from: the file's sequence number in the run
/// and the event's position in it, for progress, sync state and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub file: u32,
    pub record: u32,
}

/// One document, encoded as its two bulk lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub origin: Origin,
    /// Byte range of the head (action) line plus the document line in the body.
    pub start: usize,
    pub end: usize,
    /// Where the document line starts (the head line ends just before).
    pub doc_start: usize,
    /// Already sent once with its unknown fields moved to `ctindex.overflow`.
    pub quarantined: bool,
}

/// Documents encoded back to back, as one file's output or one request.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub body: Vec<u8>,
    pub items: Vec<Item>,
}

impl Batch {
    /// A batch whose body has room for `bytes` (a reused buffer, see
    /// [`crate::buffers`]).
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            body: crate::buffers::take(bytes),
            items: Vec::new(),
        }
    }

    /// Gives the body's buffer back for reuse.
    pub fn recycle(self) {
        crate::buffers::give(self.body);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Encodes one document at the end of the body.
    pub fn push_doc(&mut self, doc: &impl Document, origin: Origin) {
        self.push_entry(
            origin,
            |out| {
                out.extend_from_slice(br#"{"index":{"_index":"#);
                write_json_str(out, doc.index());
                out.extend_from_slice(br#","_id":"#);
                write_json_str(out, doc.id());
                out.extend_from_slice(b"}}");
            },
            |out| doc.write_json(out),
        );
    }

    /// Adds `ctindex.payload` to the last document (see [`super::freeform`]).
    pub fn add_payload(&mut self, unindexed: &super::freeform::Unindexed) {
        let Some(item) = self.items.last_mut() else { return };
        // The document line without its newline.
        self.body.truncate(item.end - 1);
        super::freeform::add_payload(unindexed, &mut self.body, item.doc_start);
        self.body.push(b'\n');
        item.end = self.body.len();
    }

    /// Appends an item: a head line and a document line, each written
    /// (without its newline) by its closure. The head is the bulk action, or
    /// an export record's output, time and id.
    pub fn push_entry(
        &mut self,
        origin: Origin,
        write_head: impl FnOnce(&mut Vec<u8>),
        write_line: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.body.len();
        write_head(&mut self.body);
        self.body.push(b'\n');
        let doc_start = self.body.len();
        write_line(&mut self.body);
        self.body.push(b'\n');
        self.items.push(Item {
            origin,
            start,
            end: self.body.len(),
            doc_start,
            quarantined: false,
        });
    }

    /// Appends item `i` of `other` with a new document line (for a second try).
    pub fn push_replaced(&mut self, other: &Batch, i: usize, doc_line: &[u8]) {
        let item = other.items[i];
        let start = self.body.len();
        self.body.extend_from_slice(&other.body[item.start..item.doc_start]);
        let doc_start = self.body.len();
        self.body.extend_from_slice(doc_line);
        self.body.push(b'\n');
        self.items.push(Item {
            origin: item.origin,
            start,
            end: self.body.len(),
            doc_start,
            quarantined: true,
        });
    }

    /// Copies item `i` of `other` to the end of this batch.
    pub fn push_item_from(&mut self, other: &Batch, i: usize) {
        let item = other.items[i];
        let start = self.body.len();
        self.body.extend_from_slice(&other.body[item.start..item.end]);
        self.items.push(Item {
            start,
            end: self.body.len(),
            doc_start: start + (item.doc_start - item.start),
            ..item
        });
    }

    /// The bytes of item `i`'s document line (without the newline).
    pub fn doc_bytes(&self, i: usize) -> &[u8] {
        let item = &self.items[i];
        &self.body[item.doc_start..item.end.saturating_sub(1)]
    }

    /// The bytes of item `i`'s head line (without the newline): the bulk
    /// action, or an export record's output, time and id.
    pub fn head_bytes(&self, i: usize) -> &[u8] {
        let item = &self.items[i];
        &self.body[item.start..item.doc_start.saturating_sub(1)]
    }

    /// Splits into two halves by item count (for a 413 answer).
    pub fn split(&self) -> (Batch, Batch) {
        let mid = self.items.len() / 2;
        let mut left = Batch::with_capacity(self.body.len() / 2 + 1);
        let mut right = Batch::with_capacity(self.body.len() / 2 + 1);
        for i in 0..self.items.len() {
            if i < mid {
                left.push_item_from(self, i)
            } else {
                right.push_item_from(self, i)
            }
        }
        (left, right)
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

/// What the cluster said about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Created,
    Updated,
    /// Worth sending again: the cluster was busy or failing (429, 5xx).
    Retry(String),
    /// Will never succeed as is (a mapping error, for example).
    Reject(String),
    /// No event of the run can succeed: the credentials may not write to
    /// the index (401, 403), or the target refuses document ids (an
    /// OpenSearch Serverless time-series collection). The run stops.
    Fatal(String),
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, ItemResult>>,
}

#[derive(Deserialize)]
struct ItemResult {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// A bulk response that cannot be matched to its request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("bulk response is not valid JSON: {0}")]
    Json(String),
    #[error("bulk response has {got} items for {sent} actions")]
    Count { sent: usize, got: usize },
}

/// Reads a 200 bulk response into one outcome per item, in request order.
pub fn read_response(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
    let response: BulkResponse = serde_json::from_slice(body).map_err(|e| ResponseError::Json(e.to_string()))?;
    if response.items.len() != sent {
        return Err(ResponseError::Count {
            sent,
            got: response.items.len(),
        });
    }
    let _ = response.errors;
    Ok(response
        .items
        .into_iter()
        .map(|item| match item.into_values().next() {
            Some(result) => outcome(result),
            None => ItemOutcome::Retry("empty bulk item".into()),
        })
        .collect())
}

fn outcome(item: ItemResult) -> ItemOutcome {
    match (item.status, &item.error) {
        (200..=299, None) => match item.result.as_deref() {
            Some("created") => ItemOutcome::Created,
            _ => ItemOutcome::Updated,
        },
        (status, error) => {
            let kind = error
                .as_ref()
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let reason = describe_error(status, error.as_ref());
            if matches!(status, 401 | 403) {
                return ItemOutcome::Fatal(format!(
                    "the cluster refuses to write the events ({reason}); the credentials need the \
                     index and create_index privileges on the target indices"
                ));
            }
            if reason.contains("Document ID is not supported") {
                return ItemOutcome::Fatal(format!(
                    "the target refuses document ids ({reason}): an OpenSearch Serverless time-series \
                     collection; ctindex uses the eventID as the document id so that nothing is ever \
                     indexed twice: load into a collection of type search"
                ));
            }
            if status == 429 || status >= 500 || kind == "es_rejected_execution_exception" {
                ItemOutcome::Retry(reason)
            } else {
                ItemOutcome::Reject(reason)
            }
        }
    }
}

/// "status 400 mapper_parsing_exception: failed to parse field [x] (caused by: …)".
fn describe_error(status: u16, error: Option<&Value>) -> String {
    let Some(error) = error else {
        return format!("status {status}");
    };
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
    let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
    let mut text = format!("status {status} {kind}: {reason}");
    if let Some(cause) = error.get("caused_by") {
        let ck = cause.get("type").and_then(Value::as_str).unwrap_or("");
        let cr = cause.get("reason").and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!(" (caused by {ck}: {cr})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Doc;
    use serde_json::json;

    fn doc(id: &str) -> Doc {
        let Value::Object(source) = json!({"eventID": id, "n": "é\"x"}) else {
            panic!()
        };
        Doc {
            index: "cloudtrail-2024.01".into(),
            id: id.into(),
            source,
        }
    }

    #[test]
    fn encodes_literal_ndjson() {
        let mut b = Batch::default();
        b.push_doc(&doc("a"), Origin { file: 0, record: 0 });
        b.push_doc(&doc("b\"c"), Origin { file: 1, record: 5 });
        let want = concat!(
            "{\"index\":{\"_index\":\"cloudtrail-2024.01\",\"_id\":\"a\"}}\n",
            "{\"eventID\":\"a\",\"n\":\"é\\\"x\"}\n",
            "{\"index\":{\"_index\":\"cloudtrail-2024.01\",\"_id\":\"b\\\"c\"}}\n",
            "{\"eventID\":\"b\\\"c\",\"n\":\"é\\\"x\"}\n",
        );
        assert_eq!(String::from_utf8(b.body.clone()).unwrap(), want);
        assert_eq!(b.doc_bytes(1), "{\"eventID\":\"b\\\"c\",\"n\":\"é\\\"x\"}".as_bytes());
        assert_eq!(
            b.head_bytes(0),
            br#"{"index":{"_index":"cloudtrail-2024.01","_id":"a"}}"#
        );

        let mut q = Batch::default();
        q.push_replaced(&b, 0, br#"{"eventID":"a","ctindex":{"overflow":{}}}"#);
        assert_eq!(q.doc_bytes(0), br#"{"eventID":"a","ctindex":{"overflow":{}}}"#);
        assert_eq!(q.head_bytes(0), b.head_bytes(0));
        assert!(q.items[0].quarantined && !b.items[0].quarantined);

        let (l, r) = b.split();
        assert_eq!((l.len(), r.len()), (1, 1));
        assert_eq!([l.body, r.body].concat(), b.body);
        assert_eq!(r.items[0].origin, Origin { file: 1, record: 5 });
    }

    #[test]
    fn reads_items_in_order() {
        let body = json!({"took": 3, "errors": true, "items": [
            {"index": {"_index": "i", "_id": "1", "status": 201, "result": "created"}},
            {"index": {"_index": "i", "_id": "2", "status": 200, "result": "updated"}},
            {"index": {"_index": "i", "_id": "3", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"index": {"_index": "i", "_id": "4", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [x]", "caused_by": {"type": "illegal_argument_exception", "reason": "bad"}}}},
            {"index": {"_index": "i", "_id": "5", "status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
            {"index": {"_index": "i", "_id": "6", "status": 500, "error": {"type": "es_rejected_execution_exception", "reason": "x"}}}
        ]});
        let got = read_response(body.to_string().as_bytes(), 6).unwrap();
        assert_eq!(got[0], ItemOutcome::Created);
        assert_eq!(got[1], ItemOutcome::Updated);
        assert_eq!(
            got[2],
            ItemOutcome::Retry("status 429 es_rejected_execution_exception: queue full".into())
        );
        assert_eq!(
            got[3],
            ItemOutcome::Reject(
                "status 400 mapper_parsing_exception: failed to parse field [x] (caused by illegal_argument_exception: bad)"
                    .into()
            )
        );
        assert!(matches!(got[4], ItemOutcome::Retry(_)));
        assert!(matches!(got[5], ItemOutcome::Retry(_)));

        // Items no retry can save stop the run, with what to do.
        let body = json!({"errors": true, "items": [
            {"index": {"_index": "i", "_id": "1", "status": 403, "error": {"type": "security_exception", "reason": "action [indices:data/write/bulk[s]] is unauthorized for user [w]"}}},
            {"index": {"_index": "i", "_id": "2", "status": 400, "error": {"type": "illegal_argument_exception", "reason": "Document ID is not supported in create/index operation request"}}}
        ]});
        let got = read_response(body.to_string().as_bytes(), 2).unwrap();
        assert!(
            matches!(&got[0], ItemOutcome::Fatal(r) if r.contains("unauthorized for user [w]") && r.contains("create_index")),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], ItemOutcome::Fatal(r) if r.contains("collection of type search")),
            "{got:?}"
        );
    }

    #[test]
    fn mismatched_responses_are_errors() {
        assert!(matches!(read_response(b"<html>", 1), Err(ResponseError::Json(_))));
        assert_eq!(
            read_response(br#"{"errors":false,"items":[]}"#, 2),
            Err(ResponseError::Count { sent: 2, got: 0 })
        );
    }
}
