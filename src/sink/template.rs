//! The index template and the alias: what `ctindex setup` installs.
//!
//! Owns turning the template data file (see `mappings/`) into the request for
//! one index prefix: index pattern `<prefix>-*`, alias `<prefix>` on every
//! index made from it, and the template name `ctindex-<prefix>`.

use anyhow::{Context, Result};
use elasticsearch::http::Method;
use serde_json::{Value, json};

use super::client::{Cluster, Flavor};
use crate::assets;

/// The template's name for an index prefix.
pub fn template_name(prefix: &str) -> String {
    format!("ctindex-{prefix}")
}

/// The template body for a flavour and an index prefix, with the number of
/// replicas when one is given.
pub fn template_body(flavor: Flavor, prefix: &str, replicas: Option<u32>) -> Result<Value> {
    let text = match flavor {
        Flavor::Elasticsearch => assets::TEMPLATE_ELASTICSEARCH,
        Flavor::OpenSearch => assets::TEMPLATE_OPENSEARCH,
    };
    let mut body: Value = serde_json::from_str(text).context("the embedded index template is not valid JSON")?;
    body["index_patterns"] = json!([format!("{prefix}-*")]);
    body["template"]["aliases"] = json!({ prefix: {} });
    if let Some(n) = replicas {
        body["template"]["settings"]["index"]["number_of_replicas"] = json!(n);
    }
    Ok(body)
}

/// Installs (or replaces) the template, and puts the alias on indices of the
/// prefix that existed before the template.
pub async fn install(cluster: &Cluster, prefix: &str, replicas: Option<u32>) -> Result<()> {
    let name = template_name(prefix);
    let body = template_body(cluster.flavor, prefix, replicas)?;
    cluster
        .json(Method::Put, &format!("/_index_template/{name}"), Some(&body))
        .await
        .with_context(|| format!("cannot install the index template {name} on {}", cluster.url()))?;
    let existing = cluster
        .json(
            Method::Get,
            &format!("/{prefix}-*?filter_path=*.settings.index.provided_name&expand_wildcards=open"),
            None,
        )
        .await
        .unwrap_or(Value::Null);
    if existing.as_object().is_some_and(|m| !m.is_empty()) {
        let actions = json!({"actions": [{"add": {"index": format!("{prefix}-*"), "alias": prefix}}]});
        cluster
            .json(Method::Post, "/_aliases", Some(&actions))
            .await
            .with_context(|| format!("cannot add the alias {prefix} to the existing {prefix}-* indices"))?;
    }
    tracing::info!(
        "index template {name} installed on {} ({} {})",
        cluster.url(),
        cluster.flavor.name(),
        cluster.version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_follows_the_prefix() {
        for flavor in [Flavor::Elasticsearch, Flavor::OpenSearch] {
            let body = template_body(flavor, "ct-prod", None).unwrap();
            assert_eq!(body["index_patterns"], json!(["ct-prod-*"]));
            assert!(
                body["template"]["settings"]["index"]
                    .get("number_of_replicas")
                    .is_none()
            );
            let body = template_body(flavor, "ct-prod", Some(0)).unwrap();
            assert_eq!(body["template"]["settings"]["index"]["number_of_replicas"], json!(0));
            assert_eq!(body["template"]["aliases"], json!({"ct-prod": {}}));
        }
        assert_eq!(template_name("ct-prod"), "ctindex-ct-prod");
    }
}
