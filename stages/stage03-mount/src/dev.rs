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
// ANCHOR: devices
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
// ANCHOR_END: devices

/// The devices and links every container's /dev holds, made in the tmpfs
/// the spec mounted there.
// ANCHOR: make_devices
pub fn make_devices(sys: &dyn MountSys, dev: &Path) -> Result<(), Error> {
    for (name, major, minor) in DEVICES {
        make_device(sys, &dev.join(name), major, minor)?;
    }
    for (name, target) in LINKS {
        symlink(target, dev.join(name)).map_err(|e| io_error("symlink", &dev.join(name), e))?;
    }
    Ok(())
}
// ANCHOR_END: make_devices

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

pub(crate) fn io_error(call: &str, path: &Path, e: std::io::Error) -> Error {
    Error::syscall(
        format!("{call}({:?})", path.display().to_string()),
        "preparing the container's files",
        nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}
