//! `run`'s arguments at stage 02: stage 01's, plus `--init`.

/// `run`'s arguments at stage 02.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage01_uts::cli::RunArgs,

    /// Run a minimal init as PID 1 that reaps orphans and forwards signals;
    /// COMMAND then runs as its child (PID 2)
    #[arg(long)]
    pub init: bool,
}
// ANCHOR_END: run_args
