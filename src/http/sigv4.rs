//! AWS Signature Version 4 for Amazon OpenSearch Service (`es`) and
//! OpenSearch Serverless (`aoss`), with the AWS SDK's own signer
//! (`aws-sigv4`) and the credential chain S3 uses ([`crate::aws`]).
//!
//! Every request is signed as it goes out, over the bytes sent (a gzipped
//! body is hashed gzipped), with `x-amz-content-sha256` set, which
//! Serverless requires and the managed service accepts. Credentials come
//! from the SDK's provider for each request, so expiring ones (SSO, IRSA,
//! instance roles) are refreshed by it.

use std::time::SystemTime;

use anyhow::{Context, Result};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};

use super::Url;
use crate::aws::AwsOptions;

/// Which AWS service the endpoint is (`--aws-service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// Amazon OpenSearch Service (managed domains).
    Es,
    /// Amazon OpenSearch Serverless collections.
    Aoss,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Es => "es",
            Service::Aoss => "aoss",
        }
    }
}

/// SigV4 as asked for on the command line, resolved against the URL.
#[derive(Debug, Clone)]
pub struct AwsAuth {
    pub service: Service,
    /// The signing region; None: the profile's or AWS_REGION, else us-east-1.
    pub region: Option<String>,
    pub options: AwsOptions,
}

/// The service and region an AWS endpoint's host name names:
/// `search-NAME-ID.REGION.es.amazonaws.com` (and `vpc-…`),
/// `ID.REGION.aoss.amazonaws.com`, also under `amazonaws.com.cn`.
pub fn infer(host: &str) -> Option<(Service, String)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut labels = rest.rsplit('.');
    let service = match labels.next()? {
        "es" => Service::Es,
        "aoss" => Service::Aoss,
        _ => return None,
    };
    let region = labels.next()?;
    let plausible = region.contains('-') && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plausible.then(|| (service, region.to_string()))
}

/// Signs requests with credentials from the AWS credential chain.
pub struct Signer {
    provider: SharedCredentialsProvider,
    region: String,
    /// The signing name: `es`, `aoss`, `cloudtrail`.
    service: &'static str,
}

impl Signer {
    /// Resolves the region and the credentials (once now, so that missing
    /// credentials fail before any work).
    pub async fn new(auth: &AwsAuth, url: &Url) -> Result<Signer> {
        let config = crate::aws::load(&auth.options, auth.region.as_deref())
            .await
            .context("--aws-sigv4: cannot sign requests")?;
        let region = config
            .region()
            .map(|r| r.to_string())
            .context("--aws-sigv4: no region: pass --region")?;
        let provider = config
            .credentials_provider()
            .context("--aws-sigv4: no AWS credentials provider")?;
        tracing::debug!(
            "signing requests to {} with AWS SigV4 (service {}, region {region})",
            super::display_url(url),
            auth.service.name()
        );
        Ok(Signer {
            provider,
            region,
            service: auth.service.name(),
        })
    }

    /// A signer for another AWS service's API (e.g. `cloudtrail`) in `region`.
    pub async fn for_service(options: &AwsOptions, region: &str, service: &'static str) -> Result<Signer> {
        let config = crate::aws::load(options, Some(region)).await?;
        let provider = config.credentials_provider().context("no AWS credentials provider")?;
        Ok(Signer {
            provider,
            region: region.to_string(),
            service,
        })
    }

    /// Adds `authorization`, `x-amz-date`, `x-amz-content-sha256` (and
    /// `x-amz-security-token` for temporary credentials) to the request.
    pub async fn sign(&self, request: &mut reqwest::Request) -> Result<(), String> {
        let credentials = self.provider.provide_credentials().await.map_err(|e| {
            format!(
                "cannot get AWS credentials to sign the request: {}",
                DisplayErrorContext(&e)
            )
        })?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let signed = {
            let body = request.body().and_then(|b| b.as_bytes()).unwrap_or(&[]);
            let headers = request
                .headers()
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
            let signable = SignableRequest::new(
                request.method().as_str(),
                request.url().as_str(),
                headers,
                SignableBody::Bytes(body),
            )
            .map_err(|e| format!("cannot sign the request: {e}"))?;
            sign(signable, &params).map_err(|e| format!("cannot sign the request: {e}"))?
        };
        let (instructions, _) = signed.into_parts();
        let (headers, _) = instructions.into_parts();
        for header in headers {
            let name = HeaderName::from_bytes(header.name().as_bytes()).map_err(|e| e.to_string())?;
            let mut value = HeaderValue::from_str(header.value()).map_err(|e| e.to_string())?;
            value.set_sensitive(header.sensitive() || name == reqwest::header::AUTHORIZATION);
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_service_and_region() {
        for (host, want) in [
            (
                "search-logs-abc123.eu-west-1.es.amazonaws.com",
                Some((Service::Es, "eu-west-1")),
            ),
            (
                "vpc-logs-abc123.us-gov-west-1.es.amazonaws.com",
                Some((Service::Es, "us-gov-west-1")),
            ),
            (
                "1a2b3c.us-east-1.aoss.amazonaws.com",
                Some((Service::Aoss, "us-east-1")),
            ),
            (
                "search-x.cn-north-1.es.amazonaws.com.cn",
                Some((Service::Es, "cn-north-1")),
            ),
            ("SEARCH-X.US-EAST-2.ES.AMAZONAWS.COM.", Some((Service::Es, "us-east-2"))),
            ("es.amazonaws.com", None),
            ("bucket.s3.us-east-1.amazonaws.com", None),
            ("search.example.com", None),
            ("localhost", None),
        ] {
            let got = infer(host);
            assert_eq!(got.as_ref().map(|(s, r)| (*s, r.as_str())), want, "{host}");
        }
    }
}
