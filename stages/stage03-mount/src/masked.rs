//! Masked and read-only paths: the parts of /proc and /sys that a container
//! must not read or change, hidden or frozen as runc does by default.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use stage01_uts::{Error, explain};

use crate::sys::{self, MountSys};

/// Hidden: a file gets /dev/null bound over it, a directory an empty
/// read-only tmpfs. (Kernel memory, keyrings, timers that leak what other
/// tenants do, firmware tables.)
// ANCHOR: masked
pub const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Read-only: visible, but writing them would reconfigure the host's kernel.
pub const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
// ANCHOR_END: masked

/// Called after pivot_root: the paths are the container's.
// ANCHOR: mask_paths
pub fn mask_paths(sys: &dyn MountSys, paths: &[String]) -> Result<(), Error> {
    for path in paths {
        let path = Path::new(path);
        let flags = MsFlags::MS_BIND;
        match sys.mount(Some(Path::new("/dev/null")), path, None, flags, None) {
            Ok(()) => explain!(
                "mount(\"/dev/null\", {path:?}, MS_BIND)" => "ok",
                "masked: reads as empty"
            ),
            // Not on this kernel: nothing to hide.
            Err(Errno::ENOENT) => {}
            // A directory: /dev/null cannot be bound over it.
            Err(Errno::ENOTDIR) => sys::mount(
                sys,
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
                "masked: an empty read-only directory",
            )?,
            Err(errno) => {
                return Err(Error::syscall(
                    format!(
                        "mount(\"/dev/null\", {:?}, MS_BIND)",
                        path.display().to_string()
                    ),
                    "masking a path",
                    errno,
                ));
            }
        }
    }
    Ok(())
}

pub fn read_only_paths(sys: &dyn MountSys, paths: &[String]) -> Result<(), Error> {
    for path in paths {
        let path = Path::new(path);
        match sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(errno) => {
                return Err(Error::syscall(
                    format!(
                        "mount({0:?}, {0:?}, MS_BIND|MS_REC)",
                        path.display().to_string()
                    ),
                    "making a path read-only",
                    errno,
                ));
            }
        }
        sys::make_read_only(
            sys,
            path,
            "read-only: writing here would reconfigure the host's kernel",
        )?;
    }
    Ok(())
}
// ANCHOR_END: mask_paths
