//! Commands: one file per subcommand, and the dispatch.

pub mod completions;
pub mod dashboards;
pub mod export;
pub mod follow;
pub mod import;
pub mod prune;
pub mod setup;
pub mod sync;
pub mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done (exit 0).
    Clean,
    /// Done, but some input was skipped or some events dead-lettered (exit 3).
    Partial,
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Import(args) => import::run(*args).await,
        Command::Export(args) => export::run(*args).await,
        Command::Setup(args) => setup::run(*args).await,
        Command::Prune(args) => prune::run(*args).await,
        Command::Sync(args) => sync::run(*args).await,
        Command::Follow(args) => follow::run(*args).await,
        Command::Verify(args) => verify::run(*args).await,
        Command::Dashboards(command) => dashboards::run(command).await,
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}
