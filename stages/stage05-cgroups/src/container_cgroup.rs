//! The stage 05 primitive: a cgroup of its own for every container, limited
//! before COMMAND runs a single instruction, and removed when it ends.
//!
//! - `prepare` (host, before clone): remove what dead runtimes left, create
//!   the cgroup, write every limit. A limit that cannot be applied stops the
//!   start here, with nothing left behind.
//! - `attach` (host, while the child waits on the go pipe): move the child
//!   into the cgroup. The child has run no instruction of COMMAND yet.
//! - `setup` (container): a cgroup namespace, rooted at the container's own
//!   cgroup, so /proc/self/cgroup inside shows `/`, not the host's layout.
//! - `cleanup` (host): report an OOM kill, then remove the cgroup.

use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, cli, explain};

use crate::cgroup::Cgroup;
use crate::hierarchy::{Mode, delegated_subtree};
use crate::limits::Limits;
use crate::rundir::{OwnerLock, reap_stale, runtime_dir};

/// The default parent of every container's cgroup.
pub const DEFAULT_PARENT: &str = "myruntime";

/// The cgroup primitive.
// ANCHOR: container_cgroup
pub struct ContainerCgroup {
    limits: Limits,
    /// Below the cgroup root (or the delegated subtree, rootless):
    /// `myruntime/<id>`.
    path: PathBuf,
    /// A cgroup namespace of its own, rooted at its cgroup.
    namespace: bool,
    placed: Option<(Cgroup, OwnerLock)>,
}

impl ContainerCgroup {
    /// The cgroup a spec asks for: its `linux.cgroupsPath` (default
    /// `myruntime/<id>`), limited by its `linux.resources`.
    pub fn from_spec(spec: &Spec, id: &str) -> Self {
        let linux = spec.linux().as_ref();
        let limits = linux
            .and_then(|l| l.resources().as_ref())
            .map_or_else(Limits::default, Limits::from_spec);
        let path = linux
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.strip_prefix("/").map(PathBuf::from).unwrap_or(p))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PARENT).join(id));
        ContainerCgroup {
            limits,
            path,
            namespace: stage01_uts::spec::has_namespace(
                spec,
                stage01_uts::spec::LinuxNamespaceType::Cgroup,
            ),
            placed: None,
        }
    }
}

/// Where the cgroups of this runtime's containers go below the hierarchy's
/// root: the root itself for root; for an ordinary user the subtree
/// systemd delegated to it (`None`: none, so no cgroup at all).
fn base(mode: Mode) -> Option<PathBuf> {
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        return Some(PathBuf::new());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    delegated_subtree(mode, uid.as_raw(), &own)
}

/// The cgroup of the container `id` made from `spec`, on this host (it may
/// exist or not): what `stats`, `top`, `pause` and `exec` (stage 08) reach.
pub fn locate(spec: &Spec, id: &str) -> Option<Cgroup> {
    let mode = Mode::detect()?;
    let path = base(mode)?.join(ContainerCgroup::from_spec(spec, id).path);
    Some(Cgroup::load(mode, &path))
}

/// Remove the cgroups whose runtimes died (their owner locks are free),
/// killing what is left in them first. Returns how many went.
pub fn reap() -> usize {
    let Some(mode) = Mode::detect() else {
        return 0;
    };
    reap_stale(&runtime_dir().join("cgroups"), |path| {
        let stale = Cgroup::load(mode, path);
        stale.kill_all();
        stale.remove().is_ok()
    })
}

impl Primitive for ContainerCgroup {
    fn name(&self) -> &'static str {
        "cgroups"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let limits = self.limits.clone();
        let mode = Mode::detect().ok_or_else(|| Error::primitive(NoCgroupFs))?;
        let Some(base) = base(mode) else {
            let asked = limits.asked();
            if !asked.is_empty() {
                cli::warn(format_args!(
                    "rootless on {mode} with no cgroup delegated to you: not applied: {}",
                    asked.join(", ")
                ));
            }
            return Ok(());
        };
        let rundir = runtime_dir();
        let locks = rundir.join("cgroups");
        let reaped = reap();
        if reaped > 0 {
            explain!(
                "rmdir(<{reaped} stale cgroups>)" => "ok",
                "their runtimes died without removing them; their locks were free"
            );
        }
        let path = base.join(&self.path);
        let lock = OwnerLock::acquire(&locks, ctx.id.as_str(), &path).map_err(|e| {
            Error::primitive(LockFailed {
                dir: rundir.display().to_string(),
                why: e.to_string(),
            })
        })?;
        let cgroup = match Cgroup::create(mode, &path) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                lock.release();
                return Err(Error::primitive(e));
            }
        };
        if let Err(e) = cgroup.apply(&limits) {
            let _ = cgroup.remove();
            lock.release();
            return Err(Error::primitive(e));
        }
        let dirs: Vec<String> = cgroup
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let shown = dirs.join(", ");
        explain!(
            "mkdir({shown}) + limits" => "ok ({mode})",
            "the container's cgroup exists and is limited before its first process does"
        );
        self.placed = Some((cgroup, lock));
        Ok(())
    }

    /// While the child waits: into the cgroup, before COMMAND's first
    /// instruction.
    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        let Some((cgroup, _)) = &self.placed else {
            return Ok(());
        };
        cgroup.attach(child.as_raw()).map_err(Error::primitive)?;
        let path = cgroup.path().display();
        explain!(
            "write(cgroup.procs, {child})" => "ok",
            "the child joins {path}; what it forks from now on is counted and limited there"
        );
        Ok(())
    }

    /// In the container, now inside its cgroup: a cgroup namespace rooted
    /// here.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        if self.placed.is_none() || !self.namespace {
            return Ok(());
        }
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| {
            Error::syscall(
                "unshare(CLONE_NEWCGROUP)",
                "hiding the host's cgroup layout",
                e,
            )
        })?;
        explain!(
            "unshare(CLONE_NEWCGROUP)" => "ok",
            "the container sees its own cgroup as /, not where it sits on the host"
        );
        Ok(())
    }

    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some((cgroup, lock)) = self.placed.take() else {
            return Ok(());
        };
        let oom_kills = cgroup.oom_kills();
        if oom_kills > 0 {
            let limit = self.limits.memory.map_or_else(
                || "its memory limit".to_owned(),
                |m| format!("its memory limit of {}", crate::cli::Bytes(m)),
            );
            cli::note(format_args!(
                "the container was killed by the OOM killer: it reached {limit} (--memory); \
                 {oom_kills} process(es) killed"
            ));
        }
        if stage01_uts::explain::enabled() {
            let s = cgroup.stats();
            let (peak, cpu) = (s.memory_peak_bytes, s.cpu_usec);
            explain!(
                "read(memory peak, cpu usage)" => "peak {peak:?} bytes, cpu {cpu:?} us",
                "what the container used, read from its cgroup before it goes"
            );
        }
        let removed = cgroup.remove().map_err(Error::primitive);
        lock.release();
        removed
    }
}
// ANCHOR_END: container_cgroup

/// The host has no cgroup filesystem.
#[derive(Debug, thiserror::Error)]
#[error(
    "no cgroup filesystem is mounted at /sys/fs/cgroup; mount cgroup2 there (or run `make check`)"
)]
struct NoCgroupFs;

/// The runtime directory cannot hold the cgroup's lock.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock the cgroup in {dir}: {why}")]
struct LockFailed {
    dir: String,
    why: String,
}
