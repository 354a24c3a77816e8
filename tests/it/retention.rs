//! Retention: `prune --older-than`, `setup --retention`, `sync --retention`.

use serde_json::json;

use crate::support::{self, Cluster};

/// (year, month) `back` months before the current one.
fn month_before(back: i64) -> (i64, i64) {
    let (y, m, _) = ctindex::date::ymd(ctindex::date::today());
    let months = i64::from(y) * 12 + i64::from(m) - 1 - back;
    (months.div_euclid(12), months.rem_euclid(12) + 1)
}

fn index(prefix: &str, back: i64) -> String {
    let (y, m) = month_before(back);
    format!("{prefix}-{y:04}.{m:02}")
}

fn exists(cluster: &Cluster, index: &str) -> bool {
    support::http("GET", &format!("{}/{index}", cluster.url), None).0 == 200
}

#[test]
fn prune_deletes_exactly_the_old_months_of_the_prefix() {
    for cluster in support::clusters("prune_deletes_exactly_the_old_months_of_the_prefix") {
        let prefix = support::prefix("prune");
        let old = [format!("{prefix}-2019.01"), index(&prefix, 14), index(&prefix, 40)];
        let kept = [
            index(&prefix, 13),
            index(&prefix, 1),
            index(&prefix, 0),
            format!("{prefix}-undated"),
            // Another prefix that starts with this one, and a name that only looks monthly.
            format!("{prefix}-eu-2019.01"),
            format!("{prefix}-2019.1"),
        ];
        for name in old.iter().chain(kept.iter()) {
            let (status, body) = support::http(
                "PUT",
                &format!("{}/{name}", cluster.url),
                Some(&json!({"settings": {"number_of_replicas": 0}})),
            );
            assert!(status < 300, "{}: PUT {name}: {status} {body}", cluster.name);
        }
        let prune = |more: &[&str]| {
            let mut args = vec![
                "prune",
                "--url",
                &cluster.url,
                "--index-prefix",
                &prefix,
                "--older-than",
                "13mo",
            ];
            args.extend(more);
            support::ctindex(&args)
        };

        let dry = prune(&["--dry-run"]);
        assert_eq!(dry.code, 0, "{}: {}", cluster.name, dry.stderr);
        for name in &old {
            assert!(
                dry.stdout.contains(&format!("would delete {name} ")),
                "{}: {}",
                cluster.name,
                dry.stdout
            );
        }
        for name in &kept {
            assert!(
                !dry.stdout.contains(&format!(" {name} ")),
                "{}: {name} listed: {}",
                cluster.name,
                dry.stdout
            );
        }
        assert!(
            dry.stdout.contains("dry run: would delete 3 index(es)"),
            "{}",
            dry.stdout
        );
        for name in old.iter().chain(kept.iter()) {
            assert!(exists(&cluster, name), "{}: --dry-run deleted {name}", cluster.name);
        }

        let run = prune(&[]);
        assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
        assert!(run.stdout.contains("deleted 3 index(es)"), "{}", run.stdout);
        for name in &old {
            assert!(!exists(&cluster, name), "{}: {name} not deleted", cluster.name);
        }
        for name in &kept {
            assert!(exists(&cluster, name), "{}: {name} deleted", cluster.name);
        }
        // Nothing more to do: a second run deletes nothing.
        let again = prune(&[]);
        assert!(again.stdout.contains("deleted 0 index(es)"), "{}", again.stdout);

        for name in &kept {
            support::http("DELETE", &format!("{}/{name}", cluster.url), None);
        }
        cluster.cleanup(&prefix);
    }
}

#[test]
fn retention_policies_say_when_the_cluster_has_no_ilm_or_ism() {
    for cluster in support::clusters("retention_policies_say_when_the_cluster_has_no_ilm_or_ism") {
        let prefix = support::prefix("policy");
        let run = support::ctindex(&[
            "setup",
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--retention",
            "13mo",
        ]);
        assert_eq!(run.code, 0, "{}: {}", cluster.name, run.stderr);
        let ilm = support::http("GET", &format!("{}/_ilm/status", cluster.url), None).0 == 200;
        let ism = support::http("GET", &format!("{}/_plugins/_ism/policies", cluster.url), None).0 == 200;
        if ilm {
            // The policy is installed and the template names it.
            let policy = support::http("GET", &format!("{}/_ilm/policy/ctindex-{prefix}", cluster.url), None).1;
            assert!(
                policy[format!("ctindex-{prefix}")]["policy"]["phases"]["delete"].is_object(),
                "{policy}"
            );
            let template = cluster.get(&format!("/_index_template/ctindex-{prefix}"));
            let settings = &template["index_templates"][0]["index_template"]["template"]["settings"]["index"];
            assert_eq!(
                settings["lifecycle"]["name"],
                json!(format!("ctindex-{prefix}")),
                "{template}"
            );
        } else if ism {
            let policy = support::http(
                "GET",
                &format!("{}/_plugins/_ism/policies/ctindex-{prefix}", cluster.url),
                None,
            )
            .1;
            assert_eq!(
                policy["policy"]["ism_template"][0]["index_patterns"],
                json!([format!("{prefix}-*")])
            );
        } else {
            assert!(
                run.stderr.contains("has no index lifecycle management")
                    || run.stderr.contains("has no index state management"),
                "{}: {}",
                cluster.name,
                run.stderr
            );
            assert!(run.stderr.contains("ctindex prune --index-prefix"), "{}", run.stderr);
        }
        cluster.cleanup(&prefix);
    }
}

#[test]
fn sync_prunes_after_the_run_when_asked() {
    let clusters = support::clusters("sync_prunes_after_the_run_when_asked");
    let Some(cluster) = clusters.first() else { return };
    let prefix = support::prefix("sync-retention");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let trail = support::fixtures().join("trail");
    let sync = |retention: &str| {
        support::ctindex(&[
            "sync",
            trail.to_str().unwrap(),
            "--url",
            &cluster.url,
            "--index-prefix",
            &prefix,
            "--state-file",
            state.to_str().unwrap(),
            "--retention",
            retention,
        ])
    };
    // The fixtures are of July 2023: far older than 13 months, so the run's own indices go.
    let run = sync("13mo");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("deleted {prefix}-2023.07 (")),
        "{}",
        run.stdout
    );
    assert!(!exists(cluster, &format!("{prefix}-2023.07")));
    // With a long retention, they stay.
    std::fs::remove_file(&state).unwrap();
    let run = sync("100y");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("deleted 0 index(es)"), "{}", run.stdout);
    assert!(exists(cluster, &format!("{prefix}-2023.07")));
    cluster.cleanup(&prefix);
}
