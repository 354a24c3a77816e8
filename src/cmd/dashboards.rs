//! `ctindex dashboards install|export`: the saved dashboards, into Kibana or
//! OpenSearch Dashboards through the saved objects import API, or as NDJSON.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::{DashboardsCommand, DashboardsExportArgs, DashboardsInstallArgs};
use crate::config;
use crate::dashboards::SavedObjects;
use crate::kibana::{Kibana, KibanaError, Product};
use crate::run::Outcome;

pub async fn run(command: DashboardsCommand) -> Result<Outcome> {
    match command {
        DashboardsCommand::Install(args) => install(*args).await,
        DashboardsCommand::Export(args) => export(&args),
    }
}

/// The bundled objects for the prefix the user gave.
fn saved_objects(prefix: &str) -> Result<SavedObjects> {
    let prefix = config::index_prefix(prefix)?;
    SavedObjects::bundled(&prefix)
        .context("the bundled dashboards do not validate (a bug in ctindex: please report it)")
}

fn export(args: &DashboardsExportArgs) -> Result<Outcome> {
    let objects = saved_objects(&args.index_prefix)?;
    let text = objects.to_ndjson();
    match args.out.as_deref() {
        None => print_stdout(&text)?,
        Some(path) if path == Path::new("-") => print_stdout(&text)?,
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("cannot write --out {}", path.display()))?;
            eprintln!(
                "wrote {} saved objects ({}) for the alias {} to {}",
                objects.len(),
                objects.describe(),
                args.index_prefix,
                path.display()
            );
        }
    }
    Ok(Outcome::Clean)
}

fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

async fn install(args: DashboardsInstallArgs) -> Result<Outcome> {
    if let Some(space) = &args.space {
        if args.flavor == Some(Product::OpensearchDashboards) {
            return config::usage(
                "--space is a Kibana feature; OpenSearch Dashboards has no spaces (leave --space out)",
            );
        }
        let valid = !space.is_empty()
            && space
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            return config::usage(format!(
                "--space '{space}' is not a Kibana space id (lowercase letters, digits, _ and -)"
            ));
        }
    }
    let objects = saved_objects(&args.index_prefix)?;
    let kibana = Kibana::new(&config::kibana(args.kibana_url.as_ref(), &args.auth, &args.aws)?).await?;
    let space = args.space.as_deref();
    let target = match space {
        Some(space) => format!("{} (space {space})", kibana.url()),
        None => kibana.url().to_string(),
    };

    let imported = match kibana.import(space, objects.to_ndjson()).await {
        Ok(imported) => imported,
        Err(e @ KibanaError::Connection { .. }) => {
            return Err(e).with_context(|| format!("cannot reach {target} (check --kibana-url)"));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot import the dashboards into {target}")),
    };
    let product = match (args.flavor, imported.product) {
        (Some(asked), Some(found)) if asked != found => {
            tracing::warn!(
                "--flavor {} given, but {target} answers like {}",
                asked.flag(),
                found.name()
            );
            found
        }
        (_, Some(found)) => found,
        (Some(asked), None) => asked,
        (None, None) => Product::Kibana,
    };
    let server = match (args.flavor, imported.product) {
        (None, None) => format!("Kibana or OpenSearch Dashboards at {target}"),
        _ => format!("{} at {target}", product.name()),
    };

    let answer = &imported.answer;
    for warning in &answer.warnings {
        tracing::warn!("{server}: {warning}");
    }
    if answer.success && answer.errors.is_empty() {
        let titles = objects
            .dashboard_titles()
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" and ");
        println!(
            "installed {} saved objects ({}) for the alias {} into {server}; open the dashboards {titles}",
            answer.success_count,
            objects.describe(),
            args.index_prefix,
        );
        return Ok(Outcome::Clean);
    }
    for failure in &answer.errors {
        eprintln!("ctindex: not imported: {failure}");
    }
    let summary = format!(
        "{} of {} saved objects imported into {server}, {} refused",
        answer.success_count,
        objects.len(),
        answer.errors.len()
    );
    if answer.success_count == 0 {
        bail!("{summary} (see above)");
    }
    eprintln!("ctindex: {summary}");
    Ok(Outcome::Partial)
}
