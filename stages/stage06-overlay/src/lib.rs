//! Stage 06 — copy-on-write root filesystems.
//!
//! Stage 05 as a library, plus overlayfs: the rootfs (or the layers given
//! with `--layer`) is the read-only lower part of an overlay, mounted inside
//! the container's mount namespace; the container's writes go to an upper
//! directory of its own under the runtime's data directory (`--root`), and
//! are removed with it.
//!
//! - [`overlay`]: the primitive;
//! - [`datadir`]: the data directory, root-only;
//! - [`cli`]: `--layer`, and the global `--root`.

pub mod cli;
pub mod datadir;
pub mod overlay;

use std::path::PathBuf;

use stage01_uts::Container;

/// Stage 05's container, on an overlay of its rootfs and layers.
// ANCHOR: container
pub fn container(args: &cli::RunArgs, store: &cli::StoreArgs) -> Container {
    container_on(args, store, Vec::new(), None)
}

/// [`container`], with an image's layers (lowest first) under any given
/// with `--rootfs` and `--layer`: how stage 07 runs an image. `hold` is
/// kept until the container's layers are recorded as in use (stage 07's
/// hold on its store).
pub fn container_on(
    args: &cli::RunArgs,
    store: &cli::StoreArgs,
    image_layers: Vec<PathBuf>,
    hold: Option<Box<dyn std::any::Any>>,
) -> Container {
    let lowers: Vec<PathBuf> = image_layers
        .into_iter()
        .chain(args.base.base.base.rootfs.clone())
        .chain(args.layers.iter().cloned())
        .collect();
    let mut overlay = overlay::Overlay::new(lowers, store.dir());
    if let Some(hold) = hold {
        overlay = overlay.holding(hold);
    }
    stage05_cgroups::container(&args.base)
        // Before stage 03's mount sequence, which uses it as the rootfs (and
        // after the user namespace, whose root must own the upper directory).
        .with_first(overlay)
}
// ANCHOR_END: container
