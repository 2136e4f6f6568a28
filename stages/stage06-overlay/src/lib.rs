//! Stage 06 — copy-on-write root filesystems.
//!
//! Stage 05 as a library, plus overlayfs: the rootfs (or the layers given
//! with `--layer`) is the read-only lower part of an overlay, mounted inside
//! the container's mount namespace; the container's writes go to an upper
//! directory of its own under the runtime's data directory (`--root`), and
//! are removed with it.
//!
//! The overlay stands in front of the runtime spec, as an engine's
//! snapshotter does: the layers are not part of the spec, whose `root.path`
//! is where their overlay appears.
//!
//! - [`overlay`]: the primitive, and the layers' files read before it exists;
//! - [`datadir`]: the data directory, root-only;
//! - [`cli`]: `--layer`, and the global `--root`.

pub mod cli;
pub mod datadir;
pub mod overlay;

use stage01_uts::spec::Spec;
use stage01_uts::{Container, ContainerId, Error};

use crate::overlay::{LayerFiles, Layers, Overlay};

/// Stage 06's command line as a spec: stage 05's, its root the overlay of
/// `layers` (`root.path`, where the overlay will be), and `--user` resolved
/// against the files of the layers.
// ANCHOR: spec
pub fn spec(args: &cli::RunArgs, id: &ContainerId, layers: &Layers) -> Result<Spec, Error> {
    let mut args = args.base.clone();
    args.base.base.rootfs = Some(overlay::merged(&layers.store, id.as_str()));
    stage05_cgroups::spec(&args, id, &LayerFiles(&layers.lowers))
}
// ANCHOR_END: spec

/// Stage 05's container, on an overlay of `layers`.
// ANCHOR: container
pub fn container(spec: &Spec, id: ContainerId, layers: Layers) -> Result<Container, Error> {
    let overlay = Overlay::from_spec(spec, layers);
    Ok(stage05_cgroups::container(spec, id)?.with(overlay))
}
// ANCHOR_END: container

/// The layers of a command line: `--rootfs` (lowest), then each `--layer`.
pub fn layers(args: &cli::RunArgs, store: &cli::StoreArgs) -> Layers {
    Layers {
        lowers: (args.base.base.base.rootfs.iter())
            .chain(&args.layers)
            .cloned()
            .collect(),
        store: store.dir(),
        hold: None,
        keep: false,
        // Removed when it ends: its writes are never worth a sync.
        volatile: true,
    }
}

/// A stage 06 container from the command line.
pub fn build(args: &cli::RunArgs, store: &cli::StoreArgs) -> Result<Container, Error> {
    let id = ContainerId::generate();
    let layers = layers(args, store);
    container(&spec(args, &id, &layers)?, id, layers)
}
