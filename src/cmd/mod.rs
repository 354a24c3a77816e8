//! Commands: one file per subcommand, and the dispatch.
//!
//! A command is thin: it reads its arguments, calls the library ([`crate::run`],
//! [`crate::sync`], the sink, ...) and reports. No command file imports another:
//! what two of them share lives below them.

mod completions;
mod dashboards;
mod export;
mod follow;
mod import;
mod prune;
mod setup;
mod sync;
mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};
pub use crate::run::Outcome;

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
