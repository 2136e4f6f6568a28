//! Stage 04 suite: users, user namespaces, rootless containers, IPC.
//!
//! Runs `$RUNTIME_BIN` (default: stage04-user) as
//! `BIN run --rootfs DIR [--user U[:G]] [--uidmap C:H:S] [--gidmap C:H:S] [--userns] [stage 03 options] -- COMMAND`.
//! The rootless tests make users of their own (useradd; deleted at the
//! end) and start the runtime as them. As root:
//!
//! ```sh
//! make test-stage STAGE=04 [BIN=/path/to/yours]
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use harness::host::{self, RootSubIds};
use harness::{Rootfs, Runtime};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage04-user").with_rootfs()
}

fn json(out: &harness::Outcome) -> serde_json::Value {
    out.json()
}

/// A host directory anyone may write to, for files made by mapped users.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// The uid_map's lines as (container, host, size).
fn map_lines(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[1], f[2]))
        })
        .collect()
}

/// Milestone 04.1: `--user` runs COMMAND as another user.
mod m1_user {
    use super::*;

    #[rstest]
    fn a_user_by_name_from_the_rootfs(rt: Runtime) {
        let report = rt
            .run()
            .args(["--user", "nobody"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(
            (report.uid, report.euid, report.gid, report.egid),
            (65534, 65534, 65534, 65534)
        );
        harness::expect_eq!(
            report.env.get("HOME").map(String::as_str),
            Some("/nonexistent"),
            "HOME from /etc/passwd"
        );
        harness::expect_eq!(
            report.capabilities.get("effective").map(String::as_str),
            Some("0000000000000000"),
            "a user other than root holds no capability"
        );
    }

    #[rstest]
    fn numeric_ids_need_no_entry(rt: Runtime) {
        let report = rt
            .run()
            .args(["--user", "1234:5678"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!((report.uid, report.gid), (1234, 5678));
        harness::expect_eq!(
            report.groups,
            [5678],
            "supplementary groups: the primary only"
        );
    }

    #[rstest]
    fn supplementary_groups_come_from_the_rootfs(rt: Runtime) {
        let rootfs = Rootfs::private();
        let mut passwd = std::fs::read_to_string(rootfs.join("/etc/passwd")).unwrap();
        passwd.push_str("app:x:1500:1500:app:/home/app:/bin/sh\n");
        std::fs::write(rootfs.join("/etc/passwd"), passwd).unwrap();
        let mut group = std::fs::read_to_string(rootfs.join("/etc/group")).unwrap();
        group.push_str("app:x:1500:\nstaff:x:50:app\nvideo:x:44:someone,app\n");
        std::fs::write(rootfs.join("/etc/group"), group).unwrap();
        let report = rt
            .run_in(&rootfs)
            .args(["-u", "app"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!((report.uid, report.gid), (1500, 1500));
        let mut groups = report.groups.clone();
        groups.sort_unstable();
        harness::expect_eq!(groups, [44, 50, 1500]);
        harness::expect_eq!(
            report.env.get("HOME").map(String::as_str),
            Some("/home/app")
        );
    }

    #[rstest]
    fn an_unknown_user_is_refused(rt: Runtime) {
        let out = rt
            .run()
            .args(["--user", "no-such-user"])
            .probe(&["report"])
            .output();
        out.expect_refused(&["no-such-user"]);
    }

    /// `(uid_t)-1` is "leave unchanged" to setresuid(2): asked for, it would
    /// keep COMMAND root. Refused, as any id the kernel cannot switch to,
    /// whether it comes from the command line or from the rootfs's own
    /// /etc/passwd.
    #[rstest]
    #[case::minus_one_as_unsigned("4294967295")]
    #[case::group("0:4294967295")]
    #[case::negative("-1")]
    #[case::past_2_31("2147483648")]
    fn an_id_that_cannot_be_switched_to_is_refused(rt: Runtime, #[case] user: &str) {
        let out = rt.run().args(["--user", user]).probe(&["report"]).output();
        out.expect_refused(&["0-2147483647"]);
    }

    #[rstest]
    fn a_passwd_entry_with_such_an_id_is_refused_too(rt: Runtime) {
        let rootfs = Rootfs::private();
        let passwd = rootfs.join("/etc/passwd");
        let mut text = std::fs::read_to_string(&passwd).unwrap_or_default();
        text.push_str("evil:x:4294967295:0::/:/bin/sh\n");
        std::fs::write(&passwd, text).unwrap();
        let out = rt
            .run_in(&rootfs)
            .args(["--user", "evil"])
            .probe(&["report"])
            .output();
        out.expect_refused(&["4294967295"]);
    }

    #[rstest]
    fn without_user_or_maps_root_keeps_the_hosts_ids(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_eq!(report.uid, 0);
        harness::expect_eq!(
            report.namespaces.get("user"),
            host::namespaces().get("user"),
            "as with docker, root gets no user namespace unless asked"
        );
    }
}

/// Milestone 04.2: user namespaces: root inside, nobody outside.
mod m2_userns {
    use super::*;

    #[rstest]
    fn a_uidmap_makes_root_inside_an_unprivileged_id_outside(rt: Runtime) {
        let dir = open_dir();
        let spec = format!("{}:/data", dir.path().display());
        let out = rt
            .run()
            .args(["--uidmap", "0:100000:65536", "-v", &spec])
            .probe(&["write", "/data/made-by-root"])
            .output();
        harness::expect_eq!(json(&out)["ok"], true);
        harness::expect_eq!(
            host::owner(&dir.path().join("made-by-root")),
            (100000, 100000),
            "a file root makes inside belongs to the mapped host id (gids follow --uidmap)"
        );
        let report = rt
            .run()
            .args(["--uidmap", "0:100000:65536"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(report.uid, 0, "root inside");
        harness::expect_eq!(map_lines(&report.uid_map), [(0, 100000, 65536)]);
        harness::expect_ne!(
            report.namespaces.get("user"),
            host::namespaces().get("user")
        );
    }

    #[rstest]
    fn a_gidmap_of_its_own(rt: Runtime) {
        let report = rt
            .run()
            .args(["--uidmap", "0:100000:1000", "--gidmap", "0:200000:1000"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(map_lines(&report.gid_map), [(0, 200000, 1000)]);
    }

    #[rstest]
    fn userns_takes_the_subordinate_ids(rt: Runtime) {
        let subids = RootSubIds::ensure();
        let report = rt
            .run()
            .arg("--userns")
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(map_lines(&report.uid_map), [(0, subids.start, 65536)]);
        harness::expect_eq!(map_lines(&report.gid_map), [(0, subids.start, 65536)]);
        harness::expect_eq!(report.uid, 0);
    }

    #[rstest]
    fn root_in_a_user_namespace_cannot_reach_host_devices(rt: Runtime) {
        let out = rt
            .run()
            .args(["--uidmap", "0:100000:65536"])
            .probe(&["mknod", "/tmp/disk", "8", "0"])
            .output();
        harness::expect_eq!(
            json(&out)["ok"],
            false,
            "root inside made a block device node\n{}",
            out.describe()
        );
        harness::expect_eq!(json(&out)["errno"], "EPERM");
    }

    #[rstest]
    fn root_in_a_user_namespace_cannot_rename_the_host(rt: Runtime) {
        let before = host::hostname();
        let out = rt
            .run()
            .args(["--uidmap", "0:100000:65536"])
            .probe(&["sethostname", "renamed-inside"])
            .output();
        out.expect_code(0, "its own UTS namespace it may rename");
        harness::expect_eq!(host::hostname(), before);
        let out = rt
            .run()
            .args(["--uidmap", "0:100000:65536"])
            .probe(&["write", "/proc/sys/kernel/hostname"])
            .output();
        harness::expect_eq!(json(&out)["ok"], false);
    }

    #[rstest]
    fn no_descriptor_crosses_into_a_user_namespace_either(rt: Runtime) {
        let out = rt
            .run()
            .with_open_fd(7, Path::new("/"))
            .args(["--uidmap", "0:100000:65536"])
            .probe(&["fds"])
            .output();
        out.expect_code(0, "the probe lists its descriptors");
        let fds = json(&out)["fds"].clone();
        let numbers: Vec<&String> = fds.as_object().expect("a map").keys().collect();
        harness::expect_eq!(numbers, ["0", "1", "2"], "{fds}\n{}", out.describe());
    }

    #[rstest]
    #[case::gidmap_alone(&["--gidmap", "0:100000:10"][..], "--uidmap")]
    #[case::bad_map(&["--uidmap", "0:100000"][..], "CONTAINER:HOST:SIZE")]
    fn bad_maps_are_refused(rt: Runtime, #[case] args: &[&str], #[case] what: &str) {
        let out = rt.run().args(args).probe(&["report"]).output();
        harness::expect_ne!(out.code(), 0);
        assert!(out.stdout().is_empty(), "{}", out.describe());
        assert!(out.stderr().contains(what), "{}", out.describe());
    }
}

/// Milestone 04.3: an ordinary user runs containers.
mod m3_rootless {
    use super::*;

    /// A rootless user's rootfs is its own (it unpacked it): inside its user
    /// namespace, root's.
    fn own_rootfs(user: &host::TempUser) -> Rootfs {
        Rootfs::private_owned_by(user.uid, user.gid)
    }

    #[rstest]
    fn an_ordinary_user_is_root_inside_and_itself_outside(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = own_rootfs(user);
        let (sub, count) = user
            .subordinate_uids()
            .expect("useradd gives a normal user subordinate ids");
        let dir = open_dir();
        let spec = format!("{}:/data", dir.path().display());
        let out = rt
            .run_in(&rootfs)
            .as_user(user)
            .args(["-v", &spec])
            .probe(&["write", "/data/made-rootless"])
            .output();
        harness::expect_eq!(json(&out)["ok"], true);
        harness::expect_eq!(host::owner(&dir.path().join("made-rootless")).0, user.uid);
        let report = rt
            .run_in(&rootfs)
            .as_user(user)
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(report.uid, 0, "the user is root inside");
        harness::expect_eq!(
            map_lines(&report.uid_map),
            [(0, user.uid, 1), (1, sub, count)]
        );
    }

    #[rstest]
    fn everything_of_stages_01_to_03_works_rootless(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = own_rootfs(user);
        let out = rt
            .run_in(&rootfs)
            .as_user(user)
            .args(["--hostname", "rootless"])
            .probe(&["report"])
            .output();
        out.expect_code(0, "a rootless container runs");
        let report = out.report();
        harness::expect_eq!(report.hostname, "rootless");
        harness::expect_eq!(report.pid, 1);
        harness::expect_eq!(report.visible_pids, [1], "a fresh /proc");
        for point in [
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
        ] {
            assert!(
                report.mounts.iter().any(|m| m.mount_point == point),
                "{point} not mounted rootless"
            );
        }
        let dev = rt
            .run_in(&rootfs)
            .as_user(user)
            .probe(&["ls", "/dev"])
            .output();
        assert!(
            json(&dev)["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "null"),
            "/dev/null exists rootless (bound from the host)\n{}",
            dev.describe()
        );
        let null = rt
            .run_in(&rootfs)
            .as_user(user)
            .probe(&["write", "/dev/null"])
            .output();
        harness::expect_eq!(json(&null)["ok"], true);
        let marker = tempfile::NamedTempFile::new().unwrap();
        let escape = rt
            .run_in(&rootfs)
            .as_user(user)
            .probe(&["escape", &marker.path().to_string_lossy()])
            .output();
        harness::expect_eq!(json(&escape)["escaped"], false);
    }

    #[rstest]
    fn a_rootless_user_switch_lands_on_a_subordinate_id(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = own_rootfs(user);
        let (sub, _) = user.subordinate_uids().unwrap();
        let dir = open_dir();
        let spec = format!("{}:/data", dir.path().display());
        let out = rt
            .run_in(&rootfs)
            .as_user(user)
            .args(["-v", &spec, "--user", "1000:1000"])
            .probe(&["write", "/data/made-by-1000"])
            .output();
        harness::expect_eq!(json(&out)["ok"], true);
        harness::expect_eq!(host::owner(&dir.path().join("made-by-1000")).0, sub + 999);
    }

    #[rstest]
    fn without_subordinate_ids_only_the_user_is_mapped(rt: Runtime) {
        let user = host::system_user();
        let rootfs = own_rootfs(user);
        let report = rt
            .run_in(&rootfs)
            .as_user(user)
            .probe(&["report"])
            .output()
            .report();
        harness::expect_eq!(map_lines(&report.uid_map), [(0, user.uid, 1)]);
        harness::expect_eq!(report.uid, 0);
    }

    #[rstest]
    fn what_cannot_work_rootless_is_refused_and_says_so(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = own_rootfs(user);
        let out = rt
            .run_in(&rootfs)
            .as_user(user)
            .args(["--uidmap", "0:0:1"])
            .probe(&["report"])
            .output();
        harness::expect_ne!(
            out.code(),
            0,
            "mapping the host's root must be refused\n{}",
            out.describe()
        );
        assert!(
            out.stderr().contains("rootless"),
            "the message must say why\n{}",
            out.describe()
        );
        let single = host::system_user();
        let single_rootfs = own_rootfs(single);
        let out = rt
            .run_in(&single_rootfs)
            .as_user(single)
            .args(["--user", "1000"])
            .probe(&["report"])
            .output();
        harness::expect_ne!(out.code(), 0, "uid 1000 is not mapped\n{}", out.describe());
        assert!(out.stderr().contains("not mapped"), "{}", out.describe());
    }
}

/// Milestone 04.4: the IPC namespace.
mod m4_ipc {
    use super::*;

    /// A System V message queue and a POSIX message queue on the host,
    /// removed when dropped.
    struct HostQueues {
        msg: i32,
        name: std::ffi::CString,
    }

    impl HostQueues {
        fn make(key: i32, name: &str) -> HostQueues {
            let name = std::ffi::CString::new(format!("/{name}")).unwrap();
            // SAFETY: plain IPC calls with valid arguments.
            let (msg, mq) = unsafe {
                (
                    libc::msgget(key, libc::IPC_CREAT | 0o600),
                    libc::mq_open(
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_RDWR,
                        0o600,
                        std::ptr::null::<libc::mq_attr>(),
                    ),
                )
            };
            assert!(msg >= 0 && mq >= 0, "cannot make the host's queues");
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::mq_close(mq) };
            HostQueues { msg, name }
        }
    }

    impl Drop for HostQueues {
        fn drop(&mut self) {
            // SAFETY: removing what `make` created.
            unsafe {
                libc::msgctl(self.msg, libc::IPC_RMID, std::ptr::null_mut());
                libc::mq_unlink(self.name.as_ptr());
            }
        }
    }

    /// The container's queues, if they reached the host: removed on drop.
    struct LeakedQueues {
        key: i32,
        name: std::ffi::CString,
    }

    impl Drop for LeakedQueues {
        fn drop(&mut self) {
            // SAFETY: looking up and removing a queue by key and by name;
            // both fail harmlessly when the queue is not on the host.
            unsafe {
                let id = libc::msgget(self.key, 0);
                if id >= 0 {
                    libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
                }
                libc::mq_unlink(self.name.as_ptr());
            }
        }
    }

    fn host_mq_exists(name: &str) -> bool {
        let name = std::ffi::CString::new(format!("/{name}")).unwrap();
        // SAFETY: opening without O_CREAT only looks.
        let mq = unsafe { libc::mq_open(name.as_ptr(), libc::O_RDONLY) };
        if mq >= 0 {
            // SAFETY: closing what was opened.
            unsafe { libc::mq_close(mq) };
        }
        mq >= 0
    }

    #[rstest]
    fn ipc_objects_are_invisible_in_both_directions(rt: Runtime) {
        let pid = std::process::id() as i32;
        let (host_key, ctr_key) = (0x4d52_0000 | (pid & 0xffff), 0x4d53_0000 | (pid & 0xffff));
        let (host_name, ctr_name) = (format!("myrt-host-{pid}"), format!("myrt-ctr-{pid}"));
        let _host = HostQueues::make(host_key, &host_name);
        // A runtime without an IPC namespace lets the probe make its queues
        // on the host: removed when the test ends, passed or failed.
        let _leaked = LeakedQueues {
            key: ctr_key,
            name: std::ffi::CString::new(format!("/{ctr_name}")).unwrap(),
        };

        let mut running = rt
            .run()
            .probe(&["ipc", &ctr_key.to_string(), &ctr_name])
            .spawn();
        let seen: serde_json::Value = serde_json::from_str(&running.read_line()).unwrap();
        harness::expect_eq!(running.read_line(), "ready", "the probe made its queues");
        let keys: Vec<i64> = serde_json::from_value(seen["msg_keys"].clone()).unwrap();
        assert!(
            !keys.contains(&(host_key as i64)),
            "the host's message queue is visible inside"
        );
        assert!(
            !seen["mqueues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q == &host_name),
            "the host's POSIX queue is visible inside: {seen}"
        );
        assert!(
            !probe::sysv_keys("msg").contains(&(ctr_key as i64)),
            "the container's message queue is visible on the host"
        );
        assert!(
            !host_mq_exists(&ctr_name),
            "the container's POSIX queue is visible on the host"
        );
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
    }

    #[rstest]
    fn the_ipc_namespace_is_new(rt: Runtime) {
        let report = rt.run().probe(&["report"]).output().report();
        harness::expect_ne!(report.namespaces.get("ipc"), host::namespaces().get("ipc"));
    }
}
