//! The reference binaries' command lines: `--help` and every usage error,
//! pinned by snapshots so that their wording is reviewed, not accidental.
//! No root needed: nothing here creates a namespace.

use assert_cmd::Command;
use rstest::rstest;

const BINARIES: [&str; 3] = ["stage01-uts", "stage02-pid", "myruntime"];

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
    #[values("stage01-uts", "stage02-pid", "myruntime")] bin: &str,
    #[values(&["--help"][..], &["run", "--help"][..])] args: &[&str],
) {
    let out = run(bin, args);
    assert!(out.status.success());
    let words: Vec<&str> = args.iter().map(|a| a.trim_start_matches('-')).collect();
    let name = format!("{bin}-{}", words.join("-"));
    insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout));
}

#[rstest]
#[case::no_command(&["run"][..])]
#[case::bad_hostname(&["run", "--hostname", "web_1", "true"][..])]
#[case::too_long_hostname(&["run", "--hostname", "a-label-that-is-longer-than-sixty-three-characters-which-the-kernel-refuses", "true"][..])]
#[case::unknown_flag(&["run", "--no-such-flag", "true"][..])]
#[case::unknown_verb(&["jump"][..])]
fn usage_errors_are_one_reviewed_line_and_125(#[case] args: &[&str]) {
    for bin in BINARIES {
        let out = run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{bin} {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{bin} {args:?} printed to stdout");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{bin} {args:?}: one line:\n{stderr}"
        );
        // The same words from every binary, but for its name.
        let line = stderr.replacen(bin, "BIN", 2);
        let case: String = args.join("_").chars().take(40).collect();
        insta::assert_snapshot!(format!("usage-{case}"), line);
    }
}

#[rstest]
fn without_privilege_the_stages_say_what_is_needed(
    #[values("stage01-uts", "stage02-pid")] bin: &str,
) {
    // As root, drop to nobody first; as anyone else, run as is.
    let path = assert_cmd::cargo::cargo_bin(bin);
    // SAFETY: geteuid cannot fail.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&path);
        c
    } else {
        std::process::Command::new(&path)
    };
    let out = cmd.args(["run", "--", "true"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    insta::assert_snapshot!(format!("unprivileged-{bin}"), stderr);
}
