//! Stage 08 — containers that outlive the command.
//!
//! Stage 07 as a library, plus a life of its own for every container: it is
//! data (the spec, written to disk), it has a state (created, running,
//! paused, exited), and each step of its life is a command of its own,
//! which may run in another process, at another time, as docker's do:
//! `create`, `start`, `run -d`, `attach`, `exec`, `logs`, `ps`, `inspect`,
//! `stats`, `top`, `wait`, `stop`, `kill`, `restart`, `pause`, `unpause`,
//! `rm`.
//!
//! - [`state`]: what is on disk, and how a container is found;
//! - [`monitor`]: the process that is a detached container's parent;
//!   [`detach`], how it leaves the command that started it;
//! - [`control`]: the monitor's socket; [`stdio`], [`terminal`]: the
//!   container's streams and terminal;
//! - [`logs`]: its output, kept; [`exec`]: joining it; [`recover`]: what the
//!   next command does after a crash;
//! - [`verbs`]: the commands; [`show`]: `ps`, `inspect`, `top`, `stats`.

pub mod cli;
pub mod control;
pub mod detach;
pub mod exec;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod proc;
pub mod recover;
pub mod show;
pub mod state;
pub mod stdio;
pub mod terminal;
pub mod time;
pub mod verbs;

use std::path::Path;
use std::sync::OnceLock;

use stage01_uts::spec::{self, Spec};
use stage01_uts::{Container, ContainerId, Error, Primitive};
use stage06_overlay::cli::StoreArgs;
use stage06_overlay::overlay::Layers;

/// What a later stage adds to every container made from a spec, whoever
/// makes it (a foreground `run`, a monitor for `create`, `run -d`, `start`
/// or `restart`): stage 09's network. Its flags go into the spec through
/// [`cli::Flags`]; its primitives are built from the spec alone, since a
/// container is made again from its spec on disk.
pub trait Extension: Sync {
    /// The primitives for a container made from `spec`, whose data
    /// directory (`--root`) is `root`.
    fn primitives(
        &self,
        spec: &Spec,
        id: &ContainerId,
        root: &Path,
    ) -> Result<Vec<Box<dyn Primitive>>, Error>;

    /// Undo what the primitives' cleanup would have, for a container whose
    /// monitor died before it could (recovery), or that is removed.
    fn reclaim(&self, _root: &Path, _id: &ContainerId) {}

    /// What `inspect` shows of it (docker's `NetworkSettings`).
    fn settings(&self, _root: &Path, _id: &ContainerId, _spec: &Spec) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// What `ps` shows of it in its PORTS column.
    fn ports(&self, _spec: &Spec) -> String {
        String::new()
    }

    /// The primitives every process of the container gets, the ones `exec`
    /// starts too (the final stage's capabilities): a process joining the
    /// container must be no less contained than its first.
    fn process_primitives(&self, _spec: &Spec) -> Result<Vec<Box<dyn Primitive>>, Error> {
        Ok(Vec::new())
    }
}

/// This binary's extension, if it has one.
pub(crate) fn extension() -> Option<&'static dyn Extension> {
    EXTENSION.get().copied()
}

/// [`Extension::reclaim`] of this binary's extension, if it has one.
pub(crate) fn reclaim(root: &Path, id: &ContainerId) {
    if let Some(extension) = extension() {
        extension.reclaim(root, id);
    }
}

static EXTENSION: OnceLock<&'static dyn Extension> = OnceLock::new();

/// Set, once, at the start of a binary's `main`, what its stage adds.
pub fn extend(extension: &'static dyn Extension) {
    let _ = EXTENSION.set(extension);
}

/// Stage 08's command line as a spec, and the layers under it: stage 07's,
/// with a terminal if asked for (`process.terminal`).
// ANCHOR: spec
pub fn spec<X: cli::Flags>(
    args: &cli::CreateArgs<X>,
    store: &StoreArgs,
    id: &ContainerId,
) -> Result<(Spec, Layers), Error> {
    let (mut spec, mut layers) = stage07_image::spec(&args.image, store, id)?;
    spec::process_mut(&mut spec).set_terminal(Some(args.tty));
    // A stopped container keeps its files until `rm`; one removed when it
    // ends (foreground, --rm) never waits for its writes to be synced.
    layers.keep = true;
    layers.volatile = args.rm;
    Ok((spec, layers))
}
// ANCHOR_END: spec

/// Stage 07's container (stage 06's: an image adds nothing past the spec),
/// with its standard streams, and what a later stage adds.
// ANCHOR: container
pub fn container(
    spec: &Spec,
    id: ContainerId,
    layers: Layers,
    stdio: stdio::Stdio,
) -> Result<Container, Error> {
    let more = match extension() {
        Some(extension) => extension.primitives(spec, &id, &layers.store)?,
        None => Vec::new(),
    };
    let container = stage06_overlay::container(spec, id, layers)?.with(stdio);
    Ok(more.into_iter().fold(container, Container::with_boxed))
}
// ANCHOR_END: container
