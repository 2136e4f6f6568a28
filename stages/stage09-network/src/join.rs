//! `--network container:NAME`: the network namespace of another running
//! container, shared (docker's, and a Kubernetes pod's: its containers all
//! share the pause container's). Nothing is made: the child joins the
//! namespace with `setns(2)` before anything is mounted (stage 03's sysfs
//! then shows the shared interfaces), and sees the other's `resolv.conf`,
//! `hosts` and `hostname` files (bind-mounted from its directory).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use stage01_uts::{ContainerId, Context, Error, Phase, Primitive, explain};
use stage08_lifecycle::state::Store;

/// What can go wrong joining another container's network.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("--network container:{0}: {1}")]
    Target(String, String),
    #[error(
        "--network container:{0}: that container is not running; start it first (its network lives as long as its processes)"
    )]
    NotRunning(String),
    #[error(
        "--network container: needs root: an ordinary user's container cannot join a namespace its own user namespace does not own"
    )]
    Rootless,
}

/// The container `query` (a name or an id prefix) names, by full id.
pub fn resolve(root: &Path, query: &str) -> Result<ContainerId, Error> {
    Store::new(root)
        .find(query)
        .map(|(id, _)| id)
        .map_err(|e| crate::refused(JoinError::Target(query.to_owned(), e.to_string())))
}

/// The stage 09 primitive for `--network container:ID`.
pub struct JoinNetwork {
    root: PathBuf,
    target: ContainerId,
    namespace: Option<File>,
}

impl JoinNetwork {
    pub fn new(root: &Path, target: ContainerId) -> Self {
        JoinNetwork {
            root: root.to_path_buf(),
            target,
            namespace: None,
        }
    }
}

impl Primitive for JoinNetwork {
    fn name(&self) -> &'static str {
        "network"
    }

    /// First in the child, before the mounts: a fresh sysfs shows the
    /// network namespace its mounter is in.
    fn phase(&self) -> Phase {
        Phase::UserNamespace
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    /// On the host: the other container's namespace, opened while it is
    /// known to be that container's (its pid checked after the open too:
    /// a pid reused in between would hand over a stranger's namespace).
    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        if !nix::unistd::geteuid().is_root() {
            return Err(crate::refused(JoinError::Rootless));
        }
        let short = self.target.short().to_owned();
        let not_running = || crate::refused(JoinError::NotRunning(short.clone()));
        let store = Store::new(&self.root);
        let state = store.state(&self.target).ok_or_else(not_running)?;
        if !state.pid.alive() {
            return Err(not_running());
        }
        let path = format!("/proc/{}/ns/net", state.pid.pid);
        let file = File::open(&path).map_err(|_| not_running())?;
        if !state.pid.alive() {
            return Err(not_running());
        }
        explain!(
            "open({path:?})" => "ok",
            "the network namespace of container {short}, to join"
        );
        self.namespace = Some(file);
        Ok(())
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some(namespace) = &self.namespace else {
            return Ok(());
        };
        nix::sched::setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
            Error::syscall(
                "setns(CLONE_NEWNET)",
                "joining the other container's network namespace",
                errno,
            )
        })?;
        let short = self.target.short();
        explain!(
            "setns(CLONE_NEWNET)" => "ok",
            "container {short}'s interfaces, addresses and ports are this one's too"
        );
        Ok(())
    }
}
