//! Which cgroup hierarchy this host has, and where a container's cgroup may
//! go.
//!
//! - **v2 (unified):** one tree at /sys/fs/cgroup, controllers enabled per
//!   subtree through `cgroup.subtree_control`. What most hosts run today.
//! - **v1 (legacy):** one tree per controller, /sys/fs/cgroup/memory,
//!   /sys/fs/cgroup/cpu, ...; a container's cgroup is a directory in each.
//! - **hybrid:** v1 for the controllers, plus a cgroup2 tree at
//!   /sys/fs/cgroup/unified that systemd uses for tracking and that holds no
//!   (or almost no) controllers. The controllers live on v1, so that is where
//!   limits go.
//!
//! cgroups-rs picks v2 only when /sys/fs/cgroup itself is cgroup2, so it reads
//! a hybrid host as v1, which is right; the detection is still done here, so
//! that messages and `make check` can name the mode, and so that no code path
//! can ever force v2 on a hybrid host.

use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, TMPFS_MAGIC, statfs};

/// The cgroup filesystem's root.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup layout of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unified,
    Legacy,
    Hybrid,
}

impl Mode {
    /// Look at this host.
    pub fn detect() -> Option<Mode> {
        let root = statfs(ROOT).ok()?;
        if root.filesystem_type() == CGROUP2_SUPER_MAGIC {
            return Some(Mode::Unified);
        }
        if root.filesystem_type() != TMPFS_MAGIC {
            return None;
        }
        let unified = statfs(&Path::new(ROOT).join("unified"))
            .is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
        Some(if unified { Mode::Hybrid } else { Mode::Legacy })
    }

    /// Whether limits go to v2 files.
    pub fn is_v2(self) -> bool {
        self == Mode::Unified
    }

    /// The cgroups-rs hierarchy for this mode: v1 for legacy and hybrid.
    pub fn hierarchy(self) -> Box<dyn cgroups_rs::fs::Hierarchy> {
        match self {
            Mode::Unified => Box::new(cgroups_rs::fs::hierarchies::V2::new()),
            Mode::Legacy | Mode::Hybrid => Box::new(cgroups_rs::fs::hierarchies::V1::new()),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Unified => "cgroup v2",
            Mode::Legacy => "cgroup v1",
            Mode::Hybrid => "hybrid cgroups (controllers on v1)",
        })
    }
}

/// Where an ordinary user may create cgroups: on v2, the highest cgroup
/// above its own that it owns (systemd delegates `user@UID.service` to each
/// user). `None` on v1 and hybrid hosts, where nothing is delegated, and on
/// a v2 host that delegates nothing to this user.
// ANCHOR: delegated
pub fn delegated_subtree(mode: Mode, uid: u32, own_cgroup: &str) -> Option<PathBuf> {
    if !mode.is_v2() {
        return None;
    }
    let own = own_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim_start_matches('/');
    let mut best = None;
    let mut path = PathBuf::new();
    for part in Path::new(own).components() {
        path.push(part);
        let dir = Path::new(ROOT).join(&path);
        if owned_by(&dir, uid) && owned_by(&dir.join("cgroup.procs"), uid) {
            // The highest one: everything below it is the user's to arrange.
            best.get_or_insert_with(|| path.clone());
        }
    }
    best
}
// ANCHOR_END: delegated

fn owned_by(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.uid() == uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_a_mode() {
        // Every Linux host the suites run on has one.
        assert!(Mode::detect().is_some());
    }

    #[test]
    fn nothing_is_delegated_on_v1() {
        assert_eq!(
            delegated_subtree(Mode::Hybrid, 1000, "0::/user.slice\n"),
            None
        );
        assert_eq!(
            delegated_subtree(Mode::Legacy, 1000, "0::/user.slice\n"),
            None
        );
    }

    #[test]
    fn a_v2_cgroup_owned_by_someone_else_is_not_delegated() {
        // /sys/fs/cgroup's own cgroups belong to root; uid 4242 owns none.
        assert_eq!(delegated_subtree(Mode::Unified, 4242, "0::/\n"), None);
    }
}
