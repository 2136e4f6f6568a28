//! `stage09-network [--root DIR] run|create|start|exec|ps|... [--network none|host] ...`

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage08_lifecycle::cli::main_with::<stage09_network::cli::NetworkFlags>(
        Binary {
            name: "stage09-network",
            version: env!("CARGO_PKG_VERSION"),
            about: "Stage 09 of myruntime: a network of the container's own: a network \
                    namespace with its loopback up (--network none), or the host's",
            run_about: "",
            required: &[],
        },
        Some(&stage09_network::NETWORK),
    )
}
// ANCHOR_END: main
