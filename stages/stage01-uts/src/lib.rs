//! Stage 01 — a container is a process.
//!
//! This crate is the foundation every later stage builds on. It owns:
//!
//! - [`spec`]: the container as data, an OCI runtime spec, and stage 01's
//!   part of it;
//! - [`container`]: the start sequence (prepare → clone → attach → setup →
//!   ready → start → exec → supervise → cleanup), its [`container::Phase`]s,
//!   and the [`container::Primitive`] trait through which every stage plugs
//!   its one kernel primitive into that sequence;
//! - [`sync`]: the typed messages between the runtime and the container's
//!   process;
//! - [`uts`]: the primitive of this stage, a UTS namespace with its own hostname;
//! - [`exec`]: finding and executing COMMAND, with the shell's 126/127 rules;
//! - [`syscall`]: the thin seam over the system calls the sequence makes, so
//!   that unit tests can run it without root;
//! - [`explain`]: the `--explain` narration, built on `tracing`;
//! - [`cli`] and [`error`]: argument parsing, one-line errors and exit codes
//!   shared by every stage binary and by `myruntime`.

pub mod cli;
pub mod container;
pub mod error;
pub mod exec;
pub mod explain;
pub mod id;
pub mod spec;
pub mod sync;
pub mod syscall;
pub mod uts;

pub use container::{Container, Context, ExitStatus, Phase, Primitive, Process, Root};
pub use error::Error;
pub use id::ContainerId;
pub use spec::Spec;

use spec::LinuxNamespaceType;

/// Stage 01's command line as a spec: COMMAND, the runtime's own
/// environment, a hostname (`--hostname`, else the container's short id, as
/// docker does), and a UTS namespace.
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId) -> Result<Spec, Error> {
    let command = cli::utf8("COMMAND", &args.command)?;
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v.to_str()?)))
        .collect();
    let mut spec = spec::minimal(command, env);
    // Stage 01 shares the host's filesystem: COMMAND starts where the
    // runtime was started, as any program would.
    if let Ok(cwd) = std::env::current_dir() {
        spec::process_mut(&mut spec).set_cwd(cwd);
    }
    let hostname = match &args.hostname {
        Some(name) => name.clone(),
        None => uts::Hostname::from_id(id),
    };
    spec.set_hostname(Some(hostname.to_string()));
    spec::add_namespace(&mut spec, LinuxNamespaceType::Uts);
    Ok(spec)
}
// ANCHOR_END: spec

/// The container stage 01 builds from a spec: a process, in a UTS
/// namespace of its own if the spec asks for one. Later stages start from
/// their predecessor's container and add their own primitive to it.
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId) -> Result<Container, Error> {
    let container = Container::new(id, Process::from_spec(spec));
    if !spec::has_namespace(spec, LinuxNamespaceType::Uts) {
        return Ok(container);
    }
    let hostname = match spec.hostname() {
        Some(name) => name.parse().map_err(Error::primitive)?,
        None => uts::Hostname::from_id(container.id()),
    };
    Ok(container.with(uts::Uts::new(hostname)))
}
// ANCHOR_END: container

/// A stage 01 container from the command line: the spec, then the
/// container it describes.
pub fn build(args: &cli::RunArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    container(&spec(args, &id)?, id)
}
