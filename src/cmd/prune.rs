//! `ctindex prune`: delete the prefix's monthly indices older than an age.

use anyhow::Result;

use crate::cli::PruneArgs;
use crate::config;
use crate::run::{Outcome, report_pruned};
use crate::sink::client::Cluster;
use crate::sink::retention;

pub(crate) async fn run(args: PruneArgs) -> Result<Outcome> {
    let prefix = config::index_prefix(&args.index.index_prefix)?;
    let cluster = Cluster::connect(&config::cluster(&args.cluster, &args.aws)?).await?;
    let pruned = retention::prune(&cluster, &prefix, args.older_than, args.dry_run).await?;
    report_pruned(&prefix, args.older_than, &pruned, args.dry_run);
    Ok(Outcome::Clean)
}
