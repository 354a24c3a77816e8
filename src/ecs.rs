//! ECS: the Elastic Common Schema fields ctindex writes beside CloudTrail's
//! own, so that Elastic Security's rules and other ECS content find
//! `event.action`, `user.name`, `source.ip`, … in a ctindex index.
//!
//! Two kinds, chosen field by field (docs/ecs.md has the list and why):
//! - **aliases**, in the index templates (`mappings/`): a field that is
//!   another name of one CloudTrail field as it is (`event.action` is
//!   `eventName`) costs nothing per document, and is not here;
//! - **copies**, derived here: a value CloudTrail does not hold as such
//!   (`event.outcome` from `errorCode`, `user.name` from one of two places,
//!   the constants `event.kind`, `event.dataset`, `cloud.provider`), or one
//!   an alias cannot serve (`source.ip`: only valid addresses; `@timestamp`).
//!
//! The rules follow the Elastic integration's CloudTrail pipeline, so that
//! its test outputs are an oracle (`tests/it/ecs.rs`). Pure: [`Ecs::derive`]
//! reads an event's top-level fields through a lookup, which serves both the
//! value tree and the transform's fast path; [`Ecs`] is serialised by serde
//! into either ([`insert`], [`write_members`]), so both give the same fields.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

/// `event.dataset`, as Elastic's integration names the data.
pub const DATASET: &str = "aws.cloudtrail";

/// Nested keys the copies read (`userIdentity.userName`,
/// `requestParameters.newUserName`, `responseElements.ConsoleLogin`, …): a
/// `--drop '**.NAME'` of one of them must be applied before the copies are
/// derived (the transform's fast path checks this list).
pub const NESTED_READS: &[&str] = &[
    "userName",
    "newUserName",
    "ConsoleLogin",
    "sessionContext",
    "sessionIssuer",
];

/// Top-level fields the copies read.
pub const TOP_LEVEL_READS: &[&str] = &[
    "@timestamp",
    "eventName",
    "errorCode",
    "errorMessage",
    "responseElements",
    "sourceIPAddress",
    "userIdentity",
    "requestParameters",
];

/// The ECS copies of one event. Serialised, its fields are top-level
/// objects of the document (and `@timestamp`), in alphabetical order.
#[derive(Debug, Serialize)]
pub struct Ecs<'v> {
    /// `eventTime`, where it is a readable time and the event has no
    /// `@timestamp` of its own (Logstash's CloudTrail codec moves eventTime
    /// there: that one is kept).
    #[serde(rename = "@timestamp", skip_serializing_if = "Option::is_none")]
    timestamp: Option<&'v Value>,
    cloud: Cloud,
    event: EventFields,
    #[serde(skip_serializing_if = "Related::is_empty")]
    related: Related<'v>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'v>>,
}

#[derive(Debug, Serialize)]
struct Cloud {
    provider: &'static str,
}

#[derive(Debug, Serialize)]
struct EventFields {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    category: &'static [&'static str],
    dataset: &'static str,
    kind: &'static str,
    outcome: &'static str,
    #[serde(rename = "type")]
    types: &'static [&'static str],
}

/// `related.user`: the user names an event names, each once.
#[derive(Debug, Serialize)]
struct Related<'v> {
    user: Vec<&'v str>,
}

impl Related<'_> {
    fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}

/// `source.ip`: `sourceIPAddress` where it is one valid address (not a
/// service name, `AWS Internal`, a list, or an octet with a leading zero).
#[derive(Debug, Serialize)]
struct Source {
    ip: IpAddr,
}

#[derive(Debug, Serialize)]
struct User<'v> {
    name: &'v str,
}

impl<'v> Ecs<'v> {
    /// The copies of an event whose top-level fields `get` gives (after
    /// filtering and fitting to the template: the copies see what is
    /// indexed). `time` is `eventTime` where the transform could read it.
    pub fn derive(get: impl Fn(&str) -> Option<&'v Value>, time: Option<&'v Value>) -> Self {
        let action = get("eventName").and_then(Value::as_str);
        let (category, types) = action.and_then(categories).unwrap_or((&[], &["info"]));
        let identity = get("userIdentity");
        let member = |v: Option<&'v Value>, key: &str| v.and_then(|v| v.get(key));
        let issuer = member(member(identity, "sessionContext"), "sessionIssuer");
        let own_name = text(member(identity, "userName"));
        let request = get("requestParameters");
        let mut related = Related { user: Vec::new() };
        for name in [
            own_name,
            text(member(request, "userName")),
            text(member(request, "newUserName")),
        ]
        .into_iter()
        .flatten()
        {
            if !related.user.contains(&name) {
                related.user.push(name);
            }
        }
        Ecs {
            timestamp: time.filter(|_| get("@timestamp").is_none()),
            cloud: Cloud { provider: "aws" },
            event: EventFields {
                category,
                dataset: DATASET,
                kind: "event",
                outcome: outcome(&get, action),
                types,
            },
            related,
            source: get("sourceIPAddress")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .map(|ip| Source { ip }),
            user: own_name
                .or_else(|| text(member(issuer, "userName")))
                .map(|name| User { name }),
        }
    }
}

impl Ecs<'_> {
    /// The copies as top-level fields, for [`insert`].
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            // A struct of strings, addresses and values serialises to an object.
            _ => Map::new(),
        }
    }
}

/// Adds the copies ([`Ecs::fields`]) to an event as top-level fields. An
/// event's own field of the same name (an export's: indexing renames them
/// before, see [`crate::normalize`]) is kept as `_NAME`, as normalisation
/// would.
pub fn insert(event: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (key, value) in fields {
        if let Some(own) = event.remove(&key) {
            let mut renamed = format!("_{key}");
            while event.contains_key(&renamed) {
                renamed.push('_');
            }
            event.insert(renamed, own);
        }
        event.insert(key, value);
    }
}

/// Writes the copies as the members of a JSON object (`"cloud":{…},…`,
/// without braces), as [`insert`] would add them, for a document written as
/// text.
pub fn write_members(ecs: &Ecs, out: &mut Vec<u8>) {
    let start = out.len();
    // Serialising strings and addresses into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, ecs);
    // `{…}` → `…`: the object always has members (`cloud`, `event`).
    if out.len() >= start + 2 {
        out.pop();
        out.remove(start);
    }
}

/// A string that is not empty (Elastic's pipeline drops empty values first).
fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `event.outcome`: failure when the event has an error code or message,
/// else success; a console sign-in says which itself.
fn outcome<'v>(get: &impl Fn(&str) -> Option<&'v Value>, action: Option<&str>) -> &'static str {
    if action == Some("ConsoleLogin") {
        let said = get("responseElements")
            .and_then(|r| r.get("ConsoleLogin"))
            .and_then(Value::as_str)
            .map(str::trim);
        match said {
            Some(s) if s.eq_ignore_ascii_case("success") => return "success",
            Some(s) if s.eq_ignore_ascii_case("failure") => return "failure",
            _ => {}
        }
    }
    let present = |key: &str| match get(key) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    if present("errorCode") || present("errorMessage") {
        "failure"
    } else {
        "success"
    }
}

/// `event.category` and `event.type` of the API calls Elastic's
/// integration categorises (IAM, sign-ins, buckets); others are `info`
/// with no category.
fn categories(action: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const IAM: &[&str] = &["iam"];
    Some(match action {
        "AssumeRole" | "ConsoleLogin" => (&["authentication"], &["info"]),
        "CreateBucket" => (&["file"], &["creation"]),
        "DeleteBucket" => (&["file"], &["deletion"]),
        "CreateGroup" => (IAM, &["group", "creation"]),
        "DeleteGroup" => (IAM, &["group", "deletion"]),
        "AddUserToGroup"
        | "AttachGroupPolicy"
        | "DeleteGroupPolicy"
        | "DetachGroupPolicy"
        | "PutGroupPolicy"
        | "RemoveUserFromGroup"
        | "UpdateGroup" => (IAM, &["group", "change"]),
        "GetGroup" | "GetGroupPolicy" | "ListAttachedGroupPolicies" | "ListGroupPolicies" | "ListGroups" => {
            (IAM, &["group", "info"])
        }
        "CreateUser" => (IAM, &["user", "creation"]),
        "DeleteUser" => (IAM, &["user", "deletion"]),
        "AttachUserPolicy"
        | "ChangePassword"
        | "CreateAccessKey"
        | "CreateVirtualMFADevice"
        | "DeactivateMFADevice"
        | "DeleteAccessKey"
        | "DeleteSSHPublicKey"
        | "DeleteUserPermissionsBoundary"
        | "DeleteUserPolicy"
        | "DeleteVirtualMFADevice"
        | "DetachUserPolicy"
        | "EnableMFADevice"
        | "PutUserPermissionsBoundary"
        | "PutUserPolicy"
        | "TagUser"
        | "UntagUser"
        | "UpdateAccessKey"
        | "UpdateLoginProfile"
        | "UpdateSSHPublicKey"
        | "UpdateUser" => (IAM, &["user", "change"]),
        "GetUser"
        | "GetUserPolicy"
        | "ListAttachedUserPolicies"
        | "ListGroupsForUser"
        | "ListUserPolicies"
        | "ListUsers"
        | "ListUserTags" => (IAM, &["user", "info"]),
        "CreateKeyPair" => (IAM, &["admin", "creation"]),
        "SetDefaultPolicyVersion"
        | "SetSecurityTokenServicePreferences"
        | "UpdateAccountPasswordPolicy"
        | "UpdateRole" => (IAM, &["admin", "change"]),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ecs_of(event: Value) -> Value {
        let event = event.as_object().unwrap().clone();
        let time = event.get("eventTime");
        let ecs = Ecs::derive(|k| event.get(k), time);
        let mut out = Map::new();
        insert(&mut out, ecs.fields());
        Value::Object(out)
    }

    #[test]
    fn an_iam_user_call() {
        let got = ecs_of(json!({
            "eventTime": "2024-01-02T03:04:05Z", "eventName": "CreateUser", "sourceIPAddress": "81.2.69.142",
            "userIdentity": {"type": "IAMUser", "userName": "alice", "principalId": "AIDA1"},
            "requestParameters": {"userName": "bob"}
        }));
        assert_eq!(
            got,
            json!({
                "@timestamp": "2024-01-02T03:04:05Z",
                "cloud": {"provider": "aws"},
                "event": {"category": ["iam"], "dataset": "aws.cloudtrail", "kind": "event", "outcome": "success",
                          "type": ["user", "creation"]},
                "related": {"user": ["alice", "bob"]},
                "source": {"ip": "81.2.69.142"},
                "user": {"name": "alice"}
            })
        );
    }

    #[test]
    fn outcome_user_and_source() {
        let cases = [
            // An error code or message is a failure; an empty one is not.
            (json!({"eventName": "X", "errorCode": "AccessDenied"}), "failure"),
            (json!({"eventName": "X", "errorMessage": "no"}), "failure"),
            (json!({"eventName": "X", "errorCode": ""}), "success"),
            (json!({"eventName": "X", "errorCode": null}), "success"),
            // A sign-in says itself.
            (
                json!({"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": "Failure"}}),
                "failure",
            ),
            (
                json!({"eventName": "ConsoleLogin", "errorMessage": "x", "responseElements": {"ConsoleLogin": "Success"}}),
                "success",
            ),
        ];
        for (event, outcome) in cases {
            assert_eq!(ecs_of(event.clone())["event"]["outcome"], json!(outcome), "{event}");
        }
        // An assumed role: the role's name; the session's own name wins.
        let role = json!({"eventName": "X", "userIdentity": {"type": "AssumedRole",
            "sessionContext": {"sessionIssuer": {"userName": "deploy"}}}});
        assert_eq!(ecs_of(role.clone())["user"], json!({"name": "deploy"}));
        assert!(ecs_of(role).get("related").is_none());
        for ip in [
            "AWS Internal",
            "ec2.amazonaws.com",
            "1.2.3.4, 5.6.7.8",
            "035.1.2.3",
            "300.1.1.1",
            "",
        ] {
            assert!(
                ecs_of(json!({"eventName": "X", "sourceIPAddress": ip}))
                    .get("source")
                    .is_none(),
                "{ip}"
            );
        }
        let v6 = ecs_of(json!({"eventName": "X", "sourceIPAddress": "2001:db8::1"}));
        assert_eq!(v6["source"]["ip"], json!("2001:db8::1"));
    }

    #[test]
    fn an_own_timestamp_is_kept_and_own_fields_are_renamed() {
        let event = json!({"eventName": "X", "eventTime": "2024-01-02T03:04:05Z", "@timestamp": "then",
                           "userIdentity": {"userName": "alice"}, "user": "root", "_user": 1});
        let mut map = event.as_object().unwrap().clone();
        let copy = map.clone();
        let ecs = Ecs::derive(|k| copy.get(k), copy.get("eventTime"));
        insert(&mut map, ecs.fields());
        assert_eq!(map["@timestamp"], json!("then"));
        assert_eq!(map["user"], json!({"name": "alice"}));
        assert_eq!((&map["_user"], &map["_user_"]), (&json!(1), &json!("root")));
    }

    #[test]
    fn members_are_written_as_insert_adds_them() {
        let events = [
            json!({"eventName": "ConsoleLogin", "eventTime": "2024-01-02T03:04:05Z", "sourceIPAddress": "::1",
                   "userIdentity": {"userName": "a\"b\\c\u{1}é"}, "requestParameters": {"newUserName": "n"}}),
            json!({"eventName": 7}),
            json!({}),
        ];
        for event in events {
            let map = event.as_object().unwrap();
            let ecs = Ecs::derive(|k| map.get(k), map.get("eventTime"));
            let mut text = b"{".to_vec();
            write_members(&ecs, &mut text);
            text.push(b'}');
            let mut inserted = Map::new();
            insert(&mut inserted, ecs.fields());
            assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), Value::Object(inserted));
        }
    }
}
