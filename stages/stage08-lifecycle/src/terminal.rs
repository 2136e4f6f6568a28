//! The user's terminal: raw mode while a container's terminal is relayed
//! through it, its size passed on, and the relay itself for a foreground
//! `run -t` or `exec -t`, where the runtime is the container's parent.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use stage01_uts::ExitStatus;

/// The user's terminal in raw mode until dropped: every key goes to the
/// container's terminal as it is typed, ^C included, which the container's
/// terminal turns into SIGINT for its foreground process group.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd`, if it is a terminal.
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor was valid when raw mode was entered, and
        // stdin stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the terminal `fd`, if it is one.
pub fn size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Give the terminal whose master is `fd` a size (the kernel sends its
/// foreground process group SIGWINCH).
pub fn resize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize it is given.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Write all of `data` to `fd`, waiting while it is full.
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(1000u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A signalfd for the signals the runtime already blocks (stage 02 blocked
/// them before clone): SIGCHLD and the forwarded ones.
pub fn signals() -> Result<SignalFd, Errno> {
    let set: SigSet = stage02_pid::pid::watched();
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

/// Relay between the user's terminal and the container's, where the
/// runtime is the container's parent: stdin (if `interactive`) to the
/// master, the master to stdout, the user's terminal's size to the
/// container's, signals a process sent to the container; until `child`
/// exits. Returns how it ended.
// ANCHOR: relay
pub fn relay(master: OwnedFd, child: Pid, interactive: bool) -> Result<ExitStatus, Errno> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let raw = if interactive {
        RawMode::enter(stdin.as_fd())
    } else {
        None
    };
    if let Some((rows, cols)) = size(0).or(size(1)) {
        resize(master.as_raw_fd(), rows, cols);
    }
    let signals = signals()?;
    let mut input_open = interactive;
    let mut buf = vec![0u8; 32 * 1024];
    let mut status = None;
    let mut output_open = true;
    while status.is_none() || output_open {
        // What to watch this turn: 0 signals, 1 the master, 2 stdin.
        let mut watched = vec![(0, signals.as_fd())];
        if output_open {
            watched.push((1, master.as_fd()));
        }
        if input_open {
            watched.push((2, stdin.as_fd()));
        }
        let mut fds: Vec<PollFd> = watched
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        // Once PID 1 is gone, what is left to read comes at once.
        let timeout = if status.is_some() { 100u16 } else { u16::MAX };
        match poll(&mut fds, PollTimeout::from(timeout)) {
            Ok(0) if status.is_some() => break,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let ready = |tag: usize| {
            watched
                .iter()
                .zip(&fds)
                .any(|((t, _), fd)| *t == tag && fd.revents().is_some_and(|r| !r.is_empty()))
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                let signal = Signal::try_from(info.ssi_signo as i32).ok();
                match signal {
                    Some(Signal::SIGCHLD) => {}
                    Some(Signal::SIGWINCH) => {
                        if let Some((rows, cols)) = size(0).or(size(1)) {
                            resize(master.as_raw_fd(), rows, cols);
                        }
                    }
                    // Sent by a process (not the terminal): pass it on.
                    Some(signal) if info.ssi_code <= 0 => {
                        let _ = nix::sys::signal::kill(child, signal);
                    }
                    _ => {}
                }
            }
            if status.is_none()
                && let Ok(s) = waitpid(child, Some(WaitPidFlag::WNOHANG))
                && !matches!(s, WaitStatus::StillAlive)
            {
                status = ExitStatus::from_wait(s);
            }
        }
        if master_ready {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => output_open = false,
                Ok(n) => {
                    let _ = write_all(stdout.as_fd(), &buf[..n]);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => output_open = false,
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => input_open = false,
                Ok(n) => {
                    let _ = write_all(master.as_fd(), &buf[..n]);
                }
            }
        }
    }
    drop(raw);
    match status {
        Some(status) => Ok(status),
        None => stage01_uts::container::wait_for_exit(&stage01_uts::syscall::Linux, child)
            .map_err(|_| Errno::ECHILD),
    }
}
// ANCHOR_END: relay
