//! `ctindex setup`: install the index template and alias.

use anyhow::Result;

use super::Outcome;
use crate::cli::SetupArgs;
use crate::config;
use crate::sink::client::{Cluster, Flavor};
use crate::sink::template;

pub async fn run(args: SetupArgs) -> Result<Outcome> {
    let prefix = config::index_prefix(&args.index.index_prefix)?;
    if let Some(flavor) = &args.print {
        let flavor = if flavor == "opensearch" {
            Flavor::OpenSearch
        } else {
            Flavor::Elasticsearch
        };
        let body = template::template_body(flavor, &prefix, args.index.replicas)?;
        println!("PUT _index_template/{}", template::template_name(&prefix));
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(Outcome::Clean);
    }
    let cluster = Cluster::connect(&config::cluster(&args.cluster, &args.aws)?).await?;
    template::install(&cluster, &prefix, args.index.replicas).await?;
    println!(
        "installed index template {} for {prefix}-* with alias {prefix} on {} ({} {})",
        template::template_name(&prefix),
        cluster.url(),
        cluster.flavor.name(),
        cluster.version
    );
    Ok(Outcome::Clean)
}
