//! The container's standard input, output and error, when the runtime does
//! not simply hand over its own (a detached container, or `-t`).
//!
//! - **Pipes** (detached, no `-t`): the monitor makes three pipes and keeps
//!   one end of each; the container's process puts the other ends on
//!   descriptors 0, 1 and 2. Its stdout and stderr stay apart, in the log
//!   and for `attach`.
//! - **A terminal** (`-t`): made *inside* the container, from its own
//!   `/dev/ptmx` (stage 03's devpts instance), as runc does with its console
//!   socket: so the terminal's name resolves in the container
//!   (`tty` prints `/dev/pts/0`), and no host terminal is handed in. The
//!   process makes a session of its own with the terminal as its
//!   controlling terminal (job control and ^C work), and sends the master
//!   end back to the runtime over the start socket (stage 01's `Fds`).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, explain};

/// The primitive.
// ANCHOR: stdio
pub enum Stdio {
    /// The runtime's own (a foreground `run` without `-t`).
    Inherit,
    /// The container's ends of three pipes (stdin may be /dev/null).
    Pipes([OwnedFd; 3]),
    /// A terminal made inside, owned by the process's user.
    Terminal { uid: u32, gid: u32 },
}

impl Stdio {
    /// A terminal for the process of `spec` (its user owns it).
    pub fn terminal(spec: &Spec) -> Stdio {
        let user = spec.process().as_ref().map(|p| p.user().clone());
        Stdio::Terminal {
            uid: user.as_ref().map_or(0, |u| u.uid()),
            gid: user.as_ref().map_or(0, |u| u.gid()),
        }
    }
}

impl Primitive for Stdio {
    fn name(&self) -> &'static str {
        "stdio"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    /// The child has its copies: the runtime's go (it keeps only its own
    /// ends, which the monitor holds).
    fn attach(&mut self, _ctx: &mut Context, _child: nix::unistd::Pid) -> Result<(), Error> {
        if let Stdio::Pipes(_) = self {
            *self = Stdio::Inherit;
        }
        Ok(())
    }

    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        match self {
            Stdio::Inherit => Ok(()),
            Stdio::Pipes(fds) => {
                for (target, fd) in fds.iter().enumerate() {
                    dup_onto(fd.as_raw_fd(), target as RawFd)?;
                }
                explain!(
                    "dup2(<pipes>, 0/1/2)" => "ok",
                    "its output goes to the monitor, which logs it and passes it to `attach`"
                );
                Ok(())
            }
            Stdio::Terminal { uid, gid } => {
                let master = open_terminal(*uid, *gid)?;
                ctx.send_fds(&[master.as_fd()])?;
                explain!(
                    "open(/dev/ptmx), ioctl(TIOCGPTPEER), setsid, ioctl(TIOCSCTTY)" => "ok",
                    "a terminal of the container's own devpts, its controlling terminal; \
                     the master end goes to the runtime"
                );
                Ok(())
            }
        }
    }
}
// ANCHOR_END: stdio

/// Make the terminal, make it the controlling terminal of a new session, put
/// it on 0, 1 and 2; return its master end.
fn open_terminal(uid: u32, gid: u32) -> Result<OwnedFd, Error> {
    let failed = |call: &str, e: Errno| Error::syscall(call, "making the container's terminal", e);
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| failed("open(/dev/ptmx)", e))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer given.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(failed("ioctl(TIOCSPTLCK)", Errno::last()));
    }
    // The peer through the master itself (Linux 4.13): no path to look up
    // in /dev/pts, which the container's files could have replaced.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(failed("ioctl(TIOCGPTPEER)", Errno::last()));
    }
    // SAFETY: the kernel just returned this descriptor.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| failed("fchown(<terminal>)", e))?;
    nix::unistd::setsid().map_err(|e| failed("setsid", e))?;
    // SAFETY: TIOCSCTTY with 0: take the terminal if it is no other
    // session's.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(failed("ioctl(TIOCSCTTY)", Errno::last()));
    }
    for target in 0..3 {
        dup_onto(slave.as_raw_fd(), target)?;
    }
    Ok(master)
}

fn dup_onto(fd: RawFd, target: RawFd) -> Result<(), Error> {
    if fd == target {
        // Already there: only clear close-on-exec.
        // SAFETY: fcntl on a descriptor number this process holds.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        return Ok(());
    }
    // SAFETY: dup2 on descriptor numbers; the target's old file, if any,
    // is closed by the kernel.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(Error::syscall(
            format!("dup2({fd}, {target})"),
            "giving the container its standard streams",
            Errno::last(),
        ));
    }
    Ok(())
}

/// The three pipes of a detached container.
pub struct Pipes {
    /// The container's ends: stdin (/dev/null unless interactive), stdout,
    /// stderr.
    pub theirs: [OwnedFd; 3],
    /// The monitor's end of stdin, if interactive.
    pub stdin: Option<OwnedFd>,
    /// The monitor's ends of stdout and stderr.
    pub outputs: [OwnedFd; 2],
}

/// Make them.
pub fn pipes(interactive: bool) -> Result<Pipes, Error> {
    let pipe = || {
        nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Error::syscall("pipe2", "making the container's standard streams", e))
    };
    let (stdin_r, stdin_w) = if interactive {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::syscall("open(/dev/null)", "the container's stdin", e))?;
        (null, None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(Pipes {
        theirs: [stdin_r, out_w, err_w],
        stdin: stdin_w,
        outputs: [out_r, err_r],
    })
}
