//! `ctindex export`: events as lines in files or on stdout, for log monitors
//! and archives (the run itself is [`crate::run::export`]).

use std::path::Path;

use anyhow::Result;

use crate::cli::ExportArgs;
use crate::config::usage;
use crate::run::{self, Outcome};

pub(crate) async fn run(args: ExportArgs) -> Result<Outcome> {
    let to_stdout = args.out == Path::new("-");
    if to_stdout && args.incremental {
        return usage("--incremental needs --out DIR: it appends to the files of a folder and keeps its state there");
    }
    if to_stdout && args.report.summary_json.as_deref() == Some(Path::new("-")) {
        return usage("the events go to stdout: write --summary-json to a file");
    }
    if args.incremental && (args.s3.from.is_some() || args.s3.to.is_some()) {
        return usage("--incremental chooses its own days: use --since for the first run instead of --from/--to");
    }
    run::export(args).await
}
