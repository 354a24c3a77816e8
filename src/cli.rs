//! The command line: every subcommand and option, with its help text.
//!
//! Only what the user typed lives here, validated by clap; [`crate::config`]
//! turns it into ready-to-use settings. Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::progress::ProgressMode;

const EXIT_CODES: &str = "\
Exit codes:
  0  all good
  1  failure (nothing or not everything could be done; see the error)
  2  usage error (bad option or argument)
  3  finished, but some input was skipped or some events were dead-lettered,
     or stopped early by Ctrl-C / SIGTERM (what was read is settled first)
130  a second Ctrl-C: quit at once";

#[derive(Debug, Parser)]
#[command(
    name = "ctindex",
    version,
    about = "Load AWS CloudTrail logs into Elasticsearch or OpenSearch",
    long_about = "Load AWS CloudTrail logs into Elasticsearch or OpenSearch: fast bulk import of \
                  local mirrors, an index template that survives CloudTrail's schema drift, secrets \
                  filtered out, and every event classified as console, automation or AWS service.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG-style filters go in CTINDEX_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import CloudTrail log files into the cluster (one-time or repeated: ids make it idempotent).
    #[command(after_help = EXIT_CODES)]
    Import(Box<ImportArgs>),
    /// Index only what is new since the last sync (for cron, systemd timers, Kubernetes CronJobs).
    #[command(after_help = EXIT_CODES)]
    Sync(Box<SyncArgs>),
    /// Write events as lines (for log monitors and archives) instead of indexing them.
    #[command(after_help = EXIT_CODES)]
    Export(Box<ExportArgs>),
    /// Install the index template and alias (import does this too, once per run).
    #[command(after_help = EXIT_CODES)]
    Setup(Box<SetupArgs>),
    /// Delete the index prefix's monthly indices older than an age (retention), listing them first.
    #[command(after_help = EXIT_CODES)]
    Prune(Box<PruneArgs>),
    /// Install the saved dashboards into Kibana or OpenSearch Dashboards, or export them as NDJSON.
    #[command(subcommand)]
    Dashboards(DashboardsCommand),
}

/// How to reach the cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Elasticsearch or OpenSearch URL, e.g. http://127.0.0.1:9200 (user:password@ in the URL works too).
    #[arg(long, env = "CTINDEX_URL", value_name = "URL", hide_env_values = true)]
    pub url: Option<UrlArg>,

    /// Elastic Cloud deployment id (instead of --url), as the Cloud console shows it.
    #[arg(long, env = "CTINDEX_CLOUD_ID", value_name = "ID", conflicts_with = "url")]
    pub cloud_id: Option<String>,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Gzip request bodies: about a seventh of the bytes on the wire, for a
    /// cluster across a slow or metered network; costs CPU on both ends, so
    /// leave it off for a cluster on the same host or LAN.
    #[arg(long)]
    pub compress: bool,
}

/// Credentials, TLS and timeout for an HTTP server: the cluster, or Kibana /
/// OpenSearch Dashboards (`dashboards install` takes the same options).
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// User name for basic authentication.
    #[arg(long, env = "CTINDEX_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// Password for basic authentication (prefer the environment variable or --password-file).
    #[arg(long, env = "CTINDEX_PASSWORD", value_name = "PASSWORD", hide_env_values = true, value_parser = secret)]
    pub password: Option<SecretString>,

    /// Read the password from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,

    /// API key (the base64 "encoded" form that Kibana and the API return).
    #[arg(long, env = "CTINDEX_API_KEY", value_name = "KEY", hide_env_values = true, conflicts_with_all = ["user", "bearer_token"], value_parser = secret)]
    pub api_key: Option<SecretString>,

    /// Read the API key from this file (first line; e.g. a mounted Kubernetes secret).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["api_key", "user", "bearer_token"])]
    pub api_key_file: Option<PathBuf>,

    /// Read the bearer token from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["bearer_token", "user", "api_key"])]
    pub bearer_token_file: Option<PathBuf>,

    /// Authenticate with this client certificate: a PEM file holding the certificate and its private key.
    #[arg(long, env = "CTINDEX_CLIENT_CERT", value_name = "FILE", conflicts_with_all = ["user", "api_key", "bearer_token"])]
    pub client_cert: Option<PathBuf>,

    /// Bearer token (e.g. from a service account or an OIDC provider).
    #[arg(
        long,
        env = "CTINDEX_BEARER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "user",
        value_parser = secret
    )]
    pub bearer_token: Option<SecretString>,

    /// Sign every request with AWS Signature V4 (Amazon OpenSearch Service and Serverless),
    /// with the AWS credential chain (environment, --profile, SSO, IRSA, container and
    /// instance roles). Service and region are taken from *.es.amazonaws.com and
    /// *.aoss.amazonaws.com host names.
    #[arg(long, conflicts_with_all = ["user", "api_key", "api_key_file", "bearer_token", "bearer_token_file", "client_cert"])]
    pub aws_sigv4: bool,

    /// The AWS service to sign for with --aws-sigv4: es (OpenSearch Service domains) or aoss
    /// (OpenSearch Serverless collections). Default: from the host name, else es.
    #[arg(long, value_enum, value_name = "SERVICE", requires = "aws_sigv4")]
    pub aws_service: Option<crate::http::sigv4::Service>,

    /// Trust this CA certificate (PEM) besides the system roots.
    #[arg(long, env = "CTINDEX_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify the server's TLS certificate (unsafe; for test servers only).
    #[arg(long)]
    pub insecure: bool,

    /// Timeout of one request to the server, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Where documents go.
#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// Prefix of the monthly indices (<PREFIX>-YYYY.MM) and name of the alias over them.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX"
    )]
    pub index_prefix: String,

    /// Replicas per index (default: the cluster's; 0 suits single-node clusters).
    #[arg(long, env = "CTINDEX_REPLICAS", value_name = "N")]
    pub replicas: Option<u32>,
}

/// The AWS profile and region: for S3, and for signing cluster requests (--aws-sigv4).
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// AWS profile (from ~/.aws/config; SSO profiles work), for S3 and --aws-sigv4.
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// AWS region: of the bucket, and of the cluster for --aws-sigv4 when its host name does
    /// not say (default: the profile's or AWS_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// Which S3 objects to read, and how to reach S3.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// S3-compatible endpoint (MinIO, Ceph, a local test server); uses path-style addressing.
    #[arg(long, env = "CTINDEX_S3_ENDPOINT", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Only these accounts (12 digits; comma-separated or repeated), in CloudTrail's layout (S3 or local).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub accounts: Vec<String>,

    /// Only these regions (comma-separated or repeated), in CloudTrail's layout (S3 or local).
    #[arg(long, value_name = "REGION,...", value_delimiter = ',')]
    pub regions: Vec<String>,

    /// First delivery day to read (UTC, inclusive), matched against the YYYY/MM/DD folders.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::source::s3::parse_day)]
    pub from: Option<i64>,

    /// Last delivery day to read (UTC, inclusive; default: today when --from is given, else no limit).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::source::s3::parse_day)]
    pub to: Option<i64>,

    /// Files fetched at once (S3 downloads; local files are read as they are decoded).
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub downloads: u16,

    /// Bytes of S3 objects downloaded but not yet decoded, at most.
    #[arg(long, default_value = "256MB", value_name = "SIZE", value_parser = parse_size)]
    pub max_bytes_in_flight: usize,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// s3://BUCKET[/PREFIX], local folders (a mirror of the S3 layout at any depth, or any folder)
    /// or files. Folders and prefixes are searched for *.json, *.json.gz, *.ndjson and *.jsonl files;
    /// digest files are skipped.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub index: IndexArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Send a bulk request once it holds this much (e.g. 5MB, 512KiB).
    #[arg(long, default_value = "5MB", value_name = "SIZE", value_parser = parse_size)]
    pub batch_bytes: usize,

    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Files read and decoded at once (default: twice the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    /// Strings longer than this are truncated (and flagged in ctindex.truncated).
    #[arg(long, default_value = "16KiB", value_name = "SIZE", value_parser = parse_size)]
    pub max_value_bytes: usize,

    /// Read, decode, filter, classify and build the bulk requests, but send nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// List what would be read (files and bytes per account, region and day) without
    /// downloading or decoding anything.
    #[arg(long, visible_alias = "plan")]
    pub list: bool,

    /// Do not install the index template first (when it is managed elsewhere).
    #[arg(long)]
    pub no_setup: bool,

    /// Give up on a bulk request that keeps failing after this many seconds of retries.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub retry_budget: u64,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Which fields leave ctindex.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Remove fields matching this dotted path (repeatable). `*` matches one key or part of one,
    /// `**` any number of keys; arrays are crossed. Example: --drop 'requestParameters.policy*'
    #[arg(long, value_name = "PATH")]
    pub drop: Vec<String>,

    /// Keep fields matching this path even if a --drop pattern or a default drop matches them (repeatable).
    #[arg(long, value_name = "PATH")]
    pub keep: Vec<String>,

    /// Do not apply the default drops (**.accessKeyId, **.sessionToken, **.secretAccessKey).
    #[arg(long)]
    pub no_default_drops: bool,

    /// Do not mask access key ids (AKIA…/ASIA…) found inside other strings.
    #[arg(long)]
    pub no_redact: bool,
}

/// Dead letters, progress and the summary.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Events the cluster refuses, and values that are not events, are appended here.
    #[arg(long, default_value = "ctindex-dead-letters.ndjson", value_name = "FILE")]
    pub dead_letter: PathBuf,

    /// Write the summary as JSON to this file ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// How to show progress: bars on a terminal and log lines otherwise (auto), or always one way.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,

    /// Seconds between progress log lines (when not showing bars).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub progress_interval: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// s3://BUCKET[/PREFIX], local folders or files, as for import.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// lines: fixed header fields (eventTime, awsRegion, eventSource, eventName, identity,
    /// sourceIPAddress, errorCode, channel) separated by tabs, then the event as JSON;
    /// ndjson: the event as JSON.
    #[arg(long, value_enum, default_value = "lines")]
    pub format: crate::export::format::Format,

    /// A folder that gets one file per account and region (<ACCOUNT>/cloudtrail_<REGION>.log,
    /// appended to), or '-' for stdout.
    #[arg(long, default_value = "-", value_name = "DIR|-")]
    pub out: PathBuf,

    /// Read only objects not exported by an earlier --incremental run into the same folder
    /// (needs --out DIR), so the files only ever get new events.
    #[arg(long)]
    pub incremental: bool,

    /// --incremental, first run only: start at this delivery day (UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::source::s3::parse_day, requires = "incremental")]
    pub since: Option<i64>,

    /// --incremental: days before the last exported day that are listed again, for late deliveries.
    #[arg(long, default_value_t = 1, value_name = "DAYS", requires = "incremental")]
    pub lookback_days: u32,

    /// --incremental: keep the state in this file (default: DIR/.ctindex/state.json).
    #[arg(long, value_name = "FILE", requires = "incremental")]
    pub state_file: Option<PathBuf>,

    /// Memory for sorting a run's events by time; beyond it sorted runs go to disk (DIR/.ctindex or the temp folder).
    #[arg(long, default_value = "256MB", value_name = "SIZE", value_parser = parse_size)]
    pub sort_memory: usize,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Files read and decoded at once (default: twice the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub import: ImportArgs,

    /// Start at this delivery day (UTC) in account/region folders synced for the first time;
    /// the others continue where the last sync ended.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::source::s3::parse_day)]
    pub since: Option<i64>,

    /// Days before the last synced day that are listed again, for late deliveries
    /// (CloudTrail delivers up to ~15 minutes late, so files land in the previous day's folder).
    #[arg(long, default_value_t = 1, value_name = "DAYS")]
    pub lookback_days: u32,

    /// Keep sync state in this local JSON file instead of the cluster.
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// The index that holds sync state in the cluster.
    #[arg(long, default_value = "ctindex-state", value_name = "NAME")]
    pub state_index: String,

    /// How long the lease on a source lasts without renewal (renewed every quarter of it). A sync
    /// that dies on another host keeps its sources busy this long.
    #[arg(long, default_value_t = 120, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(4..=86_400))]
    pub lease_seconds: u64,

    /// After the run, delete the prefix's monthly indices whose whole month is older than this
    /// (13mo, 2y, 400d), as `ctindex prune --older-than` does.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age)]
    pub retention: Option<crate::sink::retention::Age>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete the monthly indices whose whole month is older than this: 13mo, 2y, 400d, 8w.
    /// The current month, `<PREFIX>-undated` and other prefixes' indices are never deleted.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age)]
    pub older_than: crate::sink::retention::Age,

    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub index: IndexArgs,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub index: IndexArgs,

    /// Also install a retention policy deleting indices this long after their month (13mo, 2y,
    /// 400d): ILM on Elasticsearch, ISM on OpenSearch, where the cluster has them.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age)]
    pub retention: Option<crate::sink::retention::Age>,

    /// Print the template that would be installed (for the flavour given) and exit.
    #[arg(long, value_name = "FLAVOR", value_parser = ["elasticsearch", "opensearch"])]
    pub print: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Import the dashboards, visualizations, saved searches and index pattern through the saved
    /// objects API (objects with the same ids are overwritten).
    #[command(after_help = EXIT_CODES)]
    Install(Box<DashboardsInstallArgs>),
    /// Write the saved objects as NDJSON, adjusted to the index prefix (for Stack Management › Saved objects › Import).
    #[command(after_help = EXIT_CODES)]
    Export(DashboardsExportArgs),
}

#[derive(Debug, Args)]
pub struct DashboardsInstallArgs {
    /// Kibana or OpenSearch Dashboards URL, e.g. http://127.0.0.1:5601 (with its base path, if any).
    #[arg(long, env = "CTINDEX_KIBANA_URL", value_name = "URL", hide_env_values = true)]
    pub kibana_url: Option<UrlArg>,

    /// Kibana space to install into (default: the default space). Kibana only.
    #[arg(long, value_name = "ID")]
    pub space: Option<String>,

    /// Which product serves the URL (default: either; both are sent what they need).
    #[arg(long, value_enum, value_name = "FLAVOR")]
    pub flavor: Option<crate::kibana::Product>,

    /// Index prefix the dashboards read: the index pattern is the alias <PREFIX>.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX"
    )]
    pub index_prefix: String,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct DashboardsExportArgs {
    /// Index prefix the dashboards read: the index pattern is the alias <PREFIX>.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX"
    )]
    pub index_prefix: String,

    /// Write to this file instead of stdout ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A secret typed on the command line or taken from the environment: never
/// printed, not even by `Debug`.
fn secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_string()))
}

/// A server URL as typed. It may carry `user:password@`, so its `Debug`
/// shows it without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlArg(pub String);

impl std::fmt::Debug for UrlArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::config::redact_url(&self.0))
    }
}

impl std::str::FromStr for UrlArg {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(UrlArg(text.to_string()))
    }
}

/// Parses "5MB", "512KiB", "1.5MiB", "1000" into bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 5MB or 512KiB)"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}' (use B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    let bytes = number * factor;
    if !(1.0..=4e9).contains(&bytes) {
        return Err(format!("'{text}' is out of range (1 byte to 4GB)"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("abc").is_err());
    }
}
