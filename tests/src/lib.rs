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
pub mod milestones;
mod run;

pub use run::{Outcome, Run, Running};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming the runtime under test.
pub const RUNTIME_BIN: &str = "RUNTIME_BIN";
/// The environment variable naming the probe binary (default: the one
/// `make probe` builds).
pub const PROBE_BIN: &str = "PROBE_BIN";

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
}

impl Runtime {
    /// The runtime a suite tests: `$RUNTIME_BIN`, or `default_bin` from this
    /// workspace's build. Checks for root and for a runnable binary first.
    pub fn for_suite(default_bin: &str) -> Runtime {
        require_root();
        let bin = match std::env::var_os(RUNTIME_BIN).filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => workspace_bin(default_bin),
        };
        check_runnable(&bin);
        Runtime { bin }
    }

    /// `BIN run ARGS... -- COMMAND...`, to be completed by the test.
    pub fn run(&self) -> Run {
        Run::new(&self.bin).arg("run")
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
