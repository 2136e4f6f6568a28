//! Volumes (`-v HOST:CONTAINER[:ro]`), and mount points inside the rootfs.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use stage01_uts::Error;

use crate::cli::Volume;
use crate::mount::MountError;
use crate::path::resolve_in_root;
use crate::sys::{self, MountSys};

/// The host path of the container path `path`, resolved inside `root`
/// (never outside it) and created if missing, as a directory or as an empty
/// file. Done on the host before clone: in a user namespace the container's
/// root may not be allowed to create files in a rootfs the host owns.
pub fn mountpoint(root: &Path, path: &Path, directory: bool) -> Result<PathBuf, Error> {
    let target = resolve_in_root(root, path).map_err(|e| MountError::Path {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    create(&target, directory)?;
    Ok(target)
}

fn create(target: &Path, directory: bool) -> Result<(), Error> {
    let refused = |what: &Path, e: std::io::Error| -> Error {
        MountError::Path {
            what: format!("cannot create the mount point {}", what.display()),
            reason: format!(
                "{e} (the rootfs must be writable by the runtime's user, or the mount point exist)"
            ),
        }
        .into()
    };
    if directory {
        return std::fs::create_dir_all(target).map_err(|e| refused(target, e));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| refused(parent, e))?;
    }
    if !target.exists() {
        std::fs::File::create(target).map_err(|e| refused(target, e))?;
    }
    Ok(())
}

/// The volume's source must exist on the host.
pub fn check_source(volume: &Volume) -> Result<std::fs::Metadata, Error> {
    std::fs::metadata(&volume.source).map_err(|_| {
        MountError::VolumeSourceMissing {
            volume: volume.to_string(),
            path: volume.source.display().to_string(),
        }
        .into()
    })
}

/// The source must exist and the target must stay inside the rootfs.
/// Returns the target's path.
pub fn check(root: &Path, volume: &Volume) -> Result<PathBuf, Error> {
    let shown = volume.to_string();
    let source = check_source(volume)?;
    let target = resolve_in_root(root, &volume.target).map_err(|e| MountError::VolumeTarget {
        volume: shown.clone(),
        reason: e.to_string(),
    })?;
    // The same rule as the command line's, on the path a symlink of the
    // rootfs leads to (`/state -> /proc` in an image).
    let inside = target.strip_prefix(root).unwrap_or(&target);
    if crate::cli::covers_kernel_filesystem(inside) {
        return Err(MountError::VolumeTarget {
            volume: shown,
            reason: format!(
                "{} leads to /{}, which the runtime mounts itself; choose another container path",
                volume.target.display(),
                inside.display()
            ),
        }
        .into());
    }
    if let Ok(existing) = std::fs::metadata(&target)
        && existing.is_dir() != source.is_dir()
    {
        let (what, is) = if source.is_dir() {
            ("a directory", "a file")
        } else {
            ("a file", "a directory")
        };
        return Err(MountError::VolumeTarget {
            volume: shown,
            reason: format!("the host path is {what} but the container path is {is}"),
        }
        .into());
    }
    Ok(target)
}

/// A bind mount of `source` onto `target` (before pivot_root, while host
/// paths are still reachable); `recursive` takes the mounts below `source`
/// along; `read_only` freezes it and them.
// ANCHOR: bind
pub fn bind(
    sys: &dyn MountSys,
    source: &Path,
    target: &Path,
    recursive: bool,
    read_only: bool,
) -> Result<(), Error> {
    let flags = if recursive {
        MsFlags::MS_BIND | MsFlags::MS_REC
    } else {
        MsFlags::MS_BIND
    };
    sys::mount(
        sys,
        Some(source),
        target,
        None,
        flags,
        None,
        "a volume: the same files, seen at a second place",
    )?;
    if read_only {
        // A remount with MS_RDONLY would freeze only the top mount, and
        // any mount below the source would stay writable.
        sys::make_read_only(sys, target, ":ro, for the volume and every mount below it")?;
    }
    Ok(())
}
// ANCHOR_END: bind

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Recorder;

    #[test]
    fn a_read_only_volume_is_frozen_recursively_after_its_bind() {
        let root = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let spec = format!("{}:/data:ro", source.path().display());
        let volume: Volume = spec.parse().unwrap();
        let target = check(root.path(), &volume).unwrap();
        mountpoint(root.path(), &volume.target, true).unwrap();
        let sys = Recorder::default();
        bind(&sys, &volume.source, &target, true, volume.read_only).unwrap();
        let calls = sys.calls.borrow();
        let target = root.path().join("data");
        assert_eq!(
            *calls,
            [
                format!(
                    "mount {} {} - MS_BIND|MS_REC",
                    source.path().display(),
                    target.display()
                ),
                format!("readonly {}", target.display()),
            ]
        );
        assert!(target.is_dir(), "the mount point was made");
    }

    #[test]
    fn a_file_volume_gets_a_file_mount_point() {
        let root = tempfile::tempdir().unwrap();
        let source = tempfile::NamedTempFile::new().unwrap();
        let volume: Volume = format!("{}:/etc/app.conf", source.path().display())
            .parse()
            .unwrap();
        check(root.path(), &volume).unwrap();
        mountpoint(root.path(), &volume.target, false).unwrap();
        assert!(root.path().join("etc/app.conf").is_file());
    }

    #[test]
    fn a_missing_source_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let volume: Volume = "/no/such/dir:/data".parse().unwrap();
        let err = check(root.path(), &volume).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"volume /no/such/dir:/data: the host path /no/such/dir does not exist; create it first");
    }

    #[test]
    fn a_target_escaping_through_a_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("../../../../../etc", root.path().join("data")).unwrap();
        let volume: Volume = "/tmp:/data/x".parse().unwrap();
        let err = check(root.path(), &volume).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"volume /tmp:/data/x: /data/x leads out of the root filesystem through the symlink /data -> ../../../../../etc");
    }

    #[test]
    fn a_symlink_to_proc_is_no_way_around_the_rule() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc", root.path().join("state")).unwrap();
        let volume: Volume = "/tmp:/state".parse().unwrap();
        let err = check(root.path(), &volume).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"volume /tmp:/state: /state leads to /proc, which the runtime mounts itself; choose another container path");
    }

    #[test]
    fn a_directory_cannot_cover_a_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("conf"), "x").unwrap();
        let volume: Volume = "/tmp:/conf".parse().unwrap();
        let err = check(root.path(), &volume).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a directory but the container path is a file"),
            "{err}"
        );
    }
}
