//! The follow run: the import's run, with objects from an SQS queue's
//! notifications ([`crate::follow`]) instead of the sources.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::Outcome;
use crate::cli::{FollowArgs, ImportArgs};
use crate::config;
use crate::follow::{Counts, Settings};
use crate::pipeline::{Pipeline, Tracker};
use crate::progress::Stats;
use crate::source::s3::S3;
use crate::source::sqs::Queue;

/// Follows the queue through the import's run.
pub(crate) async fn follow(args: FollowArgs) -> Result<Outcome> {
    let mut import_args = args.import;
    import_args.flush_idle = Some(Duration::from_millis(args.flush_after_ms));
    let queued = Queued {
        queue_url: args.queue_url,
        max_messages: args.max_messages,
        wait_seconds: args.wait_seconds,
        visibility: args.visibility_timeout,
        until_empty: args.until_empty.map(Duration::from_secs),
        stop_after: args.max_received,
        stop_timeout: Duration::from_secs(args.stop_timeout),
        counts: Arc::default(),
    };
    super::index(import_args, None, Some(queued)).await
}

/// A follow's own settings, for the import's run to call back with its pipeline.
pub(crate) struct Queued {
    queue_url: String,
    max_messages: usize,
    wait_seconds: u32,
    visibility: Option<u32>,
    until_empty: Option<Duration>,
    stop_after: Option<u64>,
    stop_timeout: Duration,
    pub(crate) counts: Arc<Counts>,
}

impl Queued {
    /// Connects S3 and the queue, and follows it with the pipeline `make` builds.
    pub(crate) async fn run(
        self,
        args: &ImportArgs,
        make: impl FnOnce(Option<Arc<dyn Tracker>>) -> Pipeline,
        cancel: CancellationToken,
        stats: Arc<Stats>,
    ) -> Result<()> {
        let s3 = Arc::new(S3::connect(config::s3(&args.s3)?).await?);
        let queue = Queue::connect(
            &self.queue_url,
            &config::aws_options(&args.s3.aws),
            args.s3.endpoint_url.as_deref(),
        )
        .await?;
        let settings = Settings {
            queue,
            s3,
            selection: Arc::new(config::selection(&args.s3)?),
            max_messages: self.max_messages,
            wait_seconds: self.wait_seconds,
            visibility: self.visibility,
            until_empty: self.until_empty,
            stop_after: self.stop_after,
            stop_timeout: self.stop_timeout,
            status_interval: Duration::from_secs(args.report.progress_interval.max(1)),
        };
        crate::follow::follow(settings, make, cancel, stats, self.counts).await
    }
}
