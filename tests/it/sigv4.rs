//! AWS SigV4 (`--aws-sigv4`) against `opensearch-sigv4`: a proxy of the test
//! suite's own in front of the local OpenSearch that recomputes the
//! signature of every request with botocore (an implementation independent
//! of ctindex's) and answers 403 like AWS to an unsigned, wrongly signed or
//! expired request (scripts/sigv4-proxy.py).
//!
//! One test function: the proxy's counters are shared, so its checks run in
//! order.

use serde_json::{Value, json};

use crate::support::{self, Cluster, Oracle};

struct Proxy {
    url: String,
    key_id: String,
    secret: String,
    stats: String,
    /// The OpenSearch behind the proxy, for counting without signing.
    upstream: Cluster,
}

fn proxy() -> Option<Proxy> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let found = (|| {
        Some(Proxy {
            url: var("OPENSEARCH_SIGV4_URL")?,
            key_id: var("SIGV4_ACCESS_KEY_ID")?,
            secret: var("SIGV4_SECRET_ACCESS_KEY")?,
            stats: var("SIGV4_STATS_URL")?,
            upstream: Cluster {
                name: "opensearch",
                url: var("OPENSEARCH_URL")?,
            },
        })
    })();
    if found.is_none() {
        assert!(
            std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() != Ok("1"),
            "OPENSEARCH_SIGV4_URL/SIGV4_*/OPENSEARCH_URL not set but CTINDEX_REQUIRE_CLUSTERS=1 \
             (scripts/stack start opensearch opensearch-sigv4; eval \"$(scripts/stack env)\")"
        );
        support::skipped(
            "sigv4::*",
            "OPENSEARCH_SIGV4_URL, SIGV4_* (the SigV4 proxy)",
            "opensearch opensearch-sigv4",
        );
    }
    found
}

impl Proxy {
    fn stats(&self) -> Value {
        let (status, body) = support::http("GET", &self.stats, None);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn reset(&self) {
        let reset = self.stats.replace("/stats", "/reset");
        let (status, body) = support::http("POST", &reset, None);
        assert!(status < 300, "{body}");
        assert_eq!(self.stats()["accepted"], json!(0));
    }

    /// `COMMAND SOURCE --url PROXY --aws-sigv4 --region us-east-1 --index-prefix PREFIX` and more.
    fn signed(&self, command: &[&str], source: &str, prefix: &str, more: &[&str]) -> support::Run {
        let mut args = command.to_vec();
        args.extend([source, "--url", &self.url, "--aws-sigv4", "--region", "us-east-1"]);
        args.extend(["--index-prefix", prefix]);
        args.extend(more);
        self.ctindex(&self.secret, &args)
    }

    /// Runs ctindex with the test credentials in the environment (only those).
    fn ctindex(&self, secret: &str, args: &[&str]) -> support::Run {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
        cmd.args(args).current_dir(dir.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("CTINDEX_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        let none = dir.path().join("empty");
        std::fs::write(&none, "").unwrap();
        cmd.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            // No shared config or instance metadata: only the environment's keys.
            .env("AWS_CONFIG_FILE", &none)
            .env("AWS_SHARED_CREDENTIALS_FILE", &none)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd.output().expect("cannot run ctindex").into()
    }
}

fn refused_reasons(stats: &Value) -> String {
    stats["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == json!(403))
        .map(|r| format!("{} {}: {}", r["method"], r["path"], r["reason"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sigv4_signs_every_request_and_the_proxy_checks_them() {
    let Some(proxy) = proxy() else { return };
    let source = support::corpus().unwrap_or_else(support::fixtures);
    let oracle = Oracle::read(&source);
    let source = source.to_str().unwrap();

    // 1. The proxy refuses what AWS refuses, so that passing it means something.
    proxy.reset();
    let (status, body) = support::http("GET", &format!("{}/", proxy.url), None);
    assert_eq!(status, 403, "an unsigned request must be refused: {body}");
    let wrong = proxy.ctindex(
        "not-the-secret-0000000000000000000000000",
        &["setup", "--url", &proxy.url, "--aws-sigv4", "--region", "us-east-1"],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    let line = wrong.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.contains("403") && line.contains("AWS SigV4") && line.contains("signature"),
        "{line}"
    );
    let expired = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}/", proxy.url),
        ])
        .args(["-H", "x-amz-date: 20200101T000000Z"])
        .args([
            "-H",
            &format!(
                "authorization: AWS4-HMAC-SHA256 Credential={}/20200101/us-east-1/es/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                proxy.key_id,
                "0".repeat(64)
            ),
        ])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&expired.stdout),
        "403",
        "an expired request must be refused"
    );
    let stats = proxy.stats();
    assert_eq!(stats["accepted"], json!(0), "{stats}");
    assert!(stats["refused"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["reasons"].get("expired").is_some(), "{stats}");

    // 2. The corpus through the proxy, plain and gzipped: exact count, nothing refused.
    for compress in [false, true] {
        proxy.reset();
        let prefix = support::prefix("sigv4");
        let mut args = vec![
            "import",
            source,
            "--url",
            &proxy.url,
            "--aws-sigv4",
            "--region",
            "us-east-1",
            "--index-prefix",
            &prefix,
            "--replicas",
            "0",
            "--batch-bytes",
            "1MB",
        ];
        if compress {
            args.push("--compress");
        }
        let run = proxy.ctindex(&proxy.secret, &args);
        let stats = proxy.stats();
        assert_eq!(
            stats["refused"],
            json!(0),
            "compress {compress}: refused:\n{}",
            refused_reasons(&stats)
        );
        assert!(matches!(run.code, 0 | 3), "compress {compress}: {}", run.stderr);
        let count = proxy.upstream.count(&prefix, json!({"match_all": {}}));
        assert_eq!(count, oracle.expected_docs(), "compress {compress}: _count");
        let paths: Vec<&str> = stats["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["path"].as_str())
            .collect();
        for wanted in ["/_index_template/", "/_bulk", "/_refresh"] {
            assert!(
                paths.iter().any(|p| p.contains(wanted)),
                "no signed {wanted} request: {paths:?}"
            );
        }
        proxy.upstream.cleanup(&prefix);
    }

    // 3. sync keeps its state in the cluster: leases, checkpoints and searches are signed too.
    proxy.reset();
    let prefix = support::prefix("sigv4-sync");
    let state_index = format!("state-{prefix}");
    let trail = support::fixtures().join("trail");
    let run = proxy.signed(
        &["sync"],
        trail.to_str().unwrap(),
        &prefix,
        &["--state-index", &state_index, "--replicas", "0"],
    );
    let stats = proxy.stats();
    assert_eq!(
        stats["refused"],
        json!(0),
        "sync: refused:\n{}",
        refused_reasons(&stats)
    );
    assert!(matches!(run.code, 0 | 3), "sync: {}", run.stderr);
    let state_requests = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains(&state_index)))
        .count();
    assert!(
        state_requests >= 3,
        "sync sent {state_requests} state requests: {stats}"
    );
    assert_eq!(
        proxy.upstream.count(&prefix, json!({"match_all": {}})),
        Oracle::read(&trail).expected_docs()
    );
    proxy.upstream.cleanup(&prefix);
    support::http("DELETE", &format!("{}/{state_index}", proxy.upstream.url), None);

    // 4. The dashboards upload (a multipart body) is signed over its bytes: the
    // proxy accepts it (OpenSearch itself has no saved objects API behind it).
    proxy.reset();
    let run = proxy.ctindex(
        &proxy.secret,
        &[
            "dashboards",
            "install",
            "--kibana-url",
            &proxy.url,
            "--aws-sigv4",
            "--region",
            "us-east-1",
        ],
    );
    let stats = proxy.stats();
    assert_eq!(
        stats["refused"],
        json!(0),
        "dashboards: refused:\n{}",
        refused_reasons(&stats)
    );
    assert_eq!(stats["accepted"], json!(1), "dashboards: {stats} {}", run.stderr);

    // 5. At the most verbose level, the secret and the signature never show.
    proxy.reset();
    let prefix = support::prefix("sigv4-vv");
    let run = proxy.signed(&["-vv", "import"], trail.to_str().unwrap(), &prefix, &[]);
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "not verbose"
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains(&proxy.secret), "the AWS secret key appears at -vv");
    assert!(!all.contains("Signature="), "a signature appears at -vv");
    proxy.upstream.cleanup(&prefix);
}
