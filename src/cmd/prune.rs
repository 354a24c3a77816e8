//! `ctindex prune`: delete the prefix's monthly indices older than an age.

use anyhow::Result;

use super::Outcome;
use crate::cli::PruneArgs;
use crate::config;
use crate::sink::client::Cluster;
use crate::sink::retention::{self, Age, Pruned};
use crate::source::layout::day_text;

pub async fn run(args: PruneArgs) -> Result<Outcome> {
    let prefix = config::index_prefix(&args.index.index_prefix)?;
    let cluster = Cluster::connect(&config::cluster(&args.cluster, &args.aws)?).await?;
    let pruned = retention::prune(&cluster, &prefix, args.older_than, args.dry_run).await?;
    report(&prefix, args.older_than, &pruned, args.dry_run);
    Ok(Outcome::Clean)
}

/// Prints what was (or would be) deleted, one index a line, then a total.
pub fn report(prefix: &str, age: Age, pruned: &Pruned, dry_run: bool) {
    let verb = if dry_run { "would delete" } else { "deleted" };
    for index in &pruned.expired {
        println!("{verb} {} ({} documents)", index.name, index.docs);
    }
    let docs: u64 = pruned.expired.iter().map(|i| i.docs).sum();
    println!(
        "{}{verb} {} index(es) of {prefix} wholly older than {age} (before {}), {docs} documents; kept {}",
        if dry_run { "dry run: " } else { "" },
        pruned.expired.len(),
        day_text(pruned.cutoff),
        pruned.kept
    );
}
