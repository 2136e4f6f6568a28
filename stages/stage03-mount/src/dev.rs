//! A minimal /dev: a small tmpfs holding only the devices every program may
//! safely use, and no host device at all.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use stage01_uts::{Error, explain};

use crate::sys::{self, MountSys};

/// The devices a container gets, as docker and runc give them:
/// (name, major, minor).
pub const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The symlinks of /dev: file descriptors through /proc, and the pty
/// multiplexer of the container's own devpts.
pub const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

// ANCHOR: mount_dev
pub fn mount_dev(sys: &dyn MountSys, dev: &Path) -> Result<(), Error> {
    sys::mount(
        sys,
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "a /dev of the container's own, instead of the host's with all its disks",
    )?;
    for (name, major, minor) in DEVICES {
        make_device(sys, &dev.join(name), major, minor)?;
    }
    let pts = dev.join("pts");
    create_dir(&pts)?;
    sys::mount(
        sys,
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
        "a new devpts instance: the container's terminals, not the host's",
    )?;
    let shm = dev.join("shm");
    create_dir(&shm)?;
    sys::mount(
        sys,
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
        "POSIX shared memory (shm_open) of the container's own",
    )?;
    let mqueue = dev.join("mqueue");
    create_dir(&mqueue)?;
    sys::mount(
        sys,
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
        "POSIX message queues of the container's IPC namespace",
    )?;
    for (name, target) in LINKS {
        symlink(target, dev.join(name)).map_err(|e| io_error("symlink", &dev.join(name), e))?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev

/// A device node; where mknod is refused (in a user namespace only the
/// host's root may make device nodes), the host's node is bound onto an
/// empty file instead, as runc does rootless.
fn make_device(sys: &dyn MountSys, path: &Path, major: u64, minor: u64) -> Result<(), Error> {
    let mode = Mode::from_bits_truncate(0o666);
    match sys.mknod_char(path, mode, major, minor) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) => {
            std::fs::File::create(path).map_err(|e| io_error("create", path, e))?;
            let name = path.file_name().unwrap_or_default();
            return sys::mount(
                sys,
                Some(&Path::new("/dev").join(name)),
                path,
                None,
                MsFlags::MS_BIND,
                None,
                "mknod is refused in a user namespace: bind the host's node instead",
            );
        }
        Err(errno) => {
            return Err(Error::syscall(
                format!("mknod({:?}, {major}:{minor})", path.display().to_string()),
                "making a device node",
                errno,
            ));
        }
    }
    // mknod applied the umask; every container process may use these.
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| io_error("chmod", path, e))?;
    }
    explain!(
        "mknod({path:?}, S_IFCHR|0666, {major}:{minor})" => "ok",
        "only harmless devices; no disk or other host device is reachable"
    );
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| io_error("mkdir", path, e))
}

pub(crate) fn io_error(call: &str, path: &Path, e: std::io::Error) -> Error {
    Error::syscall(
        format!("{call}({:?})", path.display().to_string()),
        "preparing the container's files",
        nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}
