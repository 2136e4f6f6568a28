//! Processes that outlive the command that started them: a container's
//! monitor, and the keeper of an `exec -d`.
//!
//! The command forks; the child makes a session of its own (`setsid`: no
//! controlling terminal, so closing the terminal sends it no SIGHUP), moves
//! to `/`, puts /dev/null on stdin and stdout (a caller reading the command's output to
//! its end must not wait for the monitor), and reports over a pipe whether
//! what it was asked to do worked. The command waits for that report, says
//! it, and exits; the child lives on. Its stderr stays the command's until
//! the report (so `--explain` and errors reach the user), then goes to a
//! file.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::ForkResult;
use stage01_uts::Error;

/// The child's end of the report pipe.
pub struct Reporter(Option<OwnedFd>);

impl Reporter {
    /// It worked.
    pub fn ok(&mut self) {
        self.send(b"K");
    }

    /// It did not: the status the command exits with, and why.
    pub fn fail(&mut self, err: &Error) {
        let message = err.to_string();
        let message = &message.as_bytes()[..message.len().min(4000)];
        let mut bytes = vec![b'F', err.exit_code()];
        bytes.extend_from_slice(&(message.len() as u16).to_be_bytes());
        bytes.extend_from_slice(message);
        self.send(&bytes);
    }

    fn send(&mut self, bytes: &[u8]) {
        if let Some(fd) = self.0.take() {
            // Nobody to tell if the command is gone: the child goes on.
            let _ = crate::terminal::write_all(fd.as_fd(), bytes);
        }
    }
}

/// Why the command could not learn what the child did.
#[derive(Debug, thiserror::Error)]
#[error("the {what} died before it reported whether it started")]
pub struct Vanished {
    pub what: &'static str,
}

/// Fork `child` as a detached process; wait for its report. `what` names
/// it in errors ("monitor"). The child sends its report, then moves its
/// stderr away with [`stderr_to`].
// ANCHOR: detach
pub fn detach(what: &'static str, child: impl FnOnce(&mut Reporter) -> u8) -> Result<(), Error> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::syscall("pipe2", "hearing from the monitor", e))?;
    // SAFETY: the runtime is single-threaded here (it starts no thread
    // before this), so the child is a complete copy.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(read);
            let _ = nix::unistd::setsid();
            // Every path it uses is absolute: it keeps no directory of the
            // caller's busy (a mount that could not be unmounted).
            let _ = nix::unistd::chdir("/");
            if let Ok(null) =
                nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())
            {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            let mut reporter = Reporter(Some(write));
            let code = child(&mut reporter);
            // SAFETY: _exit: this is a copy of the command, whose atexit
            // handlers and buffers are not this process's to run.
            unsafe { libc::_exit(code.into()) }
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(write);
            read_report(read, what)
        }
        Err(e) => Err(Error::syscall("fork", "starting the monitor", e)),
    }
}
// ANCHOR_END: detach

/// In the child, once it reported: stderr to `log` (appended).
pub fn stderr_to(log: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
    {
        // SAFETY: dup2 onto stderr.
        unsafe { libc::dup2(file.as_raw_fd(), 2) };
    }
}

/// Read the report: `K`, or `F`, a status, a length and a message. Read to
/// its length, never to end of file: a container waiting for `start` holds a
/// copy of the pipe (it was cloned before the report) until it executes.
fn read_report(read: OwnedFd, what: &'static str) -> Result<(), Error> {
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |r: &[u8]| match r {
        [b'K', ..] => true,
        [b'F', _, a, b, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*a, *b])),
        _ => false,
    };
    while !complete(&report) {
        match nix::unistd::read(&read, &mut buf) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::syscall("read", "hearing from the monitor", e)),
        }
    }
    match report.as_slice() {
        [b'K', ..] => Ok(()),
        [b'F', code, _, _, message @ ..] if complete(&report) => Err(Error::Relayed {
            code: *code,
            message: String::from_utf8_lossy(message).into_owned(),
        }),
        _ => Err(Error::primitive(Vanished { what })),
    }
}
