//! `ctindex follow`: index the objects an SQS queue's notifications name,
//! as they come, through the import's pipeline (the run is
//! [`crate::run::follow`], the queue handling [`crate::follow`]).

use anyhow::Result;

use crate::cli::FollowArgs;
use crate::run::{self, Outcome};

pub(crate) async fn run(args: FollowArgs) -> Result<Outcome> {
    run::follow(args).await
}
