//! Streaming decoding: a file read value by value, in bounded memory.
//!
//! The file (gzip or not) is decompressed into a window that holds only the
//! value being read and what follows it in the current chunk. For the
//! shapes that hold many events — `{"Records":[…]}`, a top-level array,
//! NDJSON, `aws cloudtrail lookup-events` output (`{"Events":[…]}`, maybe
//! after its `NextToken`) — each element is handed on as its JSON text ([`Found::text`], the
//! fast path); what that does not take is parsed and unwrapped as before
//! ([`super::extract`]). A `Records` array need not be the object's first
//! key: the keys before it are walked (held in the window, not parsed) and
//! left behind once the array opens, so memory is bounded by the largest
//! value before the array or inside it, never by the file. Any other shape
//! (a single object, envelopes without such an array) is read whole and
//! decoded by [`super::decode_object_or_lines`]; such files are one value.
//!
//! Invariant: as for the whole-file decoder, every value ends up as an
//! event or a [`Reject`]; values that are not events are held back until the
//! file's first event, so a file with no event at all is one whole-file error
//! (not a dead letter per value).

use std::io::{BufRead, BufReader, Read};

pub use super::gunzip::Feed;

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
    let reader: Box<dyn Read + 'a> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    read_content(reader, gzip, found)
}

/// Reads one file the caller owns, as [`read`] does, with this thread's
/// gzip decoder ([`super::gunzip`]): the pipeline's way, where files are
/// many and small.
pub fn read_feed(mut feed: Feed, found: &mut dyn Found) -> Result<Finished, DecodeError> {
    let gzip = match feed.fill_buf() {
        Ok(head) => super::is_gzip(head),
        Err(e) => return Err(DecodeError::Gzip(e.to_string())),
    };
    match gzip {
        true => super::gunzip::with_gunzip(feed, |gunzip| read_content(Box::new(gunzip), true, found)),
        false => read_content(Box::new(feed), false, found),
    }
}

/// Reads the (uncompressed) content of a file.
fn read_content<'a>(reader: Box<dyn Read + 'a>, gzip: bool, found: &mut dyn Found) -> Result<Finished, DecodeError> {
    let mut tally = Tally {
        found,
        events: 0,
        rejects: 0,
        held: Vec::new(),
    };
    let mut window = Window::new(reader);
    let ended = decode(&mut window, &mut tally);
    let read_error = window.error.take();
    give_window(std::mem::take(&mut window.buf));
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

thread_local! {
    /// This thread's window buffer between files, initialized: a file of a
    /// few kilobytes does not pay for zeroing a fresh chunk (on trails of
    /// tiny files that was 5% of the run's time).
    static WINDOW: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A window grown past this for a huge value is let go, not kept.
const WINDOW_KEPT: usize = 4 * CHUNK;

fn take_window() -> Vec<u8> {
    WINDOW.with(|w| w.take())
}

fn give_window(buf: Vec<u8>) {
    if buf.capacity() <= WINDOW_KEPT {
        WINDOW.with(|w| w.set(buf));
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
    /// The most bytes the window held at once.
    most: usize,
}

impl<'a> Window<'a> {
    fn new(reader: Box<dyn Read + 'a>) -> Self {
        Window {
            reader,
            buf: take_window(),
            filled: 0,
            pos: 0,
            eof: false,
            error: None,
            most: 0,
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
        self.most = self.most.max(self.filled - self.pos);
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
        self.value_end_at(0)
    }

    /// Where the value at `at` of the unread part ends, reading more as
    /// needed; None when the input ends inside it.
    fn value_end_at(&mut self, at: usize) -> Option<usize> {
        loop {
            let rest = self.rest();
            match value_end(rest, at) {
                // A value that reaches the end of what was read may go on.
                Some(end) if end < rest.len() || self.eof => return Some(end),
                _ => {
                    if !self.more() {
                        return value_end(self.rest(), at);
                    }
                }
            }
        }
    }

    /// Skips whitespace from `at` of the unread part, reading more as
    /// needed: where the next byte is, None at the end of the input.
    fn skip_ws_at(&mut self, at: usize) -> Option<usize> {
        loop {
            let next = skip_ws(self.rest(), at);
            if next < self.rest().len() {
                return Some(next);
            }
            if !self.more() {
                return None;
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
        b'{' => match array_inside(window) {
            Some(what) => elements(window, tally, what),
            None => return object_or_lines(window, tally),
        },
        _ => lines(window, tally),
    })
}

/// Walks the top-level keys of the object that starts the unread part
/// (without parsing their values; they stay in the window) up to its first
/// `Records` array, or its `Events` array when no key before it may make
/// the object an event ([`super::is_event`] reads `eventName`, `eventType`
/// and `eventCategory`, in any case): if there is one, moves past its `[`
/// and says which. None (and nothing moved) for an object without one,
/// and for anything the walk is unsure of (an escaped key, a syntax error,
/// an end inside the object): the whole-object path decides those as it
/// always did.
fn array_inside(window: &mut Window<'_>) -> Option<&'static str> {
    let mut event_like = false;
    let mut at = 1;
    loop {
        let key = window.skip_ws_at(at)?;
        if window.rest()[key] != b'"' {
            return None;
        }
        let key_end = window.value_end_at(key)?;
        let colon = window.skip_ws_at(key_end)?;
        if window.rest()[colon] != b':' {
            return None;
        }
        let value = window.skip_ws_at(colon + 1)?;
        let rest = window.rest();
        let name = &rest[key..key_end];
        if name.contains(&b'\\') {
            return None;
        }
        let what = match (name, rest[value]) {
            (b"\"Records\"", b'[') => Some("the Records object"),
            (b"\"Events\"", b'[') if !event_like => Some("the Events object"),
            _ => None,
        };
        if let Some(what) = what {
            window.pos += value + 1;
            return Some(what);
        }
        let lower = name.to_ascii_lowercase();
        event_like |= [&b"\"eventname\""[..], b"\"eventtype\"", b"\"eventcategory\""].contains(&lower.as_slice());
        let end = window.value_end_at(value)?;
        let next = window.skip_ws_at(end)?;
        match window.rest()[next] {
            b',' => at = next + 1,
            _ => return None,
        }
    }
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

    /// Runs the decoder over `text` as [`read`] does: what it took, how it
    /// ended, and the most bytes its window held at once.
    fn decode_text(text: &[u8]) -> (Take, Result<Finished, DecodeError>, usize) {
        let mut take = Take::default();
        let mut tally = Tally {
            found: &mut take,
            events: 0,
            rejects: 0,
            held: Vec::new(),
        };
        let mut window = Window::new(Box::new(text));
        let ended = decode(&mut window, &mut tally);
        let finished = match ended {
            Ok(truncated) => tally.end(truncated, None, false),
            Err(e) => Err(e),
        };
        (take, finished, window.most)
    }

    /// Records `n`, about `size` bytes each, and the ids they hold.
    fn records(n: usize, size: usize) -> (Vec<String>, Vec<(String, Position, bool)>) {
        let records = (0..n)
            .map(|i| {
                format!(
                    r#"{{"eventVersion":"1.08","eventID":"r{i}","eventName":"A","eventTime":"2024-01-01T00:00:00Z","p":"{}"}}"#,
                    "z".repeat(size.saturating_sub(100) + i % 13)
                )
            })
            .collect();
        let want = (0..n).map(|i| (format!("r{i}"), Position::Record(i), true)).collect();
        (records, want)
    }

    /// A Records array after other keys — small ones, a value larger than
    /// a chunk, nested values that hold `Records` keys and brackets in
    /// strings, a `Records` that is not an array — in a file many chunks
    /// long: streamed element by element (none read whole), in order, and
    /// the window never holds more than the keys before the array and a
    /// chunk or two, not the file.
    #[test]
    fn records_after_other_keys_are_streamed_in_bounded_memory() {
        let (records, want) = records(6000, 1500);
        let body = records.join(",\n");
        assert!(body.len() > 8 * CHUNK, "{} bytes", body.len());
        let big = "b".repeat(CHUNK + CHUNK / 2);
        let nested = r#"{"Records": [{"eventID": "no"}], "x": [{"y": "]}\"[{"}, [[], {}]], "z": null}"#;
        let befores = [
            (r#""version": "1.0", "n": -1.5e3, "t": true"#.to_string(), 0),
            (format!(r#""large": "{big}", "after": 1"#), big.len()),
            (format!(r#""meta": {nested}, "list": [{nested}, 2]"#), 0),
            (r#""Records": 5, "Recordsx": [1]"#.to_string(), 0),
            (format!(r#""Events": "{big}", "eventVersion": "1.08""#), big.len()),
        ];
        for (before, held) in befores {
            for (open, sep) in [("{", ","), ("{\n  ", ",\n  ")] {
                let text = format!("{open}{before}{sep}\"Records\" : [\n{body}\n], \"after\": {{\"Records\": []}}}}\n");
                let (take, finished, most) = decode_text(text.as_bytes());
                let finished = finished.unwrap_or_else(|e| panic!("{before}: {e}"));
                assert_eq!(finished.truncated, None, "{before}");
                assert_eq!(finished.events, want.len(), "{before}");
                assert_eq!(take.got, want, "{before}");
                assert_eq!(
                    take.streamed,
                    want.len(),
                    "{before}: every record comes from the window"
                );
                assert!(take.rejects.is_empty(), "{before}: {:?}", take.rejects);
                assert!(
                    most <= held + 3 * CHUNK,
                    "{before}: the window held {most} bytes of {}",
                    text.len()
                );
            }
        }
    }

    /// The same objects, cut off inside a record, or before their array
    /// opens: the records before the cut are kept and the cut is named as
    /// the whole-file decoder names it; a file cut before any record is
    /// not JSON.
    #[test]
    fn records_after_other_keys_that_break_off() {
        let (records, _) = records(40, 300);
        let text = format!(r#"{{"a": {{"b": [1, "x"]}}, "Records": [{}]}}"#, records.join(","));
        let cut = &text[..text.len() - 200];
        let (take, finished, _) = decode_text(cut.as_bytes());
        let finished = finished.unwrap();
        assert_eq!(take.got.len(), 39);
        assert_eq!(finished.truncated.as_deref(), Some("JSON breaks off inside record 39"));
        let whole = super::super::decode(cut.as_bytes()).unwrap();
        assert_eq!(whole.events.len(), 39);
        assert_eq!(whole.truncated, finished.truncated);
        for cut in [r#"{"a": {"b": [1, "x"]}, "Records"#, r#"{"a": {"b": [1, "#] {
            let (take, finished, _) = decode_text(cut.as_bytes());
            assert!(take.got.is_empty());
            assert!(matches!(finished, Err(DecodeError::NotJson(_))), "{cut}: {finished:?}");
        }
    }

    /// An object whose `Events` array follows a key that may make it an
    /// event is not streamed as lookup-events output: the whole object
    /// decides, as before.
    #[test]
    fn an_event_with_an_events_key_is_one_event() {
        let text = r#"{"eventName": "X", "eventID": "ev", "eventTime": "2024-01-01T00:00:00Z", "Events": [{"eventID": "in"}]}"#;
        let (take, finished, _) = decode_text(text.as_bytes());
        assert_eq!(finished.unwrap().events, 1);
        assert_eq!(take.got, [("ev".to_string(), Position::Whole, false)]);
        assert_eq!(take.streamed, 0);
        let text =
            r#"{"Other": 1, "Events": [{"eventName": "X", "eventID": "in", "eventTime": "2024-01-01T00:00:00Z"}]}"#;
        let (take, _, _) = decode_text(text.as_bytes());
        assert_eq!(take.got, [("in".to_string(), Position::Record(0), true)]);
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
