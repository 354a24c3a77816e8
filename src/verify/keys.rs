//! CloudTrail's public keys: from the JSON `aws cloudtrail list-public-keys`
//! prints (`--public-keys FILE`), or from the ListPublicKeys API itself.
//!
//! A key's `Value` is the base64 of a DER-encoded PKCS#1 RSAPublicKey;
//! digests name theirs by `Fingerprint`. The API is one JSON 1.1 POST per
//! region and page, signed with SigV4 by [`crate::http::sigv4::Signer`] and
//! the credential chain S3 uses (IAM permission `cloudtrail:ListPublicKeys`):
//! lighter than the SDK's CloudTrail client, which cost 1.5 CPU-minutes of
//! build for one call.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde::Deserialize;

use crate::aws::AwsOptions;

/// One public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    der: Vec<u8>,
}

impl PublicKey {
    /// Whether `signature` is a valid SHA256withRSA (PKCS #1 v1.5) signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.der)
            .verify(message, signature)
            .is_ok()
    }
}

/// The keys by fingerprint (lower-case hex), and where they came from.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, PublicKey>,
    source: String,
}

/// `list-public-keys` output, and the API's answer alike (times are ISO
/// strings in the one, numbers in the other: not read).
#[derive(Debug, Deserialize)]
struct KeyList {
    #[serde(rename = "PublicKeyList", default)]
    public_key_list: Vec<KeyEntry>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeyEntry {
    #[serde(rename = "Value")]
    value: String,
    #[serde(rename = "Fingerprint")]
    fingerprint: String,
}

impl PublicKeys {
    pub fn get(&self, fingerprint: &str) -> Option<&PublicKey> {
        self.keys.get(&fingerprint.to_ascii_lowercase())
    }

    /// Where the keys came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn add(&mut self, list: KeyList, origin: &str) -> Result<Option<String>> {
        for entry in list.public_key_list {
            let der = base64::engine::general_purpose::STANDARD
                .decode(entry.value.trim())
                .with_context(|| format!("{origin}: the key {} is not base64", entry.fingerprint))?;
            self.keys
                .insert(entry.fingerprint.to_ascii_lowercase(), PublicKey { der });
        }
        Ok(list.next_token.filter(|t| !t.is_empty()))
    }

    /// Reads the JSON that `aws cloudtrail list-public-keys` prints.
    pub fn from_file(path: &std::path::Path) -> Result<PublicKeys> {
        let text = std::fs::read(path).with_context(|| format!("--public-keys {}: cannot read", path.display()))?;
        let list: KeyList = serde_json::from_slice(&text).with_context(|| {
            format!(
                "--public-keys {}: not the JSON of `aws cloudtrail list-public-keys` ({{\"PublicKeyList\":[…]}})",
                path.display()
            )
        })?;
        let mut keys = PublicKeys {
            source: format!("keys from {}", path.display()),
            ..PublicKeys::default()
        };
        keys.add(list, &path.display().to_string())?;
        if keys.is_empty() {
            bail!("--public-keys {}: it lists no key", path.display());
        }
        Ok(keys)
    }

    /// Asks CloudTrail's ListPublicKeys API in each region for the keys
    /// valid between `start` and `end` (seconds since 1970), at `endpoint`
    /// when given (else the region's public endpoint).
    pub async fn from_api(
        options: &AwsOptions,
        regions: &[String],
        start: i64,
        end: i64,
        endpoint: Option<&str>,
    ) -> Result<PublicKeys> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        let mut keys = PublicKeys {
            source: format!("keys from CloudTrail ListPublicKeys in {}", regions.join(", ")),
            ..PublicKeys::default()
        };
        for region in regions {
            let signer = crate::http::sigv4::Signer::for_service(options, region, "cloudtrail")
                .await
                .with_context(|| format!("cannot ask CloudTrail in {region} for its public keys"))?;
            let url = endpoint.map_or_else(|| public_endpoint(region), str::to_string);
            let mut token: Option<String> = None;
            loop {
                let mut body = serde_json::json!({"StartTime": start, "EndTime": end});
                if let Some(token) = &token {
                    body["NextToken"] = token.clone().into();
                }
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/x-amz-json-1.1")
                    .header(
                        "x-amz-target",
                        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListPublicKeys",
                    )
                    .body(body.to_string())
                    .build()
                    .context("cannot build the ListPublicKeys request")?;
                signer
                    .sign(&mut request)
                    .await
                    .map_err(|e| anyhow::anyhow!("ListPublicKeys in {region}: {e}"))?;
                let response = client
                    .execute(request)
                    .await
                    .with_context(|| format!("ListPublicKeys in {region}: no answer from {url}"))?;
                let status = response.status();
                let text = response
                    .text()
                    .await
                    .with_context(|| format!("ListPublicKeys in {region}: the answer broke off"))?;
                if !status.is_success() {
                    let hint = match status.as_u16() {
                        400 | 403 if text.contains("AccessDenied") || text.contains("not authorized") => {
                            ": allow cloudtrail:ListPublicKeys, or pass --public-keys FILE (the output of `aws cloudtrail list-public-keys`)"
                        }
                        _ => ": pass --public-keys FILE to check offline",
                    };
                    bail!(
                        "ListPublicKeys in {region}: {status}: {}{hint}",
                        text.chars().take(300).collect::<String>()
                    );
                }
                let list: KeyList = serde_json::from_str(&text)
                    .with_context(|| format!("ListPublicKeys in {region}: the answer is not its JSON"))?;
                token = keys.add(list, &format!("ListPublicKeys in {region}"))?;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(keys)
    }
}

/// CloudTrail's endpoint in a region (China regions under amazonaws.com.cn).
fn public_endpoint(region: &str) -> String {
    match region.starts_with("cn-") {
        true => format!("https://cloudtrail.{region}.amazonaws.com.cn/"),
        false => format!("https://cloudtrail.{region}.amazonaws.com/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_of_the_cli_and_the_api_parse() {
        let cli = r#"{"PublicKeyList":[{"Value":"AAEC","ValidityStartTime":"2024-01-01T00:00:00+00:00",
            "ValidityEndTime":"2024-02-01T00:00:00+00:00","Fingerprint":"ABCDEF"}]}"#;
        let api = r#"{"PublicKeyList":[{"Value":"AwQF","ValidityStartTime":1.7e9,"ValidityEndTime":1.8e9,
            "Fingerprint":"0123"}],"NextToken":"next"}"#;
        let mut keys = PublicKeys::default();
        assert_eq!(keys.add(serde_json::from_str(cli).unwrap(), "cli").unwrap(), None);
        assert_eq!(
            keys.add(serde_json::from_str(api).unwrap(), "api").unwrap().as_deref(),
            Some("next")
        );
        assert_eq!(keys.get("abcdef").unwrap().der, vec![0, 1, 2]);
        assert_eq!(keys.get("0123").unwrap().der, vec![3, 4, 5]);
        assert!(keys.get("ffff").is_none());
        assert!(
            keys.add(
                serde_json::from_str(r#"{"PublicKeyList":[{"Value":"!!","Fingerprint":"x"}]}"#).unwrap(),
                "bad"
            )
            .is_err()
        );
        assert_eq!(
            public_endpoint("cn-north-1"),
            "https://cloudtrail.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            public_endpoint("eu-west-1"),
            "https://cloudtrail.eu-west-1.amazonaws.com/"
        );
    }
}
