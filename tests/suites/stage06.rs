//! Stage 06 suite: copy-on-write root filesystems.
//!
//! Runs `$RUNTIME_BIN` (default: stage06-overlay) as
//! `BIN run [--root DIR] (--rootfs DIR | --layer DIR...) [stage 05 options] -- COMMAND`.
//! Every run gets a data directory of the test's own through
//! `MYRUNTIME_ROOT`. As root:
//!
//! ```sh
//! make test-stage STAGE=06 [BIN=/path/to/yours]
//! ```

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use harness::host;
use harness::{Rootfs, Runtime};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage06-overlay").with_rootfs()
}

fn json(out: &harness::Outcome) -> serde_json::Value {
    out.json()
}

/// Every file of a tree with its type, mode, owner and content: what must not
/// change.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else {
                format!(
                    "file {:x}",
                    md5ish(&std::fs::read(&path).unwrap_or_default())
                )
            };
            let key = path.strip_prefix(root).unwrap().to_path_buf();
            all.insert(
                key,
                format!("{what} {:o} {}:{}", meta.mode(), meta.uid(), meta.gid()),
            );
        }
    }
    all
}

/// A cheap content fingerprint (FNV-1a): a change in any byte shows.
fn md5ish(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The containers' directories under the suite's data directory.
fn container_dirs() -> Vec<PathBuf> {
    entries(&harness::store_root().join("containers"))
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    all.sort();
    all
}

/// A data directory of one test's own: what it holds after a run is that
/// run's alone (the suite's shared one also holds what tests running beside
/// it are doing).
struct OwnStore(tempfile::TempDir);

impl OwnStore {
    fn new() -> OwnStore {
        OwnStore(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }

    /// What is under containers/: directories and their lock files.
    fn containers(&self) -> Vec<PathBuf> {
        entries(&self.0.path().join("containers"))
    }
}

/// Milestone 06.1: the rootfs on disk is never modified.
mod m1_copy_on_write {
    use super::*;

    #[rstest]
    fn writes_deletes_and_renames_inside_leave_the_rootfs_as_it_was(rt: Runtime) {
        let rootfs = Rootfs::private();
        let before = snapshot(rootfs.path());
        let script = "echo changed > /etc/hostname.new && echo more >> /etc/passwd \
                      && rm /bin/busybox.copy && mkdir /made && mv /etc/group /etc/group.moved \
                      && rm -r /home && chmod 700 /root && echo done";
        std::fs::copy(
            rootfs.join("/bin/busybox"),
            rootfs.join("/bin/busybox.copy"),
        )
        .unwrap();
        let before = {
            let mut b = before;
            b.extend(snapshot(rootfs.path()));
            b
        };
        let out = rt.run_in(&rootfs).command(["sh", "-c", script]).output();
        out.expect_code(0, "the changes succeed inside");
        harness::expect_eq!(out.stdout(), "done\n");
        let after = snapshot(rootfs.path());
        let changed: Vec<_> = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(after.keys().filter(|k| !before.contains_key(*k)).cloned())
            .collect();
        harness::expect_eq!(changed, Vec::<PathBuf>::new(), "the rootfs on disk changed");
    }

    #[rstest]
    fn changes_live_in_the_containers_upper_directory(rt: Runtime) {
        let rootfs = Rootfs::private();
        let mut running = rt
            .run_in(&rootfs)
            .command([
                "sh",
                "-c",
                "echo new > /new-file && rm /etc/group && echo ready && exec sleep 30",
            ])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let dirs = container_dirs();
        let upper = dirs
            .iter()
            .map(|d| d.join("upper"))
            .find(|u| u.join("new-file").exists())
            .unwrap_or_else(|| panic!("no container's upper directory holds /new-file: {dirs:?}"));
        let whiteout =
            std::fs::symlink_metadata(upper.join("etc/group")).expect("a whiteout for /etc/group");
        assert!(
            whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
            "a deleted file leaves a 0:0 character device in the upper directory"
        );
        assert!(
            rootfs.join("/etc/group").exists(),
            "and stays in the rootfs"
        );
    }
}

/// Milestone 06.2: two containers from one rootfs never see each other's
/// writes.
mod m2_isolation {
    use super::*;

    #[rstest]
    fn two_containers_from_one_rootfs_keep_their_writes_apart(rt: Runtime) {
        let rootfs = Rootfs::private();
        let mut first = rt
            .run_in(&rootfs)
            .command([
                "sh",
                "-c",
                "echo one > /etc/written-by-first && echo ready && exec sleep 30",
            ])
            .spawn();
        harness::expect_eq!(first.read_line(), "ready");
        let second = rt
            .run_in(&rootfs)
            .probe(&["read", "/etc/written-by-first"])
            .output();
        harness::expect_eq!(
            json(&second)["errno"],
            "ENOENT",
            "the second container sees the first one's write\n{}",
            second.describe()
        );
        assert!(!rootfs.join("/etc/written-by-first").exists());
    }
}

/// Milestone 06.3: the overlay stays inside; the upper directory goes with
/// the container, also when it fails to start.
mod m3_lifecycle {
    use super::*;

    #[rstest]
    fn the_overlay_is_not_visible_on_the_host(rt: Runtime) {
        let mut running = rt.run().probe(&["signals"]).spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let overlays: Vec<String> = host::mounts()
            .into_iter()
            .filter(|m| m.fs_type == "overlay" && m.mount_point.contains("myruntime-suite"))
            .map(|m| m.mount_point)
            .collect();
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
        harness::expect_eq!(
            overlays,
            Vec::<String>::new(),
            "the container's overlay is mounted on the host"
        );
    }

    /// SIGKILL cannot be caught: a runtime killed at any point of a start
    /// leaves its container's directory. It holds a lock on it while alive;
    /// the next start takes the locks nobody holds, and removes what they
    /// name. 200 kills at spread-out moments, then one start: nothing left.
    #[rstest]
    fn what_a_killed_runtime_left_is_reclaimed_by_the_next_start(rt: Runtime) {
        let store = OwnStore::new();
        let parent = host::CgroupParent::new();
        for round in 0..200u64 {
            let running = rt
                .run()
                .env("MYRUNTIME_ROOT", store.path())
                .args(["--cgroup-parent", &parent.0])
                .probe(&["sleep", "30"])
                .spawn();
            // From at once to 20 ms in: before, during and after the start.
            std::thread::sleep(std::time::Duration::from_micros((round * 997) % 20_000));
            running.signal(nix::sys::signal::Signal::SIGKILL);
            drop(running);
        }
        rt.run()
            .env("MYRUNTIME_ROOT", store.path())
            .args(["--cgroup-parent", &parent.0])
            .probe(&["exit", "0"])
            .output()
            .expect_code(0, "the next start runs");
        harness::expect_eq!(
            store.containers(),
            Vec::<PathBuf>::new(),
            "killed runtimes' directories (or locks) outlived the next start"
        );
        harness::expect_eq!(host::mounts_under(store.0.path()), Vec::<String>::new());
        harness::expect_eq!(
            parent.children("pids"),
            Vec::<String>::new(),
            "cgroups were left"
        );
    }

    /// While the container runs, what it writes is in its upper directory
    /// (`$MYRUNTIME_ROOT/containers/ID/upper`), and the rootfs is untouched;
    /// when it ends, the directory goes.
    #[rstest]
    fn the_upper_directory_holds_its_writes_and_goes_with_the_container(rt: Runtime) {
        let store = OwnStore::new();
        let rootfs = Rootfs::private();
        let tag = host::unique_tag("upper");
        let mut running = rt
            .run_in(&rootfs)
            .env("MYRUNTIME_ROOT", store.path())
            .command([
                "sh",
                "-c",
                &format!("echo x > /{tag} && exec /probe signals"),
            ])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let holding: Vec<PathBuf> = store
            .containers()
            .into_iter()
            .filter(|d| d.join("upper").join(&tag).exists())
            .collect();
        let in_rootfs = rootfs.join(&format!("/{tag}")).exists();
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
        harness::expect_eq!(
            holding.len(),
            1,
            "while it runs, the container's write must be in its upper directory, \
             $MYRUNTIME_ROOT/containers/ID/upper/{tag}: {:?}",
            store.containers()
        );
        assert!(!in_rootfs, "the write reached the rootfs itself");
        harness::expect_eq!(
            store.containers(),
            Vec::<PathBuf>::new(),
            "the upper directory outlived its container"
        );
    }

    #[rstest]
    fn a_failed_start_leaves_no_upper_directory_and_no_mount(rt: Runtime) {
        let rootfs = Rootfs::private();
        let store = OwnStore::new();
        let out = rt
            .run_in(&rootfs)
            .env("MYRUNTIME_ROOT", store.path())
            .command(["/no/such/command"])
            .output();
        out.expect_code(127, "the command is not in the rootfs");
        harness::expect_eq!(
            store.containers(),
            Vec::<PathBuf>::new(),
            "a failed start left its directory (or its lock)"
        );
        harness::expect_eq!(host::mounts_under(store.0.path()), Vec::<String>::new());
    }
}

/// Milestone 06.4: many layers, lowest first.
mod m4_layers {
    use super::*;

    #[rstest]
    fn a_hundred_and_twenty_layers_stack_in_order(rt: Runtime) {
        let rootfs = Rootfs::private();
        let layers = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = Vec::new();
        for i in 0..120 {
            // Long names on purpose: the mount must not hit the page limit.
            let dir = layers
                .path()
                .join(format!("a-rather-long-layer-directory-name-{i:03}"));
            std::fs::create_dir_all(dir.join("layers")).unwrap();
            std::fs::write(dir.join(format!("layers/{i}")), "").unwrap();
            std::fs::write(dir.join("top"), i.to_string()).unwrap();
            args.extend(["--layer".into(), dir.display().to_string()]);
        }
        let listed = rt
            .run_in(&rootfs)
            .args(&args)
            .probe(&["ls", "/layers"])
            .output();
        listed.expect_code(0, "a container on 121 lower layers starts");
        harness::expect_eq!(
            json(&listed)["entries"].as_array().unwrap().len(),
            120,
            "every layer's file is there"
        );
        let top = rt
            .run_in(&rootfs)
            .args(&args)
            .command(["cat", "/top"])
            .output();
        harness::expect_eq!(
            top.stdout(),
            "119",
            "the last --layer is the highest\n{}",
            top.describe()
        );
    }

    #[test]
    fn layers_alone_make_a_root_filesystem() {
        let rootfs = Rootfs::private();
        let extra = tempfile::tempdir().unwrap();
        std::fs::write(extra.path().join("from-layer"), "layer").unwrap();
        // No --rootfs: the test rootfs is a --layer too.
        let out = Runtime::for_suite("stage06-overlay")
            .without_rootfs()
            .run()
            .args(["--layer", &rootfs.path().display().to_string()])
            .args(["--layer", &extra.path().display().to_string()])
            .command(["/probe", "read", "/from-layer"])
            .output();
        harness::expect_eq!(json(&out)["bytes"], 5);
    }
}

/// Milestone 06.5: bad layers are refused and leave nothing.
mod m5_bad_input {
    use super::*;

    #[rstest]
    fn a_missing_layer_is_refused(rt: Runtime) {
        let rootfs = Rootfs::private();
        let store = OwnStore::new();
        rt.run_in(&rootfs)
            .env("MYRUNTIME_ROOT", store.path())
            .args(["--layer", "/no/such/layer"])
            .probe(&["report"])
            .output()
            .expect_refused(&["/no/such/layer"]);
        harness::expect_eq!(
            store.containers(),
            Vec::<PathBuf>::new(),
            "a refused start left a directory"
        );
    }

    /// The data directory is root-only, and may sit under a directory only
    /// root can pass: a user-namespaced container's root (host uid 100000)
    /// never walks there; the runtime opens the layers and the container's
    /// directory and hands them over as descriptors.
    #[rstest]
    fn a_root_only_store_serves_a_user_namespaced_container_too(rt: Runtime) {
        use std::os::unix::fs::PermissionsExt;
        let rootfs = Rootfs::shared();
        let top = tempfile::tempdir().unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = top.path().join("store");
        let out = rt
            .run_in(rootfs)
            .env("MYRUNTIME_ROOT", store.to_str().unwrap())
            .args(["--uidmap", "0:100000:65536"])
            .command(["sh", "-c", "echo x > /written && /probe report"])
            .output();
        out.expect_code(0, "the container runs, and writes to its upper directory");
        assert!(
            out.stdout().contains("\"uid_map\":\"         0     100000"),
            "{}",
            out.describe()
        );
        let mode = std::fs::metadata(&store).unwrap().mode() & 0o777;
        harness::expect_eq!(mode, 0o700, "the data directory is root-only");
        harness::expect_eq!(entries(&store.join("containers")), Vec::<PathBuf>::new());
    }

    #[test]
    fn no_rootfs_and_no_layer_is_refused() {
        let out = Runtime::for_suite("stage06-overlay")
            .without_rootfs()
            .run()
            .command(["/bin/true"])
            .output();
        harness::expect_ne!(out.code(), 0);
        assert!(
            out.stderr().contains("--rootfs") || out.stderr().contains("--layer"),
            "{}",
            out.describe()
        );
    }
}
