//! `myruntime`: the full runtime, composed from the workbook's stages.
//!
//! Stage 08's command line: a container's life (`run`, `create`, `start`,
//! `exec`, `ps`, `logs`, `stop`, `rm` …), stage 07's images (`pull`,
//! `images`, `rmi`), stage 09's networks, and the final hardening
//! (capabilities, `no_new_privs`).

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage08_lifecycle::cli::main_with::<myruntime::security::FinalFlags>(
        Binary {
            name: "myruntime",
            version: env!("CARGO_PKG_VERSION"),
            about: "myruntime: a Linux container runtime written from scratch",
            run_about: "",
            required: &[],
        },
        Some(&myruntime::FINAL),
    )
}
// ANCHOR_END: main
