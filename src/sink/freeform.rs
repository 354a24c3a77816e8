//! Clusters without a free-form object type (`flattened` on Elasticsearch,
//! `flat_object` on OpenSearch 2.7+): OpenSearch 1.x and 2.0–2.6.
//!
//! The promise stays the same there: no document rejected, no field
//! explosion. The fallback template maps every free-form object as an
//! unindexed object (`"enabled": false`: kept in `_source`, never mapped, so
//! it can neither conflict nor add fields), and each document carries the
//! text of those objects in `ctindex.payload`, a `text` field excluded from
//! `_source` (indexed, not stored twice): `ctindex.payload:"my-bucket"`
//! finds an event whose `requestParameters` name that bucket.
//!
//! Which parts are unindexed is read from the template itself
//! ([`Unindexed::from_template`]), not restated here.

use serde_json::{Map, Value, json};

/// The template's free-form object types.
const FREE_FORM_TYPES: [&str; 2] = ["flattened", "flat_object"];

/// Rewrites a template for a cluster without free-form objects: each
/// `flattened` / `flat_object` mapping (explicit or dynamic) becomes an
/// unindexed object, and `ctindex.payload` is added, excluded from `_source`.
pub fn fallback_body(body: &mut Value) {
    fn rewrite(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let free_form = map
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| FREE_FORM_TYPES.contains(&t));
                if free_form {
                    *value = json!({"type": "object", "enabled": false});
                    return;
                }
                map.values_mut().for_each(rewrite);
            }
            Value::Array(items) => items.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mappings = &mut body["template"]["mappings"];
    rewrite(mappings);
    mappings["properties"]["ctindex"]["properties"]["payload"] = json!({"type": "text"});
    mappings["_source"] = json!({"excludes": ["ctindex.payload"]});
    body["_meta"]["description"] = json!(
        "CloudTrail events: typed known fields, free-form payloads unindexed (this cluster has no \
         free-form object type) with their text in ctindex.payload. See mappings/README.md."
    );
}

/// Whether a template is the fallback one (see [`fallback_body`]).
pub fn is_fallback(body: &Value) -> bool {
    !body["template"]["mappings"]["properties"]["ctindex"]["properties"]["payload"].is_null()
}

/// A dynamic template that leaves objects unindexed.
#[derive(Debug)]
struct Rule {
    path_match: Option<String>,
    path_unmatch: Option<String>,
}

/// Where a document's unindexed objects are, read from a fallback template.
#[derive(Debug)]
pub struct Unindexed {
    properties: Map<String, Value>,
    rules: Vec<Rule>,
}

fn is_disabled(mapping: &Value) -> bool {
    mapping["enabled"] == json!(false)
}

/// `*` matches any run of characters (dots included), as in index templates.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl Unindexed {
    /// From a fallback template's body (what [`fallback_body`] made).
    pub fn from_template(body: &Value) -> Unindexed {
        let mappings = &body["template"]["mappings"];
        let rules = mappings["dynamic_templates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.as_object()?.values().next())
            .filter(|t| t["match_mapping_type"] == json!("object") && is_disabled(&t["mapping"]))
            .map(|t| Rule {
                path_match: t["path_match"].as_str().map(String::from),
                path_unmatch: t["path_unmatch"].as_str().map(String::from),
            })
            .collect();
        Unindexed {
            properties: mappings["properties"].as_object().cloned().unwrap_or_default(),
            rules,
        }
    }

    fn dynamic(&self, path: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule.path_match.as_deref().is_none_or(|p| glob(p, path))
                && !rule.path_unmatch.as_deref().is_some_and(|p| glob(p, path))
        })
    }

    /// The text of the document's unindexed objects, one `path=JSON` line
    /// each; empty when there are none.
    pub fn payload(&self, doc: &Map<String, Value>) -> String {
        let mut out = String::new();
        self.walk(doc, Some(&self.properties), "", &mut out);
        out
    }

    fn walk(&self, object: &Map<String, Value>, properties: Option<&Map<String, Value>>, path: &str, out: &mut String) {
        for (key, value) in object {
            if path.is_empty() && key == "ctindex" {
                continue;
            }
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let mapping = properties.and_then(|p| p.get(key));
            let unindexed = match mapping {
                Some(mapping) => is_disabled(mapping),
                None => is_object_like(value) && self.dynamic(&here),
            };
            if unindexed {
                out.push_str(&here);
                out.push('=');
                out.push_str(&value.to_string());
                out.push('\n');
                continue;
            }
            let inner = mapping.and_then(|m| m["properties"].as_object());
            if mapping.is_some() && inner.is_none() {
                continue; // a typed field
            }
            match value {
                Value::Object(child) => self.walk(child, inner, &here, out),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(child) = item {
                            self.walk(child, inner, &here, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_object_like(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(Value::is_object),
        _ => false,
    }
}

/// Adds `ctindex.payload` to a document's JSON (when it has unindexed
/// objects). The JSON is ctindex's own, so it parses; should it not, it is
/// left as it is.
pub fn add_payload(unindexed: &Unindexed, doc: &mut Vec<u8>, start: usize) {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&doc[start..]) else {
        return;
    };
    let payload = unindexed.payload(&map);
    if payload.is_empty() {
        return;
    }
    let meta = map.entry("ctindex").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert("payload".into(), Value::String(payload));
    }
    doc.truncate(start);
    let _ = serde_json::to_writer(&mut *doc, &Value::Object(map));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets;

    fn fallback() -> Value {
        let mut body: Value = serde_json::from_str(assets::TEMPLATE_OPENSEARCH).unwrap();
        fallback_body(&mut body);
        body
    }

    #[test]
    fn the_fallback_template_has_no_free_form_type_left() {
        for text in [assets::TEMPLATE_OPENSEARCH, assets::TEMPLATE_ELASTICSEARCH] {
            let mut body: Value = serde_json::from_str(text).unwrap();
            assert!(!is_fallback(&body));
            fallback_body(&mut body);
            let shown = body["template"].to_string();
            assert!(
                !shown.contains("flat_object") && !shown.contains("flattened"),
                "{shown}"
            );
            assert!(is_fallback(&body));
            assert_eq!(
                body["template"]["mappings"]["_source"]["excludes"],
                json!(["ctindex.payload"])
            );
        }
    }

    #[test]
    fn globs() {
        assert!(glob("userIdentity.*", "userIdentity.sessionContext.x"));
        assert!(!glob("userIdentity.*", "userIdentity"));
        assert!(glob("*.*", "a.b"));
        assert!(!glob("*.*", "ab"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abde"));
    }

    #[test]
    fn the_payload_holds_exactly_the_unindexed_objects() {
        let unindexed = Unindexed::from_template(&fallback());
        let doc = json!({
            "eventName": "PutObject",
            "eventSource": "s3.amazonaws.com",
            "requestParameters": {"bucketName": "my-bucket", "key": 1},
            "responseElements": null,
            "resources": [{"ARN": "arn:aws:s3:::my-bucket"}],
            "userIdentity": {"type": "AssumedRole", "sessionContext": {"webIdFederationData": {"federatedProvider": "x"}}},
            "tlsDetails": {"tlsVersion": "TLSv1.2", "extra": {"a": 1}},
            "someNewTopLevel": {"b": 2},
            "ctindex": {"channel": "console"}
        });
        let payload = unindexed.payload(doc.as_object().unwrap());
        let lines: Vec<&str> = payload.lines().collect();
        for want in [
            r#"requestParameters={"bucketName":"my-bucket","key":1}"#,
            r#"resources=[{"ARN":"arn:aws:s3:::my-bucket"}]"#,
            r#"userIdentity.sessionContext.webIdFederationData={"federatedProvider":"x"}"#,
            r#"tlsDetails.extra={"a":1}"#,
            r#"someNewTopLevel={"b":2}"#,
        ] {
            assert!(lines.contains(&want), "{want} missing in {lines:?}");
        }
        assert!(
            !payload.contains("PutObject") && !payload.contains("console") && !payload.contains("TLSv1.2"),
            "{payload}"
        );

        let mut bytes = b"{\"index\":{}}\n".to_vec();
        let start = bytes.len();
        serde_json::to_writer(&mut bytes, &doc).unwrap();
        add_payload(&unindexed, &mut bytes, start);
        let back: Value = serde_json::from_slice(&bytes[start..]).unwrap();
        assert_eq!(back["ctindex"]["payload"].as_str(), Some(payload.as_str()));
        assert_eq!(back["ctindex"]["channel"], json!("console"));
        assert_eq!(&bytes[..start], b"{\"index\":{}}\n");
    }
}
