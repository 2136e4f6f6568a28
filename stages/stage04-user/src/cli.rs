//! `run`'s arguments at stage 04: stage 03's, plus the container's user and
//! its user namespace.

use crate::ids::IdMap;
use crate::passwd::UserSpec;

/// `run`'s arguments at stage 04.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage03_mount::cli::RunArgs,

    /// Run COMMAND as this user: a name or uid from the rootfs's /etc/passwd,
    /// optionally with a group
    #[arg(
        short = 'u',
        long,
        value_name = "USER[:GROUP]",
        allow_hyphen_values = true
    )]
    pub user: Option<UserSpec>,

    /// Map container uids to host uids in a new user namespace (repeatable)
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub uidmap: Vec<IdMap>,

    /// Map container gids to host gids (repeatable; default: as --uidmap)
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub gidmap: Vec<IdMap>,

    /// Map the container's root to your subordinate ids from /etc/subuid and
    /// /etc/subgid, so that root inside is nobody outside
    #[arg(long)]
    pub userns: bool,
}
// ANCHOR_END: run_args
