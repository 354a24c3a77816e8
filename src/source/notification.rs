//! Notifications: the SQS message bodies that announce new log files, read
//! into the objects they name.
//!
//! Four shapes are understood, each alone or in an SNS envelope (SNS raw
//! message delivery off: `{"Type": "Notification", "Message": "<the shape,
//! as a JSON string>"}`; on: the shape itself):
//! - an S3 event notification (`{"Records": [{"eventSource": "aws:s3",
//!   "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": …},
//!   "object": {"key": …, "size": …}}}]}`), whose keys are URL-encoded
//!   (`+` is a space, `%XX` a byte), as S3 documents;
//! - S3's `s3:TestEvent`, sent once when a notification is configured;
//! - CloudTrail's own SNS notification (`{"s3Bucket": …, "s3ObjectKey":
//!   [ … ]}`), keys as they are;
//! - an EventBridge "Object Created" event (`{"detail-type": "Object
//!   Created", "source": "aws.s3", "detail": {"bucket": {"name": …},
//!   "object": {"key": …, "size": …}}}`), keys as they are.
//!
//! Each object named is either to be read ([`Notice`]) or passed over with
//! the reason ([`Passed`]): digests, keys outside the CloudTrail layout,
//! names that are not log files, events other than "object created".
//!
//! Pure: no I/O. Invariant: a body is either understood entirely (every
//! object it names is read or passed over with a reason) or refused
//! ([`NotANotification`]); nothing it names is silently dropped.

use serde::Deserialize;
use serde_json::Value;

use super::layout::Place;
use super::{is_candidate, is_digest};

/// An object a notification names, to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub bucket: String,
    pub key: String,
    /// When the notification says (S3 and EventBridge do, CloudTrail does not).
    pub size: Option<u64>,
}

/// Something a notification names that is not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// `s3://bucket/key`, or what the message was (`s3:TestEvent`).
    pub what: String,
    pub why: &'static str,
}

/// What one message body names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notification {
    pub notices: Vec<Notice>,
    pub passed: Vec<Passed>,
}

/// A body that is none of the shapes understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a notification of new objects ({0}): expected an S3 event notification, CloudTrail's SNS notification or an EventBridge \"Object Created\" event, alone or in an SNS envelope"
)]
pub struct NotANotification(pub String);

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Named,
    object: S3Object,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct CloudTrailNotice {
    #[serde(rename = "s3Bucket")]
    bucket: String,
    #[serde(rename = "s3ObjectKey")]
    keys: Vec<String>,
}

/// Reads a message body.
pub fn parse(body: &str) -> Result<Notification, NotANotification> {
    let value: Value = serde_json::from_str(body).map_err(|e| NotANotification(format!("not JSON: {e}")))?;
    parse_value(value, 0)
}

fn parse_value(value: Value, depth: u8) -> Result<Notification, NotANotification> {
    let Value::Object(map) = &value else {
        return Err(NotANotification("not a JSON object".into()));
    };
    // SNS envelope (raw message delivery off): the shape is in `Message`, as a string.
    if map.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = map.get("Message").and_then(Value::as_str)
    {
        if depth > 0 {
            return Err(NotANotification("an SNS envelope inside another".into()));
        }
        let inner: Value =
            serde_json::from_str(message).map_err(|e| NotANotification(format!("the SNS Message is not JSON: {e}")))?;
        return parse_value(inner, depth + 1);
    }
    let mut out = Notification::default();
    if let Some(records) = map.get("Records") {
        let records: Vec<S3Record> = serde_json::from_value(records.clone())
            .map_err(|e| NotANotification(format!("Records are not S3 event records: {e}")))?;
        for record in records {
            let key = decode_key(&record.s3.object.key);
            let notice = Notice {
                bucket: record.s3.bucket.name,
                key,
                size: record.s3.object.size,
            };
            if !record.event_name.starts_with("ObjectCreated:") {
                out.passed.push(Passed {
                    what: format!("s3://{}/{} ({})", notice.bucket, notice.key, record.event_name),
                    why: "not an object creation",
                });
                continue;
            }
            out.add(notice);
        }
        return Ok(out);
    }
    if map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        let bucket = map.get("Bucket").and_then(Value::as_str).unwrap_or("?");
        out.passed.push(Passed {
            what: format!("s3:TestEvent of bucket {bucket}"),
            why: "S3's test message (sent when a notification is set up)",
        });
        return Ok(out);
    }
    if map.contains_key("s3ObjectKey") {
        let notice: CloudTrailNotice = serde_json::from_value(value.clone())
            .map_err(|e| NotANotification(format!("not a CloudTrail notification: {e}")))?;
        for key in notice.keys {
            out.add(Notice {
                bucket: notice.bucket.clone(),
                key,
                size: None,
            });
        }
        return Ok(out);
    }
    if map.get("source").and_then(Value::as_str) == Some("aws.s3") && map.contains_key("detail") {
        let detail_type = map.get("detail-type").and_then(Value::as_str).unwrap_or_default();
        let entity: S3Entity = serde_json::from_value(map["detail"].clone())
            .map_err(|e| NotANotification(format!("not an S3 EventBridge event: {e}")))?;
        let notice = Notice {
            bucket: entity.bucket.name,
            key: entity.object.key,
            size: entity.object.size,
        };
        if detail_type != "Object Created" {
            out.passed.push(Passed {
                what: format!("s3://{}/{} ({detail_type})", notice.bucket, notice.key),
                why: "not an object creation",
            });
        } else {
            out.add(notice);
        }
        return Ok(out);
    }
    let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
    Err(NotANotification(format!("fields: {}", keys.join(", "))))
}

impl Notification {
    /// Adds an object named, to read or passed over.
    fn add(&mut self, notice: Notice) {
        match why_not(&notice.key) {
            Some(why) => self.passed.push(Passed {
                what: format!("s3://{}/{}", notice.bucket, notice.key),
                why,
            }),
            None => self.notices.push(notice),
        }
    }
}

/// Why a key is not read, or None when it is a CloudTrail log file.
pub fn why_not(key: &str) -> Option<&'static str> {
    if is_digest(key) {
        return Some("a digest file (it holds no events)");
    }
    let place = Place::of_file(key);
    if place.region.is_none() || !matches!(place.kind, Some("CloudTrail" | "CloudTrail-Insight")) {
        return Some("outside the CloudTrail layout (AWSLogs/<account>/CloudTrail/<region>/…)");
    }
    if key.ends_with('/') || !is_candidate(key) {
        return Some("not a log file (.json, .json.gz)");
    }
    None
}

/// A key as S3 event notifications give it: URL-encoded, with `+` for a space.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/111122223333_CloudTrail_us-east-1_20240301T0005Z_abc.json.gz";

    /// An S3 event notification, as S3 sends it to SQS.
    fn s3_event(key: &str, event: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2024-03-01T00:05:12.000Z","eventName":"{event}",
            "userIdentity":{{"principalId":"AWS:AROAEXAMPLE:regionalDeliverySession"}},
            "requestParameters":{{"sourceIPAddress":"10.0.0.1"}},
            "responseElements":{{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"}},
            "s3":{{"s3SchemaVersion":"1.0","configurationId":"ctindex",
            "bucket":{{"name":"trail-bucket","ownerIdentity":{{"principalId":"A3NL1KOZZKExample"}},"arn":"arn:aws:s3:::trail-bucket"}},
            "object":{{"key":"{key}","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}}}}]}}"#
        )
    }

    /// An SNS envelope around `message` (raw message delivery off).
    fn sns(message: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:trail-topic",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2024-03-01T00:05:13.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+..",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
        })
        .to_string()
    }

    fn notice(key: &str, size: Option<u64>) -> Notice {
        Notice {
            bucket: "trail-bucket".into(),
            key: key.into(),
            size,
        }
    }

    #[test]
    fn s3_events_straight_and_through_sns_raw_or_not() {
        let body = s3_event(KEY, "ObjectCreated:Put");
        let want = Notification {
            notices: vec![notice(KEY, Some(1024))],
            passed: vec![],
        };
        assert_eq!(parse(&body).unwrap(), want);
        // SNS with raw message delivery on: the body is the S3 event itself.
        assert_eq!(parse(&sns(&body)).unwrap(), want);
    }

    #[test]
    fn s3_keys_are_url_decoded() {
        let encoded = "my+trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/a%3Ab%2Bc.json.gz";
        let got = parse(&s3_event(encoded, "ObjectCreated:CompleteMultipartUpload")).unwrap();
        assert_eq!(
            got.notices,
            [notice(
                "my trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/a:b+c.json.gz",
                Some(1024)
            )]
        );
        assert_eq!(decode_key("a%20b+c%2B"), "a b c+");
    }

    #[test]
    fn removals_test_events_digests_and_other_keys_are_passed_over() {
        let removed = parse(&s3_event(KEY, "ObjectRemoved:Delete")).unwrap();
        assert!(removed.notices.is_empty());
        assert_eq!(removed.passed[0].why, "not an object creation");

        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-03-01T00:00:00.000Z",
            "Bucket":"trail-bucket","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
        for body in [test.to_string(), sns(test)] {
            let got = parse(&body).unwrap();
            assert!(got.notices.is_empty());
            assert_eq!(got.passed[0].what, "s3:TestEvent of bucket trail-bucket");
        }

        for (key, why) in [
            (
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240301T010203Z.json.gz",
                "a digest file (it holds no events)",
            ),
            (
                "exports/report.json.gz",
                "outside the CloudTrail layout (AWSLogs/<account>/CloudTrail/<region>/…)",
            ),
            (
                "AWSLogs/111122223333/vpcflowlogs/us-east-1/2024/03/01/x.log.gz",
                "outside the CloudTrail layout (AWSLogs/<account>/CloudTrail/<region>/…)",
            ),
            (
                "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/notes.txt",
                "not a log file (.json, .json.gz)",
            ),
        ] {
            let got = parse(&s3_event(key, "ObjectCreated:Put")).unwrap();
            assert!(got.notices.is_empty(), "{key}");
            assert_eq!(
                got.passed,
                [Passed {
                    what: format!("s3://trail-bucket/{key}"),
                    why
                }]
            );
        }
        // Insight files are read.
        let insight = "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/03/01/i.json.gz";
        assert_eq!(parse(&s3_event(insight, "ObjectCreated:Put")).unwrap().notices.len(), 1);
    }

    #[test]
    fn cloudtrail_sns_notifications() {
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/01/d.json.gz";
        let message = serde_json::json!({"s3Bucket": "trail-bucket", "s3ObjectKey": [KEY, digest]}).to_string();
        for body in [message.clone(), sns(&message)] {
            let got = parse(&body).unwrap();
            assert_eq!(got.notices, [notice(KEY, None)]);
            assert_eq!(got.passed.len(), 1);
        }
        // CloudTrail keys are not URL-encoded: a `+` stays.
        let plus = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/a+b.json.gz";
        let got = parse(&serde_json::json!({"s3Bucket": "b", "s3ObjectKey": [plus]}).to_string()).unwrap();
        assert_eq!(got.notices[0].key, plus);
    }

    #[test]
    fn eventbridge_object_created() {
        let body = format!(
            r#"{{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
            "source":"aws.s3","account":"111122223333","time":"2024-03-01T00:05:12Z","region":"us-east-1",
            "resources":["arn:aws:s3:::trail-bucket"],
            "detail":{{"version":"0","bucket":{{"name":"trail-bucket"}},
            "object":{{"key":"{KEY}","size":2048,"etag":"b1946ac92492d2347c6235b4d2611184","sequencer":"00617F08299329D189"}},
            "request-id":"N4N7GDK58NMKJ12R","requester":"cloudtrail.amazonaws.com","source-ip-address":"10.0.0.1","reason":"PutObject"}}}}"#
        );
        assert_eq!(parse(&body).unwrap().notices, [notice(KEY, Some(2048))]);
        let deleted = body.replace("Object Created", "Object Deleted");
        let got = parse(&deleted).unwrap();
        assert!(got.notices.is_empty() && got.passed[0].why == "not an object creation");
    }

    #[test]
    fn other_bodies_are_refused_with_what_they_hold() {
        for (body, part) in [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"hello":"world"}"#, "fields: hello"),
            (r#"{"Records":[{"x":1}]}"#, "Records are not S3 event records"),
            (
                r#"{"Type":"Notification","Message":"oops"}"#,
                "the SNS Message is not JSON",
            ),
        ] {
            let error = parse(body).unwrap_err().to_string();
            assert!(error.contains(part), "{body}: {error}");
        }
    }
}
