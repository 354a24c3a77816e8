//! The command line: every subcommand and option, with its help text.
//!
//! Only what the user typed lives here, validated by clap; [`crate::config`]
//! turns it into ready-to-use settings. Doc comments are the `--help` text.
//!
//! Options are grouped under the headings below, and each subcommand lists
//! only the options it takes: `import` and `sync` share most of theirs
//! (`Indexing`) but `sync` has no `--from`, `--to`, `--dry-run` or
//! `--list`. The commands read plain structs ([`ImportArgs`], [`SyncArgs`],
//! [`S3Args`]) that are put together from the parts clap parses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::progress::ProgressMode;

/// Help headings, in the order they mostly appear.
const SOURCE: &str = "Source";
const SELECTION: &str = "Selection";
const S3: &str = "S3";
const CLUSTER: &str = "Cluster";
const AUTHENTICATION: &str = "Authentication";
const FIELDS: &str = "Fields";
const TUNING: &str = "Tuning";
const OUTPUT: &str = "Output";
const SYNC: &str = "Sync";
const FOLLOW: &str = "Follow";
const INCREMENTAL: &str = "Incremental";
const RETENTION: &str = "Retention";
const DASHBOARDS: &str = "Dashboards";
const LOGGING: &str = "Logging";

/// The version `--version` shows: the crate's, the commit and the build
/// date (set by build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CTINDEX_COMMIT"),
    ", built ",
    env!("CTINDEX_BUILD_DATE"),
    ")"
);

/// The build date, YYYY-MM-DD (for the man page).
pub const BUILD_DATE: &str = env!("CTINDEX_BUILD_DATE");

const ABOUT: &str = "Load AWS CloudTrail logs from S3 or local files into Elasticsearch or OpenSearch";

const LONG_ABOUT: &str = "\
Load AWS CloudTrail logs from S3 buckets or local folders into Elasticsearch or OpenSearch: fast bulk \
import, incremental sync for cron and Kubernetes, an index template that survives CloudTrail's schema \
drift, secrets filtered out, every event classified as console, automation or AWS service, and \
dashboards for Kibana and OpenSearch Dashboards.";

const TOP_AFTER_HELP: &str = "\
Start here:
  ctindex import --url http://127.0.0.1:9200 ./AWSLogs      # a local copy of the trail
  ctindex import --url http://127.0.0.1:9200 s3://my-trail-bucket
  ctindex dashboards install --kibana-url http://127.0.0.1:5601
  ctindex sync --url http://127.0.0.1:9200 s3://my-trail-bucket   # from cron: only what is new
  ctindex follow --url http://127.0.0.1:9200 --queue-url SQS_URL  # near real time, through SQS
  Each command's --help lists its options, examples and exit codes.

Exit codes:
    0  all good
    1  failure (nothing or not everything could be done; see the error)
    2  usage error (bad option or argument)
    3  finished, but some input was skipped or some events were dead-lettered,
       or stopped early by Ctrl-C / SIGTERM (what was read is settled first)
  130  a second Ctrl-C: quit at once";

const IMPORT_AFTER_HELP: &str = "\
Examples:
  # a local copy of the trail bucket (aws s3 sync) into a local cluster
  ctindex import --url http://127.0.0.1:9200 ./AWSLogs
  # one account and region, one month, straight from S3
  ctindex import --url https://es.example.com:9200 --user elastic --password-file pw.txt \\
      --accounts 123456789012 --regions eu-west-1 --from 2025-01-01 --to 2025-01-31 \\
      s3://my-trail-bucket/AWSLogs
  # what would be read, without reading it
  ctindex import --list s3://my-trail-bucket
  # read, decode and filter everything; send nothing
  ctindex import --dry-run ./AWSLogs

Exit codes:
    0  all good
    1  failure (nothing or not everything could be done; see the error)
    2  usage error (bad option or argument)
    3  finished, but some input was skipped or some events were dead-lettered,
       or stopped early by Ctrl-C / SIGTERM (what was read is settled first;
       running the same command again finishes the job)
    4  nothing matched: no file of the sources is in the selection (the error
       says what is there)
  130  a second Ctrl-C: quit at once";

const SYNC_AFTER_HELP: &str = "\
Examples:
  # every 15 minutes from cron or a Kubernetes CronJob: only what is new
  ctindex sync -q --url https://es.example.com:9200 --api-key-file /run/secrets/es-api-key \\
      s3://my-trail-bucket
  # the first run starts at a day; keep 13 months of indices
  ctindex sync --url http://127.0.0.1:9200 --since 2025-01-01 --retention 13mo s3://my-trail-bucket
  # state in a local file instead of the cluster
  ctindex sync --url http://127.0.0.1:9200 --state-file /var/lib/ctindex/state.json ./AWSLogs

Exit codes:
    0  all good, also when nothing was new
    1  failure (nothing or not everything could be done; see the error)
    2  usage error (bad option or argument)
    3  finished, but some input was skipped or some events were dead-lettered,
       or stopped early by Ctrl-C / SIGTERM (the next sync picks up the rest)
  130  a second Ctrl-C: quit at once";

const FOLLOW_AFTER_HELP: &str = "\
Examples:
  # a long-running worker (a Kubernetes Deployment: run as many replicas as needed)
  ctindex follow --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/trail-files \\
      --url https://es.example.com:9200 --api-key-file /run/secrets/es-api-key
  # index what the queue holds, then exit once it stays empty for 30 s
  ctindex follow --queue-url URL --url http://127.0.0.1:9200 --until-empty 30

A message is deleted once every event of every object it names is indexed (or
dead-lettered); one naming an object that cannot be read is left to come back,
and the queue's redrive policy (maxReceiveCount) moves it to its dead-letter
queue. SIGTERM / Ctrl-C: receiving stops, what is in flight is finished within
--stop-timeout, the rest is made visible again for another worker.

Exit codes:
    0  all good, also after SIGTERM / Ctrl-C
    1  failure (the queue or the cluster cannot be reached, or the cluster
       refuses the events; see the error)
    2  usage error (bad option or argument)
    3  stopped (--until-empty, --max-received), but some input was skipped or
       some events were dead-lettered
  130  a second Ctrl-C: quit at once (what was received comes back after its
       visibility timeout)";

const EXPORT_AFTER_HELP: &str = "\
Examples:
  # console sign-ins, one line each
  ctindex export ./AWSLogs | grep ConsoleLogin
  # one month as NDJSON
  ctindex export --format ndjson --from 2025-03-01 --to 2025-03-31 s3://my-trail-bucket > march.ndjson
  # one file per account and region, appended to by each run (for a log monitor)
  ctindex export --incremental --out /var/log/cloudtrail s3://my-trail-bucket

Exit codes:
    0  all good
    1  failure (nothing or not everything could be done; see the error)
    2  usage error (bad option or argument)
    3  finished, but some input was skipped or some values were dead-lettered,
       or stopped early by Ctrl-C / SIGTERM
    4  nothing matched: no file of the sources is in the selection (not for
       --incremental, where nothing new is no error)
  130  a second Ctrl-C: quit at once";

const SETUP_AFTER_HELP: &str = "\
Examples:
  ctindex setup --url http://127.0.0.1:9200 --replicas 0
  ctindex setup --url https://es.example.com:9200 --api-key-file key.txt --retention 13mo
  # the template as JSON, to install by hand or review
  ctindex setup --print elasticsearch > template.json

Exit codes:
    0  installed (or printed)
    1  failure (see the error)
    2  usage error (bad option or argument)";

const PRUNE_AFTER_HELP: &str = "\
Examples:
  # what would go
  ctindex prune --url http://127.0.0.1:9200 --older-than 13mo --dry-run
  ctindex prune --url http://127.0.0.1:9200 --index-prefix cloudtrail-prod --older-than 2y

Exit codes:
    0  deleted (or listed) what was older
    1  failure (see the error)
    2  usage error (bad option or argument)";

const DASHBOARDS_INSTALL_AFTER_HELP: &str = "\
Examples:
  ctindex dashboards install --kibana-url http://127.0.0.1:5601
  ctindex dashboards install --kibana-url https://kibana.example.com --user elastic --space security
  # Amazon OpenSearch Service
  ctindex dashboards install --aws-sigv4 \\
      --kibana-url https://search-ct-x1.eu-west-1.es.amazonaws.com/_dashboards

Exit codes:
    0  all saved objects installed
    1  failure: nothing installed (see the error)
    2  usage error (bad option or argument)
    3  some saved objects were installed and others refused (listed above the summary)";

const DASHBOARDS_EXPORT_AFTER_HELP: &str = "\
Examples:
  ctindex dashboards export > ctindex-dashboards.ndjson
  ctindex dashboards export --index-prefix cloudtrail-prod --out dashboards-prod.ndjson
  # then import the file in Stack Management › Saved objects › Import (Kibana)
  # or Dashboards Management › Saved objects › Import (OpenSearch Dashboards)

Exit codes:
    0  written
    1  failure (see the error)
    2  usage error (bad option or argument)";

const COMPLETIONS_AFTER_HELP: &str = "\
Examples:
  ctindex completions bash > /etc/bash_completion.d/ctindex
  ctindex completions zsh > \"${fpath[1]}/_ctindex\"
  ctindex completions fish > ~/.config/fish/completions/ctindex.fish
  ctindex completions powershell >> $PROFILE";

const SOURCES_HELP: &str = "s3://BUCKET[/PREFIX], local folders or files";

const SOURCES_LONG_HELP: &str = "\
s3://BUCKET[/PREFIX], local folders (a mirror of the S3 layout at any depth, or any folder) or files. \
Folders and prefixes are searched for *.json, *.json.gz, *.ndjson and *.jsonl files; digest files are \
skipped.";

const VERIFY_AFTER_HELP: &str = "\
Checks what CloudTrail's log file integrity validation proves: each digest file's signature
(SHA256withRSA, with CloudTrail's public key for its region), the chain of digests (each names
the one before it, so none is missing or changed), and each log file a digest lists (present,
and the SHA-256 of its uncompressed content as listed); log files that no digest lists are
reported too. Give the trail's root (the bucket, or a folder or prefix above AWSLogs/ or an
account folder) so that both CloudTrail/ and CloudTrail-Digest/ are read.

From S3 the signature is the digest object's metadata (x-amz-meta-signature). In a local copy
it is lost; each digest's signature is then read from the next digest, which records it, so
only the newest digest of each chain cannot be checked (a note says so).

Public keys come from CloudTrail's ListPublicKeys API (IAM permission cloudtrail:ListPublicKeys,
the same credentials as S3), or offline from --public-keys FILE:
  aws cloudtrail list-public-keys --start-time 2025-01-01 --end-time 2025-02-01 > keys.json

Examples:
  ctindex verify --from 2025-01-01 --to 2025-01-31 s3://my-trail-bucket
  ctindex verify --public-keys keys.json --json ./mirror > report.json

Exit codes:
    0  valid: every digest and log file checked is intact
    1  could not check (no public keys, S3 unreachable; see the error)
    2  usage error (bad option or argument)
    3  problems found: each is printed with its file (changed, missing or
       uncovered log files; missing, changed or badly signed digests)
    4  nothing matched: no file of the sources is in the selection";

/// What `verify` reads.
#[derive(Debug)]
pub struct VerifyArgs {
    pub sources: Vec<String>,
    pub s3: S3Args,
    pub public_keys: Option<PathBuf>,
    pub cloudtrail_endpoint_url: Option<String>,
    pub json: bool,
    pub workers: Option<u16>,
}

impl VerifyArgs {
    /// The AWS profile and region (for the ListPublicKeys API).
    pub fn s3_aws(&self) -> crate::aws::AwsOptions {
        crate::aws::AwsOptions {
            profile: self.s3.aws.profile.clone(),
            region: self.s3.aws.region.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct VerifyParts {
    /// s3://BUCKET[/PREFIX] or a local copy of it: the trail's root, above AWSLogs/ or an account.
    #[arg(required = true, value_name = "SOURCE", help_heading = SOURCE)]
    sources: Vec<String>,

    #[command(flatten)]
    scope: Scope,

    #[command(flatten)]
    days: Days,

    #[command(flatten)]
    access: S3Access,

    /// CloudTrail's public keys as `aws cloudtrail list-public-keys` prints them (JSON), instead
    /// of asking CloudTrail's ListPublicKeys API.
    #[arg(long, value_name = "FILE", help_heading = SOURCE)]
    public_keys: Option<PathBuf>,

    /// Where to ask CloudTrail's ListPublicKeys API (a VPC or FIPS endpoint; default:
    /// https://cloudtrail.REGION.amazonaws.com for each region).
    #[arg(long, value_name = "URL", conflicts_with = "public_keys", help_heading = S3)]
    cloudtrail_endpoint_url: Option<String>,

    /// Print the report as JSON (counts, chains, problems, notes) instead of text.
    #[arg(long, help_heading = OUTPUT)]
    json: bool,

    #[command(flatten)]
    fetch: Fetch,

    /// Files read and hashed at once (default: twice the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = TUNING)]
    workers: Option<u16>,
}

impl From<VerifyParts> for VerifyArgs {
    fn from(parts: VerifyParts) -> VerifyArgs {
        VerifyArgs {
            sources: parts.sources,
            s3: S3Args::new(parts.scope, Some(parts.days), parts.access, parts.fetch),
            public_keys: parts.public_keys,
            cloudtrail_endpoint_url: parts.cloudtrail_endpoint_url,
            json: parts.json,
            workers: parts.workers,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ctindex",
    version = VERSION,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = TOP_AFTER_HELP
)]
pub struct Cli {
    /// More log output (-v debug, also other libraries' warnings; -vv trace). RUST_LOG-style
    /// filters go in CTINDEX_LOG, which overrides -v and -q.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = LOGGING)]
    pub verbose: u8,

    /// Only warnings and errors (other libraries': errors only).
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = LOGGING)]
    pub quiet: bool,

    /// How log lines look on stderr: text for people, json (one JSON object per line) for log
    /// collectors (Kubernetes, journald, cron mail filters). With json, progress bars give way to
    /// progress log lines.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CTINDEX_LOG_FORMAT",
        value_name = "FORMAT",
        help_heading = LOGGING
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The dead-letter, progress and summary options of the command, if it has them.
    pub fn report_mut(&mut self) -> Option<&mut ReportArgs> {
        match &mut self.command {
            Command::Import(args) => Some(&mut args.report),
            Command::Sync(args) => Some(&mut args.import.report),
            Command::Follow(args) => Some(&mut args.import.report),
            Command::Export(args) => Some(&mut args.report),
            _ => None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, message, target and fields.
    Json,
}

/// The default log filter (`CTINDEX_LOG` replaces it): ctindex's own
/// messages at the level -q / -v ask for; other crates' (the AWS SDK's
/// credential and IMDS chatter, HTTP clients) only as errors unless -v
/// (warnings) or -vv (everything).
pub fn log_filter(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        // Per-file warnings (`ctindex::input`: events without an id or a
        // time...) are counted in the summary: -q leaves them to it.
        (true, _) => "error,ctindex=warn,ctindex::input=error",
        (false, 0) => "error,ctindex=info",
        (false, 1) => "warn,ctindex=debug",
        (false, _) => "trace",
    }
}

/// Adds advice to clap's refusal of an option that another subcommand takes
/// (`sync --from`): what to use instead. Other errors pass unchanged.
pub fn explain(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let option = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split('=').next().unwrap_or_default().to_string(),
        _ => return error,
    };
    let usage = match error.get(ContextKind::Usage) {
        Some(usage) => usage.to_string(),
        None => return error,
    };
    let advice = match (option.as_str(), usage.contains("ctindex sync ")) {
        ("--from" | "--to", true) => {
            "sync chooses its own days: use --since for the first run (import takes --from/--to)"
        }
        ("--dry-run", true) => {
            "sync cannot --dry-run (it would record files as done that were never sent); use import --dry-run"
        }
        ("--list" | "--plan", true) => "use import --list to see what would be read",
        _ => return error,
    };
    // Replaces clap's tip about passing the option as a value.
    error.insert(ContextKind::Suggested, ContextValue::StyledStrs(vec![advice.into()]));
    error
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import CloudTrail log files into the cluster (one-time or repeated: ids make it idempotent).
    #[command(after_help = IMPORT_AFTER_HELP)]
    Import(Box<ImportArgs>),
    /// Index only what is new since the last sync (for cron, systemd timers, Kubernetes CronJobs).
    #[command(after_help = SYNC_AFTER_HELP)]
    Sync(Box<SyncArgs>),
    /// Index new log files as they are announced on an SQS queue (S3 event notifications, SNS,
    /// CloudTrail's notifications, EventBridge); any number of followers can share a queue.
    #[command(after_help = FOLLOW_AFTER_HELP)]
    Follow(Box<FollowArgs>),
    /// Write events as lines (for log monitors and archives) instead of indexing them.
    #[command(
        after_help = EXPORT_AFTER_HELP,
        mut_arg("dead_letter", |arg| arg.help(
            "Values that are not CloudTrail events, and lines that are not valid JSON, are appended here \
             (default: dead-letters-export.ndjson in $XDG_STATE_HOME/ctindex, else ~/.local/state/ctindex, \
             else the temp folder)"
        ))
    )]
    Export(Box<ExportArgs>),
    /// Check the trail's integrity with CloudTrail's digest files: signatures, the chain, each log file's hash.
    #[command(after_help = VERIFY_AFTER_HELP)]
    Verify(Box<VerifyArgs>),
    /// Install the index template and alias (import does this too, once per run).
    #[command(after_help = SETUP_AFTER_HELP)]
    Setup(Box<SetupArgs>),
    /// Delete the index prefix's monthly indices older than an age (retention), listing them first.
    #[command(after_help = PRUNE_AFTER_HELP)]
    Prune(Box<PruneArgs>),
    /// Install the saved dashboards into Kibana or OpenSearch Dashboards, or export them as NDJSON.
    #[command(subcommand)]
    Dashboards(DashboardsCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) to stdout.
    #[command(after_help = COMPLETIONS_AFTER_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout, or write one page per command into a folder.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ctindex.1 and a page per subcommand (ctindex-import.1, …) into this folder
    /// instead of printing ctindex.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// How to reach the cluster.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = CLUSTER)]
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
    #[arg(long, help_heading = CLUSTER)]
    pub compress: bool,
}

/// Credentials, TLS and timeout for an HTTP server: the cluster, or Kibana /
/// OpenSearch Dashboards (`dashboards install` takes the same options).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = AUTHENTICATION)]
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
#[command(next_help_heading = CLUSTER)]
pub struct IndexArgs {
    /// Prefix of the monthly indices (<PREFIX>-YYYY.MM) and name of the alias over them.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX"
    )]
    pub index_prefix: String,

    /// Replicas per index (default: the template's auto_expand_replicas 0-1: none on a
    /// single-node cluster, one on larger clusters).
    #[arg(long, env = "CTINDEX_REPLICAS", value_name = "N")]
    pub replicas: Option<u32>,
}

/// The AWS profile and region: for S3, and for signing cluster requests
/// (--aws-sigv4). Their heading is set where they are used.
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

/// Which S3 objects (or local files in CloudTrail's layout) to read, and how
/// to reach S3: what [`crate::config::selection`] and [`crate::config::s3`]
/// read. Parsed from `Scope`, `Days` (not for sync), `S3Access` and
/// `Fetch`, which sit under their own headings.
#[derive(Debug, Clone)]
pub struct S3Args {
    pub aws: AwsArgs,
    pub endpoint_url: Option<String>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub downloads: u16,
    pub max_bytes_in_flight: usize,
}

impl S3Args {
    fn new(scope: Scope, days: Option<Days>, access: S3Access, fetch: Fetch) -> S3Args {
        let days = days.unwrap_or(Days { from: None, to: None });
        S3Args {
            aws: access.aws,
            endpoint_url: access.endpoint_url,
            accounts: scope.accounts,
            regions: scope.regions,
            from: days.from,
            to: days.to,
            downloads: fetch.downloads,
            max_bytes_in_flight: fetch.max_bytes_in_flight,
        }
    }
}

/// Which accounts and regions to read.
#[derive(Debug, Args)]
#[command(next_help_heading = SELECTION)]
struct Scope {
    /// Only these accounts (12 digits; comma-separated or repeated), in CloudTrail's layout (S3 or local).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    accounts: Vec<String>,

    /// Only these regions (comma-separated or repeated), in CloudTrail's layout (S3 or local).
    #[arg(long, value_name = "REGION,...", value_delimiter = ',')]
    regions: Vec<String>,
}

/// Which delivery days to read.
#[derive(Debug, Args)]
#[command(next_help_heading = SELECTION)]
struct Days {
    /// First delivery day to read (UTC, inclusive), matched against the YYYY/MM/DD folders.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::date::parse_day)]
    from: Option<i64>,

    /// Last delivery day to read (UTC, inclusive; default: today when --from is given, else no limit).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::date::parse_day)]
    to: Option<i64>,
}

/// How to reach S3.
#[derive(Debug, Args)]
#[command(next_help_heading = S3)]
struct S3Access {
    #[command(flatten)]
    aws: AwsArgs,

    /// S3-compatible endpoint (MinIO, Ceph, a local test server); uses path-style addressing.
    /// `follow` sends its SQS requests there too.
    #[arg(long, env = "CTINDEX_S3_ENDPOINT", value_name = "URL")]
    endpoint_url: Option<String>,
}

/// S3 downloads in flight by default: real trails are millions of objects
/// of a few KB, so a run is bounded by GETs per second, each waiting for
/// S3's latency and the server's own time. Measured at 30 ms added per
/// request (docs/benchmark.md, the s3 section): 32 gave 425 objects/s, 128
/// 1,740, 256 2,880, 512 2,930 (there the two cores were the limit).
pub const DOWNLOADS: u16 = 256;

/// How much to fetch at once.
#[derive(Debug, Args)]
#[command(next_help_heading = TUNING)]
struct Fetch {
    /// Files fetched at once (S3 downloads; local files are read as they are decoded). Each
    /// GET waits for S3's latency (10-50 ms), so objects/s is about N divided by it.
    #[arg(long, default_value_t = DOWNLOADS, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    downloads: u16,

    /// Bytes of S3 objects downloaded but not yet decoded, at most.
    #[arg(long, default_value = "128MB", value_name = "SIZE", value_parser = parse_size)]
    max_bytes_in_flight: usize,
}

/// Gives a plain struct clap's `Args` through a derived one and `From`: the
/// commands read one struct while each subcommand's command line lists only
/// the options it takes.
macro_rules! args_through {
    ($plain:ty, $parsed:ty) => {
        impl clap::FromArgMatches for $plain {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                <$parsed as clap::FromArgMatches>::from_arg_matches(matches).map(<$plain>::from)
            }

            fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = <Self as clap::FromArgMatches>::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl clap::Args for $plain {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                <$parsed as clap::Args>::augment_args(cmd)
            }

            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                <$parsed as clap::Args>::augment_args_for_update(cmd)
            }
        }
    };
}

/// What `import` reads. `sync` builds one too, without days, --dry-run or --list.
#[derive(Debug)]
pub struct ImportArgs {
    pub sources: Vec<String>,
    pub s3: S3Args,
    pub cluster: ClusterArgs,
    pub index: IndexArgs,
    pub filter: FilterArgs,
    pub batch_bytes: usize,
    pub concurrency: u16,
    pub workers: Option<u16>,
    pub max_value_bytes: usize,
    pub dry_run: bool,
    /// `--print-documents` (hidden, with --dry-run): each document as it would be sent.
    pub print_documents: bool,
    pub list: bool,
    pub no_setup: bool,
    pub retry_budget: u64,
    pub report: ReportArgs,
    /// `--shard I/N` (or `--shards N` with JOB_COMPLETION_INDEX): read only this share.
    pub shard: Option<crate::source::shard::Shard>,
    /// `--shards N`: the share is JOB_COMPLETION_INDEX's, resolved when the run starts.
    pub shards: Option<u32>,
    /// `follow`: send a batch that is not full after this long without more input.
    pub flush_idle: Option<std::time::Duration>,
    /// `--verify`: check the trail's digests and stamp `ctindex.integrity`.
    pub verify: VerifyingArgs,
}

/// `import --verify` and `sync --verify`.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyingArgs {
    /// Check the trail's digest files (as `ctindex verify` does) and stamp each event
    /// ctindex.integrity: verified (its file matches a validly signed digest), unverified (no
    /// valid digest covers its file yet) or failed (its file does not match its digest). Give
    /// the trail's root as the source, so that CloudTrail-Digest/ is read too.
    #[arg(long = "verify", help_heading = SELECTION)]
    pub enabled: bool,

    /// With --verify: CloudTrail's public keys as `aws cloudtrail list-public-keys` prints them
    /// (JSON), instead of asking CloudTrail's ListPublicKeys API.
    #[arg(long, value_name = "FILE", requires = "enabled", help_heading = SELECTION)]
    pub public_keys: Option<PathBuf>,

    /// With --verify: where to ask CloudTrail's ListPublicKeys API.
    #[arg(long, value_name = "URL", requires = "enabled", conflicts_with = "public_keys", help_heading = SELECTION)]
    pub cloudtrail_endpoint_url: Option<String>,
}

/// The SOURCE arguments of `import` and `sync`.
#[derive(Debug, Args)]
struct Sources {
    #[arg(
        required = true,
        value_name = "SOURCE",
        help = SOURCES_HELP,
        long_help = SOURCES_LONG_HELP,
        help_heading = SOURCE
    )]
    sources: Vec<String>,
}

/// The options `import`, `sync` and `follow` share (all but the sources).
#[derive(Debug, Args)]
struct Indexing {
    #[command(flatten)]
    scope: Scope,

    #[command(flatten)]
    access: S3Access,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    index: IndexArgs,

    /// Do not install the index template first (when it is managed elsewhere).
    #[arg(long, help_heading = CLUSTER)]
    no_setup: bool,

    #[command(flatten)]
    filter: FilterArgs,

    /// Strings longer than this are truncated (and flagged in ctindex.truncated).
    #[arg(long, default_value = "16KiB", value_name = "SIZE", value_parser = parse_size, help_heading = FIELDS)]
    max_value_bytes: usize,

    #[command(flatten)]
    fetch: Fetch,

    /// Send a bulk request once it holds this much (e.g. 5MB, 512KiB).
    #[arg(long, default_value = "5MB", value_name = "SIZE", value_parser = parse_size, help_heading = TUNING)]
    batch_bytes: usize,

    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = TUNING)]
    concurrency: u16,

    /// Files read and decoded at once (default: twice the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = TUNING)]
    workers: Option<u16>,

    /// Give up on a bulk request that keeps failing after this many seconds of retries.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", help_heading = TUNING)]
    retry_budget: u64,

    #[command(flatten)]
    report: ReportArgs,
}

impl Indexing {
    fn into_import(self, sources: Vec<String>, days: Option<Days>, dry_run: bool, list: bool) -> ImportArgs {
        ImportArgs {
            sources,
            s3: S3Args::new(self.scope, days, self.access, self.fetch),
            cluster: self.cluster,
            index: self.index,
            filter: self.filter,
            batch_bytes: self.batch_bytes,
            concurrency: self.concurrency,
            workers: self.workers,
            max_value_bytes: self.max_value_bytes,
            dry_run,
            print_documents: false,
            list,
            no_setup: self.no_setup,
            retry_budget: self.retry_budget,
            report: self.report,
            shard: None,
            shards: None,
            flush_idle: None,
            verify: VerifyingArgs::default(),
        }
    }
}

#[derive(Debug, Args)]
struct ImportParts {
    #[command(flatten)]
    sources: Sources,

    #[command(flatten)]
    indexing: Indexing,

    #[command(flatten)]
    days: Days,

    /// Read, decode, filter, classify and build the bulk requests, but send nothing.
    #[arg(long, help_heading = OUTPUT)]
    dry_run: bool,

    /// List what would be read (files and bytes per account, region and day) without decoding
    /// anything.
    #[arg(long, visible_alias = "plan", conflicts_with = "dry_run", help_heading = OUTPUT)]
    list: bool,

    /// Read only share I of N (0 <= I < N) of the selected objects, chosen by a hash of each
    /// object's key: N processes given 0/N .. N-1/N import the whole selection, no object twice.
    #[arg(long, value_name = "I/N", value_parser = crate::source::shard::Shard::parse, conflicts_with = "shards", help_heading = SELECTION)]
    shard: Option<crate::source::shard::Shard>,

    /// Read the share of N that JOB_COMPLETION_INDEX names (a Kubernetes Indexed Job with
    /// completions: N), as --shard $JOB_COMPLETION_INDEX/N does.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536), help_heading = SELECTION)]
    shards: Option<u32>,

    /// For scripts/mapping-check.py (hidden): with --dry-run, print each document as it would be
    /// sent, one JSON object a line: {"action": the bulk action, "document": …, "quarantined": the
    /// second try after a parse refusal, or null}.
    #[arg(long, hide = true, requires = "dry_run")]
    print_documents: bool,

    #[command(flatten)]
    verify: VerifyingArgs,
}

/// `--shards N`: the share JOB_COMPLETION_INDEX names.
pub fn shard_from_job(count: u32, index: Option<&str>) -> Result<crate::source::shard::Shard, String> {
    let index = index.ok_or_else(|| {
        "--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job); elsewhere use --shard I/N".to_string()
    })?;
    let index: u32 = index
        .trim()
        .parse()
        .map_err(|_| format!("JOB_COMPLETION_INDEX '{index}' is not a number"))?;
    crate::source::shard::Shard::new(index, count)
}

impl From<ImportParts> for ImportArgs {
    fn from(parts: ImportParts) -> ImportArgs {
        let mut args = parts
            .indexing
            .into_import(parts.sources.sources, Some(parts.days), parts.dry_run, parts.list);
        args.shard = parts.shard;
        args.shards = parts.shards;
        args.print_documents = parts.print_documents;
        args.verify = parts.verify;
        args
    }
}

args_through!(ImportArgs, ImportParts);

/// Which fields leave ctindex.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = FIELDS)]
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

    /// Do not add the ECS fields (@timestamp, event.kind/category/type/outcome/dataset,
    /// cloud.provider, user.name, related.user, source.ip) beside CloudTrail's own. The template's
    /// ECS aliases (event.action, user.id, …) stay: they cost nothing per event.
    #[arg(long)]
    pub no_ecs: bool,
}

/// Dead letters, progress and the summary.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = OUTPUT)]
pub struct ReportArgs {
    /// Events the cluster refuses, and values that are not events, are appended here (default:
    /// dead-letters-PREFIX.ndjson beside --state-file, else in $XDG_STATE_HOME/ctindex, else
    /// ~/.local/state/ctindex, else the temp folder; the summary prints its absolute path).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,

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

/// What `export` reads.
#[derive(Debug)]
pub struct ExportArgs {
    pub sources: Vec<String>,
    pub format: crate::export::format::Format,
    pub out: PathBuf,
    pub incremental: bool,
    pub since: Option<i64>,
    pub lookback_days: u32,
    pub state_file: Option<PathBuf>,
    pub sort_memory: usize,
    pub s3: S3Args,
    pub filter: FilterArgs,
    pub workers: Option<u16>,
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
struct ExportParts {
    /// s3://BUCKET[/PREFIX], local folders or files, as for import.
    #[arg(required = true, value_name = "SOURCE", help_heading = SOURCE)]
    sources: Vec<String>,

    #[command(flatten)]
    scope: Scope,

    #[command(flatten)]
    days: Days,

    #[command(flatten)]
    access: S3Access,

    #[command(flatten)]
    filter: FilterArgs,

    /// lines: fixed header fields (eventTime, awsRegion, eventSource, eventName, identity,
    /// sourceIPAddress, errorCode, channel) separated by tabs, then the event as JSON;
    /// ndjson: the event as JSON.
    #[arg(long, value_enum, default_value = "lines", help_heading = OUTPUT)]
    format: crate::export::format::Format,

    /// A folder that gets one file per account and region (<ACCOUNT>/cloudtrail_<REGION>.log,
    /// appended to), or '-' for stdout.
    #[arg(long, default_value = "-", value_name = "DIR|-", help_heading = OUTPUT)]
    out: PathBuf,

    #[command(flatten)]
    report: ReportArgs,

    /// Read only objects not exported by an earlier --incremental run into the same folder
    /// (needs --out DIR), so the files only ever get new events.
    #[arg(long, help_heading = INCREMENTAL)]
    incremental: bool,

    /// --incremental, first run only: start at this delivery day (UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::date::parse_day, requires = "incremental", help_heading = INCREMENTAL)]
    since: Option<i64>,

    /// --incremental: days before the last exported day that are listed again, for late deliveries.
    #[arg(long, default_value_t = 1, value_name = "DAYS", requires = "incremental", help_heading = INCREMENTAL)]
    lookback_days: u32,

    /// --incremental: keep the state in this file (default: DIR/.ctindex/state.json).
    #[arg(long, value_name = "FILE", requires = "incremental", help_heading = INCREMENTAL)]
    state_file: Option<PathBuf>,

    #[command(flatten)]
    fetch: Fetch,

    /// Files read and decoded at once (default: twice the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = TUNING)]
    workers: Option<u16>,

    /// Memory for sorting a run's events by time; beyond it sorted runs go to disk (DIR/.ctindex or the temp folder).
    #[arg(long, default_value = "256MB", value_name = "SIZE", value_parser = parse_size, help_heading = TUNING)]
    sort_memory: usize,
}

impl From<ExportParts> for ExportArgs {
    fn from(parts: ExportParts) -> ExportArgs {
        ExportArgs {
            sources: parts.sources,
            format: parts.format,
            out: parts.out,
            incremental: parts.incremental,
            since: parts.since,
            lookback_days: parts.lookback_days,
            state_file: parts.state_file,
            sort_memory: parts.sort_memory,
            s3: S3Args::new(parts.scope, Some(parts.days), parts.access, parts.fetch),
            filter: parts.filter,
            workers: parts.workers,
            report: parts.report,
        }
    }
}

args_through!(ExportArgs, ExportParts);
args_through!(VerifyArgs, VerifyParts);

/// What `sync` reads: an import (without days, --dry-run or --list, which
/// sync does not take) and the sync's own options.
#[derive(Debug)]
pub struct SyncArgs {
    pub import: ImportArgs,
    pub since: Option<i64>,
    pub lookback_days: u32,
    pub state_file: Option<PathBuf>,
    pub state_index: String,
    pub lease_seconds: u64,
    pub retention: Option<crate::sink::retention::Age>,
}

#[derive(Debug, Args)]
struct SyncParts {
    #[command(flatten)]
    sources: Sources,

    #[command(flatten)]
    indexing: Indexing,

    #[command(flatten)]
    verify: VerifyingArgs,

    /// Start at this delivery day (UTC) in account/region folders synced for the first time;
    /// the others continue where the last sync ended.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::date::parse_day, help_heading = SYNC)]
    since: Option<i64>,

    /// Days before the last synced day that are listed again, for late deliveries
    /// (CloudTrail delivers up to ~15 minutes late, so files land in the previous day's folder).
    #[arg(long, default_value_t = 1, value_name = "DAYS", help_heading = SYNC)]
    lookback_days: u32,

    /// Keep sync state in this local JSON file instead of the cluster.
    #[arg(long, value_name = "FILE", help_heading = SYNC)]
    state_file: Option<PathBuf>,

    /// The index that holds sync state in the cluster (outside the events' `PREFIX-*`).
    #[arg(long, default_value = "ctindex-state", value_name = "NAME", help_heading = SYNC)]
    state_index: String,

    /// How long the lease on a source lasts without renewal (renewed every quarter of it). A sync
    /// that dies on another host keeps its sources busy this long.
    #[arg(long, default_value_t = 120, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(4..=86_400), help_heading = SYNC)]
    lease_seconds: u64,

    /// After the run, delete the prefix's monthly indices whose whole month is older than this
    /// (13mo, 2y, 400d), as `ctindex prune --older-than` does.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age, help_heading = SYNC)]
    retention: Option<crate::sink::retention::Age>,
}

impl From<SyncParts> for SyncArgs {
    fn from(parts: SyncParts) -> SyncArgs {
        SyncArgs {
            import: ImportArgs {
                verify: parts.verify,
                ..parts.indexing.into_import(parts.sources.sources, None, false, false)
            },
            since: parts.since,
            lookback_days: parts.lookback_days,
            state_file: parts.state_file,
            state_index: parts.state_index,
            lease_seconds: parts.lease_seconds,
            retention: parts.retention,
        }
    }
}

args_through!(SyncArgs, SyncParts);

/// What `follow` reads: the queue, and what an import takes but its sources.
#[derive(Debug)]
pub struct FollowArgs {
    pub import: ImportArgs,
    pub queue_url: String,
    pub max_messages: usize,
    pub wait_seconds: u32,
    pub visibility_timeout: Option<u32>,
    pub until_empty: Option<u64>,
    pub max_received: Option<u64>,
    pub stop_timeout: u64,
    pub flush_after_ms: u64,
}

#[derive(Debug, Args)]
struct FollowParts {
    /// The SQS queue to read notifications from.
    #[arg(long, env = "CTINDEX_QUEUE_URL", value_name = "URL", help_heading = SOURCE)]
    queue_url: String,

    #[command(flatten)]
    indexing: Indexing,

    /// Messages held at once (received and not yet deleted); bounds memory with --max-bytes-in-flight.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10_000), help_heading = FOLLOW)]
    max_messages: u16,

    /// Long-polling wait of one receive request (SQS allows at most 20).
    #[arg(long, default_value_t = 20, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(0..=20), help_heading = FOLLOW)]
    wait_seconds: u32,

    /// Visibility timeout of the messages received (default: the queue's); extended every third
    /// of it while their objects are read and indexed.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(2..=43_200), help_heading = FOLLOW)]
    visibility_timeout: Option<u32>,

    /// Exit once no message came for this many seconds and nothing is in flight (for batch runs
    /// and tests; messages left to come back later are not waited for).
    #[arg(long, value_name = "SECONDS", help_heading = FOLLOW)]
    until_empty: Option<u64>,

    /// Exit after receiving this many messages (and settling them).
    #[arg(long, value_name = "N", help_heading = FOLLOW)]
    max_received: Option<u64>,

    /// After SIGTERM / Ctrl-C, finish what is in flight for at most this long, then release the
    /// rest to the queue and exit (keep it below Kubernetes' terminationGracePeriodSeconds,
    /// 30 by default, less the few seconds the release and the summary take).
    #[arg(long, default_value_t = 20, value_name = "SECONDS", help_heading = FOLLOW)]
    stop_timeout: u64,

    /// Send a bulk request that is not full once no more events came for this long (ms).
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000), help_heading = FOLLOW)]
    flush_after: u64,
}

impl From<FollowParts> for FollowArgs {
    fn from(parts: FollowParts) -> FollowArgs {
        FollowArgs {
            import: parts.indexing.into_import(Vec::new(), None, false, false),
            queue_url: parts.queue_url,
            max_messages: usize::from(parts.max_messages),
            wait_seconds: parts.wait_seconds,
            visibility_timeout: parts.visibility_timeout,
            until_empty: parts.until_empty,
            max_received: parts.max_received,
            stop_timeout: parts.stop_timeout,
            flush_after_ms: parts.flush_after,
        }
    }
}

args_through!(FollowArgs, FollowParts);

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete the monthly indices whose whole month is older than this: 13mo, 2y, 400d, 8w.
    /// The current month, `<PREFIX>-undated` and other prefixes' indices are never deleted.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age, help_heading = RETENTION)]
    pub older_than: crate::sink::retention::Age,

    /// List what would be deleted; delete nothing.
    #[arg(long, help_heading = RETENTION)]
    pub dry_run: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten, next_help_heading = AUTHENTICATION)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub index: PrefixArgs,
}

/// The index prefix alone, for commands that create no index.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = CLUSTER)]
pub struct PrefixArgs {
    /// Prefix of the monthly indices (<PREFIX>-YYYY.MM) and name of the alias over them.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX"
    )]
    pub index_prefix: String,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten, next_help_heading = AUTHENTICATION)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub index: IndexArgs,

    /// Also install a retention policy deleting indices this long after their month (13mo, 2y,
    /// 400d): ILM on Elasticsearch, ISM on OpenSearch, where the cluster has them.
    #[arg(long, value_name = "AGE", value_parser = crate::sink::retention::parse_age, help_heading = RETENTION)]
    pub retention: Option<crate::sink::retention::Age>,

    /// Print the template that would be installed (for the flavour given) and exit; needs no cluster.
    #[arg(long, value_name = "FLAVOR", value_parser = ["elasticsearch", "opensearch"], help_heading = OUTPUT)]
    pub print: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Import the dashboards, visualizations, saved searches and index pattern through the saved
    /// objects API (objects with the same ids are overwritten).
    #[command(after_help = DASHBOARDS_INSTALL_AFTER_HELP)]
    Install(Box<DashboardsInstallArgs>),
    /// Write the saved objects as NDJSON, adjusted to the index prefix (for Stack Management › Saved objects › Import).
    #[command(after_help = DASHBOARDS_EXPORT_AFTER_HELP)]
    Export(DashboardsExportArgs),
}

#[derive(Debug, Args)]
#[command(next_help_heading = DASHBOARDS)]
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

    #[command(flatten, next_help_heading = AUTHENTICATION)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct DashboardsExportArgs {
    /// Index prefix the dashboards read: the index pattern is the alias <PREFIX>.
    #[arg(
        long,
        env = "CTINDEX_INDEX_PREFIX",
        default_value = "cloudtrail",
        value_name = "PREFIX",
        help_heading = DASHBOARDS
    )]
    pub index_prefix: String,

    /// Write to this file instead of stdout ('-' for stdout).
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
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
        write!(f, "{:?}", crate::http::redact_url(&self.0))
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
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from([&["ctindex"], args].concat()).map(|cli| cli.command)
    }

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

    #[test]
    fn follow_options_and_shards() {
        let Command::Follow(f) = parse(&[
            "follow",
            "--queue-url=https://sqs.eu-west-1.amazonaws.com/1/q",
            "--url=http://h:9200",
            "--regions=eu-west-1",
            "--max-messages=7",
            "--until-empty=30",
            "--visibility-timeout=60",
            "--batch-bytes=1MB",
        ])
        .unwrap() else {
            panic!("not a follow");
        };
        assert_eq!(f.queue_url, "https://sqs.eu-west-1.amazonaws.com/1/q");
        assert_eq!(
            (f.max_messages, f.until_empty, f.visibility_timeout),
            (7, Some(30), Some(60))
        );
        assert_eq!((f.stop_timeout, f.wait_seconds), (20, 20));
        assert!(f.import.sources.is_empty());
        assert_eq!(
            (f.import.s3.regions.as_slice(), f.import.batch_bytes),
            (&["eu-west-1".to_string()][..], 1_000_000)
        );
        assert!(
            parse(&["follow", "--url=http://h:9200"]).is_err(),
            "--queue-url is required"
        );
        assert!(
            parse(&["follow", "--queue-url=q", "src"]).is_err(),
            "follow takes no sources"
        );

        let Command::Import(a) = parse(&["import", "--shard=2/3", "a"]).unwrap() else {
            panic!("not an import");
        };
        assert_eq!(a.shard, Some(crate::source::shard::Shard { index: 2, count: 3 }));
        assert!(parse(&["import", "--shard=3/3", "a"]).is_err());
        assert!(parse(&["import", "--shard=0/3", "--shards=3", "a"]).is_err());
        assert!(parse(&["sync", "--shard=0/3", "a"]).is_err(), "sync has no shards");
        let Command::Import(a) = parse(&["import", "--shards=4", "a"]).unwrap() else {
            panic!("not an import");
        };
        assert_eq!((a.shard, a.shards), (None, Some(4)));
        assert_eq!(
            shard_from_job(4, Some("3")),
            Ok(crate::source::shard::Shard { index: 3, count: 4 })
        );
        assert!(shard_from_job(4, Some("4")).unwrap_err().contains("does not exist"));
        assert!(shard_from_job(4, None).unwrap_err().contains("JOB_COMPLETION_INDEX"));
    }

    #[test]
    fn import_options_land_in_their_fields() {
        let Command::Import(a) = parse(&[
            "import",
            "--accounts=111111111111,222222222222",
            "--regions=eu-west-1",
            "--from=2025-01-01",
            "--to=2025-01-31",
            "--profile=p",
            "--region=eu-west-2",
            "--endpoint-url=http://s3:9000",
            "--downloads=7",
            "--max-bytes-in-flight=3MB",
            "--batch-bytes=2MB",
            "--max-value-bytes=1KB",
            "--concurrency=5",
            "--workers=6",
            "--retry-budget=9",
            "--no-setup",
            "--plan",
            "--url=http://h:9200",
            "--drop=x.y",
            "--dead-letter=dl.ndjson",
            "a",
            "b",
        ])
        .unwrap() else {
            panic!("not an import");
        };
        assert_eq!(a.sources, ["a", "b"]);
        assert_eq!(a.s3.accounts, ["111111111111", "222222222222"]);
        assert_eq!(a.s3.regions, ["eu-west-1"]);
        let (from, to) = (a.s3.from.unwrap(), a.s3.to.unwrap());
        assert_eq!(to - from, 30);
        assert_eq!(a.s3.aws.profile.as_deref(), Some("p"));
        assert_eq!(a.s3.aws.region.as_deref(), Some("eu-west-2"));
        assert_eq!(a.s3.endpoint_url.as_deref(), Some("http://s3:9000"));
        assert_eq!((a.s3.downloads, a.s3.max_bytes_in_flight), (7, 3_000_000));
        assert_eq!((a.batch_bytes, a.max_value_bytes), (2_000_000, 1000));
        assert_eq!((a.concurrency, a.workers, a.retry_budget), (5, Some(6), 9));
        assert!(a.no_setup && a.list && !a.dry_run);
        assert_eq!(a.filter.drop, ["x.y"]);
        assert_eq!(a.report.dead_letter.as_deref(), Some(std::path::Path::new("dl.ndjson")));
        assert!(parse(&["import", "--list", "--dry-run", "a"]).is_err());
    }

    #[test]
    fn sync_refuses_days_dry_run_and_list_with_advice() {
        let Command::Sync(a) = parse(&[
            "sync",
            "--since=2025-01-02",
            "--regions=eu-west-1",
            "--downloads=3",
            "--batch-bytes=1MB",
            "--state-file=s.json",
            "src",
        ])
        .unwrap() else {
            panic!("not a sync");
        };
        assert!(a.since.is_some());
        assert_eq!(a.import.s3.regions, ["eu-west-1"]);
        assert_eq!((a.import.s3.downloads, a.import.batch_bytes), (3, 1_000_000));
        assert_eq!(a.state_file, Some(PathBuf::from("s.json")));
        assert_eq!((a.import.s3.from, a.import.s3.to), (None, None));
        assert!(!a.import.dry_run && !a.import.list);

        for refused in ["--from=2025-01-01", "--to=2025-01-01", "--dry-run", "--list", "--plan"] {
            let error = parse(&["sync", refused, "src"]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::UnknownArgument, "{refused}");
            let shown = explain(error).to_string();
            assert!(
                shown.contains("tip: ") && shown.contains("import"),
                "{refused}: {shown}"
            );
        }
        // Unrelated mistakes keep clap's own words.
        let other = explain(parse(&["sync", "--bogus", "src"]).unwrap_err()).to_string();
        assert!(!other.contains("import"), "{other}");
        let import = explain(parse(&["import", "--since=2025-01-01", "src"]).unwrap_err()).to_string();
        assert!(!import.contains("sync chooses"), "{import}");
    }

    #[test]
    fn export_options_land_in_their_fields() {
        let Command::Export(a) = parse(&[
            "export",
            "--from=2025-03-01",
            "--downloads=4",
            "--workers=2",
            "--sort-memory=1MB",
            "--max-bytes-in-flight=5MB",
            "--out=dir",
            "--incremental",
            "--lookback-days=3",
            "src",
        ])
        .unwrap() else {
            panic!("not an export");
        };
        assert!(a.s3.from.is_some() && a.s3.to.is_none());
        assert_eq!((a.s3.downloads, a.workers, a.sort_memory), (4, Some(2), 1_000_000));
        assert_eq!(a.s3.max_bytes_in_flight, 5_000_000);
        assert_eq!((a.out, a.incremental, a.lookback_days), (PathBuf::from("dir"), true, 3));
        // --since belongs to --incremental.
        assert!(parse(&["export", "--since=2025-01-01", "src"]).is_err());
    }

    #[test]
    fn prune_takes_no_replicas_and_setup_does() {
        assert!(parse(&["prune", "--older-than=13mo", "--replicas=0"]).is_err());
        assert!(parse(&["setup", "--replicas=0"]).is_ok());
    }

    /// What a subscriber with the default filter for -q / -v prints of
    /// another crate's and ctindex's own events.
    fn logged(verbose: u8, quiet: bool) -> String {
        #[derive(Clone)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture(Default::default());
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(verbose, quiet)))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "aws_config::imds::region", "sdk-warning");
            tracing::error!(target: "aws_smithy_runtime::client", "sdk-error");
            tracing::error!(target: "ctindex", "own-error");
            tracing::warn!(target: "ctindex::source::s3", "own-warning");
            tracing::info!(target: "ctindex::pipeline", "own-info");
            tracing::debug!(target: "ctindex::pipeline", "own-debug");
            tracing::trace!(target: "ctindex::pipeline", "own-trace");
        });
        let text = capture.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn other_crates_log_only_errors_unless_verbose() {
        let expect = |verbose: u8, quiet: bool, shown: &[&str], hidden: &[&str]| {
            let log = logged(verbose, quiet);
            for word in shown {
                assert!(log.contains(word), "-v x{verbose} -q {quiet}: {word} missing in {log}");
            }
            for word in hidden {
                assert!(!log.contains(word), "-v x{verbose} -q {quiet}: {word} shown in {log}");
            }
        };
        expect(
            0,
            true,
            &["sdk-error", "own-error", "own-warning"],
            &["sdk-warning", "own-info"],
        );
        expect(
            0,
            false,
            &["sdk-error", "own-warning", "own-info"],
            &["sdk-warning", "own-debug"],
        );
        expect(1, false, &["sdk-warning", "own-debug"], &["own-trace"]);
        expect(2, false, &["sdk-warning", "own-trace"], &[]);
    }
}
