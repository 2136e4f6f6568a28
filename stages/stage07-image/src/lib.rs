//! Stage 07 — images.
//!
//! Stage 06 as a library, plus OCI images: `pull` fetches an image from a
//! registry (indexes resolved to a platform, manifests, configs and layers
//! checked against their digests, layers streamed to disk and unpacked
//! safely), `images` and `rmi` manage the store, and `run IMAGE` stacks the
//! image's layers as the overlay's lowers and applies its config.
//!
//! - [`pull`]: a pull from start to end (on tokio, in its own process);
//! - [`registry`]: the registry's HTTP API, every answer bounded;
//! - [`manifest`], [`digest`]: what a registry sends, read strictly;
//! - [`archive`], [`unpack`]: layers: a strict tar reader, whiteouts,
//!   containment through descriptors, bounds;
//! - [`store`]: the store on disk;
//! - [`config`]: the image's config, written into the spec;
//! - [`reference`], [`auth`]: names and credentials;
//! - [`cli`]: the verbs.

pub mod archive;
pub mod auth;
pub mod cli;
pub mod config;
pub mod digest;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

use std::process::{Command, Stdio};

use std::path::PathBuf;

use stage01_uts::spec::Spec;
use stage01_uts::{Container, ContainerId, Error, ExitStatus};
use stage06_overlay::cli::StoreArgs;
use stage06_overlay::overlay::Layers;

use crate::cli::{PullArgs, RegistryArgs, RmiArgs, RunArgs};
use crate::store::Store;

/// `run`: from `--rootfs`/`--layer`, as stage 06; else the first argument
/// is the image and the rest, if any, the command.
// ANCHOR: run
pub fn run(args: &RunArgs, store: &StoreArgs) -> Result<ExitStatus, Error> {
    build(args, store)?.run()
}
// ANCHOR_END: run

/// The container `run` starts.
pub fn build(args: &RunArgs, store: &StoreArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    let (spec, layers) = spec(args, store, &id)?;
    stage06_overlay::container(&spec, id, layers)
}

/// Stage 07's command line as a spec, and the layers under it: stage 06's
/// for `--rootfs`/`--layer`; for an image, its layers (found, else pulled)
/// under any given, and its config written into the spec.
// ANCHOR: spec
pub fn spec(args: &RunArgs, store: &StoreArgs, id: &ContainerId) -> Result<(Spec, Layers), Error> {
    let stage03 = &args.base.base.base.base; // stage 06 → 05 → 04 → 03
    let stage01 = &stage03.base.base; // → 02 → 01
    let mut layers = stage06_overlay::layers(&args.base, store);
    if stage03.rootfs.is_some() || !args.base.layers.is_empty() {
        let spec = stage06_overlay::spec(&args.base, id, &layers)?;
        return Ok((spec, layers));
    }
    let (image, command) = stage01
        .command
        .split_first()
        .expect("clap requires a command");
    let image = image.to_string_lossy().into_owned();
    let reference =
        reference::parse(&image).map_err(|_| Error::primitive(NotAnImage(image.clone())))?;
    let (config, lowers, using) = find_or_pull(&reference, &image, &args.registry, store)?;
    // Held from the lookup, through a pull if the image is missing, until
    // the container's layers are recorded (stage 06 lets go of it then):
    // `rmi` cannot remove them in between.
    layers.lowers = lowers;
    layers.hold = Some(Box::new(using));
    let mut spec = stage06_overlay::spec(&args.base, id, &layers)?;
    let given = config::Overrides {
        command: command.to_vec(),
        env_keys: stage03.env.iter().map(|v| v.key.clone()).collect(),
        workdir: stage03.workdir.is_some(),
        user: args.base.base.base.user.is_some(),
    };
    let files = stage06_overlay::overlay::LayerFiles(&layers.lowers);
    let short = reference::short(&reference);
    config::apply(&mut spec, &short, &config, &given, &files)?;
    Ok((spec, layers))
}
// ANCHOR_END: spec

/// The image's config and layers (lowest first), pulled first if the store
/// does not have it, and the hold on the store that keeps them there.
fn find_or_pull(
    reference: &reference::Reference,
    image: &str,
    registry: &RegistryArgs,
    store: &StoreArgs,
) -> Result<(config::ImageConfig, Vec<PathBuf>, store::Lock), Error> {
    let dir = store.dir();
    let store_ = Store::open(&dir).map_err(Error::primitive)?;
    // The pull's own process takes the same lock shared too; shared locks
    // do not wait for each other.
    let using = store_.using().map_err(Error::primitive)?;
    let find = || {
        store_
            .find(
                &reference::repository(reference),
                reference.tag(),
                reference.digest(),
            )
            .map_err(Error::primitive)
    };
    let record = match find()? {
        Some(record) => record,
        None => {
            pull_in_child(image, registry, store)?;
            find()?.ok_or_else(|| Error::primitive(store::StoreError::NotFound(image.into())))?
        }
    };
    let config_bytes = store_
        .read_blob(&record.config, manifest::CONFIG_MAX)
        .map_err(Error::primitive)?;
    let config = config::ImageConfig::parse(&config_bytes).map_err(|e| {
        Error::primitive(store::StoreError::Damaged {
            path: store_.blob_path(&record.config).display().to_string(),
            why: e.to_string(),
        })
    })?;
    let layers = record.layers.iter().map(|d| store_.layer_path(d)).collect();
    Ok((config, layers, using))
}

/// `run X` where X is no image reference.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not an image (NAME[:TAG] or NAME@DIGEST); to run a command from a directory, \
     give --rootfs DIR or --layer DIR"
)]
struct NotAnImage(String);

/// Pull through a child process (`pull`), so that this process, which will
/// clone, never starts the registry client's threads.
fn pull_in_child(image: &str, registry: &RegistryArgs, store: &StoreArgs) -> Result<(), Error> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root").arg(store.dir()).arg("pull");
    if let Some(platform) = &registry.platform {
        cmd.arg("--platform").arg(platform.to_string());
    }
    for insecure in &registry.insecure {
        cmd.arg("--insecure-registry").arg(insecure);
    }
    if let Some(max) = registry.max_unpacked {
        cmd.arg("--max-unpacked-size").arg(max.0.to_string());
    }
    let status = cmd.arg(image).stdin(Stdio::null()).status().map_err(|e| {
        Error::syscall(
            "execve(/proc/self/exe pull)",
            "pulling the image",
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Reported(status.code().unwrap_or(125) as u8))
    }
}

/// `pull IMAGE`.
pub fn pull_verb(args: &PullArgs, store: &StoreArgs) -> Result<(), Error> {
    let reference = reference::parse(&args.image).map_err(Error::primitive)?;
    let store = Store::open(&store.dir()).map_err(Error::primitive)?;
    let options = pull::Options {
        platform: args.registry.platform.clone(),
        insecure: args.registry.insecure.clone(),
        max_unpacked: args
            .registry
            .max_unpacked
            .map_or(unpack::DEFAULT_MAX_UNPACKED, |b| b.0),
    };
    pull::pull(&store, &reference, &options).map_err(Error::primitive)?;
    Ok(())
}

/// `images`.
pub fn images(store: &StoreArgs) -> Result<(), Error> {
    let store = Store::open(&store.dir()).map_err(Error::primitive)?;
    let images = store.images().map_err(Error::primitive)?;
    println!(
        "{:<40} {:<16} {:<14} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for image in images {
        let repo = image
            .repository
            .strip_prefix("docker.io/library/")
            .or_else(|| image.repository.strip_prefix("docker.io/"))
            .unwrap_or(&image.repository);
        let tag = if image.tag.is_empty() {
            "<none>"
        } else {
            &image.tag
        };
        println!(
            "{repo:<40} {tag:<16} {:<14} {:>10}",
            image.id(),
            human(image.size)
        );
    }
    Ok(())
}

/// `rmi IMAGE...`.
pub fn rmi(args: &RmiArgs, store: &StoreArgs) -> Result<(), Error> {
    let store = Store::open(&store.dir()).map_err(Error::primitive)?;
    for image in &args.images {
        let reference = reference::parse(image).map_err(Error::primitive)?;
        let shown = reference::short(&reference);
        let removed = store
            .remove(
                &reference::repository(&reference),
                reference.tag(),
                reference.digest(),
                &shown,
            )
            .map_err(Error::primitive)?;
        println!("removed {shown} ({})", removed.id());
    }
    Ok(())
}

/// 7.8MB, as docker prints sizes.
fn human(bytes: u64) -> String {
    stage05_cgroups::cli::decimal(bytes, 1)
}
