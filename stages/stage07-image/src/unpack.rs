//! Unpacking a layer: a (compressed) tar archive into a directory that
//! becomes one overlay lower.
//!
//! [`crate::archive`] reads the archive; what an archive *means* as a layer
//! is handled here, and every entry is hostile until proven otherwise:
//!
//! - **containment.** Nothing may be written outside the layer directory.
//!   A name with a `..` that climbs out is refused; an absolute name is
//!   relative to the layer. Every entry's parent is opened through
//!   descriptors (stage 03's [`open_dir_in_root`]): component by component,
//!   with `O_NOFOLLOW`, a symlink read and walked inside the layer (an
//!   absolute one from the layer's top), never followed by the kernel. The
//!   entry is then made, and changed, through that parent's descriptor: a
//!   file is opened `O_CREAT|O_EXCL|O_NOFOLLOW` and its owner, mode,
//!   extended attributes and times are set on the open file; a symlink or
//!   device node is changed with `AT_SYMLINK_NOFOLLOW` or through its
//!   parent, never through what it points to. A hard link must name a file
//!   already unpacked inside the layer.
//! - **whiteouts.** An OCI layer marks a deleted file `a/b` with an empty
//!   entry `a/.wh.b`, and a directory whose lower contents are gone with
//!   `a/.wh..wh..opq`. overlayfs, reading the unpacked layers, wants a
//!   character device 0:0 named `b`, and an `overlay.opaque` extended
//!   attribute on `a`. A whiteout whose name is empty, `.` or `..` names no
//!   file and is refused: removing "`..`" would remove the layer's parent.
//!   (Creating a 0:0 device is allowed without CAP_MKNOD since Linux 5.8,
//!   so rootless unpacking can do it too.)
//! - **bounds.** Unpacking stops, and the layer is not kept, once it has
//!   read more than the maximum unpacked size (`--max-unpacked-size`: every
//!   byte of entry data, and 512 bytes for each entry), or once the store's
//!   filesystem gets down to its reserve of free space or inodes: checked as
//!   it goes, not after.
//! - **metadata.** Modes, owners (as root), extended attributes (but never
//!   overlayfs's own, which would let a layer forge redirects), device
//!   nodes (as root), modification times.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use stage01_uts::cli::untrusted_bytes;
use stage03_mount::path::{OpenError, ResolveError, open_dir_in_root};

use crate::archive::{Archive, ArchiveError, Entry, Kind};

/// What a layer may unpack to unless told otherwise: 32 GiB.
pub const DEFAULT_MAX_UNPACKED: u64 = 32 << 30;
/// What each entry counts against the bound besides its data (the inode,
/// the directory entry): a layer of a million empty files is not free.
pub const ENTRY_COST: u64 = 512;
/// Directories whose times are set once the layer is done (later entries
/// change them); past this many, a directory's time is set at once.
const DIR_TIMES_MAX: usize = 100_000;

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the layer tries to write outside its directory: {path:?}")]
    Escape { path: String },
    #[error(
        "the layer has a whiteout {path:?} that names no file ({why}); a hostile or broken layer"
    )]
    BadWhiteout { path: String, why: &'static str },
    #[error("the layer's archive is damaged: {0}")]
    Corrupt(String),
    #[error("the layer holds {0}")]
    Unsupported(String),
    #[error(
        "the layer unpacks to more than {max} bytes, the most one may (--max-unpacked-size); \
         if the image is genuine, pull it with a larger limit"
    )]
    TooLarge { max: u64 },
    #[error("no space left: unpacking stopped at the store's reserve of free space")]
    NoSpace,
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl From<ArchiveError> for UnpackError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Unsupported(what) => UnpackError::Unsupported(what),
            ArchiveError::Io(e) => UnpackError::Corrupt(e.to_string()),
            other => UnpackError::Corrupt(other.to_string()),
        }
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
    /// What was left out: entries that need root (device nodes, other
    /// owners) kept with the unpacking user's ids, extended attributes that
    /// could not be set or may not come from a layer.
    pub skipped: u64,
}

/// How far a layer may go.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The most bytes of entry data (and [`ENTRY_COST`] per entry) read.
    pub max_unpacked: u64,
    /// A path on the filesystem whose free space and inodes are watched.
    pub watch: PathBuf,
}

impl Bounds {
    pub fn new(max_unpacked: u64, watch: &Path) -> Bounds {
        Bounds {
            max_unpacked,
            watch: watch.to_path_buf(),
        }
    }
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
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        // ruzstd refuses frames whose window is over 100 MiB: the memory a
        // frame can ask for is bounded too.
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
        _ => Box::new(reader),
    })
}

/// Unpack the archive at `blob` into `dest` (an empty directory).
// ANCHOR: unpack
pub fn unpack(blob: &Path, dest: &Path, bounds: &Bounds) -> Result<Unpacked, UnpackError> {
    let reader = decompress(File::open(blob).map_err(io_at(blob))?).map_err(io_at(blob))?;
    let root = nix::fcntl::open(
        dest,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_at(dest)(e.into()))?;
    // Modes are the layer's, exactly: nothing masked off by the runtime's
    // umask. (The pull is a process of its own.)
    let _umask = UmaskZero::set();
    let mut unpacker = Unpacker {
        root,
        archive: Archive::new(reader),
        bounds,
        as_root: Uid::effective().is_root(),
        done: Unpacked::default(),
        dir_times: Vec::new(),
        charged_entries: 0,
        last_check: 0,
    };
    while let Some(entry) = unpacker.archive.next_entry()? {
        unpacker.charge_entry()?;
        unpacker.entry(&entry)?;
    }
    unpacker.charge()?;
    unpacker.set_dir_times();
    Ok(unpacker.done)
}
// ANCHOR_END: unpack

struct Unpacker<'b, R> {
    /// The layer's directory.
    root: OwnedFd,
    archive: Archive<R>,
    bounds: &'b Bounds,
    as_root: bool,
    done: Unpacked,
    /// Directories (inside the layer) and their times, set at the end.
    dir_times: Vec<(PathBuf, u64)>,
    charged_entries: u64,
    /// What was unpacked when free space was last looked at.
    last_check: u64,
}

impl<R: Read> Unpacker<'_, R> {
    fn entry(&mut self, entry: &Entry) -> Result<(), UnpackError> {
        let Some(relative) = contained(&entry.path)? else {
            // The layer's root itself: it stays as the store made it (0755,
            // root's), whatever the archive's `./` says.
            return Ok(());
        };
        let (parent_path, name) = split(&relative);
        let parent = self.open_parent(&parent_path, &entry.path)?;
        let parent = parent.as_fd();
        let name_bytes = name.as_bytes();
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(parent, hidden, entry);
        }
        self.done.entries += 1;
        let shown = || untrusted_bytes(&entry.path);
        let io = |e: Errno| UnpackError::Io {
            path: shown(),
            source: e.into(),
        };
        match entry.kind {
            Kind::Directory => {
                let exists = fstatat(parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ok()
                    .map(|st| kind_of(st.st_mode));
                if exists != Some(SFlag::S_IFDIR) {
                    if exists.is_some() {
                        remove_at(parent, &name).map_err(|e| UnpackError::Io {
                            path: shown(),
                            source: e,
                        })?;
                    }
                    match mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                let dir = openat(
                    parent,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                self.owner_mode_xattrs(&dir, entry).map_err(io)?;
                if self.dir_times.len() < DIR_TIMES_MAX {
                    self.dir_times.push((relative, entry.mtime));
                } else {
                    set_times_at(parent, &name, entry.mtime);
                }
            }
            Kind::Regular => {
                remove_at(parent, &name).map_err(|e| UnpackError::Io {
                    path: shown(),
                    source: e,
                })?;
                let file = openat(
                    parent,
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(io)?;
                let mut file = File::from(file);
                self.copy_data(&mut file, &shown())?;
                self.done.files += 1;
                self.owner_mode_xattrs(&file, entry).map_err(io)?;
                let time = nix::sys::time::TimeSpec::new(entry.mtime as i64, 0);
                let _ = nix::sys::stat::futimens(&file, &time, &time);
            }
            Kind::Symlink => {
                remove_at(parent, &name).map_err(|e| UnpackError::Io {
                    path: shown(),
                    source: e,
                })?;
                // Kept as written: it is read inside the container, where
                // `/etc` is the container's.
                nix::unistd::symlinkat(OsStr::from_bytes(&entry.link), parent, name.as_os_str())
                    .map_err(io)?;
                self.at_metadata(parent, &name, entry).map_err(io)?;
            }
            Kind::HardLink => {
                let (source_dir, source_name) = self.hardlink_source(&entry.link)?;
                let same = fstatat(parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ok()
                    .zip(
                        fstatat(
                            &source_dir,
                            source_name.as_os_str(),
                            AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .ok(),
                    )
                    .is_some_and(|(a, b)| (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino));
                if !same {
                    remove_at(parent, &name).map_err(|e| UnpackError::Io {
                        path: shown(),
                        source: e,
                    })?;
                    // Flags 0: a link to a symlink links the symlink itself.
                    nix::unistd::linkat(
                        &source_dir,
                        source_name.as_os_str(),
                        parent,
                        name.as_os_str(),
                        AtFlags::empty(),
                    )
                    .map_err(io)?;
                }
                // The link shares the source's metadata.
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                remove_at(parent, &name).map_err(|e| UnpackError::Io {
                    path: shown(),
                    source: e,
                })?;
                let kind = match entry.kind {
                    Kind::Char => SFlag::S_IFCHR,
                    Kind::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = nix::sys::stat::makedev(entry.dev_major, entry.dev_minor);
                let mode = Mode::from_bits_truncate(entry.mode & 0o777);
                match mknodat(parent, name.as_os_str(), kind, mode, dev) {
                    Ok(()) => self.at_metadata(parent, &name, entry).map_err(io)?,
                    // Device nodes need root (rootless: left out, as podman
                    // does).
                    Err(Errno::EPERM) => self.done.skipped += 1,
                    Err(e) => return Err(io(e)),
                }
            }
        }
        Ok(())
    }

    /// The entry's parent directory, opened inside the layer (made if
    /// missing, as tar does).
    fn open_parent(&self, parent: &Path, raw: &[u8]) -> Result<OwnedFd, UnpackError> {
        open_dir_in_root(
            self.root.as_fd(),
            parent,
            Some(Mode::from_bits_truncate(0o755)),
        )
        .map_err(|e| open_error(e, raw))
    }

    /// `.wh.NAME` in `parent`: NAME is deleted (a 0:0 character device);
    /// `.wh..wh..opq`: the directory is opaque.
    // ANCHOR: whiteout
    fn whiteout(
        &mut self,
        parent: BorrowedFd<'_>,
        hidden: &[u8],
        entry: &Entry,
    ) -> Result<(), UnpackError> {
        let shown = || untrusted_bytes(&entry.path);
        let io = |source: io::Error| UnpackError::Io {
            path: shown(),
            source,
        };
        if hidden == b".wh..opq" {
            let dir = openat(
                parent,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io(e.into()))?;
            if self.as_root {
                fset_xattr(&dir, "trusted.overlay.opaque", b"y").map_err(io)?;
            }
            fset_xattr(&dir, "user.overlay.opaque", b"y").map_err(io)?;
            self.done.whiteouts += 1;
            return Ok(());
        }
        if hidden.starts_with(b".wh.") {
            // aufs's own bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not a
            // file of the image.
            self.done.skipped += 1;
            return Ok(());
        }
        let why = match hidden {
            b"" => Some("the name after .wh. is empty"),
            b"." => Some("it would delete the directory itself"),
            b".." => Some("it would delete the directory above"),
            _ => None,
        };
        if let Some(why) = why {
            return Err(UnpackError::BadWhiteout { path: shown(), why });
        }
        let hidden = OsStr::from_bytes(hidden);
        remove_at(parent, hidden).map_err(io)?;
        mknodat(parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| io(e.into()))?;
        self.done.whiteouts += 1;
        Ok(())
    }
    // ANCHOR_END: whiteout

    /// The directory and name of the file a hard link names: inside the
    /// layer, unpacked already, not a directory.
    fn hardlink_source(&self, link: &[u8]) -> Result<(OwnedFd, std::ffi::OsString), UnpackError> {
        let escape = || UnpackError::Escape {
            path: untrusted_bytes(link),
        };
        let relative = contained(link)?.ok_or_else(escape)?;
        let (parent, name) = split(&relative);
        let missing = || {
            UnpackError::Corrupt(format!(
                "hard link to {:?}, which the layer does not hold",
                untrusted_bytes(link)
            ))
        };
        let dir = open_dir_in_root(self.root.as_fd(), &parent, None).map_err(|e| match e {
            OpenError::Resolve(ResolveError::Escapes { .. }) => escape(),
            _ => missing(),
        })?;
        match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(st.st_mode) != SFlag::S_IFDIR => Ok((dir, name)),
            _ => Err(missing()),
        }
    }

    /// Owner, then mode (chown clears setuid and setgid), then extended
    /// attributes, all on the open file.
    fn owner_mode_xattrs(&mut self, fd: &impl AsFd, entry: &Entry) -> Result<(), Errno> {
        if let Some((uid, gid)) = self.owner(entry)? {
            nix::unistd::fchown(fd, Some(uid), Some(gid))?;
        }
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(entry.mode))?;
        for (name, value) in &entry.xattrs {
            let applied = xattr_name(name)
                .map(|name| fset_xattr(fd, &name, value).is_ok())
                .unwrap_or(false);
            if !applied {
                self.done.skipped += 1;
            }
        }
        Ok(())
    }

    /// Owner, extended attributes and time of a symlink or node, by name
    /// in its parent, never following it.
    fn at_metadata(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        entry: &Entry,
    ) -> Result<(), Errno> {
        if let Some((uid, gid)) = self.owner(entry)? {
            nix::unistd::fchownat(
                parent,
                name,
                Some(uid),
                Some(gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        for (xname, value) in &entry.xattrs {
            // No fsetxattr for something not opened: lsetxattr on its name
            // inside the parent, reached through the parent's descriptor.
            let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
            path.extend_from_slice(name.as_bytes());
            let applied = xattr_name(xname)
                .map(|xname| lset_xattr(Path::new(OsStr::from_bytes(&path)), &xname, value).is_ok())
                .unwrap_or(false);
            if !applied {
                self.done.skipped += 1;
            }
        }
        set_times_at(parent, name, entry.mtime);
        Ok(())
    }

    /// The ids to give an entry: its own, as root; none (the unpacking
    /// user's) otherwise. `(uid_t)-1` means "unchanged" to chown and is no
    /// owner a file can have.
    fn owner(&mut self, entry: &Entry) -> Result<Option<(Uid, Gid)>, Errno> {
        let valid = |id: u64| id < u64::from(u32::MAX);
        if !valid(entry.uid) || !valid(entry.gid) {
            return Err(Errno::EINVAL);
        }
        if self.as_root {
            return Ok(Some((
                Uid::from_raw(entry.uid as u32),
                Gid::from_raw(entry.gid as u32),
            )));
        }
        if entry.uid != 0 || entry.gid != 0 {
            // An ordinary user owns what it unpacks; inside its user
            // namespace that is root.
            self.done.skipped += 1;
        }
        Ok(None)
    }

    /// An entry's data into `out`, counted against the bound as it goes.
    fn copy_data(&mut self, out: &mut File, shown: &str) -> Result<(), UnpackError> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match self.archive.data().read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Corrupt(e.to_string())),
            };
            out.write_all(&buf[..n]).map_err(|source| UnpackError::Io {
                path: shown.to_owned(),
                source,
            })?;
            self.done.bytes += n as u64;
            self.charge()?;
        }
    }

    fn charge_entry(&mut self) -> Result<(), UnpackError> {
        self.charged_entries += 1;
        self.charge()
    }

    /// Check the bounds: bytes read so far (data of every entry, read or
    /// skipped, and the cost of each entry), and every few MiB the free
    /// space and inodes of the store's filesystem.
    // ANCHOR: charge
    fn charge(&mut self) -> Result<(), UnpackError> {
        let used = self
            .archive
            .data_bytes()
            .saturating_add(self.charged_entries.saturating_mul(ENTRY_COST));
        if used > self.bounds.max_unpacked {
            return Err(UnpackError::TooLarge {
                max: self.bounds.max_unpacked,
            });
        }
        if used - self.last_check >= 4 << 20 {
            self.last_check = used;
            if below_reserve(&self.bounds.watch) {
                return Err(UnpackError::NoSpace);
            }
        }
        Ok(())
    }
    // ANCHOR_END: charge

    /// Directories' times, last (their entries changed them), deepest
    /// first; a directory no longer there (a later entry replaced it) is
    /// left out.
    fn set_dir_times(&mut self) {
        for (dir, mtime) in self.dir_times.drain(..).rev() {
            let (parent, name) = split(&dir);
            if let Ok(parent) = open_dir_in_root(self.root.as_fd(), &parent, None) {
                set_times_at(parent.as_fd(), &name, mtime);
            }
        }
    }
}

/// The reserve the store's filesystem keeps: 2% of it, at most 256 MiB of
/// space (and 2%, at most 10000, of its inodes).
// ANCHOR: reserve
pub fn below_reserve(path: &Path) -> bool {
    let Ok(fs) = nix::sys::statvfs::statvfs(path) else {
        return false;
    };
    let block = fs.fragment_size().max(1);
    let total = fs.blocks().saturating_mul(block);
    let free = fs.blocks_available().saturating_mul(block);
    let reserve = (total / 50).min(256 << 20);
    let inodes = fs.files();
    let inodes_reserve = (inodes / 50).min(10_000);
    free < reserve || (inodes > 0 && fs.files_available() < inodes_reserve)
}
// ANCHOR_END: reserve

fn kind_of(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT
}

fn set_times_at(parent: BorrowedFd<'_>, name: &OsStr, mtime: u64) {
    let time = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    let _ = nix::sys::stat::utimensat(
        parent,
        name,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// Remove `name` in `dir`, whatever it is, never following it: a file or
/// link is unlinked, a directory removed with everything in it (std's
/// remove_dir_all does not follow symlinks it meets, and starts here from
/// the directory's descriptor).
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if kind_of(st.st_mode) == SFlag::S_IFDIR => {
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(name.as_bytes());
            std::fs::remove_dir_all(OsStr::from_bytes(&path))
        }
        Ok(_) => nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(Into::into),
    }
}

/// An extended attribute a layer may set: a valid name, and none of
/// overlayfs's own (`trusted.overlay.*`, `user.overlay.*`): set on a lower
/// file they would forge redirects, origins or opaque markers that
/// overlayfs trusts.
fn xattr_name(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let forged = name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
    (!name.is_empty() && name.len() <= 255 && !name.contains('\0') && !forged)
        .then(|| name.to_owned())
}

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
                        path: untrusted_bytes(raw),
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

fn open_error(e: OpenError, raw: &[u8]) -> UnpackError {
    let path = untrusted_bytes(raw);
    match e {
        OpenError::Resolve(ResolveError::Escapes { .. }) => UnpackError::Escape { path },
        OpenError::Resolve(other) => UnpackError::Corrupt(format!("{path}: {other}")),
        OpenError::NotADirectory { component, .. } => UnpackError::Corrupt(format!(
            "{path}: {} is not a directory",
            stage01_uts::cli::Untrusted(&component)
        )),
        OpenError::Io { errno, .. } => UnpackError::Io {
            path,
            source: errno.into(),
        },
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The process's umask at 0 while alive, as it was after.
struct UmaskZero(Mode);

impl UmaskZero {
    fn set() -> UmaskZero {
        UmaskZero(nix::sys::stat::umask(Mode::empty()))
    }
}

impl Drop for UmaskZero {
    fn drop(&mut self) {
        nix::sys::stat::umask(self.0);
    }
}

/// An opaque directory: its lower layers' contents do not show through.
/// overlayfs reads `trusted.overlay.opaque`, or `user.overlay.opaque` when
/// mounted with `userxattr` (in a user namespace); root writes both.
fn fset_xattr(fd: &impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name)?;
    // SAFETY: a descriptor this process owns, a valid C string, and a
    // buffer of the given length.
    zero_or_errno(unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn zero_or_errno(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lset_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    let name = CString::new(name)?;
    // SAFETY: valid C strings and a buffer of the given length.
    zero_or_errno(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// A tar archive with entries written byte by byte: the tar crate's
    /// builder refuses `..` names, and the tests need them.
    pub(super) struct Tar(Vec<u8>);

    impl Tar {
        pub(super) fn new() -> Tar {
            Tar(Vec::new())
        }

        pub(super) fn entry(
            mut self,
            name: &str,
            kind: tar::EntryType,
            link: &str,
            data: &[u8],
        ) -> Tar {
            self = self.entry_mode(
                name,
                kind,
                link,
                data,
                if kind.is_dir() { 0o755 } else { 0o644 },
            );
            self
        }

        pub(super) fn entry_mode(
            mut self,
            name: &str,
            kind: tar::EntryType,
            link: &str,
            data: &[u8],
            mode: u32,
        ) -> Tar {
            let mut header = tar::Header::new_gnu();
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            self.0.extend_from_slice(header.as_bytes());
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().div_ceil(512) * 512, 0);
            self
        }

        pub(super) fn file(self, name: &str, data: &str) -> Tar {
            self.entry(name, tar::EntryType::Regular, "", data.as_bytes())
        }

        pub(super) fn dir(self, name: &str) -> Tar {
            self.entry(name, tar::EntryType::Directory, "", b"")
        }

        pub(super) fn write(mut self, gzip: bool) -> tempfile::NamedTempFile {
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

    pub(super) fn bounds(dest: &Path) -> Bounds {
        Bounds::new(DEFAULT_MAX_UNPACKED, dest)
    }

    fn unpacked(blob: &Path, dest: &Path) -> Result<Unpacked, UnpackError> {
        unpack(blob, dest, &bounds(dest))
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
        let done = unpacked(blob.path(), dest.path()).unwrap();
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
    fn modes_are_the_layers_exactly() {
        let blob = Tar::new()
            .entry_mode("tool", tar::EntryType::Regular, "", b"x", 0o4755)
            .entry_mode("shared/", tar::EntryType::Directory, "", b"", 0o1777)
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        unpacked(blob.path(), dest.path()).unwrap();
        let mode = |p: &str| fs::metadata(dest.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("tool"), 0o4755);
        assert_eq!(mode("shared"), 0o1777);
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
        let done = unpacked(blob.path(), dest.path()).unwrap();
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
    fn whiteouts_that_name_no_file_are_refused_and_remove_nothing() {
        for name in [".wh.", ".wh..", ".wh...", "sub/.wh..."] {
            let top = tempfile::tempdir().unwrap();
            let dest = top.path().join("layer");
            fs::create_dir(&dest).unwrap();
            let sibling = top.path().join("sibling");
            fs::write(&sibling, "keep").unwrap();
            let blob = Tar::new().dir("sub/").file(name, "").write(false);
            let err = unpacked(blob.path(), &dest).unwrap_err();
            assert!(
                matches!(err, UnpackError::BadWhiteout { .. }),
                "{name}: {err}"
            );
            assert!(
                sibling.exists() && dest.exists(),
                "{name} removed something"
            );
        }
    }

    #[test]
    fn a_name_climbing_out_is_refused() {
        let blob = Tar::new().file("../../outside", "x").write(false);
        let dest = tempfile::tempdir().unwrap();
        let err = unpacked(blob.path(), dest.path()).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"the layer tries to write outside its directory: "../../outside""#);
    }

    #[test]
    fn absolute_names_land_inside() {
        let blob = Tar::new().file("/abs/file", "x").write(false);
        let dest = tempfile::tempdir().unwrap();
        unpacked(blob.path(), dest.path()).unwrap();
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
        let result = unpacked(blob.path(), dest.path());
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
    fn metadata_never_goes_through_a_symlink() {
        // A symlink to a host directory, then a directory entry of the same
        // name with mode 0777: the host directory's mode must not change.
        let outside = tempfile::tempdir().unwrap();
        fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let host_file = outside.path().join("file");
        fs::write(&host_file, "host").unwrap();
        fs::set_permissions(&host_file, fs::Permissions::from_mode(0o600)).unwrap();
        let blob = Tar::new()
            .entry(
                "v",
                tar::EntryType::Symlink,
                &outside.path().display().to_string(),
                b"",
            )
            .entry_mode("v/", tar::EntryType::Directory, "", b"", 0o777)
            .entry(
                "f",
                tar::EntryType::Symlink,
                &host_file.display().to_string(),
                b"",
            )
            .entry_mode("f", tar::EntryType::Regular, "", b"layer", 0o4777)
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        unpacked(blob.path(), dest.path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(
            mode(outside.path()),
            0o700,
            "the host directory's mode changed"
        );
        assert_eq!(mode(&host_file), 0o600, "the host file's mode changed");
        assert_eq!(fs::read_to_string(&host_file).unwrap(), "host");
        assert!(
            dest.path().join("v").is_dir(),
            "the entry replaced the link"
        );
        assert_eq!(mode(&dest.path().join("f")), 0o4777);
    }

    #[test]
    fn a_hard_link_to_outside_is_refused() {
        let blob = Tar::new()
            .entry("passwd", tar::EntryType::Link, "../../../etc/passwd", b"")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpacked(blob.path(), dest.path()),
            Err(UnpackError::Escape { .. })
        ));
        let through_link = Tar::new()
            .entry("etc", tar::EntryType::Symlink, "/etc", b"")
            .entry("shadow", tar::EntryType::Link, "etc/shadow", b"")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        assert!(
            matches!(
                unpacked(through_link.path(), dest.path()),
                Err(UnpackError::Corrupt(_))
            ),
            "/etc is the layer's own, which holds no shadow"
        );
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let blob = Tar::new()
            .file("f", "one")
            .file("f", "two")
            .dir("d/")
            .file("d/x", "x")
            .file("d", "now a file")
            .write(false);
        let dest = tempfile::tempdir().unwrap();
        unpacked(blob.path(), dest.path()).unwrap();
        assert_eq!(fs::read_to_string(dest.path().join("f")).unwrap(), "two");
        assert_eq!(
            fs::read_to_string(dest.path().join("d")).unwrap(),
            "now a file"
        );
    }

    #[test]
    fn an_expansion_bomb_stops_at_the_bound() {
        let zeros = vec![0u8; 8 << 20];
        let blob = Tar::new()
            .entry("bomb", tar::EntryType::Regular, "", &zeros)
            .write(true);
        assert!(
            fs::metadata(blob.path()).unwrap().len() < 64 << 10,
            "it compresses"
        );
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(blob.path(), dest.path(), &Bounds::new(1 << 20, dest.path())).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { max } if max == 1 << 20),
            "{err}"
        );
    }

    #[test]
    fn data_skipped_counts_too_and_so_do_entries() {
        // A directory entry that claims 4 MiB of data: nothing is written,
        // but it is read.
        let blob = Tar::new()
            .entry("d/", tar::EntryType::Directory, "", &vec![0u8; 4 << 20])
            .write(true);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(blob.path(), dest.path(), &Bounds::new(1 << 20, dest.path())).unwrap_err();
        assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
        let mut many = Tar::new();
        for n in 0..300 {
            many = many.file(&format!("f{n}"), "");
        }
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(
            many.write(false).path(),
            dest.path(),
            &Bounds::new(100 * ENTRY_COST, dest.path()),
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn overlayfs_attributes_cannot_come_from_a_layer() {
        assert!(xattr_name(b"user.overlay.redirect").is_none());
        assert!(xattr_name(b"trusted.overlay.origin").is_none());
        assert!(xattr_name(b"user.note").is_some());
        assert!(xattr_name(b"").is_none());
    }
}
