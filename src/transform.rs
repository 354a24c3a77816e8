//! Transform: one decoded event in, one document ready for the index out.
//!
//! Owns, in this order: the document id (`eventID`, or a stable hash of the
//! event where it has none), field filtering, the derived `ctindex.*` fields
//! (channel, client family, source, flags) and the monthly index by
//! `eventTime`; [`normalize`] then fits the event to the template and the
//! cluster's limits, and the ECS copies ([`ecs`], unless `--no-ecs`) are
//! derived from what is left.
//!
//! Two paths, one definition: [`Transformer::apply`] works on the whole
//! value tree; [`Transformer::apply_raw`] on the raw JSON text, where it asks
//! the owner of each rule (the filter, normalisation) whether a field may
//! change, and hands only those fields to the same tree code. The stamps are
//! one serde struct (`Stamps`) both paths write. A property test on raw
//! bytes keeps the two paths equal (`tests::equivalence`).
//!
//! Pure and synchronous: no I/O. Invariant: the same event and options always
//! give the same index, id and document, so re-imports overwrite instead of
//! duplicating.

use std::cell::OnceCell;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::classify;
use crate::decode::{Event, Lookup, Position};
use crate::ecs::{self, Ecs};
use crate::fields;
use crate::filter::FieldFilter;
use crate::normalize::{self, Limits};
use crate::raw::{Keep, RawEvent};

/// Where a document goes and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Map<String, Value>,
}

/// Index name for events whose time cannot be read.
pub const UNDATED: &str = "undated";

/// Turns events into documents for one run.
#[derive(Debug, Clone)]
pub struct Transformer {
    filter: FieldFilter,
    index_prefix: String,
    /// What the cluster takes; `None` for exports, which keep events as they are.
    limits: Option<Limits>,
    /// Whether the ECS copies are added ([`ecs`]; `--no-ecs` leaves them out).
    ecs: bool,
    /// Whether `--drop '**.NAME'` drops a key the ECS copies read: the fast
    /// path then filters the fields they read before reading them, instead
    /// of dropping keys in the text.
    ecs_reads_key_drops: bool,
}

impl Transformer {
    pub fn new(filter: FieldFilter, index_prefix: impl Into<String>, limits: Limits) -> Self {
        Transformer::with(filter, index_prefix.into(), Some(limits))
    }

    /// For exports: the same id, filter and derived fields, but the event is
    /// not fitted to the index template (no wrapping, truncation or overflow).
    pub fn for_export(filter: FieldFilter) -> Self {
        Transformer::with(filter, String::new(), None)
    }

    fn with(filter: FieldFilter, index_prefix: String, limits: Option<Limits>) -> Self {
        let ecs_reads_key_drops = filter
            .key_drops()
            .is_some_and(|names| ecs::NESTED_READS.iter().any(|n| names.contains(n)));
        Transformer {
            filter,
            index_prefix,
            limits,
            ecs: true,
            ecs_reads_key_drops,
        }
    }

    /// Adds the ECS copies, or (false: `--no-ecs`) leaves them out.
    pub fn with_ecs(mut self, ecs: bool) -> Self {
        self.ecs = ecs;
        self
    }

    /// The keys the fast path's scan looks out for ([`RawEvent::parse`]).
    pub fn watch(&self) -> &crate::raw::Watch {
        self.filter.watch()
    }

    pub fn index_prefix(&self) -> &str {
        &self.index_prefix
    }

    /// Transforms one event found in `origin` (a file path or S3 key).
    pub fn apply(&self, event: Event, origin: &str) -> Doc {
        self.apply_stamped(event, origin, None)
    }

    /// [`Transformer::apply`], stamping `ctindex.integrity` (`import --verify`:
    /// what the trail's digests say of the event's file).
    pub fn apply_stamped(&self, mut event: Event, origin: &str, integrity: Option<&'static str>) -> Doc {
        let (id, id_generated) = event_id(&event);
        let mut stamps = Stamps::derive(&event, origin);
        stamps.integrity = integrity;
        self.filter.apply(&mut event);
        let index = self.index_of(|key| event.get(key));
        stamps.insight = insight(|key| event.get(key), origin);
        stamps.id_generated = id_generated;
        if let Some(limits) = &self.limits {
            stamps.truncated = normalize::normalize(&mut event, limits);
        }
        add_meta(&mut event, stamps.to_map());
        if self.ecs {
            let fields = ecs_of(|key| event.get(key)).fields();
            ecs::insert(&mut event, fields);
        }
        Doc {
            index,
            id,
            source: event,
        }
    }

    /// The fast path: transforms an event given as JSON text (see
    /// [`crate::raw`]). The fields that classification and routing read are
    /// parsed to be read; only the fields that the filter or the template
    /// may change are parsed to be changed (or, for plain `**.key` drops,
    /// rewritten as text); all others are copied as they came. None when the
    /// event needs the whole tree (odd top-level keys, no usable `eventID`,
    /// …) or is not an event: [`Transformer::apply`] takes those.
    /// `view` is where the read fields are parsed to: kept from one event
    /// to the next, its keys and strings are reused.
    pub fn apply_raw<'a>(&self, raw: &'a RawEvent<'a>, origin: &'a str, view: &'a mut View) -> Option<RawDoc<'a>> {
        self.apply_raw_stamped(raw, origin, view, None)
    }

    /// [`Transformer::apply_raw`], stamping `ctindex.integrity` as
    /// [`Transformer::apply_stamped`] does.
    pub fn apply_raw_stamped<'a>(
        &self,
        raw: &'a RawEvent<'a>,
        origin: &'a str,
        view: &'a mut View,
        integrity: Option<&'static str>,
    ) -> Option<RawDoc<'a>> {
        if !raw.scanned_for(self.filter.watch()) {
            return None;
        }
        let fields = &raw.fields;
        let mut unknown = 0;
        let mut classes = Vec::with_capacity(fields.len());
        for (key, _) in fields {
            if *key == "ctindex" || !normalize::plain_top_key(key) {
                return None;
            }
            let class = fields::class_of(key);
            unknown += usize::from(class == fields::FieldClass::Unknown);
            classes.push(class);
        }
        if unknown > normalize::MAX_UNKNOWN_FIELDS
            || raw.has_duplicate_keys()
            || crate::decode::restores_key_case(|key| raw.get(key).is_some())
        {
            return None;
        }
        let console_login = raw.get("eventName") == Some("\"ConsoleLogin\"");
        let key_drops = self.filter.key_drops();
        let hints = self.filter.hints(raw.text, &raw.shapes);
        view.clear();
        let mut tree = Map::new();
        let mut out = vec![Out::Raw; fields.len()];
        // The head fields (by slot) that are written from the tree.
        let mut tree_slots = 0u32;
        // Changed fields the drops and the redaction must look at (the
        // others cannot hold a match or a key id).
        let mut scope: Vec<&str> = Vec::new();
        let mut redact: Vec<&str> = Vec::new();
        for (i, (((key, value), shape), &class)) in fields.iter().zip(&raw.shapes).zip(&classes).enumerate() {
            let text = value.as_bytes();
            let shape = *shape;
            if let Some(slot) = head_slot(key, console_login, self.ecs) {
                view.set(slot, value)?;
            }
            let drop = self.filter.may_drop(key, text, &shape, &hints);
            let change = self
                .limits
                .as_ref()
                .is_some_and(|l| normalize::may_change(class, text, &shape, l));
            // Only `**.name` drops inside: done on the text, unless what is
            // left may still need the redaction, or the ECS copies read a
            // dropped key in it (they read the view, parsed before drops).
            let ecs_reads_drop = self.ecs && self.ecs_reads_key_drops && ecs::TOP_LEVEL_READS.contains(key);
            let rewritten = match key_drops {
                Some(names) if drop && !change && !shape.unicode_escape && !names.contains(key) && !ecs_reads_drop => {
                    let mut rewritten = Vec::with_capacity(text.len());
                    crate::raw::drop_keys(text, names.quoted(), &mut rewritten);
                    (!self.filter.may_redact(&rewritten, &shape, &hints)).then_some(rewritten)
                }
                _ => None,
            };
            if let Some(rewritten) = rewritten {
                out[i] = Out::Rewritten(rewritten);
                continue;
            }
            let redacts = self.filter.may_redact(text, &shape, &hints);
            if drop || redacts || change {
                tree.insert(key.to_string(), serde_json::from_str(value).ok()?);
                out[i] = Out::Tree;
                if let Some(slot) = head_slot(key, true, true) {
                    tree_slots |= 1 << slot;
                }
                if drop {
                    scope.push(key);
                }
                if redacts {
                    redact.push(key);
                }
            } else if shape.spaced {
                out[i] = Out::Compact;
            }
        }
        let view: &View = view;
        if !crate::decode::is_event(view) {
            return None;
        }
        // Sign-ins read two more fields; an eventName spelled with escapes
        // was not recognised above: the value path takes it.
        if !console_login && view.get("eventName").and_then(Value::as_str) == Some("ConsoleLogin") {
            return None;
        }
        // Without a usable id: the content hash is over the whole event.
        let id = usable_id(view)?;
        let mut stamps = Stamps::derive(view, origin);
        stamps.integrity = integrity;
        self.filter
            .apply_where(&mut tree, |key| scope.contains(&key), |key| redact.contains(&key));
        let mut doc = RawDoc {
            index: String::new(),
            id,
            fields,
            out,
            view,
            tree,
            meta: None,
            meta_value: OnceCell::new(),
            ecs: Vec::new(),
            tree_slots,
        };
        // Routing reads the fields after filtering.
        doc.index = self.index_of(|key| doc.field(key));
        stamps.insight = insight(|key| doc.field(key), origin);
        if let Some(limits) = &self.limits {
            stamps.truncated = normalize::normalize(&mut doc.tree, limits);
        }
        if doc.tree.contains_key("ctindex") {
            // Normalizing started it (`overflow`): the rest joins it there.
            add_meta(&mut doc.tree, stamps.to_map());
        } else {
            doc.meta = Some(stamps);
        }
        if self.ecs {
            let mut members = Vec::with_capacity(256);
            ecs::write_members(&ecs_of(|key| doc.field(key)), &mut members);
            doc.ecs = members;
        }
        Some(doc)
    }

    /// The index of an event, from its (filtered) time.
    fn index_of<'v>(&self, get: impl Fn(&str) -> Option<&'v Value>) -> String {
        let month = ["eventTime", "@timestamp"]
            .iter()
            .find_map(|k| get(k).and_then(value_month));
        match month {
            Some((year, month)) => {
                // By hand: `format!` costs a visible share of the fast path.
                let mut index = String::with_capacity(self.index_prefix.len() + 8);
                index.push_str(&self.index_prefix);
                index.push('-');
                push_digits(&mut index, year, 4);
                index.push('.');
                push_digits(&mut index, month, 2);
                index
            }
            None => format!("{}-{UNDATED}", self.index_prefix),
        }
    }
}

/// The ECS copies of an event whose top-level fields (filtered and fitted to
/// the template) `get` gives: what both paths add.
fn ecs_of<'v>(get: impl Fn(&str) -> Option<&'v Value> + Copy) -> Ecs<'v> {
    let time = get("eventTime").filter(|v| value_month(v).is_some());
    Ecs::derive(get, time)
}

/// `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, mut n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    start = start.min(buf.len().saturating_sub(width));
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// The `ctindex` object of one event: every stamp ctindex adds, written
/// once here and serialised by serde, whether into the bulk body (the fast
/// path) or into a map (the tree path). The fields are in alphabetical
/// order, the order a JSON map keeps, so that both give the same bytes.
///
/// To add a stamp: a field here (in its alphabetical place) and its value
/// in [`Stamps::derive`] (what is read from the event before filtering) or
/// where [`Transformer::apply`] and [`Transformer::apply_raw`] fill in the
/// rest; if it reads a top-level field the fast path does not parse yet,
/// that field gets a slot in [`head_slot`] (the equivalence tests fail
/// until it has one).
#[derive(Debug, serde::Serialize)]
struct Stamps<'a> {
    /// console, automation, aws-service, unknown ([`classify`]).
    channel: &'static str,
    /// The client family ([`classify`]).
    client: &'static str,
    /// The id is a content hash: the event had no usable `eventID`.
    #[serde(skip_serializing_if = "is_false")]
    id_generated: bool,
    /// Who acted, as one keyword ([`identity`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    /// A CloudTrail Insights event ([`insight`]).
    #[serde(skip_serializing_if = "is_false")]
    insight: bool,
    /// `import --verify`: `verified`, `unverified` or `failed` (what the
    /// trail's digests say of the event's file, [`crate::verify`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity: Option<&'static str>,
    /// Console sign-ins: result and MFA ([`signin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    signin: Option<Value>,
    /// Where the event came from: a path or an S3 key.
    source: &'a str,
    /// What normalisation changed, by path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    truncated: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> Stamps<'a> {
    /// What is read from an event before it is filtered (and the source);
    /// the rest is filled in later.
    fn derive(event: &(impl Lookup + ?Sized), source: &'a str) -> Self {
        let class = classify::classify(event);
        Stamps {
            channel: class.channel.as_str(),
            client: class.client,
            id_generated: false,
            identity: identity(event),
            insight: false,
            integrity: None,
            signin: signin(event),
            source,
            truncated: Vec::new(),
        }
    }

    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of strings, booleans and values serialises to an object.
            _ => Map::new(),
        }
    }

    /// Writes what [`Stamps::to_map`] holds as compact JSON, keys in the
    /// map's order.
    fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }
}

/// Whether an event is a CloudTrail Insights event.
fn insight<'v>(get: impl Fn(&str) -> Option<&'v Value>, origin: &str) -> bool {
    get("eventCategory").and_then(Value::as_str) == Some("Insight") || origin.contains("/CloudTrail-Insight/")
}

/// The second try for a document (as JSON text) that the cluster refused to
/// parse: its unknown top-level fields moved to `ctindex.overflow`
/// ([`normalize::quarantine`]). None when it is not an object or has
/// nothing to move (so retrying cannot help).
pub fn quarantined(doc: &[u8]) -> Option<Vec<u8>> {
    let mut doc: Map<String, Value> = serde_json::from_slice(doc).ok()?;
    normalize::quarantine(&mut doc)
        .then(|| serde_json::to_vec(&doc).ok())
        .flatten()
}

/// Adds `ctindex` to an event (normalize may have started it, with `overflow`).
fn add_meta(event: &mut Event, meta: Map<String, Value>) {
    match event.get_mut("ctindex") {
        Some(Value::Object(existing)) => existing.extend(meta),
        _ => {
            event.insert("ctindex".into(), Value::Object(meta));
        }
    }
}

/// How the fast path writes a field.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    /// As it came.
    Raw,
    /// As it came, without the whitespace between its tokens.
    Compact,
    /// From the changed tree (absent when the filter dropped it).
    Tree,
    /// As rewritten by the text-level key drops.
    Rewritten(Vec<u8>),
}

/// The fields the fast path parses to read them (what classification, the
/// derived fields, the index and the export's header read), one slot each
/// ([`head_slot`]), kept from one event to the next: a field that is again a
/// plain string overwrites the string of the last one, so most events
/// allocate nothing here, and nothing is looked up by name to be set.
#[derive(Debug, Default)]
pub struct View {
    slots: [Value; HEAD_SLOTS],
    /// The slots this event has set.
    present: u32,
}

/// What the view keeps of `userIdentity`.
const USER_IDENTITY: &[Keep] = &[
    Keep::Value("type"),
    Keep::Value("invokedBy"),
    Keep::Value("invokedby"),
    Keep::Value("arn"),
    Keep::Value("accountId"),
    Keep::Value("userName"),
    Keep::Value("principalId"),
    Keep::Object(
        "sessionContext",
        &[Keep::Object(
            "sessionIssuer",
            &[Keep::Value("arn"), Keep::Value("userName")],
        )],
    ),
];

/// What the view keeps of `requestParameters` (`related.user`, [`ecs`]).
const REQUEST_PARAMETERS: &[Keep] = &[Keep::Value("userName"), Keep::Value("newUserName")];

impl View {
    /// Forgets the last event's fields (their values stay, to be reused).
    fn clear(&mut self) {
        self.present = 0;
    }

    /// Sets a head field's slot from its (checked) JSON text.
    fn set(&mut self, slot: usize, text: &str) -> Option<()> {
        let value = self.slots.get_mut(slot)?;
        if slot == USER_IDENTITY_SLOT {
            crate::raw::pruned_into(value, text, USER_IDENTITY)?;
        } else if slot == REQUEST_PARAMETERS_SLOT {
            crate::raw::pruned_into(value, text, REQUEST_PARAMETERS)?;
        } else {
            crate::raw::set_value(value, text)?;
        }
        self.present |= 1 << slot;
        Some(())
    }
}

impl Lookup for View {
    fn get(&self, key: &str) -> Option<&Value> {
        let slot = head_slot(key, true, true)?;
        (self.present & 1 << slot != 0).then(|| &self.slots[slot])
    }
}

/// How many fields the view holds.
const HEAD_SLOTS: usize = 24;
/// `userIdentity`'s slot, which holds only what [`USER_IDENTITY`] keeps.
const USER_IDENTITY_SLOT: usize = 8;
/// `requestParameters`' slot, which holds only what [`REQUEST_PARAMETERS`] keeps.
const REQUEST_PARAMETERS_SLOT: usize = 23;

/// A slot of its own for each field the fast path always parses, for the
/// two more a console sign-in reads, and for the one more the ECS copies
/// read; None for any other field.
fn head_slot(key: &str, console_login: bool, ecs: bool) -> Option<usize> {
    Some(match key {
        "eventID" => 0,
        "eventTime" => 1,
        "@timestamp" => 2,
        "eventName" => 3,
        "eventSource" => 4,
        "eventType" => 5,
        "eventCategory" => 6,
        "eventVersion" => 7,
        "userIdentity" => 8,
        "userAgent" => 9,
        "sessionCredentialFromConsole" => 10,
        // The all-lowercase spellings classification also reads.
        "useridentity" => 11,
        "useragent" => 12,
        "sessioncredentialfromconsole" => 13,
        "eventtype" => 14,
        "eventsource" => 15,
        "sourceIPAddress" => 16,
        "awsRegion" => 17,
        "recipientAccountId" => 18,
        "errorCode" => 19,
        "errorMessage" => 20,
        "responseElements" if console_login => 21,
        "additionalEventData" if console_login => 22,
        "requestParameters" if ecs => REQUEST_PARAMETERS_SLOT,
        _ => return None,
    })
}

/// A document made by the fast path: the untouched fields as their
/// original JSON text, the changed ones from `tree` (with `ctindex`).
#[derive(Debug)]
pub struct RawDoc<'a> {
    pub index: String,
    pub id: String,
    fields: &'a [(&'a str, &'a str)],
    /// How each of `fields` is written.
    out: Vec<Out>,
    /// The fields read for classification and routing, as they came.
    view: &'a View,
    /// The changed fields (and `ctindex` when normalizing started it).
    tree: Event,
    /// `ctindex`, unless it is in `tree`.
    meta: Option<Stamps<'a>>,
    /// `meta` as a value, made only when it is read.
    meta_value: OnceCell<Value>,
    /// The ECS copies as JSON members ([`ecs::write_members`]), or nothing.
    ecs: Vec<u8>,
    /// The head fields ([`head_slot`]) written from `tree`, one bit a slot.
    tree_slots: u32,
}

/// A document as the encoders see it, whichever path made it.
pub trait Document {
    fn index(&self) -> &str;
    fn id(&self) -> &str;
    /// A top-level field, for the fields the fast path always parses (and `ctindex`).
    fn field(&self, key: &str) -> Option<&Value>;
    /// The document as compact JSON.
    fn write_json(&self, out: &mut Vec<u8>);
    /// Whether the id is a stand-in (`ctindex.id_generated`).
    fn id_generated(&self) -> bool {
        self.field("ctindex").and_then(|m| m.get("id_generated")) == Some(&Value::Bool(true))
    }
}

impl Document for Doc {
    fn index(&self) -> &str {
        &self.index
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn field(&self, key: &str) -> Option<&Value> {
        self.source.get(key)
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising a Map of Values into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &self.source);
    }
}

impl Document for RawDoc<'_> {
    fn index(&self) -> &str {
        &self.index
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn field(&self, key: &str) -> Option<&Value> {
        if key == "ctindex" {
            return match &self.meta {
                Some(meta) => Some(self.meta_value.get_or_init(|| Value::Object(meta.to_map()))),
                None => self.tree.get(key),
            };
        }
        // A head field from the tree if it is written from there, else
        // from the view; any other field only from the tree (what is not
        // there is not parsed, or was dropped).
        match head_slot(key, true, true) {
            Some(slot) if self.tree_slots & (1 << slot) == 0 => self.view.get(key),
            _ => self.tree.get(key),
        }
    }

    fn id_generated(&self) -> bool {
        match &self.meta {
            Some(meta) => meta.id_generated,
            None => self.tree.get("ctindex").and_then(|m| m.get("id_generated")) == Some(&Value::Bool(true)),
        }
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        // Keys come from the input unescaped (the scanner leaves escaped
        // keys to the value path), so they are written as they are.
        let mut put_key = |out: &mut Vec<u8>, key: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
        };
        for ((key, raw), how) in self.fields.iter().zip(&self.out) {
            match how {
                Out::Raw => {
                    put_key(out, key);
                    out.extend_from_slice(raw.as_bytes());
                }
                Out::Compact => {
                    put_key(out, key);
                    crate::raw::write_compact(raw.as_bytes(), out);
                }
                Out::Rewritten(text) => {
                    put_key(out, key);
                    out.extend_from_slice(text);
                }
                Out::Tree => {
                    if let Some(value) = self.tree.get(*key) {
                        put_key(out, key);
                        let _ = serde_json::to_writer(&mut *out, value);
                    }
                }
            }
        }
        if let Some(meta) = &self.meta {
            put_key(out, "ctindex");
            meta.write_json(out);
        } else if let Some(meta) = self.tree.get("ctindex") {
            put_key(out, "ctindex");
            let _ = serde_json::to_writer(&mut *out, meta);
        }
        if !self.ecs.is_empty() {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(&self.ecs);
        }
        out.push(b'}');
    }
}

/// The events of one file indexed with a stand-in, gathered so that one
/// message per file names them (instead of one message per event): a
/// content hash for a missing or unusable `eventID`, the `<prefix>-undated`
/// index for a missing or unreadable `eventTime`. Both are indexed, so
/// neither counts as skipped input.
#[derive(Debug, Default)]
pub struct StandIns {
    pub without_id: Vec<Position>,
    pub undated: Vec<Position>,
    undated_index: String,
}

/// Positions named in a [`StandIns`] message; the rest are counted.
const POSITIONS_SHOWN: usize = 5;

impl StandIns {
    /// Notes a document if it needed a stand-in.
    pub fn note(&mut self, doc: &impl Document, position: Position) {
        if doc.id_generated() {
            self.without_id.push(position);
        }
        if doc
            .index()
            .strip_suffix(UNDATED)
            .is_some_and(|rest| rest.ends_with('-'))
        {
            if self.undated.is_empty() {
                self.undated_index = doc.index().to_string();
            }
            self.undated.push(position);
        }
    }

    /// One message per kind of stand-in used (none when none was).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.without_id.is_empty() {
            out.push(format!(
                "{} without a usable eventID ({}): indexed with an id made from their content \
                 (ctindex.id_generated), so a re-import does not duplicate them",
                events(self.without_id.len()),
                positions(&self.without_id)
            ));
        }
        if !self.undated.is_empty() {
            out.push(format!(
                "{} without a readable eventTime ({}): indexed in {}",
                events(self.undated.len()),
                positions(&self.undated),
                self.undated_index
            ));
        }
        out
    }
}

fn events(n: usize) -> String {
    if n == 1 {
        "1 event".into()
    } else {
        format!("{n} events")
    }
}

fn positions(list: &[Position]) -> String {
    let mut shown: Vec<String> = list.iter().take(POSITIONS_SHOWN).map(Position::to_string).collect();
    if list.len() > POSITIONS_SHOWN {
        shown.push(format!("{} more", list.len() - POSITIONS_SHOWN));
    }
    shown.join(", ")
}

/// Who acted, as one keyword for dashboards: the role (not the session) for
/// assumed roles, else the ARN, the invoking service, `account:user`, the
/// principal id or the identity type.
fn identity(event: &(impl Lookup + ?Sized)) -> Option<String> {
    let user = event.get("userIdentity")?.as_object()?;
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let issuer = user
        .get("sessionContext")
        .and_then(|c| c.get("sessionIssuer"))
        .and_then(|i| i.get("arn"));
    text(issuer)
        .or_else(|| text(user.get("arn")))
        .or_else(|| text(user.get("invokedBy")))
        .or_else(|| {
            let (account, name) = (text(user.get("accountId"))?, text(user.get("userName"))?);
            Some(format!("{account}:{name}"))
        })
        .or_else(|| text(user.get("principalId")))
        .or_else(|| text(user.get("type")))
}

/// For console sign-ins: `{"result": "success"|"failure", "mfa": bool}`, from
/// `responseElements.ConsoleLogin` and `additionalEventData.MFAUsed` (whose
/// spelling varies: Yes, YES, No), so dashboards can split on them even where
/// free-form fields cannot be aggregated (OpenSearch's flat_object).
fn signin(event: &(impl Lookup + ?Sized)) -> Option<Value> {
    if event.get("eventName").and_then(Value::as_str) != Some("ConsoleLogin") {
        return None;
    }
    let mut out = Map::new();
    let result = event
        .get("responseElements")
        .and_then(|r| r.get("ConsoleLogin"))
        .and_then(Value::as_str);
    match result.map(|r| r.trim().to_ascii_lowercase()) {
        Some(r) if !r.is_empty() => {
            out.insert("result".into(), Value::String(r));
        }
        _ if event.get("errorMessage").is_some() || event.get("errorCode").is_some() => {
            out.insert("result".into(), Value::from("failure"));
        }
        _ => {}
    }
    let mfa = event
        .get("additionalEventData")
        .and_then(|a| a.get("MFAUsed"))
        .and_then(Value::as_str);
    match mfa.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        Some("yes") => {
            out.insert("mfa".into(), Value::Bool(true));
        }
        Some("no") => {
            out.insert("mfa".into(), Value::Bool(false));
        }
        _ => {}
    }
    Some(Value::Object(out))
}

/// The document id: `eventID` where it is usable, else a hash of the event.
fn event_id(event: &Event) -> (String, bool) {
    match usable_id(event) {
        Some(id) => (id, false),
        None => (content_hash(event), true),
    }
}

/// `eventID`, where it is usable as the document id.
fn usable_id(event: &(impl Lookup + ?Sized)) -> Option<String> {
    let id = event.get("eventID")?.as_str()?.trim();
    (!id.is_empty() && id.len() <= 512).then(|| id.to_string())
}

/// A stable hash of the whole event (its keys are serialised in sorted order).
pub fn content_hash(event: &Event) -> String {
    let bytes = serde_json::to_vec(event).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut id = String::with_capacity(40);
    for b in &digest[..20] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The (year, month) of the event: `eventTime`, else a Logstash `@timestamp`.
pub fn event_month(event: &Event) -> Option<(u32, u32)> {
    ["eventTime", "@timestamp"]
        .iter()
        .find_map(|k| event.get(*k).and_then(value_month))
}

fn value_month(value: &Value) -> Option<(u32, u32)> {
    match value {
        Value::String(s) => text_month(s),
        Value::Number(n) => n.as_i64().and_then(epoch_millis_month),
        _ => None,
    }
}

/// `YYYY-MM…` (ISO 8601 and `YYYY-MM-DD HH:MM:SS`), or epoch milliseconds.
fn text_month(s: &str) -> Option<(u32, u32)> {
    let b = s.trim().as_bytes();
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        return ((1970..=2999).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day))
            .then_some((year, month));
    }
    if !b.is_empty() && b.len() <= 13 && b.iter().all(u8::is_ascii_digit) {
        return s.trim().parse::<i64>().ok().and_then(epoch_millis_month);
    }
    None
}

fn epoch_millis_month(ms: i64) -> Option<(u32, u32)> {
    // Numbers below 10^11 are taken as seconds, as Elasticsearch's epoch formats do not; only millis are routed.
    if !(100_000_000_000..=32_503_680_000_000).contains(&ms) {
        return None;
    }
    let (year, month, _) = crate::date::millis_ymd(ms)?;
    Some((year, month))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::filter::DEFAULT_DROP;
    use serde_json::json;

    fn transformer(limits: Limits) -> Transformer {
        let drop: Vec<String> = DEFAULT_DROP.iter().map(|s| s.to_string()).collect();
        Transformer::new(FieldFilter::new(&drop, &[], true).unwrap(), "cloudtrail", limits)
    }

    fn event(v: Value) -> Event {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn routes_by_month_and_uses_event_id() {
        let t = transformer(Limits::default());
        let cases = [
            (
                json!({"eventID": "e1", "eventTime": "2024-02-29T23:59:59Z"}),
                "cloudtrail-2024.02",
                "e1",
            ),
            (
                json!({"eventID": " e2 ", "eventTime": "2019-01-01 00:00:00"}),
                "cloudtrail-2019.01",
                "e2",
            ),
            (
                json!({"eventID": "e3", "eventTime": 1_700_000_000_000_i64}),
                "cloudtrail-2023.11",
                "e3",
            ),
            (
                json!({"eventID": "e4", "eventTime": "eventTime"}),
                "cloudtrail-undated",
                "e4",
            ),
            (
                json!({"eventID": "e5", "@timestamp": "2020-09-14T01:19:40.000Z"}),
                "cloudtrail-2020.09",
                "e5",
            ),
            (
                json!({"eventID": "e6", "eventTime": "2024-13-01T00:00:00Z"}),
                "cloudtrail-undated",
                "e6",
            ),
        ];
        for (input, index, id) in cases {
            let doc = t.apply(event(input.clone()), "f.json");
            assert_eq!((doc.index.as_str(), doc.id.as_str()), (index, id), "{input}");
        }
    }

    #[test]
    fn missing_event_id_gets_a_stable_hash() {
        let t = transformer(Limits::default());
        let a = t.apply(
            event(json!({"eventTime": "2024-01-01T00:00:00Z", "eventName": "X", "x": 1})),
            "a",
        );
        let b = t.apply(
            event(json!({"x": 1, "eventName": "X", "eventTime": "2024-01-01T00:00:00Z"})),
            "b",
        );
        let c = t.apply(
            event(json!({"x": 2, "eventName": "X", "eventTime": "2024-01-01T00:00:00Z"})),
            "a",
        );
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.id.len(), 40);
        assert_eq!(a.source["ctindex"]["id_generated"], json!(true));
    }

    #[test]
    fn derived_fields_and_filtering() {
        let t = transformer(Limits::default());
        let doc = t.apply(
            event(json!({
                "eventID": "e", "eventTime": "2024-01-01T00:00:00Z", "eventName": "RunInstances",
                "eventSource": "ec2.amazonaws.com", "userAgent": "aws-cli/2.15.0 Python/3.11.6",
                "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAIOSFODNN7EXAMPLE"},
                "requestParameters": "{\"a\":1}",
                "resources": [{"ARN": "a"}, "b", [1]],
                "eventCategory": "Insight",
            })),
            "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/x.json.gz",
        );
        assert_eq!(doc.source["userIdentity"], json!({"type": "IAMUser"}));
        assert_eq!(doc.source["requestParameters"], json!({"_value": "{\"a\":1}"}));
        assert_eq!(
            doc.source["resources"],
            json!([{"ARN": "a"}, {"_value": "b"}, {"_value": [1]}])
        );
        assert_eq!(doc.source["ctindex"]["channel"], json!("automation"));
        assert_eq!(doc.source["ctindex"]["client"], json!("aws-cli"));
        assert_eq!(doc.source["ctindex"]["insight"], json!(true));
        assert_eq!(
            doc.source["ctindex"]["source"],
            json!("AWSLogs/1/CloudTrail/us-east-1/2024/01/01/x.json.gz")
        );
    }

    #[test]
    fn identity_and_signin() {
        let t = transformer(Limits::default());
        let cases = [
            (
                json!({"eventName": "X", "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s",
                        "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"}}}}),
                json!("arn:aws:iam::1:role/r"),
                Value::Null,
            ),
            (
                json!({"eventName": "ConsoleLogin", "userIdentity": {"type": "IAMUser", "accountId": "1", "userName": "bob"},
                        "responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"MFAUsed": " YES"}}),
                json!("1:bob"),
                json!({"result": "success", "mfa": true}),
            ),
            (
                json!({"eventName": "ConsoleLogin", "userIdentity": {"type": "IAMUser", "principalId": "AIDA1"},
                        "errorMessage": "Failed authentication", "additionalEventData": {"MFAUsed": "No"}}),
                json!("AIDA1"),
                json!({"result": "failure", "mfa": false}),
            ),
            (
                json!({"eventName": "X", "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}}),
                json!("ec2.amazonaws.com"),
                Value::Null,
            ),
            (json!({"eventName": "X"}), Value::Null, Value::Null),
        ];
        for (input, identity, signin) in cases {
            let doc = t.apply(event(input.clone()), "f");
            assert_eq!(
                doc.source["ctindex"].get("identity").cloned().unwrap_or(Value::Null),
                identity,
                "{input}"
            );
            assert_eq!(
                doc.source["ctindex"].get("signin").cloned().unwrap_or(Value::Null),
                signin,
                "{input}"
            );
        }
    }

    #[test]
    fn head_fields_have_a_slot_each() {
        let keys = [
            "eventID",
            "eventTime",
            "@timestamp",
            "eventName",
            "eventSource",
            "eventType",
            "eventCategory",
            "eventVersion",
            "userIdentity",
            "userAgent",
            "sessionCredentialFromConsole",
            "useridentity",
            "useragent",
            "sessioncredentialfromconsole",
            "eventtype",
            "eventsource",
            "sourceIPAddress",
            "awsRegion",
            "recipientAccountId",
            "errorCode",
            "errorMessage",
            "responseElements",
            "additionalEventData",
            "requestParameters",
        ];
        let slots: std::collections::BTreeSet<usize> = keys.iter().filter_map(|k| head_slot(k, true, true)).collect();
        assert_eq!(slots.len(), keys.len());
        assert!(HEAD_SLOTS <= 32 && slots.iter().all(|&s| s < HEAD_SLOTS));
        assert_eq!(head_slot("userIdentity", false, false), Some(USER_IDENTITY_SLOT));
        assert_eq!(head_slot("responseElements", false, true), None);
        assert_eq!(head_slot("requestParameters", false, false), None);
    }

    #[test]
    fn the_fast_path_reads_what_classification_reads() {
        for key in classify::TOP_LEVEL_READS {
            assert!(head_slot(key, false, false).is_some(), "{key}");
        }
        // The ECS copies read the sign-in's responseElements only for sign-ins.
        for key in ecs::TOP_LEVEL_READS.iter().filter(|k| **k != "responseElements") {
            assert!(head_slot(key, false, true).is_some(), "{key}");
        }
        // Lowercase spellings beside eventName, and an escaped ConsoleLogin.
        let t = transformer(Limits::default());
        let events = [
            r#"{"eventVersion": "1.08", "eventID": "a", "eventTime": "2024-01-02T03:04:05Z", "eventName": "Get", "useragent": "aws-cli/2.0"}"#,
            r#"{"eventVersion": "1.08", "eventID": "b", "eventTime": "2024-01-02T03:04:05Z", "eventName": "Get", "eventsource": "signin.amazonaws.com"}"#,
            r#"{"eventVersion": "1.08", "eventID": "c", "eventTime": "2024-01-02T03:04:05Z", "eventName": "Console\u004cogin", "responseElements": {"ConsoleLogin": "Success"}}"#,
        ];
        let events: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| ("f".to_string(), e.as_bytes().to_vec()))
            .collect();
        assert_eq!(
            check_fast_path(&t, &events),
            2,
            "the escaped ConsoleLogin is left to the value path"
        );
    }

    #[test]
    fn meta_is_written_as_its_map_would_be() {
        let metas = [
            Stamps {
                channel: classify::Channel::Console.as_str(),
                client: "console",
                identity: None,
                signin: None,
                source: "s3://b/AWSLogs/1/CloudTrail/x.json.gz",
                insight: false,
                integrity: None,
                id_generated: false,
                truncated: Vec::new(),
            },
            Stamps {
                channel: classify::Channel::Automation.as_str(),
                client: "terraform",
                identity: Some("role/\"odd\"\\name\u{1}é".into()),
                signin: Some(json!({"result": "Success", "mfa": false})),
                source: "C:\\logs\\\"q\".json\n",
                insight: true,
                integrity: Some("failed"),
                id_generated: true,
                truncated: vec!["requestParameters.x (40000 bytes)".into()],
            },
        ];
        for meta in metas {
            let mut written = Vec::new();
            meta.write_json(&mut written);
            // Compact, keys in the map's order: the same bytes.
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&meta.to_map()).unwrap()
            );
        }
    }

    #[test]
    fn digits_are_padded() {
        for (n, width) in [
            (0, 2),
            (7, 2),
            (12, 2),
            (2024, 4),
            (999, 4),
            (123_456, 4),
            (u32::MAX, 2),
        ] {
            let mut s = String::new();
            push_digits(&mut s, n, width);
            assert_eq!(s, format!("{n:0width$}"));
        }
    }

    /// Every event of the bundled fixtures (and of the corpus when it is
    /// beside the checkout), as JSON text: what the fast path would get.
    pub(crate) fn sample_events() -> Vec<(String, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in [root.join("tests/fixtures"), root.join("../shared/cloudtrail-corpus")] {
            for entry in walkdir::WalkDir::new(&dir).sort_by_file_name().into_iter().flatten() {
                let path = entry.path();
                if !entry.file_type().is_file() || !crate::source::is_candidate(&path.to_string_lossy()) {
                    continue;
                }
                let Ok(decoded) = crate::decode::decode(&std::fs::read(path).unwrap()) else {
                    continue;
                };
                // Compact, and pretty-printed as many files are.
                for (i, event) in decoded.events.into_iter().enumerate() {
                    let text = match i % 2 {
                        0 => serde_json::to_vec(&event).unwrap(),
                        _ => serde_json::to_vec_pretty(&event).unwrap(),
                    };
                    out.push((path.display().to_string(), text));
                }
            }
        }
        out
    }

    /// Both paths make the same document of every event. One view serves
    /// them all, forwards then backwards, as it serves a file's events: what
    /// one event left in it must not show in the next.
    fn check_fast_path(t: &Transformer, events: &[(String, Vec<u8>)]) -> usize {
        let mut fast = 0;
        let mut view = View::default();
        for (n, (origin, text)) in events.iter().chain(events.iter().rev()).enumerate() {
            let tree: Event = serde_json::from_slice(text).unwrap();
            let slow = t.apply(tree, origin);
            let Some(raw) = RawEvent::parse(text, t.watch()) else {
                continue;
            };
            if let Some(doc) = t.apply_raw(&raw, origin, &mut view) {
                fast += usize::from(n < events.len());
                let mut json = Vec::new();
                doc.write_json(&mut json);
                assert!(
                    !json.contains(&b'\n') && !json.contains(&b'\r'),
                    "{origin}: not one line"
                );
                let got: Value = serde_json::from_slice(&json).unwrap();
                assert_eq!(
                    got,
                    Value::Object(slow.source.clone()),
                    "{origin}: {}",
                    String::from_utf8_lossy(text)
                );
                assert_eq!(
                    (doc.index(), doc.id()),
                    (slow.index.as_str(), slow.id.as_str()),
                    "{origin}"
                );
            }
        }
        fast
    }

    #[test]
    fn the_fast_path_makes_the_same_documents() {
        let events = sample_events();
        assert!(events.len() > 2000, "{} events", events.len());
        // Defaults; a small string limit and depth; extra drops and keeps; no redaction; export.
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut drops = own(DEFAULT_DROP);
        drops.extend(own(&[
            "requestParameters.policy*",
            "**.userData",
            "resources.ARN",
            "*.tags",
        ]));
        let cases = [
            transformer(Limits::default()),
            transformer(Limits {
                max_string_bytes: 200,
                max_depth: 4,
            }),
            Transformer::new(
                FieldFilter::new(&drops, &own(&["userIdentity.accessKeyId"]), true).unwrap(),
                "ct",
                Limits::default(),
            ),
            Transformer::new(FieldFilter::new(&[], &[], false).unwrap(), "ct", Limits::default()),
            // Key drops only, done on the text by the fast path.
            Transformer::new(
                FieldFilter::new(
                    &own(&[
                        "**.accessKeyId",
                        "**.principalId",
                        "**.arn",
                        "**.eventTime",
                        "**.userName",
                    ]),
                    &[],
                    true,
                )
                .unwrap(),
                "ct",
                Limits::default(),
            ),
            Transformer::for_export(FieldFilter::new(&own(DEFAULT_DROP), &[], true).unwrap()),
            transformer(Limits::default()).with_ecs(false),
        ];
        for t in &cases {
            let fast = check_fast_path(t, &events);
            // Most events take the fast path (the rest are odd on purpose).
            assert!(fast * 10 > events.len() * 9, "{fast} of {}", events.len());
        }
    }

    #[test]
    fn stand_ins_are_gathered_into_one_message_per_kind() {
        let t = transformer(Limits::default());
        let mut stand_ins = StandIns::default();
        let events = [
            json!({"eventName": "A", "eventID": "1", "eventTime": "2024-01-01T00:00:00Z"}),
            json!({"eventName": "B", "eventTime": "2024-01-01T00:00:00Z"}),
            json!({"eventName": "C", "eventID": "3"}),
            json!({"eventName": "D", "eventID": "", "eventTime": "yesterday"}),
        ];
        for (i, e) in events.into_iter().enumerate() {
            let doc = t.apply(event(e), "f.json");
            stand_ins.note(&doc, Position::Record(i));
        }
        assert_eq!(stand_ins.without_id, [Position::Record(1), Position::Record(3)]);
        assert_eq!(stand_ins.undated, [Position::Record(2), Position::Record(3)]);
        let messages = stand_ins.messages();
        assert_eq!(messages.len(), 2);
        assert!(
            messages[0].starts_with("2 events without a usable eventID (record 1, record 3): "),
            "{}",
            messages[0]
        );
        assert_eq!(
            messages[1],
            "2 events without a readable eventTime (record 2, record 3): indexed in cloudtrail-undated"
        );
        assert!(StandIns::default().messages().is_empty());

        let mut many = StandIns::default();
        let doc = t.apply(event(json!({"eventName": "X"})), "f.json");
        for n in 1..=8 {
            many.note(&doc, Position::Line(n));
        }
        assert!(
            many.messages()[0].contains("(line 1, line 2, line 3, line 4, line 5, 3 more)"),
            "{}",
            many.messages()[0]
        );
    }

    /// The property test of the two paths.
    mod equivalence;
}
