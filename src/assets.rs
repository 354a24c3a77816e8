//! Embedded data files: the index templates of `mappings/` and the saved
//! objects of `dashboards/`, compiled into the binary so a single file is all
//! a user needs. Edit the data files, not strings in code.

/// Index template for Elasticsearch 8.x/9.x (`flattened` free-form objects).
pub const TEMPLATE_ELASTICSEARCH: &str = include_str!("../mappings/template-elasticsearch.json");

/// Index template for OpenSearch 2.x (`flat_object` free-form objects).
pub const TEMPLATE_OPENSEARCH: &str = include_str!("../mappings/template-opensearch.json");

/// Saved objects for Kibana 8.x and OpenSearch Dashboards 2.x: the index pattern, saved searches,
/// visualizations and dashboards (checked by [`crate::dashboards`]).
pub const DASHBOARDS: &str = include_str!("../dashboards/ctindex.ndjson");

/// The sync state index (settings and mappings), both flavours.
pub const STATE_INDEX: &str = include_str!("../mappings/state-index.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses() {
        for (name, text) in [
            ("template-elasticsearch", TEMPLATE_ELASTICSEARCH),
            ("template-opensearch", TEMPLATE_OPENSEARCH),
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                value["template"]["mappings"]["properties"]["eventTime"].is_object(),
                "{name}"
            );
            assert_eq!(value["template"]["mappings"]["date_detection"], false, "{name}");
        }
    }
}
