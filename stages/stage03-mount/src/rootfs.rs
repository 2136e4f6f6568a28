//! Entering the root filesystem: private propagation, a bind mount of the
//! rootfs onto itself, and pivot_root.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use stage01_uts::{Error, explain};

use crate::sys::{self, MountSys};

/// Stop mount events from crossing between the container and the host.
///
/// A new mount namespace starts as a copy of the host's, and on most hosts
/// (systemd makes `/` shared) its mounts are in the host's *peer groups*:
/// without this, every mount below would appear on the host too, and
/// pivot_root would fail with EINVAL (it refuses a shared old root).
// ANCHOR: make_private
pub fn make_private(sys: &dyn MountSys) -> Result<(), Error> {
    sys::mount(
        sys,
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "make every mount private, so that nothing mounted in the container shows on the host",
    )
}
// ANCHOR_END: make_private

/// pivot_root needs the new root to be a mount point; a rootfs is usually
/// just a directory. Binding it onto itself makes it one.
pub fn bind_onto_itself(sys: &dyn MountSys, root: &Path) -> Result<(), Error> {
    sys::mount(
        sys,
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        "pivot_root needs the new root to be a mount point",
    )
}

/// Make `root` the root of the mount namespace and detach the old one.
///
/// `pivot_root(".", ".")` after chdir into the new root stacks the old root
/// on top of the new one, where `umount2(".", MNT_DETACH)` removes it; no
/// directory for the old root has to be made in the rootfs. After this, no
/// path leads back to the host's files: unlike chroot(2), which changes only
/// how this process resolves `/`, the old root is gone from the namespace.
// ANCHOR: pivot_root
pub fn pivot_root(sys: &dyn MountSys, root: &Path) -> Result<(), Error> {
    fn fail(call: &'static str, why: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
        move |errno| Error::syscall(call, why, errno)
    }
    sys.chdir(root)
        .map_err(fail("chdir(rootfs)", "entering the root filesystem"))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(fail(
            "pivot_root(\".\", \".\")",
            "making the rootfs the container's / (EINVAL: the rootfs is not a mount point, \
         or a mount involved is shared)",
        ))?;
    explain!(
        "pivot_root(\".\", \".\")" => "ok",
        "the rootfs becomes /; the old root is stacked on top of it, still reachable"
    );
    sys.umount(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(fail(
            "umount2(\".\", MNT_DETACH)",
            "detaching the host's root",
        ))?;
    explain!(
        "umount2(\".\", MNT_DETACH)" => "ok",
        "the host's root is detached: no path in the container leads to it any more"
    );
    sys.chdir(Path::new("/"))
        .map_err(fail("chdir(\"/\")", "starting from the new root"))
}
// ANCHOR_END: pivot_root
