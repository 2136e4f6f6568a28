//! Resolving a container path inside the root filesystem, on the host side.
//!
//! Before pivot_root the runtime addresses the container's files through host
//! paths: `ROOTFS/dev`, `ROOTFS/data`. A naive `rootfs.join(path)` follows the
//! rootfs's symlinks *as the host sees them*: a rootfs holding
//! `data -> ../../../etc` would have the runtime mount over the host's /etc
//! (in its own mount namespace, but still: the container would get the host's
//! files, or lose its own). So every path is resolved the way the container
//! will see it: an absolute symlink starts again from the rootfs, and a `..`
//! that would climb above the rootfs is refused.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::Mode;

/// Why a path cannot be resolved inside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{path} leads out of the root filesystem through {via}")]
    Escapes { path: String, via: String },
    #[error("{path}: too many levels of symbolic links")]
    Loop { path: String },
    #[error("{path}: cannot read the symlink {link}: {why}")]
    Unreadable {
        path: String,
        link: String,
        why: String,
    },
}

/// Symlinks followed before giving up, as the kernel does (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// What one step of a walk found: a component to go on from, or a symlink
/// to walk in its place (with how to name it in a message).
enum Next<T> {
    Step(T),
    Link { target: PathBuf, shown: String },
}

/// The rules of a walk inside a root, whatever it walks with (names, or
/// open directories): `.` is nothing; `..` goes back one step and may not
/// climb above the root; a symlink is walked in place, an absolute one from
/// the root again, at most [`MAX_SYMLINKS`] of them. `next` looks one
/// component up from the steps walked so far.
// ANCHOR: walk
fn walk<T, E: From<ResolveError>>(
    path: &Path,
    mut next: impl FnMut(&[T], OsString) -> Result<Next<T>, E>,
) -> Result<Vec<T>, E> {
    let shown = || path.display().to_string();
    // Components still to walk, last first, so a symlink's target can be
    // pushed in front of what remains.
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut walked: Vec<T> = Vec::new();
    let mut followed = 0;
    // The last symlink followed, to name it if a `..` then climbs out.
    let mut last_link: Option<String> = None;
    while let Some(part) = todo.pop() {
        if part == "." {
            continue;
        }
        if part == ".." {
            if walked.pop().is_none() {
                let via = last_link.unwrap_or_else(|| "'..'".into());
                return Err(ResolveError::Escapes { path: shown(), via }.into());
            }
            continue;
        }
        match next(&walked, part)? {
            Next::Step(step) => walked.push(step),
            Next::Link {
                target,
                shown: link,
            } => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(ResolveError::Loop { path: shown() }.into());
                }
                last_link = Some(format!("the symlink {link} -> {}", target.display()));
                if target.is_absolute() {
                    // Absolute, as the container sees it: from the top.
                    walked.clear();
                }
                let mut target_parts = components(&target);
                target_parts.reverse();
                todo.extend(target_parts);
            }
        }
    }
    Ok(walked)
}
// ANCHOR_END: walk

/// Resolve `path` (a container path, absolute or not) to the host path of the
/// same file inside `root`. Components that do not exist yet are kept as
/// they are, so the result can be created.
// ANCHOR: resolve
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, ResolveError> {
    let resolved = walk(path, |resolved: &[OsString], part| {
        let here = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match here.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&here).map_err(|e| ResolveError::Unreadable {
                    path: path.display().to_string(),
                    link: here.display().to_string(),
                    why: e.to_string(),
                })?;
                let names: Vec<_> = resolved
                    .iter()
                    .chain([&part])
                    .map(|p| p.to_string_lossy())
                    .collect();
                let shown = format!("/{}", names.join("/"));
                Ok(Next::Link { target, shown })
            }
            // A directory, a file, or nothing yet: nothing to follow.
            _ => Ok(Next::Step(part)),
        }
    })?;
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}
// ANCHOR_END: resolve

/// The container's own files, read from the host before it starts, as the
/// container will see them: its /etc/passwd for `--user` (stage 04), read
/// from a root directory here, through an image's layers in stage 06.
// ANCHOR: root_files
pub trait RootFiles {
    /// The text of the file at `path` (a container path), if it has one.
    fn read(&self, path: &str) -> Option<String>;
}

/// A root filesystem that is a directory on the host.
#[derive(Debug, Clone, Copy)]
pub struct RootDir<'a>(pub &'a Path);

impl RootFiles for RootDir<'_> {
    fn read(&self, path: &str) -> Option<String> {
        let host = resolve_in_root(self.0, Path::new(path)).ok()?;
        let meta = std::fs::symlink_metadata(&host).ok()?;
        // Only a regular file: a FIFO or device named /etc/passwd would hang
        // or feed the runtime forever.
        if !meta.is_file() {
            return None;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::fs::File::open(host).ok()?, 16 << 20),
            &mut text,
        )
        .ok()?;
        Some(text)
    }
}
// ANCHOR_END: root_files

/// Why a directory could not be opened inside a root through descriptors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{path}: {component} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("{path}: {call}: {errno}")]
    Io {
        path: String,
        call: &'static str,
        errno: nix::errno::Errno,
    },
}

/// [`resolve_in_root`]'s rules, walked through descriptors: open the
/// directory `path` (a container path) inside the directory `root` is open
/// on. Each component is opened with `O_NOFOLLOW` relative to the one
/// before, so a link is never followed by the kernel behind the walk's back:
/// it is read (`readlinkat`) and walked in place, an absolute one from
/// `root` again, and a `..` that would climb above `root` is refused.
/// Missing directories are made with `mode` when it is given.
///
/// What is resolved by path can change between the check and the use (a
/// rename, a new symlink); what is opened cannot. This is how a layer is
/// unpacked (stage 07): an archive's entry names are untrusted, and every
/// file is created and changed through the descriptor of its parent.
// ANCHOR: open_dir_in_root
pub fn open_dir_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: Option<Mode>,
) -> Result<OwnedFd, OpenError> {
    use nix::errno::Errno;
    use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
    use nix::sys::stat::{SFlag, fstatat, mkdirat};

    let io = |call, errno| OpenError::Io {
        path: path.display().to_string(),
        call,
        errno,
    };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut walked = walk(path, |walked: &[OwnedFd], part| {
        let dir = walked.last().map_or(root, |fd| fd.as_fd());
        let opened = match openat(dir, part.as_os_str(), flags, Mode::empty()) {
            Err(Errno::ENOENT) if mode.is_some() => {
                match mkdirat(dir, part.as_os_str(), mode.unwrap_or(Mode::empty())) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(io("mkdirat", errno)),
                }
                openat(dir, part.as_os_str(), flags, Mode::empty())
            }
            other => other,
        };
        match opened {
            Ok(fd) => Ok(Next::Step(fd)),
            // Not a directory: a symlink to walk, or a dead end.
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                let stat = fstatat(dir, part.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| io("fstatat", e))?;
                if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                    return Err(OpenError::NotADirectory {
                        path: path.display().to_string(),
                        component: part.to_string_lossy().into_owned(),
                    });
                }
                let target = readlinkat(dir, part.as_os_str()).map_err(|e| io("readlinkat", e))?;
                let shown = part.to_string_lossy().into_owned();
                Ok(Next::Link {
                    target: PathBuf::from(target),
                    shown,
                })
            }
            Err(errno) => Err(io("openat", errno)),
        }
    })?;
    match walked.pop() {
        Some(fd) => Ok(fd),
        // The root itself: a descriptor of its own.
        None => nix::unistd::dup(root).map_err(|e| io("dup", e)),
    }
}
// ANCHOR_END: open_dir_in_root

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("../../../../etc", root.join("var/escape")).unwrap();
        symlink("../etc", root.join("usr/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        dir
    }

    #[test]
    fn plain_paths_join_the_root() {
        let dir = rootfs();
        let root = dir.path();
        assert_eq!(
            resolve_in_root(root, Path::new("/etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/new/dir")).unwrap(),
            root.join("new/dir")
        );
    }

    #[test]
    fn absolute_symlinks_start_again_from_the_root() {
        let dir = rootfs();
        let root = dir.path();
        assert_eq!(
            resolve_in_root(root, Path::new("/var/run/app.sock")).unwrap(),
            root.join("run/app.sock")
        );
    }

    #[test]
    fn relative_symlinks_inside_the_root_are_followed() {
        let dir = rootfs();
        let root = dir.path();
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/x")).unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/usr/up/hosts")).unwrap(),
            root.join("etc/hosts")
        );
    }

    #[test]
    fn a_symlink_climbing_out_is_refused_and_named() {
        let dir = rootfs();
        let err = resolve_in_root(dir.path(), Path::new("/var/escape/passwd")).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"/var/escape/passwd leads out of the root filesystem through the symlink /var/escape -> ../../../../etc");
    }

    #[test]
    fn dot_dot_above_the_root_is_refused() {
        let dir = rootfs();
        assert!(matches!(
            resolve_in_root(dir.path(), Path::new("/../etc")),
            Err(ResolveError::Escapes { .. })
        ));
    }

    fn opened(root: &Path, path: &str, create: bool) -> Result<PathBuf, OpenError> {
        let dir = std::fs::File::open(root).unwrap();
        let mode = create.then(|| Mode::from_bits_truncate(0o755));
        let fd = open_dir_in_root(dir.as_fd(), Path::new(path), mode)?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        Ok(std::fs::read_link(link).unwrap())
    }

    #[test]
    fn descriptors_follow_the_same_rules_as_paths() {
        let dir = rootfs();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(opened(&root, "/var/run", false).unwrap(), root.join("run"));
        assert_eq!(opened(&root, "lib", false).unwrap(), root.join("usr/lib"));
        assert_eq!(opened(&root, "/usr/up", false).unwrap(), root.join("etc"));
        assert_eq!(opened(&root, "/", false).unwrap(), root);
        assert!(matches!(
            opened(&root, "/var/escape", false),
            Err(OpenError::Resolve(ResolveError::Escapes { .. }))
        ));
        assert!(matches!(
            opened(&root, "/loop", false),
            Err(OpenError::Resolve(ResolveError::Loop { .. }))
        ));
        assert!(matches!(
            opened(&root, "/nope", false),
            Err(OpenError::Io {
                errno: nix::errno::Errno::ENOENT,
                ..
            })
        ));
    }

    #[test]
    fn missing_directories_are_made_inside_never_outside() {
        let dir = rootfs();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.join("abs")).unwrap();
        assert_eq!(
            opened(&root, "/var/run/new/deep", true).unwrap(),
            root.join("run/new/deep")
        );
        // An absolute symlink restarts at the root: the host directory it
        // names is never touched.
        let inside = opened(&root, "/abs/made", true).unwrap();
        assert!(inside.starts_with(&root), "{}", inside.display());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        std::fs::write(root.join("file"), "x").unwrap();
        assert!(matches!(
            opened(&root, "/file/x", true),
            Err(OpenError::NotADirectory { .. })
        ));
    }

    #[test]
    fn symlink_loops_end() {
        let dir = rootfs();
        assert!(matches!(
            resolve_in_root(dir.path(), Path::new("/loop/x")),
            Err(ResolveError::Loop { .. })
        ));
    }
}
