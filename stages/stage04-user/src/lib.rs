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

use stage01_uts::spec::{self, LinuxNamespaceType, Spec};
use stage01_uts::{Container, ContainerId, Error};
use stage03_mount::path::RootFiles;

/// Stage 04's command line as a spec: stage 03's, a user namespace with the
/// maps asked for (or, rootless, the runtime's user as root inside), an IPC
/// namespace, and `--user` resolved against the container's own files
/// (`files`).
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId, files: &dyn RootFiles) -> Result<Spec, Error> {
    let mut spec = stage03_mount::spec(&args.base, id)?;
    let request = userns::Request {
        uidmap: args.uidmap.clone(),
        gidmap: args.gidmap.clone(),
        auto: args.userns,
    };
    let plan = userns::plan(&request, &userns::Host::current()).map_err(Error::primitive)?;
    if let Some(plan) = plan {
        userns::write_into(&mut spec, &plan);
    }
    spec::add_namespace(&mut spec, LinuxNamespaceType::Ipc);
    if let Some(user) = &args.user {
        let home_given = args.base.env.iter().any(|v| v.key == "HOME");
        user::apply(&mut spec, user, files, home_given)?;
    }
    Ok(spec)
}
// ANCHOR_END: spec

/// Stage 03's container, plus user and IPC namespaces and a user.
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId) -> Result<Container, Error> {
    let mut container = stage03_mount::container(spec, id)?;
    if spec::has_namespace(spec, LinuxNamespaceType::User) {
        container = container.with(userns::UserNs::from_spec(spec));
    }
    if spec::has_namespace(spec, LinuxNamespaceType::Ipc) {
        container = container.with(ipc::Ipc);
    }
    Ok(container.with(user::User::from_spec(spec)))
}
// ANCHOR_END: container

/// The root files of a command line: its `--rootfs`, or the host's.
pub fn root_files(args: &stage03_mount::cli::RunArgs) -> stage03_mount::path::RootDir<'_> {
    stage03_mount::path::RootDir(
        args.rootfs
            .as_deref()
            .unwrap_or_else(|| std::path::Path::new("/")),
    )
}

/// A stage 04 container from the command line.
pub fn build(args: &cli::RunArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    container(&spec(args, &id, &root_files(&args.base))?, id)
}
