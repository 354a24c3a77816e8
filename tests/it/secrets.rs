//! At the most verbose log level, no credential value appears in any output:
//! stdout, stderr, the summary JSON or the dead-letter file.

use std::process::Command;

use crate::support::{self, Cluster, Endpoint, Request};

const PASSWORD: &str = "pw-Zq8sQ1xV-secret";
const API_KEY: &str = "YXBpLWtleS1ZZ2g3dlJlLXNlY3JldA==";
const TOKEN: &str = "tok-Lm4nB7pQ-secret";
const AWS_SECRET: &str = "aws-Rt5yU9iO-secret";

fn run_verbose(cluster: &Cluster, source: &str, auth: &[&str], env: &[(&str, &str)]) -> String {
    let prefix = support::prefix("secrets");
    let (run, all) = verbose(&cluster.url, &prefix, source, auth, env);
    assert!(matches!(run.code, 0 | 3), "{}: {}", cluster.name, tail(&run.stderr));
    cluster.cleanup(&prefix);
    all
}

/// Runs an import at -vv; returns the run and everything it wrote
/// (stdout, stderr, the summary JSON, the dead letters).
fn verbose(url: &str, prefix: &str, source: &str, auth: &[&str], env: &[(&str, &str)]) -> (support::Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let dead = dir.path().join("dead.ndjson");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args([
        "-vv",
        "import",
        source,
        "--index-prefix",
        prefix,
        "--progress",
        "log",
        "--progress-interval",
        "1",
    ])
    .args([
        "--summary-json",
        summary.to_str().unwrap(),
        "--dead-letter",
        dead.to_str().unwrap(),
    ])
    .args(auth)
    .current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    if !auth.contains(&"--url") && !auth.contains(&"--cloud-id") {
        cmd.args(["--url", url]);
    }
    let run: support::Run = cmd.output().unwrap().into();
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "not verbose: {}",
        tail(&run.stderr)
    );
    let mut all = format!("{}\n{}", run.stdout, run.stderr);
    for file in [&summary, &dead] {
        all.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    (run, all)
}

/// Standard base64, to look for credentials the way an Authorization header would carry them.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(3000)..]
}

fn assert_clean(output: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!output.contains(secret), "{what}: a credential appears in the output");
    }
}

#[test]
fn no_credential_appears_at_the_most_verbose_level() {
    let clusters = support::clusters("no_credential_appears_at_the_most_verbose_level");
    let Some(cluster) = clusters.first() else { return };
    let source = support::fixtures().join("trail/AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10");
    let source = source.to_str().unwrap();
    assert_eq!(base64(b"elastic:pw"), "ZWxhc3RpYzpwdw==");
    let basic = base64(format!("elastic:{PASSWORD}").as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();

    // The local servers run without security: they ignore the credentials, but ctindex sends them.
    let with_user = run_verbose(
        cluster,
        source,
        &["--user", "elastic"],
        &[("CTINDEX_PASSWORD", PASSWORD)],
    );
    assert_clean(&with_user, &[PASSWORD, &basic], "basic auth from the environment");
    let from_file = run_verbose(
        cluster,
        source,
        &["--user", "elastic", "--password-file", password_file.to_str().unwrap()],
        &[],
    );
    assert_clean(&from_file, &[PASSWORD, &basic], "basic auth from a file");
    let url = cluster.url.replacen("://", &format!("://elastic:{PASSWORD}@"), 1);
    let in_url = run_verbose(cluster, source, &["--url", &url], &[]);
    assert_clean(&in_url, &[PASSWORD, &basic], "credentials in the URL");
    let api_key = run_verbose(cluster, source, &[], &[("CTINDEX_API_KEY", API_KEY)]);
    assert_clean(&api_key, &[API_KEY], "API key");
    let bearer = run_verbose(cluster, source, &[], &[("CTINDEX_BEARER_TOKEN", TOKEN)]);
    assert_clean(&bearer, &[TOKEN], "bearer token");
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let from_key_file = run_verbose(cluster, source, &["--api-key-file", key_file.to_str().unwrap()], &[]);
    assert_clean(&from_key_file, &[API_KEY], "API key from a file");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let from_token_file = run_verbose(
        cluster,
        source,
        &["--bearer-token-file", token_file.to_str().unwrap()],
        &[],
    );
    assert_clean(&from_token_file, &[TOKEN], "bearer token from a file");

    // S3 credentials, with the S3 server when there is one.
    if let Ok(endpoint) = std::env::var("S3_ENDPOINT") {
        let rt = crate::s3::runtime();
        let bucket = format!("ctindex-secrets-{}", std::process::id());
        rt.block_on(crate::s3::client(&endpoint).create_bucket().bucket(&bucket).send())
            .unwrap();
        let body = std::fs::read(std::fs::read_dir(source).unwrap().flatten().next().unwrap().path()).unwrap();
        // In the CloudTrail layout, so that it is listed and downloaded (an import that reads nothing fails).
        let key = "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/10/x.json.gz";
        crate::s3::put_many(&endpoint, &bucket, vec![(key.into(), body)]);
        let s3 = run_verbose(
            cluster,
            &format!("s3://{bucket}"),
            &["--endpoint-url", &endpoint, "--region", "us-east-1"],
            &[
                ("AWS_ACCESS_KEY_ID", "ctindex-test"),
                ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ],
        );
        assert_clean(&s3, &[AWS_SECRET], "AWS secret key");
    }
}

/// A server that refuses the credentials: the error paths print no secret
/// either, although the credentials were sent (the endpoint saw them).
#[test]
fn no_credential_appears_when_the_server_refuses_it() {
    let source = support::fixtures().join("trail/AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10");
    let source = source.to_str().unwrap();
    let basic = base64(format!("elastic:{PASSWORD}").as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let refused = || -> (u16, Vec<(&'static str, &'static str)>, String) {
        (
            401,
            vec![("www-authenticate", "Basic realm=\"security\" charset=\"UTF-8\"")],
            r#"{"error":{"type":"security_exception","reason":"unable to authenticate user [elastic] for REST request [/_bulk]"},"status":401}"#.into(),
        )
    };
    // Refused at once, and refused only for the bulk requests (after the events were read).
    let everywhere = Endpoint::start(Box::new(move |_| refused()));
    let bulk_only = Endpoint::start(Box::new(move |request: &Request| {
        if request.target.contains("_bulk") {
            refused()
        } else {
            (
                200,
                vec![],
                r#"{"version":{"number":"8.19.0"},"tagline":"You Know, for Search"}"#.into(),
            )
        }
    }));
    // (what, options, environment, secrets, the Authorization header they make)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>, String);
    let cases: Vec<Case> = vec![
        (
            "basic auth",
            vec!["--user", "elastic"],
            vec![("CTINDEX_PASSWORD", PASSWORD)],
            vec![PASSWORD, &basic],
            format!("Basic {basic}"),
        ),
        (
            "API key from a file",
            vec!["--api-key-file", key_file.to_str().unwrap()],
            vec![],
            vec![API_KEY],
            format!("ApiKey {API_KEY}"),
        ),
        (
            "bearer token from a file",
            vec!["--bearer-token-file", token_file.to_str().unwrap()],
            vec![],
            vec![TOKEN],
            format!("Bearer {TOKEN}"),
        ),
    ];
    for (what, auth, env, secrets, header) in &cases {
        for (endpoint, expect) in [(&everywhere, "(401 Unauthorized)"), (&bulk_only, "(401 Unauthorized)")] {
            let seen = endpoint.requests().len();
            let mut args = auth.clone();
            args.push("--no-setup");
            let (run, all) = verbose(&endpoint.url, "secrets-refused", source, &args, env);
            let ctx = format!("{what}: {}", tail(&run.stderr));
            assert_eq!(run.code, 1, "{ctx}");
            assert!(run.stderr.contains(expect), "{ctx}");
            assert_clean(&all, secrets, what);
            let sent = &endpoint.requests()[seen..];
            assert!(!sent.is_empty(), "{ctx}");
            assert!(
                sent.iter().all(|r| r.headers.get("authorization") == Some(header)),
                "{what}: the credentials were not sent"
            );
        }
    }
    // The bulk refusal dead-letters the events, without the credentials.
    let (run, all) = verbose(
        &bulk_only.url,
        "secrets-refused",
        source,
        &["--api-key-file", key_file.to_str().unwrap(), "--no-setup"],
        &[],
    );
    assert!(run.stderr.contains("dead letters in"), "{}", tail(&run.stderr));
    assert!(all.contains(r#""reason":"the cluster refused the bulk request: POST /_bulk"#));
    assert!(all.contains("(401 Unauthorized)"));
    assert_clean(&all, &[API_KEY], "dead letters");

    // An Elastic Cloud id whose host cannot be reached.
    let cloud_id = format!("prod:{}", base64(b"cloud.invalid:9243$es-uuid$kibana-uuid"));
    let (run, all) = verbose(
        "",
        "secrets-cloud",
        source,
        &["--cloud-id", &cloud_id, "--api-key-file", key_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 1, "{}", tail(&run.stderr));
    assert!(run.stderr.contains("es-uuid.cloud.invalid"), "{}", tail(&run.stderr));
    assert_clean(&all, &[API_KEY], "cloud id");
}

#[test]
fn insecure_says_that_it_overrides_the_ca() {
    let endpoint = Endpoint::start(Box::new(|_| (503, vec![], "{}".into())));
    let run = support::ctindex(&[
        "setup",
        "--url",
        &endpoint.url,
        "--insecure",
        "--ca-cert",
        "/nonexistent/ca.pem",
        "--timeout",
        "2",
    ]);
    assert!(
        run.stderr
            .contains("--insecure overrides --ca-cert /nonexistent/ca.pem"),
        "{}",
        run.stderr
    );
}
