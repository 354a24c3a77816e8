//! Decoding: the bytes of one input file in, CloudTrail events out.
//!
//! Owns gzip detection and every container shape ctindex understands:
//! `{"Records":[…]}` (what CloudTrail writes to S3), plain JSON arrays of
//! events, NDJSON / JSON Lines, a single pretty-printed event, and the common
//! envelopes around events (EventBridge `detail`, LookupEvents
//! `CloudTrailEvent` strings, CloudWatch Logs `logEvents[].message`).
//!
//! Pure and synchronous: no I/O, no network, no logging. Invariant: it never
//! panics on input, and every value of the input ends up either as an event or
//! as a [`Reject`] that says where it was and why it was not taken. A file that
//! breaks off part-way (truncated gzip or JSON) keeps the events before the break.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// One CloudTrail event: the top-level JSON object as CloudTrail wrote it.
pub type Event = Map<String, Value>;

/// Where in a file a value was found, for messages and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The n-th element (0-based) of the `Records` array or top-level array.
    Record(usize),
    /// The n-th line (1-based) of an NDJSON file.
    Line(usize),
    /// The file as a whole (a single object).
    Whole,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Record(i) => write!(f, "record {i}"),
            Position::Line(n) => write!(f, "line {n}"),
            Position::Whole => f.write_str("whole file"),
        }
    }
}

/// A value that was read but is not a usable CloudTrail event.
#[derive(Debug)]
pub struct Reject {
    pub position: Position,
    pub reason: String,
    /// The value itself when it parsed as JSON, so it can be dead-lettered.
    pub raw: Option<Value>,
}

/// What a file yielded.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<Event>,
    /// The position of each event, parallel to `events`.
    pub positions: Vec<Position>,
    pub rejects: Vec<Reject>,
    /// Set when the file broke off (truncated gzip or JSON) after some events
    /// were read: they are kept, and this says what was lost.
    pub truncated: Option<String>,
}

impl Decoded {
    fn push(&mut self, event: Event, position: Position) {
        self.events.push(event);
        self.positions.push(position);
    }
}

/// Why a whole file was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("a CloudTrail digest file, not events")]
    Digest,
    #[error("corrupt gzip data: {0}")]
    Gzip(String),
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("not a CloudTrail file: {0}")]
    NotCloudTrail(String),
}

/// Decodes one file's bytes, gzip-compressed or not.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if is_gzip(bytes) {
        let (plain, gzip_error) = gunzip(bytes);
        if plain.is_empty() {
            return Err(match gzip_error {
                Some(e) => DecodeError::Gzip(e),
                None => DecodeError::Empty,
            });
        }
        let mut decoded = decode_json(&plain);
        if let Some(e) = gzip_error {
            // The events before the break are kept; the break is reported.
            match &mut decoded {
                Ok(d) if !d.events.is_empty() => {
                    d.truncated.get_or_insert_with(|| format!("corrupt gzip data: {e}"));
                }
                _ => return Err(DecodeError::Gzip(e)),
            }
        }
        decoded
    } else {
        decode_json(bytes)
    }
}

/// True when the bytes start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses all gzip members; on an error, returns what came out before it.
fn gunzip(bytes: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).min(256 << 20));
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    match decoder.read_to_end(&mut out) {
        Ok(_) => (out, None),
        Err(e) => (out, Some(e.to_string())),
    }
}

/// Decodes uncompressed JSON text in any of the supported shapes.
pub fn decode_json(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = match bytes.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => i,
        None => return Err(DecodeError::Empty),
    };
    let text = &bytes[start..];
    let decoded = match text[0] {
        b'[' => decode_array(text)?,
        b'{' => decode_object_or_lines(text)?,
        _ => decode_lines(text),
    };
    finish(decoded)
}

/// Turns "nothing usable" into the right whole-file error.
fn finish(decoded: Decoded) -> Result<Decoded, DecodeError> {
    if !decoded.events.is_empty() {
        return Ok(decoded);
    }
    match decoded.rejects.first() {
        None => Ok(decoded),
        Some(first) if first.reason == DIGEST => Err(DecodeError::Digest),
        Some(first) if decoded.rejects.iter().all(|r| r.raw.is_none()) => {
            Err(DecodeError::NotJson(format!("{}: {}", first.position, first.reason)))
        }
        Some(first) => Err(DecodeError::NotCloudTrail(format!(
            "no CloudTrail events found ({} value(s); {}: {})",
            decoded.rejects.len(),
            first.position,
            first.reason
        ))),
    }
}

const DIGEST: &str = "a CloudTrail digest, not an event";

/// A top-level JSON array: each element an event (or an envelope of events).
/// Elements before a syntax error are kept.
fn decode_array(text: &[u8]) -> Result<Decoded, DecodeError> {
    let mut values = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(text);
    let result = SeqSeed(&mut values).deserialize(&mut de).and_then(|()| de.end());
    let mut decoded = Decoded::default();
    for (i, value) in values.into_iter().enumerate() {
        extract(value, Position::Record(i), &mut decoded);
    }
    if let Err(e) = result {
        if decoded.events.is_empty() && decoded.rejects.is_empty() {
            return Err(DecodeError::NotJson(e.to_string()));
        }
        decoded.truncated = Some(format!("JSON breaks off: {e}"));
    }
    Ok(decoded)
}

/// A file that starts with `{`: a Records file, a single event or envelope,
/// or NDJSON (several objects, one per line).
fn decode_object_or_lines(text: &[u8]) -> Result<Decoded, DecodeError> {
    let mut records = Vec::new();
    let mut other = Map::new();
    let mut saw_records = false;
    let mut de = serde_json::Deserializer::from_slice(text);
    let first = ObjectSeed {
        records: &mut records,
        other: &mut other,
        saw_records: &mut saw_records,
    }
    .deserialize(&mut de);
    let rest_is_blank = first.is_ok() && de.end().is_ok();

    if saw_records {
        let mut decoded = Decoded::default();
        for (i, value) in records.into_iter().enumerate() {
            extract(value, Position::Record(i), &mut decoded);
        }
        match first {
            Ok(()) if rest_is_blank => {}
            Ok(()) => decoded.truncated = Some("unexpected data after the Records object".into()),
            Err(e) if decoded.events.is_empty() && decoded.rejects.is_empty() => {
                return Err(DecodeError::NotJson(e.to_string()));
            }
            Err(e) => decoded.truncated = Some(format!("JSON breaks off: {e}")),
        }
        return Ok(decoded);
    }
    if rest_is_blank {
        let mut decoded = Decoded::default();
        extract(Value::Object(other), Position::Whole, &mut decoded);
        return Ok(decoded);
    }
    // Several values, or one broken value: read it as lines.
    let decoded = decode_lines(text);
    if decoded.events.is_empty()
        && !text.contains(&b'\n')
        && let Err(e) = first
    {
        return Err(DecodeError::NotJson(e.to_string()));
    }
    Ok(decoded)
}

/// NDJSON: one value per line; a bad line is rejected, the rest go on.
fn decode_lines(text: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let position = Position::Line(i + 1);
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => extract(value, position, &mut decoded),
            Err(e) => decoded.rejects.push(Reject {
                position,
                reason: format!("not valid JSON: {e}"),
                raw: None,
            }),
        }
    }
    decoded
}

/// True for an object that looks like a CloudTrail event: a string
/// `eventName` and at least one more of the fields every event has.
pub fn is_event(object: &Event) -> bool {
    matches!(object.get("eventName"), Some(Value::String(_)))
        && ["eventSource", "eventVersion", "eventTime", "eventID"]
            .iter()
            .any(|k| object.contains_key(*k))
}

/// Data-lake exports write all-lowercase keys (`eventname`, `awsregion`):
/// such an object gets CloudTrail's spelling back for its top-level fields.
fn restore_key_case(object: &mut Event) {
    if object.contains_key("eventName") || !object.contains_key("eventname") {
        return;
    }
    for canonical in crate::normalize::TOP_LEVEL_FIELDS {
        let lower = canonical.to_ascii_lowercase();
        if lower != *canonical
            && !object.contains_key(*canonical)
            && let Some(value) = object.remove(&lower)
        {
            object.insert((*canonical).to_string(), value);
        }
    }
}

/// Finds the events in one value, unwrapping the known envelopes.
fn extract(value: Value, position: Position, out: &mut Decoded) {
    let value = match value {
        Value::Object(mut object) => {
            restore_key_case(&mut object);
            Value::Object(object)
        }
        other => other,
    };
    match value {
        Value::Object(object) if is_event(&object) => out.push(object, position),
        Value::Object(mut object) => {
            if let Some(Value::Array(records)) = object.remove("Records") {
                for record in records {
                    extract(record, position, out);
                }
            } else if object.contains_key("digestStartTime") || object.contains_key("digestEndTime") {
                out.rejects.push(Reject {
                    position,
                    reason: DIGEST.into(),
                    raw: None,
                });
            } else if matches!(object.get("detail"), Some(Value::Object(_)))
                && (object.contains_key("detail-type") || object.contains_key("source"))
            {
                if let Some(detail) = object.remove("detail") {
                    extract(detail, position, out);
                }
            } else if let Some(Value::String(inner)) = object.get("CloudTrailEvent") {
                match serde_json::from_str::<Value>(inner) {
                    Ok(inner) => extract(inner, position, out),
                    Err(e) => out.rejects.push(Reject {
                        position,
                        reason: format!("CloudTrailEvent is not valid JSON: {e}"),
                        raw: Some(Value::Object(object)),
                    }),
                }
            } else if let Some(Value::Array(log_events)) = object.remove("logEvents") {
                for log_event in log_events {
                    match log_event
                        .get("message")
                        .and_then(Value::as_str)
                        .map(serde_json::from_str::<Value>)
                    {
                        Some(Ok(inner)) => extract(inner, position, out),
                        _ => out.rejects.push(Reject {
                            position,
                            reason: "CloudWatch Logs event without a JSON message".into(),
                            raw: Some(log_event),
                        }),
                    }
                }
            } else {
                let keys: Vec<&str> = object.keys().take(5).map(String::as_str).collect();
                out.rejects.push(Reject {
                    position,
                    reason: format!(
                        "not a CloudTrail event (needs eventName and one of eventSource, eventVersion, eventTime, eventID; keys: {})",
                        keys.join(", ")
                    ),
                    raw: Some(Value::Object(object)),
                });
            }
        }
        Value::Array(values) => {
            for value in values {
                extract(value, position, out);
            }
        }
        other => out.rejects.push(Reject {
            position,
            reason: format!("not a CloudTrail event (a JSON {})", json_kind(&other)),
            raw: Some(other),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Streams the elements of a JSON array into a vector, so the elements read
/// before a syntax error survive it.
struct SeqSeed<'a>(&'a mut Vec<Value>);

impl<'de> DeserializeSeed<'de> for SeqSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SeqSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while let Some(value) = seq.next_element::<Value>()? {
            self.0.push(value);
        }
        Ok(())
    }
}

/// Reads one top-level object, streaming its `Records` array (if any) into
/// `records` and keeping the other keys in `other`.
struct ObjectSeed<'a> {
    records: &'a mut Vec<Value>,
    other: &'a mut Map<String, Value>,
    saw_records: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" && !*self.saw_records {
                *self.saw_records = true;
                map.next_value_seed(SeqSeed(self.records))?;
            } else {
                let value = map.next_value::<Value>()?;
                self.other.insert(key, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const EV1: &str = r#"{"eventVersion":"1.08","eventID":"a","eventName":"ListBuckets","eventSource":"s3.amazonaws.com","eventTime":"2024-01-02T03:04:05Z"}"#;
    const EV2: &str = r#"{"eventVersion":"1.08","eventID":"b","eventName":"GetObject","eventSource":"s3.amazonaws.com","eventTime":"2024-01-02T03:04:06Z"}"#;

    fn ids(d: &Decoded) -> Vec<&str> {
        d.events.iter().map(|e| e["eventID"].as_str().unwrap()).collect()
    }

    #[test]
    fn shapes() {
        let cases: Vec<(String, Vec<&str>)> = vec![
            (format!(r#"{{"Records":[{EV1},{EV2}]}}"#), vec!["a", "b"]),
            (format!("[{EV1},\n{EV2}]"), vec!["a", "b"]),
            (format!("{EV1}\n{EV2}\n"), vec!["a", "b"]),
            (format!("\u{feff}  {EV1}  "), vec!["a"]),
            (
                format!(r#"{{"detail-type":"AWS API Call via CloudTrail","source":"aws.s3","detail":{EV1}}}"#),
                vec!["a"],
            ),
            (
                format!(
                    r#"{{"EventId":"x","CloudTrailEvent":{}}}"#,
                    serde_json::to_string(EV2).unwrap()
                ),
                vec!["b"],
            ),
            (
                format!(
                    r#"{{"logGroup":"g","logEvents":[{{"id":"1","message":{}}}]}}"#,
                    serde_json::to_string(EV1).unwrap()
                ),
                vec!["a"],
            ),
            (r#"{"Records":[]}"#.to_string(), vec![]),
            (
                r#"{"eventname":"X","eventid":"lc","eventtime":"2024-01-01T00:00:00Z","awsregion":"x"}"#.to_string(),
                vec!["lc"],
            ),
            (r#"{"eventName":"X","eventID":"cut"}"#.to_string(), vec!["cut"]),
        ];
        for (input, want) in cases {
            let plain = decode(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(ids(&plain), want, "{input}");
            assert!(plain.rejects.is_empty() && plain.truncated.is_none(), "{input}");
            let zipped = decode(&gz(input.as_bytes())).unwrap();
            assert_eq!(ids(&zipped), want, "gzip {input}");
        }
    }

    #[test]
    fn whole_file_errors() {
        type Check = fn(&DecodeError) -> bool;
        let cases: Vec<(&[u8], Check)> = vec![
            (b"", |e| *e == DecodeError::Empty),
            (b"  \n ", |e| *e == DecodeError::Empty),
            (b"\x1f\x8b\x08\x00garbage", |e| matches!(e, DecodeError::Gzip(_))),
            (b"{\"Records\": [", |e| matches!(e, DecodeError::NotJson(_))),
            (b"hello world", |e| matches!(e, DecodeError::NotJson(_))),
            (b"{name: 'js object'}", |e| matches!(e, DecodeError::NotJson(_))),
            (br#"{"foo": 1}"#, |e| matches!(e, DecodeError::NotCloudTrail(_))),
            (b"[1, 2]", |e| matches!(e, DecodeError::NotCloudTrail(_))),
            (br#"{"digestStartTime":"x","digestEndTime":"y","logFiles":[]}"#, |e| {
                *e == DecodeError::Digest
            }),
        ];
        for (input, check) in cases {
            let err = decode(input).expect_err(&String::from_utf8_lossy(input));
            assert!(check(&err), "{}: {err:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn truncated_records_keep_the_events_before_the_break() {
        let text = format!(r#"{{"Records":[{EV1},{EV2},{{"eventVersion":"1.0","#);
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert!(d.truncated.as_deref().unwrap().contains("breaks off"));

        let full = gz(format!(r#"{{"Records":[{EV1},{EV2},{EV1}]}}"#).repeat(50).as_bytes());
        let cut = &full[..full.len() - 10];
        match decode(cut) {
            Ok(d) => assert!(d.truncated.is_some() && !d.events.is_empty()),
            Err(e) => assert!(matches!(e, DecodeError::Gzip(_)), "{e:?}"),
        }
    }

    #[test]
    fn ndjson_bad_line_is_rejected_and_the_rest_kept() {
        let text = format!("{EV1}\n{{broken\n{EV2}\n42\n");
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert_eq!(d.positions, [Position::Line(1), Position::Line(3)]);
        let where_: Vec<_> = d.rejects.iter().map(|r| r.position).collect();
        assert_eq!(where_, [Position::Line(2), Position::Line(4)]);
        assert!(d.rejects[1].raw.is_some());
    }

    #[test]
    fn non_events_inside_records_are_rejected_with_position() {
        let text = format!(r#"{{"Records":[{EV1},{{"foo":1}},{EV2}]}}"#);
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert_eq!(d.positions, [Position::Record(0), Position::Record(2)]);
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].position, Position::Record(1));
    }
}
