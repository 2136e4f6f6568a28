//! `stage04-user run --rootfs DIR [--user U[:G]] [--uidmap C:H:S] [--gidmap C:H:S] [--userns] [stage 03 options] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage04-user",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 04 of myruntime: user namespaces map the container's ids to the host's \
                (root inside, nobody outside), so ordinary users can run containers too",
        run_about: "Run COMMAND in its own user, IPC, mount, PID and UTS namespaces",
        required: &["rootfs"],
    };
    cli::run_main(binary, stage04_user::build)
}
// ANCHOR_END: main
