//! One pass over an event's text that splits it into top-level fields and
//! measures each field's [`Shape`], validating the JSON as it goes.
//!
//! A strict subset of what `serde_json` accepts: whatever this scanner
//! accepts, `serde_json` accepts too, with the same fields; anything it is
//! not sure of (an escaped key, a `\u` surrogate, deep nesting, a control
//! character, a number or literal outside the grammar) makes it answer
//! `None`, and the caller takes the `serde_json` path instead.

use super::{Shape, Watch, odd_key};

/// Deeper than this is left to `serde_json` (whose limit is 128).
const MAX_DEPTH: usize = 100;

/// Top-level fields as (key, value text) pairs, and the shape of each value.
pub type Fields<'a> = (Vec<(&'a str, &'a str)>, Vec<Shape>);

/// The top-level fields of one JSON object (the whole of `text`, whitespace
/// around it allowed) and the shape of each, or `None`.
pub fn event<'a>(text: &'a [u8], watch: &Watch) -> Option<Fields<'a>> {
    let (end, fields) = event_at(text, watch)?;
    (skip_ws(text, end) == text.len()).then_some(fields)
}

/// The JSON object at the start of `text` (whitespace before it allowed),
/// which may be followed by anything: where it ends, its top-level fields
/// and the shape of each; `None` also when `text` ends inside it. This is
/// how a stream finds where an event ends and splits it in one pass.
pub fn event_at<'a>(b: &'a [u8], watch: &Watch) -> Option<(usize, Fields<'a>)> {
    #[cfg(feature = "scan-serde")]
    return by_library::event_at(b, watch, by_library::split_serde);
    #[cfg(all(feature = "scan-sonic", not(feature = "scan-serde")))]
    return by_library::event_at(b, watch, by_library::split_sonic);
    #[cfg(not(any(feature = "scan-serde", feature = "scan-sonic")))]
    event_at_by_hand(b, watch)
}

/// Measurement only (`--features scan-serde` or `scan-sonic`, see
/// docs/benchmark.md): a library splits and validates the event, then a
/// plain pass over each field measures its shape ([`Shape::of_watched`],
/// which refuses nothing: favourable to the library).
#[cfg(any(feature = "scan-serde", feature = "scan-sonic"))]
mod by_library {
    use super::{Fields, Shape, Watch};

    /// The end of the object and its (key, value) pairs, borrowed from `b`.
    pub type Split<'a> = Option<(usize, Vec<(&'a str, &'a str)>)>;

    pub fn event_at<'a>(b: &'a [u8], watch: &Watch, split: fn(&'a [u8]) -> Split<'a>) -> Option<(usize, Fields<'a>)> {
        let (end, fields) = split(b)?;
        let shapes = fields
            .iter()
            .map(|(_, v)| Shape::of_watched(v.as_bytes(), watch))
            .collect();
        Some((end, (fields, shapes)))
    }

    #[cfg(feature = "scan-serde")]
    pub fn split_serde(b: &[u8]) -> Split<'_> {
        use serde::Deserialize;
        use serde::de::{Deserializer, MapAccess, Visitor};
        use serde_json::value::RawValue;
        struct Borrowed<'a>(Vec<(&'a str, &'a str)>);
        impl<'de> Deserialize<'de> for Borrowed<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Borrowed<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                        let mut fields = Vec::with_capacity(24);
                        // An escaped key cannot be borrowed: an error, as the scanner refuses it.
                        while let Some(key) = map.next_key::<&'de str>()? {
                            fields.push((key, map.next_value::<&'de RawValue>()?.get()));
                        }
                        Ok(Borrowed(fields))
                    }
                }
                d.deserialize_map(V)
            }
        }
        let mut stream = serde_json::Deserializer::from_slice(b).into_iter::<Borrowed<'_>>();
        let fields = stream.next()?.ok()?;
        Some((stream.byte_offset(), fields.0))
    }

    /// sonic-rs checks the UTF-8 of its whole input first: the object's end
    /// is found before (by the decoder's bracket counter), or a stream
    /// window would be checked again for every event in it.
    #[cfg(feature = "scan-sonic")]
    pub fn split_sonic(b: &[u8]) -> Split<'_> {
        use std::borrow::Cow;
        let start = super::skip_ws(b, 0);
        let end = crate::raw::value_end(b, start)?;
        let object = b.get(..end)?;
        let base = object.as_ptr() as usize;
        let within = |s: &str| {
            let at = (s.as_ptr() as usize).checked_sub(base)?;
            std::str::from_utf8(object.get(at..at + s.len())?).ok()
        };
        let mut fields = Vec::with_capacity(24);
        for item in sonic_rs::to_object_iter(object) {
            let (key, value) = item.ok()?;
            let Cow::Borrowed(key) = key else { return None };
            fields.push((within(key)?, within(value.as_raw_str())?));
        }
        Some((end, fields))
    }
}

#[cfg_attr(any(feature = "scan-serde", feature = "scan-sonic"), allow(dead_code))]
fn event_at_by_hand<'a>(b: &'a [u8], watch: &Watch) -> Option<(usize, Fields<'a>)> {
    // Offsets first: the text is known to be UTF-8 only once its end is.
    let mut spans: Vec<[usize; 4]> = Vec::with_capacity(24);
    let mut shapes = Vec::with_capacity(24);
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key = string(b, i)?;
            if key.escaped {
                return None;
            }
            let name = [i + 1, key.end - 1];
            i = skip_ws(b, key.end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let start = skip_ws(b, i + 1);
            let mut shape = Shape {
                first: *b.get(start)?,
                ..Shape::default()
            };
            let mut found = 0;
            let end = value(b, start, &mut shape, watch, &mut found)?;
            shape.unwatched = watch.mask & !found;
            spans.push([name[0], name[1], start, end]);
            shapes.push(shape);
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    // One check for the whole object; every span starts and ends at an
    // ASCII byte, so each is valid UTF-8 too.
    let text = std::str::from_utf8(&b[..i]).ok()?;
    let mut fields = Vec::with_capacity(spans.len());
    for &[k0, k1, v0, v1] in &spans {
        fields.push((text.get(k0..k1)?, text.get(v0..v1)?));
    }
    Some((i, (fields, shapes)))
}

/// JSON's whitespace only (`decode::scan::skip_ws`, which finds where
/// values end, also passes a form feed; serde_json does not).
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Like [`skip_ws`], noting in the shape that whitespace was there.
fn skip_ws_in(b: &[u8], i: usize, shape: &mut Shape) -> usize {
    let j = skip_ws(b, i);
    shape.spaced |= j > i;
    j
}

/// One JSON value starting at `start` (not whitespace); its end.
/// `found` gets the bits of the watched keys met (or maybe met).
fn value(b: &[u8], start: usize, shape: &mut Shape, watch: &Watch, found: &mut u32) -> Option<usize> {
    // For each open container (at most MAX_DEPTH): whether it is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    let top_array = b.get(start) == Some(&b'[');
    let mut i = start;
    loop {
        // A value starts at i.
        if top_array && depth == 1 && b.get(i) != Some(&b'{') {
            shape.scalar_elements = true;
        }
        match *b.get(i)? {
            open @ (b'{' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                shape.depth = shape.depth.max(depth);
                let is_object = open == b'{';
                objects = (objects << 1) | is_object as u128;
                i = skip_ws_in(b, i + 1, shape);
                let close = if is_object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    depth -= 1;
                    objects >>= 1;
                    i += 1;
                } else {
                    if is_object {
                        i = member_key(b, i, shape, watch, found)?;
                    }
                    continue;
                }
            }
            b'"' => {
                let s = string(b, i)?;
                note_string(shape, &s);
                i = s.end;
            }
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            _ => return None,
        }
        // After a value: close containers, or go on to the next value.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_ws_in(b, i, shape);
            let in_object = objects & 1 == 1;
            match (*b.get(i)?, in_object) {
                (b',', true) => {
                    i = skip_ws_in(b, i + 1, shape);
                    i = member_key(b, i, shape, watch, found)?;
                    break;
                }
                (b',', false) => {
                    i = skip_ws_in(b, i + 1, shape);
                    break;
                }
                (b'}', true) | (b']', false) => {
                    depth -= 1;
                    objects >>= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// A member's key and colon at `i`; where its value starts.
fn member_key(b: &[u8], i: usize, shape: &mut Shape, watch: &Watch, found: &mut u32) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let s = string(b, i)?;
    note_string(shape, &s);
    let len = s.end - i - 2;
    shape.longest_key = shape.longest_key.max(len);
    let key = &b[i + 1..s.end - 1];
    shape.odd_key |= odd_key(key, s.escaped);
    if watch.mask != 0 {
        // An escaped key may spell any watched key.
        *found |= if s.escaped { u32::MAX } else { watch.found(key) };
    }
    let colon = skip_ws_in(b, s.end, shape);
    if b.get(colon) != Some(&b':') {
        return None;
    }
    Some(skip_ws_in(b, colon + 1, shape))
}

fn note_string(shape: &mut Shape, s: &Str) {
    shape.longest_string = shape.longest_string.max(s.len);
    shape.unicode_escape |= s.unicode;
}

/// A string as scanned.
struct Str {
    /// Just past the closing quote.
    end: usize,
    /// Length of the escaped text between the quotes.
    len: usize,
    escaped: bool,
    unicode: bool,
}

/// The string whose opening quote is at `i`.
fn string(b: &[u8], i: usize) -> Option<Str> {
    let mut j = i + 1;
    let mut escaped = false;
    let mut unicode = false;
    loop {
        j += plain_run(&b[j.min(b.len())..]);
        match *b.get(j)? {
            b'"' => {
                return Some(Str {
                    end: j + 1,
                    len: j - i - 1,
                    escaped,
                    unicode,
                });
            }
            b'\\' => {
                escaped = true;
                match *b.get(j + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        let hex = b.get(j + 2..j + 6)?;
                        let code = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u16::from_str_radix(h, 16).ok())?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) || (0xD800..=0xDFFF).contains(&code) {
                            return None;
                        }
                        unicode = true;
                        j += 6;
                    }
                    _ => return None,
                }
            }
            // A control character: not allowed in a JSON string.
            _ => return None,
        }
    }
}

/// How many bytes at the start of `s` are neither a quote, a backslash nor
/// a control character (eight at a time).
pub(crate) fn plain_run(s: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut n = 0;
    while let Some(chunk) = s.get(n..n + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A zero byte in x ^ c: the byte was c. A byte below 0x20: x - 0x20
        // borrows. Bytes with the high bit are masked out by `!x`. A borrow
        // may flag bytes above a found one, never below: the lowest flag is
        // the first such byte.
        let quote = x ^ (LO * b'"' as u64);
        let slash = x ^ (LO * b'\\' as u64);
        let found =
            ((quote.wrapping_sub(LO) & !quote) | (slash.wrapping_sub(LO) & !slash) | (x.wrapping_sub(LO * 0x20) & !x))
                & HI;
        if found != 0 {
            return n + (found.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < s.len() && !matches!(s[n], b'"' | b'\\' | 0..=0x1f) {
        n += 1;
    }
    n
}

/// Integer digits beyond which a number may overflow an f64.
const MAX_INTEGER_DIGITS: usize = 300;

/// A number at `i` (JSON's grammar, without an exponent); its end.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b[i] == b'-' {
        i += 1;
    }
    let start = i;
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i)?,
        _ => return None,
    }
    // Past f64's range, serde_json's values refuse a number: left to them.
    // CloudTrail writes no exponents; a long integer part is rarer still.
    if i - start > MAX_INTEGER_DIGITS {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    (!matches!(b.get(i), Some(b'e' | b'E'))).then_some(i)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of every `{"Records": [...]}` file of the fixtures and the
    /// corpus (gzipped or not), compact and pretty-printed in turn: read
    /// here with serde_json, not with ctindex's decoder, which sits above
    /// this module.
    fn sample_events() -> Vec<Vec<u8>> {
        use std::io::Read;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in [root.join("tests/fixtures"), root.join("../shared/cloudtrail-corpus")] {
            for entry in walkdir::WalkDir::new(&dir).sort_by_file_name().into_iter().flatten() {
                let name = entry.path().to_string_lossy();
                if !entry.file_type().is_file() || !(name.ends_with(".json") || name.ends_with(".json.gz")) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                let mut text = Vec::new();
                let read = match bytes.starts_with(&[0x1f, 0x8b]) {
                    true => flate2::read::MultiGzDecoder::new(&bytes[..])
                        .read_to_end(&mut text)
                        .is_ok(),
                    false => {
                        text = bytes;
                        true
                    }
                };
                let Some(serde_json::Value::Array(records)) = read
                    .then(|| serde_json::from_slice::<serde_json::Value>(&text).ok())
                    .flatten()
                    .and_then(|mut v| v.get_mut("Records").map(serde_json::Value::take))
                else {
                    continue;
                };
                for (i, event) in records.iter().filter(|e| e.is_object()).enumerate() {
                    out.push(match i % 2 {
                        0 => serde_json::to_vec(event).unwrap(),
                        _ => serde_json::to_vec_pretty(event).unwrap(),
                    });
                }
            }
        }
        out
    }

    /// Where the scanner answers, serde_json and Shape::of answer the same.
    fn agrees(text: &[u8]) -> bool {
        let Some((fields, shapes)) = event(text, &crate::raw::NO_WATCH) else {
            return false;
        };
        let refused = |e: serde_json::Error| -> ! {
            panic!(
                "scanner took what serde_json refuses ({e}): {}",
                String::from_utf8_lossy(text)
            )
        };
        // Both ways the value path reads an event must take it.
        let serde = crate::raw::fields_by_serde(text).unwrap_or_else(|e| refused(e));
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(text) {
            refused(e);
        }
        let want: Vec<(&str, &str, Shape)> = serde
            .iter()
            .map(|(k, v)| (k.as_ref(), *v, Shape::of(v.as_bytes())))
            .collect();
        let got: Vec<(&str, &str, Shape)> = fields.iter().zip(&shapes).map(|((k, v), s)| (*k, *v, *s)).collect();
        assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
        true
    }

    #[test]
    fn agrees_with_serde_and_shape_of() {
        for text in [
            r#"{}"#,
            r#" { } "#,
            r#"{"a":1}"#,
            r#"{"a": -0.5, "b": [1, 2.0, -30, 0], "c": true, "d": false, "e": null}"#,
            r#"{"a": {"b.c": ["x", {"d": "long\"er"}]}, " ": 1}"#,
            r#"{"a": [{"a": "\u0041"}, {"b": 1}]}"#,
            r#"{"a": [{"a": 1}, "b"], "b": [[1]], "c": [{}, 2], "d": [null], "e": [], "f": [ {} ]}"#,
            r#"{"a": {"k": "v.w"}, "b": "\/\b\f\n\r\t\\", "c": "é ü 日本"}"#,
            "{\"a\":\n  {\n    \"b\" : [ 1 , \"x\" ]\n  }\n}",
            r#"{"a": {"\u00e9": 1, "x\"y": {"": 2}}}"#,
            r#"{"requestParameters": {"policy": "{\"Version\":\"2012-10-17\"}"}, "x": 0}"#,
            r#"{"a": {"\t": 1, " ": 2, "\u00a0": 3}}"#,
            "{\"b\": {\"\u{a0}\": 4, \"\u{3000}\": 5}}",
        ] {
            assert!(agrees(text.as_bytes()), "refused: {text}");
        }
    }

    /// An object at the start of a text: found whole, whatever follows;
    /// any text that ends inside it: nothing.
    #[test]
    fn finds_the_object_at_the_start() {
        for text in [
            r#"{}"#,
            r#" { } "#,
            r#"{"a": {"b": [1, "}"]}, "c": "\"}"}"#,
            r#"{"a": 1.5, "b": "é"}"#,
        ] {
            let (fields, shapes) = event(text.as_bytes(), &crate::raw::NO_WATCH).unwrap();
            let object = text.trim_end();
            for after in ["", ",", ", {\"a\": 1}]", "]}", " x", "\u{ff}"] {
                let followed = format!("{object}{after}");
                let (end, (f, s)) = event_at(followed.as_bytes(), &crate::raw::NO_WATCH).unwrap();
                assert_eq!((end, &f, &s), (object.len(), &fields, &shapes), "{followed}");
            }
            for cut in 1..object.len() {
                if let Some(prefix) = object.as_bytes().get(..cut) {
                    assert!(
                        event_at(prefix, &crate::raw::NO_WATCH).is_none(),
                        "{}",
                        String::from_utf8_lossy(prefix)
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_is_unsure_of_or_what_is_not_json() {
        for text in [
            &br#"[]"#[..],
            br#"{"a\u0041": 1}"#,
            br#"{"a": "\ud800"}"#,
            br#"{"a": 01}"#,
            br#"{"a": 1.}"#,
            br#"{"a": .5}"#,
            br#"{"a": +1}"#,
            br#"{"a": 1e}"#,
            br#"{"a": 1e400}"#,
            br#"{"a": -3E2}"#,
            br#"{"a": 0.5e+10}"#,
            br#"{"a": tru}"#,
            br#"{"a": truex}"#,
            br#"{"a": NaN}"#,
            br#"{"a": "x"#,
            b"{\"a\": \"\x01\"}",
            b"{\"a\": \"\xff\"}",
            br#"{"a": "\x"}"#,
            br#"{"a": [1,]}"#,
            br#"{"a": {"b": 1,}}"#,
            br#"{"a": 1,}"#,
            br#"{"a" 1}"#,
            br#"{"a": 1} x"#,
            br#"{"a": [1}"#,
            br#"{"a": {"b"]}"#,
            br#"{"a": {1: 2}}"#,
            b"{\"a\":\x0b1}",
        ] {
            assert!(
                event(text, &crate::raw::NO_WATCH).is_none(),
                "took {}",
                String::from_utf8_lossy(text)
            );
        }
        let long = format!("{{\"a\": {}}}", "9".repeat(MAX_INTEGER_DIGITS + 1));
        assert!(event(long.as_bytes(), &crate::raw::NO_WATCH).is_none());
        let fine = format!("{{\"a\": {}}}", "9".repeat(MAX_INTEGER_DIGITS));
        assert!(agrees(fine.as_bytes()));
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(event(deep.as_bytes(), &crate::raw::NO_WATCH).is_none());
        let fine = format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(agrees(fine.as_bytes()));
    }

    #[test]
    fn plain_runs_stop_at_quotes_backslashes_and_control_characters() {
        for (s, want) in [
            (&b"abcdefghijkl\"m"[..], 12),
            (b"abcdefgh\\", 8),
            (b"ab\x1fcdefghij", 2),
            (b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", 10),
            (b"\x7f\x80\xff\x20abcdefgh", 12),
            (b"", 0),
        ] {
            assert_eq!(plain_run(s), want, "{}", String::from_utf8_lossy(s));
        }
        // Two bytes of every kind near the ones looked for, at any two
        // places of a word and the next: as a byte-by-byte loop finds.
        let scalar = |s: &[u8]| {
            s.iter()
                .position(|&c| matches!(c, b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(s.len())
        };
        let kinds = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        let mut checked = 0;
        for len in [7, 8, 9, 16, 17, 24] {
            for p in 0..len {
                for q in p..len {
                    for &a in &kinds {
                        for &b in &kinds {
                            let mut s = vec![b'x'; len];
                            s[p] = a;
                            s[q] = b;
                            assert_eq!(plain_run(&s), scalar(&s), "{s:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    /// Every corpus event, and every single-byte change to a few of them:
    /// where the scanner answers, it answers as serde_json would.
    #[test]
    fn agrees_on_the_fixtures_and_their_mutations() {
        let texts: Vec<Vec<u8>> = sample_events();
        assert!(texts.len() > 100, "{} fixture events", texts.len());
        let mut taken = 0;
        for text in &texts {
            taken += agrees(text) as usize;
        }
        assert!(taken * 10 > texts.len() * 9, "{taken} of {} taken", texts.len());
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"{}[]\":,\\ \n0123456789.-+eEtrufalsn\x01\xc3";
        for text in texts.iter().take(40) {
            for _ in 0..200 {
                let mut t = text.clone();
                let at = (next() % t.len() as u64) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => t[at] = c,
                    1 => t.insert(at, c),
                    _ => {
                        t.remove(at);
                    }
                }
                agrees(&t);
            }
        }
    }

    /// Raw bytes built from proptest's choices along JSON's grammar, with
    /// what a scanner can get wrong in reach: `\/` and `\uXXXX` escapes,
    /// surrogate pairs and lone surrogates, exponents, negative zero, big
    /// numbers, duplicate and escaped keys, nesting past the limit, invalid
    /// UTF-8, raw control characters, whitespace JSON allows and does not,
    /// syntax errors, truncation and trailing bytes.
    struct Build<'c> {
        choices: &'c [u8],
        at: usize,
        out: Vec<u8>,
        /// Holds something the scanner may refuse although it is valid
        /// JSON (an escaped top-level key, a surrogate pair, an exponent, a
        /// long integer, deep nesting).
        unsure: bool,
        /// The next object is the event itself (a top-level value that
        /// turned out to be an object): its keys are top-level keys.
        top_next: bool,
    }

    impl Build<'_> {
        fn pick(&mut self, n: usize) -> usize {
            let c = self.choices.get(self.at).copied().unwrap_or(0);
            self.at += 1;
            c as usize % n
        }

        fn put(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }

        fn ws(&mut self) {
            const WS: [&[u8]; 9] = [b"", b"", b"", b"", b" ", b"\n  ", b"\t", b"\r\n", b"\x0c"];
            let w = WS[self.pick(WS.len())];
            self.put(w);
        }

        fn string(&mut self, top_key: bool) {
            const PIECES: [(&[u8], bool); 24] = [
                (b"a", false),
                (b"event", false),
                (b".", false),
                (b" ", false),
                ("\u{e9}".as_bytes(), false),
                ("\u{65e5}\u{672c}".as_bytes(), false),
                ("\u{a0}".as_bytes(), false),
                ("\u{1F600}".as_bytes(), false),
                (br"\/", false),
                (br"\n", false),
                (br#"\""#, false),
                (br"\\", false),
                (br"\u0041", false),
                (br"\u00e9", false),
                (br"\u0000", false),
                (br"\ud83d\ude00", true),
                (br"\ud800", true),
                (br"\udc00x", true),
                (br"\u12", false),
                (br"\x", false),
                (b"\x01", false),
                (b"\xff", false),
                (b"\xc3", false),
                (b"\x7f", false),
            ];
            self.put(b"\"");
            for _ in 0..self.pick(4) {
                let (piece, unsure) = PIECES[self.pick(PIECES.len())];
                self.unsure |= unsure || (top_key && piece.starts_with(b"\\"));
                self.put(piece);
            }
            self.put(b"\"");
        }

        fn number(&mut self) {
            const NUMBERS: [(&str, bool); 18] = [
                ("0", false),
                ("-0", false),
                ("-0.0", false),
                ("1.5", false),
                ("-30", false),
                ("12345678901234567890", false),
                ("123456789012345678901234567890", false),
                ("0.000000000000000000001", false),
                ("1e5", true),
                ("1E-2", true),
                ("-3e+0", true),
                ("1e400", true),
                ("01", false),
                (".5", false),
                ("-", false),
                ("1.", false),
                ("+1", false),
                ("1e", false),
            ];
            if self.pick(20) == 0 {
                // Longer than the scanner's limit, within f64's range.
                let n = 295 + self.pick(10);
                self.unsure |= n > MAX_INTEGER_DIGITS;
                self.put("9".repeat(n).as_bytes());
                return;
            }
            let (n, unsure) = NUMBERS[self.pick(NUMBERS.len())];
            self.unsure |= unsure;
            self.put(n.as_bytes());
        }

        /// A value nested `depth` deep (the event object is depth 1).
        fn value(&mut self, depth: usize) {
            match self.pick(12) {
                0..=2 => self.string(false),
                3 | 4 => self.number(),
                5 => {
                    const WORDS: [&str; 7] = ["true", "false", "null", "tru", "nul", "NaN", "truex"];
                    let w = WORDS[self.pick(WORDS.len())];
                    self.put(w.as_bytes());
                }
                6 | 7 if depth < 6 => self.array(depth + 1),
                8 | 9 if depth < 6 => self.object(depth + 1, false),
                10 => {
                    // Deep nesting, around both limits (100 here, 128 in serde_json).
                    let n = 90 + self.pick(45);
                    self.unsure |= n + depth > MAX_DEPTH;
                    let (open, close) = if self.pick(2) == 0 {
                        ("[", "]")
                    } else {
                        ("{\"k\":", "}")
                    };
                    self.put(open.repeat(n).as_bytes());
                    self.put(b"1");
                    self.put(close.repeat(n).as_bytes());
                }
                _ => self.string(false),
            }
        }

        fn array(&mut self, depth: usize) {
            self.put(b"[");
            self.ws();
            let n = self.pick(4);
            for i in 0..n {
                if i > 0 {
                    self.put(b",");
                    self.ws();
                }
                self.value(depth);
                self.ws();
            }
            if n > 0 && self.pick(30) == 0 {
                self.put(b",");
            }
            self.put(b"]");
        }

        fn object(&mut self, depth: usize, top: bool) {
            const KEYS: [&str; 8] = ["a", "b", "a", "eventName", "a.b", " ", "", "Records"];
            let top = top || std::mem::take(&mut self.top_next);
            self.put(b"{");
            self.ws();
            let n = self.pick(6);
            for i in 0..n {
                if i > 0 {
                    self.put(b",");
                    self.ws();
                }
                if self.pick(4) == 0 {
                    self.string(top);
                } else {
                    let key = KEYS[self.pick(KEYS.len())];
                    self.put(format!("\"{key}\"").as_bytes());
                }
                self.ws();
                if self.pick(40) != 0 {
                    self.put(b":");
                }
                self.ws();
                self.value(depth);
                self.ws();
            }
            if n > 0 && self.pick(30) == 0 {
                self.put(b",");
            }
            self.put(b"}");
        }

        fn event(choices: &[u8]) -> (Vec<u8>, bool) {
            let mut b = Build {
                choices,
                at: 0,
                out: Vec::new(),
                unsure: false,
                top_next: false,
            };
            b.ws();
            match b.pick(40) {
                0 => {
                    b.top_next = true;
                    b.value(1)
                }
                _ => b.object(1, true),
            }
            b.ws();
            match b.pick(20) {
                0 => {
                    let cut = b.pick(b.out.len().max(1));
                    b.out.truncate(cut);
                }
                1 => b.put(b"x"),
                2 => b.put(b"{}"),
                _ => {}
            }
            (b.out, b.unsure)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// On raw bytes: where the scanner answers, serde_json takes the
        /// text too, with the same top-level fields, each the same text (so
        /// the same parsed value) and shape; where it refuses, serde_json
        /// refuses too, unless the text holds what the scanner may leave to
        /// the value path. The object found at the start of a text that
        /// goes on is the same object.
        #[test]
        fn decides_as_serde_json_on_raw_bytes(choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let (text, unsure) = Build::event(&choices);
            let took = agrees(&text);
            let by_serde = serde_json::from_slice::<serde_json::Value>(&text);
            if took {
                let fields = event(&text, &crate::raw::NO_WATCH).map(|(f, _)| f).unwrap_or_default();
                let serde_json::Value::Object(map) = by_serde.unwrap_or_default() else {
                    panic!("not an object: {}", String::from_utf8_lossy(&text));
                };
                for (key, raw) in &fields {
                    let value: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
                    // Duplicate keys: serde_json's map keeps the last.
                    if fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v) == Some(raw) {
                        proptest::prop_assert_eq!(map.get(*key), Some(&value));
                    }
                }
                let trimmed = text.trim_ascii_end();
                let mut followed = trimmed.to_vec();
                followed.extend_from_slice(b"]\n,{\"a\": ");
                let (end, _) = event_at(&followed, &crate::raw::NO_WATCH).unwrap_or_default();
                proptest::prop_assert_eq!(end, trimmed.len());
            } else if !unsure {
                proptest::prop_assert!(
                    !matches!(by_serde, Ok(serde_json::Value::Object(_))),
                    "refused what serde_json takes: {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    /// The built texts reach both answers: many the scanner takes, many
    /// serde_json refuses, some only the scanner refuses.
    #[test]
    fn built_texts_reach_every_answer() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let (mut taken, mut refused, mut left) = (0, 0, 0);
        for _ in 0..3000 {
            let choices: Vec<u8> = (0..300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let (text, _) = Build::event(&choices);
            let by_serde = serde_json::from_slice::<serde_json::Value>(&text);
            match (event(&text, &crate::raw::NO_WATCH).is_some(), by_serde) {
                (true, _) => taken += 1,
                (false, Ok(serde_json::Value::Object(_))) => left += 1,
                (false, _) => refused += 1,
            }
        }
        assert!(
            taken > 300 && refused > 300 && left > 30,
            "{taken} taken, {refused} refused, {left} left"
        );
    }

    /// Whether `key` is a member key anywhere in `value`.
    fn holds_key(value: &serde_json::Value, key: &str) -> bool {
        match value {
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k == key || holds_key(v, key)),
            serde_json::Value::Array(items) => items.iter().any(|v| holds_key(v, key)),
            _ => false,
        }
    }

    /// A watched key is noted absent from a field exactly when a parse
    /// finds it nowhere inside (an escaped key may spell it: not absent).
    #[test]
    fn watched_keys_are_absent_only_where_a_parse_finds_none() {
        let names = ["accessKeyId", "sessionToken", "ARN", "userName", "tags", "a"];
        let mut keys: Vec<Option<Box<[u8]>>> = names.iter().map(|k| Some(Box::from(k.as_bytes()))).collect();
        keys.insert(2, None);
        let watch = Watch::new(keys);
        let slot = |n: usize| if n < 2 { n } else { n + 1 };
        let mut texts: Vec<Vec<u8>> = sample_events();
        texts.push(br#"{"f": {"x": [{"ARN": 1}], "acc\u0065ssKeyId": 2}, "g": {"a": {"userName": null}}}"#.to_vec());
        let (mut absent, mut present) = (0, 0);
        for text in &texts {
            let Some((fields, shapes)) = event(text, &watch) else {
                continue;
            };
            for ((key, value), shape) in fields.iter().zip(&shapes) {
                let parsed: serde_json::Value = serde_json::from_str(value).unwrap();
                let escaped_key = shape.unicode_escape && value.contains("\\u") && shape.odd_key;
                assert_eq!(shape.unwatched & 1 << 2, 0, "an unwatched slot is never noted");
                for (n, name) in names.iter().enumerate() {
                    let noted_absent = shape.unwatched & 1 << slot(n) != 0;
                    if holds_key(&parsed, name) {
                        assert!(!noted_absent, "{key}: {name} is there: {value}");
                        present += 1;
                    } else if !escaped_key {
                        assert!(noted_absent, "{key}: {name} is not there: {value}");
                        absent += 1;
                    }
                }
            }
        }
        assert!(absent > 1000 && present > 100, "{absent} absent, {present} present");
        // The escaped key above may be any key: nothing noted absent in "f".
        let (fields, shapes) = event(texts.last().unwrap(), &watch).unwrap();
        assert_eq!((fields[0].0, shapes[0].unwatched), ("f", 0));
        assert_eq!(fields[1].0, "g");
        assert_eq!(shapes[1].unwatched, watch.mask & !(1 << slot(3) | 1 << slot(5)));
    }
}
