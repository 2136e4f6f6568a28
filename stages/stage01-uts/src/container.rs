//! The start sequence, and the [`Primitive`] trait every stage plugs into it.
//!
//! A container is a process. Starting one is always the same sequence; what
//! changes from stage to stage is which kernel primitives take part in it:
//!
//! ```text
//!   host (the runtime)                      container (the clone child)
//!   ──────────────────                      ───────────────────────────
//!   prepare   each primitive, in phase order
//!   clone(flags of all primitives) ───────► waits for Released
//!   attach    each primitive (the child's
//!             pid is known: uid maps, cgroup)
//!   Released ─────────────────────────────► setup   each primitive, in phase order
//!   waits for Ready ◄────────────────────── Ready                         ┐ create
//!   ...................................................................... ┘
//!   Start ────────────────────────────────► exec    COMMAND               ┐ start
//!   end-of-file = COMMAND runs ◄─────────── (or Failed, then exit)        ┘
//!   supervise until COMMAND's PID 1 exits
//!   cleanup   each primitive, in reverse
//! ```
//!
//! The messages are [`crate::sync`]'s. Between Ready and Start the container
//! exists, set up, its first process waiting before `execve`: that is what
//! `create` leaves and `start` finishes (stage 08), and what a plain `run`
//! does in one go.
//!
//! Stage 01 adds the UTS namespace ([`crate::uts::Uts`]); stage 02 adds the
//! PID namespace and PID 1's duties; stage 03 the mount namespace and rootfs;
//! and so on. Each is a [`Primitive`] with a few hooks and a [`Phase`], and
//! a stage's container is its predecessor's with one more primitive.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{EXIT_RUNTIME, Error};
use crate::explain;
use crate::id::ContainerId;
use crate::sync::{self, Channel, Message, SyncError};
use crate::syscall::{FlagNames, Fork, Linux, Syscall};

/// What the container runs: COMMAND with its environment, in its working
/// directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// COMMAND and its arguments.
    pub args: Vec<OsString>,
    /// `KEY=VALUE` entries.
    pub env: Vec<OsString>,
    /// Where COMMAND starts (`None`: where the runtime is).
    pub cwd: Option<PathBuf>,
}

impl Process {
    /// `args` with `env`, where the runtime is.
    pub fn new(args: Vec<OsString>, env: Vec<OsString>) -> Self {
        Process {
            args,
            env,
            cwd: None,
        }
    }

    /// The process a spec describes.
    pub fn from_spec(spec: &crate::spec::Spec) -> Self {
        let process = spec.process().as_ref();
        let strings = |v: Option<&Vec<String>>| -> Vec<OsString> {
            v.into_iter().flatten().map(OsString::from).collect()
        };
        Process {
            args: strings(process.and_then(|p| p.args().as_ref())),
            env: strings(process.and_then(|p| p.env().as_ref())),
            cwd: process.map(|p| p.cwd().clone()),
        }
    }
}

/// How COMMAND ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this status.
    Exited(i32),
    /// This signal killed it.
    Signaled(Signal),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(signal) => write!(f, "killed by {signal}"),
        }
    }
}

impl ExitStatus {
    /// The status the runtime exits with: COMMAND's own, or 128+N when signal
    /// N killed it, as shells report it.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Exited(code) => code as u8,
            ExitStatus::Signaled(signal) => 128u8.wrapping_add(signal as u8),
        }
    }

    /// Read a wait status; `None` for stops and continues, which are not ends.
    pub fn from_wait(status: WaitStatus) -> Option<Self> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitStatus::Exited(code)),
            WaitStatus::Signaled(_, signal, _) => Some(ExitStatus::Signaled(signal)),
            _ => None,
        }
    }
}

/// When a primitive's steps run. Each hook runs for every primitive in
/// phase order (cleanup in reverse), and in the order they were added within
/// a phase: the order is a property of the primitive, not of where a stage
/// happened to add it.
// ANCHOR: phase
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Become root of the user namespace (stage 04): until the process holds
    /// an identity mapped in it, it cannot even create a file.
    UserNamespace,
    /// Make the root filesystem (stage 06's overlay).
    Rootfs,
    /// Mount into the root, and enter it (stage 03's pivot_root).
    Mounts,
    /// Set up the new namespaces from inside: the hostname (stage 01), the
    /// cgroup namespace (stage 05), the network (stage 09).
    Namespaces,
    /// The process itself: signals and init (stage 02), its working
    /// directory (stage 03), its stdio (stage 08).
    Process,
    /// Who it runs as (stage 04): after a switch to a non-zero uid the
    /// process may have no privilege left for any other step.
    Credentials,
    /// What it may do from here on: capabilities, seccomp, no_new_privs
    /// (final). Nothing after it.
    Seal,
}
// ANCHOR_END: phase

/// Where the container's root filesystem is, as the process at hand
/// reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// None of its own: the host's (stages 01 and 02).
    Host,
    /// A directory on the host (stage 03's `--rootfs`).
    Dir(PathBuf),
    /// Made inside the container's mount namespace by the Rootfs phase
    /// (stage 06's overlay), at this path once it is there.
    Inside(PathBuf),
}

/// What the primitives share while a container starts.
pub struct Context {
    /// The container's id.
    pub id: ContainerId,
    /// What will run.
    pub process: Process,
    /// The kernel, or a recorder in unit tests.
    pub sys: Box<dyn Syscall>,
    /// Where the root filesystem is (told by the Rootfs phase to the Mounts
    /// phase).
    pub root: Root,
    /// Between clone and exec: this side's end of the socket to the other.
    channel: Option<Channel>,
    /// Container side: descriptors the runtime sent, in order, for setup
    /// to take.
    received: VecDeque<OwnedFd>,
}

impl Context {
    /// The context of a container that will run `process` with the id
    /// `id`, on the real kernel.
    pub fn new(id: ContainerId, process: Process) -> Self {
        Context {
            id,
            process,
            sys: Box::new(Linux),
            root: Root::Host,
            channel: None,
            received: VecDeque::new(),
        }
    }

    /// Host side, in `attach`: hand the container's process open
    /// descriptors (it takes them, in order, with [`Context::take_fds`]).
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        let channel = self.channel.as_ref().ok_or(Error::Sync {
            step: "passing descriptors to the container",
            source: SyncError::Closed { expected: "Fds" },
        })?;
        channel.send_fds(fds).map_err(|source| Error::Sync {
            step: "passing descriptors to the container",
            source,
        })
    }

    /// Container side, in `setup`: the next `count` descriptors the runtime
    /// sent.
    pub fn take_fds(&mut self, count: usize) -> Result<Vec<OwnedFd>, Error> {
        if self.received.len() < count {
            return Err(Error::Sync {
                step: "taking the descriptors the runtime sent",
                source: SyncError::Closed { expected: "Fds" },
            });
        }
        Ok(self.received.drain(..count).collect())
    }

    /// Let go of this process's end of the socket. A primitive that forks
    /// inside the container and keeps a process that never executes COMMAND
    /// (stage 02's init) calls this in that process, so that the host still
    /// sees end-of-file when COMMAND's exec succeeds.
    pub fn close_channel(&mut self) {
        self.channel = None;
        self.received.clear();
    }

    /// Report `err` to the host side and exit. Used by the container's process
    /// only; never returns.
    pub fn fail(&mut self, err: Error) -> ! {
        let code = err.exit_code();
        if let Some(channel) = self.channel.take() {
            // Nobody to tell if this fails: the host then reports that the
            // container's process vanished.
            let _ = channel.send(&Message::Failed {
                code,
                message: err.to_string(),
            });
        }
        // _exit, not exit: this is a copy of the runtime, and its atexit
        // handlers and buffered output belong to the original.
        // SAFETY: _exit(2) is async-signal-safe and always safe to call.
        unsafe { libc::_exit(code.into()) }
    }
}

/// One kernel primitive's part in the start sequence. Every hook has a default
/// that does nothing, so a primitive implements only the steps it takes part
/// in.
// ANCHOR: primitive
pub trait Primitive {
    /// A short name, for messages.
    fn name(&self) -> &'static str;

    /// When its steps run, relative to the other primitives'.
    fn phase(&self) -> Phase;

    /// The namespaces this primitive asks clone(2) for.
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    /// Host side, before clone: check what can be checked and set up what the
    /// host must provide (a cgroup, an overlay's directories, a veth pair).
    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        Ok(())
    }

    /// Host side, after clone, while the child waits: what only the parent can
    /// do to the child (write its uid map, move it into a cgroup).
    fn attach(&mut self, _ctx: &mut Context, _child: Pid) -> Result<(), Error> {
        Ok(())
    }

    /// Container side, after the host released the child: set the
    /// container up from the inside.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        Ok(())
    }

    /// Host side, once COMMAND runs: wait for the container's PID 1 to end.
    /// The first primitive that returns `Some` supervises; without one the
    /// runtime simply waits.
    fn supervise(&mut self, _ctx: &mut Context, _child: Pid) -> Option<Result<ExitStatus, Error>> {
        None
    }

    /// Host side, after the container ended or failed to start: undo
    /// `prepare`. Called in reverse order, only for primitives whose `prepare`
    /// succeeded.
    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        Ok(())
    }
}
// ANCHOR_END: primitive

/// A container being started: its context and its primitives.
pub struct Container {
    ctx: Context,
    /// In phase order.
    primitives: Vec<Box<dyn Primitive>>,
}

impl Container {
    /// A container that will run `process`, with the id `id` and no
    /// primitive yet.
    pub fn new(id: ContainerId, process: Process) -> Self {
        Container {
            ctx: Context::new(id, process),
            primitives: Vec::new(),
        }
    }

    /// Add a primitive: its hooks run with those of its phase, after the
    /// ones already added there.
    pub fn with(self, primitive: impl Primitive + 'static) -> Self {
        self.with_boxed(Box::new(primitive))
    }

    /// [`Container::with`], for a primitive a later stage chose at run time.
    pub fn with_boxed(mut self, primitive: Box<dyn Primitive>) -> Self {
        let phase = primitive.phase();
        let at = self.primitives.partition_point(|p| p.phase() <= phase);
        self.primitives.insert(at, primitive);
        self
    }

    /// Make the system calls through `sys` (unit tests pass a recorder).
    pub fn with_syscall(mut self, sys: impl Syscall + 'static) -> Self {
        self.ctx.sys = Box::new(sys);
        self
    }

    /// Where the container's root filesystem is, before any phase runs.
    pub fn with_root(mut self, root: Root) -> Self {
        self.ctx.root = root;
        self
    }

    pub fn id(&self) -> &ContainerId {
        &self.ctx.id
    }

    pub fn process(&self) -> &Process {
        &self.ctx.process
    }

    /// Start the container, supervise it until it ends, clean up, and return
    /// how COMMAND ended.
    // ANCHOR: run
    pub fn run(self) -> Result<ExitStatus, Error> {
        let mut created = self.create()?;
        let status = created.start().and_then(|()| created.wait());
        // A cleanup that fails is a warning: the container already ran (or
        // failed for its own reason), and its status is what the user asked.
        created.finish();
        status
    }
    // ANCHOR_END: run

    /// Make the container, up to its first process set up and waiting to
    /// execute COMMAND. On failure, what was prepared is undone.
    // ANCHOR: create
    pub fn create(mut self) -> Result<Created, Error> {
        let mut prepared = 0;
        match self.prepare_clone_attach(&mut prepared) {
            Ok((child, channel)) => Ok(Created {
                container: self,
                child,
                channel: Some(channel),
                prepared,
            }),
            Err(err) => {
                self.cleanup(prepared);
                Err(err)
            }
        }
    }

    fn prepare_clone_attach(&mut self, prepared: &mut usize) -> Result<(Pid, Channel), Error> {
        // 1. Host side, before clone.
        for primitive in &mut self.primitives {
            primitive.prepare(&mut self.ctx)?;
            *prepared += 1;
        }

        // 2. clone(2) into the new namespaces. The child waits for Released
        //    until the host has attached it.
        let flags = self.clone_flags();
        let (host_end, child_end) = sync::pair().map_err(|e| {
            Error::syscall(
                "socketpair(AF_UNIX, SOCK_SEQPACKET)",
                "talking to the container's process",
                e,
            )
        })?;
        let child = match self.ctx.sys.clone(flags) {
            Ok(Fork::Child) => {
                drop(host_end);
                self.ctx.channel = Some(child_end);
                let err = self.child();
                self.ctx.fail(err)
            }
            Ok(Fork::Parent(child)) => child,
            Err(errno) => {
                let call = format!("clone({})", FlagNames(flags));
                return Err(Error::syscall(call, "creating the namespaces", errno));
            }
        };
        drop(child_end);
        self.ctx.channel = Some(host_end);
        let names = FlagNames(flags);
        explain!(
            "clone({names})" => "pid {child}",
            "one call makes the container's first process and its new namespaces together"
        );

        // 3. Host side, after clone: what only the parent can do.
        for primitive in &mut self.primitives {
            if let Err(err) = primitive.attach(&mut self.ctx, child) {
                self.abandon(child);
                return Err(err);
            }
        }

        // 4. Release the child; it sets itself up and says Ready. What it
        //    sends before (stage 08's terminal) is kept for the caller.
        let channel = self.ctx.channel.take().expect("set above");
        let mut fds = Vec::new();
        let answer = channel
            .send(&Message::Released)
            .and_then(|()| channel.expect("Ready", &mut fds));
        self.ctx.received.extend(fds);
        match answer {
            Ok(Message::Ready) => Ok((child, channel)),
            Ok(failed) => {
                let _ = self.ctx.sys.waitpid(child, None);
                Err(Error::from_message(failed))
            }
            Err(source) => Err(self.gone(child, source)),
        }
    }
    // ANCHOR_END: create

    /// The channel broke: reap the child and say how it ended. One killed
    /// from outside during setup (a `kill -9`, the OOM killer) is reported
    /// as a killed command is, 128 + the signal; anything else out of turn
    /// kills it.
    fn gone(&mut self, child: Pid, source: SyncError) -> Error {
        let closed = matches!(
            source,
            SyncError::Closed { .. }
                | SyncError::Socket {
                    errno: Errno::EPIPE | Errno::ECONNRESET,
                    ..
                }
        );
        if !closed {
            self.abandon(child);
            return Error::child_gone(source);
        }
        match wait_for_exit(self.ctx.sys.as_ref(), child) {
            Ok(ExitStatus::Signaled(signal)) => Error::KilledInSetup { signal },
            _ => Error::ChildVanished,
        }
    }

    /// The container's process: wait for the host, set up, say Ready, wait
    /// for Start, become COMMAND.
    fn child(&mut self) -> Error {
        explain::entered_container();
        // The container must not outlive the runtime that supervises it: if
        // the runtime dies, the kernel kills the container's first process
        // (and with it, from stage 02 on, its whole PID namespace). If the
        // runtime died before this call, Released never comes.
        let _ = self.ctx.sys.set_parent_death_signal(Signal::SIGKILL);
        let channel = self.ctx.channel.as_ref().expect("the child has its end");
        let mut fds = Vec::new();
        if let Err(source) = channel.expect("Released", &mut fds) {
            return Error::runtime_gone(source);
        }
        self.ctx.received.extend(fds);
        for primitive in &mut self.primitives {
            if let Err(err) = primitive.setup(&mut self.ctx) {
                return err;
            }
        }
        if let Some(channel) = &self.ctx.channel {
            let ready = channel
                .send(&Message::Ready)
                .and_then(|()| channel.expect("Start", &mut Vec::new()));
            if let Err(source) = ready {
                return Error::runtime_gone(source);
            }
        }
        crate::exec::exec(self.ctx.sys.as_ref(), &self.ctx.process)
    }

    fn clone_flags(&self) -> CloneFlags {
        self.primitives
            .iter()
            .fold(CloneFlags::empty(), |flags, p| flags | p.clone_flags())
    }

    /// Kill and reap a child that will never be released.
    fn abandon(&mut self, child: Pid) {
        let _ = self.ctx.sys.kill(child, Signal::SIGKILL);
        let _ = self.ctx.sys.waitpid(child, None);
    }

    fn cleanup(&mut self, prepared: usize) {
        for primitive in self.primitives[..prepared].iter_mut().rev() {
            if let Err(err) = primitive.cleanup(&mut self.ctx) {
                crate::cli::warn(format_args!("cleaning up {}: {err}", primitive.name()));
            }
        }
    }
}

/// A container made and waiting before `execve`: [`Container::create`]'s
/// result.
pub struct Created {
    container: Container,
    child: Pid,
    /// Until COMMAND runs.
    channel: Option<Channel>,
    prepared: usize,
}

impl Created {
    /// The container's first process, on the host.
    pub fn pid(&self) -> Pid {
        self.child
    }

    pub fn id(&self) -> &ContainerId {
        &self.container.ctx.id
    }

    /// The descriptors the container's process sent while it was set up
    /// (stage 08's terminal), in order.
    pub fn take_received(&mut self) -> Vec<OwnedFd> {
        self.container.ctx.received.drain(..).collect()
    }

    /// Let the first process execute COMMAND; returns once it has (or
    /// could not: 126, 127).
    // ANCHOR: start
    pub fn start(&mut self) -> Result<(), Error> {
        let Some(channel) = self.channel.take() else {
            return Ok(());
        };
        if let Err(source) = channel.send(&Message::Start) {
            return Err(self.container.gone(self.child, source));
        }
        // The socket is close-on-exec: end-of-file means COMMAND runs.
        match channel.recv() {
            Ok(None) => Ok(()),
            Ok(Some((failed @ Message::Failed { .. }, _))) => {
                let _ = self.container.ctx.sys.waitpid(self.child, None);
                Err(Error::from_message(failed))
            }
            Ok(Some((other, _))) => Err(Error::child_gone(SyncError::Unexpected {
                expected: "the end of file",
                got: other.name(),
            })),
            Err(source) => Err(self.container.gone(self.child, source)),
        }
    }
    // ANCHOR_END: start

    /// Wait until the container's first process ends: the first primitive
    /// that supervises does, else a plain wait.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        let child = self.child;
        let container = &mut self.container;
        let supervised = container
            .primitives
            .iter_mut()
            .find_map(|primitive| primitive.supervise(&mut container.ctx, child));
        let status = match supervised {
            Some(status) => status?,
            None => wait_for_exit(container.ctx.sys.as_ref(), child)?,
        };
        explain!(
            "waitpid({child})" => "{status}",
            "the container's first process ended; the runtime exits with its status"
        );
        Ok(status)
    }

    /// Undo what was prepared, in reverse. A container not started yet is
    /// killed first.
    pub fn finish(mut self) {
        if self.channel.take().is_some() {
            self.container.abandon(self.child);
        }
        self.container.cleanup(self.prepared);
    }
}

/// Wait until `child` exits or is killed; stops and continues are not ends.
pub fn wait_for_exit(sys: &dyn Syscall, child: Pid) -> Result<ExitStatus, Error> {
    loop {
        let status = sys.waitpid(child, None).map_err(|errno| {
            Error::syscall(
                format!("waitpid({child})"),
                "waiting for the container",
                errno,
            )
        })?;
        if let Some(status) = ExitStatus::from_wait(status) {
            return Ok(status);
        }
    }
}

impl Error {
    /// The child's report of a failure, as the runtime's own error.
    fn from_message(message: Message) -> Error {
        match message {
            Message::Failed { code, message } => Error::Relayed { code, message },
            other => Error::Relayed {
                code: EXIT_RUNTIME,
                message: format!("the container's process sent {}", other.name()),
            },
        }
    }

    /// The container's process went away, or said something out of turn.
    fn child_gone(source: SyncError) -> Error {
        match source {
            SyncError::Closed { .. } => Error::ChildVanished,
            source => Error::Sync {
                step: "starting the container's process",
                source,
            },
        }
    }

    /// In the child: the runtime went away, or said something out of turn.
    fn runtime_gone(source: SyncError) -> Error {
        match source {
            SyncError::Closed { .. } => Error::Relayed {
                code: EXIT_RUNTIME,
                message: "the runtime went away before releasing the container".into(),
            },
            source => Error::Sync {
                step: "waiting for the runtime",
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::Recorder;
    use crate::uts::{Hostname, Uts};
    use nix::errno::Errno;

    fn container(sys: Recorder) -> Container {
        Container::new(
            ContainerId::generate(),
            Process::new(vec!["probe".into()], vec!["PATH=/a:/b".into()]),
        )
        .with(Uts::new("web".parse::<Hostname>().unwrap()))
        .with_syscall(sys)
    }

    /// The child's side, on a socket whose other end the test holds.
    fn run_child(c: &mut Container, host_says: &[Message]) -> (Error, Channel) {
        let (host, child) = sync::pair().unwrap();
        for message in host_says {
            host.send(message).unwrap();
        }
        c.ctx.channel = Some(child);
        (c.child(), host)
    }

    #[test]
    fn exit_status_is_the_commands_or_128_plus_signal() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(ExitStatus::Signaled(Signal::SIGTERM).code(), 143);
    }

    #[test]
    fn container_side_sets_the_hostname_says_ready_and_waits_for_start_before_exec() {
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let mut c = container(sys);
        let (err, host) = run_child(&mut c, &[Message::Released, Message::Start]);
        assert_eq!(err.exit_code(), 127);
        assert_eq!(host.recv().unwrap().unwrap().0, Message::Ready);
        let calls = calls.borrow();
        assert_eq!(
            calls[..3],
            [
                "pdeathsig(SIGKILL)",
                "sethostname(web)",
                "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)"
            ]
        );
        assert!(calls[3].starts_with("execve("), "{calls:?}");
    }

    #[test]
    fn a_child_that_is_never_started_never_executes() {
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let mut c = container(sys);
        // Released, then the runtime goes away instead of saying Start.
        let (host, child) = sync::pair().unwrap();
        host.send(&Message::Released).unwrap();
        drop(host);
        c.ctx.channel = Some(child);
        let err = c.child();
        assert_eq!(err.exit_code(), 125);
        assert!(
            !calls.borrow().iter().any(|c| c.starts_with("execve")),
            "{:?}",
            calls.borrow()
        );
    }

    #[test]
    fn container_side_stops_at_the_first_failing_step() {
        let sys = Recorder {
            sethostname_error: Some(Errno::EPERM),
            ..Recorder::default()
        };
        let calls = sys.calls.clone();
        let mut c = container(sys);
        let (err, _host) = run_child(&mut c, &[Message::Released]);
        assert_eq!(*calls.borrow(), ["pdeathsig(SIGKILL)", "sethostname(web)"]);
        insta::assert_snapshot!(err.to_string(), @r#"sethostname("web") was refused: naming the container needs CAP_SYS_ADMIN in the container's user namespace; run as root (for example with sudo)"#);
    }

    #[test]
    fn a_child_whose_runtime_vanished_does_not_run() {
        let mut c = container(Recorder::default());
        let (host, child) = sync::pair().unwrap();
        drop(host);
        c.ctx.channel = Some(child);
        let err = c.child();
        assert_eq!(err.exit_code(), 125);
        assert!(err.to_string().contains("runtime went away"), "{err}");
    }

    #[test]
    fn clone_refused_for_lack_of_privilege_says_what_is_needed() {
        let sys = Recorder {
            clone_result: Some(Err(Errno::EPERM)),
            ..Recorder::default()
        };
        let err = container(sys).run().unwrap_err();
        assert_eq!(err.exit_code(), 125);
        insta::assert_snapshot!(err.to_string(), @"clone(CLONE_NEWUTS|SIGCHLD) was refused: creating the namespaces needs CAP_SYS_ADMIN; run as root (for example with sudo)");
    }

    #[test]
    fn errors_relayed_from_the_child_keep_their_exit_code() {
        let err = Error::from_message(Message::Failed {
            code: 127,
            message: "command not found: \"nope\"".into(),
        });
        assert_eq!(err.exit_code(), 127);
        assert_eq!(err.to_string(), "command not found: \"nope\"");
    }

    /// Records the order in which hooks run.
    struct Hooks {
        name: &'static str,
        phase: Phase,
        log: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
        fail_prepare: bool,
    }

    fn hooks(
        name: &'static str,
        phase: Phase,
        log: &std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    ) -> Hooks {
        Hooks {
            name,
            phase,
            log: log.clone(),
            fail_prepare: false,
        }
    }

    impl Primitive for Hooks {
        fn name(&self) -> &'static str {
            self.name
        }
        fn phase(&self) -> Phase {
            self.phase
        }
        fn prepare(&mut self, _: &mut Context) -> Result<(), Error> {
            self.log.borrow_mut().push(format!("prepare {}", self.name));
            if self.fail_prepare {
                return Err(Error::ChildVanished);
            }
            Ok(())
        }
        fn cleanup(&mut self, _: &mut Context) -> Result<(), Error> {
            self.log.borrow_mut().push(format!("cleanup {}", self.name));
            Ok(())
        }
    }

    fn empty() -> Container {
        Container::new(ContainerId::generate(), Process::default())
    }

    #[test]
    fn primitives_run_in_phase_order_whatever_order_they_were_added_in() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let c = empty()
            .with(hooks("uts", Phase::Namespaces, &log))
            .with(hooks("user", Phase::Credentials, &log))
            .with(hooks("userns", Phase::UserNamespace, &log))
            .with(hooks("mounts", Phase::Mounts, &log))
            .with(hooks("cgroupns", Phase::Namespaces, &log))
            .with(hooks("overlay", Phase::Rootfs, &log));
        let names: Vec<&str> = c.primitives.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            ["userns", "overlay", "mounts", "uts", "cgroupns", "user"]
        );
    }

    #[test]
    fn a_failed_prepare_cleans_up_only_what_was_prepared_in_reverse() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let failing = Hooks {
            fail_prepare: true,
            ..hooks("c", Phase::Process, &log)
        };
        let c = empty()
            .with(hooks("a", Phase::Process, &log))
            .with(hooks("b", Phase::Process, &log))
            .with(failing)
            .with(hooks("d", Phase::Process, &log))
            .with_syscall(Recorder::default());
        assert!(c.run().is_err());
        assert_eq!(
            *log.borrow(),
            [
                "prepare a",
                "prepare b",
                "prepare c",
                "cleanup b",
                "cleanup a"
            ]
        );
    }
}
