//! `ctindex verify`: checks a trail's integrity with its digest files.

use anyhow::Result;

use crate::cli::VerifyArgs;
use crate::run::{self, Outcome};

pub(crate) async fn run(args: VerifyArgs) -> Result<Outcome> {
    run::verify(args).await
}
