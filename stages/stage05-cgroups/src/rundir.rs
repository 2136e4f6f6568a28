//! The runtime's state directory, and the locks that tell what a live
//! runtime owns from what a dead one left behind.
//!
//! A runtime killed with SIGKILL cannot clean up: its container dies with
//! it (see stage 01's parent-death signal), but the empty cgroup stays, and
//! so does the container's directory of stage 06. So the runtime holds an
//! exclusive flock(2) on a small file naming what it owns for as long as
//! that exists; the kernel drops the lock when the runtime dies, however it
//! dies. The next runtime takes the locks nobody holds, and removes what
//! they name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the runtime keeps state that lives as long as its containers:
/// /run/myruntime for root; for an ordinary user $XDG_RUNTIME_DIR/myruntime,
/// or /tmp/myruntime-UID when there is no XDG_RUNTIME_DIR of its own (one
/// inherited from another user, through sudo say, is not used).
pub fn runtime_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        return PathBuf::from("/run/myruntime");
    }
    let own = |dir: &PathBuf| std::fs::metadata(dir).is_ok_and(|m| m.uid() == uid.as_raw());
    match std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(own)
    {
        Some(dir) => dir.join("myruntime"),
        None => std::env::temp_dir().join(format!("myruntime-{uid}")),
    }
}

/// An exclusive lock on `<locks>/<name>.lock`, a file whose content is the
/// path of what its holder owns (a cgroup, a container's directory);
/// released (and the file removed) by [`OwnerLock::release`], or by the
/// kernel when the process dies.
#[derive(Debug)]
pub struct OwnerLock {
    file: File,
    path: PathBuf,
}

impl OwnerLock {
    /// Take the lock `name` in the directory `locks`, for `owned`. The file
    /// appears under its final name already locked (written aside under a
    /// name with this process's pid, locked, renamed), so a concurrent
    /// reaper can never take it for a dead one's.
    pub fn acquire(locks: &Path, name: &str, owned: &Path) -> std::io::Result<OwnerLock> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(locks)?;
        let path = locks.join(format!("{name}.lock"));
        let aside = locks.join(format!(".{name}.{}.new", std::process::id()));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&aside)?;
        flock(&file, libc::LOCK_EX | libc::LOCK_NB)?;
        file.write_all(owned.as_os_str().as_encoded_bytes())?;
        if let Err(e) = std::fs::rename(&aside, &path) {
            let _ = std::fs::remove_file(&aside);
            return Err(e);
        }
        Ok(OwnerLock { file, path })
    }

    /// What it owns is gone: remove the file and let go of the lock.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

fn flock(file: &File, how: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock(2) on a descriptor this `File` owns.
    if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What dead runtimes owned: the locks in `locks` that nobody holds, each
/// taken now and handed to `remove` with the path it names. `remove` returns
/// true when that is gone, and its lock file is then removed too. Files a
/// runtime was writing aside when it died go as well.
// ANCHOR: reap
pub fn reap_stale(locks: &Path, mut remove: impl FnMut(&Path) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(locks) else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(pid) = aside_pid(&name) {
            if !process_alive(pid) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if !name.ends_with(".lock") {
            continue;
        }
        let Ok(mut file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        else {
            continue;
        };
        // Held: its runtime is alive.
        if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue;
        }
        let mut owned = String::new();
        if file.read_to_string(&mut owned).is_ok() && !owned.is_empty() && remove(Path::new(&owned))
        {
            let _ = std::fs::remove_file(&path);
            reaped += 1;
        }
    }
    reaped
}
// ANCHOR_END: reap

/// Whether the lock file at `path` is held by a live owner (an owner that
/// died no longer holds it).
pub fn held(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    flock(&file, libc::LOCK_SH | libc::LOCK_NB).is_err()
}

/// Whether process `pid` lives: it exists and has not exited. A process that
/// exited but was not reaped yet (a zombie: its parent has not waited, or a
/// PID 1 that never reaps) holds nothing any more.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// The pid in the name of a lock file being written aside, `.NAME.PID.new`.
fn aside_pid(name: &str) -> Option<u32> {
    let middle = name.strip_prefix('.')?.strip_suffix(".new")?;
    middle.rsplit_once('.')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_left_alone_and_a_released_one_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let live = OwnerLock::acquire(dir.path(), "live", Path::new("myruntime/live")).unwrap();
        // A dead runtime's lock: the file is there, nobody holds it.
        let dead = OwnerLock::acquire(dir.path(), "dead", Path::new("myruntime/dead")).unwrap();
        drop(dead.file);

        let mut removed = Vec::new();
        let n = reap_stale(dir.path(), |cg| {
            removed.push(cg.to_path_buf());
            true
        });
        assert_eq!(n, 1);
        assert_eq!(removed, [PathBuf::from("myruntime/dead")]);
        assert!(!dir.path().join("dead.lock").exists());
        assert!(dir.path().join("live.lock").exists());
        live.release();
        assert!(!dir.path().join("live.lock").exists());
    }

    #[test]
    fn a_cgroup_that_could_not_be_removed_keeps_its_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(
            OwnerLock::acquire(dir.path(), "x", Path::new("myruntime/x"))
                .unwrap()
                .file,
        );
        assert_eq!(reap_stale(dir.path(), |_| false), 0);
        assert!(dir.path().join("x.lock").exists());
    }

    #[test]
    fn a_file_a_dead_runtime_was_writing_aside_goes_a_live_ones_stays() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".x.999999999.new");
        let live = dir.path().join(format!(".y.{}.new", std::process::id()));
        std::fs::write(&dead, "").unwrap();
        std::fs::write(&live, "").unwrap();
        reap_stale(dir.path(), |_| true);
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
