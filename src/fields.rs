//! CloudTrail's top-level fields and what the index template makes of each:
//! the one table that the decoder (key spelling), the field filter (pattern
//! checks), normalisation (shapes) and the transform's fast path (which
//! fields it may copy as text) all read.
//!
//! Pure data, at the bottom of the crate: it imports nothing of it.
//! Invariant: [`class_of`] and [`TOP_LEVEL_FIELDS`] come from the same
//! listing (the `fields!` macro), so they cannot disagree.

/// What the template makes of a top-level field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    /// Free-form payloads (`requestParameters`, …): `flattened` /
    /// `flat_object`, objects or arrays of objects.
    FreeForm,
    /// Keyword, text or date fields.
    Scalar,
    /// `readOnly`, `managementEvent`.
    Boolean,
    /// Objects with typed sub-fields: `userIdentity`, `tlsDetails`.
    Structured,
    /// Another of [`TOP_LEVEL_FIELDS`].
    Known,
    /// Not a CloudTrail field.
    Unknown,
}

/// One listing, two forms: the list of names, and one `match` from name to
/// class (it runs for every field of every event, so it is a `match`, not a
/// search of the list).
macro_rules! fields {
    ($($name:literal => $class:ident,)*) => {
        /// The top-level fields of CloudTrail events, as CloudTrail spells them.
        pub const TOP_LEVEL_FIELDS: &[&str] = &[$($name),*];

        /// The class of a top-level field.
        pub fn class_of(key: &str) -> FieldClass {
            match key {
                $($name => FieldClass::$class,)*
                _ => FieldClass::Unknown,
            }
        }
    };
}

fields! {
    "eventVersion" => Scalar,
    "userIdentity" => Structured,
    "eventTime" => Scalar,
    "eventSource" => Scalar,
    "eventName" => Scalar,
    "awsRegion" => Scalar,
    "sourceIPAddress" => Scalar,
    "userAgent" => Scalar,
    "requestParameters" => FreeForm,
    "responseElements" => FreeForm,
    "additionalEventData" => FreeForm,
    "requestID" => Scalar,
    "eventID" => Scalar,
    "eventType" => Scalar,
    "apiVersion" => Scalar,
    "managementEvent" => Boolean,
    "readOnly" => Boolean,
    "resources" => FreeForm,
    "recipientAccountId" => Scalar,
    "serviceEventDetails" => FreeForm,
    "sharedEventID" => Scalar,
    "vpcEndpointId" => Scalar,
    "vpcEndpointAccountId" => Scalar,
    "eventCategory" => Scalar,
    "addendum" => FreeForm,
    "sessionCredentialFromConsole" => Scalar,
    "edgeDeviceDetails" => FreeForm,
    "tlsDetails" => Structured,
    "insightDetails" => FreeForm,
    "errorCode" => Scalar,
    "errorMessage" => Scalar,
    // Not CloudTrail's, but common (Logstash's CloudTrail codec puts
    // eventTime there) and the template maps it as a date: the ECS time.
    "@timestamp" => Scalar,
}

/// The top-level objects of the ECS fields ([`crate::ecs`]): ctindex writes
/// some of them, and the template maps all of them (as objects, some of
/// whose members are aliases of CloudTrail's fields). An event's own field
/// of one of these names is renamed (`_event`), as metadata names are.
pub const ECS_ROOTS: &[&str] = &[
    "aws",
    "cloud",
    "error",
    "event",
    "related",
    "source",
    "user",
    "user_agent",
];

/// Whether a top-level key is one of [`ECS_ROOTS`] (a `match`: it runs for
/// every top-level key of every event).
pub fn is_ecs_root(key: &str) -> bool {
    matches!(
        key,
        "aws" | "cloud" | "error" | "event" | "related" | "source" | "user" | "user_agent"
    )
}

/// Whether the template maps a top-level key (`ctindex` and the ECS
/// objects are ours).
pub fn is_known(key: &str) -> bool {
    key == "ctindex" || class_of(key) != FieldClass::Unknown || is_ecs_root(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's own lists (mappings/README.md), which the table must follow.
    const FREE_FORM: &[&str] = &[
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "serviceEventDetails",
        "insightDetails",
        "resources",
        "addendum",
        "edgeDeviceDetails",
    ];
    /// Top-level fields the template types as keyword, text or date.
    const SCALAR_FIELDS: &[&str] = &[
        "eventVersion",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "requestID",
        "eventID",
        "eventType",
        "apiVersion",
        "recipientAccountId",
        "sharedEventID",
        "vpcEndpointId",
        "vpcEndpointAccountId",
        "eventCategory",
        "sessionCredentialFromConsole",
        "errorCode",
        "errorMessage",
        "@timestamp",
    ];
    /// Top-level fields the template types as boolean.
    const BOOLEAN_FIELDS: &[&str] = &["readOnly", "managementEvent"];
    /// Top-level objects with typed sub-fields.
    const STRUCTURED_FIELDS: &[&str] = &["userIdentity", "tlsDetails"];

    #[test]
    fn ecs_roots_are_recognised() {
        for root in ECS_ROOTS {
            assert!(is_ecs_root(root) && is_known(root), "{root}");
        }
        for other in ["Event", "users", "", "eventName", "ctindex"] {
            assert!(!is_ecs_root(other), "{other}");
        }
    }

    #[test]
    fn classes_follow_the_lists() {
        for key in TOP_LEVEL_FIELDS {
            let want = if FREE_FORM.contains(key) {
                FieldClass::FreeForm
            } else if SCALAR_FIELDS.contains(key) {
                FieldClass::Scalar
            } else if BOOLEAN_FIELDS.contains(key) {
                FieldClass::Boolean
            } else if STRUCTURED_FIELDS.contains(key) {
                FieldClass::Structured
            } else {
                FieldClass::Known
            };
            assert_eq!(class_of(key), want, "{key}");
        }
        for key in FREE_FORM
            .iter()
            .chain(SCALAR_FIELDS)
            .chain(BOOLEAN_FIELDS)
            .chain(STRUCTURED_FIELDS)
        {
            assert!(TOP_LEVEL_FIELDS.contains(key), "{key}");
        }
        assert_eq!(class_of("somethingNew"), FieldClass::Unknown);
    }

    /// The template names every field of the table (and the table's classes
    /// match the template's types).
    #[test]
    fn the_template_maps_every_field() {
        for flavor in ["elasticsearch", "opensearch"] {
            let path = format!("{}/mappings/template-{flavor}.json", env!("CARGO_MANIFEST_DIR"));
            let template: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let properties = &template["template"]["mappings"]["properties"];
            for key in TOP_LEVEL_FIELDS {
                let mapping = &properties[*key];
                assert!(mapping.is_object(), "{flavor}: {key} is not in the template");
                let kind = mapping["type"].as_str();
                let free = matches!(kind, Some("flattened" | "flat_object"));
                assert_eq!(
                    free,
                    class_of(key) == FieldClass::FreeForm,
                    "{flavor}: {key} is {kind:?}"
                );
                assert_eq!(
                    kind == Some("boolean"),
                    class_of(key) == FieldClass::Boolean,
                    "{flavor}: {key} is {kind:?}"
                );
            }
        }
    }
}
