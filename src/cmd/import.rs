//! `ctindex import`: read sources, index every event, print the summary.

use anyhow::{Context, Result};

use crate::cli::ImportArgs;
use crate::date::day_text;
use crate::run::{self, Outcome};
use crate::source::layout::Place;
use crate::source::{Listed, Source};

pub(crate) async fn run(args: ImportArgs) -> Result<Outcome> {
    if args.list {
        crate::config::index_prefix(&args.index.index_prefix)?;
        let (sources, _s3) = run::open_sources(&args.sources, &args.s3).await?;
        return list_plan(sources).await;
    }
    run::index(args, None, None).await
}

/// `--list`: what an import would read, per account, region and delivery
/// day (files and bytes), from the listing alone: nothing is downloaded or
/// decoded.
async fn list_plan(sources: Vec<Source>) -> Result<Outcome> {
    use std::collections::BTreeMap;

    type Key = (String, String, String);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Listed>(1024);
    let lister = tokio::spawn(async move {
        for source in &sources {
            source.list(&tx).await?;
        }
        anyhow::Ok(())
    });
    let mut rows: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    let (mut digests, mut unreadable) = (0u64, 0u64);
    while let Some(listed) = rx.recv().await {
        match listed {
            Listed::Object(object) => {
                let place = Place::of_file(&object.name);
                let key = (
                    place.account.unwrap_or("other").to_string(),
                    place.region.unwrap_or("other").to_string(),
                    place.delivery_day().map(day_text).unwrap_or_else(|| "-".into()),
                );
                let row = rows.entry(key).or_default();
                row.0 += 1;
                row.1 += object.size;
            }
            Listed::Digest(_) => digests += 1,
            Listed::Unreadable { name, reason } => {
                tracing::warn!("{name}: cannot be listed: {reason}");
                unreadable += 1;
            }
        }
    }
    lister.await.context("the listing stopped")??;
    println!(
        "{:<14} {:<16} {:<10} {:>8} {:>12}",
        "account", "region", "day", "files", "bytes"
    );
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut accounts = std::collections::BTreeSet::new();
    let mut regions = std::collections::BTreeSet::new();
    for ((account, region, day), (n, size)) in &rows {
        println!("{account:<14} {region:<16} {day:<10} {n:>8} {size:>12}");
        files += n;
        bytes += size;
        accounts.insert(account.clone());
        regions.insert(region.clone());
    }
    println!(
        "total: {files} files, {bytes} bytes, in {} account(s) and {} region(s); {digests} digest file(s) \
         and {unreadable} unreadable entries not counted; nothing was read",
        accounts.len(),
        regions.len()
    );
    Ok(Outcome::Clean)
}
