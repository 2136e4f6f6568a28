//! `make progress BIN=/path/to/runtime [STAGES=01-03] [NEEDS_ROOTFS=1]`:
//! run the stages' suites against one binary and print which milestones it
//! passes.
//!
//! It runs `cargo test -p myruntime-suites --test stageNN` with `RUNTIME_BIN`
//! set, reads libtest's `test NAME ... ok|FAILED` lines and the failures'
//! messages, and groups them by milestone (the first part of each test's
//! name). A milestone counts only when every one of its tests passes. The
//! stages run in order and it stops at the first one where no milestone
//! passes: that stage is "not started", and the suites after it would only
//! fail for the same reasons, slowly.
//!
//! `progress --can-fail DIR` is the check that keeps this honest (run by
//! `make test`): every stage's suite against the stage before it (the binaries
//! in DIR; stage 01's against `tests/fixtures/exec-only`, a "runtime" that
//! only executes COMMAND) must fail at least one test of every milestone. A
//! milestone whose tests all pass against a runtime that does not have the
//! stage's feature proves nothing, and would credit a learner for nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use harness::milestones::{MILESTONES, Milestone, STAGE_BINS};

const USAGE: &str = "usage: progress [--stages NN[-MM]] [--needs-rootfs] /path/to/runtime\n       \
     progress --can-fail [--stages NN[-MM]] TARGET_DIR\n\
     (or: make progress BIN=/path/to/runtime [STAGES=01-03] [NEEDS_ROOTFS=1])";

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Mode::Progress {
            bin,
            stages,
            needs_rootfs,
        }) => progress(&bin, &stages, needs_rootfs),
        Ok(Mode::CanFail { dir, stages }) => can_fail(&dir, &stages),
        Err(message) => {
            eprintln!("progress: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

enum Mode {
    Progress {
        bin: PathBuf,
        stages: Vec<u32>,
        needs_rootfs: bool,
    },
    CanFail {
        dir: PathBuf,
        stages: Vec<u32>,
    },
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut stages = None;
    let mut needs_rootfs = false;
    let mut can_fail = false;
    let mut path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stages" => {
                let value = args.next().ok_or("--stages needs a value, e.g. 01-03")?;
                stages = Some(parse_stages(&value)?);
            }
            "--needs-rootfs" => needs_rootfs = true,
            "--can-fail" => can_fail = true,
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag:?}")),
            _ if path.is_some() => return Err(format!("one path only, got {arg:?} too")),
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let stages = match stages {
        Some(s) => s,
        None => parse_stages("01-99")?,
    };
    let path = path.ok_or("say which runtime to check")?;
    let path = std::fs::canonicalize(&path)
        .map_err(|e| format!("{}: {e}: give the path of a built binary", path.display()))?;
    Ok(if can_fail {
        Mode::CanFail { dir: path, stages }
    } else {
        Mode::Progress {
            bin: path,
            stages,
            needs_rootfs,
        }
    })
}

/// `03` or `01-03` → the stages with a suite in that range.
fn parse_stages(text: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("STAGES={text:?}: give a stage (03) or a range (01-03)");
    let (from, to) = text.split_once('-').unwrap_or((text, text));
    let from: u32 = from.trim().parse().map_err(|_| bad())?;
    let to: u32 = to.trim().parse().map_err(|_| bad())?;
    if from == 0 || from > to {
        return Err(bad());
    }
    let known = known_stages();
    let stages: Vec<u32> = known
        .into_iter()
        .filter(|s| (from..=to).contains(s))
        .collect();
    if stages.is_empty() {
        return Err(format!(
            "STAGES={text:?}: no suite in that range (suites: {})",
            known_stages()
                .iter()
                .map(|s| format!("{s:02}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    Ok(stages)
}

fn known_stages() -> Vec<u32> {
    let mut stages: Vec<u32> = MILESTONES.iter().map(stage_of).collect();
    stages.dedup();
    stages
}

fn stage_of(m: &Milestone) -> u32 {
    m.id[..2]
        .parse()
        .expect("milestone ids start with the stage")
}

fn milestones_of(stage: u32) -> impl Iterator<Item = &'static Milestone> {
    MILESTONES.iter().filter(move |m| stage_of(m) == stage)
}

/// One test's verdict, the first line of its failure message, and why this
/// host could not check it, if it said so.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    passed: bool,
    why: Option<String>,
    unchecked: Option<String>,
}

impl Verdict {
    fn checked(&self) -> bool {
        self.unchecked.is_none()
    }
}

/// Run one suite against `bin`; test name → verdict.
fn run_suite(stage: u32, bin: &Path, needs_rootfs: bool) -> BTreeMap<String, Verdict> {
    let output = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "-p", "myruntime-suites", "--test"])
        .arg(format!("stage{stage:02}"))
        .args([
            "--",
            "--format",
            "pretty",
            "--color",
            "never",
            "--show-output",
        ])
        .env(harness::RUNTIME_BIN, bin)
        .env(
            harness::RUNTIME_NEEDS_ROOTFS,
            if needs_rootfs { "1" } else { "0" },
        )
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap_or_else(|e| {
            eprintln!("progress: cannot run cargo: {e}");
            std::process::exit(2)
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = parse(&stdout);
    if results.is_empty() {
        // The suite did not build or did not start: say so, not "0 of N".
        eprintln!(
            "progress: suite {stage:02} did not run:\n{}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
        std::process::exit(2)
    }
    results
}

/// The tests of `milestone` in `results`.
fn tests_of<'a>(
    milestone: &Milestone,
    results: &'a BTreeMap<String, Verdict>,
) -> Vec<(&'a String, &'a Verdict)> {
    let prefix = format!("{}::", milestone.module);
    results
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .collect()
}

fn progress(bin: &Path, stages: &[u32], needs_rootfs: bool) -> ExitCode {
    println!(
        "myruntime workbook: milestones passed by {}\n",
        bin.display()
    );
    let mut passed = 0;
    let mut counted = 0;
    let mut unchecked = 0;
    for &stage in stages {
        let results = run_suite(stage, bin, needs_rootfs);
        let mut stage_passed = 0;
        let mut lines = Vec::new();
        for milestone in milestones_of(stage) {
            let all = tests_of(milestone, &results);
            let tests: Vec<_> = all.iter().filter(|(_, v)| v.checked()).collect();
            if tests.is_empty() && !all.is_empty() {
                let why = all[0].1.unchecked.clone().unwrap_or_default();
                lines.push(format!(
                    "  – {}  {}  (not checkable on this host: {why})",
                    milestone.id, milestone.title
                ));
                unchecked += 1;
                continue;
            }
            let ok = tests.iter().filter(|(_, v)| v.passed).count();
            let done = !tests.is_empty() && ok == tests.len();
            stage_passed += usize::from(done);
            lines.push(format!(
                "  {} {}  {}  ({ok}/{} tests)",
                if done { "✓" } else { "✗" },
                milestone.id,
                milestone.title,
                tests.len()
            ));
            if !done {
                for (name, verdict) in tests.iter().filter(|(_, v)| !v.passed) {
                    match &verdict.why {
                        Some(why) => {
                            lines.push(format!("        failing: {name}\n          {why}"))
                        }
                        None => lines.push(format!("        failing: {name}")),
                    }
                }
                lines.push(format!("        read: {}", milestone.chapter));
            }
        }
        counted += milestones_of(stage).count() - unchecked;
        unchecked = 0;
        passed += stage_passed;
        // The first stage asked for shows its failures even when none of its
        // milestones passes yet: it is the one the learner is working on.
        if stage_passed == 0 && stage != stages[0] {
            println!(
                "  stage {stage:02}: not started (none of its {} milestones passes yet); read: {}",
                milestones_of(stage).count(),
                milestones_of(stage).next().map_or("", |m| m.chapter)
            );
            if let Some(later) = after(stages, stage) {
                println!("  stages {later} not run");
            }
            break;
        }
        for line in lines {
            println!("{line}");
        }
        if stage_passed == 0 {
            if let Some(later) = after(stages, stage) {
                println!("  stage {stage:02} is not started: stages {later} not run");
            }
            break;
        }
    }
    println!("\n{passed} of {counted} milestones passed.");
    if passed < counted {
        println!(
            "one suite with its full messages: sudo make test-stage STAGE=NN BIN={}{}",
            bin.display(),
            if needs_rootfs { " NEEDS_ROOTFS=1" } else { "" }
        );
    }
    // A report, not a test: a learner who is not done yet is not an error.
    ExitCode::SUCCESS
}

/// The stages of `stages` after `stage`, as `04 05 06`, if any.
fn after(stages: &[u32], stage: u32) -> Option<String> {
    let later: Vec<String> = stages
        .iter()
        .filter(|s| **s > stage)
        .map(|s| format!("{s:02}"))
        .collect();
    (!later.is_empty()).then(|| later.join(" "))
}

/// Every milestone of every stage in `stages` must have a test that fails
/// against the stage before it.
fn can_fail(dir: &Path, stages: &[u32]) -> ExitCode {
    let exec_only = harness::workspace_root().join("tests/fixtures/exec-only");
    let mut vacuous = Vec::new();
    for &stage in stages {
        let (bin, needs_rootfs) = match stage {
            1 => (exec_only.clone(), false),
            n => {
                let name = STAGE_BINS[n as usize - 2];
                // From stage 03 on a binary wants --rootfs, as in the Makefile.
                (dir.join(name), n >= 4)
            }
        };
        let results = run_suite(stage, &bin, needs_rootfs);
        println!(
            "suite {stage:02} against {}: {} of {} tests fail",
            bin.file_name().unwrap_or_default().to_string_lossy(),
            results.values().filter(|v| !v.passed).count(),
            results.len()
        );
        for milestone in milestones_of(stage) {
            let all = tests_of(milestone, &results);
            let tests: Vec<_> = all.iter().filter(|(_, v)| v.checked()).collect();
            if tests.is_empty() && !all.is_empty() {
                println!(
                    "  {} is not checkable on this host ({}): its suite runs it where it is",
                    milestone.id,
                    all[0].1.unchecked.as_deref().unwrap_or_default()
                );
                continue;
            }
            if tests.is_empty() || tests.iter().all(|(_, v)| v.passed) {
                vacuous.push(format!(
                    "{} ({}): all {} tests pass against {}",
                    milestone.id,
                    milestone.module,
                    tests.len(),
                    bin.display()
                ));
            }
        }
    }
    if vacuous.is_empty() {
        println!("every milestone has a test that fails without its stage's feature");
        ExitCode::SUCCESS
    } else {
        println!("milestones that cannot fail (give each a real test):");
        for v in vacuous {
            println!("  {v}");
        }
        ExitCode::FAILURE
    }
}

/// libtest's pretty output (with `--show-output`) → test name → verdict,
/// with the first line of each failure's message, and whether a passing
/// test said this host cannot check it.
fn parse(output: &str) -> BTreeMap<String, Verdict> {
    let mut results: BTreeMap<String, Verdict> = output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, verdict) = rest.rsplit_once(" ... ")?;
            let passed = match verdict.trim() {
                "ok" => true,
                "FAILED" => false,
                _ => return None,
            };
            Some((
                name.to_owned(),
                Verdict {
                    passed,
                    why: None,
                    unchecked: None,
                },
            ))
        })
        .collect();
    // ---- m1_x::y stdout ----
    // thread 'm1_x::y' panicked at tests/suites/stage01.rs:12:5:
    // expected exit status 127, got 0: ...
    let mut section: Option<(String, Vec<&str>)> = None;
    let mut sections = Vec::new();
    for line in output.lines() {
        let header = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"));
        if header.is_some() || line == "successes:" || line == "failures:" {
            sections.extend(section.take());
        }
        if let Some(name) = header {
            section = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = section.as_mut() {
            lines.push(line);
        }
    }
    sections.extend(section);
    for (name, lines) in sections {
        let Some(verdict) = results.get_mut(&name) else {
            continue;
        };
        verdict.unchecked = lines
            .iter()
            .find_map(|l| l.strip_prefix(harness::NOT_CHECKABLE_HERE))
            .map(|why| why.trim().to_owned());
        // The message's first line; an account of the run ("ran:", "it
        // exited", "stdout:", "stderr:") is for the full output.
        let account = ["ran:", "it exited", "it was killed", "stdout:", "stderr:"];
        verdict.why = lines
            .iter()
            .skip_while(|l| !l.contains("panicked at"))
            .skip(1)
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !account.iter().any(|a| l.starts_with(a)))
            .map(|l| cut(l, 160));
    }
    results
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_lines_and_the_first_line_of_each_failure() {
        let out = "running 2 tests\ntest m1_a::x ... ok\ntest m1_a::y ... FAILED\n\n\
                   failures:\n\n---- m1_a::y stdout ----\n\nthread 'm1_a::y' panicked at x.rs:1:2:\n\
                   expected exit status 127, got 0: why\n  ran: ...\n\nfailures:\n    m1_a::y\n";
        let parsed = parse(out);
        assert!(parsed["m1_a::x"].passed && parsed["m1_a::x"].why.is_none());
        assert!(!parsed["m1_a::y"].passed);
        assert_eq!(
            parsed["m1_a::y"].why.as_deref(),
            Some("expected exit status 127, got 0: why")
        );
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn a_test_that_this_host_cannot_check_is_seen_as_such() {
        let out = format!(
            "test m6_a::v2 ... ok\ntest m6_a::b ... ok\n\nsuccesses:\n\n---- m6_a::v2 stdout ----\n\
             {} it is not cgroup v2\n\n---- m6_a::b stdout ----\nsome output\n\nsuccesses:\n    m6_a::v2\n",
            harness::NOT_CHECKABLE_HERE
        );
        let parsed = parse(&out);
        assert_eq!(
            parsed["m6_a::v2"].unchecked.as_deref(),
            Some("it is not cgroup v2")
        );
        assert!(parsed["m6_a::b"].checked());
    }

    #[test]
    fn stages_are_a_stage_or_a_range_of_known_ones() {
        assert_eq!(parse_stages("01-03").unwrap(), [1, 2, 3]);
        assert_eq!(parse_stages("2").unwrap(), [2]);
        assert!(parse_stages("03-01").is_err());
        assert!(parse_stages("x").is_err());
        assert!(parse_stages("90-99").unwrap_err().contains("no suite"));
    }

    #[test]
    fn every_stage_before_the_last_has_a_binary() {
        assert!(
            known_stages()
                .iter()
                .all(|s| *s as usize <= STAGE_BINS.len())
        );
    }
}
