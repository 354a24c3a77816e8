//! Normalisation: fitting an event to the index template and the cluster's
//! limits, so that no document is rejected.
//!
//! Owns the shape contract between the transform and `mappings/` (see
//! `mappings/README.md`):
//! - free-form payloads (`requestParameters`, …) are objects or arrays of
//!   objects: any other value is wrapped as `{"_value": …}`;
//! - typed fields get the type the template gives them: an object sent to a
//!   keyword field becomes its JSON text, `"TRUE"` in a boolean becomes `true`,
//!   a `userIdentity` that is not an object is wrapped;
//! - keys the cluster refuses are renamed: dots and blank keys outside the
//!   free-form payloads, metadata names such as `_id` and the template's
//!   ECS objects (`event`, `user`, …, [`crate::fields::ECS_ROOTS`]) at the
//!   top (an event's own `user` becomes `_user`), and keys
//!   longer than [`MAX_KEY_BYTES`] anywhere;
//! - strings longer than [`Limits::max_string_bytes`] are cut, nesting deeper
//!   than [`Limits::max_depth`] is kept as JSON text;
//! - more than [`MAX_UNKNOWN_FIELDS`] unknown top-level fields, and, on a
//!   second try, every unknown field ([`quarantine`]), move to `ctindex.overflow`,
//!   which is kept in `_source` but not indexed.
//!
//! Every change is recorded by path in `ctindex.truncated`. Pure and
//! synchronous. Invariant: a normalised event never nests deeper than
//! `max_depth`, has no string over `max_string_bytes` and no key over
//! [`MAX_KEY_BYTES`].

use serde_json::{Map, Value};

use crate::fields::{FieldClass, class_of, is_known};
use crate::raw::Shape;

/// Sizes the cluster can take; beyond them a value is cut down and flagged.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest string kept as is, in bytes. OpenSearch's `flat_object` indexes
    /// `path=value` as one Lucene term, which must stay under 32766 bytes.
    pub max_string_bytes: usize,
    /// Deepest nesting kept as objects (a top-level field's value is depth 2);
    /// deeper parts are kept as a JSON string. Elasticsearch's `flattened`
    /// refuses more than 20 levels, and OpenSearch's `flat_object` parser can
    /// overflow its stack on very deep documents.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_bytes: 16 * 1024,
            max_depth: 15,
        }
    }
}

/// Longest key kept as is, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Unknown top-level fields indexed per event; more go to `ctindex.overflow`
/// (the template's field limit would refuse the document otherwise).
pub const MAX_UNKNOWN_FIELDS: usize = 100;

/// Field names reserved by Elasticsearch/OpenSearch for document metadata.
const METADATA_NAMES: &[&str] = &[
    "_id",
    "_index",
    "_source",
    "_routing",
    "_type",
    "_version",
    "_seq_no",
    "_primary_term",
    "_ignored",
    "_field_names",
    "_doc_count",
    "_tier",
    "_data_stream_timestamp",
    "_size",
];

/// Whether a key is a metadata name the cluster refuses at the top.
fn metadata_name(key: &str) -> bool {
    key.starts_with('_') && METADATA_NAMES.contains(&key)
}

/// Whether a top-level key is reserved: a metadata name, or one of the
/// template's ECS objects, which an event's own value would clash with
/// (a string where the template has an object, a value written to an alias).
fn reserved_top_key(key: &str) -> bool {
    metadata_name(key) || crate::fields::is_ecs_root(key)
}

/// Fits one event (after filtering) to the template and the limits; returns
/// the paths it changed.
pub fn normalize(event: &mut Map<String, Value>, limits: &Limits) -> Vec<String> {
    let mut changed = Vec::new();
    sanitize_keys(event, true, &mut changed);

    for (key, value) in event.iter_mut() {
        match class_of(key) {
            FieldClass::FreeForm => wrap_scalars(value),
            // Keyword, text, date and boolean fields take no objects
            // (mirrored on the text by [`as_text`]).
            FieldClass::Scalar | FieldClass::Boolean
                if matches!(value, Value::Object(_))
                    || matches!(value, Value::Array(items) if items.iter().any(is_container)) =>
            {
                *value = Value::String(value.to_string());
                changed.push(key.clone());
            }
            FieldClass::Boolean => fix_boolean(value),
            FieldClass::Structured if !matches!(value, Value::Object(_) | Value::Null) => {
                let text = match value.take() {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                *value = wrap(Value::String(text));
                changed.push(key.clone());
            }
            _ => {}
        }
    }
    if let Some(Value::Object(identity)) = event.get_mut("userIdentity")
        && let Some(value) = identity
            .get_mut("sessionContext")
            .and_then(|c| c.get_mut("webIdFederationData"))
    {
        wrap_scalars(value);
    }

    let unknown: Vec<String> = event.keys().filter(|k| !is_known(k)).cloned().collect();
    if unknown.len() > MAX_UNKNOWN_FIELDS {
        let moved = move_to_overflow(event, &unknown[MAX_UNKNOWN_FIELDS..]);
        changed.push(format!("ctindex.overflow ({moved} fields)"));
    }

    let mut path = String::new();
    for (key, value) in event.iter_mut() {
        path.clear();
        path.push_str(key);
        enforce_limits(value, &mut path, 2, limits, &mut changed);
    }
    changed
}

/// Whether a top-level key passes [`normalize`] unchanged (the fast path
/// of [`crate::raw`] takes only events whose keys all do).
pub fn plain_top_key(key: &str) -> bool {
    !(key.len() > MAX_KEY_BYTES || crate::raw::dotted_or_blank(key.as_bytes()) || reserved_top_key(key))
}

/// Whether [`normalize`] might change a top-level field of this class
/// ([`class_of`] its key), judging by the shape of its JSON text. False means it certainly leaves it as it is
/// (given at most [`MAX_UNKNOWN_FIELDS`] unknown fields and plain top-level
/// keys); true may be a false alarm.
pub fn may_change(class: FieldClass, text: &[u8], shape: &Shape, limits: &Limits) -> bool {
    let container = matches!(shape.first, b'{' | b'[');
    // A container at the value's own level sits at depth 2 in the index.
    if shape.longest_string > limits.max_string_bytes
        || shape.longest_key > MAX_KEY_BYTES
        || (container && shape.depth + 1 > limits.max_depth)
    {
        return true;
    }
    let null = shape.first == b'n';
    match class {
        FieldClass::FreeForm => !(shape.first == b'{' || null || (shape.first == b'[' && !shape.scalar_elements)),
        FieldClass::Scalar => as_text(shape),
        // Strings may read "TRUE" ([`fix_boolean`]).
        FieldClass::Boolean => as_text(shape) || shape.first == b'"',
        // Inside the typed objects dotted and blank keys are renamed, and
        // userIdentity holds a free-form part (webIdFederationData).
        FieldClass::Structured => {
            !(shape.first == b'{' || null) || shape.odd_key || shape.unicode_escape || webid_not_object(text)
        }
        FieldClass::Known | FieldClass::Unknown => false,
    }
}

/// Whether a value of this shape is made text in a keyword, text, date or
/// boolean field: an object, or an array holding a container.
fn as_text(shape: &Shape) -> bool {
    shape.first == b'{' || (shape.first == b'[' && shape.depth >= 2)
}

/// Whether a `webIdFederationData` in the text holds something other than
/// an object (which [`normalize`] wraps); it is nearly always `{}`.
fn webid_not_object(text: &[u8]) -> bool {
    const KEY: &[u8] = b"\"webIdFederationData\"";
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    FINDER.find_iter(text).any(|at| {
        let colon = crate::raw::skip_ws(text, at + KEY.len());
        let value = crate::raw::skip_ws(text, colon + 1);
        !matches!(text.get(value), Some(b'{') | Some(b'n'))
    })
}

/// The second try for a document the cluster refused to parse: every
/// top-level field the template does not know moves to `ctindex.overflow`.
/// Returns false when there was nothing to move (so retrying cannot help).
pub fn quarantine(doc: &mut Map<String, Value>) -> bool {
    let unknown: Vec<String> = doc.keys().filter(|k| !is_known(k)).cloned().collect();
    if unknown.is_empty() {
        return false;
    }
    let moved = move_to_overflow(doc, &unknown);
    if let Some(Value::Object(meta)) = doc.get_mut("ctindex") {
        let note = Value::String(format!("ctindex.overflow ({moved} fields, refused by the cluster)"));
        match meta.get_mut("truncated") {
            Some(Value::Array(list)) => list.push(note),
            _ => {
                meta.insert("truncated".into(), Value::Array(vec![note]));
            }
        }
    }
    true
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Object(_) | Value::Array(_))
}

/// Moves the named top-level fields into `ctindex.overflow`; returns how many.
fn move_to_overflow(event: &mut Map<String, Value>, keys: &[String]) -> usize {
    let mut overflow = Map::new();
    for key in keys {
        if let Some(value) = event.remove(key) {
            overflow.insert(key.clone(), value);
        }
    }
    let moved = overflow.len();
    let meta = event.entry("ctindex").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        match meta.get_mut("overflow") {
            Some(Value::Object(existing)) => existing.extend(overflow),
            _ => {
                meta.insert("overflow".into(), Value::Object(overflow));
            }
        }
    }
    moved
}

fn wrap(value: Value) -> Value {
    let mut wrapped = Map::new();
    wrapped.insert("_value".into(), value);
    Value::Object(wrapped)
}

/// Free-form fields are objects (or arrays of objects) in the index: any
/// other value, at the top or as an array element, becomes `{"_value": …}`.
fn wrap_scalars(value: &mut Value) {
    match value {
        Value::Object(_) | Value::Null => {}
        Value::Array(items) => {
            for item in items.iter_mut() {
                if !matches!(item, Value::Object(_)) {
                    *item = wrap(item.take());
                }
            }
        }
        other => *other = wrap(other.take()),
    }
}

/// `"TRUE"`, `" false "`, … become booleans; other odd values are left for
/// the template's `ignore_malformed`.
fn fix_boolean(value: &mut Value) {
    if let Value::String(s) = value {
        let t = s.trim();
        if t.eq_ignore_ascii_case("true") {
            *value = Value::Bool(true);
        } else if t.eq_ignore_ascii_case("false") {
            *value = Value::Bool(false);
        }
    }
}

/// Renames keys the cluster refuses. Outside the free-form payloads a dot
/// would be read as a path and a blank key is refused; at the top, metadata
/// names are refused; anywhere, very long keys are. Recurses into
/// `userIdentity` and `tlsDetails` (typed objects) and checks key length in
/// the payloads.
fn sanitize_keys(map: &mut Map<String, Value>, top: bool, changed: &mut Vec<String>) {
    let bad =
        |k: &str| k.len() > MAX_KEY_BYTES || k.contains('.') || k.trim().is_empty() || (top && reserved_top_key(k));
    if map.keys().any(|k| bad(k)) {
        let old = std::mem::take(map);
        for (key, value) in old {
            let mut new_key = if bad(&key) {
                let mut k = key.replace('.', "_");
                if k.trim().is_empty() {
                    k = "_blank".into();
                }
                if top && (METADATA_NAMES.contains(&k.as_str()) || crate::fields::is_ecs_root(&k)) {
                    k.insert(0, '_');
                }
                cut_key(&mut k);
                changed.push(key.clone());
                k
            } else {
                key
            };
            while map.contains_key(&new_key) {
                new_key.push('_');
            }
            map.insert(new_key, value);
        }
    }
    if top {
        for (key, value) in map.iter_mut() {
            match (class_of(key), value) {
                (FieldClass::Structured, Value::Object(inner)) => sanitize_keys(inner, false, changed),
                (FieldClass::FreeForm, value) => cap_key_lengths(value, changed),
                _ => {}
            }
        }
    } else {
        for value in map.values_mut() {
            if let Value::Object(inner) = value {
                sanitize_keys(inner, false, changed);
            }
        }
    }
}

/// Shortens keys over [`MAX_KEY_BYTES`] anywhere inside a payload.
fn cap_key_lengths(value: &mut Value, changed: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.keys().any(|k| k.len() > MAX_KEY_BYTES) {
                let old = std::mem::take(map);
                for (mut key, inner) in old {
                    if key.len() > MAX_KEY_BYTES {
                        changed.push(format!("{}…", &key[..key.floor_char_boundary(40)]));
                        cut_key(&mut key);
                    }
                    map.insert(key, inner);
                }
            }
            map.values_mut().for_each(|v| cap_key_lengths(v, changed));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cap_key_lengths(v, changed)),
        _ => {}
    }
}

fn cut_key(key: &mut String) {
    if key.len() > MAX_KEY_BYTES {
        let cut = key.floor_char_boundary(MAX_KEY_BYTES);
        key.truncate(cut);
    }
}

/// Cuts strings over the size limit and stringifies nesting over the depth
/// limit, recording each path it changed.
fn enforce_limits(value: &mut Value, path: &mut String, depth: usize, limits: &Limits, changed: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() > limits.max_string_bytes => {
            truncate_string(s, limits.max_string_bytes);
            note(changed, path);
        }
        Value::Object(_) | Value::Array(_) if depth > limits.max_depth => {
            let mut text = value.to_string();
            truncate_string(&mut text, limits.max_string_bytes);
            *value = Value::String(text);
            note(changed, path);
        }
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                enforce_limits(inner, path, depth + 1, limits, changed);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            // Arrays do not add a level in the index: their elements sit at the same path.
            for inner in items.iter_mut() {
                enforce_limits(inner, path, depth, limits, changed);
            }
        }
        _ => {}
    }
}

/// Records a changed path, once: the elements of an array share their
/// array's path, and a field made text and then cut is one change. (What
/// was recorded depends only on the field itself, so the fast path, which
/// normalises only the fields that may change, records the same.)
fn note(changed: &mut Vec<String>, path: &str) {
    if changed.last().map(String::as_str) != Some(path) {
        changed.push(path.to_string());
    }
}

/// Marks where a string was cut.
pub const TRUNCATION_MARK: &str = "…[truncated by ctindex]";

/// Shortens `s` to at most `max` bytes (on a character boundary), marking the cut.
fn truncate_string(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let cut = s.floor_char_boundary(max.saturating_sub(TRUNCATION_MARK.len()));
    s.truncate(cut);
    s.push_str(TRUNCATION_MARK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalized(v: Value, limits: Limits) -> (Value, Vec<String>) {
        let Value::Object(mut m) = v else { panic!() };
        let changed = normalize(&mut m, &limits);
        (Value::Object(m), changed)
    }

    #[test]
    fn shapes_follow_the_template() {
        let cases = vec![
            (
                json!({"requestParameters": "{\"a\":1}", "resources": [{"ARN": "a"}, "b", [1]]}),
                json!({"requestParameters": {"_value": "{\"a\":1}"}, "resources": [{"ARN": "a"}, {"_value": "b"}, {"_value": [1]}]}),
            ),
            (
                json!({"readOnly": " TRUE ", "managementEvent": "False"}),
                json!({"readOnly": true, "managementEvent": false}),
            ),
            (json!({"readOnly": "yes"}), json!({"readOnly": "yes"})),
            (
                json!({"managementEvent": {}, "readOnly": [[true]]}),
                json!({"managementEvent": "{}", "readOnly": "[[true]]"}),
            ),
            (
                json!({"userAgent": {"a": 1}, "errorCode": ["x"]}),
                json!({"userAgent": "{\"a\":1}", "errorCode": ["x"]}),
            ),
            (
                json!({"userIdentity": "arn:aws:iam::1:root"}),
                json!({"userIdentity": {"_value": "arn:aws:iam::1:root"}}),
            ),
            (
                json!({"userIdentity": {"sessionContext": {"webIdFederationData": "x"}}}),
                json!({"userIdentity": {"sessionContext": {"webIdFederationData": {"_value": "x"}}}}),
            ),
            (
                json!({"a.b": 1, "_id": 2, " ": 3, "userIdentity": {"x.y": 1}, "requestParameters": {"k.v": 1}}),
                json!({"a_b": 1, "__id": 2, "_blank": 3, "userIdentity": {"x_y": 1}, "requestParameters": {"k.v": 1}}),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalized(input.clone(), Limits::default()).0, want, "{input}");
        }
    }

    #[test]
    fn long_keys_and_many_unknown_fields() {
        let long = "k".repeat(1000);
        let (v, changed) = normalized(
            json!({"requestParameters": {long.clone(): {"x": 1}}}),
            Limits::default(),
        );
        let key = v["requestParameters"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        assert_eq!(key.len(), MAX_KEY_BYTES);
        assert_eq!(changed.len(), 1);

        let mut many = Map::new();
        for i in 0..150 {
            many.insert(format!("custom{i:03}"), json!(i));
        }
        many.insert("eventName".into(), json!("X"));
        let (v, _) = normalized(Value::Object(many), Limits::default());
        let top = v.as_object().unwrap();
        assert_eq!(
            top.keys().filter(|k| k.starts_with("custom")).count(),
            MAX_UNKNOWN_FIELDS
        );
        assert_eq!(v["ctindex"]["overflow"].as_object().unwrap().len(), 50);
        assert_eq!(v["eventName"], json!("X"));
    }

    #[test]
    fn oversized_and_overdeep_parts_are_cut_and_flagged() {
        let long = "é".repeat(200);
        let (v, changed) = normalized(
            json!({"requestParameters": {"policy": long, "a": {"b": {"c": {"d": 1}}}, "list": [{"x": "short"}]}}),
            Limits {
                max_string_bytes: 100,
                max_depth: 4,
            },
        );
        let policy = v["requestParameters"]["policy"].as_str().unwrap();
        assert!(policy.len() <= 100 && policy.ends_with(TRUNCATION_MARK), "{policy}");
        assert_eq!(v["requestParameters"]["a"]["b"]["c"], json!("{\"d\":1}"));
        assert_eq!(v["requestParameters"]["list"], json!([{"x": "short"}]));
        assert_eq!(changed, ["requestParameters.a.b.c", "requestParameters.policy"]);
    }

    #[test]
    fn quarantine_moves_unknown_fields() {
        let Value::Object(mut doc) =
            json!({"eventName": "X", "weird": {"a": 1}, "other": "s", "ctindex": {"channel": "unknown"}})
        else {
            panic!()
        };
        assert!(quarantine(&mut doc));
        assert_eq!(doc["ctindex"]["overflow"], json!({"weird": {"a": 1}, "other": "s"}));
        assert!(doc.get("weird").is_none());
        assert_eq!(doc["ctindex"]["truncated"].as_array().unwrap().len(), 1);
        assert!(!quarantine(&mut doc), "nothing left to move");
    }
}
