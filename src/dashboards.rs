//! Saved objects for Kibana and OpenSearch Dashboards: the bundled
//! `dashboards/ctindex.ndjson`, adjusted to an index prefix, and checked.
//!
//! Owns parsing the NDJSON, rewriting it for a non-default `--index-prefix`
//! (index pattern title, object ids and titles) and validating it against
//! what both Kibana 8.x and OpenSearch Dashboards 2.x import. Pure: no
//! network and no files here (see [`crate::kibana`] and `cmd/dashboards.rs`).
//!
//! Invariant: [`SavedObjects::for_prefix`] returns only objects that pass
//! [`SavedObjects::validate`], so what `dashboards export` writes and what
//! `dashboards install` sends is always importable on both products.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// The index prefix the bundled file is written for (ctindex's default).
pub const DEFAULT_PREFIX: &str = "cloudtrail";

/// Every object id in the bundled file starts with this; `for_prefix`
/// replaces `cloudtrail` in it, so dashboards for several prefixes can live
/// side by side in one Kibana.
const ID_START: &str = "ctindex-cloudtrail-";

/// The newest `migrationVersion` per type that OpenSearch Dashboards 2.x
/// knows (it refuses objects from a newer version); Kibana 8.x migrates
/// objects of these versions forward on import.
pub const MAX_MIGRATION_VERSION: [(&str, &str); 4] = [
    ("index-pattern", "7.6.0"),
    ("visualization", "7.10.0"),
    ("dashboard", "7.9.3"),
    ("search", "7.9.3"),
];

/// Top-level keys of a saved object in the file. `typeMigrationVersion` and
/// `coreMigrationVersion` (Kibana 8.8+) are refused by OpenSearch Dashboards.
const OBJECT_KEYS: [&str; 5] = ["id", "type", "attributes", "references", "migrationVersion"];

/// Attributes each type may carry: what both Kibana 8.8+ (its saved-object
/// schemas refuse unknown attributes) and OpenSearch Dashboards 2.x accept.
fn allowed_attributes(kind: &str) -> &'static [&'static str] {
    match kind {
        "index-pattern" => &[
            "title",
            "timeFieldName",
            "fields",
            "fieldFormatMap",
            "sourceFilters",
            "typeMeta",
            "type",
        ],
        "visualization" => &[
            "title",
            "description",
            "version",
            "kibanaSavedObjectMeta",
            "uiStateJSON",
            "visState",
            "savedSearchRefName",
        ],
        "search" => &[
            "title",
            "description",
            "columns",
            "sort",
            "hits",
            "version",
            "kibanaSavedObjectMeta",
        ],
        "dashboard" => &[
            "title",
            "description",
            "kibanaSavedObjectMeta",
            "timeRestore",
            "timeFrom",
            "timeTo",
            "refreshInterval",
            "panelsJSON",
            "optionsJSON",
            "hits",
            "version",
        ],
        _ => &[],
    }
}

/// A problem with the saved objects.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A line is not a JSON object.
    #[error("line {line} of the saved objects is not a JSON object: {message}")]
    Syntax { line: usize, message: String },
    /// The objects parse but would not import cleanly.
    #[error("the saved objects are not importable:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// One finding of [`SavedObjects::validate`], naming the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `type:id` (or `object N` when the object has neither).
    pub object: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// The saved objects of one NDJSON file, in file order.
#[derive(Debug, Clone)]
pub struct SavedObjects {
    objects: Vec<Map<String, Value>>,
}

impl SavedObjects {
    /// Parses NDJSON: one object per non-blank line.
    pub fn parse(text: &str) -> Result<SavedObjects, DashboardError> {
        let mut objects = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(object)) => objects.push(object),
                Ok(_) => {
                    return Err(DashboardError::Syntax {
                        line: i + 1,
                        message: "not an object".into(),
                    });
                }
                Err(e) => {
                    return Err(DashboardError::Syntax {
                        line: i + 1,
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(SavedObjects { objects })
    }

    /// The bundled dashboards for an index prefix, validated.
    pub fn bundled(prefix: &str) -> Result<SavedObjects, DashboardError> {
        SavedObjects::parse(crate::assets::DASHBOARDS)?.for_prefix(prefix)
    }

    /// The objects rewritten for `prefix`: the index pattern's title becomes
    /// the alias `prefix`; for a prefix other than the default, ids become
    /// `ctindex-<prefix>-…` and titles get ` (<prefix>)`, so each prefix has
    /// its own set. The result is validated.
    pub fn for_prefix(mut self, prefix: &str) -> Result<SavedObjects, DashboardError> {
        let new_start = format!("ctindex-{prefix}-");
        let suffix = (prefix != DEFAULT_PREFIX).then(|| format!(" ({prefix})"));
        for object in &mut self.objects {
            if let Some(Value::String(id)) = object.get_mut("id") {
                rename(id, &new_start);
            }
            if let Some(Value::Array(references)) = object.get_mut("references") {
                for reference in references {
                    if let Some(Value::String(id)) = reference.get_mut("id") {
                        rename(id, &new_start);
                    }
                }
            }
            let is_index_pattern = object.get("type").and_then(Value::as_str) == Some("index-pattern");
            let Some(Value::Object(attributes)) = object.get_mut("attributes") else {
                continue;
            };
            if is_index_pattern {
                attributes.insert("title".into(), Value::String(prefix.to_string()));
                continue;
            }
            let Some(suffix) = &suffix else { continue };
            if let Some(Value::String(title)) = attributes.get_mut("title") {
                title.push_str(suffix);
            }
            // The visualization's own copy of its title.
            if let Some(Value::String(text)) = attributes.get_mut("visState")
                && let Ok(Value::Object(mut state)) = serde_json::from_str::<Value>(text)
                && let Some(Value::String(title)) = state.get_mut("title")
            {
                title.push_str(suffix);
                *text = Value::Object(state).to_string();
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks everything Kibana 8.x and OpenSearch Dashboards 2.x need to
    /// import the objects: shapes, allowed attributes, JSON held in strings,
    /// migration versions, unique ids and references that resolve.
    pub fn validate(&self) -> Result<(), DashboardError> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, object) in self.objects.iter().enumerate() {
            let name = object_name(object, i);
            let mut problem = |message: String| {
                problems.push(Problem {
                    object: name.clone(),
                    message,
                })
            };
            if !seen.insert(name.clone()) {
                problem("the type:id pair occurs more than once".into());
            }
            check_object(object, &mut problem);
        }
        // References must point at objects of the file (nothing else is imported).
        for (i, object) in self.objects.iter().enumerate() {
            for reference in object.get("references").and_then(Value::as_array).into_iter().flatten() {
                let (Some(kind), Some(id)) = (
                    reference.get("type").and_then(Value::as_str),
                    reference.get("id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if !seen.contains(&format!("{kind}:{id}")) {
                    problems.push(Problem {
                        object: object_name(object, i),
                        message: format!("references {kind}:{id}, which is not in the file"),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DashboardError::Invalid(problems))
        }
    }

    /// The objects as NDJSON, one compact object per line.
    pub fn to_ndjson(&self) -> String {
        let mut out = String::new();
        for object in &self.objects {
            out.push_str(&Value::Object(object.clone()).to_string());
            out.push('\n');
        }
        out
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// How many objects of each type, e.g. `{"dashboard": 2, …}`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for object in &self.objects {
            let kind = object.get("type").and_then(Value::as_str).unwrap_or("?");
            *counts.entry(kind.to_string()).or_default() += 1;
        }
        counts
    }

    /// "2 dashboards, 1 index-pattern, 4 searches, 15 visualizations".
    pub fn describe(&self) -> String {
        self.counts()
            .iter()
            .map(|(kind, n)| {
                let plural = match (kind.as_str(), n) {
                    (_, 1) => kind.clone(),
                    ("search", _) => "searches".into(),
                    _ => format!("{kind}s"),
                };
                format!("{n} {plural}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Titles of the dashboards, in file order.
    pub fn dashboard_titles(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) == Some("dashboard"))
            .filter_map(|o| o.get("attributes")?.get("title")?.as_str().map(String::from))
            .collect()
    }
}

fn rename(id: &mut String, new_start: &str) {
    if let Some(rest) = id.strip_prefix(ID_START) {
        *id = format!("{new_start}{rest}");
    }
}

fn object_name(object: &Map<String, Value>, index: usize) -> String {
    match (
        object.get("type").and_then(Value::as_str),
        object.get("id").and_then(Value::as_str),
    ) {
        (Some(kind), Some(id)) => format!("{kind}:{id}"),
        _ => format!("object {}", index + 1),
    }
}

/// Checks one object; reports each finding through `problem`.
fn check_object(object: &Map<String, Value>, problem: &mut dyn FnMut(String)) {
    for key in object.keys() {
        if !OBJECT_KEYS.contains(&key.as_str()) {
            problem(format!(
                "unexpected key '{key}' (allowed: {}; typeMigrationVersion and coreMigrationVersion are refused by OpenSearch Dashboards)",
                OBJECT_KEYS.join(", ")
            ));
        }
    }
    let id = object.get("id").and_then(Value::as_str).unwrap_or("");
    if id.is_empty() {
        problem("no id".into());
    } else if !id.starts_with("ctindex-") {
        problem(format!("id '{id}' does not start with ctindex-"));
    }
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(max_version) = MAX_MIGRATION_VERSION.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v) else {
        problem(format!(
            "type '{kind}' is not one of index-pattern, visualization, search, dashboard"
        ));
        return;
    };
    match object.get("migrationVersion") {
        Some(Value::Object(versions)) if !versions.is_empty() => {
            for (for_type, version) in versions {
                match version.as_str().and_then(parse_version) {
                    None => problem(format!("migrationVersion.{for_type} is not a version")),
                    Some(v) if for_type == kind && Some(v) > parse_version(max_version) => problem(format!(
                        "migrationVersion.{kind} {} is newer than {max_version}, which OpenSearch Dashboards 2.x refuses",
                        version.as_str().unwrap_or("")
                    )),
                    Some(_) if for_type != kind => problem(format!("migrationVersion names another type ({for_type})")),
                    Some(_) => {}
                }
            }
        }
        _ => problem(format!(
            "no migrationVersion (give {{\"{kind}\": \"{max_version}\"}} or older)"
        )),
    }

    let Some(Value::Object(attributes)) = object.get("attributes") else {
        problem("no attributes object".into());
        return;
    };
    let allowed = allowed_attributes(kind);
    for key in attributes.keys() {
        if !allowed.contains(&key.as_str()) {
            problem(format!(
                "attribute '{key}' is not accepted for {kind} by Kibana 8.8+ or OpenSearch Dashboards"
            ));
        }
    }
    match attributes.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() => {}
        _ => problem("attribute title must be a non-empty string".into()),
    }
    for key in ["description", "timeFrom", "timeTo", "timeFieldName"] {
        if let Some(value) = attributes.get(key)
            && !value.is_string()
        {
            problem(format!("attribute {key} must be a string"));
        }
    }
    for key in ["hits", "version"] {
        if let Some(value) = attributes.get(key)
            && !value.is_number()
        {
            problem(format!("attribute {key} must be a number"));
        }
    }
    if let Some(value) = attributes.get("timeRestore")
        && !value.is_boolean()
    {
        problem("attribute timeRestore must be true or false".into());
    }
    if let Some(refresh) = attributes.get("refreshInterval") {
        let ok = refresh.get("pause").is_some_and(Value::is_boolean)
            && refresh.get("value").is_some_and(Value::is_number)
            && refresh.as_object().is_some_and(|r| {
                r.keys()
                    .all(|k| ["pause", "value", "display", "section"].contains(&k.as_str()))
            });
        if !ok {
            problem("attribute refreshInterval must be {\"pause\": bool, \"value\": number}".into());
        }
    }

    // The JSON held in strings.
    let meta = match attributes.get("kibanaSavedObjectMeta") {
        // Kibana's dashboard schema requires the object, even without a query.
        None if kind == "search" || kind == "visualization" || kind == "dashboard" => {
            problem("no kibanaSavedObjectMeta.searchSourceJSON".into());
            None
        }
        None => None,
        Some(Value::Object(meta)) => {
            if meta.keys().any(|k| k != "searchSourceJSON") {
                problem("kibanaSavedObjectMeta may only hold searchSourceJSON".into());
            }
            json_string(
                meta.get("searchSourceJSON"),
                "kibanaSavedObjectMeta.searchSourceJSON",
                problem,
            )
        }
        Some(_) => {
            problem("kibanaSavedObjectMeta must be an object".into());
            None
        }
    };
    let mut ref_names_used = BTreeSet::new();
    if let Some(source) = &meta {
        if !source.is_object() {
            problem("searchSourceJSON must hold an object".into());
        }
        if source.get("index").is_some() {
            problem("searchSourceJSON names its index directly; use indexRefName and a reference".into());
        }
        if let Some(query) = source.get("query") {
            let ok = query.get("query").is_some_and(Value::is_string)
                && matches!(query.get("language").and_then(Value::as_str), Some("lucene" | "kuery"));
            if !ok {
                problem(
                    "searchSourceJSON.query must be {\"query\": string, \"language\": \"lucene\"|\"kuery\"}".into(),
                );
            }
        }
        if !source.get("filter").is_none_or(Value::is_array) {
            problem("searchSourceJSON.filter must be an array".into());
        }
        match source.get("indexRefName") {
            Some(Value::String(name)) => {
                ref_names_used.insert(name.clone());
            }
            Some(_) => problem("indexRefName must be a string".into()),
            None if kind == "search" || kind == "visualization" => {
                problem("searchSourceJSON has no indexRefName: the object would not find its index pattern".into())
            }
            None => {}
        }
    }
    match kind {
        "visualization" => {
            let state = json_string(attributes.get("visState"), "visState", problem);
            json_string(attributes.get("uiStateJSON"), "uiStateJSON", problem);
            if let Some(state) = state {
                check_vis_state(&state, attributes.get("title"), problem);
            }
            if let Some(name) = attributes.get("savedSearchRefName").and_then(Value::as_str) {
                ref_names_used.insert(name.to_string());
            }
        }
        "dashboard" => {
            if let Some(panels) = json_string(attributes.get("panelsJSON"), "panelsJSON", problem) {
                check_panels(&panels, &mut ref_names_used, problem);
            }
            if attributes.contains_key("optionsJSON") {
                json_string(attributes.get("optionsJSON"), "optionsJSON", problem);
            }
        }
        "search" => {
            let columns_ok = attributes
                .get("columns")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().all(Value::is_string));
            if !columns_ok {
                problem("attribute columns must be an array of field names".into());
            }
            let pair = |v: &Value| {
                v.as_array()
                    .is_some_and(|p| p.len() <= 2 && p.iter().all(Value::is_string))
            };
            let sort_ok = attributes
                .get("sort")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().all(pair) || pair(&Value::Array(s.clone())));
            if !sort_ok {
                problem("attribute sort must be [[field, direction], …]".into());
            }
        }
        "index-pattern" => {
            for key in ["fields", "fieldFormatMap", "sourceFilters", "typeMeta"] {
                if attributes.contains_key(key) {
                    json_string(attributes.get(key), key, problem);
                }
            }
            if attributes.get("timeFieldName").and_then(Value::as_str) != Some("eventTime") {
                problem("the index pattern's time field must be eventTime".into());
            }
        }
        _ => {}
    }
    check_references(object.get("references"), &ref_names_used, problem);
}

/// Parses an attribute that must be a string holding JSON.
fn json_string(value: Option<&Value>, name: &str, problem: &mut dyn FnMut(String)) -> Option<Value> {
    match value {
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                problem(format!("{name} does not hold valid JSON: {e}"));
                None
            }
        },
        Some(_) => {
            problem(format!("{name} must be a string holding JSON"));
            None
        }
        None => {
            problem(format!("no {name}"));
            None
        }
    }
}

/// Legacy visualization types that both Kibana 8.x and OpenSearch
/// Dashboards 2.x render from a visState (no Lens, TSVB or Vega here).
const VIS_TYPES: [&str; 7] = ["pie", "histogram", "horizontal_bar", "line", "area", "table", "metric"];

/// Aggregations of those visualizations that both products know by these names.
const AGG_TYPES: [&str; 11] = [
    "count",
    "cardinality",
    "max",
    "min",
    "sum",
    "avg",
    "terms",
    "date_histogram",
    "histogram",
    "range",
    "filters",
];

fn check_vis_state(state: &Value, title: Option<&Value>, problem: &mut dyn FnMut(String)) {
    if state.get("title") != title {
        problem("visState.title differs from the title attribute".into());
    }
    match state.get("type").and_then(Value::as_str) {
        Some(kind) if VIS_TYPES.contains(&kind) => {}
        Some(kind) => problem(format!(
            "visState.type '{kind}' is not one of the legacy types both products render ({})",
            VIS_TYPES.join(", ")
        )),
        None => problem("visState.type must be a string".into()),
    }
    if !state.get("params").is_some_and(Value::is_object) {
        problem("visState.params must be an object".into());
    }
    let Some(aggs) = state.get("aggs").and_then(Value::as_array) else {
        problem("visState.aggs must be an array".into());
        return;
    };
    let mut ids = BTreeSet::new();
    for agg in aggs {
        let id = agg.get("id").and_then(Value::as_str).unwrap_or("");
        if id.is_empty() || !ids.insert(id) {
            problem(format!("visState.aggs: missing or repeated agg id '{id}'"));
        }
        match agg.get("type").and_then(Value::as_str) {
            Some(kind) if AGG_TYPES.contains(&kind) => {}
            Some(kind) => problem(format!(
                "visState.aggs[{id}]: aggregation type '{kind}' is not supported here"
            )),
            None => problem(format!("visState.aggs[{id}] needs a type")),
        }
        if !agg.get("schema").is_some_and(Value::is_string) {
            problem(format!("visState.aggs[{id}] needs a schema"));
        }
        if !agg.get("params").is_some_and(Value::is_object) {
            problem(format!("visState.aggs[{id}].params must be an object"));
        }
    }
}

fn check_panels(panels: &Value, ref_names_used: &mut BTreeSet<String>, problem: &mut dyn FnMut(String)) {
    let Some(panels) = panels.as_array() else {
        problem("panelsJSON must hold an array".into());
        return;
    };
    let mut indexes = BTreeSet::new();
    for (i, panel) in panels.iter().enumerate() {
        let index = panel.get("panelIndex").and_then(Value::as_str).unwrap_or("");
        if index.is_empty() || !indexes.insert(index) {
            problem(format!("panel {i}: missing or repeated panelIndex '{index}'"));
        }
        match panel.get("panelRefName").and_then(Value::as_str) {
            Some(name) => {
                ref_names_used.insert(name.to_string());
            }
            None => problem(format!(
                "panel {i}: no panelRefName (a panel must reference its object)"
            )),
        }
        if panel.get("id").is_some() || panel.get("type").is_some() {
            problem(format!("panel {i}: names its object directly; use panelRefName"));
        }
        let grid = panel.get("gridData");
        let number = |k: &str| grid.and_then(|g| g.get(k)).and_then(Value::as_u64);
        match (number("x"), number("y"), number("w"), number("h")) {
            (Some(x), Some(_), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= 48 => {}
            _ => problem(format!("panel {i}: gridData needs x, y, w, h with x + w <= 48")),
        }
        if grid.and_then(|g| g.get("i")).and_then(Value::as_str) != Some(index) {
            problem(format!("panel {i}: gridData.i must equal panelIndex"));
        }
    }
}

/// References: well-formed, unique names, each one used and each name used
/// by the object present.
fn check_references(references: Option<&Value>, used: &BTreeSet<String>, problem: &mut dyn FnMut(String)) {
    let Some(references) = references.and_then(Value::as_array) else {
        problem("references must be an array".into());
        return;
    };
    let mut names = BTreeSet::new();
    for reference in references {
        let field = |k: &str| reference.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (Some(name), Some(_), Some(_)) = (field("name"), field("type"), field("id")) else {
            problem(format!("reference {reference} needs name, type and id"));
            continue;
        };
        if !names.insert(name.to_string()) {
            problem(format!("reference name '{name}' occurs twice"));
        }
        if !used.contains(name) {
            problem(format!("reference '{name}' is not used by the object"));
        }
    }
    for name in used {
        if !names.contains(name.as_str()) {
            problem(format!("'{name}' has no matching entry in references"));
        }
    }
}

/// "7.10.0" → (7, 10, 0).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundled() -> SavedObjects {
        SavedObjects::parse(crate::assets::DASHBOARDS).unwrap()
    }

    fn problems(objects: &SavedObjects) -> Vec<String> {
        match objects.validate() {
            Ok(()) => Vec::new(),
            Err(DashboardError::Invalid(problems)) => problems.iter().map(|p| p.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    /// The bundled file with one object changed by `edit`.
    fn edited(id_end: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> SavedObjects {
        let mut objects = bundled();
        let object = objects
            .objects
            .iter_mut()
            .find(|o| o["id"].as_str().unwrap().ends_with(id_end))
            .unwrap();
        edit(object);
        objects
    }

    #[test]
    fn the_bundled_file_is_valid() {
        let objects = bundled();
        assert_eq!(problems(&objects), Vec::<String>::new());
        let counts = objects.counts();
        assert_eq!(counts["index-pattern"], 1);
        assert_eq!(counts["dashboard"], 2);
        assert!(counts["visualization"] >= 14, "{counts:?}");
        assert!(counts["search"] >= 3, "{counts:?}");
        assert_eq!(
            objects.dashboard_titles(),
            ["[CloudTrail] Console vs automation", "[CloudTrail] Security"]
        );
        // Written as it is read: one compact object per line.
        assert_eq!(
            objects.to_ndjson().lines().count(),
            crate::assets::DASHBOARDS.lines().count()
        );
    }

    #[test]
    fn default_prefix_changes_nothing() {
        let objects = SavedObjects::bundled(DEFAULT_PREFIX).unwrap();
        let original: Vec<Value> = crate::assets::DASHBOARDS
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let adjusted: Vec<Value> = objects
            .to_ndjson()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(original, adjusted);
    }

    #[test]
    fn other_prefixes_get_their_own_ids_titles_and_alias() {
        let objects = SavedObjects::bundled("ct-prod.eu").unwrap();
        let text = objects.to_ndjson();
        assert!(!text.contains("ctindex-cloudtrail-"), "{text}");
        for object in &objects.objects {
            assert!(object["id"].as_str().unwrap().starts_with("ctindex-ct-prod.eu-"));
            let title = object["attributes"]["title"].as_str().unwrap();
            if object["type"] == "index-pattern" {
                assert_eq!(title, "ct-prod.eu");
            } else {
                assert!(title.ends_with(" (ct-prod.eu)"), "{title}");
            }
            if let Some(state) = object["attributes"]["visState"].as_str() {
                let state: Value = serde_json::from_str(state).unwrap();
                assert_eq!(state["title"].as_str(), Some(title));
            }
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = SavedObjects::parse("{\"id\":1}\n\nnot json\n").unwrap_err();
        assert!(matches!(err, DashboardError::Syntax { line: 3, .. }), "{err}");
        let err = SavedObjects::parse("[1]").unwrap_err();
        assert!(matches!(err, DashboardError::Syntax { line: 1, .. }), "{err}");
    }

    #[test]
    fn invalid_objects_are_reported_by_name() {
        let cases: Vec<(SavedObjects, &str)> = vec![
            (
                edited("channel-pie", |o| {
                    o["migrationVersion"] = json!({"visualization": "8.0.0"});
                }),
                "newer than 7.10.0",
            ),
            (
                edited("channel-pie", |o| {
                    o.insert("typeMigrationVersion".into(), json!("8.5.0"));
                }),
                "typeMigrationVersion",
            ),
            (
                edited("channel-pie", |o| {
                    o["attributes"]["visState"] = json!("{\"title\":");
                }),
                "visState does not hold valid JSON",
            ),
            (
                edited("channel-pie", |o| {
                    o["attributes"]["uiStateJSON"] = json!({});
                }),
                "uiStateJSON must be a string",
            ),
            (
                edited("channel-pie", |o| {
                    o["attributes"]["color"] = json!("red");
                }),
                "attribute 'color' is not accepted",
            ),
            (
                edited("channel-pie", |o| {
                    o["references"][0]["id"] = json!("ctindex-cloudtrail-nothing");
                }),
                "index-pattern:ctindex-cloudtrail-nothing, which is not in the file",
            ),
            (
                edited("channel-pie", |o| {
                    o["references"][0]["name"] = json!("other");
                }),
                "'kibanaSavedObjectMeta.searchSourceJSON.index' has no matching entry",
            ),
            (
                edited("dashboard-security", |o| {
                    let panels = o["attributes"]["panelsJSON"]
                        .as_str()
                        .unwrap()
                        .replace("panel_0", "panel_99");
                    o["attributes"]["panelsJSON"] = json!(panels);
                }),
                "'panel_99' has no matching entry",
            ),
            (
                edited("dashboard-security", |o| {
                    o["attributes"]["optionsJSON"] = json!("{");
                }),
                "optionsJSON does not hold valid JSON",
            ),
            (
                edited("dashboard-security", |o| {
                    o["attributes"].as_object_mut().unwrap().remove("kibanaSavedObjectMeta");
                }),
                "no kibanaSavedObjectMeta",
            ),
            (
                edited("channel-pie", |o| {
                    let state = o["attributes"]["visState"]
                        .as_str()
                        .unwrap()
                        .replace("\"pie\"", "\"lens\"");
                    o["attributes"]["visState"] = json!(state);
                }),
                "visState.type 'lens'",
            ),
            (
                edited("channel-pie", |o| {
                    let state = o["attributes"]["visState"]
                        .as_str()
                        .unwrap()
                        .replace("\"terms\"", "\"multi_terms\"");
                    o["attributes"]["visState"] = json!(state);
                }),
                "aggregation type 'multi_terms'",
            ),
            (
                edited("search-all-ports", |o| {
                    o["attributes"]["sort"] = json!("eventTime");
                }),
                "sort must be",
            ),
            (
                edited("index-pattern", |o| {
                    o["attributes"]["timeFieldName"] = json!("@timestamp");
                }),
                "time field must be eventTime",
            ),
        ];
        for (objects, needle) in cases {
            let found = problems(&objects);
            assert!(found.iter().any(|p| p.contains(needle)), "{needle}: {found:#?}");
        }
        // A repeated type:id.
        let mut objects = bundled();
        objects.objects.push(objects.objects[1].clone());
        assert!(problems(&objects).iter().any(|p| p.contains("more than once")));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("7.10.0") > parse_version("7.9.3"));
        assert_eq!(parse_version("7.9"), None);
        assert_eq!(parse_version("7.9.3.1"), None);
        assert_eq!(parse_version("x.1.2"), None);
    }
}
