//! The runtime's state directory, and the locks that tell a live
//! container's cgroup from one a dead runtime left behind.
//!
//! A runtime killed with SIGKILL cannot remove its container's cgroup (the
//! container dies with it, see stage 01's parent-death signal, but the empty
//! cgroup stays). So each runtime holds an exclusive flock(2) on a small file
//! naming its cgroup for as long as the cgroup exists; the kernel drops the
//! lock when the runtime dies, however it dies. Every start first takes the
//! locks nobody holds, and removes their cgroups.

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

/// An exclusive lock on `<runtime dir>/cgroups/<id>.lock`, whose content is
/// the cgroup's path; released (and the file removed) by [`CgroupLock::release`],
/// or by the kernel when the process dies.
#[derive(Debug)]
pub struct CgroupLock {
    file: File,
    path: PathBuf,
}

impl CgroupLock {
    /// Take the lock for `id`'s cgroup at `cgroup`. The file appears under
    /// its final name already locked (written aside, locked, renamed), so a
    /// concurrent reaper can never take it for a dead one.
    pub fn acquire(dir: &Path, id: &str, cgroup: &Path) -> std::io::Result<CgroupLock> {
        let locks = dir.join("cgroups");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&locks)?;
        let path = locks.join(format!("{id}.lock"));
        let aside = locks.join(format!(".{id}.new"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&aside)?;
        flock(&file, libc::LOCK_EX | libc::LOCK_NB)?;
        file.write_all(cgroup.as_os_str().as_encoded_bytes())?;
        std::fs::rename(&aside, &path)?;
        Ok(CgroupLock { file, path })
    }

    /// The cgroup is gone: remove the file and let go of the lock.
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

/// The cgroups whose runtimes are dead: the locks nobody holds, each taken
/// now and handed to `remove` with the path it names. `remove` returns true
/// when the cgroup is gone, and its lock file is then removed too.
// ANCHOR: reap
pub fn reap_stale(dir: &Path, mut remove: impl FnMut(&Path) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join("cgroups")) else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lock") {
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
        let mut cgroup = String::new();
        if file.read_to_string(&mut cgroup).is_ok()
            && !cgroup.is_empty()
            && remove(Path::new(&cgroup))
        {
            let _ = std::fs::remove_file(&path);
            reaped += 1;
        }
    }
    reaped
}
// ANCHOR_END: reap

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_left_alone_and_a_released_one_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let live = CgroupLock::acquire(dir.path(), "live", Path::new("myruntime/live")).unwrap();
        // A dead runtime's lock: the file is there, nobody holds it.
        let dead = CgroupLock::acquire(dir.path(), "dead", Path::new("myruntime/dead")).unwrap();
        drop(dead.file);

        let mut removed = Vec::new();
        let n = reap_stale(dir.path(), |cg| {
            removed.push(cg.to_path_buf());
            true
        });
        assert_eq!(n, 1);
        assert_eq!(removed, [PathBuf::from("myruntime/dead")]);
        assert!(!dir.path().join("cgroups/dead.lock").exists());
        assert!(dir.path().join("cgroups/live.lock").exists());
        live.release();
        assert!(!dir.path().join("cgroups/live.lock").exists());
    }

    #[test]
    fn a_cgroup_that_could_not_be_removed_keeps_its_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(
            CgroupLock::acquire(dir.path(), "x", Path::new("myruntime/x"))
                .unwrap()
                .file,
        );
        assert_eq!(reap_stale(dir.path(), |_| false), 0);
        assert!(dir.path().join("cgroups/x.lock").exists());
    }
}
