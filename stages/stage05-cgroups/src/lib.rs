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
pub mod cgroups;
pub mod cli;
pub mod hierarchy;
pub mod limits;
pub mod rundir;

use stage01_uts::Container;

/// Stage 04's container, plus a cgroup of its own.
// ANCHOR: container
pub fn container(args: &cli::RunArgs) -> Container {
    let limits = limits::Limits::from_args(args);
    stage04_user::container(&args.base)
        .with(cgroups::Cgroups::new(limits, args.cgroup_parent.clone()))
}
// ANCHOR_END: container
