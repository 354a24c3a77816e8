//! `ctindex sync`: index only what is new since the last run (the engine is
//! [`crate::sync`]), then apply `--retention`.

use std::time::Duration;

use anyhow::Result;

use crate::cli::SyncArgs;
use crate::config;
use crate::run::{self, Outcome};
use crate::sink::client::Cluster;
use crate::sink::retention;
use crate::sync::SyncSettings;

pub(crate) async fn run(args: SyncArgs) -> Result<Outcome> {
    // --from, --to, --dry-run and --list are not sync's options: clap refuses them (see cli::explain).
    let prefix = config::index_prefix(&args.import.index.index_prefix)?;
    let state_index = match args.state_file {
        Some(_) => args.state_index,
        None => config::state_index(&args.state_index, &prefix)?,
    };
    let settings = SyncSettings {
        since: args.since,
        lookback_days: args.lookback_days,
        state_file: args.state_file,
        state_index,
        lease_ttl: Duration::from_secs(args.lease_seconds),
        deferred: false,
    };
    let Some(age) = args.retention else {
        return run::index(args.import, Some(settings), None).await;
    };
    let cluster = config::cluster(&args.import.cluster, &args.import.s3.aws)?;
    let outcome = run::index(args.import, Some(settings), None).await?;
    // Retention after a run that got through (a failed run has returned above).
    let cluster = Cluster::connect(&cluster).await?;
    let pruned = retention::prune(&cluster, &prefix, age, false).await?;
    run::report_pruned(&prefix, age, &pruned, false);
    Ok(outcome)
}
