//! `stage05-cgroups run --rootfs DIR [--memory SIZE] [--cpus N] [--pids-limit N] [io limits] [stage 04 options] [--] COMMAND [ARG...]`

use std::process::ExitCode;

use stage01_uts::cli::{self, Binary};

// ANCHOR: main
fn main() -> ExitCode {
    let binary = Binary {
        name: "stage05-cgroups",
        version: env!("CARGO_PKG_VERSION"),
        about: "Stage 05 of myruntime: every container gets a cgroup of its own, limited \
                before COMMAND runs: memory, CPU, processes and I/O, on cgroup v2, v1 and hybrid hosts",
        run_about: "Run COMMAND in its own cgroup and namespaces, with the limits given",
        required: &["rootfs"],
    };
    cli::run_main(binary, stage05_cgroups::build)
}
// ANCHOR_END: main
