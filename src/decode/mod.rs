//! Decoding: the bytes of one input file in, CloudTrail events out.
//!
//! Owns gzip detection and every container shape ctindex understands:
//! `{"Records":[…]}` (what CloudTrail writes to S3), plain JSON arrays of
//! events, NDJSON / JSON Lines, a single pretty-printed event, and the common
//! envelopes around events (EventBridge `detail`, LookupEvents
//! `CloudTrailEvent` strings and the `{"Events":[…],"NextToken":…}` output
//! of `aws cloudtrail lookup-events` around them, CloudWatch Logs
//! `logEvents[].message`).
//!
//! Pure and synchronous: no I/O, no network, no logging. Invariant: it never
//! panics on input, and every value of the input ends up either as an event or
//! as a [`Reject`] that says where it was and why it was not taken. A file that
//! breaks off part-way (truncated gzip or JSON) keeps the events before the break.

use std::fmt;

pub mod gunzip;
pub mod stream;

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
    /// Its text when it did not parse (invalid UTF-8 replaced), so it can be
    /// dead-lettered all the same.
    pub text: Option<String>,
}

impl Reject {
    /// What the dead-letter file keeps of it: the value, or its text as a string.
    pub fn dead_letter_event(&self) -> Option<Value> {
        match (&self.raw, &self.text) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Some(text)) => Some(Value::String(text.clone())),
            (None, None) => None,
        }
    }

    /// A value that is not valid JSON.
    fn unparsed(position: Position, bytes: &[u8], error: &serde_json::Error) -> Reject {
        Reject {
            position,
            reason: format!("not valid JSON: {}", json_error(error)),
            raw: None,
            text: Some(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// serde_json's message, with what it means where that is not obvious.
fn json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.contains("recursion limit exceeded") {
        format!("nested deeper than {MAX_NESTING} levels ({text})")
    } else if text.contains("control character") {
        format!("a raw control character (such as NUL) inside a string; JSON needs it escaped ({text})")
    } else if text.contains("invalid unicode code point") || text.contains("UTF-8") {
        format!("invalid UTF-8 ({text})")
    } else {
        text
    }
}

/// serde_json's recursion limit: deeper values cannot be parsed (the
/// cluster's own limits are far lower; see `normalize`).
pub const MAX_NESTING: usize = 128;

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

/// Decodes one file's bytes, gzip-compressed or not, into events (the
/// whole file at once; the pipeline streams with [`stream::read`]).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    struct Collect(Decoded);
    impl stream::Found for Collect {
        fn text(&mut self, _: &[u8], _: bool, _: Position) -> stream::Took {
            stream::Took::Unread
        }
        fn event(&mut self, event: Event, position: Position) {
            self.0.push(event, position);
        }
        fn reject(&mut self, reject: Reject) {
            self.0.rejects.push(reject);
        }
    }
    let mut collect = Collect(Decoded::default());
    let finished = stream::read(bytes, &mut collect)?;
    collect.0.truncated = finished.truncated;
    Ok(collect.0)
}

/// What receives the values [`extract`] finds.
pub(crate) trait Receive {
    fn event(&mut self, event: Event, position: Position);
    fn reject(&mut self, reject: Reject);
}

impl Receive for Decoded {
    fn event(&mut self, event: Event, position: Position) {
        self.push(event, position);
    }
    fn reject(&mut self, reject: Reject) {
        self.rejects.push(reject);
    }
}

pub(crate) const DIGEST: &str = "a CloudTrail digest, not an event";

/// True when the bytes start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A file that starts with `{`: a Records file, a single event or envelope,
/// or NDJSON (several objects, one per line).
pub(crate) fn decode_object_or_lines(text: &[u8]) -> Result<Decoded, DecodeError> {
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
        match first {
            Ok(()) => {
                for (i, value) in records.into_iter().enumerate() {
                    extract(value, Position::Record(i), &mut decoded);
                }
                if !rest_is_blank {
                    decoded.truncated = Some("unexpected data after the Records object".into());
                }
            }
            // Read it again element by element: a bad element costs only itself.
            Err(e) => {
                drop(records);
                if let Err(why) = scan::records_object(text, &mut decoded) {
                    decoded.truncated = Some(why);
                }
                if decoded.events.is_empty() && decoded.rejects.is_empty() {
                    return Err(DecodeError::NotJson(e.to_string()));
                }
            }
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
            Err(e) => decoded.rejects.push(Reject::unparsed(position, line, &e)),
        }
    }
    decoded
}

/// True for an object that looks like a CloudTrail event: a string
/// `eventName` and at least one more of the fields every event has; or a
/// CloudTrail Insights event, which has no `eventName` of its own (it is in
/// `insightDetails`): `eventType` `AwsCloudTrailInsight` or
/// `eventCategory` `Insight`, with an `eventID` or `eventTime`.
pub fn is_event(object: &(impl Lookup + ?Sized)) -> bool {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let has_any = |keys: &[&str]| keys.iter().any(|k| object.get(k).is_some());
    match object.get("eventName") {
        Some(Value::String(_)) => return has_any(&["eventSource", "eventVersion", "eventTime", "eventID"]),
        Some(_) => return false,
        None => {}
    }
    (text("eventType") == Some("AwsCloudTrailInsight") || text("eventCategory") == Some("Insight"))
        && has_any(&["eventID", "eventTime"])
}

/// Reads an event's top-level fields: a whole event, or the fields the
/// fast path parsed (the transform's `View`).
pub trait Lookup {
    fn get(&self, key: &str) -> Option<&Value>;
}

impl Lookup for Map<String, Value> {
    fn get(&self, key: &str) -> Option<&Value> {
        Map::get(self, key)
    }
}

/// Data-lake exports write all-lowercase keys (`eventname`, `awsregion`):
/// such an object gets CloudTrail's spelling back for its top-level fields.
fn restore_key_case(object: &mut Event) {
    if !restores_key_case(|key| object.contains_key(key)) {
        return;
    }
    for canonical in crate::fields::TOP_LEVEL_FIELDS {
        let lower = canonical.to_ascii_lowercase();
        if lower != *canonical
            && !object.contains_key(*canonical)
            && let Some(value) = object.remove(&lower)
        {
            object.insert((*canonical).to_string(), value);
        }
    }
}

/// Whether an object with these top-level keys (`has`) gets CloudTrail's
/// spelling back ([`restore_key_case`]): the fast path leaves such events to
/// the value path.
pub fn restores_key_case(has: impl Fn(&str) -> bool) -> bool {
    !has("eventName") && has("eventname")
}

/// Finds the events in one value, unwrapping the known envelopes.
fn extract<R: Receive + ?Sized>(value: Value, position: Position, out: &mut R) {
    let value = match value {
        Value::Object(mut object) => {
            restore_key_case(&mut object);
            Value::Object(object)
        }
        other => other,
    };
    match value {
        Value::Object(object) if is_event(&object) => out.event(object, position),
        Value::Object(mut object) => {
            if let Some(Value::Array(records)) = object.remove("Records") {
                for record in records {
                    extract(record, position, out);
                }
            } else if matches!(object.get("Events"), Some(Value::Array(_))) {
                // `aws cloudtrail lookup-events` output: {"Events":[…],"NextToken":…}.
                if let Some(Value::Array(events)) = object.remove("Events") {
                    for event in events {
                        extract(event, position, out);
                    }
                }
            } else if object.contains_key("digestStartTime") || object.contains_key("digestEndTime") {
                out.reject(Reject {
                    position,
                    reason: DIGEST.into(),
                    raw: None,
                    text: None,
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
                    Err(e) => out.reject(Reject {
                        position,
                        reason: format!("CloudTrailEvent is not valid JSON: {e}"),
                        raw: Some(Value::Object(object)),
                        text: None,
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
                        _ => out.reject(Reject {
                            position,
                            reason: "CloudWatch Logs event without a JSON message".into(),
                            raw: Some(log_event),
                            text: None,
                        }),
                    }
                }
            } else {
                let keys: Vec<&str> = object.keys().take(5).map(String::as_str).collect();
                out.reject(Reject {
                    position,
                    reason: format!(
                        "not a CloudTrail event (needs eventName and one of eventSource, eventVersion, eventTime, eventID; keys: {})",
                        keys.join(", ")
                    ),
                    raw: Some(Value::Object(object)),
                    text: None,
                });
            }
        }
        Value::Array(values) => {
            for value in values {
                extract(value, position, out);
            }
        }
        other => out.reject(Reject {
            position,
            reason: format!("not a CloudTrail event (a JSON {})", json_kind(&other)),
            raw: Some(other),
            text: None,
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

/// Where JSON values end, found without parsing them: how an array of
/// events is read element by element, each parsed on its own, so that an
/// element that does not parse (nested too deep, a raw NUL, invalid UTF-8,
/// a syntax error) is rejected with its position and the elements after it
/// are still read. Nesting is a counter, not recursion: any depth is fine.
pub(crate) mod scan {
    use serde_json::Value;

    use super::{Decoded, Position, Reject, extract};

    // The JSON text helpers live with the other text-level code, below the decoder.
    pub(crate) use crate::raw::{skip_ws, string_end, value_end};

    /// Reads the array at `start` (a `[`) element by element into `out`;
    /// returns where it ends, or why it breaks off.
    pub fn array(text: &[u8], start: usize, out: &mut Decoded) -> Result<usize, String> {
        let mut pos = skip_ws(text, start + 1);
        if text.get(pos) == Some(&b']') {
            return Ok(pos + 1);
        }
        let mut i = 0;
        loop {
            let Some(end) = value_end(text, pos) else {
                return Err(format!("JSON breaks off inside record {i}"));
            };
            let element = &text[pos..end];
            match serde_json::from_slice::<Value>(element) {
                Ok(value) => extract(value, Position::Record(i), out),
                Err(e) => out.rejects.push(Reject::unparsed(Position::Record(i), element, &e)),
            }
            pos = skip_ws(text, end);
            match text.get(pos) {
                Some(b',') => pos = skip_ws(text, pos + 1),
                Some(b']') => return Ok(pos + 1),
                Some(&other) => {
                    return Err(format!(
                        "JSON breaks off after record {i}: unexpected {:?}",
                        char::from(other)
                    ));
                }
                None => return Err(format!("JSON breaks off after record {i}")),
            }
            i += 1;
        }
    }

    /// Reads `{"Records":[…], …}` with [`array`] for the Records; other
    /// keys are skipped. Returns why it breaks off, if it does.
    pub fn records_object(text: &[u8], out: &mut Decoded) -> Result<(), String> {
        let mut pos = skip_ws(text, 1);
        let mut seen = false;
        loop {
            match text.get(pos) {
                Some(b'}') => break,
                Some(b'"') => {}
                Some(_) => return Err(format!("JSON breaks off at byte {pos}: a key was expected")),
                None => return Err("JSON breaks off: the object is not closed".into()),
            }
            let key_end = string_end(text, pos).ok_or("JSON breaks off inside a key")?;
            let key = &text[pos..key_end];
            pos = skip_ws(text, key_end);
            if text.get(pos) != Some(&b':') {
                return Err(format!("JSON breaks off at byte {pos}: ':' was expected"));
            }
            pos = skip_ws(text, pos + 1);
            if key == b"\"Records\"" && !seen && text.get(pos) == Some(&b'[') {
                seen = true;
                pos = array(text, pos, out)?;
            } else {
                pos = value_end(text, pos).ok_or("JSON breaks off after the Records")?;
            }
            pos = skip_ws(text, pos);
            match text.get(pos) {
                Some(b',') => pos = skip_ws(text, pos + 1),
                Some(b'}') => break,
                _ => return Err(format!("JSON breaks off at byte {pos}")),
            }
        }
        if skip_ws(text, pos + 1) < text.len() {
            return Err("unexpected data after the Records object".into());
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
            // `aws cloudtrail lookup-events` output: entries with CloudTrailEvent strings,
            // NextToken after or before the Events, or events as they are.
            (
                format!(
                    r#"{{"Events":[{{"EventId":"a","EventName":"ListBuckets","CloudTrailEvent":{}}},{{"EventId":"b","CloudTrailEvent":{}}}],"NextToken":"t=="}}"#,
                    serde_json::to_string(EV1).unwrap(),
                    serde_json::to_string(EV2).unwrap()
                ),
                vec!["a", "b"],
            ),
            (
                format!(
                    "{{\n  \"NextToken\": \"t==\",\n  \"Events\": [\n    {{\"CloudTrailEvent\": {}}},\n    {EV2}\n  ]\n}}\n",
                    serde_json::to_string(EV1).unwrap()
                ),
                vec!["a", "b"],
            ),
            (format!(r#"{{"Other":1,"Events":[{EV1}]}}"#), vec!["a"]),
            (r#"{"Events":[]}"#.to_string(), vec![]),
            // Insights events: their eventName is inside insightDetails.
            (
                r#"{"eventVersion":"1.07","eventTime":"2019-10-15T21:13:00Z","eventID":"ins","eventType":"AwsCloudTrailInsight","insightDetails":{"eventName":"X"},"eventCategory":"Insight"}"#.to_string(),
                vec!["ins"],
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
            (br#"{"Events": [{"EventId": "x"}], "NextToken": "t"}"#, |e| {
                matches!(e, DecodeError::NotCloudTrail(_))
            }),
            // Neither an event nor an Insights event.
            (br#"{"eventCategory": "Insight", "note": 1}"#, |e| {
                matches!(e, DecodeError::NotCloudTrail(_))
            }),
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

    /// Elements that do not parse cost only themselves, in Records files
    /// and in plain arrays, compact or pretty-printed, gzipped or not.
    #[test]
    fn bad_elements_are_rejected_and_the_rest_of_the_file_kept() {
        let deep = format!(
            r#"{{"eventName":"Deep","eventID":"d","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let nul = "{\"eventName\":\"Nul\",\"eventID\":\"n\",\"x\":\"a\0b\"}";
        let mut utf8 = br#"{"eventName":"Bad","eventID":"u","x":"a"#.to_vec();
        utf8.extend_from_slice(b"\xff\xfe");
        utf8.extend_from_slice(br#"b"}"#);
        let escaped = r#"{"eventName":"Esc","eventID":"e","eventSource":"s","x":"a\u0000b \ud83d\ude00 \u00e9"}"#;
        let emoji = "{\"eventName\":\"Emoji\",\"eventID\":\"m\",\"eventSource\":\"s\",\"x\":\"\u{1F600} caf\u{e9} \u{65e5}\u{672c}\"}";
        let parts: Vec<&[u8]> = vec![
            EV1.as_bytes(),
            deep.as_bytes(),
            nul.as_bytes(),
            &utf8,
            escaped.as_bytes(),
            emoji.as_bytes(),
            EV2.as_bytes(),
        ];
        for (open, sep, close) in [
            (r#"{"Records":["#, ",", "]}"),
            ("[", ",", "]"),
            ("{\n  \"Records\": [\n    ", ",\n    ", "\n  ]\n}\n"),
        ] {
            let mut text = open.as_bytes().to_vec();
            text.extend_from_slice(&parts.join(sep.as_bytes()));
            text.extend_from_slice(close.as_bytes());
            for input in [text.clone(), gz(&text)] {
                let d = decode(&input).unwrap_or_else(|e| panic!("{open}: {e}"));
                assert_eq!(ids(&d), ["a", "e", "m", "b"], "{open}");
                let want = [0, 4, 5, 6].map(Position::Record);
                assert_eq!(d.positions, want, "{open}");
                assert!(d.truncated.is_none(), "{open}: {:?}", d.truncated);
                let rejected: Vec<(Position, &str)> =
                    d.rejects.iter().map(|r| (r.position, r.reason.as_str())).collect();
                assert_eq!(rejected.len(), 3, "{open}: {rejected:?}");
                assert_eq!(rejected[0].0, Position::Record(1));
                assert!(
                    rejected[0].1.contains("nested deeper than 128 levels"),
                    "{}",
                    rejected[0].1
                );
                assert_eq!(rejected[1].0, Position::Record(2));
                assert!(rejected[1].1.contains("raw control character"), "{}", rejected[1].1);
                assert_eq!(rejected[2].0, Position::Record(3));
                assert!(rejected[2].1.contains("invalid UTF-8"), "{}", rejected[2].1);
                // The text of each is kept for the dead-letter file.
                let kept = d.rejects[1].dead_letter_event().unwrap();
                assert!(kept.as_str().unwrap().contains(r#""eventID":"n""#), "{kept}");
                assert_eq!(d.events[1]["x"], "a\u{0}b \u{1F600} \u{e9}");
                assert_eq!(d.events[2]["x"], "\u{1F600} caf\u{e9} \u{65e5}\u{672c}");
            }
        }
    }

    #[test]
    fn a_file_that_breaks_off_after_a_bad_element_names_the_record() {
        let deep = format!(
            r#"{{"eventName":"Deep","x":{}{}}}"#,
            r#"{"a":"#.repeat(150),
            "}".repeat(150)
        );
        let text = format!(r#"{{"Records":[{EV1},{deep},{EV2},{{"eventVersion":"1.0","#);
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].position, Position::Record(1));
        assert_eq!(d.truncated.as_deref(), Some("JSON breaks off inside record 3"));

        let text = format!("[{EV1},{deep},{EV2}");
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert_eq!(d.truncated.as_deref(), Some("JSON breaks off after record 2"));

        let full = gz(format!(r#"{{"Records":[{EV1},{deep},{EV2},{EV1}]}}"#).as_bytes());
        let d = decode(&full[..full.len() - 12]).unwrap();
        assert_eq!(d.events[0]["eventID"], "a");
        let why = d.truncated.unwrap();
        assert!(why.starts_with("corrupt gzip data") && why.contains("record"), "{why}");
    }

    #[test]
    fn ndjson_keeps_the_text_of_bad_lines() {
        let text = format!("{EV1}\n{{\"eventName\":\"x\0\"}}\n{}\n{EV2}\n", "[".repeat(300));
        let d = decode(text.as_bytes()).unwrap();
        assert_eq!(ids(&d), ["a", "b"]);
        assert_eq!(d.rejects.len(), 2);
        assert!(d.rejects[0].reason.contains("raw control character"));
        assert!(d.rejects[1].reason.contains("nested deeper"));
        assert_eq!(d.rejects[1].dead_letter_event(), Some(Value::String("[".repeat(300))));
    }
}
