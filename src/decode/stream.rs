//! Streaming decoding: a file read value by value, in bounded memory.
//!
//! The file (gzip or not) is decompressed into a window that holds only the
//! value being read and what follows it in the current chunk. For the
//! shapes that hold many events — `{"Records":[…]}`, a top-level array,
//! NDJSON, `aws cloudtrail lookup-events` output (`{"Events":[…]}`, maybe
//! after its `NextToken`) — each element is handed on as its JSON text ([`Found::text`], the
//! fast path); what that does not take is parsed and unwrapped as before
//! ([`super::extract`]). Any other shape (a single object, envelopes, a
//! `Records` key that is not the first) is read whole and decoded by
//! [`super::decode_object_or_lines`]; such files are small.
//!
//! Invariant: as for the whole-file decoder, every value ends up as an
//! event or a [`Reject`]; values that are not events are held back until the
//! file's first event, so a file with no event at all is one whole-file error
//! (not a dead letter per value).

use std::io::{BufRead, BufReader, Read};

use super::scan::{skip_ws, value_end};
use super::{DIGEST, DecodeError, Event, Position, Receive, Reject, extract};

/// Bytes read from the input at a time.
const CHUNK: usize = 1 << 20;

/// Values that are not events held back while no event has been seen; a
/// file that reaches this many before its first event is not CloudTrail.
const MAX_HELD_REJECTS: usize = 10_000;

/// What receives a file's values.
pub trait Found {
    /// The JSON text of a value that may be an event, at the start of
    /// `text`: all of `text` when `whole`, else the value may be followed by
    /// anything, or go on past the end of `text`.
    fn text(&mut self, text: &[u8], whole: bool, position: Position) -> Took;
    /// An event found by parsing.
    fn event(&mut self, event: Event, position: Position);
    /// A value that is not an event.
    fn reject(&mut self, reject: Reject);
}

/// What [`Found::text`] made of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Took {
    /// An event this many bytes long, taken.
    Event(usize),
    /// A value this many bytes long, for the decoder to parse and unwrap.
    Value(usize),
    /// Not read: the decoder finds where the value ends, then parses it.
    Unread,
}

/// How a readable file ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Finished {
    pub events: usize,
    pub rejects: usize,
    /// The file broke off (truncated gzip or JSON): what was lost.
    pub truncated: Option<String>,
}

/// Reads one file from `input` into `found`. Whole-file problems (empty,
/// digest, corrupt gzip, not JSON, no CloudTrail event) are errors, and then
/// `found` has received nothing.
pub fn read<'a>(input: impl Read + 'a, found: &mut dyn Found) -> Result<Finished, DecodeError> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let gzip = match input.fill_buf() {
        Ok(head) => super::is_gzip(head),
        Err(e) => return Err(DecodeError::Gzip(e.to_string())),
    };
    let mut tally = Tally {
        found,
        events: 0,
        rejects: 0,
        held: Vec::new(),
    };
    let reader: Box<dyn Read + 'a> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut window = Window::new(reader);
    let ended = decode(&mut window, &mut tally);
    let read_error = window.error.take();
    crate::buffers::give(std::mem::take(&mut window.buf));
    match ended {
        Err(e) if tally.events == 0 => Err(read_error.map(DecodeError::Gzip).unwrap_or(e)),
        Err(e) => tally.end(Some(e.to_string()), read_error, gzip),
        Ok(truncated) => tally.end(truncated, read_error, gzip),
    }
}

/// Counts events, and holds back rejects until the first event.
struct Tally<'a> {
    found: &'a mut dyn Found,
    events: usize,
    rejects: usize,
    held: Vec<Reject>,
}

impl Tally<'_> {
    /// A value's text: the fast path first, else parsed and unwrapped.
    fn text(&mut self, text: &[u8], position: Position) {
        match self.found.text(text, true, position) {
            Took::Event(_) => self.note_event(),
            Took::Value(_) | Took::Unread => self.parse(text, position),
        }
    }

    /// The value at the start of `rest`, which may go on past its end, on
    /// the fast path: its length, or None when that path did not read it
    /// (the caller finds its end and hands it to [`Tally::text`]).
    fn text_at(&mut self, rest: &[u8], position: Position) -> Option<usize> {
        match self.found.text(rest, false, position) {
            Took::Event(len) => {
                self.note_event();
                Some(len)
            }
            Took::Value(len) => {
                self.parse(rest.get(..len)?, position);
                Some(len)
            }
            Took::Unread => None,
        }
    }

    /// A value's text parsed and unwrapped.
    fn parse(&mut self, text: &[u8], position: Position) {
        match serde_json::from_slice(text) {
            Ok(value) => extract(value, position, self),
            Err(e) => self.reject(Reject::unparsed(position, text, &e)),
        }
    }

    fn note_event(&mut self) {
        self.events += 1;
        if self.events == 1 {
            for reject in std::mem::take(&mut self.held) {
                self.found.reject(reject);
            }
        }
    }

    /// Whether to stop: so many values and no event, it is not CloudTrail.
    fn hopeless(&self) -> bool {
        self.events == 0 && self.held.len() >= MAX_HELD_REJECTS
    }

    fn end(self, truncated: Option<String>, read_error: Option<String>, gzip: bool) -> Result<Finished, DecodeError> {
        if self.events > 0 {
            let broke = read_error.map(|e| match gzip {
                true => format!("corrupt gzip data: {e}"),
                false => format!("read error: {e}"),
            });
            let truncated = match (broke, truncated) {
                (Some(b), Some(t)) => Some(format!("{b}; {t}")),
                (b, t) => b.or(t),
            };
            return Ok(Finished {
                events: self.events,
                rejects: self.rejects,
                truncated,
            });
        }
        if let Some(e) = read_error {
            return Err(DecodeError::Gzip(e));
        }
        let Some(first) = self.held.first() else {
            return match truncated {
                Some(why) => Err(DecodeError::NotJson(why)),
                None => Ok(Finished::default()),
            };
        };
        if first.reason == DIGEST {
            return Err(DecodeError::Digest);
        }
        if self.held.iter().all(|r| r.raw.is_none()) {
            return Err(DecodeError::NotJson(format!("{}: {}", first.position, first.reason)));
        }
        Err(DecodeError::NotCloudTrail(format!(
            "no CloudTrail events found ({}{} value(s); {}: {})",
            if self.held.len() >= MAX_HELD_REJECTS {
                "the first "
            } else {
                ""
            },
            self.held.len(),
            first.position,
            first.reason
        )))
    }
}

impl Receive for Tally<'_> {
    fn event(&mut self, event: Event, position: Position) {
        self.found.event(event, position);
        self.note_event();
    }

    fn reject(&mut self, reject: Reject) {
        self.rejects += 1;
        if self.events == 0 {
            self.held.push(reject);
        } else {
            self.found.reject(reject);
        }
    }
}

/// The part of the (decompressed) input being read.
struct Window<'a> {
    reader: Box<dyn Read + 'a>,
    /// Read bytes, then room for the next chunk: initialized once, so that
    /// reading into it does not zero it again for every chunk.
    buf: Vec<u8>,
    /// How much of `buf` has been read.
    filled: usize,
    /// Where the unread part of `buf` starts.
    pos: usize,
    eof: bool,
    error: Option<String>,
}

impl<'a> Window<'a> {
    fn new(reader: Box<dyn Read + 'a>) -> Self {
        Window {
            reader,
            buf: crate::buffers::take_initialized(CHUNK),
            filled: 0,
            pos: 0,
            eof: false,
            error: None,
        }
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Reads another chunk; false at the end of the input (or on an error,
    /// kept in `error`).
    fn more(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.pos > 0 && self.pos * 2 >= self.filled {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        let old = self.filled;
        let want = old + CHUNK;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        // Up to a chunk, as much as the reader gives until then; what was
        // read before an error (a truncated gzip stream) is kept.
        while self.filled < want {
            match self.reader.read(&mut self.buf[self.filled..want]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.eof = true;
                    break;
                }
            }
        }
        self.filled > old
    }

    /// Skips whitespace (and a byte-order mark at the very start); the next
    /// byte, or None at the end.
    fn peek(&mut self) -> Option<u8> {
        loop {
            let rest = self.rest();
            let at = skip_ws(rest, 0);
            if at < rest.len() {
                self.pos += at;
                return Some(self.buf[self.pos]);
            }
            self.pos += at;
            if !self.more() {
                return None;
            }
        }
    }

    /// Makes at least `n` unread bytes available, if the input has them.
    fn want(&mut self, n: usize) {
        while self.rest().len() < n && self.more() {}
    }

    /// The length of the value at the start of the unread part, reading
    /// more as needed; None when the input ends inside it.
    fn value_len(&mut self) -> Option<usize> {
        loop {
            let rest = self.rest();
            match value_end(rest, 0) {
                // A value that reaches the end of what was read may go on.
                Some(end) if end < rest.len() || self.eof => return Some(end),
                _ => {
                    if !self.more() {
                        return value_end(self.rest(), 0);
                    }
                }
            }
        }
    }
}

/// Reads the input in the shape it starts with; returns why it broke off,
/// or the whole-file error of a file read whole.
fn decode(window: &mut Window<'_>, tally: &mut Tally<'_>) -> Result<Option<String>, DecodeError> {
    window.want(3);
    if window.rest().starts_with(b"\xEF\xBB\xBF") {
        window.pos += 3;
    }
    let Some(first) = window.peek() else {
        return Err(DecodeError::Empty);
    };
    Ok(match first {
        b'[' => {
            window.pos += 1;
            elements(window, tally, "the array")
        }
        b'{' if records_first(window) => elements(window, tally, "the Records object"),
        b'{' if events_first(window) => elements(window, tally, "the Events object"),
        b'{' => return object_or_lines(window, tally),
        _ => lines(window, tally),
    })
}

/// Whether the object opens with its `Records` array; if so, moves past
/// `{"Records":[`.
fn records_first(window: &mut Window<'_>) -> bool {
    window.want(64);
    let at = skip_ws(window.rest(), 1);
    opens_array(window, at, b"\"Records\"")
}

/// Whether `"KEY" : [` stands at `at` of what is left; if so, moves past it.
fn opens_array(window: &mut Window<'_>, at: usize, key: &[u8]) -> bool {
    let rest = window.rest();
    if !rest[at..].starts_with(key) {
        return false;
    }
    let colon = skip_ws(rest, at + key.len());
    if rest.get(colon) != Some(&b':') {
        return false;
    }
    let open = skip_ws(rest, colon + 1);
    if rest.get(open) != Some(&b'[') {
        return false;
    }
    window.pos += open + 1;
    true
}

/// Whether the object is `aws cloudtrail lookup-events` output that opens
/// with its `Events` array (maybe after a string `NextToken`); if so, moves
/// past `"Events":[`. Then each element (a LookupEvents entry, or an event)
/// is read as a record, and what follows the array is skipped.
fn events_first(window: &mut Window<'_>) -> bool {
    window.want(64);
    let mut at = skip_ws(window.rest(), 1);
    // A NextToken first: skip it (it may be long: make it whole).
    if window.rest()[at..].starts_with(b"\"NextToken\"") {
        let rest = window.rest();
        let colon = skip_ws(rest, at + 11);
        if rest.get(colon) != Some(&b':') {
            return false;
        }
        let value = skip_ws(rest, colon + 1);
        if rest.get(value) != Some(&b'"') {
            return false;
        }
        let end = loop {
            match super::scan::string_end(window.rest(), value) {
                Some(end) => break end,
                None if window.more() => continue,
                None => return false,
            }
        };
        window.want(end + 64);
        let rest = window.rest();
        let comma = skip_ws(rest, end);
        if rest.get(comma) != Some(&b',') {
            return false;
        }
        at = skip_ws(rest, comma + 1);
    }
    opens_array(window, at, b"\"Events\"")
}

/// The elements of an array up to `close`, each handed on; then what may
/// follow it. Returns why it broke off.
fn elements(window: &mut Window<'_>, tally: &mut Tally<'_>, what: &str) -> Option<String> {
    let mut i = 0;
    loop {
        match window.peek() {
            None => return Some(format!("JSON breaks off after record {}", i.max(1) - 1)),
            Some(b']') => {
                window.pos += 1;
                break;
            }
            Some(b',') if i > 0 => {
                window.pos += 1;
                if window.peek().is_none() {
                    return Some(format!("JSON breaks off after record {}", i - 1));
                }
            }
            Some(_) if i > 0 => {
                let b = window.rest()[0];
                return Some(format!(
                    "JSON breaks off after record {}: unexpected {:?}",
                    i - 1,
                    char::from(b)
                ));
            }
            Some(_) => {}
        }
        // Most events are whole in the window: where one ends is found
        // as it is read.
        if let Some(len) = tally.text_at(window.rest(), Position::Record(i)) {
            window.pos += len;
        } else {
            let Some(len) = window.value_len() else {
                return Some(format!("JSON breaks off inside record {i}"));
            };
            let start = window.pos;
            window.pos += len;
            tally.text(&window.buf[start..start + len], Position::Record(i));
        }
        if tally.hopeless() {
            return None;
        }
        i += 1;
    }
    // After the Records array: the rest of the object (other keys are
    // allowed); after a top-level array: nothing.
    if what != "the array" {
        match window.peek() {
            Some(b'}') => window.pos += 1,
            Some(b',') => {
                // Other keys after the Records: not events, skipped.
                window.pos = window.filled;
                while window.more() {
                    window.pos = window.filled;
                }
                return None;
            }
            _ => return Some(format!("unexpected data after {what}")),
        }
    }
    window.peek().map(|_| format!("unexpected data after {what}"))
}

/// NDJSON: one value per line, each handed on.
fn lines(window: &mut Window<'_>, tally: &mut Tally<'_>) -> Option<String> {
    // Line numbers count from the first line of the file, blank ones too.
    let mut number = 1 + window.buf[..window.pos].iter().filter(|&&b| b == b'\n').count();
    loop {
        let end = loop {
            match memchr::memchr(b'\n', window.rest()) {
                Some(at) => break Some(at),
                None if window.more() => continue,
                None => break None,
            }
        };
        let len = end.unwrap_or(window.rest().len());
        let raw = &window.rest()[..len];
        let lead = raw.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let trail = raw[lead..].iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
        if lead + trail < len {
            let (a, b) = (window.pos + lead, window.pos + len - trail);
            tally.text(&window.buf[a..b], Position::Line(number));
            if tally.hopeless() {
                return None;
            }
        }
        match end {
            Some(at) => {
                window.pos += at + 1;
                number += 1;
            }
            None => {
                window.pos += len;
                return None;
            }
        }
    }
}

/// A file that starts with `{` but not with its Records: one object (an
/// event, an envelope, a Records object with other keys first), or NDJSON.
fn object_or_lines(window: &mut Window<'_>, tally: &mut Tally<'_>) -> Result<Option<String>, DecodeError> {
    // NDJSON when a second value starts after the first one's line.
    if let Some(len) = window.value_len() {
        let after = &window.rest()[len..];
        let next = skip_ws(after, 0);
        if next < after.len() && after[..next].contains(&b'\n') && matches!(after[next], b'{' | b'[') {
            return Ok(lines(window, tally));
        }
    }
    // One object: read it whole (with whatever follows) and decode it as before.
    while window.more() {}
    let text = window.rest();
    let decoded = super::decode_object_or_lines(text)?;
    for reject in decoded.rejects {
        tally.reject(reject);
    }
    for (event, position) in decoded.events.into_iter().zip(decoded.positions) {
        tally.event(event, position);
    }
    Ok(decoded.truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawEvent;

    /// Takes what the one-pass scan reads (as the pipeline does), except
    /// ids with escapes; notes how each event came.
    #[derive(Default)]
    struct Take {
        got: Vec<(String, Position, bool)>,
        rejects: Vec<Position>,
        /// Values handed on from a window (streamed), not from a whole file.
        streamed: usize,
    }

    impl Found for Take {
        fn text(&mut self, text: &[u8], whole: bool, position: Position) -> Took {
            self.streamed += usize::from(!whole);
            let parsed = match whole {
                true => RawEvent::parse(text, &crate::raw::NO_WATCH).map(|raw| (text.len(), raw)),
                false => RawEvent::parse_at(text, &crate::raw::NO_WATCH),
            };
            let Some((len, raw)) = parsed else {
                return Took::Unread;
            };
            match raw.get("eventID").and_then(crate::raw::plain_string) {
                Some(id) => {
                    self.got.push((id.to_string(), position, true));
                    Took::Event(len)
                }
                None => Took::Value(len),
            }
        }
        fn event(&mut self, event: Event, position: Position) {
            let id = event["eventID"].as_str().unwrap_or_default().to_string();
            self.got.push((id, position, false));
        }
        fn reject(&mut self, reject: Reject) {
            self.rejects.push(reject.position);
        }
    }

    /// Events of many sizes over several chunks, so that chunk ends fall
    /// inside events, keys, strings and between them: each is read once, in
    /// order, on the path it belongs to.
    #[test]
    fn events_across_chunk_ends_are_read_once_in_order() {
        let mut records = Vec::new();
        let mut want = Vec::new();
        let mut i = 0;
        let mut bytes = 0;
        while bytes < 3 * CHUNK + CHUNK / 2 {
            let pad = "x".repeat((i * 7919) % 5000);
            let record = match i % 97 {
                // An escaped id: the scan reads it, the value path takes it.
                13 => format!(
                    r#"{{"eventID": "e\u0031-{i}", "eventName": "A", "eventTime": "2024-01-01T00:00:00Z", "p": "{pad}"}}"#
                ),
                // An escaped key: the scan refuses, the value path takes it.
                29 => format!(
                    r#"{{"eventID": "e{i}", "event\u004eame": "A", "eventTime": "2024-01-01T00:00:00Z", "p": "{pad}"}}"#
                ),
                // Not an event.
                71 => r#"{"note": "not an event"}"#.to_string(),
                _ => format!(
                    "{{ \"eventID\" : \"e{i}\",\n \"eventName\": \"A\", \"eventTime\": \"2024-01-01T00:00:00Z\", \"p\": [\"{pad}\", {{\"n\": {i}}}] }}"
                ),
            };
            if i % 97 != 71 {
                let id = if i % 97 == 13 {
                    format!("e1-{i}")
                } else {
                    format!("e{i}")
                };
                want.push((id, Position::Record(i), !matches!(i % 97, 13 | 29)));
            }
            bytes += record.len();
            records.push(record);
            i += 1;
        }
        let text = format!("{{\"Records\": [\n{}\n]}}", records.join(",\n "));
        let mut take = Take::default();
        let finished = read(text.as_bytes(), &mut take).unwrap();
        assert_eq!(finished.truncated, None);
        assert_eq!(finished.events, want.len());
        assert_eq!(take.got, want);
        let not_events: Vec<Position> = (0..i).filter(|i| i % 97 == 71).map(Position::Record).collect();
        assert_eq!(take.rejects, not_events);
    }

    /// `aws cloudtrail lookup-events` output larger than a few chunks, with a
    /// NextToken first that crosses a chunk end: streamed element by
    /// element (never read whole), each entry unwrapped, in order.
    #[test]
    fn lookup_events_output_is_streamed() {
        let mut entries = Vec::new();
        let mut want = Vec::new();
        let mut bytes = 0;
        let mut i = 0;
        while bytes < 3 * CHUNK {
            let event = format!(
                r#"{{"eventVersion":"1.08","eventID":"e{i}","eventName":"A","eventTime":"2024-01-01T00:00:00Z","p":"{}"}}"#,
                "y".repeat((i * 7919) % 4000)
            );
            let entry = format!(
                "{{\n      \"EventId\": \"e{i}\",\n      \"EventName\": \"A\",\n      \"CloudTrailEvent\": {}\n    }}",
                serde_json::to_string(&event).unwrap()
            );
            bytes += entry.len();
            entries.push(entry);
            want.push((format!("e{i}"), Position::Record(i), false));
            i += 1;
        }
        let token = "T".repeat(CHUNK + 100);
        for text in [
            format!(
                "{{\n  \"NextToken\": \"{token}\",\n  \"Events\": [\n    {}\n  ]\n}}\n",
                entries.join(",\n    ")
            ),
            format!("{{\"Events\": [{}], \"NextToken\": \"{token}\"}}", entries.join(",")),
        ] {
            let mut take = Take::default();
            let finished = read(text.as_bytes(), &mut take).unwrap();
            assert_eq!(finished.truncated, None);
            assert_eq!(finished.events, want.len());
            assert_eq!(take.got, want);
            assert_eq!(take.streamed, want.len(), "every entry comes from the window");
        }
        // Cut off inside an entry: the entries before it are kept.
        let text = format!("{{\"Events\": [{}", entries[..3].join(","));
        let cut = &text[..text.len() - 20];
        let mut take = Take::default();
        let finished = read(cut.as_bytes(), &mut take).unwrap();
        assert_eq!(take.got.len(), 2);
        assert_eq!(finished.truncated.as_deref(), Some("JSON breaks off inside record 2"));
    }
}
