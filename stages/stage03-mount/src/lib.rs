//! Stage 03 — a root filesystem of its own.
//!
//! Stage 02 as a library, plus a mount namespace in which the container gets
//! its own root filesystem, entered with pivot_root, with a fresh /proc, a
//! read-only /sys, a minimal /dev, masked kernel files and volumes; and, from
//! here on, an environment of its own.
//!
//! - [`mount`]: the primitive, and its sequence top to bottom;
//! - [`rootfs`]: private propagation, the bind mount, pivot_root;
//! - [`pseudofs`], [`dev`], [`masked`]: /proc and /sys, /dev, masked paths;
//! - [`volume`] and [`path`]: `-v`, and resolving paths inside the rootfs
//!   without ever leaving it;
//! - [`env`]: the environment and working directory;
//! - [`sys`]: the seam over the mount system calls.

pub mod cli;
pub mod dev;
pub mod env;
pub mod masked;
pub mod mount;
pub mod path;
pub mod pseudofs;
pub mod rootfs;
pub mod sys;
pub mod volume;

use stage01_uts::Container;

/// Stage 02's container, plus a root filesystem and an environment.
// ANCHOR: container
pub fn container(args: &cli::RunArgs) -> Container {
    let container = stage02_pid::container(&args.base);
    let hostname = stage01_uts::hostname(&args.base.base, container.id());
    container
        .with(mount::Mount::new(args.rootfs.clone(), args.volumes.clone()))
        .with(env::Environment::new(
            &args.env,
            args.workdir.clone(),
            hostname.to_string(),
            args.rootfs.clone(),
        ))
}
// ANCHOR_END: container
