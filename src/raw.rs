//! Raw events: an event as its top-level fields, each still JSON text.
//!
//! The fast path of the transform. Building a full value tree of every event
//! costs most of an import's CPU, yet most of an event passes through
//! unchanged. Here an event is split into its top-level fields without
//! building values ([`RawEvent::parse`]), one cheap pass over each field's
//! text tells whether anything could change inside it ([`Shape`]), and only
//! the fields that need it (the few that classification reads, and those a
//! filter, the redaction or the template's shape rules may change) are parsed
//! into values; every other field is copied to the output as it came.
//!
//! It also holds the JSON text helpers ([`skip_ws`], [`string_end`],
//! [`value_end`]) that the decoder uses to find where values end: text-level
//! code sits here, below the decoder and the transform, and imports neither.
//!
//! Pure and synchronous. Invariant: [`Shape`] errs on the side of "may
//! change": a field it passes is one the value path would leave as it is.

use std::borrow::Cow;
#[cfg(test)]
use std::fmt;

#[cfg(test)]
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
#[cfg(test)]
use serde_json::value::RawValue;

pub(crate) mod scan;

/// An event object as (key, raw value text) pairs, in their order, with the
/// [`Shape`] of each value.
#[derive(Debug)]
pub struct RawEvent<'a> {
    pub fields: Vec<(&'a str, &'a str)>,
    pub shapes: Vec<Shape>,
    /// The whole event's text.
    pub text: &'a [u8],
    /// What the scan watched for.
    watch: &'a Watch,
}

impl<'a> RawEvent<'a> {
    /// Splits one JSON object into its top-level fields in one validating
    /// pass ([`scan::event`]). None for anything but an object, for invalid
    /// JSON, and for what that pass is unsure of (an escaped key, a `\u`
    /// surrogate, …): the value path takes those.
    /// `watch`: member keys whose absence from a field is noted in its
    /// shape ([`Shape::unwatched`]).
    pub fn parse(bytes: &'a [u8], watch: &'a Watch) -> Option<RawEvent<'a>> {
        let (fields, shapes) = scan::event(bytes, watch)?;
        Some(RawEvent {
            fields,
            shapes,
            text: bytes,
            watch,
        })
    }

    /// Like [`RawEvent::parse`], for the object at the start of `bytes`
    /// that may be followed by anything: its length too. None also when
    /// `bytes` ends inside it.
    pub fn parse_at(bytes: &'a [u8], watch: &'a Watch) -> Option<(usize, RawEvent<'a>)> {
        let (end, (fields, shapes)) = scan::event_at(bytes, watch)?;
        let event = RawEvent {
            fields,
            shapes,
            text: bytes.get(..end)?,
            watch,
        };
        Some((end, event))
    }

    /// Whether the shapes' [`Shape::unwatched`] bits answer for `watch`:
    /// the scan watched for its keys, or for none.
    pub fn scanned_for(&self, watch: &Watch) -> bool {
        std::ptr::eq(self.watch, watch) || self.watch.mask == 0
    }

    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    /// Whether a key occurs twice (the value path keeps the last one).
    /// A 64-bit signature set spares the comparisons of keys that differ.
    pub fn has_duplicate_keys(&self) -> bool {
        let mut seen = 0u64;
        for (i, (key, _)) in self.fields.iter().enumerate() {
            let b = key.as_bytes();
            let signature =
                (b.len() * 7 + b.first().map_or(0, |&c| c as usize) * 3 + b.last().map_or(0, |&c| c as usize)) % 64;
            let bit = 1u64 << signature;
            if seen & bit != 0 && self.fields[..i].iter().any(|(other, _)| other == key) {
                return true;
            }
            seen |= bit;
        }
        false
    }
}

/// The top-level fields of an object by `serde_json`, in order: the oracle
/// the scanner is tested against.
#[cfg(test)]
pub(crate) fn fields_by_serde(bytes: &[u8]) -> serde_json::Result<Vec<(Cow<'_, str>, &str)>> {
    let fields: Fields<'_> = serde_json::from_slice(bytes)?;
    Ok(fields.0.into_iter().map(|(k, v)| (k, v.get())).collect())
}

/// The top-level fields of an object, in order.
#[cfg(test)]
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[cfg(test)]
impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A key, borrowed from the input unless it holds escapes.
#[cfg(test)]
struct Key<'a>(Cow<'a, str>);

#[cfg(test)]
impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// What one pass over a field's JSON text finds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The first byte: `{`, `[`, `"`, a digit, `t`/`f`/`n`.
    pub first: u8,
    /// Deepest nesting of objects and arrays (the value itself is 1; 0 for a
    /// scalar). Arrays count too, so this is never below the index's depth.
    pub depth: usize,
    /// Longest string or key, as escaped text (never shorter than decoded).
    pub longest_string: usize,
    /// Longest key, as escaped text.
    pub longest_key: usize,
    /// Some key holds a dot, is blank, or is escaped ([`odd_key`]).
    pub odd_key: bool,
    /// Some string holds a `\u` escape (which can hide any text).
    pub unicode_escape: bool,
    /// For an array: some element is not an object.
    pub scalar_elements: bool,
    /// Whitespace between tokens (pretty-printed JSON): the text must be
    /// compacted before it goes on a line ([`write_compact`]).
    pub spaced: bool,
    /// Bit n: the [`Watch`]'s key n is certainly not a member key anywhere
    /// inside (0: nothing known).
    pub unwatched: u32,
}

/// Member keys a scan looks out for, at most 32; for each field it notes
/// which of them certainly do not occur inside ([`Shape::unwatched`]).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Each key as JSON writes it without escapes; None: not watched.
    keys: Vec<Option<Box<[u8]>>>,
    /// The bits of the watched keys.
    mask: u32,
}

/// Nothing watched: a scan then knows nothing of any key.
pub static NO_WATCH: Watch = Watch {
    keys: Vec::new(),
    mask: 0,
};

impl Watch {
    /// Watches key n of `keys` (from the 33rd on, none are).
    pub fn new(keys: Vec<Option<Box<[u8]>>>) -> Watch {
        let mask = keys
            .iter()
            .take(32)
            .enumerate()
            .filter(|(_, k)| k.is_some())
            .fold(0, |mask, (n, _)| mask | 1 << n);
        Watch { keys, mask }
    }

    /// Whether key n is watched: a shape's [`Shape::unwatched`] bit n then
    /// tells whether it is absent.
    pub fn watches(&self, n: usize) -> bool {
        n < 32 && self.mask & 1 << n != 0
    }

    /// The bits of the watched keys equal to `key` (unescaped text).
    fn found(&self, key: &[u8]) -> u32 {
        let mut bits = 0;
        for (n, watched) in self.keys.iter().take(32).enumerate() {
            if watched.as_deref() == Some(key) {
                bits |= 1 << n;
            }
        }
        bits
    }
}

impl Shape {
    /// Scans one JSON value (known to be valid JSON): what the scanner
    /// measures in its pass, written plainly, as the oracle it is tested
    /// against.
    #[cfg(test)]
    pub fn of(raw: &[u8]) -> Shape {
        Shape::of_watched(raw, &NO_WATCH)
    }

    /// [`Shape::of`], noting the watched keys too.
    #[cfg(any(test, feature = "scan-serde", feature = "scan-sonic"))]
    pub fn of_watched(raw: &[u8], watch: &Watch) -> Shape {
        let mut found = 0u32;
        let mut shape = Shape {
            first: raw.first().copied().unwrap_or(b' '),
            ..Shape::default()
        };
        let mut depth = 0usize;
        let mut i = 0;
        // At depth 1 inside a top-level array: the next value is an element.
        let top_array = shape.first == b'[';
        let mut expect_element = false;
        while i < raw.len() {
            let b = raw[i];
            match b {
                b'"' => {
                    if expect_element {
                        shape.scalar_elements = true;
                        expect_element = false;
                    }
                    let start = i + 1;
                    let mut j = start;
                    let mut escaped = false;
                    // Jump from quote or backslash to the next (vectorised).
                    while let Some(at) = raw.get(j..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
                        j += at;
                        if raw[j] == b'"' {
                            break;
                        }
                        escaped = true;
                        if raw.get(j + 1) == Some(&b'u') {
                            shape.unicode_escape = true;
                        }
                        j += 2;
                    }
                    let j = j.min(raw.len());
                    let len = j - start;
                    shape.longest_string = shape.longest_string.max(len);
                    // A key is a string followed by a colon.
                    let mut k = j + 1;
                    while k < raw.len() && raw[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    if raw.get(k) == Some(&b':') {
                        shape.longest_key = shape.longest_key.max(len);
                        // Keys are short: look at them only when they are keys.
                        let key = &raw[start..j];
                        shape.odd_key |= odd_key(key, escaped);
                        if watch.mask != 0 {
                            found |= if escaped { u32::MAX } else { watch.found(key) };
                        }
                    }
                    i = j + 1;
                    continue;
                }
                b'{' | b'[' => {
                    if expect_element {
                        shape.scalar_elements |= b == b'[';
                        expect_element = false;
                    }
                    depth += 1;
                    shape.depth = shape.depth.max(depth);
                    if top_array && depth == 1 {
                        expect_element = true;
                    }
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    expect_element = false;
                }
                b',' if top_array && depth == 1 => expect_element = true,
                c if c.is_ascii_whitespace() => shape.spaced = true,
                _ => {
                    if expect_element {
                        shape.scalar_elements = true;
                        expect_element = false;
                    }
                }
            }
            i += 1;
        }
        shape.unwatched = watch.mask & !found;
        shape
    }
}

/// Whether a key (as written between its quotes) may be renamed by the
/// value path: it holds a dot, or is blank once decoded (`str::trim`, so
/// Unicode spaces count). An escaped key may decode to anything: odd.
pub(crate) fn odd_key(key: &[u8], escaped: bool) -> bool {
    escaped || dotted_or_blank(key)
}

/// The contents of a JSON string's text (quotes included, as the scan
/// checked it) when it holds no escape: its value as it is.
pub(crate) fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    memchr::memchr(b'\\', inner.as_bytes()).is_none().then_some(inner)
}

/// Whether a key holds a dot or is blank once trimmed (`str::trim`). Any
/// ASCII byte above the space is not whitespace, which settles most keys
/// at their first byte.
pub(crate) fn dotted_or_blank(key: &[u8]) -> bool {
    // Keys are short: a plain loop beats memchr's set-up.
    if key.contains(&b'.') {
        return true;
    }
    if key.iter().any(|&c| c > b' ' && c.is_ascii()) {
        return false;
    }
    std::str::from_utf8(key).map_or(true, |k| k.trim().is_empty())
}

/// Skips whitespace (as `u8::is_ascii_whitespace` has it).
pub fn skip_ws(text: &[u8], mut pos: usize) -> usize {
    while pos < text.len() && text[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// The end (exclusive) of the string starting at `pos` (a quote), or
/// None when the text ends inside it.
pub fn string_end(text: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    // Jump from quote or backslash (or control character) to the next,
    // eight bytes at a time: strings are short, too short for memchr's
    // set-up to pay.
    loop {
        i += scan::plain_run(text.get(i..)?);
        match *text.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `pos`, or None when the
/// text ends inside it. Brackets are only counted, not matched: the
/// value's own parse finds what is wrong with it.
pub fn value_end(text: &[u8], pos: usize) -> Option<usize> {
    match *text.get(pos)? {
        b'"' => string_end(text, pos),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < text.len() {
                match text[i] {
                    b'"' => {
                        i = string_end(text, i)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let len = text[pos..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace())
                .unwrap_or(text.len() - pos);
            Some(pos + len.max(1))
        }
    }
}

/// Writes JSON text without the whitespace between its tokens (strings are
/// copied as they are, and JSON strings hold no raw line breaks).
pub fn write_compact(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let end = string_end(raw, i).unwrap_or(raw.len());
                out.extend_from_slice(&raw[i..end]);
                i = end;
            }
            c if c.is_ascii_whitespace() => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Writes JSON text without the members whose key is one of `quoted` (keys
/// as JSON strings, `"accessKeyId"`), at any depth, and without the
/// whitespace between tokens. The text is valid JSON; keys are compared as
/// written (the caller makes sure no `\u` escape can hide one).
pub fn drop_keys(raw: &[u8], quoted: &[Vec<u8>], out: &mut Vec<u8>) {
    // For each open container: whether it is an object.
    let mut objects: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let end = string_end(raw, i).unwrap_or(raw.len());
                let in_object = objects.last() == Some(&true);
                let is_key = in_object && matches!(out.last(), Some(b'{') | Some(b','));
                if is_key && quoted.iter().any(|q| q.as_slice() == &raw[i..end]) {
                    // Skip the key, the colon, the value and a comma after it.
                    let colon = skip_ws(raw, end);
                    let value = skip_ws(raw, colon + 1);
                    let after = skip_ws(raw, value_end(raw, value).unwrap_or(raw.len()));
                    if raw.get(after) == Some(&b',') {
                        i = after + 1;
                    } else {
                        // The last member: the comma before it goes too.
                        if out.last() == Some(&b',') {
                            out.pop();
                        }
                        i = after;
                    }
                    continue;
                }
                out.extend_from_slice(&raw[i..end]);
                i = end;
            }
            b'{' | b'[' => {
                objects.push(raw[i] == b'{');
                out.push(raw[i]);
                i += 1;
            }
            b'}' | b']' => {
                objects.pop();
                out.push(raw[i]);
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// What of an object [`pruned_into`] keeps: a member's whole value, or the
/// members of the object it holds, recursively (at most 32 names a level).
#[derive(Debug)]
pub enum Keep {
    Value(&'static str),
    Object(&'static str, &'static [Keep]),
}

impl Keep {
    fn name(&self) -> &'static str {
        match self {
            Keep::Value(name) | Keep::Object(name, _) => name,
        }
    }
}

/// Sets `into` to the value of `text`, where it is an object with only the
/// members `keep` names (the others are skipped, not built); any other
/// value whole. What `into` already holds is reused: a member that is again
/// a plain string overwrites the old string in place. Duplicate keys: the
/// last wins, as in a full parse. `text` is JSON the scan has checked
/// ([`RawEvent::parse`]): this only walks it; None where it is not valid
/// after all (and then `into` may hold part of it).
pub fn pruned_into(into: &mut serde_json::Value, text: &str, keep: &'static [Keep]) -> Option<()> {
    let b = text.as_bytes();
    let i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        *into = value_of(text)?;
        return Some(());
    }
    let end = pruned_object(into, text, i, keep)?;
    (skip_ws(b, end) == b.len()).then_some(())
}

/// [`pruned_into`] for the object whose `{` is at `open`, walked once: a
/// kept object is walked as it is met, not first skipped and then walked
/// again. Where the object ends.
fn pruned_object(into: &mut serde_json::Value, text: &str, open: usize, keep: &'static [Keep]) -> Option<usize> {
    let b = text.as_bytes();
    if !into.is_object() {
        *into = serde_json::Value::Object(serde_json::Map::new());
    }
    let serde_json::Value::Object(out) = into else {
        return None;
    };
    // Which of `keep` this object has: anything else in `out` is old.
    let mut present = 0u32;
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        out.clear();
        return Some(i + 1);
    }
    let end = loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key_text = text.get(i..key_end)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, colon + 1);
        let key: Cow<'_, str> = match plain_string(key_text) {
            Some(key) => Cow::Borrowed(key),
            None => Cow::Owned(serde_json::from_str(key_text).ok()?),
        };
        let end = match keep.iter().position(|k| k.name() == key) {
            None => value_end(b, start)?,
            Some(n) => {
                present |= 1u32.checked_shl(n as u32)?;
                let slot = match out.get_mut(key.as_ref()) {
                    Some(slot) => slot,
                    None => out.entry(key.into_owned()).or_insert(serde_json::Value::Null),
                };
                match &keep[n] {
                    Keep::Object(_, inner) if b.get(start) == Some(&b'{') => pruned_object(slot, text, start, inner)?,
                    Keep::Value(_) | Keep::Object(..) => {
                        let end = value_end(b, start)?;
                        set_value(slot, text.get(start..end)?)?;
                        end
                    }
                }
            }
        };
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break i + 1,
            _ => return None,
        }
    };
    // `out` holds only names from `keep`, each present one once.
    if out.len() != present.count_ones() as usize {
        out.retain(|key, _| {
            keep.iter()
                .position(|k| k.name() == key)
                .is_some_and(|n| present & 1u32.checked_shl(n as u32).unwrap_or(0) != 0)
        });
    }
    Some(end)
}

/// The value of `text` with only what `keep` names ([`pruned_into`]).
#[cfg(test)]
pub fn pruned(text: &str, keep: &'static [Keep]) -> Option<serde_json::Value> {
    let mut value = serde_json::Value::Null;
    pruned_into(&mut value, text, keep)?;
    Some(value)
}

/// Sets `slot` to the value of checked JSON text, overwriting the old
/// string in place when both are strings and the new one has no escape.
pub(crate) fn set_value(slot: &mut serde_json::Value, text: &str) -> Option<()> {
    if let (Some(new), serde_json::Value::String(old)) = (plain_string(text), &mut *slot) {
        old.clear();
        old.push_str(new);
        return Some(());
    }
    *slot = value_of(text)?;
    Some(())
}

/// The value of checked JSON text; strings without escapes are taken as
/// they are.
pub(crate) fn value_of(text: &str) -> Option<serde_json::Value> {
    match plain_string(text) {
        Some(s) => Some(serde_json::Value::String(s.to_owned())),
        None => serde_json::from_str(text).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_in_order() {
        let text = br#"{"b": {"x": [1, {"y": "z"}]}, "a": "s", "c": null}"#;
        let event = RawEvent::parse(text, &NO_WATCH).unwrap();
        let keys: Vec<&str> = event.fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(event.get("b").unwrap(), r#"{"x": [1, {"y": "z"}]}"#);
        assert!(!event.has_duplicate_keys());
        assert!(
            RawEvent::parse(br#"{"a": 1, "a": 2}"#, &NO_WATCH)
                .unwrap()
                .has_duplicate_keys()
        );
        assert!(RawEvent::parse(b"[1]", &NO_WATCH).is_none());
        assert!(RawEvent::parse(br#"{"a": }"#, &NO_WATCH).is_none());
        // An escaped key: left to the value path.
        assert!(RawEvent::parse(br#"{"a\u0041": "s"}"#, &NO_WATCH).is_none());
        let by_serde = fields_by_serde(br#"{"b": 1, "a\u0041": "s"}"#).unwrap();
        assert_eq!(
            by_serde.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(),
            ["b", "aA"]
        );
        assert!(matches!(by_serde[0].0, Cow::Borrowed(_)));
    }

    #[test]
    fn pruning_keeps_only_what_is_named() {
        const INNER: &[Keep] = &[Keep::Value("arn")];
        const KEEP: &[Keep] = &[Keep::Value("type"), Keep::Object("ctx", INNER)];
        let cases = [
            (
                r#"{"type": "A", "x": [1, {"y": 2}], "ctx": {"arn": {"z": 1}, "other": 3}}"#,
                r#"{"type": "A", "ctx": {"arn": {"z": 1}}}"#,
            ),
            (r#"{"ctx": "s", "type": 1, "type": 2}"#, r#"{"ctx": "s", "type": 2}"#),
            (r#" "str" "#, r#""str""#),
            (r#"[{"x": 1}]"#, r#"[{"x": 1}]"#),
            (r#"{}"#, r#"{}"#),
            (
                r#"{"ctx": {"other": {"q": "}\"{"}, "arn": "a"}, "type": "B", "ctx": {"arn": "b"}}"#,
                r#"{"ctx": {"arn": "b"}, "type": "B"}"#,
            ),
            (
                r#"{"ctx": null, "type": {"arn": 1}}"#,
                r#"{"ctx": null, "type": {"arn": 1}}"#,
            ),
        ];
        for (text, want) in cases {
            let want: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(pruned(text, KEEP), Some(want), "{text}");
        }
        // Pruning into what the last text left gives what a fresh one does.
        for (first, _) in cases {
            for (second, want) in cases {
                let mut value = pruned(first, KEEP).unwrap();
                pruned_into(&mut value, second, KEEP).unwrap();
                let want: serde_json::Value = serde_json::from_str(want).unwrap();
                assert_eq!(value, want, "{first} then {second}");
            }
        }
        // Pruning trusts the scan, yet what it reads of invalid text is no value.
        for bad in [
            r#"{"type": 1} 2"#,
            r#"{"type" 1}"#,
            r#"{"type": [1}"#,
            r#"{"type": "#,
            r#"{"a\x": 1}"#,
            r#"{"ctx": {"arn": 1 "x": 2}}"#,
            r#"{"ctx": {"arn": 1}"#,
            r#"{"ctx": {"arn": 1}} }"#,
        ] {
            assert_eq!(pruned(bad, KEEP), None, "{bad}");
        }
        // An escaped key is decoded before it is compared.
        assert_eq!(
            pruned(r#"{"typ\u0065": "A", "x": 1}"#, KEEP),
            Some(serde_json::json!({"type": "A"}))
        );
    }

    #[test]
    fn dotted_or_blank_is_the_str_rule() {
        for key in [
            "a",
            "a.b",
            ".",
            "",
            " ",
            "  x ",
            "\u{a0}",
            "\u{3000} \u{2028}",
            "é",
            " é ",
            "\u{a0}x",
            "x\u{85}",
        ] {
            let by_str = key.contains('.') || key.trim().is_empty();
            assert_eq!(dotted_or_blank(key.as_bytes()), by_str, "{key:?}");
        }
        assert_eq!(plain_string(r#""a b""#), Some("a b"));
        assert_eq!(plain_string(r#""a\"b""#), None);
        assert_eq!(plain_string("12"), None);
        assert_eq!(plain_string("\""), None);
    }

    #[test]
    fn keys_are_dropped_at_any_depth() {
        let names = vec![b"\"k\"".to_vec(), b"\"t\"".to_vec()];
        for (text, want) in [
            (r#"{"k":1}"#, "{}"),
            (r#"{"k":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"a":2,"k":{"x":[1]}}"#, r#"{"a":2}"#),
            (
                r#"{"a":"k","b":{"k":"v","c":[{"t":1,"k":2},{"d":"\"k\""}]}, "k" : [ ] }"#,
                r#"{"a":"k","b":{"c":[{},{"d":"\"k\""}]}}"#,
            ),
            (r#"["k",{"k":1}]"#, r#"["k",{}]"#),
            (r#"{ "a" : { "k" : 1 , "b" : 2 } }"#, r#"{"a":{"b":2}}"#),
        ] {
            let mut out = Vec::new();
            drop_keys(text.as_bytes(), &names, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn compacting_keeps_strings() {
        let mut out = Vec::new();
        write_compact(b"{ \"a b\" :\n\t[ 1 , \"x\\\" \\n y\" ] }", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a b":[1,"x\" \n y"]}"#);
        assert!(Shape::of(b"{ \"a\": 1}").spaced);
        assert!(!Shape::of(br#"{"a b":"c d"}"#).spaced);
    }

    #[test]
    fn shapes() {
        let s = Shape::of(br#"{"a": {"b.c": ["x", {"d": "long\"er"}]}, " ": 1}"#);
        assert_eq!((s.first, s.depth), (b'{', 4));
        assert_eq!(s.longest_string, 8);
        assert_eq!(s.longest_key, 3);
        assert!(s.odd_key && !s.unicode_escape && !s.scalar_elements);
        let s = Shape::of(br#"[{"a": "\u0041"}, {"b": 1}]"#);
        assert!(s.unicode_escape && !s.scalar_elements && !s.odd_key);
        for text in [&br#"[{"a": 1}, "b"]"#[..], br#"[{"a": 1}, [1]]"#, b"[{}, 2]", b"[null]"] {
            assert!(Shape::of(text).scalar_elements, "{}", String::from_utf8_lossy(text));
        }
        assert!(!Shape::of(br#"[{"a": ["b", 1]}, {}]"#).scalar_elements);
        let s = Shape::of(br#""a.b""#);
        assert_eq!((s.first, s.depth, s.longest_string, s.odd_key), (b'"', 0, 3, false));
        assert_eq!(Shape::of(b"true").depth, 0);
        // A string that looks like a key only when followed by a colon.
        assert!(!Shape::of(br#"{"k": "v.w"}"#).odd_key);
        // Blank once decoded: escaped whitespace, Unicode spaces.
        for text in [
            &br#"{"\t": 1}"#[..],
            "{\"\u{a0}\": 1}".as_bytes(),
            "{\"\u{3000} \": 1}".as_bytes(),
        ] {
            assert!(Shape::of(text).odd_key, "{}", String::from_utf8_lossy(text));
        }
    }
}
