//! /proc and /sys: the kernel's views of processes and devices.

use std::path::Path;

use nix::mount::MsFlags;
use stage01_uts::{Error, explain};

use nix::errno::Errno;

use crate::sys::{self, MountSys};

/// A fresh procfs. A procfs instance shows the processes of the PID
/// namespace it was mounted from: mounted here, by the container's process,
/// it shows the container's processes only (stage 02's `ps` showed the host's).
pub fn mount_proc(sys: &dyn MountSys, target: &Path) -> Result<(), Error> {
    sys::mount(
        sys,
        Some(Path::new("proc")),
        target,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
        "a procfs mounted from the container's PID namespace shows only its processes",
    )
}

/// sysfs, read-only: the container may read device information, never
/// reconfigure the host's devices through it.
///
/// The kernel mounts a new sysfs only for a process that owns the network
/// namespace it would describe; in a user namespace without a network
/// namespace of its own (stage 04, rootless) that is refused with EPERM, and
/// the host's /sys is bound in instead, read-only, as runc does.
pub fn mount_sys(sys: &dyn MountSys, target: &Path) -> Result<(), Error> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match sys.mount(Some(Path::new("sysfs")), target, Some("sysfs"), flags, None) {
        Ok(()) => {
            explain!(
                "mount(\"sysfs\", {target:?}, sysfs, MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)" => "ok",
                "sysfs read-only: device information to read, nothing to reconfigure"
            );
            Ok(())
        }
        Err(Errno::EPERM) => {
            sys::mount(
                sys,
                Some(Path::new("/sys")),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
                "a new sysfs was refused (no network namespace of our own): bind the host's",
            )?;
            sys::make_read_only(sys, target, "the host's /sys, read-only")
        }
        Err(errno) => Err(Error::syscall(
            format!(
                "mount(\"sysfs\", {:?}, sysfs, MS_RDONLY)",
                target.display().to_string()
            ),
            "mounting /sys",
            errno,
        )),
    }
}
