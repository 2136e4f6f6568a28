//! `stage06-overlay [--root DIR] run (--rootfs DIR | --layer DIR...) [stage 05 options] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage06-overlay",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 06 of myruntime: the rootfs (or layers) become the read-only lower of an \
                overlay; the container writes to an upper directory of its own, removed with it",
        run_about: "Run COMMAND on a copy-on-write root filesystem, in its own cgroup and namespaces",
        required: &[],
    };
    cli::run_main_with(binary, stage06_overlay::build)
}
// ANCHOR_END: main
