//! Stage 01 — a container is a process.
//!
//! This crate is the foundation every later stage builds on. It owns:
//!
//! - [`container`]: the start sequence (prepare → clone → attach → setup → exec
//!   → supervise → cleanup) and the [`container::Primitive`] trait through
//!   which every stage plugs its one kernel primitive into that sequence;
//! - [`uts`]: the primitive of this stage, a UTS namespace with its own hostname;
//! - [`exec`]: finding and executing COMMAND, with the shell's 126/127 rules;
//! - [`channel`]: descriptors from the runtime to the container's process;
//! - [`syscall`]: the thin seam over the system calls the sequence makes, so
//!   that unit tests can run it without root;
//! - [`explain`]: the `--explain` narration, built on `tracing`;
//! - [`cli`] and [`error`]: argument parsing, one-line errors and exit codes
//!   shared by every stage binary and by `myruntime`.

pub mod channel;
pub mod cli;
pub mod container;
pub mod error;
pub mod exec;
pub mod explain;
pub mod id;
pub mod syscall;
pub mod uts;

pub use container::{Container, Context, ExitStatus, Primitive, Process};
pub use error::Error;

/// The container stage 01 builds from its command line: a process in a new
/// UTS namespace. Later stages start from their predecessor's container and
/// add their own primitive to it.
// ANCHOR: container
pub fn container(args: &cli::RunArgs) -> Container {
    let process = Process::new(args.command.clone());
    let container = Container::new(process);
    let hostname = hostname(args, container.id());
    container.with(uts::Uts::new(hostname))
}
// ANCHOR_END: container

/// The container's hostname: `--hostname`, or its short id.
pub fn hostname(args: &cli::RunArgs, id: &id::ContainerId) -> uts::Hostname {
    match &args.hostname {
        Some(name) => name.clone(),
        None => uts::Hostname::from_id(id),
    }
}
