//! `myruntime`: the full runtime, composed from the workbook's stages.
//!
//! Each stage's crate owns one primitive; `myruntime` composes them and adds
//! nothing of its own to the start sequence. Today it is stage 07's command
//! line: `run`, `pull`, `images`, `rmi`.

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage07_image::cli::main(Binary {
        name: "myruntime",
        version: env!("CARGO_PKG_VERSION"),
        about: "myruntime: a Linux container runtime written from scratch",
        run_about: "",
        required: &[],
    })
}
// ANCHOR_END: main
