//! /sys: the kernel's view of devices. (/proc, the view of processes, is a
//! plain mount of the spec: a procfs mounted by the container's process, in
//! its PID namespace, shows the container's processes only.)

use std::path::Path;

use nix::mount::MsFlags;
use stage01_uts::{Error, explain};

use nix::errno::Errno;

use crate::sys::{self, MountSys};

/// sysfs, read-only: the container may read device information, never
/// reconfigure the host's devices through it.
///
/// The kernel mounts a new sysfs only for a process that owns the network
/// namespace it would describe; in a user namespace without a network
/// namespace of its own (stage 04, rootless) that is refused with EPERM, and
/// the host's /sys is bound in instead, read-only, as runc does.
pub fn mount_sys(sys: &dyn MountSys, target: &Path, flags: MsFlags) -> Result<(), Error> {
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
