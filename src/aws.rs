//! The AWS configuration shared by everything that talks to AWS: S3
//! ([`crate::source::s3`]) and SigV4 signing of cluster requests
//! ([`crate::http::sigv4`]). One credential chain (environment, shared
//! config and credentials files with `--profile`, SSO, web identity / IRSA,
//! container and instance roles) and one region resolution.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::DisplayErrorContext;

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
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(200)),
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
        Ok(Err(e)) => bail!(
            "no AWS credentials found: {} (tried: environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
             the shared config and credentials files{}, SSO, web identity (AWS_WEB_IDENTITY_TOKEN_FILE), \
             container credentials, and instance metadata); set one of them or pass --profile",
            DisplayErrorContext(&e),
            options
                .profile
                .as_deref()
                .map(|p| format!(" (profile {p})"))
                .unwrap_or_default()
        ),
        Err(_) => {
            bail!("looking for AWS credentials timed out after 20 s; set AWS_ACCESS_KEY_ID or pass --profile")
        }
    }
}
