//! `make progress BIN=/path/to/runtime`: run every stage's suite against one
//! binary and print which milestones it passes.
//!
//! It runs `cargo test -p myruntime-suites --test SUITE` with `RUNTIME_BIN`
//! set, reads libtest's `test NAME ... ok|FAILED` lines, and groups them by
//! milestone (the first part of each test's name).

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};

use harness::milestones::{MILESTONES, suites};

fn main() -> ExitCode {
    let Some(bin) = std::env::args().nth(1) else {
        eprintln!("usage: progress /path/to/runtime   (or: make progress BIN=/path/to/runtime)");
        return ExitCode::from(2);
    };
    let bin = std::fs::canonicalize(&bin).unwrap_or_else(|e| {
        eprintln!("progress: {bin}: {e}");
        std::process::exit(2)
    });
    println!(
        "myruntime workbook: milestones passed by {}\n",
        bin.display()
    );

    // suite → test name → passed
    let mut results: BTreeMap<&str, BTreeMap<String, bool>> = BTreeMap::new();
    for suite in suites() {
        let output = Command::new(env!("CARGO"))
            .args([
                "test",
                "--quiet",
                "-p",
                "myruntime-suites",
                "--test",
                suite,
                "--",
            ])
            .args(["--format", "pretty", "--color", "never"])
            .env(harness::RUNTIME_BIN, &bin)
            .output()
            .expect("run cargo test");
        let stdout = String::from_utf8_lossy(&output.stdout);
        results.insert(suite, parse(&stdout));
    }

    let mut passed = 0;
    for milestone in MILESTONES {
        let tests: Vec<(&String, &bool)> = results
            .get(milestone.suite)
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.starts_with(&format!("{}::", milestone.module)))
            .collect();
        let ok = tests.iter().filter(|(_, ok)| **ok).count();
        let done = !tests.is_empty() && ok == tests.len();
        passed += usize::from(done);
        let mark = if done { "✓" } else { "✗" };
        println!(
            "  {mark} {}  {}  ({ok}/{} tests)",
            milestone.id,
            milestone.title,
            tests.len()
        );
        if !done {
            for (name, _) in tests.iter().filter(|(_, ok)| !**ok).take(3) {
                println!("        failing: {name}");
            }
            println!("        read: {}", milestone.chapter);
        }
    }
    println!("\n{passed} of {} milestones passed.", MILESTONES.len());
    if passed == MILESTONES.len() {
        ExitCode::SUCCESS
    } else {
        println!(
            "run one suite with its full messages: make test-stage STAGE=NN BIN={}",
            bin.display()
        );
        ExitCode::FAILURE
    }
}

/// `test m1_process::exits_with_status::case_1 ... ok` → (name, passed).
fn parse(output: &str) -> BTreeMap<String, bool> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, verdict) = rest.rsplit_once(" ... ")?;
            Some((name.to_owned(), verdict.trim() == "ok"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_lines() {
        let out = "running 2 tests\ntest m1_a::x ... ok\ntest m1_a::y ... FAILED\n\nfailures:\n";
        let parsed = parse(out);
        assert_eq!(parsed.get("m1_a::x"), Some(&true));
        assert_eq!(parsed.get("m1_a::y"), Some(&false));
        assert_eq!(parsed.len(), 2);
    }
}
