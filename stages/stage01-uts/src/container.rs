//! The start sequence, and the [`Primitive`] trait every stage plugs into it.
//!
//! A container is a process. Starting one is always the same sequence; what
//! changes from stage to stage is which kernel primitives take part in it:
//!
//! ```text
//!   host (the runtime)                      container (the clone child)
//!   ──────────────────                      ───────────────────────────
//!   prepare   each primitive, in order
//!   clone(flags of all primitives) ───────► waits for the host
//!   attach    each primitive (the child's
//!             pid is known: uid maps, cgroup)
//!   release ──────────────────────────────► setup   each primitive, in order
//!                                           exec    COMMAND
//!   read the error pipe: EOF = exec worked ◄── (or: the error, then exit)
//!   supervise until COMMAND's PID 1 exits
//!   cleanup   each primitive, in reverse
//! ```
//!
//! Stage 01 adds the UTS namespace ([`crate::uts::Uts`]); stage 02 adds the
//! PID namespace and PID 1's duties; stage 03 the mount namespace and rootfs;
//! and so on. Each is a [`Primitive`] with a few hooks, and a stage's
//! container is its predecessor's with one more primitive.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::channel::{self, Channel};
use crate::error::{EXIT_RUNTIME, Error};
use crate::explain;
use crate::id::ContainerId;
use crate::syscall::{FlagNames, Fork, Linux, Syscall};

/// What the container runs: COMMAND with its environment and directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// COMMAND and its arguments.
    pub args: Vec<OsString>,
    /// `KEY=VALUE` entries; `None` passes the runtime's own environment on,
    /// as stages 01 and 02 do (they share the host's filesystem anyway).
    pub env: Option<Vec<OsString>>,
}

impl Process {
    pub fn new(args: Vec<OsString>) -> Self {
        Process { args, env: None }
    }

    /// The environment COMMAND will see.
    pub fn env(&self) -> Vec<OsString> {
        match &self.env {
            Some(env) => env.clone(),
            None => std::env::vars_os()
                .map(|(k, v)| {
                    let mut kv = k;
                    kv.push("=");
                    kv.push(v);
                    kv
                })
                .collect(),
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

/// What the primitives share while a container starts.
pub struct Context {
    /// The container's id.
    pub id: ContainerId,
    /// What will run.
    pub process: Process,
    /// The kernel, or a recorder in unit tests.
    pub sys: Box<dyn Syscall>,
    /// In the container's process: the write end of the error pipe.
    error_pipe: Option<OwnedFd>,
    /// Between clone and exec: this side's end of the socket that carries
    /// descriptors from the runtime to the container's process.
    channel: Option<Channel>,
    /// Facts one primitive tells later ones, one value per type: where the
    /// rootfs is mounted (stage 06 tells stage 03), which host ids the
    /// container's root has (stage 04 tells stage 06).
    facts: HashMap<TypeId, Box<dyn Any>>,
}

impl Context {
    /// The context of a container that will run `process`: a fresh id, the
    /// real kernel.
    pub fn new(process: Process) -> Self {
        Context {
            id: ContainerId::generate(),
            process,
            sys: Box::new(Linux),
            error_pipe: None,
            channel: None,
            facts: HashMap::new(),
        }
    }

    /// Tell the primitives that come later `fact` (replacing an earlier one
    /// of the same type).
    pub fn tell<T: Any>(&mut self, fact: T) {
        self.facts.insert(TypeId::of::<T>(), Box::new(fact));
    }

    /// What an earlier primitive told, if it did.
    pub fn fact<T: Any>(&self) -> Option<&T> {
        self.facts.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Host side, in `attach`: hand the container's process open
    /// descriptors (it gets them, in order, with [`Context::recv_fds`]).
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        self.channel
            .as_ref()
            .ok_or(Errno::ENOTCONN)
            .and_then(|c| c.send_fds(fds))
            .map_err(|e| {
                Error::syscall(
                    "sendmsg(SCM_RIGHTS)",
                    "passing descriptors to the container",
                    e,
                )
            })
    }

    /// Container side, in `setup`: the `count` descriptors the runtime sent.
    pub fn recv_fds(&self, count: usize) -> Result<Vec<OwnedFd>, Error> {
        self.channel
            .as_ref()
            .ok_or(Errno::ENOTCONN)
            .and_then(|c| c.recv_fds(count))
            .map_err(|e| {
                Error::syscall(
                    "recvmsg(SCM_RIGHTS)",
                    "receiving descriptors from the runtime",
                    e,
                )
            })
    }

    /// Close this process's copy of the error pipe. A primitive that forks
    /// inside the container and keeps a process that never executes COMMAND
    /// (stage 02's init) calls this in that process, so that the host still
    /// sees end-of-file when COMMAND's exec succeeds.
    pub fn close_error_pipe(&mut self) {
        self.error_pipe = None;
    }

    /// Report `err` to the host side and exit. Used by the container's process
    /// only; never returns.
    pub fn fail(&mut self, err: Error) -> ! {
        let code = err.exit_code();
        if let Some(pipe) = self.error_pipe.take() {
            let mut pipe = std::fs::File::from(pipe);
            // Nobody to tell if this fails: the host then reports that the
            // container's process vanished.
            let _ = write!(pipe, "{code}\n{err}");
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

    /// Container side, after the host released the child, in the order the
    /// primitives were added: set the container up from the inside.
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
    primitives: Vec<Box<dyn Primitive>>,
    /// Where the primitives added with `with` begin (after those added with
    /// `with_first`).
    middle: usize,
    /// Where the primitives added with `with_last` begin: `with` inserts
    /// before them.
    last: usize,
}

impl Container {
    /// A container that will run `process`, with a fresh id and no primitive
    /// yet.
    pub fn new(process: Process) -> Self {
        Container {
            ctx: Context::new(process),
            primitives: Vec::new(),
            middle: 0,
            last: 0,
        }
    }

    /// Add a primitive. Their `setup` hooks run in the order they were added
    /// (before those added with [`Container::with_last`]).
    pub fn with(mut self, primitive: impl Primitive + 'static) -> Self {
        self.primitives.insert(self.last, Box::new(primitive));
        self.last += 1;
        self
    }

    /// Add a primitive whose hooks must run before those of every primitive
    /// added with `with`; among themselves, such primitives run in the order
    /// they were added. The user namespace needs this (stage 04): until the
    /// container's process has taken an identity mapped inside it, it cannot
    /// even create a file. So does the overlay (stage 06), which must be
    /// mounted before the mount sequence of stage 03 uses it as the rootfs.
    pub fn with_first(mut self, primitive: impl Primitive + 'static) -> Self {
        self.primitives.insert(self.middle, Box::new(primitive));
        self.middle += 1;
        self.last += 1;
        self
    }

    /// Add a primitive whose `setup` must run after every other's, however
    /// many later stages add: switching to the container's user (stage 04),
    /// after which the process may have no privilege left for any other
    /// step.
    pub fn with_last(mut self, primitive: impl Primitive + 'static) -> Self {
        self.primitives.push(Box::new(primitive));
        self
    }

    /// Make the system calls through `sys` (unit tests pass a recorder).
    pub fn with_syscall(mut self, sys: impl Syscall + 'static) -> Self {
        self.ctx.sys = Box::new(sys);
        self
    }

    pub fn id(&self) -> &ContainerId {
        &self.ctx.id
    }

    pub fn process(&self) -> &Process {
        &self.ctx.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.ctx.process
    }

    /// Start the container, supervise it until it ends, clean up, and return
    /// how COMMAND ended.
    // ANCHOR: run
    pub fn run(mut self) -> Result<ExitStatus, Error> {
        let mut prepared = 0;
        let result = self.start_and_wait(&mut prepared);
        // A cleanup that fails is a warning: the container already ran (or
        // failed for its own reason), and its status is what the user asked.
        self.cleanup(prepared);
        result
    }

    fn start_and_wait(&mut self, prepared: &mut usize) -> Result<ExitStatus, Error> {
        // 1. Host side, before clone.
        for primitive in &mut self.primitives {
            primitive.prepare(&mut self.ctx)?;
            *prepared += 1;
        }

        // 2. clone(2) into the new namespaces. The child blocks on `go` until
        //    the host has attached it; it reports a failure through `errors`.
        let flags = self.clone_flags();
        let (go_rx, go_tx) = pipe()?;
        let (errors_rx, errors_tx) = pipe()?;
        let (host_end, child_end) = channel::pair().map_err(|e| {
            Error::syscall(
                "socketpair(AF_UNIX, SOCK_SEQPACKET)",
                "talking to the container's process",
                e,
            )
        })?;
        let child = match self.ctx.sys.clone(flags) {
            Ok(Fork::Child) => {
                drop((go_tx, errors_rx, host_end));
                self.ctx.error_pipe = Some(errors_tx);
                self.ctx.channel = Some(child_end);
                let err = self.child(go_rx);
                self.ctx.fail(err)
            }
            Ok(Fork::Parent(child)) => child,
            Err(errno) => {
                let call = format!("clone({})", FlagNames(flags));
                return Err(Error::syscall(call, "creating the namespaces", errno));
            }
        };
        drop((go_rx, errors_tx, child_end));
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

        // 4. Release the child; it sets itself up and executes COMMAND.
        //    The error pipe is close-on-exec: end-of-file with nothing in it
        //    means COMMAND is running.
        release(go_tx);
        let report = read_error(errors_rx);
        self.ctx.channel = None;
        if let Some(err) = report {
            let _ = self.ctx.sys.waitpid(child, None);
            return Err(err);
        }

        // 5. COMMAND runs. Wait until the container's first process ends.
        let supervised = self
            .primitives
            .iter_mut()
            .find_map(|primitive| primitive.supervise(&mut self.ctx, child));
        let status = match supervised {
            Some(status) => status?,
            None => wait_for_exit(self.ctx.sys.as_ref(), child)?,
        };
        explain!(
            "waitpid({child})" => "{status}",
            "the container's first process ended; the runtime exits with its status"
        );
        Ok(status)
    }

    /// The container's process: wait for the host, set up, become COMMAND.
    fn child(&mut self, go: OwnedFd) -> Error {
        explain::entered_container();
        if let Err(err) = self.wait_for_release(go) {
            return err;
        }
        for primitive in &mut self.primitives {
            if let Err(err) = primitive.setup(&mut self.ctx) {
                return err;
            }
        }
        crate::exec::exec(self.ctx.sys.as_ref(), &self.ctx.process)
    }
    // ANCHOR_END: run

    fn clone_flags(&self) -> CloneFlags {
        self.primitives
            .iter()
            .fold(CloneFlags::empty(), |flags, p| flags | p.clone_flags())
    }

    /// In the container's process: wait until the host releases it.
    fn wait_for_release(&self, go: OwnedFd) -> Result<(), Error> {
        // The container must not outlive the runtime that supervises it: if
        // the runtime dies, the kernel kills the container's first process
        // (and with it, from stage 02 on, its whole PID namespace). If the
        // runtime died before this call, `go` reads end-of-file below.
        let _ = self.ctx.sys.set_parent_death_signal(Signal::SIGKILL);
        let mut word = [0u8; 2];
        match std::fs::File::from(go).read_exact(&mut word) {
            Ok(()) if &word == b"go" => Ok(()),
            _ => Err(Error::Relayed {
                code: EXIT_RUNTIME,
                message: "the runtime went away before releasing the container".into(),
            }),
        }
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

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| {
        Error::syscall(
            "pipe2(O_CLOEXEC)",
            "talking to the container's process",
            errno,
        )
    })
}

/// Let the container's process go on. If it already died (EPIPE), there is
/// nothing to release: the error pipe and its exit status tell what happened.
fn release(go: OwnedFd) {
    let _ = std::fs::File::from(go).write_all(b"go");
}

/// Read what the container's process reported before exec, if anything.
fn read_error(errors: OwnedFd) -> Option<Error> {
    let mut report = String::new();
    let _ = std::fs::File::from(errors).read_to_string(&mut report);
    if report.is_empty() {
        return None;
    }
    let (code, message) = report.split_once('\n').unwrap_or(("", &report));
    Some(match code.parse() {
        Ok(code) => Error::Relayed {
            code,
            message: message.to_owned(),
        },
        Err(_) => Error::ChildVanished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::Recorder;
    use crate::uts::{Hostname, Uts};

    fn container(sys: Recorder) -> Container {
        Container::new(Process::new(vec!["probe".into()]))
            .with(Uts::new("web".parse::<Hostname>().unwrap()))
            .with_syscall(sys)
    }

    #[test]
    fn exit_status_is_the_commands_or_128_plus_signal() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(ExitStatus::Signaled(Signal::SIGTERM).code(), 143);
    }

    #[test]
    fn host_side_clones_with_every_primitives_flags_then_waits() {
        let sys = Recorder {
            clone_result: Some(Ok(Fork::Parent(Pid::from_raw(4242)))),
            wait_status: Some(WaitStatus::Exited(Pid::from_raw(4242), 7)),
            ..Recorder::default()
        };
        let calls = sys.calls.clone();
        let status = container(sys).run().unwrap();
        assert_eq!(status, ExitStatus::Exited(7));
        assert_eq!(
            *calls.borrow(),
            ["clone(CLONE_NEWUTS|SIGCHLD)", "waitpid(4242)"]
        );
    }

    #[test]
    fn container_side_sets_the_hostname_before_exec() {
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let mut c = container(sys);
        let (rx, tx) = pipe().unwrap();
        release(tx);
        let err = c.child(rx);
        assert_eq!(err.exit_code(), 127);
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
    fn container_side_stops_at_the_first_failing_step() {
        let sys = Recorder {
            sethostname_error: Some(Errno::EPERM),
            ..Recorder::default()
        };
        let calls = sys.calls.clone();
        let mut c = container(sys);
        let (rx, tx) = pipe().unwrap();
        release(tx);
        let err = c.child(rx);
        assert_eq!(*calls.borrow(), ["pdeathsig(SIGKILL)", "sethostname(web)"]);
        insta::assert_snapshot!(err.to_string(), @r#"sethostname("web") was refused: naming the container needs CAP_SYS_ADMIN; run as root (for example with sudo)"#);
    }

    #[test]
    fn a_child_whose_runtime_vanished_does_not_run() {
        let mut c = container(Recorder::default());
        let (rx, tx) = pipe().unwrap();
        drop(tx);
        let err = c.child(rx);
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
        let (rx, tx) = pipe().unwrap();
        std::fs::File::from(tx)
            .write_all(b"127\ncommand not found: \"nope\"")
            .unwrap();
        let err = read_error(rx).unwrap();
        assert_eq!(err.exit_code(), 127);
        assert_eq!(err.to_string(), "command not found: \"nope\"");
    }

    #[test]
    fn an_empty_error_pipe_means_exec_worked() {
        let (rx, tx) = pipe().unwrap();
        drop(tx);
        assert!(read_error(rx).is_none());
    }

    /// Records the order in which hooks run.
    struct Hooks(
        &'static str,
        std::rc::Rc<std::cell::RefCell<Vec<String>>>,
        bool,
    );

    impl Primitive for Hooks {
        fn name(&self) -> &'static str {
            self.0
        }
        fn prepare(&mut self, _: &mut Context) -> Result<(), Error> {
            self.1.borrow_mut().push(format!("prepare {}", self.0));
            if self.2 {
                return Err(Error::ChildVanished);
            }
            Ok(())
        }
        fn cleanup(&mut self, _: &mut Context) -> Result<(), Error> {
            self.1.borrow_mut().push(format!("cleanup {}", self.0));
            Ok(())
        }
    }

    #[test]
    fn first_and_last_hold_whatever_is_added_later() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let c = Container::new(Process::new(vec!["x".into()]))
            .with(Hooks("a", log.clone(), false))
            .with_last(Hooks("user", log.clone(), false))
            .with_first(Hooks("userns", log.clone(), false))
            .with(Hooks("later", log.clone(), false))
            .with_syscall(Recorder::default());
        let c = c.with_first(Hooks("overlay", log.clone(), false));
        let names: Vec<&str> = c.primitives.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["userns", "overlay", "a", "later", "user"]);
    }

    #[test]
    fn facts_pass_from_one_primitive_to_the_next() {
        #[derive(Debug, PartialEq)]
        struct Where(&'static str);
        let mut ctx = Context::new(Process::new(vec!["x".into()]));
        assert_eq!(ctx.fact::<Where>(), None);
        ctx.tell(Where("/merged"));
        assert_eq!(ctx.fact::<Where>(), Some(&Where("/merged")));
    }

    #[test]
    fn a_failed_prepare_cleans_up_only_what_was_prepared_in_reverse() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let c = Container::new(Process::new(vec!["x".into()]))
            .with(Hooks("a", log.clone(), false))
            .with(Hooks("b", log.clone(), false))
            .with(Hooks("c", log.clone(), true))
            .with(Hooks("d", log.clone(), false))
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
