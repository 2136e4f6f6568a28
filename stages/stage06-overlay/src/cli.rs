//! `run`'s arguments at stage 06: stage 05's, plus layers; and the global
//! `--root`.

use std::path::PathBuf;

/// `run`'s arguments at stage 06.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage05_cgroups::cli::RunArgs,

    /// A read-only layer of the root filesystem (repeatable, lowest first;
    /// above --rootfs, if given)
    #[arg(long = "layer", value_name = "DIR")]
    pub layers: Vec<PathBuf>,
}
// ANCHOR_END: run_args

/// Where the runtime keeps its data: containers' upper directories (stage
/// 06), images (stage 07).
// ANCHOR: store_args
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// The runtime's data directory [default: /var/lib/myruntime, or
    /// $XDG_DATA_HOME/myruntime for an ordinary user]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "MYRUNTIME_ROOT",
        hide_env_values = true
    )]
    pub root: Option<PathBuf>,
}
// ANCHOR_END: store_args

impl StoreArgs {
    /// The data directory to use.
    pub fn dir(&self) -> PathBuf {
        match &self.root {
            Some(root) => root.clone(),
            None => default_root(),
        }
    }
}

/// $HOME, else the home directory /etc/passwd gives (a service or `env -i`
/// may leave HOME unset).
fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::current())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// /var/lib/myruntime for root; for an ordinary user $XDG_DATA_HOME/myruntime,
/// or ~/.local/share/myruntime.
pub fn default_root() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/myruntime");
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("myruntime"),
        None => home().join(".local/share/myruntime"),
    }
}
