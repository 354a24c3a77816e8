//! Field filtering: which parts of an event never reach the index.
//!
//! Owns the dotted-path patterns of `--drop` and `--keep` and the default
//! drop list (access key ids and session tokens), plus the value scrubber that
//! masks access key ids wherever else they turn up in a string.
//!
//! Pure and synchronous. Invariant: a field matched by a drop pattern and by
//! no keep pattern is gone from the event after [`FieldFilter::apply`].
//!
//! Pattern syntax: segments separated by `.`; a segment is a key, a glob with
//! `*` inside a key (`access*`), `*` for any one key, or `**` for any number of
//! keys (zero or more). Arrays are transparent: `resources.ARN` matches the
//! `ARN` of every element of `resources`.

use serde_json::{Map, Value};

use crate::raw::{Shape, Watch};

/// Dropped unless `--keep` says otherwise: identifiers of credentials.
/// Access key ids and session tokens are not secret keys, but they identify
/// live credentials and are what leak scanners look for.
pub const DEFAULT_DROP: &[&str] = &["**.accessKeyId", "**.sessionToken", "**.secretAccessKey"];

/// Top-level fields every document needs, with why: a drop pattern that
/// would remove one of them (and no `--keep` that spares it) is refused.
/// The document id and the classification are taken before filtering, so
/// it is the searches and dashboards that would lose them.
pub const REQUIRED_FIELDS: &[(&str, &str)] = &[
    (
        "eventTime",
        "the event's time, which picks its monthly index and is the time field of searches and dashboards: \
         without it every event goes to the <PREFIX>-undated index",
    ),
    (
        "eventID",
        "the event's unique id, by which CloudTrail, the AWS console and other tools name it",
    ),
    (
        "eventName",
        "the API call, on which the dashboards and most searches are built",
    ),
    (
        "eventSource",
        "the AWS service called, on which the dashboards and most searches are built",
    ),
];

/// What replaces an access key id found inside some other string.
pub const REDACTED: &str = "[REDACTED-ACCESS-KEY-ID]";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Glob(String),
    AnyKey,
    AnyDepth,
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    segments: Vec<Segment>,
    /// A searcher for the first literal key below the top-level field,
    /// quoted as it appears in JSON text (None when only wildcards follow,
    /// or when JSON may spell the key with escapes), for
    /// [`FieldFilter::may_drop`].
    inner_literal: Option<memchr::memmem::Finder<'static>>,
}

/// A bad `--drop`/`--keep` pattern.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid field path pattern '{pattern}': {why} (use dotted paths such as userIdentity.accessKeyId, requestParameters.*, **.sessionToken)"
)]
pub struct PatternError {
    pattern: String,
    why: &'static str,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, PatternError> {
        let error = |why| PatternError {
            pattern: text.to_string(),
            why,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(error("it is empty"));
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            segments.push(match part {
                "" => return Err(error("it has an empty segment")),
                "*" => Segment::AnyKey,
                "**" => Segment::AnyDepth,
                p if p.contains("**") => return Err(error("'**' must be a whole segment")),
                p if p.contains('*') => Segment::Glob(p.to_string()),
                p => Segment::Key(p.to_string()),
            });
        }
        if segments.iter().all(|s| *s == Segment::AnyDepth) {
            return Err(error("it would match every field"));
        }
        let inner_literal = segments.iter().skip(1).find_map(|s| match s {
            // A key that JSON text may spell with escapes cannot be searched for.
            Segment::Key(k) if !k.contains(['\\', '/', '"']) && !k.chars().any(char::is_control) => {
                let quoted = format!("\"{k}\"");
                Some(memchr::memmem::Finder::new(quoted.as_bytes()).into_owned())
            }
            _ => None,
        });
        Ok(Pattern {
            text: text.to_string(),
            segments,
            inner_literal,
        })
    }
}

/// Checks one `--drop`/`--keep` pattern's syntax.
pub fn check_pattern(text: &str) -> Result<(), PatternError> {
    Pattern::parse(text).map(drop)
}

/// Why a `--drop`/`--keep` pattern can match no field of a CloudTrail
/// event, or None when it may match: its first key is no top-level field
/// (the decoder restores CloudTrail's spelling of lowercase keys, so a
/// lowercase name matches nothing either), `ctindex` (added after
/// filtering), or it reaches inside a field that holds a single value.
/// Patterns starting with `*` or `**` may match anything.
pub fn never_matches(text: &str) -> Option<String> {
    use crate::fields::{FieldClass, TOP_LEVEL_FIELDS, class_of};
    let pattern = Pattern::parse(text).ok()?;
    let fields = || TOP_LEVEL_FIELDS.iter().copied();
    let inside = &pattern.segments[1..];
    match &pattern.segments[0] {
        Segment::Key(k) if k == "ctindex" => {
            Some("the ctindex.* fields are added after filtering, out of reach of --drop and --keep".into())
        }
        Segment::Key(k) if crate::fields::is_ecs_root(k) => Some(
            "the ECS fields are added after filtering, out of reach of --drop and --keep (--no-ecs leaves them out)"
                .into(),
        ),
        Segment::Key(k) if !fields().any(|f| f == k) => {
            let near = fields()
                .find(|f| f.eq_ignore_ascii_case(k))
                .or_else(|| fields().find(|f| edit_distance(f, k) <= 2));
            Some(match near {
                Some(field) => format!(
                    "no CloudTrail event has a top-level field '{k}': did you mean '{field}'? (field names are \
                     case-sensitive)"
                ),
                None => format!(
                    "no CloudTrail event has a top-level field '{k}' (paths start at the top of the event, as in \
                     userIdentity.arn or requestParameters.bucketName; **.{k} matches it at any depth)"
                ),
            })
        }
        Segment::Key(k)
            if matches!(class_of(k), FieldClass::Scalar | FieldClass::Boolean)
                && inside.iter().any(|s| *s != Segment::AnyDepth) =>
        {
            Some(format!("{k} holds a single value, with no fields inside to match"))
        }
        Segment::Glob(g) if !fields().any(|f| glob_match(g, f)) => Some(format!(
            "'{g}' matches no top-level field of CloudTrail events (paths start at the top of the event; \
             **.{g} matches at any depth)"
        )),
        _ => None,
    }
}

/// The Levenshtein distance of two short names (ASCII-case-insensitive).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A drop pattern that would remove fields of [`REQUIRED_FIELDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredDrop {
    pub pattern: String,
    /// The required fields it removes (and no keep pattern spares), with why
    /// each is needed.
    pub fields: Vec<(&'static str, &'static str)>,
    /// The pattern removes every top-level field (`*`, `**.*`).
    pub everything: bool,
}

impl std::fmt::Display for RequiredDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(field, _)| *field).collect();
        let pattern = &self.pattern;
        if self.everything && self.fields.len() == REQUIRED_FIELDS.len() {
            return write!(
                f,
                "'{pattern}' would remove every top-level field, leaving each document empty, while every \
                 document needs {}. To drop what is inside a field, name the field (--drop \
                 'requestParameters.*'); to keep only some fields, spare each with --keep ({} at least)",
                and_list(&names),
                and_list(&names),
            );
        }
        let why: Vec<String> = self
            .fields
            .iter()
            .map(|(field, why)| format!("{field} ({why})"))
            .collect();
        write!(
            f,
            "'{pattern}' would remove what every document needs: {}",
            and_list(&why)
        )?;
        if names != [pattern.as_str()] {
            let keeps: Vec<String> = names.iter().map(|n| format!("--keep {n}")).collect();
            let them = if names.len() == 1 { "it" } else { "them" };
            write!(f, "; add {} to spare {them}", keeps.join(" "))?;
        }
        Ok(())
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", "),
            last.as_ref()
        ),
    }
}

/// A position inside one pattern: (pattern index, segment index).
type State = (usize, usize);

/// A compiled set of patterns, matched one path segment at a time.
#[derive(Debug, Clone, Default)]
struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    fn new(texts: &[String]) -> Result<Self, PatternError> {
        let patterns = texts.iter().map(|t| Pattern::parse(t)).collect::<Result<_, _>>()?;
        Ok(PatternSet { patterns })
    }

    fn start(&self) -> Vec<State> {
        let mut states = Vec::new();
        for p in 0..self.patterns.len() {
            self.add_state(&mut states, (p, 0));
        }
        states
    }

    /// Adds a state and, through `**` matching nothing, the states after it.
    fn add_state(&self, states: &mut Vec<State>, state: State) {
        if states.contains(&state) {
            return;
        }
        states.push(state);
        let (p, i) = state;
        if self.patterns[p].segments.get(i) == Some(&Segment::AnyDepth) {
            self.add_state(states, (p, i + 1));
        }
    }

    /// The states after reading `key`, and whether some pattern ends there.
    fn step(&self, states: &[State], key: &str) -> (Vec<State>, bool) {
        let mut next = Vec::new();
        for &(p, i) in states {
            let segments = &self.patterns[p].segments;
            let Some(segment) = segments.get(i) else {
                continue;
            };
            let matched = match segment {
                Segment::Key(k) => k == key,
                Segment::Glob(g) => glob_match(g, key),
                Segment::AnyKey => true,
                Segment::AnyDepth => {
                    self.add_state(&mut next, (p, i));
                    false
                }
            };
            if matched {
                self.add_state(&mut next, (p, i + 1));
            }
        }
        let complete = next.iter().any(|&(p, i)| i == self.patterns[p].segments.len());
        (next, complete)
    }
}

/// Drops that are all `**.<key>` (with a key JSON spells without escapes),
/// and no keeps.
fn key_drops(drop: &PatternSet, keep: &[String]) -> Option<KeyDrops> {
    if !keep.is_empty() || drop.patterns.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for pattern in &drop.patterns {
        match pattern.segments.as_slice() {
            [Segment::AnyDepth, Segment::Key(k)] if pattern.inner_literal.is_some() => names.push(k.clone()),
            _ => return None,
        }
    }
    let quoted = names.iter().map(|n| format!("\"{n}\"").into_bytes()).collect();
    Some(KeyDrops { names, quoted })
}

/// `*` in a key matches any run of characters.
fn glob_match(pattern: &str, key: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = key.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (n, part) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The field filter of one run.
#[derive(Debug, Clone)]
pub struct FieldFilter {
    drop: PatternSet,
    keep: PatternSet,
    redact_key_ids: bool,
    /// Searchers for what starts an access key id.
    key_id_starts: [memchr::memmem::Finder<'static>; 2],
    /// When every drop is `**.<key>` and nothing is kept: the keys, which
    /// the fast path can then drop from JSON text ([`crate::raw::drop_keys`]).
    key_drops: Option<KeyDrops>,
    /// Key n: drop pattern n's next literal key, if it has one.
    watch: Watch,
}

/// What an event's whole text holds, for [`FieldFilter::may_drop`] and
/// [`FieldFilter::may_redact`] (see [`FieldFilter::hints`]).
#[derive(Debug, Clone)]
pub struct Hints {
    /// Something like an access key id (or a `\u` escape that may hide one).
    key_ids: bool,
    /// Per drop pattern: its next literal key occurs somewhere (true for
    /// the keys the scan watched: each field's shape tells).
    literals: Vec<bool>,
}

/// Keys dropped at any depth.
#[derive(Debug, Clone)]
pub struct KeyDrops {
    names: Vec<String>,
    quoted: Vec<Vec<u8>>,
}

impl KeyDrops {
    pub fn contains(&self, key: &str) -> bool {
        self.names.iter().any(|n| n == key)
    }

    /// The keys as JSON strings (`"accessKeyId"`).
    pub fn quoted(&self) -> &[Vec<u8>] {
        &self.quoted
    }
}

impl FieldFilter {
    /// `drop` are the patterns to remove (the caller adds [`DEFAULT_DROP`]
    /// unless told not to); `keep` exempts paths from them.
    pub fn new(drop: &[String], keep: &[String], redact_key_ids: bool) -> Result<Self, PatternError> {
        let drop = PatternSet::new(drop)?;
        // The fast path's scan notes where each pattern's next literal key
        // cannot be.
        let watch = Watch::new(
            drop.patterns
                .iter()
                .map(|p| {
                    p.inner_literal
                        .as_ref()
                        .and_then(|literal| literal.needle().get(1..literal.needle().len() - 1))
                        .map(Box::from)
                })
                .collect(),
        );
        Ok(FieldFilter {
            watch,
            key_drops: key_drops(&drop, keep),
            drop,
            keep: PatternSet::new(keep)?,
            redact_key_ids,
            key_id_starts: [
                memchr::memmem::Finder::new(b"AKIA").into_owned(),
                memchr::memmem::Finder::new(b"ASIA").into_owned(),
            ],
        })
    }

    /// The first drop pattern that removes a top-level field of
    /// [`REQUIRED_FIELDS`] that no keep pattern spares, if any.
    pub fn removes_required(&self) -> Option<RequiredDrop> {
        let keep = self.keep.start();
        self.drop.patterns.iter().enumerate().find_map(|(n, pattern)| {
            let mut start = Vec::new();
            self.drop.add_state(&mut start, (n, 0));
            let removes = |key: &str| self.drop.step(&start, key).1;
            let fields: Vec<(&'static str, &'static str)> = REQUIRED_FIELDS
                .iter()
                .filter(|(field, _)| removes(field) && !self.keep.step(&keep, field).1)
                .copied()
                .collect();
            (!fields.is_empty()).then(|| RequiredDrop {
                pattern: pattern.text.clone(),
                fields,
                // No literal or glob matches an empty key: only wildcards do.
                everything: removes(""),
            })
        })
    }

    /// The drop patterns as given, for the summary.
    pub fn drop_patterns(&self) -> impl Iterator<Item = &str> {
        self.drop.patterns.iter().map(|p| p.text.as_str())
    }

    /// Removes the matching fields; returns how many were removed.
    pub fn apply(&self, event: &mut Map<String, Value>) -> usize {
        self.apply_where(event, |_| true, |_| true)
    }

    /// The drops as keys dropped at any depth, when that is all they are.
    pub fn key_drops(&self) -> Option<&KeyDrops> {
        self.key_drops.as_ref()
    }

    /// The keys the fast path's scan is to look out for.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// What a whole event's text holds, found once so that each field's
    /// checks can mostly be skipped. `shapes`: its fields', as scanned with
    /// [`FieldFilter::watch`].
    pub fn hints(&self, event: &[u8], shapes: &[Shape]) -> Hints {
        Hints {
            // Outside strings JSON has no `\u`: the scan has seen every one.
            key_ids: self.redact_key_ids
                && (shapes.iter().any(|s| s.unicode_escape)
                    || self.key_id_starts.iter().any(|f| f.find(event).is_some())),
            literals: self
                .drop
                .patterns
                .iter()
                .enumerate()
                .map(|(n, p)| match &p.inner_literal {
                    // Not searched: each field's shape answers (`may_drop`).
                    Some(_) if self.watch.watches(n) => true,
                    Some(literal) => literal.find(event).is_some(),
                    None => true,
                })
                .collect(),
        }
    }

    /// Whether the redaction might change a value with this JSON text.
    pub fn may_redact(&self, raw: &[u8], shape: &Shape, hints: &Hints) -> bool {
        hints.key_ids
            && shape.longest_string >= 16
            && (shape.unicode_escape || self.key_id_starts.iter().any(|f| f.find(raw).is_some()))
    }

    /// Whether a drop pattern might match inside the top-level field `key`,
    /// whose JSON text is `raw`: false means the drops certainly leave it as
    /// it is. A pattern that reaches inside the field must find its next
    /// literal key in the text; a `\u` escape could hide one, so it always
    /// counts. Allocation-free: it runs for every field of every event.
    pub fn may_drop(&self, key: &str, raw: &[u8], shape: &Shape, hints: &Hints) -> bool {
        let inside = |n: usize, pattern: &Pattern| {
            if pattern.segments.len() <= 1 {
                return true; // the whole field matches
            }
            match &pattern.inner_literal {
                // Where the scan watched for the key, it knows.
                Some(_) if self.watch.watches(n) => shape.unwatched & 1 << n == 0,
                Some(_) if shape.unicode_escape => true,
                Some(literal) => hints.literals[n] && literal.find(raw).is_some(),
                // Only wildcards left, or a key JSON may spell with escapes.
                None => true,
            }
        };
        self.drop
            .patterns
            .iter()
            .enumerate()
            .any(|(n, pattern)| match &pattern.segments[0] {
                // `**` first: the field's own key may be the next one, or any inside.
                Segment::AnyDepth => {
                    pattern
                        .segments
                        .iter()
                        .any(|s| matches!(s, Segment::Key(k) if k == key))
                        || inside(n, pattern)
                }
                Segment::Key(k) => k == key && inside(n, pattern),
                Segment::Glob(g) => glob_match(g, key) && inside(n, pattern),
                Segment::AnyKey => inside(n, pattern),
            })
    }

    /// Removes the matching fields inside the top-level fields `scope`
    /// names, and masks access key ids inside those `redact` names (the
    /// fast path knows which can hold either).
    pub fn apply_where(
        &self,
        event: &mut Map<String, Value>,
        scope: impl Fn(&str) -> bool,
        redact: impl Fn(&str) -> bool,
    ) -> usize {
        let drop = self.drop.start();
        let keep = self.keep.start();
        let mut removed = 0;
        if !drop.is_empty() {
            self.filter_map(event, &drop, &keep, &mut removed, &scope);
        }
        if self.redact_key_ids {
            for (key, value) in event.iter_mut() {
                if redact(key) {
                    redact_value(value);
                }
            }
        }
        removed
    }

    fn filter_map(
        &self,
        map: &mut Map<String, Value>,
        drop: &[State],
        keep: &[State],
        removed: &mut usize,
        scope: &dyn Fn(&str) -> bool,
    ) {
        map.retain(|key, value| {
            if !scope(key) {
                return true;
            }
            let (drop_next, drop_here) = self.drop.step(drop, key);
            if drop_next.is_empty() {
                return true;
            }
            let (keep_next, keep_here) = if keep.is_empty() {
                (Vec::new(), false)
            } else {
                self.keep.step(keep, key)
            };
            if drop_here && !keep_here {
                *removed += 1;
                return false;
            }
            self.filter_value(value, &drop_next, &keep_next, removed);
            true
        });
    }

    fn filter_value(&self, value: &mut Value, drop: &[State], keep: &[State], removed: &mut usize) {
        match value {
            Value::Object(map) => self.filter_map(map, drop, keep, removed, &|_| true),
            Value::Array(items) => {
                for item in items {
                    self.filter_value(item, drop, keep, removed);
                }
            }
            _ => {}
        }
    }
}

/// Masks access key ids (`AKIA…`, `ASIA…`) inside any string of the value.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(clean) = redact_str(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}

/// The string with every access key id masked, or None when it has none.
///
/// A key id is `AKIA` or `ASIA` and 16 more upper-case letters or digits;
/// shortened or padded look-alikes (12 to 20 more) are masked too, since
/// fixtures and anonymisers produce them.
pub fn redact_str(s: &str) -> Option<String> {
    const MIN_TAIL: usize = 12;
    const MAX_TAIL: usize = 20;
    let bytes = s.as_bytes();
    if bytes.len() < 4 + MIN_TAIL {
        return None;
    }
    let is_id_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i + 4 + MIN_TAIL <= bytes.len() {
        let head = &bytes[i..i + 4];
        let bounded_before = i == 0 || !is_id_char(bytes[i - 1]);
        if (head == b"AKIA" || head == b"ASIA") && bounded_before {
            let tail = bytes[i + 4..].iter().take_while(|&&b| is_id_char(b)).count();
            if (MIN_TAIL..=MAX_TAIL).contains(&tail) {
                let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
                o.push_str(&s[copied..i]);
                o.push_str(REDACTED);
                i += 4 + tail;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.map(|mut o| {
        o.push_str(&s[copied..]);
        o
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filtered(drop: &[&str], keep: &[&str], event: Value) -> Value {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = FieldFilter::new(&own(drop), &own(keep), false).unwrap();
        let Value::Object(mut map) = event else { panic!() };
        f.apply(&mut map);
        Value::Object(map)
    }

    #[test]
    fn patterns() {
        let event = json!({
            "userIdentity": {"accessKeyId": "AKIA1", "arn": "a", "sessionContext": {"attributes": {"mfa": "x"}}},
            "responseElements": {"credentials": {"accessKeyId": "ASIA2", "sessionToken": "t", "expiration": "e"}},
            "resources": [{"ARN": "r1", "type": "t"}, {"ARN": "r2"}],
            "requestParameters": {"policyDocument": "p", "policyName": "n", "bucketName": "b"},
        });
        let cases: Vec<(&[&str], &[&str], Value)> = vec![
            (
                &["userIdentity.accessKeyId"],
                &[],
                json!({
                    "userIdentity": {"arn": "a", "sessionContext": {"attributes": {"mfa": "x"}}},
                    "responseElements": {"credentials": {"accessKeyId": "ASIA2", "sessionToken": "t", "expiration": "e"}},
                    "resources": [{"ARN": "r1", "type": "t"}, {"ARN": "r2"}],
                    "requestParameters": {"policyDocument": "p", "policyName": "n", "bucketName": "b"},
                }),
            ),
            (
                DEFAULT_DROP,
                &[],
                json!({
                    "userIdentity": {"arn": "a", "sessionContext": {"attributes": {"mfa": "x"}}},
                    "responseElements": {"credentials": {"expiration": "e"}},
                    "resources": [{"ARN": "r1", "type": "t"}, {"ARN": "r2"}],
                    "requestParameters": {"policyDocument": "p", "policyName": "n", "bucketName": "b"},
                }),
            ),
            (
                DEFAULT_DROP,
                &["userIdentity.accessKeyId"],
                json!({
                    "userIdentity": {"accessKeyId": "AKIA1", "arn": "a", "sessionContext": {"attributes": {"mfa": "x"}}},
                    "responseElements": {"credentials": {"expiration": "e"}},
                    "resources": [{"ARN": "r1", "type": "t"}, {"ARN": "r2"}],
                    "requestParameters": {"policyDocument": "p", "policyName": "n", "bucketName": "b"},
                }),
            ),
            (
                &[
                    "requestParameters.policy*",
                    "resources.ARN",
                    "userIdentity.*.attributes",
                ],
                &[],
                json!({
                    "userIdentity": {"accessKeyId": "AKIA1", "arn": "a", "sessionContext": {}},
                    "responseElements": {"credentials": {"accessKeyId": "ASIA2", "sessionToken": "t", "expiration": "e"}},
                    "resources": [{"type": "t"}, {}],
                    "requestParameters": {"bucketName": "b"},
                }),
            ),
            (
                &["**.attributes.mfa", "responseElements"],
                &[],
                json!({
                    "userIdentity": {"accessKeyId": "AKIA1", "arn": "a", "sessionContext": {"attributes": {}}},
                    "resources": [{"ARN": "r1", "type": "t"}, {"ARN": "r2"}],
                    "requestParameters": {"policyDocument": "p", "policyName": "n", "bucketName": "b"},
                }),
            ),
        ];
        for (drop, keep, want) in cases {
            assert_eq!(filtered(drop, keep, event.clone()), want, "drop {drop:?} keep {keep:?}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a..b", "**", "a.b**"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn drops_of_what_every_document_needs_are_found() {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let required = |drop: &[&str], keep: &[&str]| {
            let mut all = own(DEFAULT_DROP);
            all.extend(own(drop));
            FieldFilter::new(&all, &own(keep), true).unwrap().removes_required()
        };
        let found = |drop: &[&str], keep: &[&str]| {
            required(drop, keep).map(|r| {
                let fields: Vec<&str> = r.fields.iter().map(|(f, _)| *f).collect();
                (r.pattern, fields.join(" "), r.everything)
            })
        };
        let all = "eventTime eventID eventName eventSource".to_string();
        for everything in ["*", "**.*", "*.**"] {
            assert_eq!(found(&[everything], &[]), Some((everything.into(), all.clone(), true)));
        }
        assert_eq!(
            found(&["eventID"], &[]),
            Some(("eventID".into(), "eventID".into(), false))
        );
        assert_eq!(
            found(&["**.eventName"], &[]),
            Some(("**.eventName".into(), "eventName".into(), false))
        );
        assert_eq!(
            found(&["x", "event*"], &[]),
            Some(("event*".into(), all.clone(), false))
        );
        // Spared by --keep: a whitelist is allowed.
        assert_eq!(
            found(&["event*"], &["eventTime", "eventName"]),
            Some(("event*".into(), "eventID eventSource".into(), false))
        );
        assert_eq!(
            found(&["*"], &["eventTime"]),
            Some(("*".into(), "eventID eventName eventSource".into(), true))
        );
        let kept = ["eventTime", "eventID", "eventName", "eventSource"];
        assert_eq!(found(&["*"], &kept), None);
        assert_eq!(found(&["*"], &["event*"]), None);
        // Inside fields, or other fields: fine.
        for fine in [
            &["*.*"][..],
            &["userIdentity.eventTime", "eventType", "requestParameters"],
            &["*.eventID", "**.arn"],
            &[],
        ] {
            assert_eq!(found(fine, &[]), None, "{fine:?}");
        }
        let shown = |drop: &[&str], keep: &[&str]| required(drop, keep).unwrap().to_string();
        let everything = shown(&["*"], &[]);
        assert!(
            everything.starts_with(
                "'*' would remove every top-level field, leaving each document empty, while every document \
                 needs eventTime, eventID, eventName and eventSource."
            ),
            "{everything}"
        );
        let literal = shown(&["eventTime"], &[]);
        assert!(
            literal.starts_with("'eventTime' would remove what every document needs: eventTime (the event's time")
                && literal.contains("monthly index")
                && !literal.contains("--keep"),
            "{literal}"
        );
        let some = shown(&["*"], &["eventTime", "eventName"]);
        assert!(
            some.starts_with("'*' would remove what every document needs: eventID (the event's unique id")
                && some.ends_with("; add --keep eventID --keep eventSource to spare them"),
            "{some}"
        );
        assert!(shown(&["**.eventID"], &[]).ends_with("; add --keep eventID to spare it"));
    }

    #[test]
    fn patterns_that_can_never_match_are_told() {
        for (pattern, says) in [
            (
                "userIdentiy.arn",
                "no CloudTrail event has a top-level field 'userIdentiy': did you mean 'userIdentity'?",
            ),
            (
                "requestParams.x",
                "top-level field 'requestParams' (paths start at the top",
            ),
            ("Records.*", "top-level field 'Records' (paths start at the top"),
            ("eventname", "did you mean 'eventName'?"),
            ("requestparameters.policy", "did you mean 'requestParameters'?"),
            ("eventName.x", "eventName holds a single value"),
            ("readOnly.*", "readOnly holds a single value"),
            ("ctindex.identity", "added after filtering"),
            ("sesion*", "'sesion*' matches no top-level field"),
        ] {
            let why = never_matches(pattern).unwrap_or_else(|| panic!("{pattern}: no reason"));
            assert!(why.contains(says), "{pattern}: {why}");
        }
        for fine in [
            "userIdentity.arn",
            "**.whatever",
            "*.whatever",
            "request*.policy",
            "eventTime",
            "eventTime.**",
            "@timestamp",
            "tlsDetails.clientProvidedHostHeader",
            "resources.ARN",
        ] {
            assert_eq!(never_matches(fine), None, "{fine}");
        }
    }

    #[test]
    fn globs() {
        for (a, b, want) in [
            ("eventID", "eventId", 0),
            ("userIdentiy", "userIdentity", 1),
            ("ab", "ba", 2),
        ] {
            assert_eq!(edit_distance(a, b), want, "{a} {b}");
        }
        for (g, k, want) in [
            ("access*", "accessKeyId", true),
            ("*Id", "accessKeyId", true),
            ("a*K*d", "accessKeyId", true),
            ("a*x", "accessKeyId", false),
            ("*Key*", "accessKeyId", true),
        ] {
            assert_eq!(glob_match(g, k), want, "{g} {k}");
        }
    }

    #[test]
    fn access_key_ids_are_masked_in_any_string() {
        for (input, want) in [
            ("AKIAIOSFODNN7EXAMPLE", Some(REDACTED.to_string())),
            ("key ASIAIOSFODNN7EXAMPLE used", Some(format!("key {REDACTED} used"))),
            ("ASIAXXXXNLMHSP3MFXX", Some(REDACTED.to_string())),
            ("AKIAIOSFODNN7EXAMPLEXXXXXXXX", None),
            ("AKIAPAGES", None),
            ("XAKIAIOSFODNN7EXAMPLE", None),
            ("arn:aws:iam::123456789012:user/AKIA", None),
            ("AIDAIOSFODNN7EXAMPLE", None),
        ] {
            assert_eq!(redact_str(input), want, "{input}");
        }
    }
}
