//! S3 errors in one line: what failed, on which bucket or key, and the
//! likely fix (the bucket name, `--region`, the credentials, the
//! permissions, `--endpoint-url`).
//!
//! The SDK renders its errors as nested debug dumps of a kilobyte or two
//! (`ServiceError(ServiceError { source: NoSuchBucket(…`); these are the
//! messages the user reads instead. Pure: no I/O.

use std::error::Error as StdError;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::aws::{clip, innermost, one_line};

/// Attempts the SDK makes before an error reaches us (see [`crate::aws::load`]).
pub const ATTEMPTS: u32 = crate::aws::MAX_ATTEMPTS;

/// What was being done when the error came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A LIST request on a prefix.
    List,
    /// A GET of one object.
    Download,
}

/// Where the request went, for the message and its hints.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub bucket: &'a str,
    /// The prefix listed or the key downloaded (may be empty).
    pub key: &'a str,
    /// The region the request was signed for.
    pub region: &'a str,
    /// `--endpoint-url`, when given.
    pub endpoint: Option<&'a str>,
}

/// One line (no newline, a few hundred characters at most): what failed,
/// the bucket or key, and the likely fix.
pub fn explain_s3_error<E>(error: &SdkError<E, HttpResponse>, action: Action, target: &Target<'_>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let url = format!("s3://{}/{}", target.bucket, target.key);
    let what = match action {
        Action::List => format!("cannot list {url}"),
        Action::Download => format!("cannot download {url}"),
    };
    let why = match error {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status().as_u16();
            let bucket_region = raw.headers().get("x-amz-bucket-region");
            explain_service(
                error.code().unwrap_or(""),
                status,
                error.message().unwrap_or(""),
                bucket_region,
                action,
                target,
            )
        }
        SdkError::DispatchFailure(failure) => {
            let cause = innermost(error);
            let timed_out = if failure.is_timeout() { "timed out " } else { "" };
            match target.endpoint {
                Some(endpoint) => format!(
                    "{timed_out}cannot connect to the S3 endpoint {endpoint} ({cause}): is --endpoint-url right, and \
                     the server running?"
                ),
                None => format!(
                    "{timed_out}cannot connect to S3 in {} ({cause}): check the network, a proxy (HTTPS_PROXY) and \
                     --region",
                    target.region
                ),
            }
        }
        SdkError::TimeoutError(_) => format!(
            "S3 did not answer in time ({}): check the network{}, or run again",
            innermost(error),
            endpoint_hint(target)
        ),
        SdkError::ResponseError(response) => format!(
            "the answer (HTTP {}) could not be read ({}){}",
            response.raw().status().as_u16(),
            innermost(error),
            match target.endpoint {
                Some(e) => format!(": is --endpoint-url {e} an S3 server?"),
                None => String::new(),
            }
        ),
        SdkError::ConstructionFailure(_) => format!(
            "the request could not be made ({}): check the bucket name{}",
            innermost(error),
            endpoint_hint(target)
        ),
        _ => innermost(error),
    };
    one_line(&format!("{what}: {why}"))
}

/// The message of an error answer from S3 (or an S3-compatible server).
fn explain_service(
    code: &str,
    status: u16,
    message: &str,
    bucket_region: Option<&str>,
    action: Action,
    target: &Target<'_>,
) -> String {
    let bucket = target.bucket;
    let label = match (code.is_empty(), status) {
        (true, s) => format!("HTTP {s}"),
        (false, s) => format!("{s} {code}"),
    };
    let at = target.endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
    match code {
        "NoSuchBucket" => {
            return format!(
                "bucket {bucket} does not exist{at} ({label}): check the bucket name{}",
                endpoint_hint(target)
            );
        }
        "NoSuchKey" => {
            return format!("no such object ({label}): deleted or moved since it was listed");
        }
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException"
        | "Redirect"
        | "TemporaryRedirect" => return wrong_region(bucket, bucket_region, message, &label, target),
        "InvalidAccessKeyId" => {
            return format!(
                "the access key id is not known{at} ({label}): check the credentials (AWS_ACCESS_KEY_ID, --profile){}",
                match target.endpoint {
                    Some(e) => format!(" and that they are for {e}"),
                    None => String::new(),
                }
            );
        }
        "SignatureDoesNotMatch" => {
            return format!(
                "the request signature does not match ({label}): the secret access key does not belong to the \
                 access key id; check the credentials (AWS_SECRET_ACCESS_KEY, --profile)"
            );
        }
        "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" | "ExpiredTokenException" => {
            return format!(
                "the session credentials have expired or are not valid ({label}): renew them (aws sso login, a new \
                 session token) and run again"
            );
        }
        "InvalidBucketName" => return format!("{bucket} is not a valid bucket name ({label})"),
        "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            return throttled(&label);
        }
        _ => {}
    }
    match status {
        301 | 307 => wrong_region(bucket, bucket_region, message, &label, target),
        403 => {
            let need = match action {
                Action::List => format!("s3:ListBucket on bucket {bucket}"),
                Action::Download => format!("s3:GetObject on s3://{bucket}/{}", target.key),
            };
            let kms = if message.to_ascii_lowercase().contains("kms") {
                " and kms:Decrypt on the trail's KMS key"
            } else {
                ""
            };
            format!(
                "access denied ({label}): the credentials need {need}{kms}; check --profile or the role, and the \
                 bucket policy"
            )
        }
        404 if action == Action::List => format!(
            "bucket {bucket} does not exist{at} ({label}): check the bucket name{}",
            endpoint_hint(target)
        ),
        404 => format!("no such object ({label}): deleted or moved since it was listed"),
        429 | 503 => throttled(&label),
        500..=599 => format!("S3 answered {label} even after {ATTEMPTS} attempts: run again later"),
        _ if message.is_empty() => format!("S3 answered {label}"),
        _ => format!("S3 answered {label}: {}", clip(message)),
    }
}

fn throttled(label: &str) -> String {
    format!(
        "S3 is throttling the requests ({label}), still after {ATTEMPTS} attempts: lower --downloads, or run again later"
    )
}

/// The bucket is in another region than the one the request was signed for.
fn wrong_region(bucket: &str, header: Option<&str>, message: &str, label: &str, target: &Target<'_>) -> String {
    // AuthorizationHeaderMalformed says "… the region 'us-east-1' is wrong; expecting 'eu-west-1'".
    let from_message = message
        .split_once("expecting '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(region, _)| region);
    match header.or(from_message).filter(|r| !r.is_empty()) {
        Some(region) => format!(
            "bucket {bucket} is in region {region}, not {} ({label}): pass --region {region}",
            target.region
        ),
        None => format!(
            "bucket {bucket} is in another region than {} ({label}): pass --region with the bucket's region",
            target.region
        ),
    }
}

fn endpoint_hint(target: &Target<'_>) -> String {
    match target.endpoint {
        Some(e) => format!(" and --endpoint-url {e}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
    use aws_sdk_s3::primitives::SdkBody;

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        for (k, v) in headers {
            raw.headers_mut().insert(*k, *v);
        }
        raw
    }

    fn list_error(
        code: &str,
        message: &str,
        status: u16,
        headers: &[(&'static str, &'static str)],
    ) -> SdkError<ListObjectsV2Error, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let error = if code == "NoSuchBucket" {
            ListObjectsV2Error::NoSuchBucket(aws_sdk_s3::types::error::NoSuchBucket::builder().meta(meta).build())
        } else {
            ListObjectsV2Error::generic(meta)
        };
        SdkError::service_error(error, response(status, headers))
    }

    const AWS: Target<'static> = Target {
        bucket: "my-trail",
        key: "AWSLogs/",
        region: "us-east-1",
        endpoint: None,
    };

    fn check(message: &str, words: &[&str]) {
        assert!(!message.contains('\n'), "{message:?}");
        assert!(message.len() < 300, "{} chars: {message}", message.len());
        assert!(
            !message.contains("ServiceError") && !message.contains("source:"),
            "{message}"
        );
        for word in words {
            assert!(message.contains(word), "{word:?} not in {message:?}");
        }
    }

    #[test]
    fn service_errors_say_what_to_fix() {
        let cases: Vec<(SdkError<ListObjectsV2Error, HttpResponse>, Vec<&str>)> = vec![
            (
                list_error("NoSuchBucket", "The specified bucket does not exist", 404, &[]),
                vec![
                    "cannot list s3://my-trail/AWSLogs/",
                    "bucket my-trail does not exist",
                    "bucket name",
                ],
            ),
            (
                list_error("AccessDenied", "Access Denied", 403, &[]),
                vec![
                    "access denied (403 AccessDenied)",
                    "s3:ListBucket on bucket my-trail",
                    "--profile",
                ],
            ),
            (
                list_error(
                    "AccessDenied",
                    "User is not authorized to perform: kms:Decrypt",
                    403,
                    &[],
                ),
                vec!["kms:Decrypt"],
            ),
            (
                list_error(
                    "PermanentRedirect",
                    "The bucket you are attempting to access must be addressed using the specified endpoint.",
                    301,
                    &[("x-amz-bucket-region", "eu-west-1")],
                ),
                vec![
                    "bucket my-trail is in region eu-west-1, not us-east-1",
                    "pass --region eu-west-1",
                ],
            ),
            // A HEAD-like answer: no code, only the status and the header.
            (
                list_error("", "", 301, &[("x-amz-bucket-region", "ap-south-1")]),
                vec!["region ap-south-1", "--region ap-south-1", "HTTP 301"],
            ),
            (
                list_error(
                    "AuthorizationHeaderMalformed",
                    "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
                    400,
                    &[],
                ),
                vec!["is in region eu-central-1", "pass --region eu-central-1"],
            ),
            (
                list_error(
                    "InvalidAccessKeyId",
                    "The AWS Access Key Id you provided does not exist in our records.",
                    403,
                    &[],
                ),
                vec!["access key id is not known", "AWS_ACCESS_KEY_ID", "--profile"],
            ),
            (
                list_error(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match",
                    403,
                    &[],
                ),
                vec!["signature does not match", "AWS_SECRET_ACCESS_KEY"],
            ),
            (
                list_error("ExpiredToken", "The provided token has expired.", 400, &[]),
                vec!["expired", "renew"],
            ),
            (
                list_error("SlowDown", "Please reduce your request rate.", 503, &[]),
                vec!["throttling", "503 SlowDown", "--downloads", "8 attempts"],
            ),
            (
                list_error("InternalError", "We encountered an internal error.", 500, &[]),
                vec!["500 InternalError", "run again later"],
            ),
            (
                list_error("", "", 404, &[]),
                vec!["bucket my-trail does not exist", "HTTP 404"],
            ),
            (
                list_error("WeirdCode", "Something\nodd happened", 400, &[]),
                vec!["S3 answered 400 WeirdCode: Something odd happened"],
            ),
        ];
        for (error, words) in cases {
            check(&explain_s3_error(&error, Action::List, &AWS), &words);
        }
    }

    #[test]
    fn downloads_name_the_key_and_the_permission() {
        let target = Target {
            key: "AWSLogs/1/x.json.gz",
            ..AWS
        };
        let meta = ErrorMetadata::builder()
            .code("AccessDenied")
            .message("Access Denied")
            .build();
        let error: SdkError<GetObjectError, HttpResponse> =
            SdkError::service_error(GetObjectError::generic(meta), response(403, &[]));
        check(
            &explain_s3_error(&error, Action::Download, &target),
            &[
                "cannot download s3://my-trail/AWSLogs/1/x.json.gz",
                "s3:GetObject on s3://my-trail/AWSLogs/1/x.json.gz",
            ],
        );
        let meta = ErrorMetadata::builder().code("NoSuchKey").build();
        let error: SdkError<GetObjectError, HttpResponse> = SdkError::service_error(
            GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().meta(meta).build()),
            response(404, &[]),
        );
        check(
            &explain_s3_error(&error, Action::Download, &target),
            &["no such object (404 NoSuchKey)", "since it was listed"],
        );
    }

    #[test]
    fn connection_errors_point_at_the_endpoint() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let error: SdkError<ListObjectsV2Error, HttpResponse> =
            SdkError::dispatch_failure(aws_sdk_s3::error::ConnectorError::io(Box::new(refused)));
        let local = Target {
            endpoint: Some("http://127.0.0.1:1"),
            ..AWS
        };
        check(
            &explain_s3_error(&error, Action::List, &local),
            &[
                "cannot connect to the S3 endpoint http://127.0.0.1:1",
                "Connection refused",
                "--endpoint-url",
            ],
        );
        check(
            &explain_s3_error(&error, Action::List, &AWS),
            &["cannot connect to S3 in us-east-1", "HTTPS_PROXY"],
        );
        // A long cause is clipped.
        let long = std::io::Error::other("x ".repeat(500));
        let error: SdkError<ListObjectsV2Error, HttpResponse> =
            SdkError::dispatch_failure(aws_sdk_s3::error::ConnectorError::io(Box::new(long)));
        check(&explain_s3_error(&error, Action::List, &local), &["…"]);
    }
}
