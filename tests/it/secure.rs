//! Secured clusters, for real: `elasticsearch-secure` (HTTPS, file, native
//! and PKI realms, API keys, a service account token) and
//! `opensearch-secure` (HTTPS, the security plugin's internal users), both
//! started by `scripts/stack` with certificates it makes. Every auth method
//! imports the corpus exactly; every refusal (wrong secret, missing
//! privilege, unknown CA, wrong host name, wrong scheme) is one clear line;
//! the documented least-privilege roles (`roles/`) are enough, and each of
//! their privileges is needed.
//!
//! The servers' admin users set up what the tests need (roles, users,
//! tokens) through `curl`, which checks TLS against the stack's CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{self, Oracle, Run};

/// A way to log in: its name, its options and its environment.
type AuthMethod<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Elasticsearch,
    OpenSearch,
}

/// One secured server, from what `scripts/stack env` prints.
#[derive(Debug)]
struct Secure {
    product: Product,
    url: String,
    ca: String,
    user: String,
    password: String,
    admin_user: String,
    admin_password: String,
    api_key: Option<String>,
    service_token: Option<String>,
    client_cert: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(test: &str, what: &str) {
    assert!(
        std::env::var("CTINDEX_REQUIRE_CLUSTERS").as_deref() != Ok("1"),
        "{test}: {what} is not configured but CTINDEX_REQUIRE_CLUSTERS=1 \
         (scripts/stack start {what}; eval \"$(scripts/stack env {what})\")"
    );
    support::skipped(test, &format!("{what} (a secured cluster)"), what);
}

fn elasticsearch(test: &str) -> Option<Secure> {
    let found = (|| {
        Some(Secure {
            product: Product::Elasticsearch,
            url: var("ES_SECURE_URL")?,
            ca: var("ES_SECURE_CA")?,
            user: var("ES_SECURE_USER")?,
            password: var("ES_SECURE_PASSWORD")?,
            admin_user: var("ES_SECURE_ADMIN_USER")?,
            admin_password: var("ES_SECURE_ADMIN_PASSWORD")?,
            api_key: Some(var("ES_SECURE_API_KEY")?),
            service_token: Some(var("ES_SECURE_SERVICE_TOKEN")?),
            client_cert: Some(var("ES_SECURE_CLIENT_CERT")?),
        })
    })();
    if found.is_none() {
        required(test, "elasticsearch-secure");
    }
    found
}

fn opensearch(test: &str) -> Option<Secure> {
    let found = (|| {
        Some(Secure {
            product: Product::OpenSearch,
            url: var("OPENSEARCH_SECURE_URL")?,
            ca: var("OPENSEARCH_SECURE_CA")?,
            user: var("OPENSEARCH_SECURE_USER")?,
            password: var("OPENSEARCH_SECURE_PASSWORD")?,
            admin_user: var("OPENSEARCH_SECURE_ADMIN_USER")?,
            admin_password: var("OPENSEARCH_SECURE_ADMIN_PASSWORD")?,
            api_key: None,
            service_token: None,
            client_cert: None,
        })
    })();
    if found.is_none() {
        required(test, "opensearch-secure");
    }
    found
}

fn source() -> PathBuf {
    support::corpus().unwrap_or_else(support::fixtures)
}

fn small_source() -> PathBuf {
    support::fixtures().join("trail/AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10")
}

/// Runs ctindex with only these CTINDEX_* variables, in a fresh folder.
fn ctindex(args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctindex"));
    cmd.args(args).current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("CTINDEX_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("cannot run ctindex").into()
}

/// The error line of a failed run (the last line of stderr).
fn error_line(run: &Run) -> &str {
    run.stderr.trim().lines().last().unwrap_or("")
}

impl Secure {
    /// A request as the admin user; returns (status, JSON body).
    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("{}:{}", self.admin_user, self.admin_password);
        let url = format!("{}{path}", self.url);
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--cacert",
            &self.ca,
            "-u",
            &auth,
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &url,
        ]);
        if let Some(body) = body {
            cmd.args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body.to_string(),
            ]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    fn admin_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.admin(method, path, body);
        assert!(status < 300, "{method} {path}: {status} {answer}");
        answer
    }

    fn count(&self, target: &str) -> u64 {
        self.admin_ok("POST", &format!("/{target}/_refresh"), None);
        let answer = self.admin_ok("GET", &format!("/{target}/_count"), None);
        answer["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {answer}"))
    }

    fn cleanup(&self, prefix: &str) {
        let (_, indices) = self.admin("GET", &format!("/_cat/indices/{prefix}-*?format=json&h=index"), None);
        for index in indices
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["index"].as_str())
        {
            self.admin("DELETE", &format!("/{index}"), None);
        }
        self.admin("DELETE", &format!("/_index_template/ctindex-{prefix}"), None);
    }

    /// `import SOURCE --url URL --ca-cert CA --index-prefix PREFIX` and more.
    fn import(&self, source: &Path, prefix: &str, more: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec![
            "import",
            source.to_str().unwrap(),
            "--ca-cert",
            &self.ca,
            "--index-prefix",
            prefix,
            "--replicas",
            "0",
            "--progress",
            "log",
        ];
        if !more.contains(&"--url") {
            args.extend(["--url", &self.url]);
        }
        args.extend(more);
        ctindex(&args, env)
    }

    /// A native / internal user with exactly this role (replaced if there).
    fn user_with_role(&self, name: &str, password: &str, role: &Value) {
        match self.product {
            Product::Elasticsearch => {
                self.admin_ok("PUT", &format!("/_security/role/{name}"), Some(role));
                self.admin_ok(
                    "PUT",
                    &format!("/_security/user/{name}"),
                    Some(&json!({"password": password, "roles": [name]})),
                );
            }
            Product::OpenSearch => {
                let api = "/_plugins/_security/api";
                self.admin_ok("PUT", &format!("{api}/roles/{name}"), Some(role));
                self.admin_ok(
                    "PUT",
                    &format!("{api}/internalusers/{name}"),
                    Some(&json!({"password": password})),
                );
                self.admin_ok(
                    "PUT",
                    &format!("{api}/rolesmapping/{name}"),
                    Some(&json!({"users": [name]})),
                );
            }
        }
    }
}

/// The documented roles, as the README shows them.
fn documented_role(product: Product) -> Value {
    let root = support::root();
    match product {
        Product::Elasticsearch => {
            serde_json::from_str(&std::fs::read_to_string(root.join("roles/elasticsearch.json")).unwrap()).unwrap()
        }
        Product::OpenSearch => opensearch_role(&std::fs::read_to_string(root.join("roles/opensearch.yml")).unwrap()),
    }
}

/// Reads roles/opensearch.yml: the role `ctindex_writer` with its cluster
/// permissions and index permissions, in the shape the REST API takes. The
/// file keeps to the few YAML forms parsed here (block lists of quoted
/// strings and flow lists), which the test checks.
fn opensearch_role(text: &str) -> Value {
    let list = |s: &str| -> Vec<Value> {
        let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
        inner
            .split(',')
            .map(|p| p.trim().trim_matches('"'))
            .filter(|p| !p.is_empty())
            .map(|p| json!(p))
            .collect()
    };
    let mut cluster = Vec::new();
    let mut index = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t == "ctindex_writer:" {
            continue;
        }
        if t == "cluster_permissions:" || t == "index_permissions:" {
            section = t;
        } else if section == "cluster_permissions:" && t.starts_with("- ") {
            cluster.push(json!(t[2..].trim().trim_matches('"')));
        } else if let Some(patterns) = t.strip_prefix("- index_patterns:") {
            index.push(json!({"index_patterns": list(patterns), "allowed_actions": []}));
        } else if let Some(actions) = t.strip_prefix("allowed_actions:") {
            let last = index.last_mut().expect("allowed_actions before index_patterns");
            last["allowed_actions"] = json!(list(actions));
        } else {
            panic!("roles/opensearch.yml: a line this test does not read: {line}");
        }
    }
    json!({"cluster_permissions": cluster, "index_permissions": index})
}

#[test]
fn every_auth_method_imports_the_corpus_into_secured_clusters() {
    let test = "every_auth_method_imports_the_corpus_into_secured_clusters";
    let source = source();
    let oracle = Oracle::read(&source);
    if let Some(es) = elasticsearch(test) {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{text}\n")).unwrap();
            path.to_str().unwrap().to_string()
        };
        let password_file = file("password", &es.password);
        let api_key = es.api_key.clone().unwrap();
        let api_key_file = file("api-key", &api_key);
        let service_token_file = file("service-token", es.service_token.as_deref().unwrap());
        // An OAuth2 access token of the writer user (a bearer token from the token service).
        let token = es.admin_ok(
            "POST",
            "/_security/oauth2/token",
            Some(&json!({"grant_type": "password", "username": es.user, "password": es.password})),
        )["access_token"]
            .as_str()
            .expect("an access token")
            .to_string();
        let url_with_user = es
            .url
            .replacen("://", &format!("://{}:{}@", es.user, urlencode(&es.password)), 1);
        let client_cert = es.client_cert.clone().unwrap();
        let methods: Vec<AuthMethod> = vec![
            (
                "user + password (environment)",
                vec!["--user", &es.user],
                vec![("CTINDEX_PASSWORD", &es.password)],
            ),
            (
                "user + password (flag)",
                vec!["--user", &es.user, "--password", &es.password],
                vec![],
            ),
            (
                "user + password (file)",
                vec!["--user", &es.user, "--password-file", &password_file],
                vec![],
            ),
            ("user + password (URL)", vec!["--url", &url_with_user], vec![]),
            ("API key (environment)", vec![], vec![("CTINDEX_API_KEY", &api_key)]),
            ("API key (file)", vec!["--api-key-file", &api_key_file], vec![]),
            (
                "bearer token (OAuth2 access token)",
                vec![],
                vec![("CTINDEX_BEARER_TOKEN", &token)],
            ),
            (
                "client certificate (PKI realm)",
                vec!["--client-cert", &client_cert],
                vec![],
            ),
        ];
        for (n, (what, args, env)) in methods.iter().enumerate() {
            let prefix = format!("cloudtrail-auth{n}");
            es.cleanup(&prefix);
            let run = es.import(&source, &prefix, args, env);
            assert!(matches!(run.code, 0 | 3), "{what}: {}", run.stderr);
            assert_eq!(es.count(&prefix), oracle.expected_docs(), "{what}: _count");
            if what.contains("flag") || what.contains("URL") {
                assert!(
                    run.stderr.contains("shows in the process list"),
                    "{what}: no warning: {}",
                    run.stderr
                );
            } else {
                assert!(!run.stderr.contains("process list"), "{what}: {}", run.stderr);
            }
            es.cleanup(&prefix);
        }

        // The service account token (elastic/fleet-server) may write to logs-*
        // but not install templates: the admin installs the template, the
        // token imports with --no-setup.
        let prefix = "logs-ctindex-auth";
        es.cleanup(prefix);
        let admin_env = [("CTINDEX_PASSWORD", es.admin_password.as_str())];
        let setup = ctindex(
            &[
                "setup",
                "--url",
                &es.url,
                "--ca-cert",
                &es.ca,
                "--user",
                &es.admin_user,
                "--index-prefix",
                prefix,
                "--replicas",
                "0",
            ],
            &admin_env,
        );
        assert_eq!(setup.code, 0, "{}", setup.stderr);
        let run = es.import(
            &source,
            prefix,
            &["--bearer-token-file", &service_token_file, "--no-setup"],
            &[],
        );
        assert!(matches!(run.code, 0 | 3), "service token: {}", run.stderr);
        assert_eq!(es.count(prefix), oracle.expected_docs(), "service token: _count");
        es.cleanup(prefix);
    }
    if let Some(os) = opensearch(test) {
        let prefix = "cloudtrail-auth";
        os.cleanup(prefix);
        let run = os.import(
            &source,
            prefix,
            &["--user", &os.user],
            &[("CTINDEX_PASSWORD", &os.password)],
        );
        assert!(matches!(run.code, 0 | 3), "{}", run.stderr);
        assert_eq!(os.count(prefix), oracle.expected_docs(), "OpenSearch: _count");
        os.cleanup(prefix);
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn refusals_are_one_clear_line_with_exit_1() {
    let test = "refusals_are_one_clear_line_with_exit_1";
    let source = small_source();
    for server in [elasticsearch(test), opensearch(test)].into_iter().flatten() {
        let ctx = format!("{:?}", server.product);
        let prefix = "cloudtrail-refusals";
        let check = |what: &str, run: &Run, wants: &[&str]| {
            assert_eq!(run.code, 1, "{ctx} {what}: {}", run.stderr);
            let line = error_line(run);
            assert_eq!(
                run.stderr
                    .trim()
                    .lines()
                    .filter(|l| l.starts_with("ctindex: error"))
                    .count(),
                1,
                "{ctx} {what}: {}",
                run.stderr
            );
            assert!(line.starts_with("ctindex: error: "), "{ctx} {what}: {line}");
            for want in wants {
                assert!(line.contains(want), "{ctx} {what}: '{want}' missing in: {line}");
            }
        };
        let env = [("CTINDEX_PASSWORD", server.password.as_str())];
        let wrong = [("CTINDEX_PASSWORD", "not-the-password")];
        let user = ["--user", server.user.as_str()];

        let run = server.import(&source, prefix, &user, &wrong);
        check(
            "wrong password",
            &run,
            &["401 Unauthorized", &format!("the user '{}'", server.user)],
        );
        if let Some(key) = &server.api_key {
            // A well-formed key whose secret part is wrong.
            let (id, _) = String::from_utf8(base64_decode(key))
                .unwrap()
                .split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap();
            let wrong_key = crate::secrets::base64(format!("{id}:wrongwrongwrongwrong").as_bytes());
            let run = server.import(&source, prefix, &[], &[("CTINDEX_API_KEY", &wrong_key)]);
            check("wrong API key", &run, &["401 Unauthorized", "the API key (--api-key)"]);
            let run = server.import(&source, prefix, &[], &[("CTINDEX_BEARER_TOKEN", "not-a-token")]);
            check(
                "wrong bearer token",
                &run,
                &["401 Unauthorized", "the bearer token (--bearer-token)"],
            );
        }

        // TLS: the stack's CA is unknown to the system; a name the certificate does not list.
        let no_ca = ctindex(
            &[
                "import",
                source.to_str().unwrap(),
                "--url",
                &server.url,
                "--user",
                &server.user,
                "--index-prefix",
                prefix,
            ],
            &env,
        );
        check("unknown CA", &no_ca, &["not trust", "--ca-cert"]);
        let by_ip = server.url.replace("localhost", "127.0.0.1");
        let run = server.import(&source, prefix, &["--url", &by_ip, "--user", &server.user], &env);
        check("wrong host name", &run, &["made for another host name", "127.0.0.1"]);
        let plain = server.url.replace("https://", "http://");
        let run = server.import(&source, prefix, &["--url", &plain, "--user", &server.user], &env);
        check("http:// to HTTPS", &run, &["speaks HTTPS", "use https://"]);
        if let Some(open) = var(if server.product == Product::Elasticsearch {
            "ES_URL"
        } else {
            "OPENSEARCH_URL"
        }) {
            let tls_to_plain = open.replace("http://", "https://");
            let run = ctindex(&["setup", "--url", &tls_to_plain], &[]);
            check("https:// to plain HTTP", &run, &["does not speak TLS", "use http://"]);
        }
        // --insecure works, and says so on every run.
        let run = ctindex(
            &[
                "import",
                source.to_str().unwrap(),
                "--url",
                &server.url,
                "--insecure",
                "--user",
                &server.user,
                "--index-prefix",
                prefix,
                "--replicas",
                "0",
            ],
            &env,
        );
        assert!(matches!(run.code, 0 | 3), "{ctx} --insecure: {}", run.stderr);
        assert!(
            run.stderr.contains("WARN") && run.stderr.contains("--insecure: the TLS certificate"),
            "{ctx}: {}",
            run.stderr
        );
        server.cleanup(prefix);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim().bytes().filter(|&c| c != b'=') {
        let v = TABLE.iter().position(|&t| t == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Each privilege of a role, and the role without it.
fn without_each(product: Product, role: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let (cluster_key, index_key, actions_key) = match product {
        Product::Elasticsearch => ("cluster", "indices", "privileges"),
        Product::OpenSearch => ("cluster_permissions", "index_permissions", "allowed_actions"),
    };
    for (i, privilege) in role[cluster_key].as_array().unwrap().iter().enumerate() {
        let mut r = role.clone();
        r[cluster_key].as_array_mut().unwrap().remove(i);
        out.push((format!("cluster {}", privilege.as_str().unwrap()), r));
    }
    for (j, entry) in role[index_key].as_array().unwrap().iter().enumerate() {
        for (i, privilege) in entry[actions_key].as_array().unwrap().iter().enumerate() {
            let mut r = role.clone();
            r[index_key][j][actions_key].as_array_mut().unwrap().remove(i);
            out.push((
                format!(
                    "{} on {}",
                    privilege.as_str().unwrap(),
                    entry[if product == Product::Elasticsearch {
                        "names"
                    } else {
                        "index_patterns"
                    }]
                ),
                r,
            ));
        }
    }
    out
}

/// What the error must name when `privilege` is missing: Elasticsearch names
/// the privileges that grant the refused action; OpenSearch names the action.
fn names_the_need(product: Product, missing: &str, line: &str) -> bool {
    let privilege = missing
        .split(' ')
        .nth(if missing.starts_with("cluster ") { 1 } else { 0 })
        .unwrap();
    match product {
        Product::Elasticsearch => line.contains(privilege),
        Product::OpenSearch => {
            let action = match privilege {
                "cluster_monitor" => "cluster:monitor",
                "create_index" => "indices:admin/create",
                "index" | "crud" => "indices:data/",
                other => other.trim_end_matches('*'),
            };
            line.contains(action)
        }
    }
}

#[test]
fn the_documented_roles_are_enough_and_each_privilege_is_needed() {
    let test = "the_documented_roles_are_enough_and_each_privilege_is_needed";
    let source = support::fixtures().join("trail");
    let expected = Oracle::read(&source).expected_docs();
    // The role files are the README's: both must show them as they are.
    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    for file in ["roles/elasticsearch.json", "roles/opensearch.yml"] {
        let text = std::fs::read_to_string(support::root().join(file)).unwrap();
        assert!(readme.contains(text.trim()), "README.md does not show {file} as it is");
    }
    for server in [elasticsearch(test), opensearch(test)].into_iter().flatten() {
        let product = server.product;
        let role = documented_role(product);
        let name = "ctindex_lp_test";
        let password = "Lp-Test-Passw0rd!-1";
        let prefix = "cloudtrail-lp";
        let run_both = |role: &Value| -> (Run, Run) {
            server.user_with_role(name, password, role);
            server.cleanup(prefix);
            server.admin("DELETE", "/ctindex-state", None);
            let env = [("CTINDEX_PASSWORD", password)];
            let import = server.import(&source, prefix, &["--user", name], &env);
            let sync = ctindex(
                &[
                    "sync",
                    source.to_str().unwrap(),
                    "--url",
                    &server.url,
                    "--ca-cert",
                    &server.ca,
                    "--user",
                    name,
                    "--index-prefix",
                    prefix,
                    "--replicas",
                    "0",
                ],
                &env,
            );
            (import, sync)
        };
        // The role as documented: import and sync both pass, and index everything.
        let (import, sync) = run_both(&role);
        assert_eq!(import.code, 0, "{product:?} documented role, import: {}", import.stderr);
        assert_eq!(sync.code, 0, "{product:?} documented role, sync: {}", sync.stderr);
        assert!(!import.stderr.contains("WARN"), "{product:?}: {}", import.stderr);
        assert_eq!(server.count(prefix), expected, "{product:?}: _count");
        // Without any one of its privileges, import or sync fails with a clear error.
        for (missing, reduced) in without_each(product, &role) {
            let (import, sync) = run_both(&reduced);
            let failed = if import.code != 0 { &import } else { &sync };
            let ctx = format!("{product:?} without {missing}");
            assert_eq!(
                failed.code, 1,
                "{ctx}: import {} / sync {}: the privilege is not needed\n{}",
                import.code, sync.code, failed.stderr
            );
            let line = error_line(failed);
            assert!(
                line.starts_with("ctindex: error: ") && line.contains("403"),
                "{ctx}: {line}"
            );
            assert!(
                names_the_need(product, &missing, line),
                "{ctx}: the error does not name what is missing: {line}"
            );
        }
        server.cleanup(prefix);
        server.admin("DELETE", "/ctindex-state", None);
    }
}

#[test]
fn no_secret_of_any_method_appears_at_the_most_verbose_level() {
    let test = "no_secret_of_any_method_appears_at_the_most_verbose_level";
    let Some(es) = elasticsearch(test) else { return };
    let source = small_source();
    let pem = std::fs::read_to_string(es.client_cert.as_deref().unwrap()).unwrap();
    let key_body: String = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .and_then(|k| k.lines().nth(1))
        .unwrap_or("")
        .to_string();
    assert!(key_body.len() > 20, "no private key in the client certificate file");
    let basic = crate::secrets::base64(format!("{}:{}", es.user, es.password).as_bytes());
    let api_key = es.api_key.clone().unwrap();
    let token = es.service_token.clone().unwrap();
    let secrets = [es.password.as_str(), &basic, &api_key, &token, &key_body];
    let prefix = "cloudtrail-vv";
    let url_with_user = es
        .url
        .replacen("://", &format!("://{}:{}@", es.user, urlencode(&es.password)), 1);
    let client_cert = es.client_cert.clone().unwrap();
    let runs: Vec<AuthMethod> = vec![
        ("password", vec!["--user", &es.user, "--password", &es.password], vec![]),
        ("URL", vec!["--url", &url_with_user], vec![]),
        ("API key", vec!["--api-key", &api_key], vec![]),
        ("bearer", vec![], vec![("CTINDEX_BEARER_TOKEN", &token)]),
        ("client certificate", vec!["--client-cert", &client_cert], vec![]),
    ];
    for (what, args, env) in runs {
        let mut all_args = vec!["-vv"];
        all_args.extend([
            "import",
            source.to_str().unwrap(),
            "--ca-cert",
            &es.ca,
            "--index-prefix",
            prefix,
        ]);
        if !args.contains(&"--url") {
            all_args.extend(["--url", &es.url]);
        }
        all_args.extend(args);
        let run = ctindex(&all_args, &env);
        assert!(
            run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
            "{what}: not verbose"
        );
        let all = format!("{}{}", run.stdout, run.stderr);
        for secret in secrets {
            assert!(!all.contains(secret), "{what}: a credential appears at -vv");
        }
    }
    es.cleanup(prefix);
}
