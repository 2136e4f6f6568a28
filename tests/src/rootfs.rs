//! Root filesystems for the suites: copies of the test rootfs
//! (`scripts/setup-test-env.sh` makes it), each holding the probe at
//! `/probe`.
//!
//! [`Rootfs::shared`] is one copy per test process, for tests that only
//! read; [`Rootfs::private`] is a fresh copy for a test that changes files.
//! All of them live under the system's temporary directory, readable by any
//! user (the rootless tests need that), and are removed when they are
//! dropped or, for the shared one, when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming the test rootfs to copy from.
pub const TEST_ROOTFS: &str = "MYRUNTIME_TEST_ROOTFS";

/// A copy of the test rootfs with the probe at `/probe`.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
}

/// Where the probe is inside every rootfs the suites make.
pub const PROBE_INSIDE: &str = "/probe";

impl Rootfs {
    /// The copy this test process shares between tests that only read.
    pub fn shared() -> &'static Rootfs {
        static SHARED: OnceLock<Rootfs> = OnceLock::new();
        SHARED.get_or_init(|| {
            let rootfs = Rootfs::make("shared");
            let path = rootfs.path.clone();
            REMOVE_AT_EXIT.set(path).expect("set once");
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(remove_shared_at_exit) };
            rootfs
        })
    }

    /// A fresh copy, removed when dropped.
    pub fn private() -> Rootfs {
        static N: AtomicU32 = AtomicU32::new(0);
        Rootfs::make(&N.fetch_add(1, Ordering::Relaxed).to_string())
    }

    /// A fresh copy owned by `uid`:`gid`, as a rootless user's own rootfs
    /// (unpacked by that user) is: inside its user namespace, root's.
    pub fn private_owned_by(uid: u32, gid: u32) -> Rootfs {
        let rootfs = Rootfs::private();
        let status = Command::new("chown")
            .args(["-R", "-h", &format!("{uid}:{gid}"), "--"])
            .arg(&rootfs.path)
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "cannot chown the rootfs copy to {uid}:{gid}"
        );
        rootfs
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `path` inside this rootfs.
    pub fn join(&self, path: &str) -> PathBuf {
        self.path.join(path.trim_start_matches('/'))
    }

    fn make(name: &str) -> Rootfs {
        let base = base();
        let path =
            std::env::temp_dir().join(format!("myruntime-suite-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let status = Command::new("cp")
            .args(["-a", "--"])
            .arg(&base)
            .arg(&path)
            .status()
            .expect("run cp");
        assert!(
            status.success(),
            "cannot copy the test rootfs {} to {}",
            base.display(),
            path.display()
        );
        let probe = path.join(PROBE_INSIDE.trim_start_matches('/'));
        std::fs::copy(crate::probe(), &probe).expect("copy the probe into the rootfs");
        // Everyone may read and enter it: the rootless suites run as other users.
        let _ = Command::new("chmod")
            .args(["a+rx"])
            .arg(&path)
            .arg(&probe)
            .status();
        Rootfs { path }
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

static REMOVE_AT_EXIT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_shared_at_exit() {
    if let Some(path) = REMOVE_AT_EXIT.get() {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The test rootfs the copies are made from.
pub fn base() -> PathBuf {
    let path = std::env::var_os(TEST_ROOTFS)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".cache/test-env/rootfs"));
    if !path.join("bin/sh").exists() {
        panic!(
            "\n\nthe test rootfs is missing ({} has no bin/sh).\n\
             run `scripts/setup-test-env.sh --rootfs-only`, or set {TEST_ROOTFS} to a root filesystem.\n",
            path.display()
        );
    }
    path
}
