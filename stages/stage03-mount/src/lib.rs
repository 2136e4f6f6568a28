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
pub mod defaults;
pub mod dev;
pub mod env;
pub mod masked;
pub mod mount;
pub mod options;
pub mod path;
pub mod pseudofs;
pub mod rootfs;
pub mod sys;
pub mod volume;

use std::path::PathBuf;

use stage01_uts::spec::{self, Spec};
use stage01_uts::{Container, ContainerId, Error, Root};

/// Stage 03's command line as a spec: stage 02's, a root filesystem with
/// docker's mounts and the volumes, masked and read-only kernel paths, an
/// environment of its own (docker's defaults, then `-e`), and a working
/// directory.
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId) -> Result<Spec, Error> {
    let mut spec = stage02_pid::spec(&args.base, id)?;
    let hostname = spec.hostname().clone().unwrap_or_default();
    let env = env::merge(&defaults::env(&hostname), &args.env, |key| {
        std::env::var(key).ok()
    });
    let process = spec::process_mut(&mut spec);
    process.set_env(Some(env));
    process.set_cwd(args.workdir.clone().unwrap_or_else(|| PathBuf::from("/")));
    match &args.rootfs {
        Some(rootfs) => {
            defaults::root(&mut spec, rootfs);
            defaults::mounts(&mut spec, &args.volumes);
        }
        None if !args.volumes.is_empty() => {
            return Err(mount::MountError::VolumesWithoutRootfs.into());
        }
        None => {}
    }
    Ok(spec)
}
// ANCHOR_END: spec

/// Stage 02's container, plus a root filesystem and its mounts, and a
/// working directory.
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId) -> Result<Container, Error> {
    let root = match spec.root() {
        Some(root) => Root::Dir(root.path().clone()),
        None => Root::Host,
    };
    let workdir = spec
        .process()
        .as_ref()
        .map_or_else(|| PathBuf::from("/"), |p| p.cwd().clone());
    Ok(stage02_pid::container(spec, id)?
        .with_root(root)
        .with(mount::Mount::from_spec(spec))
        .with(env::Environment::new(workdir)))
}
// ANCHOR_END: container

/// A stage 03 container from the command line.
pub fn build(args: &cli::RunArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    container(&spec(args, &id)?, id)
}
