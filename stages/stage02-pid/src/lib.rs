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

use stage01_uts::spec::{self, LinuxNamespaceType, Spec};
use stage01_uts::{Container, ContainerId, Error};

/// The annotation that asks for the built-in init (`--init`): the spec has
/// no field for an init that is the runtime's own code.
pub const INIT: &str = "run.myruntime.init";

/// Stage 02's command line as a spec: stage 01's, a PID namespace, and
/// `--init` as an annotation.
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId) -> Result<Spec, Error> {
    let mut spec = stage01_uts::spec(&args.base, id)?;
    spec::add_namespace(&mut spec, LinuxNamespaceType::Pid);
    if args.init {
        spec::set_annotation(&mut spec, INIT, "true");
    }
    Ok(spec)
}
// ANCHOR_END: spec

/// Stage 01's container, plus PID 1's duties (and a PID namespace, if the
/// spec asks for one).
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId) -> Result<Container, Error> {
    let init = spec::annotation(spec, INIT) == Some("true");
    let namespace = spec::has_namespace(spec, LinuxNamespaceType::Pid);
    Ok(stage01_uts::container(spec, id)?.with(pid::PidNamespace::new(init, namespace)))
}
// ANCHOR_END: container

/// A stage 02 container from the command line.
pub fn build(args: &cli::RunArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    container(&spec(args, &id)?, id)
}
