//! The monitor: one small process per detached container, what conmon is to
//! podman. It is the container's parent, so it alone can reap its PID 1 and
//! learn how it ended. It holds the container's locks for as long as the
//! container lives, owns the container's output (the log, and `attach`),
//! takes commands on a socket, and when PID 1 exits records the status and
//! undoes what the start did. It is single-threaded, with no async runtime:
//! one `poll(2)` loop over
//!
//! - a signalfd: SIGCHLD (PID 1 ended), and the signals it passes on;
//! - the container's stdout and stderr pipes, or its terminal's master;
//! - the control socket ([`crate::control`]), and each client on it.
//!
//! Killed with SIGKILL, it takes the container with it (PID 1's parent-death
//! signal), and the next command reconciles ([`crate::recover`]).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use stage01_uts::container::Created;
use stage01_uts::spec::Spec;
use stage01_uts::{ContainerId, Error, ExitStatus};
use stage06_overlay::overlay::Layers;

use crate::control::{self, FRAME_MAX, Frame};
use crate::detach::{self, Reporter};
use crate::logs::{self, Stream};
use crate::proc::Process;
use crate::state::{State, Status, Store};
use crate::stdio::{self, Stdio};
use crate::time::Time;

/// What a monitor is started with.
pub struct Launch {
    pub store: Store,
    pub id: ContainerId,
    pub spec: Spec,
    pub layers: Layers,
    /// Start COMMAND at once (`run -d`, `start` of a stopped container),
    /// rather than wait for `start`.
    pub start: bool,
}

/// A client may fall this far behind on output before it is let go.
const CLIENT_BACKLOG: usize = 8 << 20;
/// Input waiting for the container's stdin, at most.
const STDIN_BACKLOG: usize = 1 << 20;

/// Fork the monitor; return once it has created the container (and started
/// it, if asked), or with why it could not.
// ANCHOR: spawn
pub fn spawn(launch: Launch) -> Result<(), Error> {
    let log = launch.store.dir(&launch.id).join("monitor.log");
    detach::detach("monitor", move |reporter| monitor(launch, reporter, &log))
}
// ANCHOR_END: spawn

/// The monitor's life: create, report, serve, record, clean up.
fn monitor(launch: Launch, reporter: &mut Reporter, log: &std::path::Path) -> u8 {
    let Launch {
        store,
        id,
        spec,
        layers,
        start,
    } = launch;
    let record = match store.record(&id) {
        Ok(record) => record,
        Err(e) => {
            reporter.fail(&e.into());
            return 125;
        }
    };
    let made = (|| -> Result<_, Error> {
        let (stdio, stdin, outputs) = if record.tty {
            (Stdio::terminal(&spec), None, Vec::new())
        } else {
            let stdio::Pipes {
                theirs,
                stdin,
                outputs: [out, err],
            } = stdio::pipes(record.interactive)?;
            (
                Stdio::Pipes(theirs),
                stdin,
                vec![(Stream::Stdout, out), (Stream::Stderr, err)],
            )
        };
        let container = crate::container(&spec, id.clone(), layers, stdio)?;
        let mut created = container.create()?;
        let mut outputs = outputs;
        let mut stdin = stdin;
        if record.tty {
            let master = created.take_received().pop().ok_or(Error::ChildVanished)?;
            crate::terminal::resize(master.as_raw_fd(), 24, 80);
            if record.interactive {
                stdin = Some(master.try_clone().map_err(|e| {
                    Error::syscall(
                        "dup",
                        "the terminal",
                        Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                    )
                })?);
            }
            outputs.push((Stream::Stdout, master));
        }
        Ok((created, stdin, outputs))
    })();
    let (created, stdin, outputs) = match made {
        Ok(made) => made,
        Err(err) => {
            failed_to_start(&store, &id, &err);
            reporter.fail(&err);
            return err.exit_code();
        }
    };
    let pid = created.pid();
    let state = State {
        status: Status::Created,
        pid: Process::of(pid.as_raw()).unwrap_or(Process {
            pid: pid.as_raw(),
            start: 0,
        }),
        monitor: Process::current(),
        boot: crate::state::boot(),
        started: None,
    };
    let listener = store
        .write_state(&id, &state)
        .map_err(Error::from)
        .and_then(|()| {
            control::listen_at(&store.run_dir(&id).join(crate::state::SOCKET))
                .map_err(|e| Error::syscall("bind", "the monitor's control socket", e))
        });
    let mut serve = match listener.and_then(|listener| {
        Serve::new(
            store.clone(),
            id.clone(),
            spec,
            created,
            state,
            stdin,
            outputs,
            listener,
        )
    }) {
        Ok(serve) => serve,
        Err(err) => {
            failed_to_start(&store, &id, &err);
            reporter.fail(&err);
            return err.exit_code();
        }
    };
    if start && let Err(err) = serve.start() {
        reporter.fail(&err);
        serve.finish(None);
        return err.exit_code();
    }
    reporter.ok();
    detach::stderr_to(log);
    shed_memory();
    let status = serve.run();
    serve.finish(status);
    0
}

/// A start that failed before the container existed: record why, and let
/// go of a container that was never made (a `create` that failed leaves
/// nothing, as docker's).
fn failed_to_start(store: &Store, id: &ContainerId, err: &Error) {
    let Ok(_lock) = store.lock(id) else {
        return;
    };
    let Ok(mut record) = store.record(id) else {
        return;
    };
    if record.started.is_none() && record.finished.is_none() {
        let _ = store.remove(id);
        return;
    }
    record.finished = Some(Time::now().rfc3339());
    record.exit_code = Some(err.exit_code().into());
    record.error = Some(err.to_string());
    record.owner = None;
    let _ = store.write_record(&record);
    let _ = std::fs::remove_dir_all(store.run_dir(id));
}

/// A client of the control socket.
struct Client {
    fd: OwnedFd,
    kind: Kind,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Attached { stdin: bool },
    Waiting,
}

/// The monitor at work.
struct Serve {
    store: Store,
    id: ContainerId,
    spec: Spec,
    created: Created,
    state: State,
    signals: nix::sys::signalfd::SignalFd,
    listener: OwnedFd,
    clients: Vec<Client>,
    /// The container's stdout and stderr (or its terminal), until each ends.
    outputs: Vec<(Stream, OwnedFd)>,
    /// The container's stdin, and what waits to be written to it.
    stdin: Option<OwnedFd>,
    stdin_queue: VecDeque<u8>,
    close_stdin: bool,
    log: Option<logs::Writer>,
    started: bool,
    /// COMMAND could not be executed: there is no PID 1 left to wait for.
    failed: bool,
    /// The terminal's master, for resizes.
    master: Option<i32>,
}

impl Serve {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: Store,
        id: ContainerId,
        spec: Spec,
        created: Created,
        state: State,
        stdin: Option<OwnedFd>,
        outputs: Vec<(Stream, OwnedFd)>,
        listener: OwnedFd,
    ) -> Result<Serve, Error> {
        let signals = crate::terminal::signals()
            .map_err(|e| Error::syscall("signalfd", "the monitor's signals", e))?;
        for (_, fd) in &outputs {
            set_nonblocking(fd);
        }
        if let Some(fd) = &stdin {
            set_nonblocking(fd);
        }
        let record = store.record(&id)?;
        let log = logs::Writer::open(&store.dir(&id), record.log).ok();
        let master = record
            .tty
            .then(|| outputs.first().map(|(_, fd)| fd.as_raw_fd()))
            .flatten();
        Ok(Serve {
            store,
            id,
            spec,
            created,
            state,
            signals,
            listener,
            clients: Vec::new(),
            outputs,
            stdin,
            stdin_queue: VecDeque::new(),
            close_stdin: false,
            log,
            started: false,
            failed: false,
            master,
        })
    }

    /// Let COMMAND run; record that it did.
    fn start(&mut self) -> Result<(), Error> {
        if self.started {
            return Err(
                crate::state::LifecycleError::AlreadyRunning(self.id.short().into()).into(),
            );
        }
        self.started = true;
        let started = self.created.start();
        let _lock = self.store.lock(&self.id)?;
        let mut record = self.store.record(&self.id)?;
        let now = Time::now().rfc3339();
        match &started {
            Ok(()) => {
                record.started = Some(now.clone());
                self.state.started = Some(now);
                record.finished = None;
                record.exit_code = None;
                record.error = None;
                record.oom_killed = false;
                self.state.status = Status::Running;
                self.store.write_state(&self.id, &self.state)?;
            }
            Err(err) => {
                // The child reported why, and was reaped.
                self.failed = true;
                record.started = Some(now.clone());
                record.finished = Some(now);
                record.exit_code = Some(err.exit_code().into());
                record.error = Some(err.to_string());
            }
        }
        record.owner = None;
        self.store.write_record(&record)?;
        started
    }

    /// Serve until PID 1 exits; its status.
    // ANCHOR: serve
    fn run(&mut self) -> Option<ExitStatus> {
        let pid = self.created.pid();
        let mut buf = vec![0u8; FRAME_MAX - 1];
        loop {
            if self.failed {
                return None;
            }
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            for (_, fd) in &self.outputs {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let first_client = fds.len();
            let stdin_full = self.stdin_queue.len() >= STDIN_BACKLOG;
            for client in &self.clients {
                let mut events = PollFlags::empty();
                if !stdin_full {
                    events |= PollFlags::POLLIN;
                }
                if !client.queue.is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(client.fd.as_fd(), events));
            }
            let stdin_at = fds.len();
            if let (Some(fd), false) = (&self.stdin, self.stdin_queue.is_empty()) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(_) => return self.reap_blocking(),
            }
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            let ready = |i: usize| revents.get(i).is_some_and(|r| !r.is_empty());

            if ready(0)
                && let Some(status) = self.signalled(pid)
            {
                return Some(status);
            }
            if ready(1) {
                self.accept();
            }
            let mut ended = Vec::new();
            for i in 0..self.outputs.len() {
                if ready(2 + i) && !self.read_output(i, &mut buf) {
                    ended.push(i);
                }
            }
            let mut gone = Vec::new();
            for i in 0..(stdin_at - first_client) {
                let r = revents[first_client + i];
                if r.contains(PollFlags::POLLOUT) && !self.flush(i) {
                    gone.push(i);
                    continue;
                }
                if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                    && !self.serve_client(i)
                {
                    gone.push(i);
                }
            }
            if ready(stdin_at) {
                self.write_stdin();
            }
            for i in ended.into_iter().rev() {
                self.outputs.remove(i);
            }
            gone.sort_unstable();
            gone.dedup();
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
        }
    }
    // ANCHOR_END: serve

    /// Signals: reap PID 1 if it ended; pass on what a process sent.
    fn signalled(&mut self, pid: nix::unistd::Pid) -> Option<ExitStatus> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(signal) if info.ssi_code <= 0 => {
                    let _ = nix::sys::signal::kill(pid, signal);
                }
                Ok(_) => {}
            }
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(status) => ExitStatus::from_wait(status),
            Err(_) => Some(ExitStatus::Exited(255)),
        }
    }

    fn reap_blocking(&mut self) -> Option<ExitStatus> {
        stage01_uts::container::wait_for_exit(&stage01_uts::syscall::Linux, self.created.pid()).ok()
    }

    fn accept(&mut self) {
        while let Ok(fd) = control::accept(self.listener.as_fd()) {
            self.clients.push(Client {
                fd,
                kind: Kind::New,
                queue: VecDeque::new(),
                queued: 0,
            });
        }
    }

    /// Read from output `i`: log it, pass it to attached clients. False at
    /// its end.
    fn read_output(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let (stream, fd) = &self.outputs[i];
        let stream = *stream;
        match nix::unistd::read(fd, buf) {
            Ok(0) | Err(Errno::EIO) => false,
            Ok(n) => {
                self.output(stream, &buf[..n]);
                true
            }
            Err(Errno::EAGAIN | Errno::EINTR) => true,
            Err(_) => false,
        }
    }

    fn output(&mut self, stream: Stream, data: &[u8]) {
        if let Some(log) = &mut self.log {
            let _ = log.write(stream, data, Time::now());
        }
        let frame = match stream {
            Stream::Stdout => Frame::Stdout(data.to_vec()),
            Stream::Stderr => Frame::Stderr(data.to_vec()),
        };
        let bytes = frame.encode();
        for client in &mut self.clients {
            if matches!(client.kind, Kind::Attached { .. }) {
                client.queued += bytes.len();
                client.queue.push_back(bytes.clone());
            }
        }
        for i in 0..self.clients.len() {
            let _ = self.flush(i);
        }
    }

    /// Send what client `i` has queued, as far as it takes it. False if it
    /// is gone, or too far behind.
    fn flush(&mut self, i: usize) -> bool {
        let client = &mut self.clients[i];
        while let Some(bytes) = client.queue.front() {
            match nix::sys::socket::send(
                client.fd.as_raw_fd(),
                bytes,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => {
                    client.queued -= bytes.len();
                    client.queue.pop_front();
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
        client.queued <= CLIENT_BACKLOG
    }

    /// [`Serve::flush`] until all is sent, at most `limit`.
    fn flush_within(&mut self, i: usize, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.flush(i) && !self.clients[i].queue.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let mut fds = [PollFd::new(self.clients[i].fd.as_fd(), PollFlags::POLLOUT)];
            let ms = PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            let _ = poll(&mut fds, ms);
        }
    }

    /// A frame from client `i`. False if it is gone.
    fn serve_client(&mut self, i: usize) -> bool {
        let frame = match control::recv_frame(self.clients[i].fd.as_fd()) {
            Ok(Some(frame)) => frame,
            Err(Errno::EAGAIN) => return true,
            Ok(None) | Err(_) => return false,
        };
        let kind = self.clients[i].kind;
        match (kind, frame) {
            (Kind::New, Frame::Start) => {
                let answer = match self.start() {
                    Ok(()) => Frame::Done,
                    Err(err) => Frame::Failed {
                        code: err.exit_code(),
                        message: err.to_string(),
                    },
                };
                self.queue(i, &answer);
                self.flush(i)
            }
            (Kind::New, Frame::Attach { stdin }) => {
                self.clients[i].kind = Kind::Attached { stdin };
                true
            }
            (Kind::New, Frame::Wait) => {
                self.clients[i].kind = Kind::Waiting;
                true
            }
            (Kind::Attached { stdin: true }, Frame::Input(data)) => {
                if self.stdin.is_some() {
                    self.stdin_queue.extend(data);
                    self.write_stdin();
                }
                true
            }
            (Kind::Attached { stdin: true }, Frame::Close) => {
                self.close_stdin = true;
                self.write_stdin();
                true
            }
            (Kind::Attached { .. }, Frame::Resize { rows, cols }) => {
                if let Some(master) = self.master {
                    crate::terminal::resize(master, rows, cols);
                }
                true
            }
            // Anything else is out of turn: that client goes.
            _ => false,
        }
    }

    fn queue(&mut self, i: usize, frame: &Frame) {
        let bytes = frame.encode();
        let client = &mut self.clients[i];
        client.queued += bytes.len();
        client.queue.push_back(bytes);
    }

    /// Write what waits for the container's stdin, as far as it takes it.
    fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            return;
        };
        while !self.stdin_queue.is_empty() {
            let (front, _) = self.stdin_queue.as_slices();
            match nix::unistd::write(fd, front) {
                Ok(n) => {
                    self.stdin_queue.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.stdin_queue.clear();
                    break;
                }
            }
        }
        if self.close_stdin && self.master.is_none() {
            self.stdin = None;
        }
    }

    /// PID 1 has exited (or the monitor is giving up on it): take the rest
    /// of its output, record how it ended, tell the clients, undo the start.
    // ANCHOR: finish
    fn finish(mut self, status: Option<ExitStatus>) {
        // Its processes are gone with PID 1; what they wrote is in the
        // pipes. A little while at most for the last of it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut buf = vec![0u8; FRAME_MAX - 1];
        while !self.outputs.is_empty() && std::time::Instant::now() < deadline {
            let mut fds: Vec<PollFd> = self
                .outputs
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            if !matches!(poll(&mut fds, PollTimeout::from(200u16)), Ok(n) if n > 0) {
                break;
            }
            drop(fds);
            let mut ended = Vec::new();
            for i in 0..self.outputs.len() {
                if !self.read_output(i, &mut buf) {
                    ended.push(i);
                }
            }
            for i in ended.into_iter().rev() {
                self.outputs.remove(i);
            }
        }
        let oom = stage05_cgroups::container_cgroup::locate(&self.spec, self.id.as_str())
            .is_some_and(|c| c.oom_kills() > 0);
        let code = status.map_or(crate::recover::LOST, |s| i32::from(s.code()));
        if let Ok(_lock) = self.store.lock(&self.id)
            && let Ok(mut record) = self.store.record(&self.id)
            // A start that failed recorded why already.
            && !(status.is_none() && record.finished.is_some())
        {
            record.finished = Some(Time::now().rfc3339());
            record.exit_code = Some(code);
            record.oom_killed = oom;
            record.owner = None;
            if status.is_none() {
                record.error = Some("the monitor lost its container".into());
            }
            let _ = self.store.write_record(&record);
        }
        for i in 0..self.clients.len() {
            if self.clients[i].kind != Kind::New {
                self.queue(i, &Frame::Exit(code));
            }
            set_blocking(&self.clients[i].fd);
            self.flush_within(i, std::time::Duration::from_secs(1));
        }
        self.clients.clear();
        let Serve {
            store, id, created, ..
        } = self;
        created.finish();
        let _ = std::fs::remove_dir_all(store.run_dir(&id));
        if let Ok(_lock) = store.lock(&id)
            && store.record(&id).is_ok_and(|r| r.remove_on_exit)
        {
            let _ = store.remove(&id);
        }
    }
    // ANCHOR_END: finish
}

/// The monitor is a copy of the whole runtime (the registry client, the
/// image code, the command line), and a copy is resident in full: the
/// pages of code and read-only data the runtime touched before the fork
/// are mapped in the monitor too, and so is the runtime's heap. For a
/// process that then lives as long as the container, only what its loop
/// touches should stay. So: free heap memory goes back to the kernel
/// (`malloc_trim`), and every file mapping that holds no private change
/// (code, read-only data: `Anonymous: 0` in smaps) is dropped from the
/// page tables (`MADV_DONTNEED`); what the loop runs faults back in from
/// the page cache. A mapping with private changes (relocated data) is left
/// alone: dropping it would throw the changes away.
// ANCHOR: shed_memory
fn shed_memory() {
    // SAFETY: malloc_trim only releases memory that is free.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut mapping: Option<(usize, usize, bool)> = None;
    let mut drop = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = words.next().unwrap_or_default();
            let path = words.nth(3).unwrap_or_default();
            // Private, from a file (not the heap, the stack or [vdso]).
            let file = perms.ends_with('p') && path.starts_with('/');
            mapping = Some((start, end, file));
        } else if first == "Anonymous:"
            && let Some((start, end, true)) = mapping.take()
            && words.next() == Some("0")
        {
            drop.push((start, end));
        }
    }
    for (start, end) in drop {
        // SAFETY: the range is a whole mapping of this process with no
        // private changes; its pages come back from the file when touched.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}
// ANCHOR_END: shed_memory

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

fn set_blocking(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK),
        );
    }
}
