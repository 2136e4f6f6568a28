//! Processes named by pid, safely: a pid is reused once its process is
//! reaped, so a pid read from a state file may name another process by the
//! time it is used. Every process the runtime records is recorded with its
//! start time (`/proc/PID/stat`, field 22, in clock ticks since boot), and
//! every signal goes through a pidfd opened *before* the start time is
//! checked: once the pidfd is open it names that process and no other, even
//! if the pid is reused.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// A process as the runtime records it: its pid and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Process {
    pub pid: i32,
    /// Clock ticks after boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

impl Process {
    /// The live process `pid`, as it is now.
    pub fn of(pid: i32) -> Option<Process> {
        Some(Process {
            pid,
            start: start_time(pid)?,
        })
    }

    /// This process.
    pub fn current() -> Process {
        let pid = std::process::id() as i32;
        Process::of(pid).expect("this process has a /proc entry")
    }

    /// Whether this very process still exists (not another that got its
    /// pid) and has not exited. A zombie has exited.
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// A pidfd for this very process, or `None` if it is gone.
    pub fn open(&self) -> Option<PidFd> {
        let fd = PidFd::open(self.pid).ok()?;
        // Checked after the pidfd exists: from here on it can name nothing
        // else, so a pid reused before this check is caught by it.
        self.alive().then_some(fd)
    }
}

/// What `/proc/PID/stat` says of a process.
struct Stat {
    state: char,
    start: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after its last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// When `pid` started, in clock ticks after boot.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// A process descriptor (pidfd_open(2), Linux 5.3).
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    pub fn open(pid: i32) -> Result<PidFd, Errno> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else
        // owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Send `signal` to this process (and no other).
    pub fn signal(&self, signal: Signal) -> Result<(), Errno> {
        // SAFETY: pidfd_send_signal with a valid descriptor, a signal number,
        // no siginfo and no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 { Err(Errno::last()) } else { Ok(()) }
    }

    /// Wait until the process exits, at most `timeout`: true if it did. A
    /// pidfd becomes readable when its process exits (whoever its parent).
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(n) if n > 0 => return true,
                Ok(_) if left.is_zero() => return false,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Clock ticks per second, for start times.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a constant and returns a number.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// This boot's id: containers recorded as running under another boot are
/// not running.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_start_time_is_not() {
        let me = Process::current();
        assert!(me.alive());
        assert!(me.open().is_some());
        let impostor = Process {
            start: me.start + 1,
            ..me
        };
        assert!(!impostor.alive(), "same pid, another start: not this one");
        assert!(impostor.open().is_none());
    }

    #[test]
    fn an_exited_child_is_not_alive_even_unreaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let recorded = Process::of(child.id() as i32);
        std::thread::sleep(Duration::from_millis(100));
        if let Some(recorded) = recorded {
            assert!(!recorded.alive(), "a zombie has exited");
        }
        child.wait().unwrap();
    }
}
