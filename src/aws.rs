//! The AWS configuration shared by everything that talks to AWS: S3
//! ([`crate::source::s3`]) and SigV4 signing of cluster requests
//! ([`crate::http::sigv4`]). One credential chain (environment, shared
//! config and credentials files with `--profile`, SSO, web identity / IRSA,
//! container and instance roles) and one region resolution.

use std::error::Error as StdError;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::Region;

/// Attempts per AWS request (the first and the retries): throttling and
/// connection errors are retried with backoff before they are reported
/// ([`crate::retry::Policy::AWS`], which the SDK's own retry follows).
pub const MAX_ATTEMPTS: u32 = crate::retry::Policy::AWS.attempts;

/// The longest a quoted cause (the server's or the system's words) may be.
const MAX_CAUSE: usize = 120;

/// Which profile and region to use (`--profile`, `--region`).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// Loads the configuration and checks that credentials can be found,
/// failing fast with what was tried. `region` overrides `options.region`.
pub async fn load(options: &AwsOptions, region: Option<&str>) -> Result<SdkConfig> {
    // Instance metadata answers in milliseconds where it exists; elsewhere
    // it must not make ctindex hang.
    let imds = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .max_attempts(1)
        .build();
    let region_chain = || match region.or(options.region.as_deref()) {
        Some(r) => RegionProviderChain::first_try(Region::new(r.to_string())),
        None => RegionProviderChain::default_provider().or_else(Region::new("us-east-1")),
    };
    // The credential chain resolves a region of its own (for STS): the same one,
    // so that a region given is not looked up again in instance metadata.
    let mut chain = DefaultCredentialsChain::builder()
        .imds_client(imds)
        .region(region_chain());
    let region = region_chain();
    if let Some(profile) = &options.profile {
        chain = chain.profile_name(profile);
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(crate::retry::Policy::AWS.first_pause)
                .with_max_backoff(crate::retry::Policy::AWS.max_pause),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    let credentials = chain.build().await;
    let loader = loader.credentials_provider(credentials);
    let config = tokio::time::timeout(Duration::from_secs(20), loader.load())
        .await
        .context("timed out loading the AWS configuration")?;
    let provider = config.credentials_provider().context("no AWS credentials provider")?;
    let found = tokio::time::timeout(Duration::from_secs(20), provider.provide_credentials()).await;
    match found {
        Ok(Ok(_)) => Ok(config),
        Ok(Err(e)) => {
            if let Some(profile) = &options.profile
                && let Some(files) = profile_missing(profile)
            {
                bail!("AWS profile {profile} is not defined in {files}: check --profile (or AWS_PROFILE)");
            }
            bail!("{}", explain_credentials_error(&e, options.profile.as_deref()))
        }
        Err(_) => {
            bail!("looking for AWS credentials timed out after 20 s; set AWS_ACCESS_KEY_ID or pass --profile")
        }
    }
}

/// The shared config and credentials files (`AWS_CONFIG_FILE`,
/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/config` and `~/.aws/credentials`),
/// when neither defines `profile`; None when one does (or they cannot be
/// found, so nothing can be said).
fn profile_missing(profile: &str) -> Option<String> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let path = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let files = [
        path("AWS_CONFIG_FILE", "config")?,
        path("AWS_SHARED_CREDENTIALS_FILE", "credentials")?,
    ];
    profile_missing_in(profile, &files)
}

/// The files, when none of them defines `profile` (`[profile NAME]` or `[NAME]`).
fn profile_missing_in(profile: &str, files: &[std::path::PathBuf]) -> Option<String> {
    let defines = |text: &str| {
        text.lines().any(|line| {
            let Some(section) = line.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                return false;
            };
            let section = section.trim();
            let name = section
                .strip_prefix("profile")
                .filter(|rest| rest.starts_with(char::is_whitespace));
            section == profile || name.is_some_and(|n| n.trim() == profile)
        })
    };
    let defined = files
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|text| defines(&text)));
    (!defined).then(|| {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    })
}

/// Why no credentials could be had, in one line, with what to do.
pub fn explain_credentials_error(error: &CredentialsError, profile: Option<&str>) -> String {
    let cause = innermost(error);
    let profile_text = profile.map(|p| format!(" (profile {p})")).unwrap_or_default();
    let line = match error {
        CredentialsError::CredentialsNotLoaded(_) => format!(
            "no AWS credentials found{profile_text}: tried the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
             the shared config and credentials files, SSO, web identity, container and instance roles; set \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile ({cause})"
        ),
        CredentialsError::ProviderTimedOut(_) => {
            format!(
                "looking for AWS credentials{profile_text} timed out ({cause}): set AWS_ACCESS_KEY_ID or pass --profile"
            )
        }
        CredentialsError::InvalidConfiguration(_) => format!(
            "the AWS configuration{profile_text} is not usable ({cause}): check ~/.aws/config and ~/.aws/credentials \
             (or AWS_CONFIG_FILE) and --profile"
        ),
        // Instance metadata is the chain's last resort: its answer means nothing else had credentials.
        _ if cause.contains("IMDS") || cause.to_ascii_lowercase().contains("instance metadata") => format!(
            "no AWS credentials found{profile_text}: tried the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
             the shared config and credentials files, SSO, web identity, container roles, and instance metadata, \
             which answered: {cause}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile"
        ),
        _ => format!(
            "cannot get AWS credentials{profile_text} ({cause}): for SSO run `aws sso login`, else check the role or \
             the credentials"
        ),
    };
    one_line(&line)
}

/// The innermost cause of an error (the system's or the server's words),
/// on one line and clipped.
pub fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    clip(&last.to_string())
}

/// One line: runs of whitespace (newlines too) become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line of at most [`MAX_CAUSE`] characters.
pub(crate) fn clip(text: &str) -> String {
    let line = one_line(text);
    match line.char_indices().nth(MAX_CAUSE) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_errors_are_one_line_with_the_fix() {
        let missing = CredentialsError::not_loaded("no providers in chain provided credentials");
        let text = explain_credentials_error(&missing, Some("prod"));
        assert!(!text.contains('\n') && text.len() < 400, "{text}");
        for word in [
            "no AWS credentials found (profile prod)",
            "AWS_ACCESS_KEY_ID",
            "--profile",
            "no providers in chain",
        ] {
            assert!(text.contains(word), "{word:?} not in {text}");
        }
        let sso = CredentialsError::provider_error("the SSO token\nhas expired");
        let text = explain_credentials_error(&sso, None);
        assert!(
            text.contains("aws sso login") && text.contains("the SSO token has expired"),
            "{text}"
        );
        let imds = CredentialsError::provider_error("request forbidden: IMDS is disabled");
        let text = explain_credentials_error(&imds, None);
        assert!(
            text.starts_with("no AWS credentials found: tried") && text.contains("answered: request forbidden"),
            "{text}"
        );
        let bad = CredentialsError::invalid_configuration("profile `x` was not defined");
        assert!(explain_credentials_error(&bad, Some("x")).contains("~/.aws/config"));
    }

    #[test]
    fn a_profile_not_in_the_files_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile prod]\nsso_session = x\n",
        )
        .unwrap();
        std::fs::write(&credentials, "[ci]\naws_access_key_id = x\n").unwrap();
        let files = [config, credentials];
        let missing = profile_missing_in("staging", &files).unwrap();
        assert!(
            missing.contains("config or ") && missing.ends_with("credentials"),
            "{missing}"
        );
        for defined in ["prod", "ci", "default"] {
            assert_eq!(profile_missing_in(defined, &files), None, "{defined}");
        }
        // "[profileprod]" is not "[profile prod]".
        std::fs::write(&files[0], "[profileprod]\n").unwrap();
        assert!(profile_missing_in("prod", &files).is_some());
    }
}
