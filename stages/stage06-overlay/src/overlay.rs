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
//!   l/2 ──►   --layer C   (highest)
//!   l/1 ──►   --layer B
//!   l/0 ──►   --rootfs A  (lowest)
//! ```

use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use stage01_uts::{Context, Error, Primitive, explain};
use stage03_mount::mount::MountedRootfs;
use stage03_mount::sys::Linux;
use stage04_user::userns::ContainerRoot;

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
    #[error(
        "the container's root (host uid {uid}) cannot pass through {path} (mode {mode:o}, owner {owner}); allow it with chmod o+x {path}, or choose a --root and layers it can reach"
    )]
    Unreachable {
        uid: u32,
        path: String,
        mode: u32,
        owner: u32,
    },
}

/// overlayfs's limit on lower layers (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// The overlay rootfs of one container.
// ANCHOR: overlay
pub struct Overlay {
    /// Lowest first.
    lowers: Vec<PathBuf>,
    /// The runtime's data directory.
    root: PathBuf,
    /// `<root>/containers/<id>`, once made.
    dir: Option<PathBuf>,
    /// Mount with `userxattr`: the container has a user namespace, where
    /// overlayfs may not use trusted.* extended attributes.
    userxattr: bool,
}

impl Overlay {
    /// An overlay of `lowers` (lowest first), its writable parts under
    /// `root`.
    pub fn new(lowers: Vec<PathBuf>, root: PathBuf) -> Self {
        Overlay {
            lowers,
            root,
            dir: None,
            userxattr: false,
        }
    }
}

impl Primitive for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNS
    }

    /// On the host: check the layers, make upper, work and merged, and link
    /// the layers under short names (the mount's option string must fit in
    /// a page: a hundred long paths would not).
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
        let dir = self.root.join("containers").join(ctx.id.as_str());
        let root_ids = ctx.fact::<ContainerRoot>().copied();
        if let Some(ids) = root_ids {
            for path in lowers.iter().chain([&dir]) {
                reachable(path, ids).map_err(Error::primitive)?;
            }
        }
        make_dirs(&dir, &lowers, root_ids).map_err(|e| {
            let _ = remove(&dir);
            Error::primitive(OverlayError::Directory {
                path: dir.display().to_string(),
                why: format!(
                    "{e}; choose a data directory you can write to with --root or MYRUNTIME_ROOT"
                ),
            })
        })?;
        self.userxattr = root_ids.is_some();
        ctx.tell(MountedRootfs(dir.join("merged")));
        let (n, shown) = (lowers.len(), dir.display());
        let (last, layers) = (n - 1, stage01_uts::cli::count(n, "read-only layer"));
        explain!(
            "mkdir({shown}/{{upper,work,merged,l/0..{last}}})" => "ok",
            "the container's own writable layer, on top of {layers}"
        );
        self.dir = Some(dir);
        Ok(())
    }

    /// In the container, before the mount sequence of stage 03: mount the
    /// overlay, which then serves as its rootfs.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        // Nothing mounted here may reach the host.
        stage03_mount::rootfs::make_private(&Linux)?;
        // Relative paths, from inside the container's directory: short.
        nix::unistd::chdir(dir.as_path()).map_err(|e| {
            Error::syscall(
                "chdir(<container dir>)",
                "reaching the overlay's directories",
                e,
            )
        })?;
        let options = options(self.lowers.len(), self.userxattr);
        stage03_mount::sys::mount(
            &Linux,
            Some(Path::new("overlay")),
            Path::new("merged"),
            Some("overlay"),
            MsFlags::empty(),
            Some(&options),
            "the layers, read-only, under the container's own writable one",
        )
    }

    /// On the host: the container's writes go with it.
    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        remove(&dir).map_err(|e| {
            Error::primitive(OverlayError::Directory {
                path: dir.display().to_string(),
                why: format!("removing it: {e}"),
            })
        })?;
        let shown = dir.display();
        explain!(
            "rm -r {shown}" => "ok",
            "the upper directory goes with the container: the layers are as they were"
        );
        Ok(())
    }
}
// ANCHOR_END: overlay

/// The mount options: `lowerdir` highest first, as overlayfs reads it.
// ANCHOR: options
pub fn options(layers: usize, userxattr: bool) -> String {
    let lowers: Vec<String> = (0..layers).rev().map(|n| format!("l/{n}")).collect();
    let mut options = format!("lowerdir={},upperdir=upper,workdir=work", lowers.join(":"));
    if userxattr {
        options.push_str(",userxattr");
    }
    options
}
// ANCHOR_END: options

/// In a user namespace the overlay is mounted, and used, with the
/// credentials of the container's root: another host uid, which must be able
/// to walk to every layer and to the container's directory. A directory on
/// the way with mode 0700 (a `mktemp -d`, a home directory) would fail the
/// mount with a bare EACCES; say which one it is, as docker does for its
/// remapped root. Directories not made yet will be made 0711.
fn reachable(path: &Path, ids: ContainerRoot) -> Result<(), OverlayError> {
    use std::os::unix::fs::MetadataExt;
    let Some(uid) = ids.uid.filter(|&uid| uid != 0) else {
        return Ok(());
    };
    for dir in path.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let bit = if meta.uid() == uid {
            0o100
        } else if Some(meta.gid()) == ids.gid {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bit == 0 {
            return Err(OverlayError::Unreachable {
                uid,
                path: dir.display().to_string(),
                mode: meta.mode() & 0o7777,
                owner: meta.uid(),
            });
        }
    }
    Ok(())
}

fn make_dirs(
    dir: &Path,
    lowers: &[PathBuf],
    root_ids: Option<ContainerRoot>,
) -> std::io::Result<()> {
    // 0711: the container's root (another uid in a user namespace) may pass
    // through to upper, work and merged, but list nothing.
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o711);
    builder.create(dir.join("l"))?;
    for sub in ["upper", "work", "merged"] {
        builder.create(dir.join(sub))?;
    }
    for (n, lower) in lowers.iter().enumerate() {
        symlink(lower, dir.join("l").join(n.to_string()))?;
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

/// Remove the container's directory. overlayfs leaves `work/work` with mode
/// 000, and the container may have made directories without write
/// permission: an ordinary user (rootless) must give itself access to its
/// own directories first. (Root needs none of that.)
fn remove(dir: &Path) -> std::io::Result<()> {
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
    use stage01_uts::Process;

    #[test]
    fn lowerdir_lists_the_highest_first() {
        assert_eq!(
            options(3, false),
            "lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work"
        );
        assert!(options(1, true).ends_with(",userxattr"));
    }

    #[test]
    fn a_hundred_and_more_layers_fit_in_a_page() {
        assert!(
            options(MAX_LAYERS, true).len() < 4096,
            "{}",
            options(MAX_LAYERS, true).len()
        );
    }

    #[test]
    fn prepare_makes_the_directories_and_tells_where_the_rootfs_will_be() {
        let root = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        let mut ctx = Context::new(Process::new(vec!["x".into()]));
        let mut overlay = Overlay::new(vec![lower.path().into()], root.path().into());
        overlay.prepare(&mut ctx).unwrap();
        let dir = root.path().join("containers").join(ctx.id.as_str());
        for sub in ["upper", "work", "merged"] {
            assert!(dir.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(
            std::fs::read_link(dir.join("l/0")).unwrap(),
            std::fs::canonicalize(lower.path()).unwrap()
        );
        assert_eq!(
            ctx.fact::<MountedRootfs>(),
            Some(&MountedRootfs(dir.join("merged")))
        );
        overlay.cleanup(&mut ctx).unwrap();
        assert!(!dir.exists(), "the container's directory goes with it");
    }

    #[test]
    fn missing_layers_are_refused() {
        let mut ctx = Context::new(Process::new(vec!["x".into()]));
        let err = Overlay::new(vec![], "/tmp".into())
            .prepare(&mut ctx)
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"give the container a root filesystem: --rootfs DIR, or --layer DIR (repeatable)");
        let err = Overlay::new(vec!["/no/such/layer".into()], "/tmp".into())
            .prepare(&mut ctx)
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/layer"), "{err}");
    }

    #[test]
    fn a_directory_the_mapped_root_cannot_pass_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let store = top.path().join("store");
        let mapped = ContainerRoot {
            uid: Some(100_000),
            gid: Some(100_000),
        };
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = reachable(&store.join("containers/x"), mapped).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "cannot pass through {} (mode 700",
                top.path().display()
            )),
            "{err}"
        );
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        reachable(&store.join("containers/x"), mapped).unwrap();
        let unmapped = ContainerRoot {
            uid: Some(0),
            gid: Some(0),
        };
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        reachable(&store, unmapped).unwrap();
    }
}
