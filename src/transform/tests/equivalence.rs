//! The fast path against the value path on generated raw bytes: every
//! event the fast path takes gives the document the value path gives the
//! same text (decoded as a file would be, so the decoder's own rules, such
//! as restoring CloudTrail's key spelling, count too).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::super::*;
use crate::filter::DEFAULT_DROP;

/// Keys: CloudTrail's own, the lowercase spellings classification
/// reads, keys the filter drops or the template renames, and others.
const KEYS: &[&str] = &[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "eventType",
    "readOnly",
    "managementEvent",
    "resources",
    "recipientAccountId",
    "eventCategory",
    "sessionCredentialFromConsole",
    "tlsDetails",
    "insightDetails",
    "errorCode",
    "errorMessage",
    "@timestamp",
    "eventname",
    "useragent",
    "useridentity",
    "eventsource",
    "eventtype",
    "sessioncredentialfromconsole",
    "accessKeyId",
    "sessionToken",
    "arn",
    "principalId",
    "type",
    "invokedBy",
    "sessionContext",
    "sessionIssuer",
    "webIdFederationData",
    "ConsoleLogin",
    "MFAUsed",
    "userName",
    "newUserName",
    "ctindex",
    "event",
    "user",
    "_id",
    "_source",
    "",
    " ",
    "a.b",
    ".",
    "x",
    "tags",
    "ARN",
    "userData",
    "policyDocument",
    "k\u{e9}y",
];

/// Strings that rules look at.
const STRINGS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "key ASIAIOSFODNN7EXAMPLE used",
    "TRUE",
    " false ",
    "true",
    "yes",
    "ConsoleLogin",
    "Insight",
    "AwsConsoleSignIn",
    "AwsCloudTrailInsight",
    "aws-cli/2.15.0 Python/3.11",
    "console.amazonaws.com",
    "signin.amazonaws.com",
    "AWSService",
    "ec2.amazonaws.com",
    "Mozilla/5.0",
    "2024-02-29T23:59:59Z",
    "2019-01-01 00:00:00",
    "2024-13-01T00:00:00Z",
    "1700000000000",
    "yesterday",
    "Success",
    "Failure",
    "81.2.69.142",
    "2001:db8::1",
    "",
    " ",
    "\u{e9}",
    "a/b",
    "Yes",
    " NO",
    "Success",
    "Failure",
    "line\nbreak",
    "quote\"s",
    "\u{2028}",
    "\u{1}",
    "arn:aws:iam::1:role/r",
    "\u{1f600}",
];

const CHARS: &[char] = &[
    'a',
    'A',
    'K',
    'I',
    'S',
    '1',
    '/',
    '\\',
    '"',
    '\n',
    '\u{e9}',
    '\u{1f600}',
    ' ',
    '.',
    '\u{1}',
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(STRINGS).prop_map(String::from),
        2 => prop::collection::vec(prop::sample::select(CHARS), 0..12).prop_map(|c| c.into_iter().collect()),
        // Long strings and keys: over the small limit, or over the key limit.
        1 => (0usize..4, 20usize..300).prop_map(|(c, n)| ["x", "\u{e9}", "AKIA", "k"][c].repeat(n)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(String::from),
        2 => text(),
    ]
}

/// Top-level keys: mostly plain ones, at times one the fast path
/// leaves to the value path (renamed, reserved, or ours).
fn top_key() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => prop::sample::select(KEYS)
            .prop_filter("plain", |k| normalize::plain_top_key(k) && *k != "ctindex")
            .prop_map(String::from),
        1 => key(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![1_700_000_000_000_i64, 17_000, 0, -1]).prop_map(Value::from),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let nested = leaf().prop_recursive(6, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        60 => nested,
        // Deeper than the scanner (100) and serde_json (128) go.
        1 => (90usize..140, any::<bool>()).prop_map(|(n, objects)| {
            (0..n).fold(json!("v"), |v, _| if objects { json!({"k": v}) } else { json!([v]) })
        }),
    ]
}

fn identity() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "type",
        "arn",
        "accountId",
        "userName",
        "principalId",
        "invokedBy",
        "accessKeyId",
        "x.y",
    ]);
    prop_oneof![
        4 => (
            prop::collection::vec((names, prop_oneof![3 => text().prop_map(Value::String), 1 => value()]), 0..5),
            prop::option::of(text()),
            prop::option::of(value()),
        )
            .prop_map(|(members, issuer, webid)| {
                let mut m: Map<String, Value> = members.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                if issuer.is_some() || webid.is_some() {
                    let mut context = Map::new();
                    if let Some(arn) = issuer {
                        context.insert("sessionIssuer".into(), json!({"arn": arn, "userName": arn}));
                    }
                    if let Some(webid) = webid {
                        context.insert("webIdFederationData".into(), webid);
                    }
                    m.insert("sessionContext".into(), Value::Object(context));
                }
                Value::Object(m)
            }),
        1 => value(),
    ]
}

/// One event as (key, value) pairs: maybe with duplicates, in any order.
fn event() -> impl Strategy<Value = Vec<(String, Value)>> {
    let id = prop_oneof![
        6 => (0u32..1000).prop_map(|n| Some(json!(format!("e-{n}")))),
        1 => Just(None),
        1 => prop::sample::select(vec![json!(""), json!("  "), json!(5), json!("x".repeat(600))]).prop_map(Some),
    ];
    let time = prop_oneof![
        6 => prop::sample::select(vec!["2024-02-29T23:59:59Z", "2019-01-01 00:00:00", "2023-11-14T22:13:20.000Z"])
            .prop_map(|t| Some(json!(t))),
        1 => Just(None),
        1 => leaf().prop_map(Some),
    ];
    let name = prop_oneof![
        8 => prop::sample::select(vec!["RunInstances", "GetObject", "ConsoleLogin", "CreateUser"]).prop_map(|n| Some(json!(n))),
        1 => Just(None),
        1 => leaf().prop_map(Some),
    ];
    (
        (id, time, name, prop::option::of(identity()), prop::option::of(text())),
        (any::<bool>(), any::<bool>(), any::<bool>(), prop::bool::weighted(0.1)),
        prop::collection::vec((top_key(), value()), 0..6),
        prop::option::weighted(0.1, (any::<prop::sample::Index>(), value())),
    )
        .prop_map(
            |((id, time, name, identity, agent), (source, insight, login, lowercase), extra, duplicate)| {
                let mut fields = vec![("eventVersion".to_string(), json!("1.08"))];
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        fields.push((k.to_string(), v));
                    }
                };
                put("eventID", id);
                put("eventTime", time);
                put(if lowercase { "eventname" } else { "eventName" }, name);
                put("eventSource", source.then(|| json!("signin.amazonaws.com")));
                put("userIdentity", identity);
                put("userAgent", agent.map(Value::String));
                if insight {
                    put("eventCategory", Some(json!("Insight")));
                    put("eventType", Some(json!("AwsCloudTrailInsight")));
                    put("insightDetails", Some(json!({"state": "Start"})));
                }
                if login {
                    put("responseElements", Some(json!({"ConsoleLogin": "Success"})));
                    put("additionalEventData", Some(json!({"MFAUsed": "Yes"})));
                    put("errorMessage", Some(json!("Failed authentication")));
                }
                // Duplicates only where asked for below.
                for (key, value) in extra {
                    if !fields.iter().any(|(k, _)| *k == key) {
                        fields.push((key, value));
                    }
                }
                if let Some((at, value)) = duplicate {
                    let key = fields[at.index(fields.len())].0.clone();
                    fields.push((key, value));
                }
                fields
            },
        )
        .prop_shuffle()
}

/// How an event's text is spelled.
#[derive(Debug, Clone, Copy)]
struct Style {
    pretty: bool,
    /// `\/`, `\u0041`, surrogate pairs in values.
    escape_values: bool,
    /// The same in keys (which the scanner leaves to the value path).
    escape_keys: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), prop::bool::weighted(0.3), prop::bool::weighted(0.05)).prop_map(
        |(pretty, escape_values, escape_keys)| Style {
            pretty,
            escape_values,
            escape_keys,
        },
    )
}

fn write_string(s: &str, escape: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '/' if escape => out.push_str("\\/"),
            'A' if escape => out.push_str("\\u0041"),
            '\u{e9}' if escape => out.push_str("\\u00e9"),
            '\u{1f600}' if escape => out.push_str("\\ud83d\\ude00"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(v: &Value, style: Style, depth: usize, out: &mut String) {
    let (sep, colon) = if style.pretty { (",\n", ": ") } else { (",", ":") };
    let indent = |out: &mut String| {
        if style.pretty {
            out.push('\n');
            out.push_str(&" ".repeat(depth.min(8)));
        }
    };
    match v {
        Value::String(s) => write_string(s, style.escape_values, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_value(item, style, depth + 1, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out);
                write_string(k, style.escape_keys, out);
                out.push_str(colon);
                write_value(item, style, depth + 1, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn render(fields: &[(String, Value)], style: Style) -> Vec<u8> {
    let mut out = String::from(if style.pretty { "{\n  " } else { "{" });
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(if style.pretty { ",\n  " } else { "," });
        }
        write_string(k, style.escape_keys, &mut out);
        out.push_str(if style.pretty { ": " } else { ":" });
        write_value(v, style, 1, &mut out);
    }
    out.push_str(if style.pretty { "\n}" } else { "}" });
    out.into_bytes()
}

/// The transformers the paths are compared under: the defaults, small
/// limits, drops with keeps and globs, no redaction, key drops only
/// (done on the text; some of the keys the ECS copies read), without the
/// ECS copies, and the export's (no template).
fn transformers() -> Vec<Transformer> {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let defaults = FieldFilter::new(&own(DEFAULT_DROP), &[], true).unwrap();
    let mut drops = own(DEFAULT_DROP);
    drops.extend(own(&[
        "requestParameters.policy*",
        "**.userData",
        "resources.ARN",
        "*.tags",
        "x",
    ]));
    vec![
        Transformer::new(defaults.clone(), "ct", Limits::default()),
        Transformer::new(
            defaults.clone(),
            "ct",
            Limits {
                max_string_bytes: 40,
                max_depth: 3,
            },
        ),
        Transformer::new(
            FieldFilter::new(&drops, &own(&["userIdentity.accessKeyId"]), true).unwrap(),
            "ct",
            Limits::default(),
        ),
        Transformer::new(FieldFilter::new(&[], &[], false).unwrap(), "ct", Limits::default()),
        Transformer::new(
            FieldFilter::new(
                &own(&["**.accessKeyId", "**.arn", "**.eventTime", "**.type", "**.userName"]),
                &[],
                true,
            )
            .unwrap(),
            "ct",
            Limits::default(),
        ),
        Transformer::new(defaults.clone(), "ct", Limits::default()).with_ecs(false),
        Transformer::for_export(defaults.clone()),
        Transformer::for_export(defaults).with_ecs(false),
    ]
}

/// Both paths on one event's text: whether the fast path took it.
fn same_document(t: &Transformer, text: &[u8], view: &mut View) -> Result<bool, TestCaseError> {
    let origin = "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/f.json.gz";
    // The value path, as a file of one record is read.
    let mut file = b"{\"Records\":[".to_vec();
    file.extend_from_slice(text);
    file.extend_from_slice(b"]}");
    let slow = match crate::decode::decode(&file) {
        Ok(decoded) => {
            prop_assert!(decoded.events.len() <= 1, "{} events", decoded.events.len());
            decoded.events.into_iter().next().map(|e| t.apply(e, origin))
        }
        Err(_) => None,
    };
    let Some(raw) = RawEvent::parse(text, t.watch()) else {
        return Ok(false);
    };
    let Some(doc) = t.apply_raw(&raw, origin, view) else {
        return Ok(false);
    };
    let mut json = Vec::new();
    doc.write_json(&mut json);
    let Some(slow) = slow else {
        return Err(TestCaseError::fail(format!(
            "the fast path made a document of what the value path does not take as an event: {}",
            String::from_utf8_lossy(&json)
        )));
    };
    prop_assert!(!json.contains(&b'\n') && !json.contains(&b'\r'), "not one line");
    let got: Value = serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(got, Value::Object(slow.source.clone()));
    prop_assert_eq!((doc.index(), doc.id()), (slow.index.as_str(), slow.id.as_str()));
    prop_assert_eq!(doc.id_generated(), slow.id_generated());
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A few events in a row share one view, as a file's do.
    #[test]
    fn the_fast_path_makes_the_documents_the_value_path_makes(
        events in prop::collection::vec((event(), style()), 1..4),
        which in 0usize..8,
    ) {
        let t = &transformers()[which];
        let mut view = View::default();
        for (fields, style) in &events {
            same_document(t, &render(fields, *style), &mut view)?;
        }
    }
}

/// The generated events are not all left to the value path: the
/// property above compares documents for most of them.
#[test]
fn most_generated_events_take_the_fast_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (event(), style());
    let t = &transformers()[0];
    let mut view = View::default();
    let (mut fast, total) = (0, 400);
    for _ in 0..total {
        let (fields, style) = strategy.new_tree(&mut runner).unwrap().current();
        fast += usize::from(same_document(t, &render(&fields, style), &mut view).unwrap());
    }
    assert!(fast * 3 > total, "{fast} of {total} took the fast path");
}
