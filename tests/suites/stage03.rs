//! Stage 03 suite: a root filesystem of its own.
//!
//! Runs `$RUNTIME_BIN` (default: stage03-mount) as
//! `BIN run --rootfs DIR [-v HOST:CTR[:ro]] [-w DIR] [-e K=V] [--hostname NAME] [--init] -- COMMAND`,
//! in copies of the test rootfs (`scripts/setup-test-env.sh`) holding the
//! probe at /probe. As root:
//!
//! ```sh
//! make test-stage STAGE=03 [BIN=/path/to/yours]
//! ```

use std::path::Path;

use harness::host::{self, HostTmpfs};
use harness::{Rootfs, Runtime};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage03-mount").with_rootfs()
}

fn json(out: &harness::Outcome) -> serde_json::Value {
    out.json()
}

/// Milestone 03.1: its own root filesystem, entered with pivot_root.
mod m1_rootfs {
    use super::*;

    #[rstest]
    fn the_container_sees_the_rootfs_and_not_the_host(rt: Runtime) {
        let rootfs = Rootfs::private();
        std::fs::write(rootfs.join("/etc/only-in-rootfs"), "x").unwrap();
        let host_marker = tempfile::NamedTempFile::new().unwrap();
        let out = rt.run_in(&rootfs).probe(&["ls", "/etc"]).output();
        out.expect_code(0, "the probe lists /etc");
        let entries = json(&out)["entries"].clone();
        assert!(
            entries
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "only-in-rootfs"),
            "/etc must be the rootfs's /etc: {entries}"
        );
        let seen = rt
            .run_in(&rootfs)
            .probe(&["read", &host_marker.path().to_string_lossy()])
            .output();
        harness::expect_eq!(
            json(&seen)["errno"],
            "ENOENT",
            "a host file must not be visible in the container\n{}",
            seen.describe()
        );
    }

    /// `--init` stays PID 1 without ever executing a program, so
    /// close-on-exec cannot help it: it closes what it inherited. Seen from
    /// inside (its own /proc), neither it nor COMMAND holds anything else.
    #[rstest]
    fn with_init_neither_pid_1_nor_command_holds_the_runtimes_descriptors(rt: Runtime) {
        for pid in ["1", "self"] {
            let out = rt
                .run()
                .with_open_fd(7, Path::new("/"))
                .arg("--init")
                .probe(&["fds", pid])
                .output();
            out.expect_code(0, "the probe lists the descriptors");
            let fds = json(&out)["fds"].clone();
            let numbers: Vec<&String> = fds.as_object().expect("a map").keys().collect();
            harness::expect_eq!(
                numbers,
                ["0", "1", "2"],
                "pid {pid} holds {fds}\n{}",
                out.describe()
            );
        }
    }

    #[rstest]
    fn the_mount_namespace_is_new(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_ne!(report.namespaces.get("mnt"), host::namespaces().get("mnt"));
    }

    #[rstest]
    fn the_old_root_is_gone_and_chroot_tricks_do_not_reach_it(rt: Runtime) {
        let rootfs = Rootfs::private();
        let marker = tempfile::NamedTempFile::new().unwrap();
        let out = rt
            .run_in(&rootfs)
            .probe(&["escape", &marker.path().to_string_lossy()])
            .output();
        out.expect_code(0, "the probe tries the chroot escape");
        harness::expect_eq!(
            json(&out)["escaped"],
            false,
            "the chroot escape reached the host's files: was the rootfs entered with chroot, \
             or the old root left attached after pivot_root?"
        );
        let report = rt.run_in(&rootfs).probe(&["report"]).output().report();
        let rootfs_path = rootfs.path().to_string_lossy().into_owned();
        assert!(
            report
                .mounts
                .iter()
                .all(|m| !m.mount_point.starts_with(&rootfs_path)),
            "no mount inside may still show the host's path to the rootfs: {:?}",
            report
                .mounts
                .iter()
                .map(|m| &m.mount_point)
                .collect::<Vec<_>>()
        );
    }

    #[rstest]
    fn ps_shows_only_the_containers_processes(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_eq!(
            report.visible_pids,
            [1],
            "a fresh /proc shows the container's PID namespace only"
        );
        let with_init = rt.run().arg("--init").probe(&["report"]).output().report();
        harness::expect_eq!(with_init.visible_pids, [1, 2]);
    }

    #[rstest]
    fn nothing_mounted_in_the_container_shows_on_the_host(rt: Runtime) {
        let rootfs = Rootfs::private();
        let volume = tempfile::tempdir().unwrap();
        let spec = format!("{}:/data", volume.path().display());
        let mut running = rt
            .run_in(&rootfs)
            .args(["-v", &spec])
            .probe(&["signals"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        harness::expect_eq!(
            host::mounts_under(rootfs.path()),
            Vec::<String>::new(),
            "the container's mounts leaked to the host's mount table (propagation not private?)"
        );
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
        harness::expect_eq!(host::mounts_under(rootfs.path()), Vec::<String>::new());
    }

    #[rstest]
    fn a_command_of_the_rootfs_runs(rt: Runtime) {
        let out = rt
            .run()
            .command(["sh", "-c", "echo from-the-rootfs"])
            .output();
        out.expect_code(0, "the rootfs's sh runs");
        harness::expect_eq!(out.stdout(), "from-the-rootfs\n");
    }
}

/// Milestone 03.2: fresh /proc, read-only /sys, a minimal /dev, masked paths.
mod m2_kernel_filesystems {
    use super::*;

    fn mount<'a>(report: &'a probe::Report, point: &str) -> &'a probe::Mount {
        report
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == point)
            .unwrap_or_else(|| panic!("nothing is mounted at {point}: {:#?}", report.mounts))
    }

    #[rstest]
    fn proc_sys_and_dev_are_mounted_as_they_should(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_eq!(mount(&report, "/proc").fs_type, "proc");
        let sys = mount(&report, "/sys");
        harness::expect_eq!(sys.fs_type, "sysfs");
        assert!(
            sys.options.split(',').any(|o| o == "ro"),
            "/sys must be read-only: {sys:?}"
        );
        harness::expect_eq!(mount(&report, "/dev").fs_type, "tmpfs");
        let pts = mount(&report, "/dev/pts");
        harness::expect_eq!(pts.fs_type, "devpts");
        harness::expect_eq!(mount(&report, "/dev/shm").fs_type, "tmpfs");
        harness::expect_eq!(mount(&report, "/dev/mqueue").fs_type, "mqueue");
    }

    #[rstest]
    /// A sysfs file that exists on any host and rejects the probe's text
    /// ("written by the probe") as a value: on a read-only /sys the write
    /// fails with EROFS; on a writable one with EINVAL, and the host's
    /// setting stays as it was either way.
    fn sys_cannot_be_written(rt: Runtime) {
        let file = [
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "/sys/kernel/mm/ksm/run",
        ]
        .into_iter()
        .find(|f| Path::new(f).exists())
        .expect("this kernel has neither transparent hugepages nor KSM in /sys");
        let out = rt.run().probe(&["write", file]).output();
        harness::expect_eq!(
            json(&out)["errno"],
            "EROFS",
            "{file} must not be writable: /sys is mounted read-only"
        );
    }

    #[rstest]
    fn dev_holds_only_the_safe_devices(rt: Runtime) {
        let out = rt.run().probe(&["ls", "/dev"]).output();
        let entries = json(&out)["entries"].clone();
        let expected = [
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero",
        ];
        harness::expect_eq!(
            entries,
            serde_json::json!(expected),
            "/dev must hold exactly these"
        );
        let null = rt.run().probe(&["stat", "/dev/null"]).output();
        let null = json(&null);
        harness::expect_eq!(
            (
                null["kind"].clone(),
                null["rdev_major"].clone(),
                null["rdev_minor"].clone()
            ),
            ("char".into(), 1.into(), 3.into())
        );
        harness::expect_eq!(null["mode"], 0o666);
    }

    #[rstest]
    fn devpts_is_a_new_instance(rt: Runtime) {
        let out = rt.run().probe(&["ls", "/dev/pts"]).output();
        harness::expect_eq!(
            json(&out)["entries"],
            serde_json::json!(["ptmx"]),
            "the host's terminals must not be visible (devpts newinstance)"
        );
    }

    #[rstest]
    fn masked_paths_read_as_empty(rt: Runtime) {
        for path in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/proc/sched_debug",
        ] {
            if !Path::new(path).exists() {
                continue; // this kernel has no such file: nothing to mask
            }
            let out = rt.run().probe(&["read", path]).output();
            harness::expect_eq!(
                json(&out)["bytes"],
                0,
                "{path} must be masked\n{}",
                out.describe()
            );
        }
        for dir in ["/proc/acpi", "/proc/scsi", "/sys/firmware"] {
            if !Path::new(dir).exists() {
                continue;
            }
            let out = rt.run().probe(&["ls", dir]).output();
            harness::expect_eq!(
                json(&out)["entries"],
                serde_json::json!([]),
                "{dir} must be masked"
            );
        }
    }

    #[rstest]
    #[case("/proc/sys/kernel/hostname")]
    #[case("/proc/sys/vm/drop_caches")]
    fn kernel_settings_are_read_only(rt: Runtime, #[case] path: &str) {
        let out = rt.run().probe(&["write", path]).output();
        harness::expect_eq!(
            json(&out)["errno"],
            "EROFS",
            "{path} must be read-only\n{}",
            out.describe()
        );
    }
}

/// Milestone 03.3: volumes, working directory, environment.
mod m3_volumes_and_environment {
    use super::*;

    #[rstest]
    fn a_volume_shares_files_both_ways(rt: Runtime) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("from-host"), "hello").unwrap();
        let spec = format!("{}:/data", dir.path().display());
        let out = rt
            .run()
            .args(["-v", &spec])
            .probe(&["ls", "/data"])
            .output();
        harness::expect_eq!(json(&out)["entries"], serde_json::json!(["from-host"]));
        let out = rt
            .run()
            .args(["-v", &spec])
            .probe(&["write", "/data/from-container"])
            .output();
        harness::expect_eq!(json(&out)["ok"], true);
        assert!(
            dir.path().join("from-container").exists(),
            "the write must reach the host"
        );
    }

    #[rstest]
    fn a_file_volume_mounts_one_file(rt: Runtime) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "12345").unwrap();
        let spec = format!("{}:/etc/app.conf:ro", file.path().display());
        let out = rt
            .run()
            .args(["-v", &spec])
            .probe(&["read", "/etc/app.conf"])
            .output();
        harness::expect_eq!(json(&out)["bytes"], 5);
    }

    #[rstest]
    fn a_read_only_volume_cannot_be_written_not_even_below_a_submount(rt: Runtime) {
        let dir = tempfile::tempdir().unwrap();
        let _sub = HostTmpfs::mount(&dir.path().join("sub"));
        let spec = format!("{}:/data:ro", dir.path().display());
        for path in ["/data/new", "/data/sub/new"] {
            let out = rt
                .run()
                .args(["-v", &spec])
                .probe(&["write", path])
                .output();
            harness::expect_eq!(
                json(&out)["errno"],
                "EROFS",
                "{path} is in a :ro volume (a submount must be read-only too)\n{}",
                out.describe()
            );
        }
        assert!(!dir.path().join("new").exists());
        assert!(!dir.path().join("sub/new").exists());
    }

    #[rstest]
    fn the_working_directory_is_set_and_created(rt: Runtime) {
        let rootfs = Rootfs::private();
        let report = rt
            .run_in(&rootfs)
            .args(["-w", "/srv/app"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(report.cwd, "/srv/app");
    }

    #[rstest]
    fn the_environment_is_the_containers_own(rt: Runtime) {
        let report = rt
            .run()
            .args([
                "--hostname",
                "envy",
                "-e",
                "APP_MODE=test",
                "-e",
                "HOME=/srv",
                "-e",
                "FROM_RUNTIME",
            ])
            .probe(&["report"])
            .output()
            .report();
        let env = &report.env;
        harness::expect_eq!(env.get("APP_MODE").map(String::as_str), Some("test"));
        harness::expect_eq!(
            env.get("HOME").map(String::as_str),
            Some("/srv"),
            "-e overrides a default"
        );
        harness::expect_eq!(env.get("HOSTNAME").map(String::as_str), Some("envy"));
        assert!(
            env.get("PATH").is_some_and(|p| p.contains("/bin")),
            "a default PATH"
        );
        assert!(env.contains_key("TERM"), "a default TERM");
        assert!(
            !env.contains_key("CARGO") && !env.contains_key("RUNTIME_BIN"),
            "the runtime's own environment must not leak in: {env:?}"
        );
    }

    #[rstest]
    fn a_bare_key_passes_the_runtimes_value(rt: Runtime) {
        let report = rt
            .run()
            .env("MYRUNTIME_TEST_PASSED", "through")
            .args(["-e", "MYRUNTIME_TEST_PASSED"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(
            report.env.get("MYRUNTIME_TEST_PASSED").map(String::as_str),
            Some("through")
        );
    }
}

/// Milestone 03.4: bad input is refused, and nothing is left mounted.
mod m4_bad_input {
    use super::*;

    /// Refused: non-zero, one line naming `what`, nothing started, nothing
    /// mounted under `watched`.
    fn refused(out: &harness::Outcome, what: &str, watched: &Path) {
        out.expect_refused(&[what]);
        harness::expect_eq!(
            host::mounts_under(watched),
            Vec::<String>::new(),
            "left mounted"
        );
    }

    #[rstest]
    fn a_missing_rootfs(rt: Runtime) {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-rootfs");
        let out = rt.run_in_path(&missing).probe(&["report"]).output();
        refused(&out, &missing.to_string_lossy(), dir.path());
    }

    #[rstest]
    fn a_rootfs_that_is_a_file(rt: Runtime) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let out = rt.run_in_path(file.path()).probe(&["report"]).output();
        refused(&out, "not a directory", file.path());
    }

    #[rstest]
    fn a_rootfs_without_the_command(rt: Runtime) {
        let rootfs = Rootfs::private();
        let out = rt
            .run_in(&rootfs)
            .command(["/usr/bin/no-such-tool"])
            .output();
        out.expect_code(127, "the command is not in the rootfs");
        assert!(out.stderr().contains("no-such-tool"), "{}", out.describe());
        harness::expect_eq!(host::mounts_under(rootfs.path()), Vec::<String>::new());
    }

    #[rstest]
    fn a_missing_volume_source(rt: Runtime) {
        let rootfs = Rootfs::private();
        let out = rt
            .run_in(&rootfs)
            .args(["-v", "/no/such/source:/data"])
            .probe(&["report"])
            .output();
        refused(&out, "/no/such/source", rootfs.path());
        assert!(
            !rootfs.join("/data").exists(),
            "nothing may be created for a refused volume"
        );
    }

    #[rstest]
    fn a_volume_target_escaping_through_a_symlink(rt: Runtime) {
        let rootfs = Rootfs::private();
        std::os::unix::fs::symlink("../../../../../../../../tmp", rootfs.join("/escape")).unwrap();
        let source = tempfile::tempdir().unwrap();
        let spec = format!("{}:/escape/x", source.path().display());
        let out = rt
            .run_in(&rootfs)
            .args(["-v", &spec])
            .probe(&["report"])
            .output();
        refused(&out, "/escape", rootfs.path());
        assert!(
            !Path::new("/tmp/x").exists(),
            "the runtime wrote outside the rootfs"
        );
    }

    /// A volume over /proc (or /sys, /dev) would hide what the runtime
    /// mounts there, and with it the masked paths: refused, also when a
    /// symlink of the rootfs leads there.
    #[rstest]
    #[case::proc("/proc")]
    #[case::below_proc("/proc/sys")]
    #[case::sys("/sys")]
    #[case::dev("/dev")]
    #[case::through_a_symlink("/state")]
    fn a_volume_over_a_kernel_filesystem(rt: Runtime, #[case] target: &str) {
        let rootfs = Rootfs::private();
        std::os::unix::fs::symlink("/proc", rootfs.join("/state")).unwrap();
        let source = tempfile::tempdir().unwrap();
        let spec = format!("{}:{target}", source.path().display());
        let out = rt
            .run_in(&rootfs)
            .args(["-v", &spec])
            .probe(&["report"])
            .output();
        refused(&out, "the runtime mounts", rootfs.path());
    }

    #[rstest]
    #[case::no_colon("/tmp")]
    #[case::relative_host("tmp:/data")]
    #[case::relative_container("/tmp:data")]
    #[case::bad_option("/tmp:/data:rx")]
    fn a_malformed_volume(rt: Runtime, #[case] spec: &str) {
        let rootfs = Rootfs::private();
        let out = rt
            .run_in(&rootfs)
            .args(["-v", spec])
            .probe(&["report"])
            .output();
        refused(&out, "volume", rootfs.path());
    }
}
