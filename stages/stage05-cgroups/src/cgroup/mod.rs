//! One container's cgroup, on any hierarchy: create, limit, attach, read,
//! remove.
//!
//! cgroups-rs does the creating, attaching and most of the writing. Around it
//! this module adds what the library leaves to its callers: the hybrid
//! decision ([`crate::hierarchy`]), the v2 meaning of swap and of cpu and io
//! weights ([`v2`]), the blkio weight file of current kernels ([`v1`]), the
//! OOM-kill counters, usage read-outs for `stats`, and a removal that waits
//! out EBUSY.

pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::CgroupPid;
use cgroups_rs::fs::Cgroup as Group;

use crate::hierarchy::Mode;
use crate::limits::Limits;
use stage01_uts::error::chain;

/// The v1 controllers a container gets. (Not cpuset: a new v1 cpuset cgroup
/// starts with no CPUs and no memory nodes, and a task cannot join it.)
pub const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "blkio", "freezer"];

/// A cgroup operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("creating the cgroup {path}: {why}")]
    Create { path: String, why: String },
    #[error("cannot apply {flag}: {why}")]
    Limit { flag: &'static str, why: String },
    #[error("moving the container's process into its cgroup {path}: {why}")]
    Attach { path: String, why: String },
    #[error("removing the cgroup {path}: {why}")]
    Remove { path: String, why: String },
    #[error("freezing or thawing the cgroup {path}: {why}")]
    Freeze { path: String, why: String },
}

/// Usage of a running (or just ended) container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    /// The memory limit (`None`: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// The page cache the kernel can take back (`inactive_file`), which
    /// `docker stats` leaves out of the usage it shows.
    pub memory_reclaimable_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub pids: Option<u64>,
    pub pids_limit: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// A container's cgroup.
pub struct Cgroup {
    inner: Group,
    mode: Mode,
    path: PathBuf,
}

impl Cgroup {
    /// Create the cgroup `path` (relative to the hierarchy root) and every
    /// parent it needs; on v2, the controllers are enabled along the way.
    pub fn create(mode: Mode, path: &Path) -> Result<Cgroup, CgroupError> {
        let cgroup = Cgroup::load(mode, path);
        cgroup.inner.create().map_err(|e| CgroupError::Create {
            path: path.display().to_string(),
            why: chain(&e),
        })?;
        Ok(cgroup)
    }

    /// A handle on the cgroup `path`, which may exist or not.
    pub fn load(mode: Mode, path: &Path) -> Cgroup {
        let hierarchy = mode.hierarchy();
        let inner = if mode.is_v2() {
            Group::load(hierarchy, path)
        } else {
            let controllers = V1_CONTROLLERS.iter().map(|c| (*c).to_owned()).collect();
            Group::load_with_specified_controllers(hierarchy, path, controllers)
        };
        Cgroup {
            inner,
            mode,
            path: path.to_path_buf(),
        }
    }

    /// The cgroup's path below the hierarchy root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its directories on the host: one on v2, one per controller on v1.
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.mode.is_v2() {
            return vec![Path::new(crate::hierarchy::ROOT).join(&self.path)];
        }
        let mut dirs: Vec<PathBuf> = self
            .inner
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().to_path_buf())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The file `name` of `controller`'s directory (v1), or of the cgroup's
    /// one directory (v2).
    pub(crate) fn file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        if self.mode.is_v2() {
            return Some(
                Path::new(crate::hierarchy::ROOT)
                    .join(&self.path)
                    .join(name),
            );
        }
        self.inner
            .subsystems()
            .iter()
            .find(|s| s.controller_name() == controller)
            .map(|s| s.to_controller().path().join(name))
    }

    pub(crate) fn inner(&self) -> &Group {
        &self.inner
    }

    /// Write every limit; the first that cannot be applied stops with an
    /// error naming its option.
    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        if self.mode.is_v2() {
            v2::apply(self, limits)
        } else {
            v1::apply(self, limits)
        }
    }

    /// Move process `pid` (all its threads) into the cgroup, in every
    /// hierarchy.
    pub fn attach(&self, pid: i32) -> Result<(), CgroupError> {
        let failed = |why: String| CgroupError::Attach {
            path: self.path.display().to_string(),
            why,
        };
        if self.mode.is_v2() {
            // One file, whatever controllers the cgroup has (cgroups-rs
            // needs at least one).
            let procs = self
                .file("", "cgroup.procs")
                .expect("v2 files are always there");
            return std::fs::write(&procs, pid.to_string())
                .map_err(|e| failed(format!("{}: {e}", procs.display())));
        }
        self.inner
            .add_task_by_tgid(CgroupPid::from(pid as u64))
            .map_err(|e| failed(chain(&e)))
    }

    /// The processes in the cgroup.
    pub fn procs(&self) -> Vec<u64> {
        let file = if self.mode.is_v2() {
            self.file("", "cgroup.procs")
        } else {
            self.file("pids", "cgroup.procs")
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// How many times the kernel's OOM killer killed a process of this
    /// cgroup because the cgroup reached its memory limit.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.mode.is_v2() {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.file("memory", file)
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| keyed(&text, key))
            .unwrap_or(0)
    }

    /// Usage so far (ready for `stats`).
    pub fn stats(&self) -> Stats {
        if self.mode.is_v2() {
            v2::stats(self)
        } else {
            v1::stats(self)
        }
    }

    /// Freeze every process of the cgroup (`pause`), or thaw them, and wait
    /// until the kernel says it is done: a freeze is asynchronous, each task
    /// stops at its next return to user space.
    // ANCHOR: freeze
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let failed = |why: String| CgroupError::Freeze {
            path: self.path.display().to_string(),
            why,
        };
        let (file, value, done) = if self.mode.is_v2() {
            ("cgroup.freeze", if frozen { "1" } else { "0" }, None)
        } else if frozen {
            ("freezer.state", "FROZEN", Some("FROZEN"))
        } else {
            ("freezer.state", "THAWED", Some("THAWED"))
        };
        let path = self
            .file("freezer", file)
            .ok_or_else(|| failed("no freezer controller is mounted".into()))?;
        std::fs::write(&path, value).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let start = Instant::now();
        while self.frozen() != Some(frozen) {
            if start.elapsed() > Duration::from_secs(5) {
                // Leave it as it was: half frozen is neither state.
                if frozen {
                    let _ = self.freeze(false);
                }
                let state = done.unwrap_or(if frozen { "frozen 1" } else { "frozen 0" });
                return Err(failed(format!("it did not become {state} within 5 s")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
    // ANCHOR_END: freeze

    /// Whether the cgroup is frozen (`None`: no freezer, or no cgroup).
    pub fn frozen(&self) -> Option<bool> {
        if self.mode.is_v2() {
            let events = std::fs::read_to_string(self.file("", "cgroup.events")?).ok()?;
            return keyed(&events, "frozen").map(|v| v == 1);
        }
        let state = std::fs::read_to_string(self.file("freezer", "freezer.state")?).ok()?;
        Some(state.trim() == "FROZEN")
    }

    /// Kill whatever is left in the cgroup.
    pub fn kill_all(&self) {
        if self.mode.is_v2() && self.inner.kill().is_ok() {
            return;
        }
        for pid in self.procs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Remove the cgroup. rmdir fails with EBUSY while a task is still
    /// listed, and a task stays listed until it is fully gone, a little after
    /// its parent reaped it: wait that out, and after a second kill whatever
    /// is still there (it can only be an orphan of a dead runtime).
    // ANCHOR: remove
    pub fn remove(&self) -> Result<(), CgroupError> {
        let start = Instant::now();
        let mut killed = false;
        loop {
            match self.inner.delete() {
                Ok(()) => return Ok(()),
                Err(e) if start.elapsed() > Duration::from_secs(5) => {
                    return Err(CgroupError::Remove {
                        path: self.path.display().to_string(),
                        why: chain(&e),
                    });
                }
                Err(_) => {
                    if !killed && start.elapsed() > Duration::from_secs(1) {
                        self.kill_all();
                        killed = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    // ANCHOR_END: remove
}

/// `key N` from a flat-keyed cgroup file.
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A number from a one-value cgroup file.
pub(crate) fn read_number(path: Option<PathBuf>) -> Option<u64> {
    std::fs::read_to_string(path?).ok()?.trim().parse().ok()
}

/// Write `value` into `file` (for what cgroups-rs does not write).
pub(crate) fn write(
    file: Option<PathBuf>,
    value: &str,
    flag: &'static str,
) -> Result<(), CgroupError> {
    let Some(file) = file else {
        return Err(CgroupError::Limit {
            flag,
            why: "its controller is not available in this cgroup".into(),
        });
    };
    std::fs::write(&file, value).map_err(|e| CgroupError::Limit {
        flag,
        why: format!("writing {value:?} to {}: {e}", file.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(2));
        assert_eq!(keyed(events, "oom"), Some(3));
        assert_eq!(keyed(events, "missing"), None);
    }
}
