//! At the most verbose log level, no credential value appears in any output:
//! stdout, stderr, the summary JSON or the dead-letter file.

use std::process::Command;

use crate::support::{self, Cluster};

const PASSWORD: &str = "pw-Zq8sQ1xV-secret";
const API_KEY: &str = "YXBpLWtleS1ZZ2g3dlJlLXNlY3JldA==";
const TOKEN: &str = "tok-Lm4nB7pQ-secret";
const AWS_SECRET: &str = "aws-Rt5yU9iO-secret";

fn run_verbose(cluster: &Cluster, source: &str, auth: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let prefix = support::prefix("secrets");
    let summary = dir.path().join("summary.json");
    let dead = dir.path().join("dead.ndjson");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args([
        "-vv",
        "import",
        source,
        "--index-prefix",
        &prefix,
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
    if !auth.contains(&"--url") {
        cmd.args(["--url", &cluster.url]);
    }
    let run: support::Run = cmd.output().unwrap().into();
    assert!(matches!(run.code, 0 | 3), "{}: {}", cluster.name, tail(&run.stderr));
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "not verbose: {}",
        tail(&run.stderr)
    );
    let mut all = format!("{}\n{}", run.stdout, run.stderr);
    for file in [&summary, &dead] {
        all.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    cluster.cleanup(&prefix);
    all
}

/// Standard base64, to look for credentials the way an Authorization header would carry them.
fn base64(bytes: &[u8]) -> String {
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

    // S3 credentials, with the S3 server when there is one.
    if let Ok(endpoint) = std::env::var("S3_ENDPOINT") {
        let rt = crate::s3::runtime();
        let bucket = format!("ctindex-secrets-{}", std::process::id());
        rt.block_on(crate::s3::client(&endpoint).create_bucket().bucket(&bucket).send())
            .unwrap();
        let body = std::fs::read(std::fs::read_dir(source).unwrap().flatten().next().unwrap().path()).unwrap();
        crate::s3::put_many(&endpoint, &bucket, vec![("AWSLogs/1/x.json.gz".into(), body)]);
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
