//! `myruntime`: the full runtime, composed from the workbook's stages.
//!
//! Each stage's crate owns one primitive; `myruntime` composes them and adds
//! nothing of its own to the start sequence. Today it is stage 08's command
//! line: a container's life (`run`, `create`, `start`, `exec`, `ps`, `logs`,
//! `stop`, `rm` …) and stage 07's images (`pull`, `images`, `rmi`), with
//! stage 09's `--network`.

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage08_lifecycle::cli::main_with::<stage09_network::cli::NetworkFlags>(
        Binary {
            name: "myruntime",
            version: env!("CARGO_PKG_VERSION"),
            about: "myruntime: a Linux container runtime written from scratch",
            run_about: "",
            required: &[],
        },
        Some(&stage09_network::NETWORK),
    )
}
// ANCHOR_END: main
