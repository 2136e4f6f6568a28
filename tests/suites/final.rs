//! The final suite: what makes a container contained, against myruntime.
//!
//! Runs `$RUNTIME_BIN` (default: myruntime) as `BIN run --rootfs DIR
//! [--cap-add C] [--cap-drop C] [--privileged] [--security-opt
//! no-new-privileges] [--ulimit L] [--oom-score-adj N] [--read-only]
//! [--tmpfs P] -- COMMAND`, with the runtime's own defaults (every
//! other suite asks for every capability, as the stages before this one
//! gave).
//!
//! The escapes are tried by the probe's `privileged` mode, each in a way
//! that changes nothing even where it works; each is shown blocked by
//! default and working under `--privileged`, so that the test can fail. As
//! root:
//!
//! ```sh
//! make test-final [BIN=/path/to/yours]
//! ```

use harness::{Run, Runtime};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("myruntime").with_rootfs()
}

/// `run` with the runtime's own default capabilities, on the host's
/// network (no bridge on the host for these).
fn run(rt: &Runtime) -> Run {
    rt.run()
        .env("MYRUNTIME_DEFAULT_CAPABILITIES", "")
        .args(["--network", "none"])
}

/// `run FLAGS -- true` is refused in one line naming `named`, and leaves
/// no container (in a data directory of its own: the other tests run
/// beside it).
fn refused_leaving_nothing(rt: &Runtime, flags: &[&str], named: &[&str]) {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().to_str().unwrap();
    run(rt)
        .env("MYRUNTIME_ROOT", root)
        .args(flags)
        .command(["true"])
        .output()
        .expect_refused(named);
    let ps = rt
        .verb("ps")
        .env("MYRUNTIME_ROOT", root)
        .args(["-a", "-q"])
        .output();
    harness::expect_eq!(ps.stdout(), "", "no container is left");
}

/// A line of `/proc/self/status` inside, such as `CapEff`.
fn status(rt: &Runtime, flags: &[&str], field: &str) -> String {
    let out = run(rt)
        .args(flags)
        .command(["sh", "-c", &format!("grep '^{field}:' /proc/self/status")])
        .output();
    out.expect_code(0, "the container reads its status");
    out.stdout()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Milestone F.1: capabilities, docker's default set; `--cap-add`,
/// `--cap-drop`, `--privileged`; `no_new_privs`; the escapes capabilities
/// stop.
mod m1_capabilities {
    use super::*;

    fn attempts(rt: &Runtime, flags: &[&str]) -> serde_json::Value {
        let out = run(rt).args(flags).probe(&["privileged"]).output();
        out.expect_code(0, "the probe tries what only root may");
        out.json()
    }

    #[rstest]
    fn root_inside_keeps_dockers_default_set_only(rt: Runtime) {
        harness::expect_eq!(
            status(&rt, &[], "CapEff"),
            "00000000a80425fb",
            "docker's default set: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE"
        );
        harness::expect_eq!(
            status(&rt, &[], "CapBnd"),
            "00000000a80425fb",
            "and no more to gain"
        );
        harness::expect_eq!(status(&rt, &[], "CapInh"), "0000000000000000");
        harness::expect_eq!(status(&rt, &[], "CapAmb"), "0000000000000000");
        harness::expect_eq!(
            status(&rt, &["-u", "1000"], "CapEff"),
            "0000000000000000",
            "a user other than root holds none"
        );
        harness::expect_eq!(
            status(&rt, &["--cap-drop", "ALL", "--cap-add", "CHOWN"], "CapEff"),
            "0000000000000001",
            "--cap-drop ALL --cap-add CHOWN: CHOWN alone"
        );
    }

    #[rstest]
    fn escapes_are_blocked_by_default_and_open_under_privileged(rt: Runtime) {
        let contained = attempts(&rt, &[]);
        let privileged = attempts(&rt, &["--privileged"]);
        let with_admin = attempts(&rt, &["--cap-add", "SYS_ADMIN"]);
        harness::expect_eq!(
            contained["mount"],
            "EPERM",
            "no mount without CAP_SYS_ADMIN"
        );
        harness::expect_eq!(privileged["mount"], "ok", "--privileged mounts");
        harness::expect_eq!(with_admin["mount"], "ok", "--cap-add SYS_ADMIN mounts");
        harness::expect_eq!(
            contained["clock"],
            "EPERM",
            "no clock change without CAP_SYS_TIME"
        );
        harness::expect_eq!(
            privileged["clock"],
            "EINVAL",
            "--privileged passes the check"
        );
        harness::expect_eq!(with_admin["clock"], "EPERM", "SYS_ADMIN is not SYS_TIME");
        harness::expect_eq!(
            contained["handle"],
            "EPERM",
            "no open_by_handle_at (shocker) without CAP_DAC_READ_SEARCH"
        );
        harness::expect_ne!(
            privileged["handle"],
            "EPERM",
            "--privileged passes the check"
        );
        harness::expect_eq!(contained["proc_sys"], "EROFS", "/proc/sys is read-only");
        harness::expect_eq!(
            privileged["proc_sys"],
            "ok",
            "--privileged: nothing read-only"
        );
        // Kernels built without modules or magic SysRq answer the same
        // either way: nothing to tell apart there.
        if contained["module"] == "ENOSYS" || contained["module"] == "errno 38" {
            harness::not_checkable_here(
                "this kernel has no loadable modules (finit_module: ENOSYS)",
            );
        } else {
            harness::expect_eq!(
                contained["module"],
                "EPERM",
                "no module without CAP_SYS_MODULE"
            );
            harness::expect_eq!(
                privileged["module"],
                "EBADF",
                "--privileged passes the check"
            );
        }
        if contained["sysrq"] == "ENOENT" {
            harness::not_checkable_here("this kernel has no /proc/sysrq-trigger");
        } else {
            harness::expect_ne!(
                contained["sysrq"],
                "ok",
                "/proc/sysrq-trigger is not writable"
            );
            harness::expect_eq!(
                privileged["sysrq"],
                "ok",
                "--privileged opens it for writing"
            );
        }
    }

    /// A process `exec` starts is no less contained than the first.
    #[rstest]
    fn exec_gets_the_same_capabilities(rt: Runtime) {
        let name = format!("caps-{}", std::process::id());
        run(&rt)
            .args(["-d", "--name", &name, "--security-opt", "no-new-privileges"])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d");
        let exec = |what: &[&str]| rt.verb("exec").arg(&name).args(what).output();
        let status = exec(&[
            "grep",
            "-E",
            "^(CapEff|CapBnd|NoNewPrivs):",
            "/proc/self/status",
        ]);
        let mount = exec(&["sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m"]);
        rt.verb("rm").args(["-f", &name]).output();
        let text = status.stdout();
        let fields: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        harness::expect_eq!(
            fields,
            [
                vec!["CapEff:", "00000000a80425fb"],
                vec!["CapBnd:", "00000000a80425fb"],
                vec!["NoNewPrivs:", "1"]
            ],
            "exec: docker's default set, and no_new_privs"
        );
        harness::expect_ne!(mount.code(), 0, "exec cannot mount either");
    }

    #[rstest]
    fn no_new_privileges_is_set_when_asked(rt: Runtime) {
        harness::expect_eq!(status(&rt, &[], "NoNewPrivs"), "0");
        harness::expect_eq!(
            status(&rt, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
            "1",
            "--security-opt no-new-privileges"
        );
    }

    #[rstest]
    #[case::unknown_capability(&["--cap-add", "BOGUS"], &["BOGUS", "capability"])]
    #[case::unknown_drop(&["--cap-drop", "NOPE"], &["NOPE"])]
    #[case::unknown_option(&["--security-opt", "label=x"], &["security-opt", "label=x"])]
    fn bad_flags_are_refused_in_one_line_leaving_nothing(
        rt: Runtime,
        #[case] flags: &[&str],
        #[case] named: &[&str],
    ) {
        refused_leaving_nothing(&rt, flags, named);
    }
}

/// Milestone F.2: `--ulimit`, `--oom-score-adj`, `--read-only`, `--tmpfs`,
/// `--sysctl`.
mod m2_limits {
    use super::*;

    fn inside(rt: &Runtime, flags: &[&str], script: &str) -> harness::Outcome {
        let out = run(rt).args(flags).command(["sh", "-c", script]).output();
        out.expect_code(0, "the container runs its script");
        out
    }

    #[rstest]
    fn ulimit_and_oom_score_adj_reach_the_process(rt: Runtime) {
        let out = inside(
            &rt,
            &[
                "--ulimit",
                "nofile=100:200",
                "--ulimit",
                "core=0",
                "--oom-score-adj",
                "500",
            ],
            "grep -E 'open files|core file' /proc/self/limits; cat /proc/self/oom_score_adj",
        );
        let text = out.stdout();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        harness::expect_eq!(
            lines,
            [
                vec!["Max", "core", "file", "size", "0", "0", "bytes"],
                vec!["Max", "open", "files", "100", "200", "files"],
                vec!["500"]
            ],
            "the limits and the OOM score the flags ask for"
        );
    }

    #[rstest]
    fn read_only_root_with_a_writable_tmpfs(rt: Runtime) {
        let out = inside(
            &rt,
            &["--read-only", "--tmpfs", "/run:size=1m,mode=755"],
            "touch /x 2>/dev/null && echo root-writable; touch /run/y && echo run-writable; \
             grep ' /run ' /proc/mounts",
        );
        let text = out.stdout();
        assert!(
            !text.contains("root-writable"),
            "--read-only: the root is read-only\n{}",
            out.describe()
        );
        assert!(
            text.contains("run-writable"),
            "the tmpfs is writable\n{}",
            out.describe()
        );
        let options = text
            .lines()
            .find(|l| l.starts_with("tmpfs /run tmpfs"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or_default()
            .to_owned();
        for wanted in ["nosuid", "nodev", "noexec", "size=1024k", "mode=755"] {
            assert!(
                options.split(',').any(|o| o == wanted),
                "the tmpfs at /run has {wanted} (docker's defaults and the options given): {options}"
            );
        }
        let writable = inside(&rt, &[], "touch /x && echo root-writable");
        assert!(
            writable.stdout().contains("root-writable"),
            "without --read-only it is writable"
        );
    }

    /// `--sysctl`: the container's own settings; the host's stay.
    #[rstest]
    fn sysctl_sets_the_containers_own_namespaces_only(rt: Runtime) {
        let host = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let before = (
            host("/proc/sys/net/core/somaxconn"),
            host("/proc/sys/kernel/shmmni"),
        );
        let out = inside(
            &rt,
            &[
                "--sysctl",
                "net.core.somaxconn=1234",
                "--sysctl",
                "kernel.shmmni=1000",
            ],
            "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmni",
        );
        let after = (
            host("/proc/sys/net/core/somaxconn"),
            host("/proc/sys/kernel/shmmni"),
        );
        harness::expect_eq!(out.stdout(), "1234\n1000\n", "the container's own settings");
        harness::expect_eq!(after, before, "the host's are left as they were");
        rt.run()
            .args(["--network", "host", "--sysctl", "net.core.somaxconn=1"])
            .command(["true"])
            .output()
            .expect_refused(&["sysctl", "host"]);
    }

    #[rstest]
    #[case::soft_above_hard(&["--ulimit", "nofile=200:100"], &["ulimit", "soft"])]
    #[case::unknown_ulimit(&["--ulimit", "bogus=1"], &["ulimit", "bogus"])]
    #[case::oom_out_of_range(&["--oom-score-adj", "2000"], &["oom-score-adj", "2000"])]
    #[case::tmpfs_relative(&["--tmpfs", "run"], &["tmpfs", "run"])]
    #[case::tmpfs_on_proc(&["--tmpfs", "/proc/x"], &["tmpfs", "/proc/x"])]
    #[case::tmpfs_bad_option(&["--tmpfs", "/run:bogus"], &["tmpfs", "/run:bogus"])]
    #[case::sysctl_of_the_machine(&["--sysctl", "kernel.panic=1"], &["sysctl", "kernel.panic"])]
    #[case::sysctl_path(&["--sysctl", "net/../../x=1"], &["sysctl"])]
    fn bad_limits_are_refused_in_one_line_leaving_nothing(
        rt: Runtime,
        #[case] flags: &[&str],
        #[case] named: &[&str],
    ) {
        refused_leaving_nothing(&rt, flags, named);
    }
}
