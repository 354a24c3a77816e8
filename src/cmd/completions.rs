//! `ctindex completions SHELL` and the hidden `ctindex man`: shell
//! completion scripts and manual pages, generated from the command line's
//! own definition so they never drift from `--help`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{BUILD_DATE, Cli, CompletionsArgs, ManArgs};
use crate::run::Outcome;

/// Prints the completion script for the shell.
pub fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ctindex", &mut script);
    write_stdout(&script)?;
    Ok(Outcome::Clean)
}

/// Prints ctindex(1) as roff, or with `--out-dir` writes a page per command
/// (ctindex.1, ctindex-import.1, ctindex-dashboards-install.1, …).
pub fn man(args: &ManArgs) -> Result<Outcome> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = &args.out_dir else {
        write_stdout(&page(&command).context("cannot render the manual page")?)?;
        return Ok(Outcome::Clean);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = write_pages(&command, dir)?;
    tracing::info!("wrote {written} manual pages into {}", dir.display());
    Ok(Outcome::Clean)
}

/// Writes the page of `command` and of each visible subcommand; how many.
fn write_pages(command: &clap::Command, dir: &Path) -> Result<usize> {
    let mut written = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, dir)?;
    }
    let name = clap_mangen::Man::new(command.clone()).get_filename();
    let path = dir.join(name);
    let text = page(command).with_context(|| format!("cannot render {}", path.display()))?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written + 1)
}

/// One manual page: clap_mangen's sections, with the after-help text
/// (examples, exit codes) as sections of its own, kept as typed (`.nf`)
/// so examples and code tables are not filled into paragraphs.
fn page(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone())
        .date(BUILD_DATE)
        .source(concat!("ctindex ", env!("CARGO_PKG_VERSION")))
        .manual("ctindex manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = command.get_after_long_help().or(command.get_after_help()) {
        out.extend_from_slice(after_help_sections(&after.to_string()).as_bytes());
    }
    if command.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// The after-help text as roff: each paragraph whose first line is a
/// title ("Examples:", "Exit codes:") becomes a section, lines kept as they are.
fn after_help_sections(text: &str) -> String {
    let mut roff = String::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().peekable();
        let title = match lines.peek() {
            Some(first) if first.ends_with(':') && !first.starts_with(' ') => {
                let title = first.trim_end_matches(':').to_uppercase();
                lines.next();
                if title == "EXIT CODES" {
                    "EXIT STATUS".to_string()
                } else {
                    title
                }
            }
            _ => "NOTES".to_string(),
        };
        roff.push_str(&format!(".SH \"{title}\"\n.nf\n"));
        for line in lines {
            roff.push_str(&roff_line(line));
            roff.push('\n');
        }
        roff.push_str(".fi\n");
    }
    roff
}

/// A line of text escaped for roff: backslashes, hyphens (so they stay
/// hyphen-minus signs that can be copied into a shell), and a leading
/// control character.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_becomes_sections_kept_as_typed() {
        let roff = after_help_sections(
            "Examples:\n  ctindex import --url x \\\n      ./AWSLogs\n\nExit codes:\n  0  good\n.dot",
        );
        assert_eq!(
            roff,
            ".SH \"EXAMPLES\"\n.nf\n  ctindex import \\-\\-url x \\e\n      ./AWSLogs\n.fi\n\
             .SH \"EXIT STATUS\"\n.nf\n  0  good\n\\&.dot\n.fi\n"
        );
        assert!(after_help_sections("plain words").starts_with(".SH \"NOTES\"\n.nf\nplain words\n"));
    }
}
