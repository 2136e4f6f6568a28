//! The seam between the start sequence and the kernel.
//!
//! The sequence in [`crate::container`] makes its system calls through the
//! [`Syscall`] trait. [`Linux`] makes them for real; unit tests substitute a
//! recorder, so the order of the calls and the handling of their errors can be
//! tested without root. It is deliberately thin: one method per call, no
//! policy. Later stages that add primitives with many calls of their own (the
//! mounts of stage 03, say) put a seam of the same shape beside their module.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Which side of a fork-like clone the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Parent(Pid),
    Child,
}

/// The system calls of the start sequence.
pub trait Syscall {
    /// clone(2) with fork semantics: no new stack, the child continues from
    /// the same point as the parent with a copy of its memory.
    fn clone(&self, flags: CloneFlags) -> Result<Fork, Errno>;
    /// sethostname(2), in whatever UTS namespace the caller is in.
    fn sethostname(&self, name: &str) -> Result<(), Errno>;
    /// execve(2). Returns only when it fails.
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno;
    /// waitpid(2), retried when a signal interrupts it.
    fn waitpid(&self, pid: Pid, flags: Option<WaitPidFlag>) -> Result<WaitStatus, Errno>;
    /// kill(2).
    fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno>;
    /// prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent
    /// dies.
    fn set_parent_death_signal(&self, signal: Signal) -> Result<(), Errno>;
    /// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every descriptor from
    /// `first` up closes when the process executes a program.
    fn close_on_exec_from(&self, first: u32) -> Result<(), Errno>;
    /// close_range(first, ~0, 0): close every descriptor from `first` up,
    /// now (for a process that stays, such as stage 02's init).
    fn close_from(&self, first: u32) -> Result<(), Errno>;
    /// chdir(2), then getcwd(3): where the process is now, as the kernel
    /// says.
    fn enter_dir(&self, path: &Path) -> Result<PathBuf, Errno>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

impl Syscall for Linux {
    // ANCHOR: clone
    fn clone(&self, flags: CloneFlags) -> Result<Fork, Errno> {
        // The raw system call rather than glibc's clone() wrapper: with a
        // null stack and without CLONE_VM it behaves like fork(), so the child
        // simply returns here and runs the rest of the sequence as ordinary
        // Rust code (no callback, no separate stack to size, no panic that
        // would abort across an FFI boundary). glibc's fork handlers do not
        // run, which is safe because the runtime is single-threaded when it
        // clones: no other thread can hold a lock the child would inherit.
        //
        // SAFETY: fork-like clone in a single-threaded process; both sides
        // continue with valid, separate copies of the address space.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_int>(),
                std::ptr::null_mut::<libc::c_int>(),
                0 as libc::c_ulong,
            )
        };
        match ret {
            -1 => Err(Errno::last()),
            0 => Ok(Fork::Child),
            pid => Ok(Fork::Parent(Pid::from_raw(pid as libc::pid_t))),
        }
    }
    // ANCHOR_END: clone

    fn sethostname(&self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
        // Rust's runtime set SIGPIPE to "ignore" in the runtime, and an
        // ignored signal stays ignored across execve. COMMAND must start with
        // the default, or `yes | head -1` would never end.
        // SAFETY: restoring the default disposition installs no handler.
        let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        match nix::unistd::execve(path, argv, envp) {
            Err(errno) => errno,
            Ok(never) => match never {},
        }
    }

    fn waitpid(&self, pid: Pid, flags: Option<WaitPidFlag>) -> Result<WaitStatus, Errno> {
        loop {
            match nix::sys::wait::waitpid(pid, flags) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno> {
        nix::sys::signal::kill(pid, signal)
    }

    fn set_parent_death_signal(&self, signal: Signal) -> Result<(), Errno> {
        nix::sys::prctl::set_pdeathsig(signal)
    }

    // ANCHOR: close_on_exec
    fn close_on_exec_from(&self, first: u32) -> Result<(), Errno> {
        // Marked, not closed: the error pipe must stay open until execve
        // succeeds, and then the kernel closes everything at once.
        // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // Linux before 5.11: one fcntl per descriptor the process has.
        for fd in open_fds_from(first)? {
            // SAFETY: F_SETFD on a number; one that is already closed (the
            // directory's own descriptor) fails with EBADF, which is fine.
            let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            if rc != 0 && Errno::last() != Errno::EBADF {
                return Err(Errno::last());
            }
        }
        Ok(())
    }
    // ANCHOR_END: close_on_exec

    fn enter_dir(&self, path: &Path) -> Result<PathBuf, Errno> {
        nix::unistd::chdir(path)?;
        nix::unistd::getcwd()
    }

    fn close_from(&self, first: u32) -> Result<(), Errno> {
        // SAFETY: closing descriptors this process owns; nothing in it uses
        // them afterwards (the caller is a process that only waits).
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
        if rc == 0 {
            return Ok(());
        }
        for fd in open_fds_from(first)? {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
        Ok(())
    }
}

/// The descriptors from `first` up that this process has open, as
/// /proc/self/fd lists them (where close_range(2) is missing).
fn open_fds_from(first: u32) -> Result<Vec<i32>, Errno> {
    let fds = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::last())?;
    Ok(fds
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first as i32)
        .collect())
}

/// Clone flags as the kernel's headers spell them, for messages and
/// `--explain`: `CLONE_NEWUTS|CLONE_NEWPID|SIGCHLD`. Formatted only when
/// shown.
#[derive(Debug, Clone, Copy)]
pub struct FlagNames(pub CloneFlags);

impl std::fmt::Display for FlagNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&clone_flags_name(self.0))
    }
}

fn clone_flags_name(flags: CloneFlags) -> String {
    const NAMES: &[(CloneFlags, &str)] = &[
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
        (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    ];
    let mut parts: Vec<&str> = NAMES
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    parts.push("SIGCHLD");
    parts.join("|")
}

#[cfg(test)]
pub(crate) mod fake {
    //! A recorder standing in for the kernel in unit tests.

    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records every call; answers from a script. `calls` is shared, so a test
    /// can keep a handle on it after handing the recorder to a container.
    #[derive(Default)]
    pub struct Recorder {
        pub calls: Rc<RefCell<Vec<String>>>,
        pub clone_result: Option<Result<Fork, Errno>>,
        pub sethostname_error: Option<Errno>,
        /// The errno each execve attempt fails with, in order (ENOENT after).
        pub execve_errors: RefCell<Vec<Errno>>,
        pub wait_status: Option<WaitStatus>,
        pub close_range_error: Option<Errno>,
    }

    impl Syscall for Recorder {
        fn clone(&self, flags: CloneFlags) -> Result<Fork, Errno> {
            self.calls
                .borrow_mut()
                .push(format!("clone({})", clone_flags_name(flags)));
            self.clone_result.unwrap_or(Err(Errno::ENOSYS))
        }
        fn sethostname(&self, name: &str) -> Result<(), Errno> {
            self.calls.borrow_mut().push(format!("sethostname({name})"));
            self.sethostname_error.map_or(Ok(()), Err)
        }
        fn execve(&self, path: &CStr, _argv: &[CString], _envp: &[CString]) -> Errno {
            self.calls
                .borrow_mut()
                .push(format!("execve({})", path.to_string_lossy()));
            let mut errors = self.execve_errors.borrow_mut();
            if errors.is_empty() {
                Errno::ENOENT
            } else {
                errors.remove(0)
            }
        }
        fn waitpid(&self, pid: Pid, _flags: Option<WaitPidFlag>) -> Result<WaitStatus, Errno> {
            self.calls.borrow_mut().push(format!("waitpid({pid})"));
            self.wait_status.ok_or(Errno::ECHILD)
        }
        fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("kill({pid}, {signal})"));
            Ok(())
        }
        fn set_parent_death_signal(&self, signal: Signal) -> Result<(), Errno> {
            self.calls.borrow_mut().push(format!("pdeathsig({signal})"));
            Ok(())
        }
        fn close_on_exec_from(&self, first: u32) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"));
            self.close_range_error.map_or(Ok(()), Err)
        }
        fn close_from(&self, first: u32) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("close_range({first}, ~0, 0)"));
            Ok(())
        }
        fn enter_dir(&self, path: &Path) -> Result<PathBuf, Errno> {
            self.calls
                .borrow_mut()
                .push(format!("chdir({})", path.display()));
            Ok(path.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_read_like_the_headers() {
        assert_eq!(clone_flags_name(CloneFlags::empty()), "SIGCHLD");
        assert_eq!(
            clone_flags_name(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID),
            "CLONE_NEWUTS|CLONE_NEWPID|SIGCHLD"
        );
    }
}
