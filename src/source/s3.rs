//! S3: listing CloudTrail prefixes and downloading objects, with the AWS SDK.
//!
//! Owns the connection (the standard credential chain and region
//! resolution, `--profile`, `--region`, `--endpoint-url` with path-style
//! addressing), knowledge of the CloudTrail key layout
//! (`[prefix/]AWSLogs/[o-org/]<account>/CloudTrail[-Insight]/<region>/YYYY/MM/DD/`),
//! turning `--accounts`/`--regions`/`--from`/`--to` into exact prefixes that are
//! listed concurrently, and downloads bounded by bytes in flight.
//!
//! Invariant: LIST requests grow with the number of accounts, regions and
//! days asked for, never with the days outside the range; a missing or
//! unreadable object is reported by key, never fatal.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::DisplayErrorContext;
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};

use super::{Listed, Location, SourceObject, is_digest};
use crate::transform::civil_from_days;

/// How to reach S3 and what to select, from the command line.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Only these accounts (12 digits), when not empty.
    pub accounts: Vec<String>,
    /// Only these regions, when not empty.
    pub regions: Vec<String>,
    /// Delivery days, inclusive, as days since 1970-01-01.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Bytes of objects being downloaded or waiting to be decoded, at most.
    pub max_bytes_in_flight: u64,
}

/// A connected S3 client shared by every S3 source of a run.
pub struct S3 {
    client: Client,
    options: S3Options,
    /// Downloads wait here for their size in KiB.
    budget: Arc<Semaphore>,
    budget_kib: u32,
    /// LIST requests sent (for the summary and tests).
    pub list_requests: AtomicU64,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3({:?})", self.options.endpoint_url)
    }
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_day(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not a date (use YYYY-MM-DD, UTC)");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=2999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y as u32, m, d) {
        return Err(bad());
    }
    Ok(days)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits `s3://bucket/prefix` into (bucket, prefix).
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").context("not an s3:// URL")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("{url}: no bucket name (use s3://BUCKET/PREFIX)");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl S3 {
    /// Resolves credentials and region and builds the client. Fails fast,
    /// saying what was tried, when no credentials can be found.
    pub async fn connect(options: S3Options) -> Result<S3> {
        // Instance metadata answers in milliseconds where it exists; elsewhere
        // it must not make ctindex hang.
        let imds = aws_config::imds::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(1))
            .max_attempts(1)
            .build();
        let region = match &options.region {
            Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
            None => RegionProviderChain::default_provider().or_else(Region::new("us-east-1")),
        };
        let mut chain = DefaultCredentialsChain::builder().imds_client(imds);
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
            Ok(Ok(_)) => {}
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
        let mut s3 = aws_sdk_s3::config::Builder::from(&config);
        if let Some(endpoint) = &options.endpoint_url {
            s3 = s3.endpoint_url(endpoint).force_path_style(true);
        }
        let budget_kib = u32::try_from((options.max_bytes_in_flight / 1024).max(1024)).unwrap_or(u32::MAX);
        Ok(S3 {
            client: Client::from_conf(s3.build()),
            options,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            list_requests: AtomicU64::new(0),
        })
    }

    /// Lists one `s3://bucket/prefix` source into `tx`.
    ///
    /// `days` (first, last delivery day) overrides `--from`/`--to` (sync uses it).
    pub async fn list(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        days: Option<Days>,
        tx: &mpsc::Sender<Listed>,
    ) -> Result<()> {
        let days = days.unwrap_or(Days {
            from: self.options.from,
            to: self.options.to,
        });
        let plan = self.plan(bucket, prefix, days).await?;
        tracing::debug!("s3://{bucket}/{prefix}: listing {} prefix(es)", plan.len());
        let tx = tx.clone();
        let results = futures::stream::iter(plan)
            .map(|(prefix, recursive_filter)| {
                let tx = tx.clone();
                let s3 = self.clone();
                async move {
                    s3.list_objects(bucket, &prefix, recursive_filter.then_some(days), &tx)
                        .await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        results.into_iter().collect()
    }

    /// The prefixes to list for a source: exact day prefixes where the layout
    /// and the options allow, else the prefix itself (recursively, with the
    /// day filter applied to the keys).
    async fn plan(&self, bucket: &str, prefix: &str, days: Days) -> Result<Vec<(String, bool)>> {
        let root = match prefix.find("AWSLogs/") {
            Some(at) if at == 0 || prefix[..at].ends_with('/') => Some(prefix[..at + "AWSLogs/".len()].to_string()),
            _ => {
                // Above the layout (the bucket root or a trail's prefix)? Look for AWSLogs/ beneath.
                let base = if prefix.is_empty() || prefix.ends_with('/') {
                    prefix.to_string()
                } else {
                    format!("{prefix}/")
                };
                let children = self.common_prefixes(bucket, &base).await?;
                children
                    .contains(&format!("{base}AWSLogs/"))
                    .then(|| format!("{base}AWSLogs/"))
            }
        };
        let Some(root) = root else {
            return Ok(vec![(prefix.to_string(), true)]);
        };
        let below: Vec<&str> = prefix[prefix.len().min(root.len())..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        // Deeper than the account level: list what was asked for, filtering keys by day.
        if below.len() > 2 || (below.len() == 2 && !below[0].starts_with("o-")) {
            return Ok(vec![(prefix.to_string(), true)]);
        }

        // Accounts (through organisations where the trail is an organisation trail).
        let mut accounts = Vec::new();
        let scopes: Vec<String> = match below.as_slice() {
            [] => {
                let mut scopes = Vec::new();
                for child in self.common_prefixes(bucket, &root).await? {
                    let name = last_segment(&child);
                    if name.starts_with("o-") {
                        scopes.push(child);
                    } else {
                        accounts.push(child);
                    }
                }
                scopes
            }
            [first] if first.starts_with("o-") => vec![format!("{root}{first}/")],
            [first] => {
                accounts.push(format!("{root}{first}/"));
                Vec::new()
            }
            [org, account] => {
                accounts.push(format!("{root}{org}/{account}/"));
                Vec::new()
            }
            _ => Vec::new(),
        };
        for org in scopes {
            if self.options.accounts.is_empty() {
                accounts.extend(self.common_prefixes(bucket, &org).await?);
            } else {
                accounts.extend(self.options.accounts.iter().map(|a| format!("{org}{a}/")));
            }
        }
        if !self.options.accounts.is_empty() {
            let wanted: BTreeSet<&str> = self.options.accounts.iter().map(String::as_str).collect();
            accounts.retain(|a| wanted.contains(last_segment(a)));
            if below.is_empty() {
                // Accounts asked for that sit directly under AWSLogs/ but were not listed as such.
                for a in &self.options.accounts {
                    let direct = format!("{root}{a}/");
                    if !accounts.contains(&direct) {
                        accounts.push(direct);
                    }
                }
            }
        }

        // Regions under CloudTrail/ and CloudTrail-Insight/ of each account, then days.
        let mut plan = Vec::new();
        for account in accounts {
            let kinds: Vec<String> = self
                .common_prefixes(bucket, &account)
                .await?
                .into_iter()
                .filter(|k| matches!(last_segment(k), "CloudTrail" | "CloudTrail-Insight"))
                .collect();
            for kind in kinds {
                let regions = if self.options.regions.is_empty() {
                    self.common_prefixes(bucket, &kind).await?
                } else {
                    self.options.regions.iter().map(|r| format!("{kind}{r}/")).collect()
                };
                for region in regions {
                    if days.from.is_none() && days.to.is_none() {
                        plan.push((region, true));
                    } else {
                        let found = self.day_prefixes(bucket, &region, days).await?;
                        plan.extend(found.into_iter().map(|day| (day, false)));
                    }
                }
            }
        }
        Ok(plan)
    }

    /// The `YYYY/MM/DD/` folders under a region that fall in the range, found
    /// by walking years, then months, then days in range only: the requests
    /// grow with the folders in range, not with the calendar days between.
    async fn day_prefixes(&self, bucket: &str, region: &str, days: Days) -> Result<Vec<String>> {
        let (from, to) = (days.from.map(civil_from_days), days.to.map(civil_from_days));
        let year_ok = |y: u32| from.is_none_or(|f| y >= f.0) && to.is_none_or(|t| y <= t.0);
        let month_ok =
            |y: u32, m: u32| from.is_none_or(|f| (y, m) >= (f.0, f.1)) && to.is_none_or(|t| (y, m) <= (t.0, t.1));
        let mut out = Vec::new();
        for year in self.common_prefixes(bucket, region).await? {
            let Ok(y) = last_segment(&year).parse::<u32>() else {
                continue;
            };
            if !year_ok(y) {
                continue;
            }
            for month in self.common_prefixes(bucket, &year).await? {
                let Ok(m) = last_segment(&month).parse::<u32>() else {
                    continue;
                };
                if !month_ok(y, m) {
                    continue;
                }
                for day in self.common_prefixes(bucket, &month).await? {
                    if days.contains_key(&day) {
                        out.push(day);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One delimiter listing: the "folders" directly under a prefix.
    async fn common_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.list_requests.fetch_add(1, Ordering::Relaxed);
            let page = page.map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e))).with_context(|| {
                format!("cannot list s3://{bucket}/{prefix} (check the bucket name, --region and the credentials' s3:ListBucket permission)")
            })?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(String::from)),
            );
        }
        Ok(out)
    }

    /// Lists every object under a prefix into `tx`, skipping digests and, for
    /// recursive listings, keys outside the day range.
    async fn list_objects(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        filter_days: Option<Days>,
        tx: &mpsc::Sender<Listed>,
    ) -> Result<()> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.list_requests.fetch_add(1, Ordering::Relaxed);
            let page = page
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .with_context(|| format!("cannot list s3://{bucket}/{prefix}"))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if key.ends_with('/') {
                    continue;
                }
                let name: Arc<str> = Arc::from(format!("s3://{bucket}/{key}"));
                let listed = if is_digest(key) {
                    Listed::Digest(name)
                } else if filter_days.is_some_and(|d| !d.contains_key(key)) {
                    continue;
                } else {
                    Listed::Object(SourceObject {
                        name,
                        size: object.size().unwrap_or(0).max(0) as u64,
                        version: object.e_tag().unwrap_or("").trim_matches('"').to_string(),
                        location: Location::S3 {
                            s3: self.clone(),
                            bucket: bucket.to_string(),
                            key: key.to_string(),
                        },
                    })
                };
                if tx.send(listed).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Downloads one object, waiting for room in the bytes-in-flight budget;
    /// the returned permit is released when the caller drops it.
    pub async fn read(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
    ) -> Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit)> {
        let kib = u32::try_from(size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_kib);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .context("the download budget was closed")?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let object = self
                    .client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| {
                        let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                        anyhow::anyhow!(
                            "{}{}",
                            if missing { "no such key: " } else { "" },
                            DisplayErrorContext(&e)
                        )
                    })?;
                let bytes = object.body.collect().await.context("the download broke off")?;
                anyhow::Ok(bytes.into_bytes().to_vec())
            }
            .await;
            match result {
                Ok(bytes) => return Ok((bytes, permit)),
                // The SDK already retried throttling and connection errors; a body cut off mid-way is retried here.
                Err(e) if attempt < 3 && e.to_string().contains("broke off") => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) => return Err(e.context(format!("s3://{bucket}/{key}: cannot download"))),
            }
        }
    }
}

/// A range of delivery days (days since 1970-01-01), inclusive; open where None.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Days {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Days {
    /// Whether a key's delivery day (its `YYYY/MM/DD/` folders) is in range;
    /// keys without such folders always are.
    pub fn contains_key(&self, key: &str) -> bool {
        match key_day(key) {
            Some(day) => self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t),
            None => true,
        }
    }
}

fn last_segment(prefix: &str) -> &str {
    prefix.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// The delivery day of a CloudTrail key: the `YYYY/MM/DD` folders after the region.
pub fn key_day(key: &str) -> Option<i64> {
    let parts: Vec<&str> = key.split('/').collect();
    parts.windows(3).find_map(|w| {
        let (y, m, d) = (w[0], w[1], w[2]);
        if y.len() == 4 && m.len() == 2 && d.len() == 2 {
            parse_day(&format!("{y}-{m}-{d}")).ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(parse_day("2024-02-29"), Ok(19_782));
        assert!(parse_day("2023-02-29").is_err());
        assert!(parse_day("2024-13-01").is_err());
        assert!(parse_day("yesterday").is_err());
        for d in [-1000, 0, 19_000, 30_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(i64::from(y), m, dd), d);
        }
    }

    #[test]
    fn keys_and_urls() {
        assert_eq!(
            key_day("AWSLogs/o-abc/123456789012/CloudTrail/us-east-1/2024/02/29/x.json.gz"),
            parse_day("2024-02-29").ok()
        );
        assert_eq!(key_day("random/key.json"), None);
        assert_eq!(parse_url("s3://b/AWSLogs/").unwrap(), ("b".into(), "AWSLogs/".into()));
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///x").is_err());
        assert_eq!(last_segment("AWSLogs/o-abc/"), "o-abc");
    }
}
