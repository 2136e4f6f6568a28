//! `myruntime`: the full runtime, composed from the workbook's stages.
//!
//! Each stage's crate owns one primitive; `myruntime` composes them and adds
//! nothing of its own to the start sequence. Today it runs what stage 05 runs; without `--rootfs` the container keeps the
//! host's root filesystem.

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "myruntime",
        version: env!("CARGO_PKG_VERSION"),
        about: "myruntime: a Linux container runtime written from scratch",
        run_about: "Run COMMAND in a new container and exit with its status",
        required: &[],
    };
    cli::run_main(binary, stage05_cgroups::container)
}
// ANCHOR_END: main
