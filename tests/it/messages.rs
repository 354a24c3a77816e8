//! Messages that guide instead of puzzle (issue 19): mistakes on the command
//! line are refused (exit code 2) or warned about, with the reason, and a
//! `--url` that does not lead to a cluster says what answered (exit code 1).
//! Dry runs where possible, so that no cluster is needed.

use std::path::Path;
use std::process::Command;

use crate::support::{self, Endpoint, Request, Responder, Run};

fn trail() -> String {
    support::fixtures().join("trail").to_str().unwrap().to_string()
}

/// `import --dry-run` of the fixture trail, with `extra` options.
fn dry_run(extra: &[&str]) -> Run {
    let trail = trail();
    let mut args = vec!["import", trail.as_str(), "--dry-run"];
    args.extend_from_slice(extra);
    support::ctindex(&args)
}

/// Runs `ctindex` in `dir` with these environment variables and no inherited CTINDEX_* ones.
fn ctindex_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("cannot run ctindex").into()
}

/// The error line (`ctindex: error: ...`).
fn error_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.starts_with("ctindex: error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stderr))
}

#[test]
fn drops_of_what_every_document_needs_are_refused() {
    for (drop, says) in [
        (
            "*",
            "ctindex: error: --drop '*' would remove every top-level field, leaving each document empty, while \
             every document needs eventTime, eventID, eventName and eventSource",
        ),
        (
            "**.*",
            "ctindex: error: --drop '**.*' would remove every top-level field, leaving each document empty",
        ),
        (
            "eventTime",
            "ctindex: error: --drop 'eventTime' would remove what every document needs: eventTime (the event's \
             time, which picks its monthly index",
        ),
        (
            "eventID",
            "ctindex: error: --drop 'eventID' would remove what every document needs: eventID (the event's unique id",
        ),
        (
            "**.eventSource",
            "ctindex: error: --drop '**.eventSource' would remove what every document needs: eventSource (the AWS \
             service called",
        ),
    ] {
        let run = dry_run(&["--drop", drop]);
        assert_eq!(run.code, 2, "--drop {drop}: {}", run.stderr);
        let line = error_line(&run);
        assert!(line.starts_with(says), "--drop {drop}: {line}");
        assert!(run.stdout.is_empty(), "--drop {drop}: something ran: {}", run.stdout);
    }
    // A wildcard that catches one names the --keep that spares it.
    let run = dry_run(&["--drop", "event*", "--keep", "eventTime", "--keep", "eventName"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_line(&run).ends_with("; add --keep eventID --keep eventSource to spare them"),
        "{}",
        run.stderr
    );
    // `**` was refused already, and still is.
    let run = dry_run(&["--drop", "**"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_line(&run).contains("'**': it would match every field"),
        "{}",
        run.stderr
    );
    // Keeping what every document needs makes `*` a list of fields to keep: allowed.
    let run = dry_run(&[
        "--drop",
        "*",
        "--keep",
        "eventTime",
        "--keep",
        "eventID",
        "--keep",
        "eventName",
        "--keep",
        "eventSource",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("2900 encoded"), "{}", run.stdout);
}

#[test]
fn patterns_that_can_never_match_are_warned_about() {
    let run = dry_run(&[
        "--drop",
        "userIdentiy.arn",
        "--drop",
        "eventName.x",
        "--keep",
        "eventname",
        "--drop",
        "requestParameters.policy*",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for says in [
        "WARN --drop 'userIdentiy.arn' removes nothing: no CloudTrail event has a top-level field 'userIdentiy': \
         did you mean 'userIdentity'?",
        "WARN --drop 'eventName.x' removes nothing: eventName holds a single value, with no fields inside to match",
        "WARN --keep 'eventname' spares nothing: no CloudTrail event has a top-level field 'eventname': did you \
         mean 'eventName'? (field names are case-sensitive)",
    ] {
        assert!(run.stderr.contains(says), "'{says}' not in:\n{}", run.stderr);
    }
    // A pattern that may match is not warned about, and the run goes on.
    assert!(!run.stderr.contains("'requestParameters.policy*'"), "{}", run.stderr);
    assert!(run.stdout.contains("2900 events read"), "{}", run.stdout);
}

#[test]
fn urls_without_a_scheme_say_how_to_write_them() {
    let trail = trail();
    for (url, says) in [
        (
            "127.0.0.1:9200",
            "ctindex: error: --url 127.0.0.1:9200: add the scheme: http://127.0.0.1:9200 or https://127.0.0.1:9200",
        ),
        (
            "localhost:9200",
            "ctindex: error: --url localhost:9200: add the scheme: http://localhost:9200 or https://localhost:9200",
        ),
    ] {
        let run = support::ctindex(&["import", &trail, "--url", url]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert_eq!(error_line(&run), says, "{url}");
        assert!(!run.stderr.contains("relative URL"), "{url}: {}", run.stderr);
    }
}

#[test]
fn a_url_that_is_not_a_cluster_says_what_answered() {
    let trail = trail();
    let html = "<!DOCTYPE html><html><head><title>Grafana</title></head></html>";
    let cases: Vec<(&str, Box<Responder>, &str)> = vec![
        (
            "a web page",
            Box::new(move |_: &Request| (200, vec![], html.to_string())),
            "(GET / gave a web page (HTML)): is --url the cluster's address (port 9200 by default), not Kibana's \
             or another service's?",
        ),
        (
            // Kibana sends `/` on to its home page.
            "Kibana",
            Box::new(|r: &Request| match r.target.as_str() {
                "/" => (
                    302,
                    vec![("location", "/app/home"), ("kbn-name", "kibana")],
                    String::new(),
                ),
                _ => (200, vec![("kbn-name", "kibana")], "<!DOCTYPE html><html></html>".into()),
            }),
            "(GET / gave Kibana's answer): --url takes the cluster's address (Elasticsearch or OpenSearch, port \
             9200 by default), not Kibana's (port 5601",
        ),
        (
            // Kibana or OpenSearch Dashboards with a base path: 404 at `/`.
            "Kibana with a base path",
            Box::new(|_: &Request| {
                (
                    404,
                    vec![],
                    r#"{"statusCode":404,"error":"Not Found","message":"Not Found"}"#.into(),
                )
            }),
            "(GET / gave 404 with an answer like Kibana's or OpenSearch Dashboards')",
        ),
        (
            "S3",
            Box::new(|_: &Request| {
                (
                    200,
                    vec![],
                    r#"<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult></ListAllMyBucketsResult>"#.into(),
                )
            }),
            "(GET / gave XML, as S3 and other storage services answer): is --url the cluster's address (port 9200 \
             by default)? S3 and S3-compatible storage go to --endpoint-url",
        ),
    ];
    for (what, respond, says) in cases {
        let endpoint = Endpoint::start(respond);
        let run = support::ctindex(&["import", &trail, "--url", &endpoint.url]);
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        let line = error_line(&run);
        let start = format!(
            "ctindex: error: {} answered, but not like Elasticsearch or OpenSearch ",
            endpoint.url
        );
        assert!(line.starts_with(&start), "{what}: {line}");
        assert!(line.contains(says), "{what}: '{says}' not in: {line}");
        assert!(!line.contains("did not answer JSON"), "{what}: {line}");
        // Nothing but questions was sent.
        let requests = endpoint.requests();
        assert!(!requests.is_empty(), "{what}");
        assert!(
            requests.iter().all(|r| r.method == "GET"),
            "{what}: {:?}",
            requests.iter().map(|r| (&r.method, &r.target)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn passwords_on_the_command_line_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let trail = trail();
    // Port 9 refuses: the warnings come before connecting.
    let import = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["import", trail.as_str()];
        args.extend_from_slice(extra);
        ctindex_with_env(dir.path(), &args, env)
    };
    for (extra, says) in [
        (
            &["--url", "http://elastic:hunter2@127.0.0.1:9"][..],
            "--url holds a password, which shows in the process list",
        ),
        (
            &[
                "--url",
                "http://127.0.0.1:9",
                "--user",
                "elastic",
                "--password",
                "hunter2",
            ][..],
            "--password on the command line shows in the process list",
        ),
        (
            &["--url", "http://127.0.0.1:9", "--api-key", "hunter2"][..],
            "--api-key on the command line shows in the process list",
        ),
    ] {
        let run = import(extra, &[]);
        assert_eq!(run.code, 1, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{extra:?}: '{says}' not in:\n{}", run.stderr);
        assert!(
            !run.stderr.contains("hunter2"),
            "{extra:?} leaked the secret: {}",
            run.stderr
        );
    }
    // From the environment: nothing to warn about.
    let run = import(
        &["--url", "http://127.0.0.1:9", "--user", "elastic"],
        &[("CTINDEX_PASSWORD", "hunter2")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(error_line(&run).contains("cannot reach the cluster"), "{}", run.stderr);
    assert!(!run.stderr.contains("process list"), "{}", run.stderr);
}
// To append to tests/it/messages.rs once cmd/import.rs calls config::batch_bytes and
// cli.rs/cmd/import.rs use config::dead_letter_path (see the report of the config engineer).

#[test]
fn batch_sizes_that_are_too_small_are_refused_or_warned_about() {
    let run = dry_run(&["--batch-bytes", "5"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_line(&run).starts_with(
            "ctindex: error: --batch-bytes 5 (bytes) is too small: every bulk request would carry a single event"
        ),
        "{}",
        run.stderr
    );
    let run = dry_run(&["--batch-bytes", "32KB"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "WARN --batch-bytes 32000 (bytes): each bulk request then carries a few events only (CloudTrail events \
             are 1-2KB each); the default 5MB is faster"
        ),
        "{}",
        run.stderr
    );
    // From 64KiB on: no word.
    let run = dry_run(&["--batch-bytes", "100KB"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("--batch-bytes"), "{}", run.stderr);
}

#[test]
fn dead_letters_default_to_a_state_folder_and_the_summary_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    // One event and one value that is not an event: one dead letter.
    std::fs::write(
        cwd.join("t.json"),
        r#"{"Records":[{"eventVersion":"1.08","eventID":"e1","eventTime":"2024-01-01T00:00:00Z","eventName":"X","eventSource":"s3.amazonaws.com"},42]}"#,
    )
    .unwrap();
    let run_with = |extra: &[&str], env: &[(&str, Option<&str>)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
        cmd.args(["import", "--dry-run", "t.json", "--index-prefix", "ct"])
            .args(extra)
            .current_dir(&cwd);
        for (key, _) in std::env::vars() {
            if key.starts_with("CTINDEX_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        Run::from(cmd.output().expect("cannot run ctindex"))
    };
    let lines = |path: &Path| std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0);
    let xdg = dir.path().join("xdg");
    let home = dir.path().join("home");
    let (xdg_s, home_s) = (xdg.to_str().unwrap(), home.to_str().unwrap());
    let in_xdg = xdg.join("ctindex/dead-letters-ct.ndjson");
    let in_home = home.join(".local/state/ctindex/dead-letters-ct.ndjson");
    for (env, want) in [
        (vec![("XDG_STATE_HOME", Some(xdg_s)), ("HOME", Some(home_s))], &in_xdg),
        (vec![("XDG_STATE_HOME", None), ("HOME", Some(home_s))], &in_home),
    ] {
        let run = run_with(&[], &env);
        assert_eq!(run.code, 3, "{env:?}: {}", run.stderr);
        assert!(
            run.stdout.contains(&format!("; dead letters in {}", want.display())),
            "{env:?}: {}",
            run.stdout
        );
        assert_eq!(lines(want), 1, "{env:?}: {}", want.display());
    }
    // Never the current folder, unless asked; a relative --dead-letter is shown absolute.
    assert!(!cwd.join("ctindex-dead-letters.ndjson").exists());
    let run = run_with(&["--dead-letter", "dl.ndjson"], &[("HOME", Some(home_s))]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let given = std::fs::canonicalize(&cwd).unwrap().join("dl.ndjson");
    assert!(
        run.stdout.contains(&format!("; dead letters in {}", given.display())),
        "{}",
        run.stdout
    );
    assert_eq!(lines(&given), 1);
}
