//! Stage 04 — users, and containers without root.
//!
//! Stage 03 as a library, plus a user namespace that maps the container's
//! ids to the host's, `--user`, and an IPC namespace.
//!
//! - [`userns`]: the primitive: deciding the maps, writing them, becoming
//!   root of the namespace; rootless containers;
//! - [`user`] and [`passwd`]: `--user`, from the rootfs's own files;
//! - [`ids`]: id maps and subordinate ids;
//! - [`ipc`]: the IPC namespace.

pub mod cli;
pub mod ids;
pub mod ipc;
pub mod passwd;
pub mod user;
pub mod userns;

use stage01_uts::Container;

/// Stage 03's container, plus user and IPC namespaces and a user.
// ANCHOR: container
pub fn container(args: &cli::RunArgs) -> Container {
    let request = userns::Request {
        uidmap: args.uidmap.clone(),
        gidmap: args.gidmap.clone(),
        auto: args.userns,
    };
    let home_given = args.base.env.iter().any(|v| v.key == "HOME");
    stage03_mount::container(&args.base)
        // Before every other step: until it holds a mapped identity, the
        // container's process cannot even create a file.
        .with_first(userns::UserNs::new(request))
        .with(ipc::Ipc)
        // Last, whatever later stages add: after it, the process may have no
        // privilege left.
        .with_last(user::User::new(args.user.clone(), home_given))
}
// ANCHOR_END: container
