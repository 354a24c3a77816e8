//! S3: listing CloudTrail prefixes and downloading objects, with the AWS SDK.
//!
//! Owns the connection (the standard credential chain and region
//! resolution, `--profile`, `--region`, `--endpoint-url` with path-style
//! addressing), listing with the CloudTrail key layout in mind
//! (`[prefix/]AWSLogs/[o-org/]<account>/CloudTrail[-Insight]/<region>/YYYY/MM/DD/`),
//! and downloads bounded by bytes in flight.
//!
//! Listing is a walk down the layout: accounts, kinds, regions, then only
//! the years, months and days the [`Selection`] asks for (or each day of a
//! short range directly), then the objects of each day. Every step is one
//! delimiter listing; up to [`LIST_CONCURRENCY`] run at once, discovery and
//! object listings alike, deepest first, so objects flow to the readers while
//! discovery goes on.
//!
//! When nothing matched, [`S3::survey`] looks at what the prefix holds (its
//! accounts, regions, and each region's first and last day) in at most
//! [`SURVEY_REQUESTS`] LIST requests. Errors are one line each, with the
//! likely fix ([`super::aws_errors`]).
//!
//! Invariant: LIST requests grow with the number of accounts, regions and
//! days asked for, never with the days outside the range; a missing or
//! unreadable object is reported by key, never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::Client;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Semaphore, mpsc};

use super::aws_errors::{Action, Target, explain_s3_error};
pub use super::layout::Days;
use super::layout::{Place, Selection};
use super::{Listed, Listing, Location, Missing, Seen, SourceObject, is_candidate, is_digest};
use crate::date::{self, today};
use crate::retry::{Answer, Failure, Next, Policy, Retrier, parse_retry_after};
use aws_sdk_s3::config::retry::RetryConfig;

/// LIST requests in flight at once for one source, discovery and object
/// listings together. Each waits for S3's latency and a day of a quiet region
/// holds a few objects, so day-by-day listings need many at once to keep
/// the downloads fed (32 days of 10 objects at 30 ms: about 10,000 keys/s).
pub const LIST_CONCURRENCY: usize = 32;

/// A range of at most this many days is listed day by day, without
/// discovering its years and months first (fewer requests for short ranges,
/// such as a sync's look-back window).
const DIRECT_DAYS: i64 = 7;

/// LIST requests a survey (what a prefix holds, when nothing matched) may
/// send, at most.
pub const SURVEY_REQUESTS: u64 = 100;

/// A failed S3 request, explained in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct S3Error(pub String);

/// How to reach S3, from the command line.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub aws: crate::aws::AwsOptions,
    pub endpoint_url: Option<String>,
    /// Bytes of objects being downloaded or waiting to be decoded, at most.
    pub max_bytes_in_flight: u64,
}

/// A connected S3 client shared by every S3 source of a run.
pub struct S3 {
    client: Client,
    /// The same client with the SDK's retry off: downloads are retried by
    /// [`Retrier`] alone. Built once (a per-request config override would
    /// rebuild the request's runtime configuration on every GET).
    downloads: Client,
    options: S3Options,
    /// The region requests are signed for (for messages).
    region: String,
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

/// Splits `s3://bucket/prefix` into (bucket, prefix), normalised: a prefix
/// names a folder (`s3://b/AWSLogs` is `s3://b/AWSLogs/`), unless its last
/// part is a log file's name.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").context("not an s3:// URL")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("{url}: no bucket name (use s3://BUCKET/PREFIX)");
    }
    let prefix = prefix.trim_start_matches('/');
    let prefix = if prefix.is_empty() || prefix.ends_with('/') || is_candidate(last_segment(prefix)) {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// One step of the walk down the layout: a prefix and what is under it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Above the layout: is there an `AWSLogs/` folder right under it?
    Root(String),
    /// `AWSLogs/`: accounts and organisations.
    Logs(String),
    /// `AWSLogs/o-org/`: the organisation's accounts.
    Org(String),
    /// `…/<account>/`: its `CloudTrail/` and `CloudTrail-Insight/` folders.
    Account(String),
    /// `…/CloudTrail/`: regions.
    Kind(String),
    /// `…/<region>/`: the days of its range.
    Region(String),
    /// `…/<region>/`: the years in range.
    Years(String, Days),
    /// `…/YYYY/`: the months in range.
    Months(String, Days, u32),
    /// `…/YYYY/MM/`: the days in range.
    DaysOf(String, Days, u32, u32),
    /// Every object under the prefix (the selection still applies to each key).
    Objects(String),
}

/// Where the walk of a (normalised) prefix starts.
fn first_step(prefix: &str) -> Step {
    if !(prefix.is_empty() || prefix.ends_with('/')) {
        return Step::Objects(prefix.to_string()); // one object's key
    }
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let Some(root) = segments.iter().position(|s| *s == "AWSLogs") else {
        return Step::Root(prefix.to_string());
    };
    let below = &segments[root + 1..];
    let in_org = below.first().is_some_and(|s| s.starts_with("o-"));
    let prefix = prefix.to_string();
    match (in_org, below.len() - usize::from(in_org)) {
        (false, 0) => Step::Logs(prefix),
        (true, 0) => Step::Org(prefix),
        (_, 1) => Step::Account(prefix),
        (_, 2) => Step::Kind(prefix),
        (_, 3) => Step::Region(prefix),
        _ => Step::Objects(prefix),
    }
}

/// What is listed under a region for a range of days.
fn region_steps(region: String, days: Days) -> Vec<Step> {
    if days.is_open() {
        return vec![Step::Objects(region)];
    }
    // An open end is today; tomorrow too, for clocks a little behind.
    let last = days.to.unwrap_or(today() + 1);
    match days.from {
        Some(first) if first <= last && last - first < DIRECT_DAYS => (first..=last)
            .map(|day| {
                let (y, m, d) = date::ymd(day);
                Step::Objects(format!("{region}{y:04}/{m:02}/{d:02}/"))
            })
            .collect(),
        _ => vec![Step::Years(region, days)],
    }
}

impl S3 {
    /// Resolves credentials and region and builds the client. Fails fast,
    /// saying what was tried, when no credentials can be found.
    pub async fn connect(options: S3Options) -> Result<S3> {
        let config = crate::aws::load(&options.aws, None).await?;
        let mut s3 = aws_sdk_s3::config::Builder::from(&config);
        if let Some(endpoint) = &options.endpoint_url {
            s3 = s3.endpoint_url(endpoint).force_path_style(true);
        }
        let budget_kib = u32::try_from((options.max_bytes_in_flight / 1024).max(1024)).unwrap_or(u32::MAX);
        let region = config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let config = s3.build();
        let downloads = config.to_builder().retry_config(RetryConfig::disabled()).build();
        Ok(S3 {
            client: Client::from_conf(config),
            downloads: Client::from_conf(downloads),
            options,
            region,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            list_requests: AtomicU64::new(0),
        })
    }

    /// Lists one `s3://bucket/prefix` source (prefix as [`parse_url`] gives
    /// it) into `tx`: what the selection asks for, [`LIST_CONCURRENCY`] LIST
    /// requests at a time.
    pub async fn list(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        selection: &Selection,
        tx: &mpsc::Sender<Listed>,
    ) -> Result<Listing> {
        let counts = Counts::default();
        let listing = |stopped| Listing {
            files: counts.files.load(Ordering::Relaxed),
            digests: counts.digests.load(Ordering::Relaxed),
            stopped,
        };
        // A stack: the deepest steps run first, so objects flow early.
        let mut pending = vec![first_step(prefix)];
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < LIST_CONCURRENCY
                && let Some(step) = pending.pop()
            {
                running.push(self.step(bucket, step, selection, tx, &counts));
            }
            match running.next().await {
                None => return Ok(listing(false)),
                Some(Err(e)) => return Err(e),
                // The reader is gone: stop.
                Some(Ok(None)) => return Ok(listing(true)),
                // In reverse, so the first (earliest) is taken first.
                Some(Ok(Some(next))) => pending.extend(next.into_iter().rev()),
            }
        }
    }

    /// Runs one step of the walk: the steps it leads to, or None when the
    /// reader is gone.
    async fn step(
        self: &Arc<Self>,
        bucket: &str,
        step: Step,
        selection: &Selection,
        tx: &mpsc::Sender<Listed>,
        counts: &Counts,
    ) -> Result<Option<Vec<Step>>> {
        let next = match step {
            Step::Root(base) => {
                let logs = format!("{base}AWSLogs/");
                if self.common_prefixes(bucket, &base).await?.contains(&logs) {
                    vec![Step::Logs(logs)]
                } else {
                    vec![Step::Objects(base)]
                }
            }
            Step::Logs(root) => self
                .common_prefixes(bucket, &root)
                .await?
                .into_iter()
                .filter_map(|child| {
                    let name = last_segment(&child);
                    if name.starts_with("o-") {
                        Some(Step::Org(child))
                    } else {
                        selection.wants_account(name).then_some(Step::Account(child))
                    }
                })
                .collect(),
            // Accounts asked for: no need to list the organisation's thousands.
            Step::Org(org) if !selection.accounts.is_empty() => selection
                .accounts
                .iter()
                .map(|a| Step::Account(format!("{org}{a}/")))
                .collect(),
            Step::Org(org) => self
                .common_prefixes(bucket, &org)
                .await?
                .into_iter()
                .map(Step::Account)
                .collect(),
            Step::Account(account) if !selection.wants_account(last_segment(&account)) => Vec::new(),
            Step::Account(account) => self
                .common_prefixes(bucket, &account)
                .await?
                .into_iter()
                .filter(|k| match last_segment(k) {
                    "CloudTrail" | "CloudTrail-Insight" => true,
                    "CloudTrail-Digest" => selection.digests,
                    _ => false,
                })
                .map(Step::Kind)
                .collect(),
            Step::Kind(kind) if !selection.regions.is_empty() => selection
                .regions
                .iter()
                .map(|r| Step::Region(format!("{kind}{r}/")))
                .collect(),
            Step::Kind(kind) => self
                .common_prefixes(bucket, &kind)
                .await?
                .into_iter()
                .map(Step::Region)
                .collect(),
            Step::Region(region) if !selection.wants_region(last_segment(&region)) => Vec::new(),
            Step::Region(region) => {
                let days = selection.days_for(&format!("s3://{bucket}/{region}"));
                region_steps(region, days)
            }
            Step::Years(region, days) => self
                .common_prefixes(bucket, &region)
                .await?
                .into_iter()
                .filter_map(|year| {
                    let y = last_segment(&year).parse::<u32>().ok()?;
                    days.may_hold(y, None, None).then_some(Step::Months(year, days, y))
                })
                .collect(),
            Step::Months(year, days, y) => self
                .common_prefixes(bucket, &year)
                .await?
                .into_iter()
                .filter_map(|month| {
                    let m = last_segment(&month).parse::<u32>().ok()?;
                    days.may_hold(y, Some(m), None)
                        .then_some(Step::DaysOf(month, days, y, m))
                })
                .collect(),
            Step::DaysOf(month, days, y, m) => self
                .common_prefixes(bucket, &month)
                .await?
                .into_iter()
                .filter_map(|day| {
                    let d = last_segment(&day).parse::<u32>().ok()?;
                    days.may_hold(y, Some(m), Some(d)).then_some(Step::Objects(day))
                })
                .collect(),
            Step::Objects(prefix) => {
                if !self.list_objects(bucket, &prefix, selection, tx, counts).await? {
                    return Ok(None);
                }
                Vec::new()
            }
        };
        Ok(Some(next))
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
            let page = page.map_err(|e| self.error(&e, Action::List, bucket, prefix))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(String::from)),
            );
        }
        Ok(out)
    }

    /// Lists every object under a prefix into `tx`, skipping what the
    /// selection does not want; false when the reader is gone.
    async fn list_objects(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        selection: &Selection,
        tx: &mpsc::Sender<Listed>,
        counts: &Counts,
    ) -> Result<bool> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.list_requests.fetch_add(1, Ordering::Relaxed);
            let page = page.map_err(|e| self.error(&e, Action::List, bucket, prefix))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if key.ends_with('/') {
                    continue;
                }
                let name = format!("s3://{bucket}/{key}");
                if !selection.wants_file(&name) {
                    continue;
                }
                let name: Arc<str> = Arc::from(name);
                let listed = if is_digest(key) {
                    counts.digests.fetch_add(1, Ordering::Relaxed);
                    Listed::Digest(name)
                } else {
                    counts.files.fetch_add(1, Ordering::Relaxed);
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
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// What a prefix holds whatever the selection's days (see [`Seen`]), in
    /// at most [`SURVEY_REQUESTS`] LIST requests: its accounts, the regions
    /// of the accounts the selection wants, and the first and last delivery
    /// day of each region it wants; outside the layout, its objects. Said
    /// when nothing matched.
    pub async fn survey(&self, bucket: &str, prefix: &str, selection: &Selection) -> Result<Seen> {
        let mut look = Survey {
            s3: self,
            bucket,
            selection,
            seen: Seen::default(),
            requests: 0,
        };
        let mut pending = vec![first_step(prefix)];
        while let Some(step) = pending.pop() {
            if look.requests >= SURVEY_REQUESTS {
                look.seen.partial = true;
                break;
            }
            let mut next = match step {
                Step::Root(base) => {
                    let logs = format!("{base}AWSLogs/");
                    match look.folders(&base).await?.contains(&logs) {
                        true => vec![Step::Logs(logs)],
                        false => vec![Step::Objects(base)],
                    }
                }
                Step::Logs(parent) | Step::Org(parent) => {
                    let mut next = Vec::new();
                    for child in look.folders(&parent).await? {
                        if last_segment(&child).starts_with("o-") {
                            next.push(Step::Org(child));
                        } else if look.note_folder(&child) && Place::of_folder(&child).account.is_some() {
                            next.push(Step::Account(child));
                        }
                    }
                    next
                }
                Step::Account(account) if !look.note_folder(&account) => Vec::new(),
                Step::Account(account) => look
                    .folders(&account)
                    .await?
                    .into_iter()
                    .filter(|k| matches!(last_segment(k), "CloudTrail" | "CloudTrail-Insight"))
                    .map(Step::Kind)
                    .collect(),
                Step::Kind(kind) => {
                    let mut next = Vec::new();
                    for region in look.folders(&kind).await? {
                        if look.note_folder(&region) {
                            next.push(Step::Region(region));
                        }
                    }
                    next
                }
                Step::Region(region) => {
                    if look.note_folder(&region) {
                        look.day_bounds(&region).await?;
                    }
                    Vec::new()
                }
                Step::Objects(prefix) => {
                    look.objects(&prefix).await?;
                    Vec::new()
                }
                // Not where a walk starts.
                Step::Years(..) | Step::Months(..) | Step::DaysOf(..) => Vec::new(),
            };
            next.reverse();
            pending.extend(next);
        }
        // Nothing under the prefix: what is beside it (a typo shows there).
        if look.seen.is_empty() && !prefix.is_empty() {
            let trimmed = prefix.trim_end_matches('/');
            let parent = match trimmed.rfind('/') {
                Some(at) => &trimmed[..=at],
                None => "",
            };
            look.seen.nearby = look
                .folders(parent)
                .await?
                .into_iter()
                .map(|f| format!("s3://{bucket}/{f}"))
                .collect();
        }
        Ok(look.seen)
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
        // One policy for the whole download: the SDK's own retry is off for
        // downloads, so that its attempts and these do not multiply.
        let mut retrier = Retrier::new(Policy::AWS);
        loop {
            let result = async {
                let object = self
                    .downloads
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| (self.download_error(&e, bucket, key), answer_of(&e)))?;
                let bytes = object.body.collect().await.map_err(|e| {
                    let message = format!(
                        "cannot download s3://{bucket}/{key}: the download broke off ({})",
                        crate::aws::innermost(&e)
                    );
                    (S3Error(message).into(), Some(Answer::Failed(Failure::CutOff)))
                })?;
                // Without a copy when the body came in one piece.
                Ok::<_, (anyhow::Error, Option<Answer>)>(Vec::from(bytes.into_bytes()))
            }
            .await;
            match result {
                Ok(bytes) => return Ok((bytes, permit)),
                Err((error, answer)) => match answer.map(|answer| retrier.next(&answer)) {
                    Some(Next::Retry(pause)) => {
                        tracing::debug!("{error:#}; retrying in {:.1}s", pause.as_secs_f64());
                        tokio::time::sleep(pause).await;
                    }
                    _ => return Err(error),
                },
            }
        }
    }
}

impl S3 {
    /// Downloads one small object with its user metadata (`x-amz-meta-*`,
    /// without the prefix): a digest file and its signature (`verify`).
    pub async fn read_with_metadata(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Vec<u8>, std::collections::HashMap<String, String>)> {
        let object = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.download_error(&e, bucket, key))?;
        let metadata = object.metadata().cloned().unwrap_or_default();
        let bytes = object.body.collect().await.map_err(|e| {
            S3Error(format!(
                "cannot download s3://{bucket}/{key}: the download broke off ({})",
                crate::aws::innermost(&e)
            ))
        })?;
        Ok((bytes.into_bytes().to_vec(), metadata))
    }

    /// A failed GetObject, explained in one line: [`Missing`] when the
    /// object is not there, else an [`S3Error`].
    fn download_error(
        &self,
        e: &aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::get_object::GetObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
        bucket: &str,
        key: &str,
    ) -> anyhow::Error {
        let message = self.explain(e, Action::Download, bucket, key);
        let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
            || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
        match missing {
            true => anyhow::Error::new(Missing(message)),
            false => anyhow::Error::new(S3Error(message)),
        }
    }
}

/// A failed S3 request as the retry policy reads it; None for failures no
/// retry can help (a request that could not be built, credentials).
fn answer_of<E>(error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<Answer>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::TimeoutError(_) => Some(Answer::Failed(Failure::TimedOut)),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Some(Answer::Failed(Failure::TimedOut)),
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            let refused = std::iter::successors(
                std::error::Error::source(error),
                |e: &&(dyn std::error::Error + 'static)| e.source(),
            )
            .any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            });
            Some(Answer::Failed(if refused { Failure::Refused } else { Failure::Reset }))
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => None,
        // S3 says a slow connection timed out with a 400 of its own.
        SdkError::ServiceError(service) if service.err().code() == Some("RequestTimeout") => {
            Some(Answer::Failed(Failure::TimedOut))
        }
        _ => {
            let response = error.raw_response()?;
            Some(Answer::Status {
                status: response.status().as_u16(),
                retry_after: response.headers().get("retry-after").and_then(parse_retry_after),
            })
        }
    }
}

/// A survey under way: its findings and its requests.
struct Survey<'a> {
    s3: &'a S3,
    bucket: &'a str,
    selection: &'a Selection,
    seen: Seen,
    requests: u64,
}

impl Survey<'_> {
    /// Notes a folder of the layout; false when the selection rules out
    /// what is below it.
    fn note_folder(&mut self, folder: &str) -> bool {
        let place = Place::of_folder(folder);
        self.seen.note(&place, place.delivery_day(), self.selection)
    }

    /// The folders directly under `prefix` (first page only: a thousand).
    async fn folders(&mut self, prefix: &str) -> Result<Vec<String>> {
        self.requests += 1;
        self.s3.list_requests.fetch_add(1, Ordering::Relaxed);
        let page = self
            .s3
            .client
            .list_objects_v2()
            .bucket(self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .send()
            .await
            .map_err(|e| self.s3.error(&e, Action::List, self.bucket, prefix))?;
        if page.is_truncated() == Some(true) {
            self.seen.partial = true;
        }
        Ok(page
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(String::from))
            .collect())
    }

    /// The objects under `prefix`, while the request budget lasts.
    async fn objects(&mut self, prefix: &str) -> Result<()> {
        let mut pages = self
            .s3
            .client
            .list_objects_v2()
            .bucket(self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.requests += 1;
            self.s3.list_requests.fetch_add(1, Ordering::Relaxed);
            let page = page.map_err(|e| self.s3.error(&e, Action::List, self.bucket, prefix))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                if !key.ends_with('/') {
                    self.seen
                        .note_file(&format!("s3://{}/{key}", self.bucket), self.selection);
                }
            }
            if self.requests >= SURVEY_REQUESTS {
                self.seen.partial = page.is_truncated() == Some(true);
                break;
            }
        }
        Ok(())
    }

    /// Notes the first and last delivery day under a region folder: the
    /// first day of the first month of the first year, and the last of
    /// the last (five requests).
    async fn day_bounds(&mut self, region: &str) -> Result<()> {
        for first in [true, false] {
            let mut folder = region.to_string();
            for digits in [4, 2, 2] {
                let children = self.folders(&folder).await?;
                let numbered = children.into_iter().filter(|c| {
                    let name = last_segment(c);
                    name.len() == digits && name.bytes().all(|b| b.is_ascii_digit())
                });
                let pick = match first {
                    true => numbered.min(),
                    false => numbered.max(),
                };
                match pick {
                    Some(child) => folder = child,
                    None => return Ok(()),
                }
            }
            self.note_folder(&folder);
        }
        Ok(())
    }
}

/// What one listing sent on, counted by its concurrent steps.
#[derive(Default)]
struct Counts {
    files: AtomicU64,
    digests: AtomicU64,
}

impl S3 {
    /// A failed request, explained in one line.
    fn explain<E>(
        &self,
        error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        action: Action,
        bucket: &str,
        key: &str,
    ) -> String
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let target = Target {
            bucket,
            key,
            region: &self.region,
            endpoint: self.options.endpoint_url.as_deref(),
        };
        explain_s3_error(error, action, &target)
    }

    /// A failed request, as an error.
    fn error<E>(
        &self,
        error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        action: Action,
        bucket: &str,
        key: &str,
    ) -> anyhow::Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let message = self.explain(error, action, bucket, key);
        tracing::debug!("{message}: {}", aws_sdk_s3::error::DisplayErrorContext(error));
        S3Error(message).into()
    }
}

fn last_segment(prefix: &str) -> &str {
    prefix.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::parse_day;

    #[test]
    fn urls_are_normalised() {
        for (url, bucket, prefix) in [
            ("s3://b", "b", ""),
            ("s3://b/", "b", ""),
            ("s3://b/AWSLogs", "b", "AWSLogs/"),
            ("s3://b//AWSLogs/", "b", "AWSLogs/"),
            ("s3://b/trail", "b", "trail/"),
            (
                "s3://b/AWSLogs/1/CloudTrail/us-east-1/2024/01/01/x.json.gz",
                "b",
                "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/x.json.gz",
            ),
        ] {
            assert_eq!(parse_url(url).unwrap(), (bucket.into(), prefix.into()), "{url}");
        }
        assert!(parse_url("s3:///x").is_err());
        assert_eq!(last_segment("AWSLogs/o-abc/"), "o-abc");
    }

    #[test]
    fn walks_start_at_the_prefix_level() {
        let s = |p: &str| p.to_string();
        for (prefix, step) in [
            ("", Step::Root(s(""))),
            ("trail/", Step::Root(s("trail/"))),
            ("AWSLogs/", Step::Logs(s("AWSLogs/"))),
            ("t/AWSLogs/o-x/", Step::Org(s("t/AWSLogs/o-x/"))),
            ("AWSLogs/111111111111/", Step::Account(s("AWSLogs/111111111111/"))),
            (
                "AWSLogs/o-x/111111111111/",
                Step::Account(s("AWSLogs/o-x/111111111111/")),
            ),
            (
                "AWSLogs/111111111111/CloudTrail/",
                Step::Kind(s("AWSLogs/111111111111/CloudTrail/")),
            ),
            (
                "AWSLogs/o-x/111111111111/CloudTrail/eu-west-1/",
                Step::Region(s("AWSLogs/o-x/111111111111/CloudTrail/eu-west-1/")),
            ),
            (
                "AWSLogs/111111111111/CloudTrail/eu-west-1/2024/",
                Step::Objects(s("AWSLogs/111111111111/CloudTrail/eu-west-1/2024/")),
            ),
            ("a/x.json.gz", Step::Objects(s("a/x.json.gz"))),
        ] {
            assert_eq!(first_step(prefix), step, "{prefix}");
        }
    }

    #[test]
    fn short_ranges_are_listed_day_by_day() {
        let day = |t: &str| parse_day(t).unwrap();
        let r = || "R/".to_string();
        let steps = region_steps(
            r(),
            Days {
                from: Some(day("2024-02-28")),
                to: Some(day("2024-03-01")),
            },
        );
        assert_eq!(
            steps,
            ["R/2024/02/28/", "R/2024/02/29/", "R/2024/03/01/"].map(|p| Step::Objects(p.into()))
        );
        let long = Days {
            from: Some(day("2024-01-01")),
            to: Some(day("2024-03-01")),
        };
        assert_eq!(region_steps(r(), long), [Step::Years(r(), long)]);
        assert_eq!(region_steps(r(), Days::default()), [Step::Objects(r())]);
        // An open end: up to tomorrow when that is close, else walked.
        let recent = Days {
            from: Some(today() - 1),
            to: None,
        };
        assert_eq!(region_steps(r(), recent).len(), 3);
        let old = Days {
            from: Some(day("2024-01-01")),
            to: None,
        };
        assert_eq!(region_steps(r(), old), [Step::Years(r(), old)]);
    }
}
