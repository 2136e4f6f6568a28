//! The learning milestones, each proved by one module of a stage's suite.
//!
//! A test's name starts with its milestone's module (`m1_process::...`), so
//! `make progress` can tell, from the suites' output alone, which milestones
//! a runtime passes. MILESTONES.md lists the same milestones for readers; the
//! `repo` suite checks that the two agree.

/// The stage binaries, in order: the reference runtime of each stage.
pub const STAGE_BINS: [&str; 9] = [
    "stage01-uts",
    "stage02-pid",
    "stage03-mount",
    "stage04-user",
    "stage05-cgroups",
    "stage06-overlay",
    "stage07-image",
    "stage08-lifecycle",
    "stage09-network",
];

/// One milestone.
#[derive(Debug, Clone, Copy)]
pub struct Milestone {
    /// `01.2`: stage, then number within the stage.
    pub id: &'static str,
    /// The suite (test target) that proves it.
    pub suite: &'static str,
    /// The module of that suite holding its tests.
    pub module: &'static str,
    pub title: &'static str,
    /// The book chapter that teaches it.
    pub chapter: &'static str,
}

/// Every milestone that has a suite today, in learning order.
pub const MILESTONES: &[Milestone] = &[
    Milestone {
        id: "01.1",
        suite: "stage01",
        module: "m1_process",
        title: "a container is a process: COMMAND runs, stdio passes through, its exit status comes back",
        chapter: "book/src/stage01-uts.md",
    },
    Milestone {
        id: "01.2",
        suite: "stage01",
        module: "m2_hostname",
        title: "its own hostname in its own UTS namespace; the host's never changes",
        chapter: "book/src/stage01-uts.md",
    },
    Milestone {
        id: "01.3",
        suite: "stage01",
        module: "m3_errors",
        title: "bad input gets one clear line: 127, 126, a bad hostname refused before anything starts",
        chapter: "book/src/stage01-uts.md",
    },
    Milestone {
        id: "02.1",
        suite: "stage02",
        module: "m1_pid_one",
        title: "COMMAND is PID 1 of its own PID namespace",
        chapter: "book/src/stage02-pid.md",
    },
    Milestone {
        id: "02.2",
        suite: "stage02",
        module: "m2_signals",
        title: "signals sent to the runtime reach the container",
        chapter: "book/src/stage02-pid.md",
    },
    Milestone {
        id: "02.3",
        suite: "stage02",
        module: "m3_init",
        title: "with --init, orphans are reaped and SIGTERM stops any command",
        chapter: "book/src/stage02-pid.md",
    },
    Milestone {
        id: "02.4",
        suite: "stage02",
        module: "m4_pid_one_exits",
        title: "when PID 1 exits, the whole container is gone and the runtime returns at once",
        chapter: "book/src/stage02-pid.md",
    },
    Milestone {
        id: "03.1",
        suite: "stage03",
        module: "m1_rootfs",
        title: "its own root filesystem, entered with pivot_root; the host's files and mounts out of reach",
        chapter: "book/src/stage03-mount.md",
    },
    Milestone {
        id: "03.2",
        suite: "stage03",
        module: "m2_kernel_filesystems",
        title: "a fresh /proc, a read-only /sys, a minimal /dev, masked and read-only kernel paths",
        chapter: "book/src/stage03-mount.md",
    },
    Milestone {
        id: "03.3",
        suite: "stage03",
        module: "m3_volumes_and_environment",
        title: "volumes (:ro all the way down), a working directory, an environment of its own",
        chapter: "book/src/stage03-mount.md",
    },
    Milestone {
        id: "03.4",
        suite: "stage03",
        module: "m4_bad_input",
        title: "a bad rootfs or volume is refused with one line, and nothing is left mounted",
        chapter: "book/src/stage03-mount.md",
    },
    Milestone {
        id: "04.1",
        suite: "stage04",
        module: "m1_user",
        title: "--user runs COMMAND as a user of the rootfs, with its groups and no capabilities",
        chapter: "book/src/stage04-user.md",
    },
    Milestone {
        id: "04.2",
        suite: "stage04",
        module: "m2_userns",
        title: "user namespaces: root inside is an unprivileged id outside",
        chapter: "book/src/stage04-user.md",
    },
    Milestone {
        id: "04.3",
        suite: "stage04",
        module: "m3_rootless",
        title: "rootless: an ordinary user runs containers, with everything of stages 01 to 03",
        chapter: "book/src/stage04-user.md",
    },
    Milestone {
        id: "04.4",
        suite: "stage04",
        module: "m4_ipc",
        title: "an IPC namespace: System V and POSIX queues invisible in both directions",
        chapter: "book/src/stage04-user.md",
    },
    Milestone {
        id: "05.1",
        suite: "stage05",
        module: "m1_memory",
        title: "past --memory the OOM killer ends the container: 137 and a message saying so",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.2",
        suite: "stage05",
        module: "m2_pids",
        title: "a fork bomb never exceeds --pids-limit, and the host stays responsive",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.3",
        suite: "stage05",
        module: "m3_cpu",
        title: "--cpus 0.5 holds a busy loop near half a CPU; --cpu-shares lands as a weight",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.4",
        suite: "stage05",
        module: "m4_io",
        title: "I/O weight and device limits land where the kernel reads them",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.5",
        suite: "stage05",
        module: "m5_lifecycle",
        title: "one cgroup per container, from before COMMAND runs until after it ends, even after a killed runtime",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.6",
        suite: "stage05",
        module: "m6_rootless",
        title: "rootless on cgroup v2 uses the subtree delegated to the user",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "05.7",
        suite: "stage05",
        module: "m7_bad_input",
        title: "limits that cannot be met are refused with one line; rootless without delegation says what was not applied",
        chapter: "book/src/stage05-cgroups.md",
    },
    Milestone {
        id: "06.1",
        suite: "stage06",
        module: "m1_copy_on_write",
        title: "the rootfs on disk is never modified: changes live in the container's upper directory",
        chapter: "book/src/stage06-overlay.md",
    },
    Milestone {
        id: "06.2",
        suite: "stage06",
        module: "m2_isolation",
        title: "two containers from one rootfs never see each other's writes",
        chapter: "book/src/stage06-overlay.md",
    },
    Milestone {
        id: "06.3",
        suite: "stage06",
        module: "m3_lifecycle",
        title: "the overlay is invisible on the host; the upper directory goes with the container, even after a failed start or a SIGKILL",
        chapter: "book/src/stage06-overlay.md",
    },
    Milestone {
        id: "06.4",
        suite: "stage06",
        module: "m4_layers",
        title: "layers stack lowest first, a hundred and more of them",
        chapter: "book/src/stage06-overlay.md",
    },
    Milestone {
        id: "06.5",
        suite: "stage06",
        module: "m5_bad_input",
        title: "a missing layer or no root at all: refused with one line, nothing made; the root-only data directory serves user namespaces too",
        chapter: "book/src/stage06-overlay.md",
    },
    Milestone {
        id: "07.1",
        suite: "stage07",
        module: "m1_pull_and_run",
        title: "pull from a registry (tag, digest, credentials), list, and run with the image's config",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.2",
        suite: "stage07",
        module: "m2_layers",
        title: "layers: whiteouts, gzip/zstd/plain, modes and links, shared layers stored once",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.3",
        suite: "stage07",
        module: "m3_platforms",
        title: "a multi-platform index resolves to the host's platform, or --platform's",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.4",
        suite: "stage07",
        module: "m4_bad_images",
        title: "unknown images, a registry down, corrupt or hostile layers, a full disk: one line, store unchanged, nothing written outside",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.5",
        suite: "stage07",
        module: "m5_rmi",
        title: "rmi removes what no other image uses, and nothing a container runs on, even racing its start",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.6",
        suite: "stage07",
        module: "m6_robust_pulls",
        title: "a killed pull lists nothing and the next finishes; concurrent pulls; memory flat as layers grow",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.7",
        suite: "stage07",
        module: "m7_hostile_registry",
        title: "a registry that lies (digests that are paths, lying headers, endless bodies, artifacts, plain-HTTP token services) is refused in one line and reaches nothing",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "07.8",
        suite: "stage07",
        module: "m8_hostile_layers",
        title: "a layer that lies (metadata through symlinks, bad whiteouts, bombs, forged overlay attributes, escapes) is refused or kept inside; set-id files stay out of host users' reach",
        chapter: "book/src/stage07-image.md",
    },
    Milestone {
        id: "08.1",
        suite: "stage08",
        module: "m1_spec",
        title: "a container is data: the command line becomes an OCI runtime spec, made without running, started by another process",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.2",
        suite: "stage08",
        module: "m2_detach",
        title: "detached containers outlive the command and its terminal; names, ids and prefixes find them; --rm",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.3",
        suite: "stage08",
        module: "m3_logs",
        title: "output kept after exit, stdout and stderr apart, followed, capped and rotated",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.4",
        suite: "stage08",
        module: "m4_exec",
        title: "exec joins every namespace, the cgroup and the root of a running container; -e, -w, -u, -t, -d",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.5",
        suite: "stage08",
        module: "m5_control",
        title: "stop (stop signal, grace, SIGKILL), kill, wait, pause and unpause, restart, rm",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.6",
        suite: "stage08",
        module: "m6_inspect",
        title: "ps, inspect, stats and top say what the kernel says",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.7",
        suite: "stage08",
        module: "m7_recovery",
        title: "the monitor, the runtime or PID 1 killed at any moment: the next command reconciles, nothing is left",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "08.8",
        suite: "stage08",
        module: "m8_stress",
        title: "fifty containers at once: a fork bomb and a memory hog held by their limits, the rest finish; rm -f leaves nothing",
        chapter: "book/src/stage08-lifecycle.md",
    },
    Milestone {
        id: "09.1",
        suite: "stage09",
        module: "m1_loopback",
        title: "--network none: a network namespace of its own, its loopback up (rootless too); host: the host's",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.2",
        suite: "stage09",
        module: "m2_bridge",
        title: "--network bridge: a bridge, a veth pair and an address of its own per container (IPAM: unique, --ip, exhaustion, released on exit and after a crash)",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.3",
        suite: "stage09",
        module: "m3_nat",
        title: "NAT: containers reach the outside masqueraded, through rules in a table of the runtime's own; other tables untouched, a FORWARD policy of DROP coexisted with",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.4",
        suite: "stage09",
        module: "m4_ports",
        title: "-p HOST:CTR: reachable from outside, from the host's loopback and from a container (hairpin); a taken port refused; rules and port go with the container; -P",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.5",
        suite: "stage09",
        module: "m5_dns",
        title: "name files: resolv.conf without the host's loopback nameservers, --dns, --dns-search, --dns-option; hosts with --add-host; hostname",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.6",
        suite: "stage09",
        module: "m6_networks",
        title: "user-defined networks: create, ls, inspect, rm; members reach each other by name, other networks not; nothing left after",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.7",
        suite: "stage09",
        module: "m7_recovery",
        title: "a killed container's address, port, rules and veth reclaimed by the next command",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.8",
        suite: "stage09",
        module: "m8_rootless",
        title: "rootless: pasta carries an ordinary user's container out and its -p ports in; without pasta, one line and none",
        chapter: "book/src/stage09-network.md",
    },
    Milestone {
        id: "09.9",
        suite: "stage09",
        module: "m9_join",
        title: "--network container:NAME: another running container's network, shared",
        chapter: "book/src/stage09-network.md",
    },
];

/// The suites, in order, each once.
pub fn suites() -> Vec<&'static str> {
    let mut suites: Vec<&str> = MILESTONES.iter().map(|m| m.suite).collect();
    suites.dedup();
    suites
}
