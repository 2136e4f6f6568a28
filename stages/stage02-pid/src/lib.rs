//! Stage 02 — PID 1.
//!
//! Stage 01 as a library, plus a PID namespace: COMMAND is PID 1 inside, and
//! PID 1's duties are taken care of.
//!
//! - [`pid`]: the primitive: `CLONE_NEWPID`, and the runtime's side of the
//!   duties: signals sent to the runtime are forwarded to the container, and
//!   the runtime returns as soon as PID 1 exits.
//! - [`init`]: `--init`, a minimal init that stays PID 1, runs COMMAND as its
//!   child, reaps every orphan and forwards signals, for commands that were
//!   never written to be PID 1.

pub mod cli;
pub mod init;
pub mod pid;

use stage01_uts::Container;

/// Stage 01's container, plus a PID namespace.
// ANCHOR: container
pub fn container(args: &cli::RunArgs) -> Container {
    stage01_uts::container(&args.base).with(pid::Pid::new(args.init))
}
// ANCHOR_END: container
