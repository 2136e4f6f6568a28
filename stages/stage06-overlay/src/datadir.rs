//! The data directory (`--root`): root-only.
//!
//! Everything under it came from an image or was written by a container:
//! layers with setuid-root programs or files carrying
//! `security.capability`, and containers' upper directories, where a
//! process of the container may have made such a file. Were any host user
//! able to walk there, they could run one by its path on the host, as root.
//! So the data directory (when the runtime makes it) and every directory the
//! runtime makes in it are `0700`, as docker's and containerd's are, and
//! nothing below them is
//! reached by path by anyone but the runtime: a user-namespaced container,
//! whose root is an ordinary host uid, gets its layers through descriptors
//! the runtime opens for it (see [`crate::overlay`]).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The mode of the data directory and its subdirectories.
pub const MODE: u32 = 0o700;

/// Make the data directory `root` (0700) if it does not exist, and its
/// subdirectories `subdirs`, or tighten those to [`MODE`] if they exist with
/// more (made by an older version, or by hand). An existing data directory
/// keeps its mode: it is the user's (`--root /srv/data`, even `--root
/// /tmp`), and the runtime's own directories inside it are what keep other
/// users out. Directories that belong to another user are left as they are:
/// the runtime then fails on them with that user's permissions, as it
/// should.
// ANCHOR: prepare
pub fn prepare(root: &Path, subdirs: &[&str]) -> io::Result<()> {
    let me = nix::unistd::Uid::effective().as_raw();
    let dirs = std::iter::once(root.to_path_buf()).chain(subdirs.iter().map(|d| root.join(d)));
    for dir in dirs {
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                if dir != root && meta.uid() == me && meta.mode() & 0o077 != 0 {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(MODE))?;
                }
            }
            // A symlink as the data directory itself is the user's choice;
            // below it, the runtime made every entry.
            Ok(meta) if meta.file_type().is_symlink() && dir == root => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", dir.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(MODE)
                    .create(&dir)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
// ANCHOR_END: prepare

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn made_root_only_and_tightened_if_looser() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("data");
        prepare(&root, &["containers", "layers"]).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("containers")), 0o700);
        std::fs::set_permissions(root.join("layers"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        prepare(&root, &["containers", "layers"]).unwrap();
        assert_eq!(mode(&root.join("layers")), 0o700);
    }

    #[test]
    fn an_existing_data_directory_keeps_its_mode() {
        let top = tempfile::tempdir().unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare(top.path(), &["layers"]).unwrap();
        assert_eq!(mode(top.path()), 0o1777, "--root /tmp must not chmod /tmp");
        assert_eq!(mode(&top.path().join("layers")), 0o700);
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let top = tempfile::tempdir().unwrap();
        std::fs::write(top.path().join("layers"), "").unwrap();
        let err = prepare(top.path(), &["layers"]).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
