//! `--init`: a minimal init as PID 1, with COMMAND as its child.
//!
//! Most programs were not written to be PID 1. A web server does not reap
//! the orphans its workers leave, so they stay zombies; it installs no
//! SIGTERM handler, so as PID 1 it never stops on SIGTERM. `docker run
//! --init` (tini) and `podman run --init` (catatonit) solve this with a tiny
//! init that does those duties, and so does this one:
//!
//! - it forks COMMAND (PID 2) and stays PID 1;
//! - it reaps every child that the kernel re-parents to it;
//! - it passes the signals it receives on to COMMAND, which, not being PID 1,
//!   gets the default actions (SIGTERM terminates it);
//! - when COMMAND ends it exits with COMMAND's status (128+N for signal N),
//!   and the kernel kills whatever else is left in the namespace.
//!
//! The init is the runtime's own code, still running in the clone child: no
//! second binary has to be found inside the container.

use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stage01_uts::syscall::Fork;
use stage01_uts::{Context, Error, ExitStatus, explain};

use crate::pid::{wait_for_signal, watched};

/// Fork COMMAND off PID 1. Returns in the child, which goes on to become
/// COMMAND; never returns in PID 1, which becomes the init.
// ANCHOR: fork_command
pub fn fork_command(ctx: &mut Context) -> Result<(), Error> {
    let command = match ctx.sys.clone(nix::sched::CloneFlags::empty()) {
        Ok(Fork::Child) => return Ok(()),
        Ok(Fork::Parent(pid)) => pid,
        Err(errno) => {
            return Err(Error::syscall(
                "fork()",
                "starting COMMAND under init",
                errno,
            ));
        }
    };
    // Only COMMAND talks to the host from here (Ready, then end-of-file or
    // Failed): init lets go of its copy of the socket.
    ctx.close_channel();
    // init never executes a program, so close-on-exec would never close what
    // it inherited: descriptors of the runtime, or of whoever started it,
    // that any process of the container could reach through /proc/1/fd.
    // It needs none of them. Should closing them fail, the container does
    // not run: COMMAND is killed and init exits as the runtime fails (125).
    if ctx.sys.close_from(3).is_err() {
        let _ = ctx.sys.kill(command, nix::sys::signal::Signal::SIGKILL);
        // SAFETY: _exit(2) is always safe to call.
        unsafe { libc::_exit(stage01_uts::error::EXIT_RUNTIME.into()) }
    }
    explain!(
        "fork()" => "pid {command}",
        "--init: PID 1 stays an init that reaps orphans and forwards signals; COMMAND is its child"
    );
    name_process(c"init");
    let code = run_init(ctx, command);
    // SAFETY: _exit(2) is always safe; PID 1's exit makes the kernel kill
    // everything else left in the namespace.
    unsafe { libc::_exit(code) }
}
// ANCHOR_END: fork_command

/// The init's loop: reap, forward, and return COMMAND's exit status.
// ANCHOR: run_init
fn run_init(ctx: &mut Context, command: Pid) -> i32 {
    // The watched signals are still blocked, as the runtime blocked them
    // before clone: blocked signals are never discarded, even for PID 1, so
    // sigwaitinfo sees every one.
    let watched = watched();
    loop {
        let Ok(received) = wait_for_signal(&watched) else {
            return stage01_uts::error::EXIT_RUNTIME.into();
        };
        if received.should_forward() {
            let _ = ctx.sys.kill(command, received.signal);
            continue;
        }
        // SIGCHLD: reap everything that ended, orphans included. Several
        // children ending together raise one SIGCHLD, hence the inner loop.
        loop {
            match ctx
                .sys
                .waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
            {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) if status.pid() == Some(command) => {
                    if let Some(status) = ExitStatus::from_wait(status) {
                        return status.code().into();
                    }
                }
                Ok(_orphan) => continue,
                // No children at all: COMMAND is gone (it cannot be, unseen).
                Err(_) => return stage01_uts::error::EXIT_RUNTIME.into(),
            }
        }
    }
}
// ANCHOR_END: run_init

/// Set the name `ps` and /proc/PID/comm show.
fn name_process(name: &std::ffi::CStr) {
    let _ = nix::sys::prctl::set_name(name);
}
