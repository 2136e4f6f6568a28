//! The stage 06 primitive: an overlay filesystem as the container's root.
//!
//! overlayfs stacks directories: the *lower* ones, read-only, and one
//! *upper* where every change goes. Reading a path finds it in the upper
//! directory, else in the highest lower one that has it. Writing a file that
//! only a lower directory has first copies it up. Deleting one leaves a
//! *whiteout* in the upper directory (a character device 0:0) that hides it;
//! a directory deleted and made again is marked *opaque*. A rename of a
//! directory is a copy up, or a *redirect*. The lower directories are never
//! touched, so many containers can share them.
//!
//! ```text
//!   merged/   what the container sees          (mounted only in its namespace)
//!     │
//!   upper/    its own writes, whiteouts       <root>/containers/<id>/upper
//!   work/     overlayfs's scratch space       <root>/containers/<id>/work
//!   ─────────────────────────── read-only ──────────────────────────
//!   fd 9  ──► --layer C   (highest)           opened by the runtime,
//!   fd 8  ──► --layer B                       passed to the container's
//!   fd 7  ──► --rootfs A  (lowest)            process as descriptors
//! ```
//!
//! The data directory is root-only (see [`crate::datadir`]), and in a user
//! namespace the container's root is an ordinary host uid: it could not walk
//! there to mount. So the runtime opens each layer and the container's
//! directory itself, through `/proc/PID/root` of the waiting child (so that
//! the descriptors belong to the child's mount namespace), and passes them
//! over; the child mounts with `lowerdir=9:8:7` relative to /proc/self/fd.
//! The names are short, so 500 layers fit in the one page the kernel copies
//! mount options into.
//!
//! Each container's directory belongs to its runtime for as long as it
//! exists, by an owner lock (stage 05's): a runtime killed with SIGKILL
//! leaves it, and the next start removes it.

use std::any::Any;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, Root, explain};
use stage03_mount::path::{RootDir, RootFiles};
use stage03_mount::sys::Linux;
use stage04_user::userns::{ContainerRoot, container_root};
use stage05_cgroups::rundir::{OwnerLock, held, process_alive, reap_stale};

use crate::datadir;

/// What cannot be done with the layers given.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("give the container a root filesystem: --rootfs DIR, or --layer DIR (repeatable)")]
    NoLayers,
    #[error("the layer {path} is not a directory; give a directory holding the layer's files")]
    NotADirectory { path: String },
    #[error("{count} layers are more than overlayfs takes in one mount ({max} at most)")]
    TooMany { count: usize, max: usize },
    #[error("preparing the container's directory {path}: {why}")]
    Directory { path: String, why: String },
}

/// overlayfs's limit on lower layers (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// The file in a container's directory that lists its lower layers (their
/// host paths, NUL-separated), so that `rmi` can tell an image in use.
const LOWERS: &str = "lowers";

/// What a container's root filesystem is made of: what an engine hands its
/// snapshotter. It is not part of the runtime spec, whose `root.path` is
/// where the result appears ([`merged`]).
pub struct Layers {
    /// Lowest first.
    pub lowers: Vec<PathBuf>,
    /// The runtime's data directory.
    pub store: PathBuf,
    /// Let go of once the lowers are recorded: stage 07's hold on the image
    /// store, so that `rmi` cannot remove a layer between the moment this
    /// container chose it and the moment it is listed as in use.
    pub hold: Option<Box<dyn Any>>,
    /// The container's directory outlives its process (stage 08: a stopped
    /// container keeps its writes until `rm`); it holds the [`KEPT`]
    /// marker, and `cleanup` leaves it.
    pub keep: bool,
    /// Its writes go with it: no sync of them is worth waiting for (see
    /// [`options`]).
    pub volatile: bool,
}

/// The marker of a container's directory that stays after its process
/// ended (stage 08): reaping spares it, and `rmi` counts its layers as used.
pub const KEPT: &str = "kept";

/// Whether the container's directory `dir` is kept (see [`KEPT`]).
pub fn is_kept(dir: &Path) -> bool {
    dir.join(KEPT).exists()
}

/// Where the overlay of the container `id` appears, on the host: the spec's
/// `root.path`.
pub fn merged(store: &Path, id: &str) -> PathBuf {
    store.join("containers").join(id).join("merged")
}

/// The files of a stack of layers as the overlay will show them, read on
/// the host before it exists (to resolve `--user NAME` from the image's own
/// /etc/passwd, as containerd reads a snapshot). Each name is looked up in
/// the highest layer that has it; a whiteout (a 0:0 character device) hides
/// it, an opaque directory hides what the layers below have under it, and
/// symbolic links are followed through the merged view, never out of it.
pub struct LayerFiles<'a>(pub &'a [PathBuf]);

/// Links followed in one lookup at most (the kernel's limit).
const MAX_LINKS: usize = 40;

impl RootFiles for LayerFiles<'_> {
    fn read(&self, path: &str) -> Option<String> {
        let (layer, host) = self.resolve(Path::new(path))?;
        // Resolved without links, inside one layer: read as a plain
        // directory would be (a regular file only, bounded).
        RootDir(&self.0[layer]).read(host.to_str()?)
    }
}

impl LayerFiles<'_> {
    /// The layer that shows `path`, and the path (without links) in it.
    fn resolve(&self, path: &Path) -> Option<(usize, PathBuf)> {
        use std::path::Component;
        let mut pending: Vec<std::ffi::OsString> = Vec::new();
        let mut links = 0;
        let mut at = PathBuf::from("/");
        let push_all = |pending: &mut Vec<std::ffi::OsString>, p: &Path| {
            for c in p.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_owned()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
        };
        push_all(&mut pending, path);
        let mut found = None;
        while let Some(name) = pending.pop() {
            if name == ".." {
                at.pop();
                continue;
            }
            let next = at.join(&name);
            let (layer, meta) = self.lookup(&next)?;
            let host = self.0[layer].join(next.strip_prefix("/").ok()?);
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&host).ok()?;
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                push_all(&mut pending, &target);
                continue;
            }
            if !pending.is_empty() && !meta.is_dir() {
                return None;
            }
            found = Some(layer);
            at = next;
        }
        Some((found?, at))
    }

    /// The highest layer whose entry at `path` (no links on the way)
    /// shows in the overlay, and that entry.
    fn lookup(&self, path: &Path) -> Option<(usize, std::fs::Metadata)> {
        use std::os::unix::fs::FileTypeExt;
        let relative = path.strip_prefix("/").ok()?;
        for (index, layer) in self.0.iter().enumerate().rev() {
            if let Ok(meta) = std::fs::symlink_metadata(layer.join(relative)) {
                if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    return None;
                }
                return Some((index, meta));
            }
            // Not here: the layers below show through unless a directory
            // on the way is opaque in this one.
            let opaque = relative
                .ancestors()
                .skip(1)
                .any(|dir| is_opaque(&layer.join(dir)));
            if opaque {
                return None;
            }
        }
        None
    }
}

/// Whether overlayfs reads the directory `dir` as opaque.
fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| xattr_is_y(dir, name))
}

fn xattr_is_y(path: &Path, name: &str) -> bool {
    let (Ok(path), Ok(name)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: both strings are NUL-terminated, and the buffer's length is
    // given; lgetxattr does not follow a final symlink.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// The overlay rootfs of one container.
// ANCHOR: overlay
pub struct Overlay {
    /// Lowest first.
    lowers: Vec<PathBuf>,
    /// The runtime's data directory.
    root: PathBuf,
    /// `<root>/containers/<id>`, once made, and the lock that says whose.
    dir: Option<(PathBuf, OwnerLock)>,
    /// The container's root on the host, in a user namespace: the owner of
    /// its writable directories. (Mount with `userxattr` then: overlayfs
    /// may not use trusted.* extended attributes there.)
    root_ids: Option<ContainerRoot>,
    /// See [`Layers::hold`].
    hold: Option<Box<dyn Any>>,
    /// See [`Layers::keep`].
    keep: bool,
    /// See [`Layers::volatile`].
    volatile: bool,
    /// In the container's process: its directory's descriptor, the way to
    /// the merged root until pivot_root (closed at exec).
    dir_fd: Option<OwnedFd>,
}

impl Overlay {
    /// An overlay of `layers` for a container of `spec`: who owns its
    /// writable part comes from the spec's user namespace.
    pub fn from_spec(spec: &Spec, layers: Layers) -> Self {
        Overlay {
            lowers: layers.lowers,
            root: layers.store,
            dir: None,
            root_ids: container_root(spec),
            hold: layers.hold,
            keep: layers.keep,
            volatile: layers.volatile,
            dir_fd: None,
        }
    }
}

impl Primitive for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn phase(&self) -> Phase {
        Phase::Rootfs
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNS
    }

    /// On the host: check the layers, take the container's directory (and
    /// reclaim those dead runtimes left), make upper, work and merged, and
    /// record the lowers.
    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if self.lowers.is_empty() {
            return Err(Error::primitive(OverlayError::NoLayers));
        }
        if self.lowers.len() > MAX_LAYERS {
            let count = self.lowers.len();
            return Err(Error::primitive(OverlayError::TooMany {
                count,
                max: MAX_LAYERS,
            }));
        }
        let mut lowers = Vec::with_capacity(self.lowers.len());
        for layer in &self.lowers {
            let path = std::fs::canonicalize(layer)
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    Error::primitive(OverlayError::NotADirectory {
                        path: layer.display().to_string(),
                    })
                })?;
            lowers.push(path);
        }
        self.lowers = lowers;
        let failed = |path: &Path, why: String| {
            Error::primitive(OverlayError::Directory {
                path: path.display().to_string(),
                why,
            })
        };
        let hint = "; choose a data directory you can write to with --root or MYRUNTIME_ROOT";
        datadir::prepare(&self.root, &["containers"])
            .map_err(|e| failed(&self.root, format!("{e}{hint}")))?;
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| failed(&self.root, format!("{e}{hint}")))?;
        let containers = root.join("containers");
        let reaped = reap(&containers);
        if reaped > 0 {
            explain!(
                "rm -r <{reaped} containers' directories>" => "ok",
                "their runtimes died without removing them; their locks were free"
            );
        }
        let dir = containers.join(ctx.id.as_str());
        let lock = OwnerLock::acquire(&containers, ctx.id.as_str(), &dir)
            .map_err(|e| failed(&dir, format!("locking it: {e}")))?;
        if let Err(e) = make_dirs(&dir, &self.lowers, self.root_ids) {
            if !self.keep {
                let _ = remove(&dir);
            }
            lock.release();
            return Err(failed(&dir, format!("{e}{hint}")));
        }
        // Recorded: from here on `rmi` sees these layers in use.
        drop(self.hold.take());
        ctx.root = Root::Inside(dir.join("merged"));
        let (n, shown) = (self.lowers.len(), dir.display());
        let layers = stage01_uts::cli::count(n, "read-only layer");
        explain!(
            "mkdir({shown}/{{upper,work,merged}})" => "ok",
            "the container's own writable layer, on top of {layers}; its lock says whose it is"
        );
        self.dir = Some((dir, lock));
        Ok(())
    }

    /// While the child waits: open the container's directory and every
    /// layer as the child's mount namespace has them, and pass them over.
    fn attach(&mut self, ctx: &mut Context, child: Pid) -> Result<(), Error> {
        let Some((dir, _)) = &self.dir else {
            return Ok(());
        };
        let mut fds = Vec::with_capacity(1 + self.lowers.len());
        for path in std::iter::once(dir).chain(&self.lowers) {
            fds.push(open_in_child(child, path)?);
        }
        let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        ctx.send_fds(&borrowed)?;
        let n = fds.len();
        explain!(
            "open(/proc/{child}/root/…, O_PATH) ×{n}, sendmsg(SCM_RIGHTS)" => "ok",
            "the container's directory and its layers, opened by the runtime and handed over: \
             the container's root never walks the root-only data directory"
        );
        Ok(())
    }

    /// In the container, before the mount sequence of stage 03: mount the
    /// overlay from the descriptors, which then serves as its rootfs.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if self.dir.is_none() {
            return Ok(());
        }
        let mut fds = ctx.take_fds(1 + self.lowers.len())?.into_iter();
        let dir = fds.next().expect("take_fds returns as many as asked");
        let lowers: Vec<OwnedFd> = fds.collect();
        // Nothing mounted here may reach the host.
        stage03_mount::rootfs::make_private(&Linux)?;
        // Every path of the mount relative to /proc/self/fd: short, and
        // each a descriptor, never a walk through the host's directories.
        nix::unistd::chdir("/proc/self/fd").map_err(|e| {
            Error::syscall(
                "chdir(/proc/self/fd)",
                "reaching the overlay's directories",
                e,
            )
        })?;
        let numbers: Vec<i32> = lowers.iter().map(AsRawFd::as_raw_fd).collect();
        let d = dir.as_raw_fd();
        let merged = format!("{d}/merged");
        let mount = |volatile: bool| {
            let options = options(&numbers, d, self.root_ids.is_some(), volatile);
            stage03_mount::sys::mount(
                &Linux,
                Some(Path::new("overlay")),
                Path::new(&merged),
                Some("overlay"),
                MsFlags::empty(),
                Some(&options),
                "the layers, read-only, under the container's own writable one",
            )
        };
        match mount(self.volatile) {
            Ok(()) => {}
            // A kernel before 5.10 knows no `volatile`: without it, then.
            Err(_) if self.volatile => mount(false)?,
            Err(e) => return Err(e),
        }
        // The mount holds its layers now; the container's directory stays
        // open, the way stage 03 reaches the merged root.
        drop(lowers);
        ctx.root = Root::Inside(PathBuf::from(format!("/proc/self/fd/{d}/merged")));
        self.dir_fd = Some(dir);
        Ok(())
    }

    /// On the host: the container's writes go with it.
    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some((dir, lock)) = self.dir.take() else {
            return Ok(());
        };
        if self.keep {
            lock.release();
            return Ok(());
        }
        if let Err(e) = remove(&dir) {
            // The lock file stays, unheld: the next start tries again.
            drop(lock);
            return Err(Error::primitive(OverlayError::Directory {
                path: dir.display().to_string(),
                why: format!("removing it: {e}"),
            }));
        }
        lock.release();
        let shown = dir.display();
        explain!(
            "rm -r {shown}" => "ok",
            "the upper directory goes with the container: the layers are as they were"
        );
        Ok(())
    }
}
// ANCHOR_END: overlay

/// The mount options, relative to /proc/self/fd: `lowerdir` highest first,
/// as overlayfs reads it; upper and work in the container's directory `dir`.
/// `volatile` (Linux 5.10): overlayfs skips every sync of the upper
/// directory, the unmount's included; for a container whose writes go with
/// it anyway, as podman mounts `--rm` containers.
// ANCHOR: options
pub fn options(lowers: &[i32], dir: i32, userxattr: bool, volatile: bool) -> String {
    let lowers: Vec<String> = lowers.iter().rev().map(i32::to_string).collect();
    let mut options = format!(
        "lowerdir={},upperdir={dir}/upper,workdir={dir}/work",
        lowers.join(":")
    );
    if userxattr {
        options.push_str(",userxattr");
    }
    if volatile {
        options.push_str(",volatile");
    }
    options
}
// ANCHOR_END: options

/// `path` (absolute, on the host) opened through the child's root, so the
/// descriptor belongs to the child's mount namespace: overlayfs takes its
/// layers only from the mounter's namespace.
fn open_in_child(child: Pid, path: &Path) -> Result<OwnedFd, Error> {
    let mut through = format!("/proc/{child}/root").into_bytes();
    through.extend_from_slice(path.as_os_str().as_bytes());
    let through = PathBuf::from(std::ffi::OsStr::from_bytes(&through));
    open(
        &through,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::syscall(
            format!("open({}, O_PATH)", through.display()),
            "opening a layer for the container",
            e,
        )
    })
}

fn make_dirs(
    dir: &Path,
    lowers: &[PathBuf],
    root_ids: Option<ContainerRoot>,
) -> std::io::Result<()> {
    // 0711: the container's root (another uid in a user namespace) may pass
    // through to upper, work and merged, but list nothing; the 0700
    // directories above keep everyone else out. A kept container started
    // again finds them, with its writes in upper.
    let made = |path: &Path, mode| match std::fs::DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    };
    made(dir, 0o711)?;
    // The upper directory's mode is the container's `/`: 0755, as docker's.
    for (sub, mode) in [("upper", 0o755), ("work", 0o700), ("merged", 0o700)] {
        made(&dir.join(sub), mode)?;
    }
    let mut record = std::fs::File::create(dir.join(LOWERS))?;
    for lower in lowers {
        record.write_all(lower.as_os_str().as_bytes())?;
        record.write_all(b"\0")?;
    }
    // In a user namespace the container's root is another host uid: the
    // upper and work directories must be its, or it could not write.
    if let Some(ids) = root_ids {
        let uid = ids.uid.map(nix::unistd::Uid::from_raw);
        let gid = ids.gid.map(nix::unistd::Gid::from_raw);
        for sub in ["upper", "work"] {
            nix::unistd::chown(&dir.join(sub), uid, gid).map_err(std::io::Error::from)?;
        }
    }
    Ok(())
}

/// Remove the directories of containers whose runtimes died (their owner
/// locks are free), and any directory without a lock at all (left by an
/// older version). A live runtime's lock is in place before its directory
/// is made, and goes after it is removed, so neither rule can take a live
/// container's. Returns how many went.
// ANCHOR: reap
pub fn reap(containers: &Path) -> usize {
    // A kept directory (stage 08) is a stopped container's, not a leftover.
    let mut reaped = reap_stale(containers, |dir| is_kept(dir) || remove(dir).is_ok());
    let Ok(entries) = std::fs::read_dir(containers) else {
        return reaped;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            continue;
        }
        // `.NAME.PID.new`: a directory being made (stage 08 makes one aside
        // and renames it); only its maker's death makes it a leftover.
        if let Some(pid) = aside_pid(&name.to_string_lossy()) {
            if !process_alive(pid) && remove(&entry.path()).is_ok() {
                reaped += 1;
            }
            continue;
        }
        if is_kept(&entry.path()) {
            continue;
        }
        let mut lock = name.clone();
        lock.push(".lock");
        if !containers.join(lock).exists() && remove(&entry.path()).is_ok() {
            reaped += 1;
        }
    }
    reaped
}

/// The pid in the name of something made aside, `.NAME.PID.new`.
pub fn aside_pid(name: &str) -> Option<u32> {
    let middle = name.strip_prefix('.')?.strip_suffix(".new")?;
    middle.rsplit_once('.')?.1.parse().ok()
}
// ANCHOR_END: reap

/// The live and the kept containers under the data directory `root`
/// (after reaping the dead), each with its lower layers: what `rmi` checks
/// before removing one.
pub fn lowers_in_use(root: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let containers = root.join("containers");
    reap(&containers);
    let Ok(entries) = std::fs::read_dir(&containers) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A live container holds its lock; a stopped one (stage 08) is kept.
        let id = match name.strip_suffix(".lock") {
            Some(id) if held(&entry.path()) && !is_kept(&containers.join(id)) => id,
            Some(_) => continue,
            None if is_kept(&entry.path()) => name.as_str(),
            None => continue,
        };
        let record = std::fs::read(containers.join(id).join(LOWERS)).unwrap_or_default();
        let lowers = record
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
            .collect();
        live.push((id.to_owned(), lowers));
    }
    live
}

/// Remove the container's directory. overlayfs leaves `work/work` with mode
/// 000, and the container may have made directories without write
/// permission: an ordinary user (rootless) must give itself access to its
/// own directories first. (Root needs none of that.)
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open_up(dir);
            std::fs::remove_dir_all(dir)
        }
        other => other,
    }
}

/// chmod u+rwx every directory below `dir` that this user owns.
fn open_up(dir: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = nix::unistd::Uid::effective().as_raw();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me {
            continue;
        }
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(meta.mode() | 0o700));
        if let Ok(entries) = std::fs::read_dir(&d) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage01_uts::{ContainerId, Process};

    #[test]
    fn lowerdir_lists_the_highest_first() {
        assert_eq!(
            options(&[7, 8, 9], 6, false, false),
            "lowerdir=9:8:7,upperdir=6/upper,workdir=6/work"
        );
        assert!(options(&[7], 6, true, false).ends_with(",userxattr"));
        assert!(options(&[7], 6, false, true).ends_with(",volatile"));
    }

    #[test]
    fn five_hundred_layers_fit_in_a_page() {
        let fds: Vec<i32> = (19_000..19_000 + MAX_LAYERS as i32).collect();
        let options = options(&fds, 18_999, true, true);
        assert!(options.len() < 4096, "{}", options.len());
    }

    fn overlay(lowers: &[&Path], store: &Path) -> Overlay {
        let layers = Layers {
            lowers: lowers.iter().map(|l| l.to_path_buf()).collect(),
            store: store.into(),
            hold: None,
            keep: false,
            volatile: true,
        };
        Overlay::from_spec(&stage01_uts::spec::minimal(vec![], vec![]), layers)
    }

    fn context() -> Context {
        Context::new(
            ContainerId::generate(),
            Process::new(vec!["x".into()], vec![]),
        )
    }

    fn prepared(root: &Path, lower: &Path) -> (Overlay, Context, PathBuf) {
        let mut ctx = context();
        let mut overlay = overlay(&[lower], root);
        overlay.prepare(&mut ctx).unwrap();
        let dir = std::fs::canonicalize(root)
            .unwrap()
            .join("containers")
            .join(ctx.id.as_str());
        (overlay, ctx, dir)
    }

    #[test]
    fn prepare_makes_locks_and_records_and_cleanup_undoes_it() {
        let root = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        let (mut overlay, mut ctx, dir) = prepared(root.path(), lower.path());
        for sub in ["upper", "work", "merged"] {
            assert!(dir.join(sub).is_dir(), "{sub}");
        }
        let lock = dir.with_extension("lock");
        assert!(held(&lock), "the runtime holds its directory's lock");
        let canonical = std::fs::canonicalize(lower.path()).unwrap();
        assert_eq!(
            lowers_in_use(root.path()),
            [(ctx.id.as_str().to_owned(), vec![canonical])]
        );
        assert_eq!(ctx.root, Root::Inside(dir.join("merged")));
        overlay.cleanup(&mut ctx).unwrap();
        assert!(!dir.exists(), "the container's directory goes with it");
        assert!(!lock.exists(), "and so does its lock");
    }

    #[test]
    fn the_data_directory_is_root_only() {
        use std::os::unix::fs::MetadataExt;
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("data");
        let lower = tempfile::tempdir().unwrap();
        let (mut overlay, mut ctx, _) = prepared(&root, lower.path());
        for dir in [root.clone(), root.join("containers")] {
            let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        overlay.cleanup(&mut ctx).unwrap();
    }

    #[test]
    fn a_dead_runtimes_directory_is_reclaimed_by_the_next_start() {
        let root = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        let (mut dead, _, dead_dir) = prepared(root.path(), lower.path());
        // What SIGKILL does: the lock is let go of, nothing is removed.
        drop(dead.dir.take());
        let stray = root.path().join("containers/0123abcd");
        std::fs::create_dir_all(stray.join("upper")).unwrap();
        assert!(dead_dir.exists());
        let (mut live, mut ctx, live_dir) = prepared(root.path(), lower.path());
        assert!(!dead_dir.exists(), "the dead one's directory was reclaimed");
        assert!(!dead_dir.with_extension("lock").exists());
        assert!(!stray.exists(), "a directory without a lock was reclaimed");
        assert!(live_dir.exists());
        live.cleanup(&mut ctx).unwrap();
    }

    #[test]
    fn the_hold_is_let_go_of_once_the_lowers_are_recorded() {
        let root = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        let released = std::rc::Rc::new(std::cell::Cell::new(false));
        struct Guard(std::rc::Rc<std::cell::Cell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let mut ctx = context();
        let mut overlay = overlay(&[lower.path()], root.path());
        overlay.hold = Some(Box::new(Guard(released.clone())));
        assert!(!released.get());
        overlay.prepare(&mut ctx).unwrap();
        assert!(released.get());
        overlay.cleanup(&mut ctx).unwrap();
    }

    #[test]
    fn missing_layers_are_refused() {
        let mut ctx = context();
        let err = overlay(&[], Path::new("/tmp"))
            .prepare(&mut ctx)
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"give the container a root filesystem: --rootfs DIR, or --layer DIR (repeatable)");
        let err = overlay(&[Path::new("/no/such/layer")], Path::new("/tmp"))
            .prepare(&mut ctx)
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/layer"), "{err}");
    }

    #[test]
    fn layer_files_read_as_the_overlay_will_show_them() {
        use std::os::unix::fs::symlink;
        let (low, mid, high) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        for layer in [&low, &mid, &high] {
            std::fs::create_dir_all(layer.path().join("etc")).unwrap();
        }
        std::fs::write(low.path().join("etc/passwd"), "low").unwrap();
        std::fs::write(low.path().join("etc/group"), "low").unwrap();
        std::fs::write(low.path().join("etc/hosts"), "low").unwrap();
        std::fs::write(mid.path().join("etc/passwd"), "mid").unwrap();
        // A whiteout: a 0:0 character device (needs root to make).
        let whiteout = nix::sys::stat::mknod(
            &high.path().join("etc/group"),
            nix::sys::stat::SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o600),
            0,
        );
        symlink("passwd", high.path().join("etc/hosts")).unwrap();
        let lowers = [low.path().into(), mid.path().into(), high.path().into()];
        let files = LayerFiles(&lowers);
        assert_eq!(files.read("/etc/passwd").as_deref(), Some("mid"));
        if whiteout.is_ok() {
            assert_eq!(files.read("/etc/group"), None, "hidden by a whiteout");
        }
        // A link resolves through the merged view: to mid's passwd.
        assert_eq!(files.read("/etc/hosts").as_deref(), Some("mid"));
        symlink("/../../etc/passwd", high.path().join("etc/up")).unwrap();
        assert_eq!(
            files.read("/etc/up").as_deref(),
            Some("mid"),
            "never out of the root"
        );
        symlink("loop", high.path().join("etc/loop")).unwrap();
        assert_eq!(files.read("/etc/loop"), None);
        assert_eq!(files.read("/etc/shadow"), None);
    }
}
