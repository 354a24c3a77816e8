//! The index template and the alias: what `ctindex setup` installs.
//!
//! Owns turning the template data file (see `mappings/`) into the request for
//! one index prefix: index pattern `<prefix>-*`, alias `<prefix>` on every
//! index made from it, and the template name `ctindex-<prefix>`.
//!
//! Prefixes may nest (`cloudtrail` and `cloudtrail-prod`): their patterns
//! overlap, which Elasticsearch refuses at equal priority. The priority grows
//! with the prefix's length, so the more specific template wins, and two
//! templates of equal priority can never overlap (same-length prefixes that
//! both match one index name are the same prefix).

use crate::http::Method;
use anyhow::{Context, Result};
use serde_json::{Value, json};

use std::sync::Arc;

use super::client::{Cluster, Flavor};
use super::freeform;
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
    body["priority"] = json!(template_priority(prefix));
    body["template"]["aliases"] = json!({ prefix: {} });
    if let Some(n) = replicas {
        let index = &mut body["template"]["settings"]["index"];
        index["number_of_replicas"] = json!(n);
        if let Some(settings) = index.as_object_mut() {
            settings.remove("auto_expand_replicas");
        }
    }
    Ok(body)
}

/// The template's priority: above the file's base priority by the prefix's
/// length, so that nested prefixes get distinct priorities.
pub fn template_priority(prefix: &str) -> u64 {
    BASE_PRIORITY + prefix.len() as u64
}

/// Base priority: above the usual templates of other tools (Elastic's
/// built-in ones use 100 to 500 for their own patterns, which do not match
/// CloudTrail index names), below anything a user sets on purpose with 1000+.
const BASE_PRIORITY: u64 = 200;

/// Whether an index name is one of the prefix's own indices
/// (`<prefix>-YYYY.MM` or `<prefix>-undated`), not one of a longer prefix.
pub fn is_own_index(prefix: &str, index: &str) -> bool {
    let Some(rest) = index.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    if rest == crate::transform::UNDATED {
        return true;
    }
    let b = rest.as_bytes();
    b.len() == 7 && b[4] == b'.' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// Removes settings the cluster's version does not know: Elasticsearch
/// before 8.13 refuses `index.mapping.total_fields.ignore_dynamic_beyond_limit`.
pub fn fit_to_version(body: &mut Value, version: &str) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (8, 13)
        && let Some(fields) = body["template"]["settings"]["index"]["mapping"]["total_fields"].as_object_mut()
    {
        fields.remove("ignore_dynamic_beyond_limit");
    }
}

/// Installs (or replaces) the template, and puts the alias on indices of the
/// prefix that existed before the template.
///
/// `ilm_policy` names the ILM policy new indices follow (`setup
/// --retention`); without it, a policy the installed template already names
/// is kept, so that an import does not undo a retention set up before.
///
/// Where the cluster refuses the template's free-form object type
/// (`flat_object` before OpenSearch 2.7), the fallback template is installed
/// instead ([`freeform`]); the answer says which went in.
pub async fn install(
    cluster: &Cluster,
    prefix: &str,
    replicas: Option<u32>,
    ilm_policy: Option<&str>,
) -> Result<Installed> {
    let name = template_name(prefix);
    let mut body = template_body(cluster.flavor, prefix, replicas)?;
    if cluster.flavor == Flavor::Elasticsearch {
        fit_to_version(&mut body, &cluster.version);
    }
    let policy = match ilm_policy {
        Some(policy) => Some(policy.to_string()),
        None => installed_ilm_policy(cluster, &name).await,
    };
    if let Some(policy) = policy {
        body["template"]["settings"]["index"]["lifecycle"] = json!({ "name": policy });
    }
    let path = format!("/_index_template/{name}");
    let installed = match cluster.json(Method::PUT, &path, Some(&body)).await {
        Ok(_) => Installed::Full,
        Err(e) if lacks_free_form_type(&e) => {
            freeform::fallback_body(&mut body);
            cluster
                .json(Method::PUT, &path, Some(&body))
                .await
                .with_context(|| format!("cannot install the index template {name} on {}", cluster.url()))?;
            tracing::info!(
                "{} {} has no free-form object type (flat_object came in OpenSearch 2.7): payloads such as \
                 requestParameters are kept unindexed, and their text is searchable in ctindex.payload",
                cluster.flavor.name(),
                cluster.version
            );
            Installed::Fallback(Arc::new(freeform::Unindexed::from_template(&body)))
        }
        Err(e) => {
            return Err(e.context(format!("cannot install the index template {name} on {}", cluster.url())));
        }
    };
    // Indices made before the template (or by an older ctindex) get the
    // alias too, but only the prefix's own: `cloudtrail-*` also matches the
    // indices of a prefix `cloudtrail-prod`.
    let existing = cluster
        .json(
            Method::GET,
            &format!("/{prefix}-*/_alias?expand_wildcards=open,closed"),
            None,
        )
        .await
        .unwrap_or(Value::Null);
    let own: Vec<(&String, &Value)> = existing
        .as_object()
        .map(|indices| {
            indices
                .iter()
                .filter(|(index, _)| is_own_index(prefix, index))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&String> = own
        .iter()
        .filter(|(_, aliases)| aliases["aliases"].get(prefix).is_none())
        .map(|(index, _)| *index)
        .collect();
    if !missing.is_empty() {
        let actions: Vec<Value> = missing
            .iter()
            .map(|index| json!({"add": {"index": index, "alias": prefix}}))
            .collect();
        cluster
            .json(Method::POST, "/_aliases", Some(&json!({ "actions": actions })))
            .await
            .with_context(|| format!("cannot add the alias {prefix} to the existing {prefix}-* indices"))?;
    }
    // Fields the template gained since an index was made (by an older
    // ctindex, or before the template) are added to it, so that new derived
    // fields are searchable there too. A conflict only warns: the index
    // keeps working with its own mapping.
    let mappings = &body["template"]["mappings"];
    for chunk in own.chunks(50) {
        let names: Vec<&str> = chunk.iter().map(|(index, _)| index.as_str()).collect();
        let path = format!("/{}/_mapping?ignore_unavailable=true", names.join(","));
        if let Err(e) = cluster.json(Method::PUT, &path, Some(mappings)).await {
            tracing::warn!("could not bring the mapping of {} up to date: {e:#}", names.join(", "));
        }
    }
    tracing::info!(
        "index template {name} installed on {} ({} {})",
        cluster.url(),
        cluster.flavor.name(),
        cluster.version
    );
    Ok(installed)
}

/// Which template went in.
#[derive(Debug, Clone)]
pub enum Installed {
    /// The template as in `mappings/`.
    Full,
    /// The fallback for clusters without a free-form object type.
    Fallback(Arc<freeform::Unindexed>),
}

impl Installed {
    pub fn unindexed(&self) -> Option<Arc<freeform::Unindexed>> {
        match self {
            Installed::Full => None,
            Installed::Fallback(unindexed) => Some(unindexed.clone()),
        }
    }
}

/// Whether the cluster refused the template for its free-form object type
/// ("No handler for type [flat_object] declared on field …").
fn lacks_free_form_type(e: &anyhow::Error) -> bool {
    let Some(super::client::SendError::Status { status: 400, body, .. }) = e.downcast_ref() else {
        return false;
    };
    body.contains("No handler for type [flat_object]") || body.contains("No handler for type [flattened]")
}

/// Which template the cluster has for the prefix, when ctindex does not
/// install it (`--no-setup`): the fallback one is recognised by its
/// `ctindex.payload`.
pub async fn installed_kind(cluster: &Cluster, prefix: &str) -> Installed {
    let name = template_name(prefix);
    let Ok(answer) = cluster
        .send(Method::GET, &format!("/_index_template/{name}"), None)
        .await
    else {
        return Installed::Full;
    };
    let Ok(value) = serde_json::from_slice::<Value>(&answer) else {
        return Installed::Full;
    };
    let body = &value["index_templates"][0]["index_template"];
    if freeform::is_fallback(body) {
        Installed::Fallback(Arc::new(freeform::Unindexed::from_template(body)))
    } else {
        Installed::Full
    }
}

/// The ILM policy the installed template names, if any.
async fn installed_ilm_policy(cluster: &Cluster, name: &str) -> Option<String> {
    let answer = cluster
        .send(Method::GET, &format!("/_index_template/{name}"), None)
        .await
        .ok()?;
    let value: Value = serde_json::from_slice(&answer).ok()?;
    let settings = &value["index_templates"][0]["index_template"]["template"]["settings"]["index"];
    settings["lifecycle"]["name"]
        .as_str()
        .or_else(|| settings["lifecycle.name"].as_str())
        .map(String::from)
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
            assert!(
                body["template"]["settings"]["index"]
                    .get("auto_expand_replicas")
                    .is_none()
            );
            assert_eq!(body["template"]["aliases"], json!({"ct-prod": {}}));
        }
        assert_eq!(template_name("ct-prod"), "ctindex-ct-prod");
        assert!(template_priority("ct-prod-eu") > template_priority("ct-prod"));
        for (index, own) in [
            ("ct-prod-2024.01", true),
            ("ct-prod-undated", true),
            ("ct-prod-eu-2024.01", false),
            ("ct-prod-2024.1", false),
            ("ct-prod-2024-01", false),
            ("ct-prod", false),
            ("ct-prodx-2024.01", false),
        ] {
            assert_eq!(is_own_index("ct-prod", index), own, "{index}");
        }
        let mut body = json!({"template": {"settings": {"index": {"mapping": {"total_fields": {"limit": 2000, "ignore_dynamic_beyond_limit": true}}}}}});
        fit_to_version(&mut body, "8.19.2");
        assert_eq!(
            body["template"]["settings"]["index"]["mapping"]["total_fields"]["ignore_dynamic_beyond_limit"],
            json!(true)
        );
        fit_to_version(&mut body, "8.12.0");
        assert_eq!(
            body["template"]["settings"]["index"]["mapping"]["total_fields"],
            json!({"limit": 2000})
        );
    }
}
