//! `stage08-lifecycle [--root DIR] run|create|start|exec|ps|logs|stop|rm|... ...`

use std::process::ExitCode;

use stage01_uts::cli::Binary;

// ANCHOR: main
fn main() -> ExitCode {
    stage08_lifecycle::cli::main(Binary {
        name: "stage08-lifecycle",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 08 of myruntime: containers that outlive the command: create, start, \
                detach, exec, logs, ps, inspect, stats, stop, rm, and crash recovery",
        run_about: "",
        required: &[],
    })
}
// ANCHOR_END: main
