//! `ctindex setup`: install the index template and alias.

use anyhow::Result;

use crate::cli::SetupArgs;
use crate::config;
use crate::run::Outcome;
use crate::sink::client::{Cluster, Flavor};
use crate::sink::retention::{self, Policy};
use crate::sink::template;

pub(crate) async fn run(args: SetupArgs) -> Result<Outcome> {
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
    let policy = match args.retention {
        Some(age) => Some(retention::install_policy(&cluster, &prefix, age).await?),
        None => None,
    };
    let ilm = match &policy {
        Some(Policy::Ilm(name)) => Some(name.as_str()),
        _ => None,
    };
    template::install(&cluster, &prefix, args.index.replicas, ilm).await?;
    match (&policy, args.retention) {
        (Some(Policy::Ilm(name)), Some(age)) => println!(
            "installed ILM policy {name}: indices of {prefix} are deleted {} days after their creation \
             (about {age} after their month), named in the template",
            age.approx_days() + 31
        ),
        (Some(Policy::Ism(name)), Some(age)) => println!(
            "installed ISM policy {name}: indices of {prefix} are deleted {} days after their creation \
             (about {age} after their month), attached to new {prefix}-* indices",
            age.approx_days() + 31
        ),
        (Some(Policy::Unsupported(why)), Some(age)) => {
            tracing::warn!("{why}: {}", retention::unsupported_hint(&prefix, age));
        }
        _ => {}
    }
    println!(
        "installed index template {} for {prefix}-* with alias {prefix} on {} ({} {})",
        template::template_name(&prefix),
        cluster.url(),
        cluster.flavor.name(),
        cluster.version
    );
    Ok(Outcome::Clean)
}
