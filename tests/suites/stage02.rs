//! Stage 02 suite: COMMAND is PID 1, and PID 1's duties are done.
//!
//! Runs `$RUNTIME_BIN` (default: stage02-pid) as
//! `BIN run [--hostname NAME] [--init] -- COMMAND [ARG...]`. As root:
//!
//! ```sh
//! make test-stage STAGE=02                       # the reference stage
//! make test-stage STAGE=02 BIN=/path/to/yours    # your own runtime
//! ```

use harness::{Runtime, host};
use nix::sys::signal::Signal;
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage02-pid")
}

/// Milestone 02.1: COMMAND is PID 1 of its own PID namespace.
mod m1_pid_one {
    use super::*;

    #[rstest]
    fn command_is_pid_1(rt: Runtime) {
        let out = rt.run().probe(&["report"]).output();
        out.expect_code(0, "the container runs");
        let report = out.report();
        harness::expect_eq!(
            report.pid,
            1,
            "COMMAND must be PID 1 of a new PID namespace (clone with CLONE_NEWPID)"
        );
        harness::expect_eq!(
            report.ppid,
            0,
            "PID 1's parent is outside its namespace, so getppid() is 0"
        );
    }

    #[rstest]
    fn the_pid_namespace_is_new_and_uts_still_is(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        let hosts = host::namespaces();
        harness::expect_ne!(
            report.namespaces.get("pid"),
            hosts.get("pid"),
            "a new PID namespace"
        );
        harness::expect_ne!(
            report.namespaces.get("uts"),
            hosts.get("uts"),
            "stage 01's UTS namespace stays"
        );
    }

    #[rstest]
    fn stage_01_still_holds(rt: Runtime) {
        let out = rt
            .run()
            .args(["--hostname", "pid-one"])
            .probe(&["report"])
            .output();
        harness::expect_eq!(out.report().hostname, "pid-one");
        rt.run()
            .probe(&["exit", "42"])
            .output()
            .expect_code(42, "COMMAND's status comes back");
    }
}

/// Milestone 02.2: signals sent to the runtime reach the container.
mod m2_signals {
    use super::*;

    #[rstest]
    #[case::term(Signal::SIGTERM)]
    #[case::int(Signal::SIGINT)]
    #[case::hup(Signal::SIGHUP)]
    #[case::quit(Signal::SIGQUIT)]
    #[case::usr1(Signal::SIGUSR1)]
    #[case::usr2(Signal::SIGUSR2)]
    fn a_signal_sent_to_the_runtime_reaches_pid_1(rt: Runtime, #[case] signal: Signal) {
        let mut running = rt.run().probe(&["signals"]).spawn();
        harness::expect_eq!(
            running.read_line(),
            "ready",
            "the probe prints `ready` once its handlers are installed"
        );
        running.signal(signal);
        let out = running.finish();
        out.expect_code(
            0,
            "the probe (with a handler) exits 0 after reporting the signal; \
             the runtime must forward the signal and not die of it",
        );
        let got: serde_json::Value = out.json();
        harness::expect_eq!(
            got["received"],
            signal.as_str(),
            "PID 1 should have received {signal}\n{}",
            out.describe()
        );
    }

    #[rstest]
    fn pid_1_without_a_handler_is_not_killed_by_sigterm(rt: Runtime) {
        // The kernel drops signals to a namespace's PID 1 that it has no
        // handler for. The runtime forwards SIGTERM; `sleep` ignores it.
        let mut running = rt.run().probe(&["sleep", "30"]).spawn();
        let pid = running.command_pid();
        running.signal(Signal::SIGTERM);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "PID 1 without a SIGTERM handler should still run (see the chapter: why PID 1 ignores signals)"
        );
        // The runtime kept running too: it forwards, it does not die.
        assert!(std::path::Path::new(&format!("/proc/{}", running.pid())).exists());
    }
}

/// Milestone 02.3: `--init` reaps orphans and makes SIGTERM work.
mod m3_init {
    use super::*;

    #[rstest]
    fn with_init_command_is_pid_2_under_an_init(rt: Runtime) {
        let report = rt.run().arg("--init").probe(&["report"]).output().report();
        harness::expect_eq!(
            report.pid,
            2,
            "with --init, init is PID 1 and COMMAND its first child"
        );
        harness::expect_eq!(report.ppid, 1, "COMMAND's parent is the init");
    }

    #[rstest]
    fn with_init_orphans_are_reaped(rt: Runtime) {
        let out = rt.run().arg("--init").probe(&["orphan"]).output();
        out.expect_code(0, "the probe leaves an orphan and reports the zombies");
        let got: serde_json::Value = out.json();
        harness::expect_eq!(
            got["zombies"],
            serde_json::json!([]),
            "the orphan was re-parented to PID 1, which must reap it\n{}",
            out.describe()
        );
    }

    #[rstest]
    fn with_init_sigterm_stops_a_command_without_a_handler(rt: Runtime) {
        let mut running = rt.run().arg("--init").probe(&["sleep", "30"]).spawn();
        let init = running.container_pid();
        running.wait_for("to start COMMAND as init's child", || {
            !host::children(init).is_empty()
        });
        running.signal(Signal::SIGTERM);
        running
            .finish()
            .expect_code(128 + 15, "init forwards SIGTERM to COMMAND (not PID 1: default action), and exits with its status");
    }

    #[rstest]
    #[case::exit(&["exit", "7"][..], 7)]
    #[case::fault(&["segfault"][..], 139)]
    fn with_init_the_runtime_exits_with_commands_status(
        rt: Runtime,
        #[case] mode: &[&str],
        #[case] code: i32,
    ) {
        rt.run().arg("--init").probe(mode).output().expect_code(
            code,
            "init exits with COMMAND's status, and the runtime with init's",
        );
    }

    #[rstest]
    fn with_init_signals_still_reach_command(rt: Runtime) {
        let mut running = rt.run().arg("--init").probe(&["signals"]).spawn();
        harness::expect_eq!(running.read_line(), "ready");
        running.signal(Signal::SIGUSR1);
        let out = running.finish();
        out.expect_code(0, "COMMAND reports the signal and exits 0");
        let got: serde_json::Value = out.json();
        harness::expect_eq!(got["received"], "SIGUSR1");
    }
}

/// Milestone 02.4: when PID 1 exits, the container is gone.
mod m4_pid_one_exits {
    use super::*;

    #[rstest]
    #[case::plain(false)]
    #[case::with_init(true)]
    fn everything_else_dies_with_pid_1(rt: Runtime, #[case] init: bool) {
        let tag = host::unique_tag("bg");
        let mut run = rt.run();
        if init {
            run = run.arg("--init");
        }
        // COMMAND starts `probe sleep 3600 TAG` in the background and exits 3.
        let out = run.probe(&["background", &tag, "3"]).output();
        out.expect_code(
            3,
            "the runtime returns at once with PID 1's status, not waiting for the rest",
        );
        harness::expect_eq!(
            host::processes_with(&tag),
            Vec::<i32>::new(),
            "the background process must be gone with PID 1 (the kernel kills a PID namespace with its init)"
        );
    }

    #[rstest]
    fn killing_the_runtime_kills_the_container(rt: Runtime) {
        let tag = host::unique_tag("orphaned");
        let mut running = rt.run().probe(&["sleep", "30", &tag]).spawn();
        running.wait_for("to start COMMAND", || {
            !host::processes_with(&tag).is_empty()
        });
        running.signal(Signal::SIGKILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !host::processes_with(&tag).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the container outlived its runtime: nothing would ever reap or stop it \
                 (hint: PR_SET_PDEATHSIG in the container's first process)"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(running);
    }
}
