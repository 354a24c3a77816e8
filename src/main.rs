//! The `ctindex` binary: logging, parsing, dispatch, exit code.

use std::process::ExitCode;

use clap::Parser as _;
use ctindex::cli::{self, Cli, LogFormat, log_filter};
use ctindex::cmd::{self, Outcome};
use ctindex::config::UsageError;
use ctindex::progress::ProgressMode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let mut cli = Cli::try_parse().unwrap_or_else(|e| cli::explain(e).exit());
    let format = cli.log_format;
    init_logging(cli.verbose, cli.quiet, format);
    // Bars would cut into the JSON lines: progress goes to the log instead.
    if format == LogFormat::Json
        && let Some(report) = cli.report_mut()
        && report.progress == ProgressMode::Auto
    {
        report.progress = ProgressMode::Log;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            fail(format, &format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(3),
        Err(e) => {
            fail(format, &format!("{e:#}"));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else if e.downcast_ref::<ctindex::source::NothingMatched>().is_some() {
                ExitCode::from(4)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The last word of a failed run: a plain line, or a JSON log line when
/// stderr is for a log collector.
fn fail(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("ctindex: error: {message}"),
        LogFormat::Json => tracing::error!("{message}"),
    }
}

/// Logs go to stderr; data and the summary to stdout. `CTINDEX_LOG`
/// (RUST_LOG syntax) replaces the filter that -q / -v choose.
fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let mut refused = None;
    let filter = match std::env::var("CTINDEX_LOG") {
        Ok(text) if !text.trim().is_empty() => EnvFilter::builder().parse(&text).unwrap_or_else(|e| {
            refused = Some(format!(
                "CTINDEX_LOG '{text}' is not a log filter ({e}); using the default"
            ));
            EnvFilter::new(log_filter(verbose, quiet))
        }),
        _ => EnvFilter::new(log_filter(verbose, quiet)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ctindex::progress::LogWriter);
    match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
    if let Some(message) = refused {
        tracing::warn!("{message}");
    }
}
