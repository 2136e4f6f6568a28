//! `stage01-uts run [--hostname NAME] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage01-uts",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 01 of myruntime: a container is a process, started with clone(2) \
                in a new UTS namespace with a hostname of its own",
        run_about: "Run COMMAND in a new UTS namespace and exit with its status",
        required: &[],
    };
    cli::run_main(binary, stage01_uts::build)
}
// ANCHOR_END: main
