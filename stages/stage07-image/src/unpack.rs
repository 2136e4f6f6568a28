//! Unpacking a layer: a (compressed) tar archive into a directory that
//! becomes one overlay lower.
//!
//! The tar crate reads archives; what an archive *means* as a layer is
//! handled here:
//!
//! - **whiteouts.** An OCI layer marks a deleted file `a/b` with an empty
//!   entry `a/.wh.b`, and a directory whose lower contents are gone with
//!   `a/.wh..wh..opq`. overlayfs, reading the unpacked layers, wants a
//!   character device 0:0 named `b`, and an `overlay.opaque` extended
//!   attribute on `a`. (Creating a 0:0 device is allowed without CAP_MKNOD
//!   since Linux 5.8, so rootless unpacking can do it too.)
//! - **containment.** Nothing may be written outside the layer directory:
//!   a name with `..` that climbs out is refused; an absolute name is taken
//!   as relative to the layer; every parent is resolved the way the
//!   container will see it (stage 03's `resolve_in_root`), so that a symlink
//!   entry pointing at `/etc`, or a chain of them, leads into the layer's own
//!   `etc`, never the host's; a hard link must name a file inside.
//! - **metadata.** Modes, owners (as root), extended attributes, device
//!   nodes (as root), modification times.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use stage03_mount::path::resolve_in_root;

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the layer tries to write outside its directory: {path:?}")]
    Escape { path: String },
    #[error("the layer's archive is damaged: {0}")]
    Corrupt(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What was unpacked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Files, directories, links and nodes, whiteouts apart.
    pub entries: u64,
    /// Regular files.
    pub files: u64,
    /// Bytes of regular files.
    pub bytes: u64,
    pub whiteouts: u64,
    /// Entries that need root (device nodes, other owners) and were left out
    /// or kept with the unpacking user's ids.
    pub skipped: u64,
}

/// gzip, zstd or plain tar, told by the first bytes (the media type says
/// the same, when the registry sends the right one).
pub fn decompress(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(file);
    let magic = {
        let buf = io::BufRead::fill_buf(&mut reader)?;
        buf.get(..4).map(<[u8]>::to_vec).unwrap_or_default()
    };
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
        _ => Box::new(reader),
    })
}

/// Unpack the archive at `blob` into `dest` (an empty directory).
// ANCHOR: unpack
pub fn unpack(blob: &Path, dest: &Path) -> Result<Unpacked, UnpackError> {
    let reader = decompress(File::open(blob).map_err(io_at(blob))?).map_err(io_at(blob))?;
    let mut archive = tar::Archive::new(reader);
    let root = nix::unistd::Uid::effective().is_root();
    let mut done = Unpacked::default();
    // Directory times are set last: adding entries to a directory changes
    // its modification time.
    let mut dir_times = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Corrupt(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let Some(relative) = contained(&raw)? else {
            continue; // the layer's root itself
        };
        let (parent, name) = split(&relative);
        let parent = inside(dest, &parent, &raw)?;
        fs::create_dir_all(&parent).map_err(io_at(&parent))?;

        // Whiteouts.
        let name_bytes = name.as_bytes();
        if name_bytes == b".wh..wh..opq" {
            mark_opaque(&parent, root).map_err(io_at(&parent))?;
            done.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            let target = parent.join(OsStr::from_bytes(hidden));
            remove_existing(&target)?;
            whiteout(&target).map_err(io_at(&target))?;
            done.whiteouts += 1;
            continue;
        }

        done.entries += 1;
        let target = parent.join(&name);
        let kind = entry.header().entry_type();
        if !(kind.is_dir() && target.is_dir()) {
            remove_existing(&target)?;
        }
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(io_at(&target))?;
                }
                dir_times.push((target.clone(), header.mtime().unwrap_or(0)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(io_at(&target))?;
                done.bytes += io::copy(&mut entry, &mut file).map_err(io_at(&target))?;
                done.files += 1;
            }
            tar::EntryType::Symlink => {
                // Kept as written: it is read inside the container, where
                // `/etc` is the container's.
                let link = header.link_name_bytes().ok_or_else(|| {
                    UnpackError::Corrupt(format!("symlink {relative:?} has no target"))
                })?;
                symlink(OsStr::from_bytes(&link), &target).map_err(io_at(&target))?;
            }
            tar::EntryType::Link => {
                let link = header.link_name_bytes().ok_or_else(|| {
                    UnpackError::Corrupt(format!("hard link {relative:?} has no target"))
                })?;
                let source = hardlink_source(dest, &link)?;
                fs::hard_link(&source, &target).map_err(io_at(&target))?;
                continue; // the link shares the source's metadata
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if !make_node(&target, &header, mode).map_err(io_at(&target))? {
                    done.skipped += 1;
                    continue;
                }
            }
            // Global and per-file PAX headers, GNU long names: read by the
            // tar crate for the entries they describe.
            _ => continue,
        }
        if !metadata(&mut entry, &target, &header, mode, root).map_err(io_at(&target))? {
            done.skipped += 1;
        }
    }
    for (dir, mtime) in dir_times.into_iter().rev() {
        set_mtime(&dir, mtime);
    }
    Ok(done)
}
// ANCHOR_END: unpack

/// The entry's path inside the layer: `None` for the root itself; an error
/// for a `..` that climbs above the root.
fn contained(raw: &[u8]) -> Result<Option<PathBuf>, UnpackError> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for part in Path::new(OsStr::from_bytes(raw)).components() {
        match part {
            Component::Normal(name) => parts.push(name),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(UnpackError::Escape {
                        path: String::from_utf8_lossy(raw).into_owned(),
                    });
                }
            }
            // Absolute names are relative to the layer; `.` means nothing.
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok((!parts.is_empty()).then(|| parts.iter().collect()))
}

fn split(relative: &Path) -> (PathBuf, std::ffi::OsString) {
    let name = relative.file_name().unwrap_or_default().to_owned();
    let parent = relative.parent().map(Path::to_path_buf).unwrap_or_default();
    (parent, name)
}

/// A directory path of the layer, resolved as the container will see it.
fn inside(dest: &Path, parent: &Path, raw: &[u8]) -> Result<PathBuf, UnpackError> {
    resolve_in_root(dest, parent).map_err(|_| UnpackError::Escape {
        path: String::from_utf8_lossy(raw).into_owned(),
    })
}

/// The file a hard link entry names, which must be inside the layer and
/// already unpacked. The last component is not followed: a hard link to a
/// symlink links the symlink.
fn hardlink_source(dest: &Path, link: &[u8]) -> Result<PathBuf, UnpackError> {
    let escape = || UnpackError::Escape {
        path: String::from_utf8_lossy(link).into_owned(),
    };
    let relative = contained(link)?.ok_or_else(escape)?;
    let (parent, name) = split(&relative);
    let source = inside(dest, &parent, link)?.join(name);
    match fs::symlink_metadata(&source) {
        Ok(meta) if !meta.is_dir() => Ok(source),
        _ => Err(UnpackError::Corrupt(format!(
            "hard link to {:?}, which the layer does not hold",
            String::from_utf8_lossy(link)
        ))),
    }
}

/// A later entry replaces an earlier one of the same name.
fn remove_existing(target: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(target).map_err(io_at(target)),
        Ok(_) => fs::remove_file(target).map_err(io_at(target)),
        Err(_) => Ok(()),
    }
}

/// An overlayfs whiteout: a character device 0:0.
// ANCHOR: whiteout
fn whiteout(target: &Path) -> io::Result<()> {
    nix::sys::stat::mknod(
        target,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .map_err(io::Error::from)
}

/// An opaque directory: its lower layers' contents do not show through.
/// overlayfs reads `trusted.overlay.opaque`, or `user.overlay.opaque` when
/// mounted with `userxattr` (in a user namespace); root writes both.
fn mark_opaque(dir: &Path, root: bool) -> io::Result<()> {
    if root {
        set_xattr(dir, "trusted.overlay.opaque", b"y")?;
    }
    set_xattr(dir, "user.overlay.opaque", b"y")
}
// ANCHOR_END: whiteout

fn make_node(target: &Path, header: &tar::Header, mode: u32) -> io::Result<bool> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let kind = match header.entry_type() {
        tar::EntryType::Char => SFlag::S_IFCHR,
        tar::EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let dev = makedev(
        u64::from(header.device_major().ok().flatten().unwrap_or(0)),
        u64::from(header.device_minor().ok().flatten().unwrap_or(0)),
    );
    match mknod(target, kind, Mode::from_bits_truncate(mode), dev) {
        Ok(()) => Ok(true),
        // Device nodes need root (rootless: left out, as podman does).
        Err(nix::errno::Errno::EPERM) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Owner, mode, extended attributes and time of `target`. Returns false if
/// something that needs root was left as it is.
fn metadata<R: Read>(
    entry: &mut tar::Entry<R>,
    target: &Path,
    header: &tar::Header,
    mode: u32,
    root: bool,
) -> io::Result<bool> {
    let symlink = header.entry_type().is_symlink();
    let mut complete = true;
    let (uid, gid) = (
        header.uid().unwrap_or(0) as u32,
        header.gid().unwrap_or(0) as u32,
    );
    if root {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            target,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    } else if uid != 0 || gid != 0 {
        // An ordinary user owns what it unpacks; inside its user namespace
        // that is root.
        complete = false;
    }
    if !symlink {
        // After chown, which clears setuid and setgid bits.
        fs::set_permissions(target, fs::Permissions::from_mode(mode))?;
    }
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for ext in extensions.flatten() {
            let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            let name = String::from_utf8_lossy(name);
            if set_xattr_nofollow(target, &name, ext.value_bytes()).is_err() {
                // security.* and trusted.* need root.
                complete = false;
            }
        }
    }
    if !symlink {
        set_mtime(target, header.mtime().unwrap_or(0));
    }
    Ok(complete)
}

fn set_mtime(path: &Path, mtime: u64) {
    let time = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    xattr(path, name, value, false)
}

fn set_xattr_nofollow(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    xattr(path, name, value, true)
}

fn xattr(path: &Path, name: &str, value: &[u8], nofollow: bool) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let c_name = CString::new(name)?;
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        let f = if nofollow {
            libc::lsetxattr
        } else {
            libc::setxattr
        };
        f(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A tar archive with entries written byte by byte: the tar crate's
    /// builder refuses `..` names, and the tests need them.
    struct Tar(Vec<u8>);

    impl Tar {
        fn new() -> Tar {
            Tar(Vec::new())
        }

        fn entry(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Tar {
            let mut header = tar::Header::new_gnu();
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_size(data.len() as u64);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            self.0.extend_from_slice(header.as_bytes());
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().div_ceil(512) * 512, 0);
            self
        }

        fn file(self, name: &str, data: &str) -> Tar {
            self.entry(name, tar::EntryType::Regular, "", data.as_bytes())
        }

        fn dir(self, name: &str) -> Tar {
            self.entry(name, tar::EntryType::Directory, "", b"")
        }

        fn write(mut self, gzip: bool) -> tempfile::NamedTempFile {
            self.0.extend_from_slice(&[0; 1024]);
            let file = tempfile::NamedTempFile::new().unwrap();
            if gzip {
                let mut enc = flate2::write::GzEncoder::new(
                    file.reopen().unwrap(),
                    flate2::Compression::fast(),
                );
                io::Write::write_all(&mut enc, &self.0).unwrap();
                enc.finish().unwrap();
            } else {
                fs::write(file.path(), &self.0).unwrap();
            }
            file
        }
    }

    #[test]
    fn files_dirs_symlinks_and_hardlinks_unpack() {
        let blob = Tar::new()
            .dir("etc/")
            .file("etc/hostname", "layer\n")
            .entry("etc/alias", tar::EntryType::Symlink, "/etc/hostname", b"")
            .entry("etc/hard", tar::EntryType::Link, "etc/hostname", b"")
            .write(true);
        let dest = tempfile::tempdir().unwrap();
        let done = unpack(blob.path(), dest.path()).unwrap();
        assert_eq!(done.files, 1);
        assert_eq!(
            fs::read_to_string(dest.path().join("etc/hostname")).unwrap(),
            "layer\n"
        );
        assert_eq!(
            fs::read_link(dest.path().join("etc/alias")).unwrap(),
            Path::new("/etc/hostname")
        );
        let (a, b) = (
            dest.path().join("etc/hostname"),
            dest.path().join("etc/hard"),
        );
        assert_eq!(
            fs::metadata(a).unwrap().ino(),
            fs::metadata(b).unwrap().ino()
        );
    }

    #[test]
    fn whiteouts_become_overlayfs_whiteouts() {
        let blob = Tar::new()
            .dir("etc/")
            .file("etc/.wh.passwd", "")
            .dir("var/")
            .file("var/.wh..wh..opq", "")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        let done = unpack(blob.path(), dest.path()).unwrap();
        assert_eq!(done.whiteouts, 2);
        let meta = fs::symlink_metadata(dest.path().join("etc/passwd")).unwrap();
        assert!(
            meta.file_type().is_char_device() && meta.rdev() == 0,
            "a 0:0 character device"
        );
        assert!(!dest.path().join("etc/.wh.passwd").exists());
        let mut value = [0u8; 4];
        let path = CString::new(dest.path().join("var").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and buffer.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                c"user.overlay.opaque".as_ptr(),
                value.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!(&value[..n.max(0) as usize], b"y", "var is opaque");
    }

    #[test]
    fn a_name_climbing_out_is_refused() {
        let blob = Tar::new().file("../../outside", "x").write(false);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(blob.path(), dest.path()).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"the layer tries to write outside its directory: "../../outside""#);
    }

    #[test]
    fn absolute_names_land_inside() {
        let blob = Tar::new().file("/abs/file", "x").write(false);
        let dest = tempfile::tempdir().unwrap();
        unpack(blob.path(), dest.path()).unwrap();
        assert!(dest.path().join("abs/file").is_file());
    }

    #[test]
    fn writing_through_a_symlink_stays_inside_the_layer() {
        let outside = tempfile::tempdir().unwrap();
        let link_to = outside.path().display().to_string();
        let blob = Tar::new()
            .entry("escape", tar::EntryType::Symlink, &link_to, b"")
            .file("escape/planted", "gotcha")
            .entry("up", tar::EntryType::Symlink, "../../../../../../..", b"")
            .file("up/tmp/planted2", "gotcha")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        let result = unpack(blob.path(), dest.path());
        assert!(
            !outside.path().join("planted").exists(),
            "a file was written outside the layer"
        );
        assert!(
            !Path::new("/tmp/planted2").exists(),
            "a file was written outside the layer"
        );
        // The absolute symlink resolves inside; the climbing one is refused.
        assert!(
            dest.path()
                .join(link_to.trim_start_matches('/'))
                .join("planted")
                .is_file()
        );
        assert!(
            matches!(result, Err(UnpackError::Escape { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_hard_link_to_outside_is_refused() {
        let blob = Tar::new()
            .entry("passwd", tar::EntryType::Link, "../../../etc/passwd", b"")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(blob.path(), dest.path()),
            Err(UnpackError::Escape { .. })
        ));
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let blob = Tar::new().file("f", "one").file("f", "two").write(false);
        let dest = tempfile::tempdir().unwrap();
        unpack(blob.path(), dest.path()).unwrap();
        assert_eq!(fs::read_to_string(dest.path().join("f")).unwrap(), "two");
    }
}
