//! The harness the privileged suites share.
//!
//! A suite runs an external binary (its stage's by default; any other with
//! `RUNTIME_BIN=/path/to/yours`) the way a user would, with the static
//! [`probe`] as COMMAND, and asserts on what the probe reports from inside.
//! Failures are written for a learner pointing the suite at their own
//! runtime: they say what was run, what came back, and what to look at.
//!
//! Everything a test starts is killed and reaped when the test ends, passed
//! or failed (see [`Running`]).

pub mod host;
pub mod hostile;
pub mod milestones;
pub mod registry;
pub mod report;
pub mod rootfs;
mod run;
pub mod transcripts;

pub use rootfs::Rootfs;
pub use run::{Outcome, Run, Running};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming the runtime under test.
pub const RUNTIME_BIN: &str = "RUNTIME_BIN";
/// Set to 1 when the runtime under test needs `--rootfs` (the stage binaries
/// from stage 03 on): the suites of stages 01 and 02 then run every
/// container in a copy of the test rootfs.
pub const RUNTIME_NEEDS_ROOTFS: &str = "RUNTIME_NEEDS_ROOTFS";
/// The environment variable naming the probe binary (default: the one
/// `make probe` builds).
pub const PROBE_BIN: &str = "PROBE_BIN";

/// What a test prints when this host cannot check what it proves (a cgroup
/// v2 delegation on a v1 host): it returns without asserting, and `make
/// progress` reads the line and counts the test as not checked here, neither
/// passed nor failed.
pub const NOT_CHECKABLE_HERE: &str = "harness: not checkable on this host:";

/// Say that this host cannot check what the calling test proves, and why
/// (and where it is checked instead). The test must return after it.
pub fn not_checkable_here(why: &str) {
    println!("{NOT_CHECKABLE_HERE} {why}");
}

/// What every run of a runtime gets in its environment: the defaults the
/// stages had before the network and the hardening existed. The host's
/// network: a runtime whose default is a bridge (stage 09, as root) must
/// not make links and firewall rules in the host's namespace for every
/// test, nor need pasta for every rootless one. Every capability: before
/// the final stage a container's root was the host's, and the stages'
/// suites rely on it (a `sethostname` inside). The network and final
/// suites clear them to test the real defaults. A runtime that has neither
/// knob ignores them.
pub const STAGE_DEFAULTS: [(&str, &str); 2] = [
    ("MYRUNTIME_NETWORK", "host"),
    ("MYRUNTIME_DEFAULT_CAPABILITIES", "ALL"),
];

/// Fail at once, with a clear message, unless running as root.
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "\n\nthis suite is privileged: it creates namespaces, which needs root.\n\
             run it as root, e.g. `sudo make test-integration`, or `sudo -E make test-stage STAGE=.. BIN=..`\n"
        );
    }
}

/// The runtime binary under test.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub bin: PathBuf,
    /// Every run gets `--rootfs` (the shared copy of the test rootfs).
    rootfs: bool,
}

impl Runtime {
    /// The runtime a suite tests: `$RUNTIME_BIN`, or `default_bin` from this
    /// workspace's build. Checks for root and for a runnable binary first.
    pub fn for_suite(default_bin: &str) -> Runtime {
        require_root();
        report::install();
        let bin = match std::env::var_os(RUNTIME_BIN).filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => workspace_bin(default_bin),
        };
        check_runnable(&bin);
        host::remove_runtime_leftovers_at_exit();
        let rootfs = std::env::var(RUNTIME_NEEDS_ROOTFS).is_ok_and(|v| v == "1");
        Runtime { bin, rootfs }
    }

    /// Run every container in a root filesystem (the suites of stage 03 on).
    pub fn with_rootfs(mut self) -> Runtime {
        self.rootfs = true;
        self
    }

    /// Give no `--rootfs` of its own (a test that gives layers, or none).
    pub fn without_rootfs(mut self) -> Runtime {
        self.rootfs = false;
        self
    }

    /// `BIN run ARGS... -- COMMAND...`, to be completed by the test; with
    /// `--rootfs` when the runtime needs one.
    pub fn run(&self) -> Run {
        let run = Run::new(&self.bin).arg("run");
        if self.rootfs {
            run.rootfs(Rootfs::shared())
        } else {
            run
        }
    }

    /// `BIN VERB ...` for verbs other than `run` (`pull`, `images`, `rmi`).
    pub fn verb(&self, verb: &str) -> Run {
        let run = Run::new(&self.bin).arg(verb);
        if verb == "run" && self.rootfs {
            run.rootfs(Rootfs::shared())
        } else {
            run
        }
    }

    /// `BIN run --rootfs ROOTFS ...`, in a given root filesystem.
    pub fn run_in(&self, rootfs: &Rootfs) -> Run {
        self.run_in_path(rootfs.path())
    }

    /// `BIN run --rootfs PATH ...`, whatever PATH is (bad-input tests).
    pub fn run_in_path(&self, path: &Path) -> Run {
        Run::new(&self.bin).arg("run").rootfs_path(path)
    }
}

/// A binary of this workspace, from the same target directory as the suite.
fn workspace_bin(name: &str) -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin(name);
    if !path.exists() {
        panic!(
            "\n\n{name} is not built (looked for {}).\n\
             run `make build-debug`, or point {RUNTIME_BIN} at your own runtime.\n",
            path.display()
        );
    }
    path
}

fn check_runnable(bin: &Path) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(bin) {
        Err(e) => panic!(
            "\n\n{RUNTIME_BIN}={} cannot be used: {e}.\n\
             build your runtime first, or fix the path (give an absolute one).\n",
            bin.display()
        ),
        Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => panic!(
            "\n\n{RUNTIME_BIN}={} is not an executable file.\n",
            bin.display()
        ),
        Ok(_) => {}
    }
}

/// The static probe, as a path usable inside the container. Stages 01 and 02
/// share the host's filesystem, so the host path is the path inside.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let path = std::env::var_os(PROBE_BIN)
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(DEFAULT_PROBE));
        if !path.is_file() {
            panic!(
                "\n\nthe probe is not built (looked for {}).\nrun `make probe` first.\n",
                path.display()
            );
        }
        path
    })
}

/// Where `make probe` puts the static probe, from the workspace root.
pub const DEFAULT_PROBE: &str = "target/probe/x86_64-unknown-linux-gnu/release/probe";

/// The workspace's top directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A copy of `bin` that any user may run (the workspace may sit in a
/// directory other users cannot enter), removed when the test process exits.
pub fn runnable_by_anyone(bin: &Path) -> PathBuf {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;
    static COPIES: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_copies() {
        if let Some(dir) = DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let mut copies = COPIES.lock().unwrap_or_else(|p| p.into_inner());
    let copies = copies.get_or_insert_with(HashMap::new);
    if let Some(copy) = copies.get(bin) {
        return copy.clone();
    }
    // A copy already (`as_user`, then `through`): never copied onto itself.
    if copies.values().any(|copy| copy == bin) {
        return bin.to_path_buf();
    }
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("myruntime-suite-{}-bin", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the binaries' directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(remove_copies) };
        dir
    });
    let copy = dir.join(bin.file_name().expect("a file name"));
    std::fs::copy(bin, &copy).expect("copy the runtime");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copies.insert(bin.to_path_buf(), copy.clone());
    copy
}

/// The data directory (`MYRUNTIME_ROOT`) every run of this test process
/// uses, removed when the process exits.
pub fn store_root() -> PathBuf {
    store_root_for(0)
}

/// [`store_root`] for runs as the user `uid`: a directory that user owns.
pub fn store_root_for(uid: u32) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static ROOTS: Mutex<Option<HashMap<u32, PathBuf>>> = Mutex::new(None);
    extern "C" fn remove_roots() {
        if let Ok(roots) = ROOTS.lock() {
            for dir in roots.iter().flat_map(|r| r.values()) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let mut roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    if roots.is_none() {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(remove_roots) };
    }
    let roots = roots.get_or_insert_with(HashMap::new);
    roots
        .entry(uid)
        .or_insert_with(|| {
            let dir = std::env::temp_dir().join(format!(
                "myruntime-suite-{}-store-{uid}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("make the suite's data directory");
            let _ = nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(uid)), None);
            dir
        })
        .clone()
}
