//! Stamps the binary with the commit it was built from and the build date,
//! for `ctindex --version`: `CTINDEX_COMMIT` (short hash, or "unknown"
//! without git or a checkout) and `CTINDEX_BUILD_DATE` (YYYY-MM-DD, UTC, or
//! `SOURCE_DATE_EPOCH`'s day for reproducible builds).
//!
//! The script reruns only when the checked-out commit moves (HEAD, the
//! branch it points to, packed refs), so ordinary builds stay incremental;
//! the date is therefore that of the first build at a commit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));

    let commit = match git(&dir, &["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            watch_git(&dir);
            commit
        }
        // A published crate has no .git, but cargo package records the commit.
        None => packaged_commit(&dir).unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=CTINDEX_COMMIT={commit}");
    println!("cargo:rustc-env=CTINDEX_BUILD_DATE={}", build_date());
}

/// Runs git in `dir`; its trimmed output, or None when git is missing, `dir`
/// is no checkout, or the output is empty.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// Reruns the script when the commit changes: on HEAD (a checkout), the ref
/// HEAD points to (a commit on the branch) and packed-refs (after `git gc`).
/// Only files that exist are named: cargo reruns every time for a missing one.
fn watch_git(dir: &Path) {
    let mut files = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
    }
    for file in files {
        // --git-path resolves worktrees and the common dir for refs.
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &file]) {
            let path = dir.join(path);
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// The commit `cargo package` wrote into .cargo_vcs_info.json, shortened.
fn packaged_commit(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = rest.find('"')? + 1;
    let sha: String = rest[start..].chars().take_while(char::is_ascii_hexdigit).collect();
    (sha.len() >= 7).then(|| sha[..9.min(sha.len())].to_string())
}

/// Today (UTC), or the day of SOURCE_DATE_EPOCH when set, as YYYY-MM-DD.
fn build_date() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
