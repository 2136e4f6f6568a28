//! Stage 01 suite: a container is a process, with a hostname of its own.
//!
//! Runs `$RUNTIME_BIN` (default: stage01-uts) as
//! `BIN run [--hostname NAME] -- COMMAND [ARG...]`. As root:
//!
//! ```sh
//! make test-stage STAGE=01                       # the reference stage
//! make test-stage STAGE=01 BIN=/path/to/yours    # your own runtime
//! ```

use harness::{Runtime, host};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage01-uts")
}

/// Milestone 01.1: a container is a process.
mod m1_process {
    use super::*;

    #[rstest]
    fn runs_the_command_and_passes_its_output_through(rt: Runtime) {
        let out = rt.run().probe(&["report"]).output();
        out.expect_code(0, "the probe exits 0 after printing its report");
        let report = out.report();
        assert!(
            report.argv.last().is_some_and(|a| a == "report"),
            "the probe should get its arguments unchanged; it got {:?}",
            report.argv
        );
    }

    #[rstest]
    fn stdin_stdout_and_stderr_pass_straight_through(rt: Runtime) {
        let out = rt
            .run()
            .command([
                "sh",
                "-c",
                "read line; echo \"out:$line\"; echo \"err:$line\" >&2",
            ])
            .stdin("hello\n")
            .output();
        out.expect_code(0, "the shell script succeeds");
        harness::expect_eq!(out.stdout(), "out:hello\n", "stdout\n{}", out.describe());
        assert!(
            out.stderr().contains("err:hello\n"),
            "COMMAND's stderr must reach the runtime's stderr\n{}",
            out.describe()
        );
    }

    #[rstest]
    fn a_terminal_stays_a_terminal(rt: Runtime) {
        let out = rt.run().probe(&["report"]).on_terminal();
        out.expect_code(0, "the probe runs on a terminal as well as on pipes");
        let report: probe::Report = out.json();
        harness::expect_eq!(
            report.isatty,
            [true, true, true],
            "stdin, stdout and stderr should be the terminal the runtime was given"
        );
    }

    #[rstest]
    #[case::success(0)]
    #[case::failure(1)]
    #[case::three(3)]
    #[case::high(200)]
    #[case::max(255)]
    fn exits_with_the_commands_status(rt: Runtime, #[case] code: i32) {
        rt.run()
            .probe(&["exit", &code.to_string()])
            .output()
            .expect_code(code, "the runtime exits with COMMAND's exit status");
    }

    /// Whatever the runtime holds open, or was started with, stays out:
    /// a directory left open on fd 7 would reach any host file through
    /// /proc/self/fd/7/...
    #[rstest]
    fn only_stdin_stdout_and_stderr_cross_into_the_container(rt: Runtime) {
        let out = rt
            .run()
            .with_open_fd(7, std::path::Path::new("/"))
            .with_open_fd(12, std::path::Path::new("/etc"))
            .probe(&["fds"])
            .output();
        out.expect_code(0, "the probe lists its descriptors");
        let fds: serde_json::Value = out.json();
        let numbers: Vec<&String> = fds["fds"].as_object().expect("a map").keys().collect();
        harness::expect_eq!(
            numbers,
            ["0", "1", "2"],
            "COMMAND holds more than stdin, stdout and stderr: {}\n{}",
            fds["fds"],
            out.describe()
        );
    }

    #[rstest]
    fn a_command_killed_by_a_fault_gives_128_plus_the_signal(rt: Runtime) {
        rt.run()
            .probe(&["segfault"])
            .output()
            .expect_code(128 + 11, "SIGSEGV (11) killed COMMAND: a shell reports 139");
    }

    #[rstest]
    fn a_command_killed_from_the_host_gives_128_plus_the_signal(rt: Runtime) {
        let mut running = rt.run().probe(&["sleep", "30"]).spawn();
        let pid = running.command_pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the container's process");
        running
            .finish()
            .expect_code(128 + 9, "SIGKILL (9) killed COMMAND: a shell reports 137");
    }
}

/// Milestone 01.2: its own hostname, in its own UTS namespace.
mod m2_hostname {
    use super::*;

    #[rstest]
    fn the_hostname_is_set_inside(rt: Runtime) {
        let out = rt
            .run()
            .args(["--hostname", "web-1"])
            .probe(&["report"])
            .output();
        out.expect_code(0, "the container runs");
        harness::expect_eq!(out.report().hostname, "web-1");
    }

    #[rstest]
    fn without_hostname_a_name_is_generated(rt: Runtime) {
        let first = rt.run().probe(&["report"]).output().report().hostname;
        let second = rt.run().probe(&["report"]).output().report().hostname;
        assert!(!first.is_empty(), "a container gets a generated hostname");
        harness::expect_ne!(
            first,
            host::hostname(),
            "the generated name is not the host's"
        );
        harness::expect_ne!(first, second, "each container gets its own generated name");
    }

    #[rstest]
    fn the_uts_namespace_is_new(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_ne!(
            report.namespaces.get("uts"),
            host::namespaces().get("uts"),
            "the container must be in a new UTS namespace (clone with CLONE_NEWUTS)"
        );
    }

    #[rstest]
    fn the_hosts_hostname_never_changes(rt: Runtime) {
        let before = host::hostname();
        let out = rt
            .run()
            .args(["--hostname", "inside"])
            .probe(&["sethostname", "changed-inside"])
            .output();
        let after = host::hostname();
        if after != before {
            // Put it back before failing: the suite leaves the host as it was.
            let _ = nix::unistd::sethostname(&before);
        }
        out.expect_code(0, "root in the container may rename its own UTS namespace");
        harness::expect_eq!(out.report().hostname, "changed-inside");
        harness::expect_eq!(
            after,
            before,
            "the host's hostname changed (put back): COMMAND must run in a UTS namespace of its own"
        );
    }
}

/// Milestone 01.3: bad input gets one clear line and a non-zero status.
mod m3_errors {
    use super::*;

    #[rstest]
    fn a_missing_command_gives_127_and_names_it(rt: Runtime) {
        let out = rt.run().command(["no-such-command-x7"]).output();
        out.expect_code(
            127,
            "as in a shell, a command that does not exist gives 127",
        );
        assert!(
            out.stderr().contains("no-such-command-x7"),
            "the message must name the command\n{}",
            out.describe()
        );
    }

    #[rstest]
    fn a_missing_path_gives_127(rt: Runtime) {
        rt.run()
            .command(["/no/such/path"])
            .output()
            .expect_code(127, "a path that does not exist gives 127");
    }

    #[rstest]
    fn an_empty_command_gives_127_and_says_so(rt: Runtime) {
        let out = rt.run().command([""]).output();
        out.expect_code(127, "an empty command is not found, as in a shell")
            .expect_refused(&["empty"]);
    }

    #[rstest]
    fn a_command_that_cannot_be_executed_gives_126(rt: Runtime) {
        let out = rt.run().command(["/"]).output();
        out.expect_code(
            126,
            "as in a shell, a file that cannot be executed gives 126",
        );
        assert!(out.stderr().contains('/'), "{}", out.describe());
    }

    #[rstest]
    #[case::underscore("bad_name")]
    #[case::space("bad name")]
    #[case::leading_dash("-web")]
    #[case::too_long(&"a".repeat(65))]
    fn an_invalid_hostname_is_refused_before_anything_starts(rt: Runtime, #[case] name: &str) {
        let out = rt
            .run()
            .args(["--hostname", name])
            .probe(&["report"])
            .output();
        harness::expect_ne!(
            out.code(),
            0,
            "an invalid hostname must be refused\n{}",
            out.describe()
        );
        assert!(
            out.stdout().is_empty(),
            "nothing may start: COMMAND printed something\n{}",
            out.describe()
        );
        assert!(
            out.stderr().contains("hostname"),
            "the message must say what was wrong (the hostname)\n{}",
            out.describe()
        );
    }

    #[rstest]
    #[case::missing_command(&[][..])]
    #[case::bad_hostname(&["--hostname", "a_b", "true"][..])]
    #[case::unknown_flag(&["--no-such-flag", "true"][..])]
    fn errors_are_one_line_on_stderr(rt: Runtime, #[case] args: &[&str]) {
        rt.run().args(args).output().expect_refused(&[]);
    }
}
