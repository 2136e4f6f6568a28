//! `stage03-mount run --rootfs DIR [-v HOST:CTR[:ro]] [-w DIR] [-e K=V] [--hostname NAME] [--init] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage03-mount",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 03 of myruntime: the container gets a root filesystem of its own, \
                entered with pivot_root in a new mount namespace, with fresh /proc, /sys and /dev",
        run_about: "Run COMMAND in its own root filesystem, as PID 1 of new mount, PID and UTS namespaces",
        required: &["rootfs"],
    };
    cli::run_main(binary, stage03_mount::build)
}
// ANCHOR_END: main
