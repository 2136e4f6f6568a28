//! The seam over the mount system calls, as stage 01's `Syscall` is over
//! clone and exec: [`Linux`] makes them, unit tests record them.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use stage01_uts::{Error, explain};

/// The system calls that build a container's mount table.
pub trait MountSys {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// umount2(2).
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> Result<(), Errno>;
    /// mknod(2) of a character device.
    fn mknod_char(&self, path: &Path, mode: Mode, major: u64, minor: u64) -> Result<(), Errno>;
    /// mount_setattr(2) with `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY`: make the
    /// mount at `path` and every mount below it read-only. (A remount with
    /// `MS_RDONLY` changes only the top one.)
    fn make_read_only_recursive(&self, path: &Path) -> Result<(), Errno>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

impl MountSys for Linux {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }

    fn mknod_char(&self, path: &Path, mode: Mode, major: u64, minor: u64) -> Result<(), Errno> {
        nix::sys::stat::mknod(
            path,
            SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(major, minor),
        )
    }

    fn make_read_only_recursive(&self, path: &Path) -> Result<(), Errno> {
        // struct mount_attr from <linux/mount.h>; not in the libc crate yet.
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
            .map_err(|_| Errno::EINVAL)?;
        // SAFETY: `path` is a valid C string and `attr` a valid mount_attr
        // whose size is passed with it, as mount_setattr(2) requires.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }
}

/// mount(2) through `sys`, narrated, with a failure that names the call and
/// says why it was made.
pub fn mount(
    sys: &dyn MountSys,
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    why: &'static str,
) -> Result<(), Error> {
    let call = || {
        format!(
            "mount({}, {}, {}, {}{})",
            source.map_or("NULL".into(), |s| format!("{:?}", s.display().to_string())),
            format_args!("{:?}", target.display().to_string()),
            fstype.unwrap_or("NULL"),
            flag_names(flags),
            data.map_or(String::new(), |d| format!(", {d:?}"))
        )
    };
    sys.mount(source, target, fstype, flags, data)
        .map_err(|errno| Error::syscall(call(), why, errno))?;
    if explain::enabled() {
        let call = call();
        explain!("{call}" => "ok", "{why}");
    }
    Ok(())
}

/// mount_setattr(2) through `sys`: `path` and every mount below it
/// read-only, narrated.
pub fn make_read_only(sys: &dyn MountSys, path: &Path, why: &'static str) -> Result<(), Error> {
    sys.make_read_only_recursive(path).map_err(|errno| {
        Error::syscall(
            format!(
                "mount_setattr({:?}, AT_RECURSIVE, MOUNT_ATTR_RDONLY)",
                path.display().to_string()
            ),
            why,
            errno,
        )
    })?;
    explain!(
        "mount_setattr({path:?}, AT_RECURSIVE, MOUNT_ATTR_RDONLY)" => "ok",
        "{why}"
    );
    Ok(())
}

/// Flags in the kernel's spelling, for `--explain` and errors.
pub fn flag_names(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_BIND, "MS_BIND"),
        (MsFlags::MS_REC, "MS_REC"),
        (MsFlags::MS_PRIVATE, "MS_PRIVATE"),
        (MsFlags::MS_SLAVE, "MS_SLAVE"),
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
        (MsFlags::MS_STRICTATIME, "MS_STRICTATIME"),
        (MsFlags::MS_REMOUNT, "MS_REMOUNT"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! Records mount calls; every call succeeds unless scripted otherwise.

    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Default, Clone)]
    pub struct Recorder {
        pub calls: Rc<RefCell<Vec<String>>>,
        /// Fail the first call whose record contains this text.
        pub fail_on: Option<(&'static str, Errno)>,
    }

    impl Recorder {
        fn record(&self, call: String) -> Result<(), Errno> {
            let fail = self.fail_on.filter(|(text, _)| call.contains(text));
            self.calls.borrow_mut().push(call);
            fail.map_or(Ok(()), |(_, errno)| Err(errno))
        }
    }

    impl MountSys for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            _data: Option<&str>,
        ) -> Result<(), Errno> {
            self.record(format!(
                "mount {} {} {} {}",
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("-"),
                flag_names(flags)
            ))
        }
        fn umount(&self, target: &Path, _flags: MntFlags) -> Result<(), Errno> {
            self.record(format!("umount {}", target.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
            self.record(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chdir(&self, path: &Path) -> Result<(), Errno> {
            self.record(format!("chdir {}", path.display()))
        }
        fn mknod_char(
            &self,
            path: &Path,
            _mode: Mode,
            major: u64,
            minor: u64,
        ) -> Result<(), Errno> {
            self.record(format!("mknod {} {major}:{minor}", path.display()))
        }
        fn make_read_only_recursive(&self, path: &Path) -> Result<(), Errno> {
            self.record(format!("readonly {}", path.display()))
        }
    }
}
