//! `ctindex verify` on a synthetic trail signed by `scripts/gen-signed-trail.py`
//! (written from AWS's documentation, with its own RSA keys, independent of
//! the Rust code), locally and from the S3 server: it must report exactly the
//! problems the script planted (named in its manifest), each with its file,
//! and nothing else; the exit codes say valid (0), problems (3), could not
//! check (1).

use std::collections::BTreeSet;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::s3;
use crate::support::{self, Run};

/// A generated trail: its folder (trail/, public-keys.json, manifest.json, signatures.json).
pub(crate) struct Generated {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: Value,
}

impl Generated {
    pub(crate) fn trail(&self) -> String {
        self.root.join("trail").display().to_string()
    }

    pub(crate) fn keys(&self) -> String {
        self.root.join("public-keys.json").display().to_string()
    }

    fn list(&self, field: &str) -> Vec<String> {
        self.manifest[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
}

/// Runs the generator; None (said loudly) where Python's `cryptography` is missing.
pub(crate) fn generate(test: &str, intact: bool) -> Option<Generated> {
    generate_for(test, intact, None)
}

/// As [`generate`], signed for `bucket` (the AWS CLI checks digests name it).
fn generate_for(test: &str, intact: bool, bucket: Option<&str>) -> Option<Generated> {
    let python = std::env::var("CTINDEX_TOOLS_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import cryptography"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        if std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1") {
            panic!("{test}: {python} has no `cryptography` package (pip install cryptography)");
        }
        support::loud(&format!(
            "SKIPPED {test}: {python} has no `cryptography` package to sign the synthetic trail"
        ));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        support::root()
            .join("scripts/gen-signed-trail.py")
            .display()
            .to_string(),
        dir.path().display().to_string(),
    ];
    if intact {
        args.push("--intact".into());
    }
    if let Some(bucket) = bucket {
        args.extend(["--bucket".to_string(), bucket.to_string()]);
    }
    let out = std::process::Command::new(&python).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    Some(Generated {
        root: dir.path().to_path_buf(),
        _dir: dir,
        manifest,
    })
}

/// A file's key from `AWSLogs/` on.
fn key(name: &str) -> String {
    let at = name
        .find("AWSLogs/")
        .unwrap_or_else(|| panic!("{name} is not in the layout"));
    name[at..].to_string()
}

/// (kind, key) of each problem `verify` must report for what was planted,
/// where `wanted` says which keys the run looks at.
fn expected(manifest: &Value, wanted: impl Fn(&str) -> bool) -> BTreeSet<(String, String)> {
    let mut want = BTreeSet::new();
    for planted in manifest["planted"].as_array().unwrap() {
        let file = planted["file"].as_str().unwrap().to_string();
        if !wanted(&file) {
            continue;
        }
        let kinds: &[&str] = match planted["kind"].as_str().unwrap() {
            "log-changed" => &["log-changed"],
            "log-deleted" => &["log-missing"],
            "digest-deleted" => {
                for log in planted["uncovered"].as_array().unwrap() {
                    let log = log.as_str().unwrap();
                    if wanted(log) {
                        want.insert(("log-not-covered".to_string(), log.to_string()));
                    }
                }
                &["digest-missing"]
            }
            // Its hash no longer matches the next digest's record, nor its signature.
            "digest-changed" => &["digest-changed", "digest-signature-invalid"],
            "digest-wrong-key" => &["digest-signature-invalid"],
            other => panic!("unknown planted problem {other}"),
        };
        for kind in kinds {
            want.insert((kind.to_string(), file.clone()));
        }
    }
    want
}

fn problems(report: &Value) -> BTreeSet<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                key(p["file"].as_str().unwrap()),
            )
        })
        .collect()
}

fn parse(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

fn count(report: &Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("{field}: {report}"))
}

/// Digests whose signature a local copy cannot check: the newest of each
/// chain, the one before a deleted digest, and backfill digests.
fn unchecked_offline(generated: &Generated) -> BTreeSet<String> {
    let m = &generated.manifest;
    let present: BTreeSet<String> = generated.list("digests").into_iter().collect();
    let mut out: BTreeSet<String> = generated.list("backfill_digests").into_iter().collect();
    for chain in m["chains"].as_object().unwrap().values() {
        let chain: Vec<&str> = chain.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for (i, digest) in chain.iter().enumerate() {
            let next_present = chain.get(i + 1).is_some_and(|n| present.contains(*n));
            if present.contains(*digest) && !next_present {
                out.insert(digest.to_string());
            }
        }
    }
    out
}

#[test]
fn verify_reports_exactly_the_planted_problems_in_a_local_copy() {
    let Some(generated) = generate("verify_local", false) else {
        return;
    };
    let trail = generated.trail();
    let keys = generated.keys();
    let run = support::ctindex(&["verify", "--json", "--public-keys", &keys, &trail]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    let want = expected(&generated.manifest, |_| true);
    assert_eq!(problems(&report), want, "{}", run.stdout);
    assert_eq!(want.len(), 8);

    let digests = generated.list("digests");
    let unchecked = unchecked_offline(&generated);
    assert_eq!(count(&report, "digests"), digests.len() as u64);
    assert_eq!(count(&report, "digests_unchecked"), unchecked.len() as u64);
    // The changed digest and the one signed with another key.
    assert_eq!(
        count(&report, "digests_valid"),
        (digests.len() - unchecked.len() - 2) as u64
    );
    assert_eq!(count(&report, "backfill_digests"), 1);
    assert_eq!(
        count(&report, "empty_digests"),
        generated.list("empty_digests").len() as u64
    );
    let logs = generated.list("log_files");
    assert_eq!(count(&report, "log_files"), logs.len() as u64);
    // All but the changed one and the two of the deleted digest's hour.
    assert_eq!(count(&report, "log_files_valid"), (logs.len() - 3) as u64);
    let notes = report["notes"].as_array().unwrap();
    for digest in &unchecked {
        assert!(
            notes.iter().any(|n| n.as_str().unwrap().contains(digest.as_str())),
            "no note for {digest}: {notes:?}"
        );
    }

    // The text report names every problem's file too.
    let text = support::ctindex(&["verify", "--public-keys", &keys, &trail]);
    assert_eq!(text.code, 3);
    for (kind, file) in &want {
        assert!(
            text.stdout
                .lines()
                .any(|l| l.starts_with(kind.as_str()) && l.contains(file.as_str())),
            "{kind} {file} not in:\n{}",
            text.stdout
        );
    }
}

#[test]
fn verify_of_an_intact_trail_is_valid_and_without_keys_cannot_check() {
    let Some(generated) = generate("verify_intact", true) else {
        return;
    };
    let trail = generated.trail();
    let run = support::ctindex(&["verify", "--json", "--public-keys", &generated.keys(), &trail]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = parse(&run);
    assert!(problems(&report).is_empty(), "{}", run.stdout);
    // Both keys of the rotation were used and verified.
    assert_eq!(
        count(&report, "digests_valid") + count(&report, "digests_unchecked"),
        generated.list("digests").len() as u64
    );
    assert_eq!(
        count(&report, "log_files_valid"),
        generated.list("log_files").len() as u64
    );

    // Keys that are not CloudTrail's: each checkable digest names an unknown key.
    let other = generated.root.join("other-keys.json");
    std::fs::write(
        &other,
        r#"{"PublicKeyList":[{"Value":"MAo=","Fingerprint":"00000000000000000000000000000000"}]}"#,
    )
    .unwrap();
    let run = support::ctindex(&["verify", "--json", "--public-keys", other.to_str().unwrap(), &trail]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    let kinds: BTreeSet<String> = problems(&report).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, BTreeSet::from(["digest-unknown-key".to_string()]));

    // No keys at all: could not check.
    let run = support::ctindex(&["verify", "--public-keys", "/nonexistent/keys.json", &trail]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("--public-keys /nonexistent/keys.json"),
        "{}",
        run.stderr
    );
    // Nothing there: nothing matched.
    let run = support::ctindex(&[
        "verify",
        "--public-keys",
        &generated.keys(),
        "--regions",
        "ap-south-1",
        &trail,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
}

/// `--to` ends the range inside the trail: the digests of the next day are
/// read for the range's last hours (no log file of the range is uncovered),
/// and only the problems of the range are reported.
#[test]
fn verify_applies_the_selection_and_reads_the_next_days_digests() {
    let Some(generated) = generate("verify_selection", false) else {
        return;
    };
    let in_range = |key: &str| key.contains("/2024/03/01/") && key.contains("/us-east-1/");
    let run = support::ctindex(&[
        "verify",
        "--json",
        "--public-keys",
        &generated.keys(),
        "--to",
        "2024-03-01",
        "--regions",
        "us-east-1",
        &generated.trail(),
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    let want = expected(&generated.manifest, in_range);
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(problems(&report), want, "{}", run.stdout);
    let logs = generated.list("log_files").into_iter().filter(|k| in_range(k)).count();
    assert_eq!(count(&report, "log_files"), logs as u64);
    // Every digest of the day is checked: the last one's signature is in the next day's first.
    let digests = generated.list("digests").into_iter().filter(|k| in_range(k)).count();
    assert_eq!(count(&report, "digests"), digests as u64);
    assert_eq!(count(&report, "digests_unchecked"), 0);
}

/// Uploads the generated trail, each digest with its signature in the
/// object's metadata as CloudTrail writes it.
fn upload(endpoint: &str, bucket: &str, generated: &Generated) {
    let rt = s3::runtime();
    let client = s3::client(endpoint);
    rt.block_on(client.create_bucket().bucket(bucket).send()).unwrap();
    let signatures: Value =
        serde_json::from_slice(&std::fs::read(generated.root.join("signatures.json")).unwrap()).unwrap();
    let trail = generated.root.join("trail");
    for path in support::files_below(&trail) {
        let key = path.strip_prefix(&trail).unwrap().to_str().unwrap().to_string();
        let mut put = client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(std::fs::read(&path).unwrap()));
        if let Some(meta) = signatures.get(&key) {
            for (name, value) in meta.as_object().unwrap() {
                put = put.metadata(name, value.as_str().unwrap());
            }
        }
        rt.block_on(put.send()).unwrap();
    }
}

fn verify_s3(endpoint: &str, source: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "verify",
        "--json",
        source,
        "--endpoint-url",
        endpoint,
        "--region",
        "us-east-1",
    ];
    args.extend_from_slice(extra);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(&args);
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var(key).is_err() {
            cmd.env(key, "test");
        }
    }
    cmd.output().unwrap().into()
}

#[test]
fn verify_from_s3_checks_every_signature_from_the_object_metadata() {
    let Some(server) = s3::server("verify_s3") else { return };
    let Some(generated) = generate("verify_s3", false) else {
        return;
    };
    let bucket = format!("verify-{}", std::process::id());
    upload(&server.endpoint, &bucket, &generated);
    let keys = generated.keys();
    let run = verify_s3(&server.endpoint, &format!("s3://{bucket}"), &["--public-keys", &keys]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    assert_eq!(
        problems(&report),
        expected(&generated.manifest, |_| true),
        "{}",
        run.stdout
    );
    // Online, every digest's signature is checked, the newest and the backfill one too.
    let digests = generated.list("digests").len() as u64;
    assert_eq!(count(&report, "digests"), digests);
    assert_eq!(count(&report, "digests_unchecked"), 0);
    assert_eq!(count(&report, "digests_valid"), digests - 2);
    assert_eq!(count(&report, "log_files"), generated.list("log_files").len() as u64);

    // A digest uploaded without its signature is reported as unsigned.
    let Some(generated) = generate("verify_s3_unsigned", true) else {
        return;
    };
    let bucket = format!("verify-unsigned-{}", std::process::id());
    upload(&server.endpoint, &bucket, &generated);
    let newest = generated.list("digests").into_iter().next_back().unwrap();
    let rt = s3::runtime();
    let client = s3::client(&server.endpoint);
    let body = std::fs::read(generated.root.join("trail").join(&newest)).unwrap();
    rt.block_on(
        client
            .put_object()
            .bucket(&bucket)
            .key(&newest)
            .body(ByteStream::from(body))
            .send(),
    )
    .unwrap();
    let run = verify_s3(
        &server.endpoint,
        &format!("s3://{bucket}/AWSLogs/"),
        &["--public-keys", &generated.keys()],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        problems(&parse(&run)),
        BTreeSet::from([("digest-unsigned".to_string(), newest)]),
        "{}",
        run.stdout
    );
}

/// The bundled real digest (its log files are not in the fixtures, nor its
/// keys): parsed, its listed files reported missing by key, the fixtures'
/// log files reported as covered by no digest; no crash, exit 3.
#[test]
fn verify_reads_the_real_digest_of_the_fixtures() {
    let trail = support::fixtures().join("trail");
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        r#"{"PublicKeyList":[{"Value":"MAo=","Fingerprint":"00"}]}"#,
    )
    .unwrap();
    let run = support::ctindex(&[
        "verify",
        "--json",
        "--public-keys",
        keys.path().to_str().unwrap(),
        trail.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    assert_eq!(count(&report, "digests"), 1);
    let listed: usize = support::files_below(&trail)
        .iter()
        .filter(|p| !p.to_string_lossy().contains("CloudTrail-Digest"))
        .count();
    assert_eq!(count(&report, "log_files"), listed as u64);
    let found = problems(&report);
    let missing = found.iter().filter(|(k, _)| k == "log-missing").count();
    let uncovered = found.iter().filter(|(k, _)| k == "log-not-covered").count();
    assert_eq!(uncovered, listed);
    assert_eq!(missing, 5, "{found:?}");

    // The same real digest as the corpus keeps it, loose (outside the layout): taken for the key it names.
    let Some(corpus) = support::corpus() else { return };
    let loose = corpus.join("misc-small/llm-guard-real-digest");
    let run = support::ctindex(&[
        "verify",
        "--json",
        "--public-keys",
        keys.path().to_str().unwrap(),
        loose.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    let report = parse(&run);
    assert_eq!(count(&report, "digests"), 1);
    let kinds: Vec<String> = problems(&report).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "digest-missing",
            "log-missing",
            "log-missing",
            "log-missing",
            "log-missing",
            "log-missing"
        ]
    );
    assert!(
        report["notes"].to_string().contains("outside CloudTrail's layout"),
        "{report}"
    );
}

/// The AWS CLI's own validator (`aws cloudtrail validate-logs`, from PyPI's
/// `awscli`, driven offline by `scripts/awscli-validate.py` against the S3
/// server with the same public keys) finds invalid exactly the files `verify`
/// reports, but for the log files that no digest lists (it does not look for
/// them). Runs where CTINDEX_TOOLS_PYTHON names a Python with `awscli`
/// (`scripts/tools-venv` makes one; scripts/test requires it).
#[test]
fn verify_agrees_with_the_aws_cli_validator() {
    let Ok(python) = std::env::var("CTINDEX_TOOLS_PYTHON") else {
        if std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() == Ok("1") {
            panic!("verify_awscli: CTINDEX_TOOLS_PYTHON is not set (scripts/tools-venv makes the Python with awscli)");
        }
        support::loud(
            "SKIPPED verify_agrees_with_the_aws_cli_validator: export CTINDEX_TOOLS_PYTHON=\"$(scripts/tools-venv)\" to run it",
        );
        return;
    };
    let Some(server) = s3::server("verify_awscli") else {
        return;
    };
    let bucket = format!("verify-awscli-{}", std::process::id());
    let Some(generated) = generate_for("verify_awscli", false, Some(&bucket)) else {
        return;
    };
    upload(&server.endpoint, &bucket, &generated);
    let out = std::process::Command::new(&python)
        .args([
            support::root().join("scripts/awscli-validate.py").to_str().unwrap(),
            &server.endpoint,
            &bucket,
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/audit",
            "2024-03-01T00:00:00Z",
            "2024-03-03T00:00:00Z",
            &generated.keys(),
            "us-east-1",
            "eu-west-1",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let cli: BTreeSet<String> = text
        .lines()
        .filter(|l| l.contains("\tINVALID"))
        .map(|l| key(l.split('\t').nth(1).unwrap()))
        .collect();
    assert!(text.contains("1/1 backfill digest files valid"), "{text}");
    let run = verify_s3(
        &server.endpoint,
        &format!("s3://{bucket}"),
        &["--public-keys", &generated.keys()],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let ours: BTreeSet<String> = problems(&parse(&run))
        .into_iter()
        .filter(|(kind, _)| kind != "log-not-covered")
        .map(|(_, file)| file)
        .collect();
    assert_eq!(ours, cli, "{text}");
    assert_eq!(ours.len(), 5);
}

/// Without --public-keys the keys come from CloudTrail's ListPublicKeys API:
/// a JSON 1.1 POST per region and page, signed with SigV4 for `cloudtrail`
/// in that region (here answered by a local endpoint with the generated keys,
/// in two pages).
#[test]
fn verify_asks_list_public_keys_signed_per_region_and_page() {
    let Some(generated) = generate("verify_api_keys", false) else {
        return;
    };
    let keys: Value = serde_json::from_slice(&std::fs::read(generated.keys()).unwrap()).unwrap();
    let all = keys["PublicKeyList"].as_array().unwrap().clone();
    let (first, rest) = all.split_at(1);
    let (first, rest) = (
        serde_json::json!({"PublicKeyList": first, "NextToken": "page-2"}).to_string(),
        serde_json::json!({"PublicKeyList": rest}).to_string(),
    );
    let endpoint = support::Endpoint::start(Box::new(move |request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        match body.get("NextToken") {
            Some(_) => (200, vec![], rest.clone()),
            None => (200, vec![], first.clone()),
        }
    }));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args([
        "verify",
        "--json",
        "--cloudtrail-endpoint-url",
        &endpoint.url,
        &generated.trail(),
    ])
    .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
    .env("AWS_SECRET_ACCESS_KEY", "secret")
    .env_remove("AWS_PROFILE");
    let run: Run = cmd.output().unwrap().into();
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        problems(&parse(&run)),
        expected(&generated.manifest, |_| true),
        "{}",
        run.stdout
    );

    let requests = endpoint.requests();
    let mut regions = BTreeSet::new();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.headers["x-amz-target"],
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListPublicKeys"
        );
        assert_eq!(request.headers["content-type"], "application/x-amz-json-1.1");
        let authorization = &request.headers["authorization"];
        let scope = authorization
            .strip_prefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            .unwrap_or_else(|| panic!("{authorization}"));
        let parts: Vec<&str> = scope.split(',').next().unwrap().split('/').collect();
        assert_eq!(&parts[2..], ["cloudtrail", "aws4_request"], "{authorization}");
        regions.insert(parts[1].to_string());
        // The digests' time span, an hour either side: 2024-03-01T21:00:31Z .. 2024-03-02T04:00:31Z.
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["StartTime"].as_i64(), Some(1_709_326_831 - 3600), "{body}");
        assert_eq!(body["EndTime"].as_i64(), Some(1_709_352_031 + 3600), "{body}");
    }
    // The digests' regions (the trail's home region is one of them), two pages each.
    assert_eq!(
        regions,
        BTreeSet::from(["eu-west-1".to_string(), "us-east-1".to_string()])
    );
    assert_eq!(requests.len(), 4);
}

/// A refused ListPublicKeys: could not check (exit 1), and the error names
/// the permission and the offline way.
#[test]
fn verify_without_the_permission_to_list_public_keys_says_what_to_do() {
    let Some(generated) = generate("verify_api_denied", true) else {
        return;
    };
    let endpoint = support::Endpoint::start(Box::new(|_| {
        (
            400,
            vec![],
            r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::1:user/x is not authorized to perform: cloudtrail:ListPublicKeys"}"#.to_string(),
        )
    }));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(["verify", "--cloudtrail-endpoint-url", &endpoint.url, &generated.trail()])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env_remove("AWS_PROFILE");
    let run: Run = cmd.output().unwrap().into();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        run.stderr
            .contains("allow cloudtrail:ListPublicKeys, or pass --public-keys FILE"),
        "{}",
        run.stderr
    );
}

/// What `import --verify` of a local copy must stamp each log file's events
/// with, from the manifest alone: `verified` where a digest whose signature
/// a local copy can check (and that has no planted problem) lists it,
/// `failed` for the changed log file (its digest is such a one), else
/// `unverified`.
fn planted_integrity(generated: &Generated) -> std::collections::BTreeMap<String, &'static str> {
    let m = &generated.manifest;
    let unchecked = unchecked_offline(generated);
    let mut bad: BTreeSet<String> = BTreeSet::new();
    let mut changed = BTreeSet::new();
    for planted in m["planted"].as_array().unwrap() {
        let file = planted["file"].as_str().unwrap().to_string();
        match planted["kind"].as_str().unwrap() {
            "digest-changed" | "digest-wrong-key" | "digest-deleted" => {
                bad.insert(file);
            }
            "log-changed" => {
                changed.insert(file);
            }
            _ => {}
        }
    }
    let mut listed_by = std::collections::BTreeMap::new();
    for (digest, logs) in m["logs_per_digest"].as_object().unwrap() {
        for log in logs.as_array().unwrap() {
            listed_by.insert(log.as_str().unwrap().to_string(), digest.clone());
        }
    }
    generated
        .list("log_files")
        .into_iter()
        .map(|log| {
            let proven = listed_by
                .get(&log)
                .is_some_and(|d| !unchecked.contains(d) && !bad.contains(d));
            let stamp = match (proven, changed.contains(&log)) {
                (true, true) => "failed",
                (true, false) => "verified",
                (false, _) => "unverified",
            };
            (log, stamp)
        })
        .collect()
}

/// Events in a log file of the generated trail.
fn events_in(path: &std::path::Path) -> u64 {
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let value: Value = serde_json::from_slice(&text).unwrap();
    value["Records"].as_array().unwrap().len() as u64
}

#[test]
fn import_verify_stamps_each_event_as_the_planted_truth_says() {
    let clusters = support::clusters("import_verify");
    if clusters.is_empty() {
        return;
    }
    let Some(generated) = generate("import_verify", false) else {
        return;
    };
    let truth = planted_integrity(&generated);
    let mut want: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (log, stamp) in &truth {
        let path = generated.root.join("trail").join(log);
        if path.exists() {
            *want.entry(stamp).or_default() += events_in(&path);
        }
    }
    // The planted truth holds each kind.
    assert!(want.get("verified").is_some_and(|n| *n > 0), "{want:?}");
    assert!(want.get("unverified").is_some_and(|n| *n > 0), "{want:?}");
    assert_eq!(want.get("failed"), Some(&3), "{want:?}");
    let changed: Vec<&String> = truth.iter().filter(|(_, s)| **s == "failed").map(|(l, _)| l).collect();

    for cluster in clusters
        .iter()
        .filter(|c| c.name == "elasticsearch" || c.name == "opensearch")
    {
        let prefix = support::prefix("import_verify");
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.json");
        let run = support::ctindex(&[
            "import",
            &generated.trail(),
            "--verify",
            "--public-keys",
            &generated.keys(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--replicas",
            "0",
            "--summary-json",
            summary.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}: {run:?}", cluster.name);
        // The changed file is named in a warning, and counted in the summary.
        for log in &changed {
            assert!(
                run.stderr.contains(log.as_str()),
                "{}: {log} not named: {}",
                cluster.name,
                run.stderr
            );
        }
        let summary = support::summary(&summary);
        for stamp in ["verified", "unverified", "failed"] {
            let want = want.get(stamp).copied().unwrap_or(0);
            assert_eq!(
                summary["integrity"][stamp].as_u64(),
                Some(want),
                "{}: {stamp}",
                cluster.name
            );
            let indexed = cluster.count(
                &format!("{prefix}-*"),
                serde_json::json!({"term": {"ctindex.integrity": stamp}}),
            );
            assert_eq!(indexed, want, "{}: events indexed as {stamp}", cluster.name);
        }
        // Every event is stamped.
        let total: u64 = want.values().sum();
        assert_eq!(
            cluster.count(&format!("{prefix}-*"), serde_json::json!({"match_all": {}})),
            total
        );
        cluster.cleanup(&prefix);
    }
}

/// What a sync of a local copy stamps each log file's events with when
/// `present` are the digests there: `verified` where a present digest whose
/// signature a local copy can check (the next one of its chain is present
/// too; not a backfill digest) lists it, `failed` if that file is in
/// `changed`, else `unverified`. From the manifest alone.
fn offline_truth(
    generated: &Generated,
    present: &BTreeSet<String>,
    changed: &BTreeSet<String>,
) -> std::collections::BTreeMap<String, &'static str> {
    let m = &generated.manifest;
    let backfill: BTreeSet<String> = generated.list("backfill_digests").into_iter().collect();
    let mut checkable = BTreeSet::new();
    for chain in m["chains"].as_object().unwrap().values() {
        let chain: Vec<&str> = chain.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for pair in chain.windows(2) {
            if present.contains(pair[0]) && present.contains(pair[1]) && !backfill.contains(pair[0]) {
                checkable.insert(pair[0].to_string());
            }
        }
    }
    let mut truth = std::collections::BTreeMap::new();
    for (digest, logs) in m["logs_per_digest"].as_object().unwrap() {
        for log in logs.as_array().unwrap() {
            let log = log.as_str().unwrap().to_string();
            let stamp = match (checkable.contains(digest), changed.contains(&log)) {
                (true, true) => "failed",
                (true, false) => "verified",
                (false, _) => "unverified",
            };
            truth.insert(log, stamp);
        }
    }
    truth
}

/// Events by stamp of the files that `truth` stamps, as `trail` holds them.
fn events_by_stamp(
    trail: &std::path::Path,
    truth: &std::collections::BTreeMap<String, &'static str>,
) -> std::collections::BTreeMap<&'static str, u64> {
    let mut out = std::collections::BTreeMap::from([("verified", 0), ("unverified", 0), ("failed", 0)]);
    for (log, stamp) in truth {
        *out.get_mut(stamp).unwrap() += events_in(&trail.join(log));
    }
    out
}

/// Changes a byte of a log file's uncompressed content (its events stay valid).
fn tamper(path: &std::path::Path) {
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let at = text.windows(17).position(|w| w == b"DescribeInstances").unwrap();
    text[at] = b'd';
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &text).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

/// Issue 21: "a later sync, once the hour's digest has arrived, upgrades
/// `unverified` events of that hour to `verified` without reading the logs
/// again". A sync --verify of a local copy whose newest us-east-1 digest has
/// not arrived stamps the two last hours of us-east-1 unverified (the
/// second newest digest's signature is in the newest one), and one of their
/// files was changed after delivery. The digest arrives, and the files of
/// that hour are deleted: the next sync reads no file, restamps the hour's
/// intact file `verified` and the changed one `failed` (named in a warning
/// and in the summary), and the counts by `ctindex.integrity` in the
/// cluster are the planted truth's; a third sync has nothing left to judge.
/// On Elasticsearch and OpenSearch, with the state in a file and in the cluster.
#[test]
fn sync_verify_upgrades_unverified_events_once_their_digest_arrives() {
    let clusters = support::clusters("sync_verify_upgrade");
    if clusters.is_empty() {
        return;
    }
    for cluster in clusters
        .iter()
        .filter(|c| c.name == "elasticsearch" || c.name == "opensearch")
    {
        for state_in_file in [true, false] {
            let Some(generated) = generate("sync_verify_upgrade", true) else {
                return;
            };
            let case = format!(
                "{} (state in {})",
                cluster.name,
                if state_in_file { "a file" } else { "the cluster" }
            );
            let trail = generated.root.join("trail");
            let east = generated.manifest["chains"]["us-east-1/audit"]
                .as_array()
                .unwrap()
                .clone();
            let newest = east[east.len() - 1].as_str().unwrap().to_string();
            let before = east[east.len() - 2].as_str().unwrap().to_string();
            let hour: Vec<String> = generated.manifest["logs_per_digest"][&before]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(hour.len(), 2);
            let changed = BTreeSet::from([hour[0].clone()]);
            tamper(&trail.join(&hour[0]));
            // The newest digest has not arrived yet.
            let held = generated.root.join("held.json.gz");
            std::fs::rename(trail.join(&newest), &held).unwrap();

            let all: BTreeSet<String> = generated.list("digests").into_iter().collect();
            let mut present = all.clone();
            present.remove(&newest);
            let first = offline_truth(&generated, &present, &changed);
            let second = offline_truth(&generated, &all, &changed);
            let (want1, want2) = (events_by_stamp(&trail, &first), events_by_stamp(&trail, &second));
            // What the second sync must change: exactly the hour's two files.
            let moved: Vec<(&String, &str, &str)> = first
                .iter()
                .filter(|(log, stamp)| second[*log] != **stamp)
                .map(|(log, stamp)| (log, *stamp, second[log]))
                .collect();
            assert_eq!(
                moved,
                [(&hour[0], "unverified", "failed"), (&hour[1], "unverified", "verified")],
                "{case}"
            );

            let prefix = support::prefix("sync_verify_upgrade");
            let dir = tempfile::tempdir().unwrap();
            let state_file = dir.path().join("state.json");
            let state_index = format!("state-{prefix}");
            let sync = |summary: &std::path::Path| {
                let mut args = vec![
                    "sync",
                    trail.to_str().unwrap(),
                    "--verify",
                    "--public-keys",
                    generated.root.join("public-keys.json").to_str().unwrap(),
                    "--since",
                    "2024-03-01",
                    "--url",
                    &cluster.url,
                    "--index-prefix",
                    &prefix,
                    "--replicas",
                    "0",
                    "--summary-json",
                    summary.to_str().unwrap(),
                ]
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<String>>();
                if state_in_file {
                    args.extend(["--state-file".to_string(), state_file.display().to_string()]);
                } else {
                    args.extend(["--state-index".to_string(), state_index.clone()]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                support::ctindex(&args)
            };
            let counts = |case: &str, want: &std::collections::BTreeMap<&str, u64>| {
                for (stamp, n) in want {
                    let indexed = cluster.count(
                        &format!("{prefix}-*"),
                        serde_json::json!({"term": {"ctindex.integrity": stamp}}),
                    );
                    assert_eq!(indexed, *n, "{case}: events indexed as {stamp}");
                }
            };

            let summary1 = dir.path().join("1.json");
            let run = sync(&summary1);
            assert_eq!(run.code, 0, "{case}: {run:?}");
            let summary1 = support::summary(&summary1);
            for (stamp, n) in &want1 {
                assert_eq!(summary1["integrity"][stamp].as_u64(), Some(*n), "{case}: {stamp}");
            }
            assert!(want1["unverified"] >= 6, "{case}: {want1:?}");
            counts(&format!("{case}, first sync"), &want1);

            // The digest arrives; the hour's log files are gone: they cannot be read again.
            std::fs::rename(&held, trail.join(&newest)).unwrap();
            for log in &hour {
                std::fs::remove_file(trail.join(log)).unwrap();
            }
            let summary2 = dir.path().join("2.json");
            let run = sync(&summary2);
            assert_eq!(run.code, 0, "{case}: {run:?}");
            assert!(
                run.stderr.contains(&hour[0]),
                "{case}: the changed file is not named: {}",
                run.stderr
            );
            let summary2 = support::summary(&summary2);
            assert_eq!(summary2["files"].as_u64(), Some(0), "{case}: a file was read again");
            assert_eq!(summary2["events_read"].as_u64(), Some(0), "{case}");
            let integrity = &summary2["integrity"];
            assert_eq!(
                integrity["upgraded"],
                serde_json::json!({"verified": {"files": 1, "events": 3}, "failed": {"files": 1, "events": 3}}),
                "{case}: {integrity}"
            );
            assert!(
                integrity["failed_files"].to_string().contains(&hour[0]),
                "{case}: {integrity}"
            );
            assert!(
                run.stdout.contains("1 verified (3 events), 1 failed (3 events)"),
                "{case}: {}",
                run.stdout
            );
            // The deleted files' events are still in the index, restamped (want2 was counted before they went).
            assert_eq!(want2["failed"], 3, "{case}");
            assert_eq!(want2["verified"], want1["verified"] + 3, "{case}");
            counts(&format!("{case}, second sync"), &want2);

            // Judged once: the next sync restamps nothing.
            let summary3 = dir.path().join("3.json");
            let run = sync(&summary3);
            assert_eq!(run.code, 0, "{case}: {run:?}");
            let summary3 = support::summary(&summary3);
            assert_eq!(
                summary3["integrity"]["upgraded"],
                serde_json::json!({"verified": {"files": 0, "events": 0}, "failed": {"files": 0, "events": 0}}),
                "{case}"
            );
            counts(&format!("{case}, third sync"), &want2);
            cluster.cleanup(&prefix);
        }
    }
}
