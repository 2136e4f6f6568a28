//! The reference binaries' command lines: `--help` and every usage error,
//! pinned by snapshots so that their wording is reviewed, not accidental.
//! No root needed: nothing here creates a namespace.

use assert_cmd::Command;
use rstest::rstest;

fn binaries() -> impl Iterator<Item = &'static str> {
    harness::milestones::STAGE_BINS
        .into_iter()
        .chain(["myruntime"])
}

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::cargo_bin(bin)
        .unwrap_or_else(|e| panic!("{bin} is not built ({e}): run `make build-debug`"))
        .args(args)
        // Help is wrapped to the terminal's width; pin it.
        .env("COLUMNS", "100")
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap()
}

#[rstest]
fn help_is_reviewed(
    #[values(
        "stage01-uts",
        "stage02-pid",
        "stage03-mount",
        "stage04-user",
        "stage08-lifecycle",
        "myruntime"
    )]
    bin: &str,
    #[values(&["--help"][..], &["run", "--help"][..])] args: &[&str],
) {
    let out = run(bin, args);
    assert!(out.status.success());
    let words: Vec<&str> = args.iter().map(|a| a.trim_start_matches('-')).collect();
    let name = format!("{bin}-{}", words.join("-"));
    insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout));
}

#[rstest]
#[case::no_command("no_command", &["run"][..])]
#[case::bad_hostname("bad_hostname", &["run", "--hostname", "web_1", "true"][..])]
#[case::too_long_hostname("too_long_hostname", &["run", "--hostname", "a-label-that-is-longer-than-sixty-three-characters-which-the-kernel-refuses", "true"][..])]
#[case::unknown_flag("unknown_flag", &["run", "--no-such-flag", "true"][..])]
#[case::unknown_verb("unknown_verb", &["jump"][..])]
#[case::bad_volume("bad_volume", &["run", "--rootfs", "/", "-v", "data:/data", "true"][..])]
#[case::relative_workdir("relative_workdir", &["run", "--rootfs", "/", "-w", "app", "true"][..])]
#[case::bad_env("bad_env", &["run", "--rootfs", "/", "-e", "=x", "true"][..])]
#[case::bad_user("bad_user", &["run", "--rootfs", "/", "--user", "a:b:c", "true"][..])]
#[case::bad_uidmap("bad_uidmap", &["run", "--rootfs", "/", "--uidmap", "0:100000", "true"][..])]
#[case::bad_memory("bad_memory", &["run", "--rootfs", "/", "--memory", "lots", "true"][..])]
#[case::bad_cpus("bad_cpus", &["run", "--rootfs", "/", "--cpus", "0", "true"][..])]
#[case::bad_pids("bad_pids", &["run", "--rootfs", "/", "--pids-limit", "0", "true"][..])]
#[case::swap_without_memory("swap_without_memory", &["run", "--rootfs", "/", "--memory-swap", "1g", "true"][..])]
#[case::bad_device("bad_device", &["run", "--rootfs", "/", "--device-read-bps", "/dev/null:1m", "true"][..])]
#[case::bad_cgroup_parent("bad_cgroup_parent", &["run", "--rootfs", "/", "--cgroup-parent", "../x", "true"][..])]
#[case::bad_platform("bad_platform", &["run", "--rootfs", "/", "--platform", "linux", "true"][..])]
fn usage_errors_are_one_reviewed_line_and_125(#[case] case: &str, #[case] args: &[&str]) {
    let mut lines = Vec::new();
    for bin in binaries() {
        let out = run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{bin} {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{bin} {args:?} printed to stdout");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{bin} {args:?}: one line:\n{stderr}"
        );
        lines.push(stderr.into_owned());
    }
    // One snapshot per case, every binary's line in it: where the stages
    // differ (an option a stage does not know yet), the snapshot shows how.
    insta::assert_snapshot!(format!("usage-{case}"), lines.concat());
}

/// The verbs of a container's life (stage 08 on): usage errors are one
/// line and 125, as docker's; a refused container is 1 (the suite's).
#[rstest]
#[case::stop_nothing("stop_nothing", &["stop"][..])]
#[case::exec_no_command("exec_no_command", &["exec", "web"][..])]
#[case::exec_relative_workdir("exec_relative_workdir", &["exec", "-w", "tmp", "web", "true"][..])]
#[case::bad_tail("bad_tail", &["logs", "--tail", "some", "web"][..])]
#[case::bad_log_opt("bad_log_opt", &["run", "-d", "--log-opt", "max-file=0", "--rootfs", "/", "true"][..])]
#[case::bad_format("bad_format", &["ps", "--format", "yaml"][..])]
fn lifecycle_usage_errors_are_one_reviewed_line_and_125(#[case] case: &str, #[case] args: &[&str]) {
    let mut lines = Vec::new();
    for bin in ["stage08-lifecycle", "myruntime"] {
        let out = run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{bin} {args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{bin} {args:?}: one line:\n{stderr}"
        );
        lines.push(stderr.into_owned());
    }
    insta::assert_snapshot!(format!("lifecycle-{case}"), lines.concat());
}

#[rstest]
fn without_privilege_the_root_only_stages_say_what_is_needed(
    #[values("stage01-uts", "stage02-pid", "stage03-mount")] bin: &str,
) {
    let out = unprivileged(bin, &["run", "--rootfs", "/", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    insta::assert_snapshot!(format!("unprivileged-{bin}"), stderr);
}

/// Run as nobody: as root, drop to it first; as anyone else, run as is.
fn unprivileged(bin: &str, args: &[&str]) -> std::process::Output {
    let path = harness::runnable_by_anyone(&assert_cmd::cargo::cargo_bin(bin));
    // SAFETY: geteuid cannot fail.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&path);
        c
    } else {
        std::process::Command::new(&path)
    };
    // stage01 and stage02 have no --rootfs: drop it for them.
    let args: Vec<&str> = if bin.starts_with("stage01") || bin.starts_with("stage02") {
        args.iter()
            .copied()
            .filter(|a| *a != "--rootfs" && *a != "/")
            .collect()
    } else {
        args.to_vec()
    };
    cmd.args(args).current_dir("/").output().expect("run")
}
