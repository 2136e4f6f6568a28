//! Stage 05 — limits.
//!
//! Stage 04 as a library, plus a cgroup of its own for every container, on
//! cgroup v2, v1 and hybrid hosts.
//!
//! - [`cgroups`]: the primitive;
//! - [`cgroup`]: one cgroup (create, limit, attach, read, remove), with
//!   [`cgroup::v1`] and [`cgroup::v2`] for what differs;
//! - [`hierarchy`]: which layout this host has, and delegation for rootless;
//! - [`limits`]: the limits asked for, checked and converted;
//! - [`rundir`]: the runtime directory, and the owner locks that find what
//!   dead runtimes left (cgroups here; containers' directories in stage 06).

pub mod cgroup;
pub mod cli;
pub mod container_cgroup;
pub mod hierarchy;
pub mod limits;
pub mod rundir;

use std::path::PathBuf;

use stage01_uts::spec::{self, LinuxNamespaceType, Spec};
use stage01_uts::{Container, ContainerId, Error};
use stage03_mount::path::RootFiles;

/// Stage 05's command line as a spec: stage 04's, the limits
/// (`linux.resources`, checked against each other first), the cgroup's path
/// (`linux.cgroupsPath`: `--cgroup-parent`, else `myruntime`, then the id),
/// and a cgroup namespace.
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId, files: &dyn RootFiles) -> Result<Spec, Error> {
    let mut spec = stage04_user::spec(&args.base, id, files)?;
    let limits = limits::Limits::from_args(args).map_err(Error::primitive)?;
    let parent = args
        .cgroup_parent
        .clone()
        .unwrap_or_else(|| PathBuf::from(container_cgroup::DEFAULT_PARENT));
    let linux = spec::linux_mut(&mut spec);
    linux.set_resources(Some(limits.to_spec()));
    linux.set_cgroups_path(Some(parent.join(id.as_str())));
    spec::add_namespace(&mut spec, LinuxNamespaceType::Cgroup);
    Ok(spec)
}
// ANCHOR_END: spec

/// Stage 04's container, plus a cgroup of its own.
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId) -> Result<Container, Error> {
    let cgroups = container_cgroup::ContainerCgroup::from_spec(spec, id.as_str());
    Ok(stage04_user::container(spec, id)?.with(cgroups))
}
// ANCHOR_END: container

/// A stage 05 container from the command line.
pub fn build(args: &cli::RunArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    let files = stage04_user::root_files(&args.base.base);
    container(&spec(args, &id, &files)?, id)
}
