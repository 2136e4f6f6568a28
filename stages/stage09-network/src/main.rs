//! `stage09-network [--root DIR] run|create|start|exec|ps|network|... [--network bridge|NAME|none|host|pasta|container:NAME] ...`

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage08_lifecycle::cli::main_with::<stage09_network::cli::NetworkFlags>(
        Binary {
            name: "stage09-network",
            version: env!("CARGO_PKG_VERSION"),
            about: "Stage 09 of myruntime: a network of the container's own: bridge \
                    networks with NAT, published ports and names; none, host, pasta, \
                    container:NAME",
            run_about: "",
            required: &[],
        },
        Some(&stage09_network::NETWORK),
    )
}
// ANCHOR_END: main
