//! Configuration: what the user typed (see [`crate::cli`]) resolved into
//! ready-to-use settings, with every problem reported as a [`UsageError`]
//! that names the option to fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use secrecy::{SecretSlice, SecretString};

use crate::aws::AwsOptions;
use crate::cli::{AuthArgs, AwsArgs, ClusterArgs, FilterArgs, S3Args, UrlArg};
use crate::date::{day_text, today};
use crate::filter::{DEFAULT_DROP, FieldFilter};
use crate::http::sigv4::{AwsAuth, Service};
use crate::http::{Auth, ServerConfig, Url, redact_url};
use crate::source::Selection;
use crate::source::layout::{Days, is_account};
use crate::source::s3::S3Options;

/// A problem with the command line or the environment: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for failing with a usage error.
pub fn usage<T>(message: impl Into<String>) -> Result<T> {
    Err(UsageError(message.into()).into())
}

/// Resolves the cluster options; `--url` or `--cloud-id` must be set.
pub fn cluster(args: &ClusterArgs, aws: &AwsArgs) -> Result<ServerConfig> {
    let config = if let (None, Some(id)) = (&args.url, &args.cloud_id) {
        let url = match crate::http::cloud_id_url(id) {
            Ok(url) => url,
            Err(e) => return usage(format!("--cloud-id is not an Elastic Cloud id: {e}")),
        };
        endpoint(url.as_str(), "--cloud-id", &args.auth, aws)?
    } else {
        let Some(UrlArg(text)) = &args.url else {
            return usage("no cluster given: pass --url http://HOST:9200 or --cloud-id (or set CTINDEX_URL)");
        };
        endpoint(text, "--url", &args.auth, aws)?
    };
    Ok(ServerConfig {
        compress: args.compress,
        ..config
    })
}

/// Resolves `dashboards install`'s server: `--kibana-url` and the same
/// credential options as the cluster's.
pub fn kibana(url: Option<&UrlArg>, auth: &AuthArgs, aws: &AwsArgs) -> Result<ServerConfig> {
    let Some(UrlArg(text)) = url else {
        return usage(
            "no Kibana given: pass --kibana-url http://HOST:5601 (or set CTINDEX_KIBANA_URL), \
             or write the NDJSON with `ctindex dashboards export` and import it by hand",
        );
    };
    endpoint(text, "--kibana-url", auth, aws)
}

/// Resolves a URL given with `option` and the credential, TLS and timeout options.
fn endpoint(text: &str, option: &str, args: &AuthArgs, aws: &AwsArgs) -> Result<ServerConfig> {
    let url = match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        // `127.0.0.1:9200` is no URL at all, `localhost:9200` one with the scheme `localhost`.
        _ if !text.contains("://") => {
            let shown = redact_url(text);
            return usage(format!(
                "{option} {shown}: add the scheme: http://{shown} or https://{shown}"
            ));
        }
        Ok(_) => {
            return usage(format!(
                "{option} must start with http:// or https://, got '{}'",
                redact_url(text)
            ));
        }
        Err(e) => return usage(format!("{option} '{}' is not a URL: {e}", redact_url(text))),
    };
    let password = secret(&args.password, &args.password_file, "--password-file")?;
    let api_key = secret(&args.api_key, &args.api_key_file, "--api-key-file")?;
    let bearer = secret(&args.bearer_token, &args.bearer_token_file, "--bearer-token-file")?;
    let sigv4 = args.aws_sigv4.then(|| sigv4_auth(&url, args, aws));
    let auth = match (&args.user, password, api_key, bearer, &args.client_cert, sigv4) {
        (Some(user), Some(password), None, None, None, None) => Auth::Basic {
            user: user.clone(),
            password,
        },
        (Some(_), None, _, _, _, _) => {
            return usage("--user needs a password: set CTINDEX_PASSWORD or --password-file");
        }
        (None, Some(_), _, _, _, _) => return usage("a password was given without --user"),
        (None, None, Some(key), None, None, None) => Auth::ApiKey(key),
        (None, None, None, Some(token), None, None) => Auth::Bearer(token),
        (None, None, None, None, Some(path), None) => match std::fs::read(path) {
            Ok(pem) => Auth::ClientCert(SecretSlice::from(pem)),
            Err(e) => return usage(format!("--client-cert {}: {e}", path.display())),
        },
        (None, None, None, None, None, Some(aws)) => Auth::Aws(aws),
        (None, None, None, None, None, None) => Auth::None,
        _ => {
            return usage(
                "give only one of --user/--password, --api-key, --bearer-token, --client-cert and --aws-sigv4",
            );
        }
    };
    // The process list (ps, /proc/PID/cmdline) shows every argument.
    let argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == "--password" || a.starts_with("--password=")) {
        tracing::warn!(
            "--password on the command line shows in the process list: prefer CTINDEX_PASSWORD or --password-file"
        );
    }
    for (flag, instead) in [
        ("--api-key", "CTINDEX_API_KEY or --api-key-file"),
        ("--bearer-token", "CTINDEX_BEARER_TOKEN or --bearer-token-file"),
    ] {
        if argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            tracing::warn!("{flag} on the command line shows in the process list: prefer {instead}");
        }
    }
    if crate::http::has_password(&url) {
        tracing::warn!(
            "{option} holds a password, which shows in the process list (and in shell history): prefer --user \
             with CTINDEX_PASSWORD or --password-file"
        );
    }
    if args.insecure {
        tracing::warn!(
            "--insecure: the TLS certificate of {} is not verified; anyone between here and the server can \
             read and change what is sent, credentials included",
            redact_url(text)
        );
        if let Some(ca) = &args.ca_cert {
            tracing::warn!(
                "--insecure overrides --ca-cert {}: nothing is verified; drop --insecure to verify against that CA",
                ca.display()
            );
        }
    }
    Ok(ServerConfig {
        url,
        auth,
        ca_cert: args.ca_cert.clone(),
        insecure: args.insecure,
        timeout: Duration::from_secs(args.timeout.max(1)),
        compress: false,
    })
}

/// SigV4 for this URL: `--aws-service` and `--region` when given, else what
/// an `*.amazonaws.com` host name says, else `es` and the AWS default region.
fn sigv4_auth(url: &Url, args: &AuthArgs, aws: &AwsArgs) -> AwsAuth {
    let inferred = url.host_str().and_then(crate::http::sigv4::infer);
    let service = args
        .aws_service
        .or(inferred.as_ref().map(|(service, _)| *service))
        .unwrap_or(Service::Es);
    let region = inferred.map(|(_, region)| region).or_else(|| aws.region.clone());
    AwsAuth {
        service,
        region,
        options: aws_options(aws),
    }
}

/// The AWS profile and region.
pub fn aws_options(aws: &AwsArgs) -> AwsOptions {
    AwsOptions {
        profile: aws.profile.clone(),
        region: aws.region.clone(),
    }
}

/// A secret given directly (flag or environment) or in a file (its first line).
fn secret(
    value: &Option<SecretString>,
    file: &Option<std::path::PathBuf>,
    option: &str,
) -> Result<Option<SecretString>> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(SecretString::from(
                text.lines().next().unwrap_or("").trim().to_string(),
            ))),
            Err(e) => usage(format!("{option} {}: {e}", path.display())),
        },
        (None, None) => Ok(None),
    }
}

/// Resolves what to read of every source: accounts that look like
/// accounts, dates in order. `--from` alone reads up to today, `--to` alone
/// everything up to that day.
pub fn selection(args: &S3Args) -> Result<Selection> {
    let to = match (args.from, args.to) {
        (Some(_), None) => Some(today()),
        (_, to) => to,
    };
    if let (Some(from), Some(to)) = (args.from, to)
        && from > to
    {
        return usage(format!("--from {} is after --to {}", day_text(from), day_text(to)));
    }
    for account in &args.accounts {
        if !is_account(account) {
            return usage(format!(
                "--accounts: '{account}' is not an AWS account id (12 digits, e.g. 123456789012)"
            ));
        }
    }
    for region in &args.regions {
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return usage(format!(
                "--regions: '{region}' is not an AWS region name (e.g. eu-west-1)"
            ));
        }
    }
    Ok(Selection {
        accounts: args.accounts.iter().cloned().collect(),
        regions: args.regions.iter().cloned().collect(),
        days: Days { from: args.from, to },
        windows: Default::default(),
        digests: false,
    })
}

/// Resolves how to reach S3.
pub fn s3(args: &S3Args) -> Result<S3Options> {
    if let Some(endpoint) = &args.endpoint_url
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return usage(format!(
            "--endpoint-url must start with http:// or https://, got '{endpoint}'"
        ));
    }
    Ok(S3Options {
        aws: aws_options(&args.aws),
        endpoint_url: args.endpoint_url.clone(),
        max_bytes_in_flight: args.max_bytes_in_flight as u64,
    })
}

/// The field filter: the default drops (unless turned off), then --drop and
/// --keep. Refuses a pattern that is not one, and a drop that would remove
/// a field every document needs (see [`crate::filter::REQUIRED_FIELDS`]);
/// warns about patterns that can match no field of a CloudTrail event.
pub fn field_filter(args: &FilterArgs) -> Result<FieldFilter> {
    for (option, patterns, effect) in [
        ("--drop", &args.drop, "removes nothing"),
        ("--keep", &args.keep, "spares nothing"),
    ] {
        for pattern in patterns {
            if let Err(e) = crate::filter::check_pattern(pattern) {
                return usage(format!("{option}: {e}"));
            }
            if let Some(why) = crate::filter::never_matches(pattern) {
                tracing::warn!("{option} '{}' {effect}: {why}", pattern.trim());
            }
        }
    }
    let mut drop: Vec<String> = if args.no_default_drops {
        Vec::new()
    } else {
        DEFAULT_DROP.iter().map(|s| s.to_string()).collect()
    };
    drop.extend(args.drop.iter().cloned());
    let filter = FieldFilter::new(&drop, &args.keep, !args.no_redact).map_err(|e| UsageError(e.to_string()))?;
    if let Some(refused) = filter.removes_required() {
        return usage(format!("--drop {refused}"));
    }
    Ok(filter)
}

/// Below this, `--batch-bytes` is refused: a bulk request would carry one
/// event (CloudTrail events are 1 to 2 KB, seldom less than 1 KiB).
pub const MIN_BATCH_BYTES: usize = 1024;

/// Below this, `--batch-bytes` is allowed with a warning.
pub const SMALL_BATCH_BYTES: usize = 64 * 1024;

/// Above this, every request exceeds Elasticsearch's and OpenSearch's
/// default `http.max_content_length`.
pub const LARGE_BATCH_BYTES: usize = 100 * 1024 * 1024;

/// Checks `--batch-bytes`: refused below [`MIN_BATCH_BYTES`], a warning
/// below [`SMALL_BATCH_BYTES`] and above [`LARGE_BATCH_BYTES`].
pub fn batch_bytes(n: usize) -> Result<usize> {
    if n < MIN_BATCH_BYTES {
        return usage(format!(
            "--batch-bytes {n} (bytes) is too small: every bulk request would carry a single event (CloudTrail \
             events are 1-2KB each); give at least 1KiB, or leave the default 5MB"
        ));
    }
    if n < SMALL_BATCH_BYTES {
        tracing::warn!(
            "--batch-bytes {n} (bytes): each bulk request then carries a few events only (CloudTrail events are \
             1-2KB each); the default 5MB is faster"
        );
    } else if n > LARGE_BATCH_BYTES {
        tracing::warn!(
            "--batch-bytes {n} (bytes) is above 100MB, the cluster's default limit on a request \
             (http.max_content_length): requests may be refused (413) and sent again in halves; the default \
             5MB is as fast"
        );
    }
    Ok(n)
}

/// Where dead letters go. `given` is `--dead-letter`; otherwise
/// `dead-letters-<name>.ndjson`, `name` being the index prefix (import,
/// sync) or `export`, beside the state file when there is one (`sync
/// --state-file`), else in the first writable of `$XDG_STATE_HOME/ctindex`,
/// `~/.local/state/ctindex` and the temp folder: never the current
/// folder, which is `/` for cron jobs and systemd units. The path is
/// absolute, so the summary names the file wherever the run started.
pub fn dead_letter_path(given: Option<&Path>, name: &str, state_file: Option<&Path>) -> PathBuf {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    dead_letter_path_in(given, name, state_file, var("XDG_STATE_HOME"), var("HOME"))
}

/// [`dead_letter_path`] with the environment given.
fn dead_letter_path_in(
    given: Option<&Path>,
    name: &str,
    state_file: Option<&Path>,
    xdg_state_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if let Some(path) = given {
        return absolute(path);
    }
    let file = format!("dead-letters-{name}.ndjson");
    if let Some(dir) = state_file.map(absolute).as_deref().and_then(Path::parent) {
        return dir.join(file);
    }
    // XDG: relative values are invalid and to be ignored.
    let candidates = [
        xdg_state_home.filter(|d| d.is_absolute()).map(|d| d.join("ctindex")),
        home.filter(|d| d.is_absolute())
            .map(|home| home.join(".local/state/ctindex")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| writable_dir(dir))
        .unwrap_or_else(std::env::temp_dir)
        .join(file)
}

/// The path made absolute against the current folder (not resolved: a
/// symlink stays one).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether files can be made in the folder, creating it if need be (a state
/// folder is ctindex's to create).
fn writable_dir(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".ctindex-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => std::fs::remove_file(&probe).is_ok(),
        Err(e) => {
            tracing::debug!("dead letters not in {}: {e}", dir.display());
            false
        }
    }
}

/// Checks an index prefix against the cluster's index naming rules.
pub fn index_prefix(prefix: &str) -> Result<String> {
    let bad = prefix.is_empty()
        || prefix.len() > 200
        || prefix.starts_with(['-', '_', '+', '.'])
        || prefix
            .chars()
            .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c));
    if bad {
        return usage(format!(
            "--index-prefix '{prefix}' is not a valid index name prefix (lowercase, no \\ / * ? \" < > | space , # :, not starting with - _ + .)"
        ));
    }
    Ok(prefix.to_string())
}

/// Checks the sync state index's name: a valid index name outside the
/// prefix's `PREFIX-*`, where the events' template (its mappings, and the
/// search alias that dashboards read) would apply to it too.
pub fn state_index(name: &str, prefix: &str) -> Result<String> {
    if index_prefix(name).is_err() {
        return usage(format!("--state-index '{name}' is not a valid index name"));
    }
    if name.starts_with(&format!("{prefix}-")) {
        return usage(format!(
            "--state-index '{name}' falls under --index-prefix '{prefix}': the events' index template \
             ({prefix}-*) would apply to it; name it outside {prefix}-* (the default is ctindex-state)"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use secrecy::ExposeSecret;

    fn args(url: Option<&str>) -> ClusterArgs {
        ClusterArgs {
            url: url.map(|u| UrlArg(u.to_string())),
            cloud_id: None,
            auth: AuthArgs {
                user: None,
                password: None,
                password_file: None,
                api_key: None,
                api_key_file: None,
                bearer_token: None,
                bearer_token_file: None,
                client_cert: None,
                aws_sigv4: false,
                aws_service: None,
                ca_cert: None,
                insecure: false,
                timeout: 30,
            },
            compress: false,
        }
    }

    fn cluster(a: &ClusterArgs) -> Result<ServerConfig> {
        super::cluster(a, &AwsArgs::default())
    }

    fn url_arg(text: &str) -> UrlArg {
        UrlArg(text.to_string())
    }

    #[test]
    fn secrets_from_files_and_cloud_ids() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "c2VjcmV0LWtleQ==\n").unwrap();
        let mut a = args(Some("https://h:9243"));
        a.auth.api_key_file = Some(key);
        assert!(matches!(cluster(&a).unwrap().auth, Auth::ApiKey(k) if k.expose_secret() == "c2VjcmV0LWtleQ=="));
        a.auth.api_key_file = Some(dir.path().join("missing"));
        assert!(cluster(&a).unwrap_err().downcast_ref::<UsageError>().is_some());

        // name:base64("us-east-1.aws.found.io$es-uuid$kibana-uuid")
        let mut c = args(None);
        c.cloud_id = Some("prod:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRlcy11dWlkJGtpYmFuYS11dWlk".into());
        let url = cluster(&c).unwrap().url;
        assert_eq!(url.host_str(), Some("es-uuid.us-east-1.aws.found.io"));
        c.cloud_id = Some("garbage".into());
        assert!(cluster(&c).is_err());
    }

    #[test]
    fn cluster_options() {
        assert!(cluster(&args(None)).is_err());
        assert!(cluster(&args(Some("ftp://x"))).is_err());
        let err = cluster(&args(Some("http://u:hunter2@[::1"))).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let ok = cluster(&args(Some("http://127.0.0.1:9200"))).unwrap();
        assert!(matches!(ok.auth, Auth::None));
        let mut a = args(Some("https://h"));
        a.auth.user = Some("elastic".into());
        assert!(cluster(&a).is_err());
        a.auth.password = Some(SecretString::from("pw"));
        assert!(matches!(cluster(&a).unwrap().auth, Auth::Basic { .. }));
        // Nothing of the arguments' Debug shows a secret, the URL's password included.
        let mut shown = args(Some("https://elastic:hunter2@h:9200"));
        shown.auth.password = Some(SecretString::from("pw-secret"));
        shown.auth.api_key = Some(SecretString::from("key-secret"));
        shown.auth.bearer_token = Some(SecretString::from("token-secret"));
        let debug = format!("{shown:?}");
        for secret in ["hunter2", "pw-secret", "key-secret", "token-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        // Kibana takes the same credentials, and names its own option in errors.
        let aws = AwsArgs::default();
        let k = kibana(Some(&url_arg("https://kibana:5601/base")), &a.auth, &aws).unwrap();
        assert!(matches!(k.auth, Auth::Basic { .. }));
        assert!(
            kibana(None, &a.auth, &aws)
                .unwrap_err()
                .to_string()
                .contains("--kibana-url")
        );
        let err = kibana(Some(&url_arg("kibana:5601")), &a.auth, &aws)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--kibana-url"), "{err}");
    }

    #[test]
    fn sigv4_service_and_region() {
        let sigv4 = |url: &str, service: Option<Service>, region: Option<&str>| {
            let mut a = args(Some(url));
            a.auth.aws_sigv4 = true;
            a.auth.aws_service = service;
            let aws = AwsArgs {
                profile: None,
                region: region.map(String::from),
            };
            match super::cluster(&a, &aws).unwrap().auth {
                Auth::Aws(auth) => (auth.service, auth.region),
                other => panic!("{other:?}"),
            }
        };
        // The host name says both, and wins over --region (the bucket's).
        assert_eq!(
            sigv4(
                "https://search-ct-x1.eu-west-1.es.amazonaws.com",
                None,
                Some("us-east-1")
            ),
            (Service::Es, Some("eu-west-1".into()))
        );
        assert_eq!(
            sigv4("https://abc.us-east-2.aoss.amazonaws.com", None, None),
            (Service::Aoss, Some("us-east-2".into()))
        );
        // Elsewhere (a custom endpoint, a proxy): --aws-service and --region, default es.
        assert_eq!(
            sigv4("http://127.0.0.1:9206", None, Some("us-east-1")),
            (Service::Es, Some("us-east-1".into()))
        );
        assert_eq!(
            sigv4("https://logs.example.com", Some(Service::Aoss), None),
            (Service::Aoss, None)
        );
        let mut a = args(Some("https://h"));
        a.auth.aws_sigv4 = true;
        a.auth.user = Some("u".into());
        a.auth.password = Some(SecretString::from("pw"));
        assert!(cluster(&a).is_err());
    }

    fn s3_args() -> S3Args {
        S3Args {
            aws: AwsArgs::default(),
            endpoint_url: None,
            accounts: Vec::new(),
            regions: Vec::new(),
            from: None,
            to: None,
            downloads: 32,
            max_bytes_in_flight: 1 << 20,
        }
    }

    #[test]
    fn selections() {
        let usage_error = |a: &S3Args| {
            selection(a)
                .unwrap_err()
                .downcast_ref::<UsageError>()
                .map(|e| e.0.clone())
        };
        let mut a = s3_args();
        a.accounts = vec!["12345".into()];
        assert!(usage_error(&a).unwrap().contains("--accounts: '12345'"));
        a.accounts = vec!["123456789012".into()];
        a.regions = vec!["eu west".into()];
        assert!(usage_error(&a).unwrap().contains("--regions"));
        a.regions = vec!["eu-west-1".into()];
        // --to alone: everything up to that day.
        a.to = Some(100);
        let s = selection(&a).unwrap();
        assert_eq!((s.days.from, s.days.to), (None, Some(100)));
        a.from = Some(101);
        assert!(usage_error(&a).unwrap().contains("is after --to"));
        // --from alone: up to today.
        a.to = None;
        assert_eq!(selection(&a).unwrap().days.to, Some(today()));
    }

    #[test]
    fn urls_without_a_scheme_are_told_how_to_write_them() {
        let refused = |url: &str| {
            let e = cluster(&args(Some(url))).unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some(), "{url}: {e}");
            e.to_string()
        };
        assert_eq!(
            refused("127.0.0.1:9200"),
            "--url 127.0.0.1:9200: add the scheme: http://127.0.0.1:9200 or https://127.0.0.1:9200"
        );
        assert_eq!(
            refused("localhost:9200"),
            "--url localhost:9200: add the scheme: http://localhost:9200 or https://localhost:9200"
        );
        // A password before the host is not shown, parsed as a scheme or not.
        let shown = refused("elastic:hunter2@10.0.0.1:9200");
        assert_eq!(
            shown,
            "--url ***@10.0.0.1:9200: add the scheme: http://***@10.0.0.1:9200 or https://***@10.0.0.1:9200"
        );
        assert!(refused("ftp://h:21").contains("must start with http:// or https://"));
        assert!(refused("http://[::1").contains("is not a URL"));
    }

    #[test]
    fn batch_sizes() {
        for small in [0, 5, 1023] {
            let e = batch_bytes(small).unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some(), "{small}");
            assert!(e.to_string().contains("too small"), "{e}");
        }
        for fine in [1024, 50_000, 5_000_000, 200_000_000] {
            assert_eq!(batch_bytes(fine).unwrap(), fine);
        }
    }

    #[test]
    fn dead_letters_go_to_a_state_folder_or_beside_the_state_file() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let xdg = tmp.path().join("xdg");
        let path = |given: Option<&Path>, state: Option<&Path>, xdg: Option<&Path>, home: Option<&Path>| {
            dead_letter_path_in(
                given,
                "cloudtrail",
                state,
                xdg.map(Path::to_path_buf),
                home.map(Path::to_path_buf),
            )
        };
        // $XDG_STATE_HOME/ctindex, made if missing.
        let p = path(None, None, Some(&xdg), Some(&home));
        assert_eq!(p, xdg.join("ctindex/dead-letters-cloudtrail.ndjson"));
        assert!(xdg.join("ctindex").is_dir());
        assert_eq!(
            std::fs::read_dir(xdg.join("ctindex")).unwrap().count(),
            0,
            "the probe is left"
        );
        // Without it (or with a relative one, which XDG says to ignore): ~/.local/state/ctindex.
        let in_home = home.join(".local/state/ctindex/dead-letters-cloudtrail.ndjson");
        assert_eq!(path(None, None, None, Some(&home)), in_home);
        assert_eq!(path(None, None, Some(Path::new("rel")), Some(&home)), in_home);
        // Not writable (a file is in the way): the next, and at last the temp folder.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        assert_eq!(path(None, None, Some(&blocked), Some(&home)), in_home);
        assert_eq!(
            path(None, None, Some(&blocked), None),
            std::env::temp_dir().join("dead-letters-cloudtrail.ndjson")
        );
        // Beside the state file; given: as given. Both absolute.
        let cwd = std::env::current_dir().unwrap();
        let state = tmp.path().join("state/sync.json");
        assert_eq!(
            path(None, Some(&state), Some(&xdg), None),
            tmp.path().join("state/dead-letters-cloudtrail.ndjson")
        );
        assert_eq!(
            path(None, Some(Path::new("sync.json")), Some(&xdg), None),
            cwd.join("dead-letters-cloudtrail.ndjson")
        );
        assert_eq!(
            path(Some(Path::new("dl/x.ndjson")), Some(&state), Some(&xdg), None),
            cwd.join("dl/x.ndjson")
        );
        assert_eq!(path(Some(&state), None, None, None), state);
    }

    #[test]
    fn prefixes() {
        assert!(index_prefix("cloudtrail").is_ok());
        assert!(index_prefix("ct-prod.eu").is_ok());
        for bad in ["", "CloudTrail", "_x", "a b", "a*"] {
            assert!(index_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_indices_stay_outside_the_prefix() {
        assert!(state_index("ctindex-state", "cloudtrail").is_ok());
        assert!(state_index("cloudtrail.state", "cloudtrail").is_ok());
        for bad in ["cloudtrail-state", "State", ""] {
            let err = state_index(bad, "cloudtrail").unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}");
        }
    }
}
