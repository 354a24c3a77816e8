//! The help, version, completions, man page and log output: what a user
//! reads before and around a run. No server needed.

use std::process::Command;

use serde_json::Value;

use crate::support::{self, Run, ctindex};

/// Whether `help` lists the option (as an option line, not a mention in prose).
fn lists(help: &str, option: &str) -> bool {
    help.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with(&format!("{option} ")) || line.starts_with(&format!("{option},")) || line == option
    })
}

/// The headings of a help text, in order ("Source:", "Cluster:", …).
fn headings(help: &str) -> Vec<String> {
    help.lines()
        .filter(|line| !line.starts_with(' ') && line.ends_with(':') && !line.contains(' '))
        .map(|line| line.trim_end_matches(':').to_string())
        .collect()
}

fn help(command: &[&str]) -> String {
    let run = ctindex(&[command, &["--help"]].concat());
    assert_eq!(run.code, 0, "{command:?} --help: {run:?}");
    run.stdout
}

#[test]
fn sync_help_lists_only_what_sync_takes() {
    let sync = help(&["sync"]);
    let import = help(&["import"]);
    for option in ["--from", "--to", "--dry-run", "--list"] {
        assert!(!lists(&sync, option), "sync --help lists {option}:\n{sync}");
        assert!(lists(&import, option), "import --help lacks {option}:\n{import}");
    }
    for option in ["--since", "--lookback-days", "--state-file", "--url", "--regions"] {
        assert!(lists(&sync, option), "sync --help lacks {option}");
    }
    assert!(import.contains("--plan"), "the --plan alias is not shown:\n{import}");
    // What sync does not take, it refuses, and says what to use instead.
    let refused = ctindex(&["sync", "--from", "2025-01-01", "--url", "http://127.0.0.1:9", "src"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--since"), "{}", refused.stderr);
    let refused = ctindex(&["sync", "--dry-run", "src"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("import --dry-run"), "{}", refused.stderr);
}

#[test]
fn every_command_groups_its_options_and_shows_examples() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["import"],
            &[
                "Source",
                "Selection",
                "S3",
                "Cluster",
                "Authentication",
                "Fields",
                "Tuning",
                "Output",
                "Logging",
            ],
        ),
        (
            &["sync"],
            &[
                "Source",
                "Selection",
                "S3",
                "Cluster",
                "Authentication",
                "Fields",
                "Tuning",
                "Output",
                "Sync",
                "Logging",
            ],
        ),
        (
            &["export"],
            &[
                "Source",
                "Selection",
                "S3",
                "Fields",
                "Output",
                "Incremental",
                "Tuning",
                "Logging",
            ],
        ),
        (
            &["setup"],
            &["Cluster", "Authentication", "Retention", "Output", "Logging"],
        ),
        (&["prune"], &["Retention", "Cluster", "Authentication", "Logging"]),
        (&["dashboards", "install"], &["Dashboards", "Authentication", "Logging"]),
        (&["dashboards", "export"], &["Dashboards", "Output", "Logging"]),
        (&["completions"], &["Arguments", "Logging"]),
    ];
    for (command, expected) in cases {
        let text = help(command);
        let found = headings(&text);
        for heading in *expected {
            assert!(
                found.iter().any(|h| h == heading),
                "{command:?}: no {heading} in {found:?}"
            );
        }
        // No option left outside a heading but -h.
        let options: Vec<&str> = text
            .split("\nOptions:\n")
            .nth(1)
            .map(|rest| rest.split("\n\n").next().unwrap_or(""))
            .unwrap_or("")
            .lines()
            .filter(|line| line.trim_start().starts_with('-'))
            .collect();
        assert!(
            options.iter().all(|line| line.trim_start().starts_with("-h, --help")),
            "{command:?}: options without a heading: {options:?}"
        );
        let examples = text
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?}: no examples:\n{text}"));
        let invocation = format!("ctindex {}", command.join(" "));
        assert!(
            examples.lines().any(|line| line.trim_start().starts_with(&invocation)),
            "{command:?}: no example runs `{invocation}`:\n{examples}"
        );
    }
}

#[test]
fn help_texts_say_what_applies() {
    let top = help(&[]);
    assert!(top.contains("S3"), "the description does not mention S3:\n{top}");
    assert!(lists(&top, "completions"), "{top}");
    assert!(!lists(&top, "man"), "the man subcommand is hidden:\n{top}");

    let replicas = help(&["setup"]);
    assert!(replicas.contains("auto_expand_replicas 0-1"), "{replicas}");
    assert!(!replicas.contains("the cluster's"), "{replicas}");

    let export = help(&["export"]);
    let dead_letter = export
        .split("--dead-letter <FILE>")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no --dead-letter in export --help:\n{export}"));
    assert!(dead_letter.contains("not CloudTrail events"), "{dead_letter}");
    assert!(!dead_letter.contains("cluster"), "{dead_letter}");

    // Exit codes: only those the command can end with.
    let codes = |text: &str| -> Vec<String> {
        text.split("Exit codes:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no exit codes:\n{text}"))
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|word| word.chars().all(|c| c.is_ascii_digit()))
            .map(String::from)
            .collect()
    };
    for (command, expected) in [
        (&["import"][..], &["0", "1", "2", "3", "4", "130"][..]),
        (&["sync"], &["0", "1", "2", "3", "130"]),
        (&["follow"], &["0", "1", "2", "3", "130"]),
        (&["export"], &["0", "1", "2", "3", "4", "130"]),
        (&["setup"], &["0", "1", "2"]),
        (&["prune"], &["0", "1", "2"]),
        (&["dashboards", "export"], &["0", "1", "2"]),
        (&["dashboards", "install"], &["0", "1", "2", "3"]),
    ] {
        assert_eq!(codes(&help(command)), expected, "{command:?}");
    }
    assert!(help(&["dashboards", "install"]).contains("saved objects were installed and others refused"));
}

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = ctindex(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:?}");
        for command in [
            "import",
            "sync",
            "follow",
            "export",
            "setup",
            "prune",
            "dashboards",
            "completions",
        ] {
            assert!(run.stdout.contains(command), "{shell}: {command} missing");
        }
        assert!(run.stdout.contains("index-prefix"), "{shell}: options missing");
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ctindex.bash");
    std::fs::write(&script, ctindex(&["completions", "bash"]).stdout).unwrap();
    match Command::new("bash").arg("-n").arg(&script).output() {
        Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => support::loud(&format!(
            "NOTE: bash not found ({e}): completion script syntax not checked"
        )),
    }
    let bad = ctindex(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn version_names_the_commit_and_build_date() {
    let run = ctindex(&["--version"]);
    assert_eq!(run.code, 0, "{run:?}");
    let pattern = regex_lite::Regex::new(
        r"^ctindex (\d+\.\d+\.\d+\S*) \(commit ([0-9a-f]{7,40}|unknown), built (\d{4}-\d{2}-\d{2})\)\n$",
    )
    .unwrap();
    let caps = pattern
        .captures(&run.stdout)
        .unwrap_or_else(|| panic!("--version: {:?}", run.stdout));
    assert_eq!(&caps[1], env!("CARGO_PKG_VERSION"));
    let commit = &caps[2];
    // Built from a checkout: the commit is one of its commits.
    let git = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(support::root())
        .output();
    if git.is_ok_and(|out| out.status.success()) {
        let kind = Command::new("git")
            .args(["cat-file", "-t", commit])
            .current_dir(support::root())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&kind.stdout).trim(),
            "commit",
            "--version names {commit}"
        );
    } else {
        support::loud("NOTE: no git checkout: --version's commit not checked against the repository");
    }
    let year: u32 = caps[3][..4].parse().unwrap();
    assert!(year >= 2024, "build date {}", &caps[3]);
}

#[test]
fn man_page_is_roff() {
    let run = ctindex(&["man"]);
    assert_eq!(run.code, 0, "{run:?}");
    let th = run
        .stdout
        .lines()
        .find(|line| line.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH line:\n{}", run.stdout));
    assert!(th.starts_with(".TH ctindex 1 "), "{th}");
    // Roff from the first line: requests only before the title.
    let before_title: Vec<&str> = run
        .stdout
        .lines()
        .take_while(|line| !line.starts_with(".TH "))
        .collect();
    assert!(
        before_title.iter().all(|line| line.starts_with('.')),
        "{before_title:?}"
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH VERSION",
    ] {
        assert!(run.stdout.contains(section), "no {section}:\n{}", run.stdout);
    }
    // Examples are kept as typed (no-fill), with hyphens escaped as minus signs.
    assert!(run.stdout.contains("\n.nf\n"), "{}", run.stdout);
    assert!(run.stdout.contains("ctindex import \\-\\-url"), "{}", run.stdout);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = ctindex(&["man", "--out-dir", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    for page in [
        "ctindex.1",
        "ctindex-import.1",
        "ctindex-sync.1",
        "ctindex-dashboards-install.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}");
    }
}

/// Every line on stderr is a JSON object with a level and a message.
fn json_lines(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(value["level"].is_string() && value["message"].is_string(), "{line}");
            value
        })
        .collect()
}

#[test]
fn log_format_json_makes_every_stderr_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let trail = support::fixtures().join("trail");
    let dead = dir.path().join("dead.ndjson");
    let args = |format: &str| {
        vec![
            "-v".to_string(),
            "--log-format".to_string(),
            format.to_string(),
            "import".to_string(),
            "--dry-run".to_string(),
            "--progress".to_string(),
            "log".to_string(),
            "--dead-letter".to_string(),
            dead.display().to_string(),
            trail.display().to_string(),
        ]
    };
    let run = |format: &str| {
        let args = args(format);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::ctindex_in(dir.path(), &args)
    };
    let json = run("json");
    assert!(json.code == 0 || json.code == 3, "{json:?}");
    let lines = json_lines(&json);
    assert!(!lines.is_empty(), "-v printed nothing on stderr");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "{lines:?}");
    // The same run in text is not JSON: the option is what changed it.
    let text = run("text");
    assert!(
        text.stderr
            .lines()
            .any(|line| serde_json::from_str::<Value>(line).is_err()),
        "{}",
        text.stderr
    );
    // A failure ends with a JSON error line, not a plain one.
    let failed = ctindex(&[
        "--log-format",
        "json",
        "import",
        "--dry-run",
        "/nonexistent/ctindex-source",
    ]);
    assert_ne!(failed.code, 0, "{failed:?}");
    let lines = json_lines(&failed);
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap_or("").contains("/nonexistent")),
        "{lines:?}"
    );
}

/// Runs ctindex reading an AWS config whose credentials file is missing: the
/// AWS SDK warns about it while ctindex looks for credentials.
fn with_broken_aws_config(flags: &[&str], log: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", dir.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("missing-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(log.map(|filter| ("CTINDEX_LOG", filter)))
        .current_dir(dir.path())
        .args(flags)
        .args([
            "import",
            "--dry-run",
            "--region",
            "us-east-1",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "s3://ctindex-no-such-bucket",
        ]);
    cmd.output().expect("cannot run ctindex").into()
}

#[test]
fn quiet_and_default_hide_other_crates_warnings_verbose_and_ctindex_log_show_them() {
    let sdk_warning = |run: &Run| {
        run.stderr
            .lines()
            .any(|line| line.contains("WARN") && line.contains("AWS_SHARED_CREDENTIALS_FILE"))
    };
    let verbose = with_broken_aws_config(&["-v"], None);
    assert!(
        sdk_warning(&verbose),
        "-v should show the SDK's warning:\n{}",
        verbose.stderr
    );
    for flags in [&["-q"][..], &[]] {
        let run = with_broken_aws_config(flags, None);
        assert!(!sdk_warning(&run), "{flags:?} shows the SDK's warning:\n{}", run.stderr);
        // ctindex's own error still shows.
        assert!(run.stderr.contains("ctindex: error"), "{flags:?}: {}", run.stderr);
    }
    // CTINDEX_LOG overrides -q.
    let overridden = with_broken_aws_config(&["-q"], Some("warn"));
    assert!(sdk_warning(&overridden), "CTINDEX_LOG=warn -q:\n{}", overridden.stderr);
}
