//! `exec`: one more process in a running container.
//!
//! The new process must end up where the container's are: in each of its
//! namespaces, in its cgroup, at its root. `setns(2)` moves the *calling*
//! process (thread, really) into an existing namespace, given a descriptor
//! of it (`/proc/PID/ns/TYPE` of the container's PID 1). The order matters:
//!
//! 1. **Open every namespace first**, while `/proc` is the host's: once the
//!    process has joined the mount namespace, the host's paths are gone.
//!    The pidfd of PID 1 is opened before and its start time checked after,
//!    so the descriptors are PID 1's, not a process that took its pid.
//! 2. **The PID namespace is joined by the runtime**, before it clones:
//!    `setns` of a PID namespace changes where the caller's *children* go,
//!    never the caller. The clone child is then a process of the container
//!    (with a pid there), and still the runtime's child, which waits for it.
//! 3. **The cgroup** is joined by the runtime for the child (stage 05's
//!    attach), before the child runs a line of COMMAND.
//! 4. **The user namespace first**, in the child: joining it gives every
//!    capability *in it*, which joining the others (owned by it) needs;
//!    then IPC, UTS, network, cgroup, and **the mount namespace last**,
//!    which also moves the process's root and working directory to the
//!    container's root.
//!
//! Then the usual end of a start: the working directory, the user (stage
//! 04's switch, read back), a terminal if asked, and `execve`.

use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::unistd::Pid as ProcessId;
use stage01_uts::spec::{LinuxNamespaceType, Spec};
use stage01_uts::{Container, ContainerId, Context, Error, Phase, Primitive, explain};
use stage05_cgroups::cgroup::Cgroup;

use crate::proc::Process;

/// The namespaces, in the order the child joins them (PID apart: the
/// runtime joins it for its child).
const ORDER: [(LinuxNamespaceType, &str, CloneFlags); 6] = [
    (LinuxNamespaceType::User, "user", CloneFlags::CLONE_NEWUSER),
    (LinuxNamespaceType::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
    (LinuxNamespaceType::Uts, "uts", CloneFlags::CLONE_NEWUTS),
    (LinuxNamespaceType::Network, "net", CloneFlags::CLONE_NEWNET),
    (
        LinuxNamespaceType::Cgroup,
        "cgroup",
        CloneFlags::CLONE_NEWCGROUP,
    ),
    (LinuxNamespaceType::Mount, "mnt", CloneFlags::CLONE_NEWNS),
];

/// Joining a running container.
// ANCHOR: join
pub struct Join {
    target: Process,
    /// The namespaces the container has (its spec's), by their /proc name.
    kinds: Vec<(&'static str, CloneFlags)>,
    pid_namespace: bool,
    cgroup: Option<Cgroup>,
    /// Opened in `prepare`, joined in `setup`.
    opened: Vec<(&'static str, CloneFlags, OwnedFd)>,
    /// The runtime joined the user namespace itself (rootless).
    joined_user: bool,
}

impl Join {
    pub fn new(target: Process, spec: &Spec, id: &ContainerId) -> Join {
        let has = |t| stage01_uts::spec::has_namespace(spec, t);
        Join {
            target,
            kinds: ORDER
                .iter()
                .filter(|(t, _, _)| has(*t))
                .map(|(_, name, flag)| (*name, *flag))
                .collect(),
            pid_namespace: has(LinuxNamespaceType::Pid),
            cgroup: stage05_cgroups::container_cgroup::locate(spec, id.as_str()),
            opened: Vec::new(),
            joined_user: false,
        }
    }
}

impl Primitive for Join {
    fn name(&self) -> &'static str {
        "join"
    }

    fn phase(&self) -> Phase {
        Phase::UserNamespace
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let gone = || {
            Error::from(crate::state::LifecycleError::NotRunning(
                self.target.pid.to_string(),
            ))
        };
        let pidfd = self.target.open().ok_or_else(gone)?;
        let open = |name: &str| {
            let path = format!("/proc/{}/ns/{name}", self.target.pid);
            nix::fcntl::open(
                path.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::syscall(format!("open({path})"), "joining the container", e))
        };
        for (name, flag) in &self.kinds {
            // One the container shares with the runtime (its spec asked for
            // it, but it could not be made: a cgroup namespace without a
            // cgroup, rootless) is not joined: there is nothing to join,
            // and joining the host's own may need more privilege.
            let theirs = std::fs::read_link(format!("/proc/{}/ns/{name}", self.target.pid));
            let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
            if matches!((&theirs, &ours), (Ok(a), Ok(b)) if a == b) {
                continue;
            }
            self.opened.push((name, *flag, open(name)?));
        }
        let pid_ns = if self.pid_namespace {
            Some(open("pid")?)
        } else {
            None
        };
        // Checked after the opens: the pidfd names PID 1 and no other, so
        // if it is still alive the descriptors are its namespaces.
        if !self.target.alive() {
            return Err(gone());
        }
        drop(pidfd);
        // Joining a PID namespace takes CAP_SYS_ADMIN in one's own user
        // namespace as well as in the target's owner. Root has it; an
        // ordinary user (rootless) has it only inside the container's user
        // namespace: the runtime joins that first, its child is then
        // already in it.
        if pid_ns.is_some() && !nix::unistd::Uid::effective().is_root() {
            if let Some(at) = self
                .opened
                .iter()
                .position(|(_, f, _)| *f == CloneFlags::CLONE_NEWUSER)
            {
                let (name, flag, fd) = self.opened.remove(at);
                nix::sched::setns(&fd, flag).map_err(|e| {
                    Error::syscall(format!("setns({name})"), "joining the container", e)
                })?;
                self.joined_user = true;
            }
        }
        if let Some(fd) = pid_ns {
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWPID).map_err(|e| {
                Error::syscall(
                    "setns(CLONE_NEWPID)",
                    "joining the container's PID namespace",
                    e,
                )
            })?;
        }
        Ok(())
    }

    fn attach(&mut self, _ctx: &mut Context, child: ProcessId) -> Result<(), Error> {
        if let Some(cgroup) = &self.cgroup
            && cgroup.dirs().iter().any(|d| d.exists())
        {
            cgroup.attach(child.as_raw()).map_err(Error::primitive)?;
        }
        Ok(())
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        if self.joined_user {
            become_root()?;
        }
        for (name, flag, fd) in self.opened.drain(..) {
            nix::sched::setns(&fd, flag).map_err(|e| {
                Error::syscall(format!("setns({name})"), "joining the container", e)
            })?;
            if flag == CloneFlags::CLONE_NEWUSER {
                become_root()?;
            }
        }
        explain!(
            "setns(user, ipc, uts, net, cgroup, mnt)" => "ok",
            "in every namespace of the container's PID 1, the user namespace first, \
             the mount namespace last"
        );
        Ok(())
    }
}
// ANCHOR_END: join

/// As stage 04's child does: the host's root is not mapped in the
/// container's user namespace, and an unmapped process can neither make a
/// file nor give one away (a terminal). Root of the namespace first; the
/// user's ids come last.
fn become_root() -> Result<(), Error> {
    let (uid, gid) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    let switched =
        nix::unistd::setresgid(gid, gid, gid).and_then(|()| nix::unistd::setresuid(uid, uid, uid));
    match switched {
        Err(e) if e != nix::errno::Errno::EINVAL => Err(Error::syscall(
            "setresuid(0)",
            "becoming root of the container's user namespace",
            e,
        )),
        _ => Ok(()),
    }
}

/// The container that `exec` starts: the process of `spec` (the
/// container's spec with the exec's command, environment, directory and
/// user), joined to `target`.
pub fn container(
    spec: &Spec,
    id: &ContainerId,
    target: Process,
    stdio: crate::stdio::Stdio,
) -> Result<Container, Error> {
    let container = Container::new(id.clone(), stage01_uts::Process::from_spec(spec))
        .with(Join::new(target, spec, id))
        // Signals for COMMAND, and waiting for it; no namespace of its own.
        .with(stage02_pid::pid::PidNamespace::new(false, false))
        .with(stage04_user::user::User::from_spec(spec))
        .with(stdio);
    // What contains every process of the container (a later stage's).
    let more = match crate::extension() {
        Some(extension) => extension.process_primitives(spec)?,
        None => Vec::new(),
    };
    Ok(more.into_iter().fold(container, Container::with_boxed))
}
