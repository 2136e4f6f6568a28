//! The PID namespace, and the runtime's side of PID 1's duties.
//!
//! `CLONE_NEWPID` makes the clone child PID 1 of a new PID namespace. PID 1 is
//! special in three ways, and each needs the runtime's help:
//!
//! 1. **Signals.** The kernel drops any signal sent to a namespace's PID 1 for
//!    which PID 1 has installed no handler (only SIGKILL and SIGSTOP from an
//!    ancestor namespace get through): PID 1 must not die because somebody
//!    sent it a SIGTERM it never asked for. So the runtime catches the signals
//!    a user sends it (SIGTERM, SIGINT, …) and passes them on with kill(2): a
//!    COMMAND with a handler gets them; one without ignores them, as it would
//!    under docker without `--init`.
//! 2. **Orphans.** Processes whose parent dies are re-parented to PID 1, which
//!    must reap them or they stay zombies. Only PID 1 can do that: see
//!    [`crate::init`] for `--init`.
//! 3. **The end.** When PID 1 exits, the kernel kills every other process in
//!    the namespace. The runtime waits for PID 1 only, and returns at once.
//!
//! The runtime blocks the signals it forwards *before* clone and takes them
//! with sigwaitinfo(2) in a plain loop: no handler runs asynchronously, no
//! signal is lost between clone and the loop, and SIGCHLD (COMMAND ended)
//! arrives through the same loop.

use std::mem::MaybeUninit;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid as ProcessId;
use stage01_uts::{Context, Error, ExitStatus, Phase, Primitive, explain};

/// The signals the runtime passes on to the container: those a user or a
/// supervisor sends to ask a program to stop, reload or report, and the
/// terminal's resize.
// ANCHOR: forwarded
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGALRM,
    Signal::SIGWINCH,
];
// ANCHOR_END: forwarded

/// The forwarded signals plus SIGCHLD: everything the supervising loop waits
/// for.
pub fn watched() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// A signal taken from the pending set, and whether the kernel sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: Signal,
    /// Sent by the kernel (`si_code > 0`, e.g. the terminal's SIGINT on
    /// Ctrl-C), not by a process with kill(2).
    pub from_kernel: bool,
}

impl Received {
    /// Whether to pass this signal on. The terminal sends SIGINT, SIGQUIT and
    /// SIGWINCH to its whole foreground process group, which the container's
    /// processes share with the runtime: they got their copy already.
    pub fn should_forward(self) -> bool {
        self.signal != Signal::SIGCHLD && !self.from_kernel
    }
}

/// Wait for one of `set` (which must be blocked), with who sent it.
pub fn wait_for_signal(set: &SigSet) -> Result<Received, Errno> {
    let mut info = MaybeUninit::<libc::siginfo_t>::uninit();
    loop {
        // SAFETY: `set` is a valid sigset; `info` is written by the kernel
        // before it is read, and only when the call succeeds.
        let signo = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        if signo < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                errno => return Err(errno),
            }
        }
        // SAFETY: sigwaitinfo succeeded, so it filled `info` in.
        let code = unsafe { info.assume_init_ref() }.si_code;
        let signal = Signal::try_from(signo)?;
        return Ok(Received {
            signal,
            from_kernel: code > 0,
        });
    }
}

/// The stage 02 primitive.
// ANCHOR: pid
pub struct PidNamespace {
    init: bool,
    /// A PID namespace of its own (a spec may share the host's).
    namespace: bool,
    /// The runtime's signal mask before `prepare` blocked the watched signals.
    saved_mask: Option<SigSet>,
}

impl PidNamespace {
    /// PID 1's duties, in a new PID namespace if `namespace`; with `init`,
    /// a minimal init is PID 1 and COMMAND its child.
    pub fn new(init: bool, namespace: bool) -> Self {
        PidNamespace {
            init,
            namespace,
            saved_mask: None,
        }
    }
}

impl Primitive for PidNamespace {
    fn name(&self) -> &'static str {
        "pid"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    fn clone_flags(&self) -> CloneFlags {
        if self.namespace {
            CloneFlags::CLONE_NEWPID
        } else {
            CloneFlags::empty()
        }
    }

    /// Block the watched signals before clone, so none is lost or acted on
    /// (killing the runtime) before the supervising loop takes it.
    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched()), Some(&mut old))
            .map_err(|e| Error::syscall("sigprocmask(SIG_BLOCK)", "taking over signals", e))?;
        self.saved_mask = Some(old);
        explain!(
            "sigprocmask(SIG_BLOCK, {{SIGCHLD, SIGTERM, SIGINT, ...}})" => "ok",
            "the runtime takes these in its own loop, to forward them to PID 1 and to see it exit"
        );
        Ok(())
    }

    /// In the container: the first process is PID 1 now. Either it becomes
    /// COMMAND with the signal mask COMMAND should start with, or (`--init`)
    /// it stays PID 1 as init and COMMAND continues as its child.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let saved = self.saved_mask.unwrap_or_else(SigSet::empty);
        if explain::enabled() {
            let pid = nix::unistd::getpid();
            explain!(
                "getpid()" => "{pid}",
                "the first process of a new PID namespace is its PID 1"
            );
        }
        if self.init {
            crate::init::fork_command(ctx)?;
        }
        restore_mask(&saved)
    }

    /// On the host: forward signals to PID 1 until it exits.
    fn supervise(
        &mut self,
        ctx: &mut Context,
        child: ProcessId,
    ) -> Option<Result<ExitStatus, Error>> {
        Some(supervise(ctx, child))
    }

    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        match self.saved_mask.take() {
            Some(saved) => restore_mask(&saved),
            None => Ok(()),
        }
    }
}
// ANCHOR_END: pid

fn restore_mask(saved: &SigSet) -> Result<(), Error> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(saved), None)
        .map_err(|e| Error::syscall("sigprocmask(SIG_SETMASK)", "restoring the signal mask", e))
}

/// The runtime's loop while the container runs.
// ANCHOR: supervise
fn supervise(ctx: &mut Context, child: ProcessId) -> Result<ExitStatus, Error> {
    let watched = watched();
    loop {
        // Reap first: PID 1 may have exited before the loop started. Its
        // SIGCHLD is still pending then, so the wait below cannot miss it.
        match ctx.sys.waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                if let Some(status) = ExitStatus::from_wait(status) {
                    return Ok(status);
                }
            }
            Err(errno) => return Err(Error::syscall("waitpid", "waiting for PID 1", errno)),
        }
        let received = wait_for_signal(&watched)
            .map_err(|e| Error::syscall("sigwaitinfo", "waiting for signals", e))?;
        if received.should_forward() {
            let signal = received.signal;
            explain!(
                "kill({child}, {signal})" => "ok",
                "the runtime got {signal}; it passes it to the container's PID 1, \
                 which gets it only if it has a handler for it"
            );
            // ESRCH: PID 1 just exited; the next turn reaps it.
            let _ = ctx.sys.kill(child, signal);
        }
    }
}
// ANCHOR_END: supervise

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_what_it_forwards_and_sigchld() {
        let set = watched();
        for signal in FORWARDED {
            assert!(set.contains(signal), "{signal}");
        }
        assert!(set.contains(Signal::SIGCHLD));
        assert!(!set.contains(Signal::SIGKILL));
        assert!(
            !set.contains(Signal::SIGTSTP),
            "job control stays with the terminal"
        );
    }

    #[test]
    fn forwards_what_a_process_sent_not_what_the_terminal_sent() {
        let sent = |signal, from_kernel| Received {
            signal,
            from_kernel,
        };
        assert!(sent(Signal::SIGTERM, false).should_forward());
        assert!(sent(Signal::SIGINT, false).should_forward());
        assert!(
            !sent(Signal::SIGINT, true).should_forward(),
            "Ctrl-C reached the container already"
        );
        assert!(!sent(Signal::SIGCHLD, false).should_forward());
    }

    #[test]
    fn asks_clone_for_a_pid_namespace() {
        assert_eq!(
            PidNamespace::new(false, true).clone_flags(),
            CloneFlags::CLONE_NEWPID
        );
        assert_eq!(
            PidNamespace::new(false, false).clone_flags(),
            CloneFlags::empty()
        );
    }
}
