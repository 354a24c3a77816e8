//! Export formats: one event per line, for log monitors and archives.
//!
//! Owns the two line formats and everything that decides where a line goes
//! and in which order: the output file of an event (account and region), its
//! sort key (event time, then event id) and the escaping that keeps one event
//! on one line whatever its values hold.
//!
//! - `ndjson`: the filtered event with its `ctindex.*` fields, as compact JSON;
//! - `lines`: [`HEADER_FIELDS`] and the account ([`account`]) separated by
//!   tabs, then a tab and the same compact JSON. Header values escape `\`, tab, newline, carriage return and
//!   other control characters (`\\`, `\t`, `\n`, `\r`, `\u0001`), an absent or
//!   empty value is `-`, so a regex can match a field at a fixed place.
//!
//! In both formats the JSON escapes U+2028, U+2029 and U+0085 too: some
//! readers take them for line breaks. A line never holds a raw newline.
//!
//! Pure and synchronous: no I/O.

use serde_json::Value;

use crate::date::millis_text;
use crate::transform::Document;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Fixed header fields, tab-separated, then the event as compact JSON.
    Lines,
    /// One event per line as compact JSON.
    Ndjson,
}

impl Format {
    /// File name extension of the output files.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Lines => "log",
            Format::Ndjson => "ndjson",
        }
    }
}

/// The header fields of the `lines` format, in order: the dotted path in the
/// document, and the name the README uses. The account follows them, last,
/// so that patterns written for these eight still find each at its place.
pub const HEADER_FIELDS: [(&str, &str); 8] = [
    ("eventTime", "eventTime"),
    ("awsRegion", "awsRegion"),
    ("eventSource", "eventSource"),
    ("eventName", "eventName"),
    ("ctindex.identity", "identity"),
    ("sourceIPAddress", "sourceIPAddress"),
    ("errorCode", "errorCode"),
    ("ctindex.channel", "channel"),
];

/// What stands for an absent or empty header value.
pub const ABSENT: &str = "-";

/// Writes one event (read from the file or key `source_name`) as a line of
/// `format` into `out`, without the newline.
pub fn write_line(format: Format, doc: &impl Document, source_name: &str, out: &mut Vec<u8>) {
    if format == Format::Lines {
        for (path, _) in HEADER_FIELDS {
            match lookup(doc, path) {
                Some(Value::String(s)) if !s.is_empty() => escape_field(s, out),
                None | Some(Value::Null) | Some(Value::String(_)) => out.extend_from_slice(ABSENT.as_bytes()),
                Some(other) => escape_field(&other.to_string(), out),
            }
            out.push(b'\t');
        }
        match account(doc, source_name) {
            Some(account) => escape_field(&account, out),
            None => out.extend_from_slice(ABSENT.as_bytes()),
        }
        out.push(b'\t');
    }
    write_json(doc, out);
}

/// The account of an event: `recipientAccountId`, else the account of the
/// S3 key or path it was read from (`AWSLogs/[o-org/]<account>/`), else
/// `userIdentity.accountId`.
pub fn account(doc: &impl Document, source_name: &str) -> Option<String> {
    let text = |path: &str| {
        lookup(doc, path)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    text("recipientAccountId")
        .map(str::to_string)
        .or_else(|| key_account(source_name))
        .or_else(|| text("userIdentity.accountId").map(str::to_string))
}

/// Compact JSON with the Unicode line separators escaped as well.
fn write_json(doc: &impl Document, out: &mut Vec<u8>) {
    let start = out.len();
    doc.write_json(out);
    // U+2028, U+2029 (E2 80 A8/A9) and U+0085 (C2 85) can only occur inside
    // JSON strings, where their \u escapes mean the same.
    if out[start..].windows(2).any(|w| w == [0xE2, 0x80] || w == [0xC2, 0x85]) {
        let json = out.split_off(start);
        let mut i = 0;
        while i < json.len() {
            match json[i..] {
                [0xE2, 0x80, 0xA8, ..] => {
                    out.extend_from_slice(br"\u2028");
                    i += 3;
                }
                [0xE2, 0x80, 0xA9, ..] => {
                    out.extend_from_slice(br"\u2029");
                    i += 3;
                }
                [0xC2, 0x85, ..] => {
                    out.extend_from_slice(br"\u0085");
                    i += 2;
                }
                _ => {
                    out.push(json[i]);
                    i += 1;
                }
            }
        }
    }
}

/// Escapes a header value so it holds no tab, no line break and no other
/// control character.
pub fn escape_field(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(br"\\"),
            '\t' => out.extend_from_slice(br"\t"),
            '\n' => out.extend_from_slice(br"\n"),
            '\r' => out.extend_from_slice(br"\r"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// The value at a dotted path of top-level objects.
fn lookup<'a>(doc: &'a impl Document, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = doc.field(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The output file of an event, relative to the output folder:
/// `<account>/cloudtrail_<region>.<ext>`. The account is `recipientAccountId`,
/// else the account of the S3 key (`AWSLogs/[o-org/]<account>/`), else
/// `userIdentity.accountId`; the region is `awsRegion`. Either may be
/// `unknown`. Names are reduced to `[A-Za-z0-9._-]`.
pub fn route(doc: &impl Document, source_name: &str, format: Format) -> String {
    let account = account(doc, source_name).unwrap_or_else(|| "unknown".into());
    let region = lookup(doc, "awsRegion")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    format!(
        "{}/cloudtrail_{}.{}",
        safe_name(&account),
        safe_name(region),
        format.extension()
    )
}

/// The account of a CloudTrail key or path (`…/AWSLogs/[o-org/]<account>/CloudTrail…`).
fn key_account(name: &str) -> Option<String> {
    let mut parts = name.split(['/', '\\']).skip_while(|p| *p != "AWSLogs").skip(1);
    let first = parts.next()?;
    let account = if first.starts_with("o-") { parts.next()? } else { first };
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then(|| account.to_string())
}

/// A file name part made of `[A-Za-z0-9._-]` only, never `.` or `..` or empty.
fn safe_name(s: &str) -> String {
    let mut name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.chars().all(|c| c == '.') {
        name = name.replace('.', "_");
    }
    name
}

/// The sort key of an event inside one output: its time, as a string that
/// sorts in time order (ISO 8601 UTC, `yyyy-MM-ddTHH:mm:ss…`; epoch
/// milliseconds are converted; other text sorts as it is, after the dates).
pub fn sort_time(doc: &impl Document) -> String {
    match doc.field("eventTime") {
        Some(Value::String(s)) => {
            let s = s.trim();
            let b = s.as_bytes();
            if b.len() >= 19 && b[4] == b'-' && b[10] == b' ' {
                format!("{}T{}", &s[..10], &s[11..])
            } else if !b.is_empty() && b.len() <= 13 && b.iter().all(u8::is_ascii_digit) {
                s.parse::<i64>()
                    .ok()
                    .and_then(millis_text)
                    .unwrap_or_else(|| s.to_string())
            } else {
                s.to_string()
            }
        }
        Some(Value::Number(n)) => n.as_i64().and_then(millis_text).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Doc;
    use serde_json::json;

    fn doc(v: Value) -> Doc {
        Doc {
            index: "i".into(),
            id: "id".into(),
            source: v.as_object().cloned().unwrap(),
        }
    }

    fn line(format: Format, v: Value) -> String {
        line_from(format, v, "f.json")
    }

    fn line_from(format: Format, v: Value, source_name: &str) -> String {
        let mut out = Vec::new();
        write_line(format, &doc(v), source_name, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_start_with_the_header_fields_in_order() {
        let event = json!({
            "eventTime": "2024-01-02T03:04:05Z", "awsRegion": "eu-west-1", "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances", "sourceIPAddress": "AWS Internal", "errorCode": "",
            "recipientAccountId": "111122223333",
            "ctindex": {"identity": "arn:aws:iam::1:role/r", "channel": "console"}
        });
        let text = line(Format::Lines, event.clone());
        let (header, json) = text.rsplit_once('\t').unwrap();
        assert_eq!(
            header,
            "2024-01-02T03:04:05Z\teu-west-1\tec2.amazonaws.com\tRunInstances\tarn:aws:iam::1:role/r\tAWS Internal\t-\tconsole\t111122223333"
        );
        assert_eq!(header.split('\t').count(), HEADER_FIELDS.len() + 1);
        assert_eq!(serde_json::from_str::<Value>(json).unwrap(), event);
        assert_eq!(line(Format::Ndjson, event.clone()), json);
        // Nothing known: every header field is `-`.
        assert_eq!(line(Format::Lines, json!({})), "-\t-\t-\t-\t-\t-\t-\t-\t-\t{}");
        // The account, as for routing: recipientAccountId, else the key's, else the identity's.
        let key = "b/AWSLogs/o-abc/123456789012/CloudTrail/us-east-1/2024/01/01/f.json.gz";
        let identity = json!({"userIdentity": {"accountId": "999999999999"}});
        let account_field = |v: Value, name: &str| {
            line_from(Format::Lines, v, name)
                .split('\t')
                .nth(8)
                .unwrap()
                .to_string()
        };
        assert_eq!(account_field(identity.clone(), key), "123456789012");
        assert_eq!(account_field(identity, "f.json"), "999999999999");
        assert_eq!(account_field(json!({"recipientAccountId": "1\t2"}), key), r"1\t2");
    }

    #[test]
    fn values_can_never_break_a_line_or_shift_a_field() {
        let event = json!({
            "eventTime": 1_700_000_000_123_i64, "awsRegion": "us-east-1\tfake", "eventSource": "a\nb\r\nc",
            "eventName": "X\\Y\u{1}\u{2028}", "errorCode": "Access\u{0}Denied", "sourceIPAddress": 1.5,
            "requestParameters": {"text": "a\tb\nc\u{2028}d\u{2029}e\u{85}f\u{7f}"}
        });
        let text = line(Format::Lines, event.clone());
        assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}') && !text.contains('\u{85}'));
        let fields: Vec<&str> = text.split('\t').collect();
        assert_eq!(fields.len(), 10, "{text:?}");
        assert_eq!(
            &fields[..9],
            [
                "1700000000123",
                r"us-east-1\tfake",
                r"a\nb\r\nc",
                r"X\\Y\u0001\u2028",
                "-",
                "1.5",
                r"Access\u0000Denied",
                "-",
                "-"
            ]
        );
        // The JSON part is still exactly the event.
        assert_eq!(serde_json::from_str::<Value>(fields[9]).unwrap(), event);
        let nd = line(Format::Ndjson, event.clone());
        assert!(!nd.contains('\n') && !nd.contains('\u{2028}'));
        assert_eq!(serde_json::from_str::<Value>(&nd).unwrap(), event);
    }

    #[test]
    fn routes_by_account_and_region() {
        let cases = [
            (
                json!({"recipientAccountId": "111122223333", "awsRegion": "eu-west-1"}),
                "x",
                "111122223333/cloudtrail_eu-west-1.log",
            ),
            (
                json!({"awsRegion": "us-east-1", "userIdentity": {"accountId": "999999999999"}}),
                "b/AWSLogs/o-abc/123456789012/CloudTrail/us-east-1/2024/01/01/f.json.gz",
                "123456789012/cloudtrail_us-east-1.log",
            ),
            (
                json!({"awsRegion": "us-east-1", "userIdentity": {"accountId": "999999999999"}}),
                "f.json",
                "999999999999/cloudtrail_us-east-1.log",
            ),
            (
                json!({"recipientAccountId": "../..", "awsRegion": "a/b c"}),
                "f",
                ".._../cloudtrail_a_b_c.log",
            ),
            (json!({"recipientAccountId": ".."}), "f", "__/cloudtrail_unknown.log"),
            (json!({}), "f", "unknown/cloudtrail_unknown.log"),
        ];
        for (event, name, want) in cases {
            assert_eq!(route(&doc(event.clone()), name, Format::Lines), want, "{event}");
        }
        assert_eq!(
            route(&doc(json!({"recipientAccountId": "1"})), "f", Format::Ndjson),
            "1/cloudtrail_unknown.ndjson"
        );
    }

    #[test]
    fn sort_keys_follow_time() {
        let key = |t: Value| sort_time(&doc(json!({ "eventTime": t })));
        assert_eq!(key(json!("2024-01-02 03:04:05")), "2024-01-02T03:04:05");
        assert_eq!(key(json!(1_700_000_000_123_i64)), "2023-11-14T22:13:20.123Z");
        assert_eq!(key(json!("1700000000123")), "2023-11-14T22:13:20.123Z");
        assert!(key(json!("2024-01-02T03:04:05Z")) < key(json!("2024-01-02T03:04:06Z")));
        assert_eq!(sort_time(&doc(json!({}))), "");
    }
}
