//! `stage02-pid run [--hostname NAME] [--init] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage02-pid",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 02 of myruntime: COMMAND runs as PID 1 of a new PID namespace; \
                signals are forwarded to it and the runtime returns as soon as it exits",
        run_about: "Run COMMAND as PID 1 of new PID and UTS namespaces and exit with its status",
        required: &[],
    };
    cli::run_main(binary, stage02_pid::build)
}
// ANCHOR_END: main
