//! Stage 05 suite: cgroups, proven by behaviour.
//!
//! Runs `$RUNTIME_BIN` (default: stage05-cgroups) as
//! `BIN run --rootfs DIR [--memory SIZE] [--cpus N] [--pids-limit N] [io limits] [--cgroup-parent P] [stage 04 options] -- COMMAND`.
//! Memory is proven by an OOM kill, processes by a fork bomb, CPU by CPU
//! time over wall time; I/O limits by where the kernel reads them. Each test
//! puts its containers under a cgroup parent of its own, and removes it.
//! On this host's cgroup layout and, through `make test-vm`, on pure
//! cgroup v2. As root:
//!
//! ```sh
//! make test-stage STAGE=05 [BIN=/path/to/yours]
//! ```

use std::sync::Mutex;

use harness::host::{self, CgroupParent, LoopDevice};
use harness::{Rootfs, Runtime};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage05-cgroups").with_rootfs()
}

/// Tests that measure CPU time run one at a time, and never beside the fork
/// bomb: the machine's two cores are shared by everything the suite runs.
static CPU: Mutex<()> = Mutex::new(());

fn json(out: &harness::Outcome) -> serde_json::Value {
    out.json()
}

/// The controller that holds memory limits, by name (v1) for cgroup_dir.
const MEMORY: &str = "memory";

/// Milestone 05.1: memory: past its limit, a container is OOM-killed.
mod m1_memory {
    use super::*;

    #[rstest]
    fn past_the_limit_the_oom_killer_ends_the_container_with_137_and_a_message(rt: Runtime) {
        let parent = CgroupParent::new();
        let out = rt
            .run()
            .args(["--memory", "32m", "--cgroup-parent", &parent.0])
            .probe(&["alloc", "256"])
            .output();
        out.expect_code(137, "the OOM killer's SIGKILL: 128 + 9");
        let stderr = out.stderr().to_lowercase();
        assert!(
            stderr.contains("oom") && stderr.contains("memory limit") && stderr.contains("32m"),
            "the runtime must say the OOM killer ended the container at its 32m limit\n{}",
            out.describe()
        );
        harness::expect_eq!(
            parent.children(MEMORY),
            Vec::<String>::new(),
            "the cgroup must be gone after an OOM kill"
        );
    }

    #[rstest]
    fn below_the_limit_memory_is_there_to_use(rt: Runtime) {
        let out = rt
            .run()
            .args(["--memory", "64m"])
            .probe(&["alloc", "16"])
            .output();
        out.expect_code(0, "16 MiB fit in 64m");
        harness::expect_eq!(json(&out)["allocated"], 16);
    }
}

/// Milestone 05.2: processes: a fork bomb stays inside its limit.
mod m2_pids {
    use super::*;

    #[rstest]
    fn a_fork_bomb_never_exceeds_the_pids_limit_and_the_host_stays_responsive(rt: Runtime) {
        let _cpu = CPU.lock().unwrap_or_else(|p| p.into_inner());
        let running = rt
            .run()
            .args(["--pids-limit", "25"])
            .probe(&["forkbomb", "2"])
            .spawn();
        // While the bomb goes off, the host can still start processes.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let host_ok = std::process::Command::new("true")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            host_ok,
            "the host could not start a process during the fork bomb"
        );
        let out = running.finish();
        out.expect_code(0, "the probe reports how far it got");
        let got = json(&out);
        // The probe itself counts: it and its children together stay at 25.
        let processes = got["forked"].as_u64().unwrap() + 1;
        assert!(
            processes <= 25,
            "{processes} processes ran in a container limited to 25"
        );
        assert!(
            got["refused"].as_u64().unwrap() > 0,
            "the kernel refused no fork: no limit in force\n{got}"
        );
    }
}

/// Milestone 05.3: CPU: `--cpus` caps CPU time; shares land as weights.
mod m3_cpu {
    use super::*;

    #[rstest]
    fn half_a_cpu_is_half_a_cpu(rt: Runtime) {
        let _cpu = CPU.lock().unwrap_or_else(|p| p.into_inner());
        let out = rt
            .run()
            .args(["--cpus", "0.5"])
            .probe(&["burn", "2"])
            .output();
        out.expect_code(0, "the probe burns CPU for 2 seconds");
        let got = json(&out);
        let ratio = got["cpu"].as_f64().unwrap() / got["wall"].as_f64().unwrap();
        assert!(
            (0.3..=0.65).contains(&ratio),
            "a busy loop under --cpus 0.5 used {ratio:.2} of a CPU (expected about 0.5)"
        );
        let free = rt.run().probe(&["burn", "1"]).output();
        let got = json(&free);
        let free_ratio = got["cpu"].as_f64().unwrap() / got["wall"].as_f64().unwrap();
        assert!(
            free_ratio > ratio + 0.2,
            "without --cpus the loop should use more CPU ({free_ratio:.2}) than with it ({ratio:.2})"
        );
    }

    #[rstest]
    fn cpu_shares_land_as_the_kernel_reads_them(rt: Runtime) {
        let mut running = rt
            .run()
            .args(["--cpu-shares", "512"])
            .probe(&["signals"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let pid = running.container_pid();
        let path = host::cgroup_of(pid, "cpu").expect("the container has a cpu cgroup");
        let (file, want) = if host::cgroup_v2() {
            ("cpu.weight", "20") // 1 + (512 - 2) * 9999 / 262142, as runc converts
        } else {
            ("cpu.shares", "512")
        };
        let got = std::fs::read_to_string(host::cgroup_dir("cpu", &path).join(file)).unwrap();
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish();
        harness::expect_eq!(got.trim(), want, "{file} of {path}");
    }
}

/// Milestone 05.4: I/O: weights and device limits where the kernel reads them.
mod m4_io {
    use super::*;

    #[rstest]
    fn device_limits_and_weight_land_where_the_kernel_reads_them(rt: Runtime) {
        let device = LoopDevice::create();
        let dev = device.path.to_string_lossy().into_owned();
        let mut running = rt
            .run()
            .args(["--io-weight", "500"])
            .args([
                "--device-read-bps",
                &format!("{dev}:1m"),
                "--device-write-bps",
                &format!("{dev}:2m"),
            ])
            .args([
                "--device-read-iops",
                &format!("{dev}:100"),
                "--device-write-iops",
                &format!("{dev}:200"),
            ])
            .probe(&["signals"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let pid = running.container_pid();
        let numbers = device.numbers();
        let controller = if host::cgroup_v2() { "io" } else { "blkio" };
        let dir = host::cgroup_dir(
            controller,
            &host::cgroup_of(pid, controller).expect("an io cgroup"),
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let found = if host::cgroup_v2() {
            let max = read("io.max");
            let weight = read("io.weight");
            vec![
                (
                    max.contains(&format!(
                        "{numbers} rbps=1048576 wbps=2097152 riops=100 wiops=200"
                    )),
                    max,
                ),
                (weight.contains("default 4950"), weight),
            ]
        } else {
            vec![
                (
                    read("blkio.throttle.read_bps_device").contains(&format!("{numbers} 1048576")),
                    read("blkio.throttle.read_bps_device"),
                ),
                (
                    read("blkio.throttle.write_bps_device").contains(&format!("{numbers} 2097152")),
                    read("blkio.throttle.write_bps_device"),
                ),
                (
                    read("blkio.throttle.read_iops_device").contains(&format!("{numbers} 100")),
                    read("blkio.throttle.read_iops_device"),
                ),
                (
                    read("blkio.throttle.write_iops_device").contains(&format!("{numbers} 200")),
                    read("blkio.throttle.write_iops_device"),
                ),
                (
                    read("blkio.bfq.weight").trim() == "500",
                    read("blkio.bfq.weight"),
                ),
            ]
        };
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish();
        for (ok, text) in found {
            assert!(ok, "an I/O limit is missing in {}: {text:?}", dir.display());
        }
    }
}

/// Milestone 05.5: a cgroup per container, from before COMMAND runs until
/// after it ends, whatever way it ends.
mod m5_lifecycle {
    use super::*;

    #[rstest]
    fn the_container_runs_in_its_own_cgroup_under_its_parent(rt: Runtime) {
        let parent = CgroupParent::new();
        let mut running = rt
            .run()
            .args(["--pids-limit", "50", "--cgroup-parent", &parent.0])
            .probe(&["signals"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let pid = running.container_pid();
        let path = host::cgroup_of(pid, "pids").expect("a pids cgroup");
        let children = parent.children("pids");
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
        assert!(
            path.trim_start_matches('/')
                .starts_with(&format!("{}/", parent.0)),
            "the container's cgroup {path} is not under --cgroup-parent {}",
            parent.0
        );
        harness::expect_eq!(
            children.len(),
            1,
            "one cgroup for one container: {children:?}"
        );
        harness::expect_eq!(
            parent.children("pids"),
            Vec::<String>::new(),
            "the cgroup is removed when the container ends"
        );
    }

    #[rstest]
    fn the_container_sees_its_cgroup_as_its_root(rt: Runtime) {
        let report = rt
            .run()
            .args(["--memory", "64m"])
            .probe(&["report"])
            .output()
            .report();
        assert!(
            report.cgroup.iter().all(|l| l.ends_with(":/")),
            "with a cgroup namespace made after joining its cgroup, the container's first \
             instruction already runs in it, shown as /: {:?}",
            report.cgroup
        );
    }

    #[rstest]
    fn a_cgroup_left_by_a_killed_runtime_is_removed_by_the_next_start(rt: Runtime) {
        let parent = CgroupParent::new();
        let tag = host::unique_tag("killed");
        let mut running = rt
            .run()
            .args(["--cgroup-parent", &parent.0])
            .probe(&["sleep", "30", &tag])
            .spawn();
        running.wait_for("to start COMMAND", || {
            !host::processes_with(&tag).is_empty()
        });
        running.signal(nix::sys::signal::Signal::SIGKILL);
        drop(running);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !host::processes_with(&tag).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the container outlived its runtime"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = parent.children("pids");
        rt.run()
            .args(["--cgroup-parent", &parent.0])
            .probe(&["exit", "0"])
            .output()
            .expect_code(0, "the next container starts");
        let after = parent.children("pids");
        for stale in &left {
            assert!(
                !after.contains(stale),
                "the cgroup {stale} of the killed runtime is still there"
            );
        }
        harness::expect_eq!(after, Vec::<String>::new());
    }
}

/// Milestone 05.6: rootless on cgroup v2 uses a delegated subtree.
mod m6_rootless {
    use super::*;

    #[rstest]
    fn rootless_in_a_delegated_v2_subtree_gets_its_limits(rt: Runtime) {
        if !host::cgroup_v2() {
            // Nothing can be delegated on v1 or hybrid hosts: the runtime must
            // say so (m7's test); `make test-vm` runs this one on cgroup v2.
            harness::not_checkable_here(
                "it is not cgroup v2: delegation is proven in the v2 VM (make test-vm)",
            );
            return;
        }
        let user = host::nobody();
        let delegated = host::DelegatedCgroup::new(user.uid, user.gid);
        let procs = delegated.launch_procs().display().to_string();
        // From stage 06 the runtime keeps data: in a directory the user owns.
        let store = harness::store_root_for(user.uid);
        let defaults: Vec<String> = harness::STAGE_DEFAULTS
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let script = format!(
            "echo $$ > {procs} && exec setpriv --reuid={} --regid={} --clear-groups \
             env -i PATH=/usr/bin:/bin MYRUNTIME_ROOT={} {} \"$@\"",
            user.uid,
            user.gid,
            store.display(),
            defaults.join(" ")
        );
        let mut running = rt
            .run()
            .args(["--memory", "64m", "--pids-limit", "10"])
            .probe(&["signals"])
            .through(&["sh", "-c", &script, "sh"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let pid = running.container_pid();
        let path = host::cgroup_of(pid, "pids").expect("a cgroup");
        let read = |f: &str| {
            std::fs::read_to_string(host::cgroup_dir("", &path).join(f)).unwrap_or_default()
        };
        let (pids_max, memory_max) = (read("pids.max"), read("memory.max"));
        running.signal(nix::sys::signal::Signal::SIGTERM);
        let out = running.finish();
        out.expect_code(0, "the probe ends on SIGTERM");
        assert!(
            path.trim_start_matches('/')
                .starts_with(&format!("{}/", delegated.name)),
            "a rootless container's cgroup belongs in the delegated subtree, not at {path}"
        );
        harness::expect_eq!((pids_max.trim(), memory_max.trim()), ("10", "67108864"));
        assert!(!out.stderr().contains("not applied"), "{}", out.describe());
    }
}

/// Milestone 05.7: limits that cannot be met are refused, and leave nothing.
mod m7_bad_input {
    use super::*;

    /// Each case: a bad value, a good value of the same flag (a runtime that
    /// refuses the flag itself, as unknown, has not met the milestone), and
    /// what the one line must name.
    #[rstest]
    #[case::memory_too_low(&["--memory", "1m"][..], &["--memory", "64m"][..], "--memory")]
    #[case::swap_below_memory(
        &["--memory", "64m", "--memory-swap", "32m"][..],
        &["--memory", "64m", "--memory-swap", "128m"][..],
        "--memory-swap"
    )]
    #[case::zero_cpus(&["--cpus", "0"][..], &["--cpus", "1.5"][..], "cpus")]
    #[case::too_many_cpus(&["--cpus", "4096"][..], &["--cpus", "1"][..], "cpus")]
    #[case::zero_pids(&["--pids-limit", "0"][..], &["--pids-limit", "100"][..], "pids")]
    #[case::not_a_block_device(&["--device-read-bps", "/dev/null:1m"][..], &[][..], "block device")]
    #[case::bad_size(&["--memory", "lots"][..], &["--memory", "1g"][..], "lots")]
    #[case::negative_memory(&["--memory", "-1"][..], &["--memory", "100m"][..], "cannot be negative")]
    #[case::negative_cpus(&["--cpus", "-1"][..], &["--cpus", "0.01"][..], "at least 0.01")]
    #[case::memory_past_any_machine(
        &["--memory", "99999999999999999999"][..],
        &["--memory", "512m"][..],
        "too large"
    )]
    fn refused_with_one_line_and_no_cgroup(
        rt: Runtime,
        #[case] args: &[&str],
        #[case] good: &[&str],
        #[case] what: &str,
    ) {
        let parent = CgroupParent::new();
        if !good.is_empty() {
            rt.run()
                .args(good)
                .args(["--cgroup-parent", &parent.0])
                .probe(&["exit", "0"])
                .output()
                .expect_code(
                    0,
                    &format!("{} is a limit the runtime must take", good.join(" ")),
                );
        }
        let out = rt
            .run()
            .args(args)
            .args(["--cgroup-parent", &parent.0])
            .probe(&["report"])
            .output();
        out.expect_refused(&[what]);
        harness::expect_eq!(
            parent.children("pids"),
            Vec::<String>::new(),
            "a cgroup was left behind"
        );
    }

    #[rstest]
    fn rootless_without_delegation_says_which_limits_were_not_applied(rt: Runtime) {
        // v1 and hybrid hosts cannot delegate; on v2, nothing is delegated
        // to nobody.
        let user = host::nobody();
        let rootfs = Rootfs::shared();
        let out = rt
            .run_in(rootfs)
            .as_user(&user)
            .args(["--memory", "64m", "--pids-limit", "10"])
            .probe(&["exit", "0"])
            .output();
        out.expect_code(0, "rootless, the container still runs");
        assert!(
            out.stderr().contains("--memory") && out.stderr().contains("--pids-limit"),
            "the runtime must say which limits it could not apply\n{}",
            out.describe()
        );
    }
}
