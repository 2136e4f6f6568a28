//! `stage07-image [--root DIR] run|pull|images|rmi ...`

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage07_image::cli::main(Binary {
        name: "stage07-image",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 07 of myruntime: OCI images from real registries, pulled, verified, \
                unpacked and stored; containers run from them",
        run_about: "",
        required: &[],
    })
}
// ANCHOR_END: main
