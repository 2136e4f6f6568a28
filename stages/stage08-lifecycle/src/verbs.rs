//! The verbs that change a container's life: `run`, `create`, `start`,
//! `attach`, `exec`, `wait`, `stop`, `kill`, `restart`, `pause`, `unpause`,
//! `rm`. Each finds its containers by name, id or prefix, reconciles them
//! (see [`crate::recover`]), and acts on what the files and the kernel say.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use stage01_uts::spec::{self, Spec};
use stage01_uts::{ContainerId, Error, ExitStatus};
use stage06_overlay::cli::StoreArgs;
use stage06_overlay::overlay::Layers;

use crate::cli::{
    AttachArgs, CreateArgs, ExecArgs, Flags, KillArgs, RmArgs, RunArgs, StartArgs, StopArgs,
    Targets,
};
use crate::control::{self, Frame};
use crate::monitor::{self, Launch};
use crate::proc::Process;
use crate::recover::{self, observe};
use crate::state::{LifecycleError, Record, Status, Store};
use crate::stdio::Stdio;
use crate::time::Time;

/// The data directory, made if need be, as an absolute path: a monitor, and
/// a later `start`, may run from another directory.
pub fn open(args: &StoreArgs) -> Result<(Store, StoreArgs), Error> {
    let dir = args.dir();
    stage06_overlay::datadir::prepare(&dir, &["containers"]).map_err(|e| {
        Error::from(LifecycleError::Io {
            what: "making the data directory",
            path: dir.display().to_string(),
            why: e.to_string(),
        })
    })?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let store = Store::new(&dir);
    Ok((store, StoreArgs { root: Some(dir) }))
}

/// A container registered and ready to be made.
struct Registered {
    store: Store,
    id: ContainerId,
    spec: Spec,
    layers: Layers,
}

/// The common start of `run` and `create`: reconcile what dead runtimes
/// left, make the spec (pulling the image if need be), check or choose the
/// name, and register the container. `None` for `--dry-run`, which prints
/// the spec instead.
// ANCHOR: register
fn register<X: Flags>(
    args: &CreateArgs<X>,
    store_args: &StoreArgs,
    remove_on_exit: bool,
) -> Result<Option<Registered>, Error> {
    if let Some(name) = &args.name {
        crate::names::check(name)?;
    }
    let (store, store_args) = open(store_args)?;
    // What dead runtimes left goes first; the start itself reaps the
    // earlier stages' leftovers (stale cgroups, unkept directories).
    recover::reconcile_containers(&store);
    let id = ContainerId::generate();
    let (mut spec, mut layers) = crate::spec(args, &store_args, &id)?;
    args.more.write(&mut spec, &store.root, &id)?;
    if args.dry_run {
        println!("{}", spec::to_json(&spec));
        return Ok(None);
    }
    layers.lowers = layers
        .lowers
        .iter()
        .map(|l| std::fs::canonicalize(l).unwrap_or_else(|_| l.clone()))
        .collect();
    let stage03 = &args.image.base.base.base.base;
    let image = match &stage03.rootfs {
        Some(rootfs) => rootfs.display().to_string(),
        None if !args.image.base.layers.is_empty() => "(layers)".into(),
        None => stage03
            .base
            .base
            .command
            .first()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let record = Record {
        id: id.to_string(),
        name: String::new(),
        created: Time::now().rfc3339(),
        image,
        lowers: layers.lowers.clone(),
        remove_on_exit,
        tty: args.tty,
        interactive: args.interactive,
        log: args.log_options(),
        cgroup: stage05_cgroups::container_cgroup::locate(&spec, id.as_str())
            .map(|c| c.path().to_path_buf()),
        rootfs: store.dir(&id),
        started: None,
        finished: None,
        exit_code: None,
        oom_killed: false,
        error: None,
        owner: Some(Process::current()),
    };
    {
        let _names = store.names_lock()?;
        let name = match &args.name {
            Some(name) => {
                if let Some(other) = store.named(name) {
                    return Err(LifecycleError::NameInUse {
                        name: name.clone(),
                        id: other.short().to_owned(),
                    }
                    .into());
                }
                name.clone()
            }
            None => crate::names::generate(|n| store.named(n).is_some()),
        };
        store.register(&Record { name, ..record }, &spec)?;
    }
    Ok(Some(Registered {
        store,
        id,
        spec,
        layers,
    }))
}
// ANCHOR_END: register

/// `run`: in the foreground, or detached (`-d`).
// ANCHOR: run
pub fn run<X: Flags>(args: &RunArgs<X>, store: &StoreArgs) -> Result<ExitStatus, Error> {
    if args.detach {
        if let Some(id) = detached(&args.create, store, true)? {
            println!("{id}");
        }
        return Ok(ExitStatus::Exited(0));
    }
    foreground(&args.create, store)
}
// ANCHOR_END: run

/// `create`: made, waiting for `start`; its id printed.
pub fn create<X: Flags>(args: &CreateArgs<X>, store: &StoreArgs) -> Result<(), Error> {
    if let Some(id) = detached(args, store, false)? {
        println!("{id}");
    }
    Ok(())
}

/// A container with a monitor of its own.
fn detached<X: Flags>(
    args: &CreateArgs<X>,
    store: &StoreArgs,
    start: bool,
) -> Result<Option<ContainerId>, Error> {
    // The monitor outlives this command: it must hold nothing of whoever
    // started the command (a pipe a caller reads to its end, say).
    close_inherited();
    let Some(Registered {
        store,
        id,
        spec,
        layers,
    }) = register(args, store, args.rm)?
    else {
        return Ok(None);
    };
    let launch = Launch {
        store: store.clone(),
        id: id.clone(),
        spec,
        layers,
        start,
    };
    match monitor::spawn(launch) {
        Ok(()) => Ok(Some(id)),
        Err(err) => {
            abandon(&store, &id);
            Err(err)
        }
    }
}

/// A container whose making failed: if nothing made it run, it goes.
fn abandon(store: &Store, id: &ContainerId) {
    let _ = recover::reconcile(store, id);
    if let Ok(_lock) = store.lock(id)
        && let Ok(record) = store.record(id)
        && record.started.is_none()
        && !store.monitored(id)
    {
        let _ = store.remove(id);
    }
}

/// A foreground `run`: the runtime is the container's parent, passes its
/// own stdio (or relays a terminal), and removes the container when it
/// ends, as `runc run` does (and every earlier stage did).
fn foreground<X: Flags>(args: &CreateArgs<X>, store: &StoreArgs) -> Result<ExitStatus, Error> {
    let Some(Registered {
        store,
        id,
        spec,
        mut layers,
    }) = register(args, store, true)?
    else {
        return Ok(ExitStatus::Exited(0));
    };
    // Removed when it ends: its writes are never worth a sync.
    layers.volatile = true;
    let stdio = if args.tty {
        Stdio::terminal(&spec)
    } else {
        Stdio::Inherit
    };
    let ran = (|| {
        let container = crate::container(&spec, id.clone(), layers, stdio)?;
        let mut created = container.create()?;
        let master = created.take_received().pop();
        if let Err(err) = created.start() {
            created.finish();
            return Err(err);
        }
        // Its state, for the other commands (ps, exec, stop…); the record
        // is not written again: it goes when the container does.
        let state = crate::state::State {
            status: Status::Running,
            pid: Process::of(created.pid().as_raw()).unwrap_or(Process {
                pid: created.pid().as_raw(),
                start: 0,
            }),
            monitor: Process::current(),
            boot: crate::state::boot(),
            started: Some(Time::now().rfc3339()),
        };
        let _ = store.write_state(&id, &state);
        let status = match master {
            Some(master) => crate::terminal::relay(master, created.pid(), args.interactive)
                .map_err(|e| Error::syscall("poll", "relaying the container's terminal", e)),
            None => created.wait(),
        };
        created.finish();
        status
    })();
    if let Ok(_lock) = store.lock(&id) {
        let _ = store.remove(&id);
    }
    ran
}

/// Close every descriptor above stderr that this process inherited.
fn close_inherited() {
    // SAFETY: close_range(3, ~0, 0) closes descriptors; none above 2 is in
    // use by the runtime this early.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

/// `start`: created containers go; stopped ones are made again from their
/// spec and files (their writes kept) and go.
// ANCHOR: start
pub fn start(args: &StartArgs, store: &StoreArgs) -> Result<ExitStatus, Error> {
    let (store, _) = open(store)?;
    let ready = |query: &str| -> Result<(ContainerId, Record), Error> {
        let (id, record, status) = observe(&store, query)?;
        match status {
            Status::Running | Status::Paused => {
                Err(LifecycleError::AlreadyRunning(query.to_owned()).into())
            }
            Status::Created => Ok((id, record)),
            Status::Exited => relaunch(&store, &id, &record).map(|()| (id, record)),
        }
    };
    if !args.attach {
        each(&args.targets.containers, |query| {
            let (id, _) = ready(query)?;
            send_start(&store, &id)?;
            println!("{query}");
            Ok(())
        })?;
        return Ok(ExitStatus::Exited(0));
    }
    let [query] = args.targets.containers.as_slice() else {
        return Err(LifecycleError::Io {
            what: "start -a",
            path: args.targets.containers.join(" "),
            why: "attach to one container at a time".into(),
        }
        .into());
    };
    let (id, record) = ready(query)?;
    // Attached before it starts, so that none of its output is missed.
    let stdin = args.interactive && record.interactive;
    let attached = attach_to(&store.run_dir(&id).join(crate::state::SOCKET), stdin)?;
    send_start(&store, &id)?;
    relay_attached(attached, stdin, record.tty, store.state(&id))
}
// ANCHOR_END: start

/// Make a stopped container again, from its spec and its record, with a
/// new monitor; it waits for `start`.
fn relaunch(store: &Store, id: &ContainerId, record: &Record) -> Result<(), Error> {
    {
        let _lock = store.lock(id)?;
        let mut record = store.record(id)?;
        record.owner = Some(Process::current());
        store.write_record(&record)?;
    }
    let launch = Launch {
        store: store.clone(),
        id: id.clone(),
        spec: store.spec(id)?,
        layers: Layers {
            lowers: record.lowers.clone(),
            store: store.root.clone(),
            hold: None,
            keep: true,
            volatile: record.remove_on_exit,
        },
        start: false,
    };
    monitor::spawn(launch)
}

/// `attach`.
pub fn attach(args: &AttachArgs, store: &StoreArgs) -> Result<ExitStatus, Error> {
    let (store, _) = open(store)?;
    let (id, record, status) = observe(&store, &args.target.container)?;
    match status {
        Status::Running => {}
        Status::Paused => return Err(LifecycleError::Paused(args.target.container.clone()).into()),
        _ => return Err(LifecycleError::NotRunning(args.target.container.clone()).into()),
    }
    let socket = store.run_dir(&id).join(crate::state::SOCKET);
    if !socket.exists() {
        return Err(LifecycleError::Io {
            what: "attach",
            path: args.target.container.clone(),
            why: "it runs in the foreground of another command, whose terminal has its output"
                .into(),
        }
        .into());
    }
    let stdin = record.interactive && !args.no_stdin;
    let fd = attach_to(&socket, stdin)?;
    relay_attached(fd, stdin, record.tty, store.state(&id))
}

fn attach_to(socket: &Path, stdin: bool) -> Result<OwnedFd, Error> {
    let fd = control::connect_to(socket)
        .map_err(|e| Error::syscall("connect", "reaching the container's monitor", e))?;
    control::send_frame(fd.as_fd(), &Frame::Attach { stdin }, true)
        .map_err(|e| Error::syscall("send", "attaching", e))?;
    Ok(fd)
}

/// The signals an attached client watches: resizes, and those it passes
/// on to the container (docker's sig-proxy).
fn client_signals() -> Result<SignalFd, Error> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::syscall("sigprocmask", "watching signals", e))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::syscall("signalfd", "watching signals", e))
}

/// Relay an attached container: its output to ours, our input to it (if
/// `stdin`), our terminal's size to its; until it exits (its status) or,
/// on a terminal, ^P ^Q detaches (0).
// ANCHOR: relay_attached
pub fn relay_attached(
    fd: OwnedFd,
    stdin: bool,
    tty: bool,
    state: Option<crate::state::State>,
) -> Result<ExitStatus, Error> {
    let signals = client_signals()?;
    let input = std::io::stdin();
    let raw = if tty && stdin {
        crate::terminal::RawMode::enter(input.as_fd())
    } else {
        None
    };
    let resize = |fd: &OwnedFd| {
        if let Some((rows, cols)) = crate::terminal::size(0).or(crate::terminal::size(1)) {
            let _ = control::send_frame(fd.as_fd(), &Frame::Resize { rows, cols }, true);
        }
    };
    if tty {
        resize(&fd);
    }
    let mut stdin_open = stdin;
    let mut escape = false;
    let mut buf = vec![0u8; 32 * 1024];
    let outcome = loop {
        let mut watched = vec![(0, signals.as_fd()), (1, fd.as_fd())];
        if stdin_open {
            watched.push((2, input.as_fd()));
        }
        let mut fds: Vec<PollFd> = watched
            .iter()
            .map(|(_, f)| PollFd::new(*f, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => break Err(Error::syscall("poll", "relaying", e)),
        }
        let ready: Vec<usize> = watched
            .iter()
            .zip(&fds)
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|((t, _), _)| *t)
            .collect();
        drop(fds);
        if ready.contains(&0) {
            while let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) => resize(&fd),
                    Ok(signal) if !tty => {
                        if let Some(pidfd) = state.as_ref().and_then(|s| s.pid.open()) {
                            let _ = pidfd.signal(signal);
                        }
                    }
                    _ => {}
                }
            }
        }
        if ready.contains(&1) {
            match control::recv_frame(fd.as_fd()) {
                Ok(Some(Frame::Stdout(data))) => {
                    let _ = crate::terminal::write_all(std::io::stdout().as_fd(), &data);
                }
                Ok(Some(Frame::Stderr(data))) => {
                    let _ = crate::terminal::write_all(std::io::stderr().as_fd(), &data);
                }
                Ok(Some(Frame::Exit(code))) => break Ok(exit_status(code)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break Err(Error::ChildVanished),
            }
        }
        if ready.contains(&2) {
            match nix::unistd::read(input.as_fd(), &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = control::send_frame(fd.as_fd(), &Frame::Close, true);
                }
                Ok(n) => {
                    let data = &buf[..n];
                    // ^P ^Q: detach, as docker does, on a terminal.
                    if tty {
                        let mut detach = false;
                        for &b in data {
                            detach |= escape && b == 0x11;
                            escape = b == 0x10;
                        }
                        if detach {
                            break Ok(ExitStatus::Exited(0));
                        }
                    }
                    let _ = control::send_frame(fd.as_fd(), &Frame::Input(data.to_vec()), true);
                }
            }
        }
    };
    drop(raw);
    outcome
}
// ANCHOR_END: relay_attached

fn exit_status(code: i32) -> ExitStatus {
    ExitStatus::Exited(code.clamp(0, 255))
}

/// `exec`.
// ANCHOR: exec
pub fn exec(args: &ExecArgs, store: &StoreArgs) -> Result<ExitStatus, Error> {
    let (store, _) = open(store)?;
    let (id, _record, status) = observe(&store, &args.container)?;
    match status {
        Status::Running => {}
        Status::Paused => return Err(LifecycleError::Paused(args.container.clone()).into()),
        _ => return Err(LifecycleError::NotRunning(args.container.clone()).into()),
    }
    let state = store
        .state(&id)
        .ok_or_else(|| LifecycleError::NotRunning(args.container.clone()))?;
    let mut spec = store.spec(&id)?;
    let command = stage01_uts::cli::utf8("COMMAND", &args.command)?;
    let process = spec::process_mut(&mut spec);
    process.set_args(Some(command));
    process.set_terminal(Some(args.tty && !args.detach));
    if let Some(dir) = &args.workdir {
        process.set_cwd(dir.clone());
    }
    let base: Vec<(String, String)> = spec::env(&spec)
        .iter()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let defaults: Vec<(&str, String)> = base.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let env = stage03_mount::env::merge(&defaults, &args.env, |k| std::env::var(k).ok());
    spec::process_mut(&mut spec).set_env(Some(env));
    if let Some(user) = &args.user {
        // The container's own /etc/passwd, through its root.
        let root = PathBuf::from(format!("/proc/{}/root", state.pid.pid));
        let home_given = args.env.iter().any(|v| v.key == "HOME");
        stage04_user::user::apply(
            &mut spec,
            user,
            &stage03_mount::path::RootDir(&root),
            home_given,
        )?;
    }
    if args.detach {
        let container = crate::exec::container(&spec, &id, state.pid, Stdio::Inherit)?;
        crate::detach::detach("exec", move |reporter| {
            let mut created = match container.create() {
                Ok(created) => created,
                Err(err) => {
                    reporter.fail(&err);
                    return err.exit_code();
                }
            };
            if let Err(err) = created.start() {
                reporter.fail(&err);
                created.finish();
                return err.exit_code();
            }
            reporter.ok();
            let status = created.wait();
            created.finish();
            status.map_or(125, |s| s.code())
        })?;
        return Ok(ExitStatus::Exited(0));
    }
    let stdio = if args.tty {
        Stdio::terminal(&spec)
    } else {
        Stdio::Inherit
    };
    let container = crate::exec::container(&spec, &id, state.pid, stdio)?;
    let mut created = container.create()?;
    let master = created.take_received().pop();
    if let Err(err) = created.start() {
        created.finish();
        return Err(err);
    }
    let status = match master {
        Some(master) => crate::terminal::relay(master, created.pid(), args.interactive)
            .map_err(|e| Error::syscall("poll", "relaying the terminal", e)),
        None => created.wait(),
    };
    created.finish();
    status
}
// ANCHOR_END: exec

/// `wait`: each container's exit status, once it has one.
pub fn wait(args: &Targets, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    each(&args.containers, |query| {
        let (id, _, status) = observe(&store, query)?;
        let mut code = None;
        if status != Status::Exited {
            let socket = store.run_dir(&id).join(crate::state::SOCKET);
            if let Ok(fd) = control::connect_to(&socket)
                && control::send_frame(fd.as_fd(), &Frame::Wait, true).is_ok()
            {
                while let Ok(Some(frame)) = control::recv_frame(fd.as_fd()) {
                    if let Frame::Exit(c) = frame {
                        code = Some(c);
                        break;
                    }
                }
            } else if let Some(state) = store.state(&id)
                && let Some(pidfd) = state.monitor.open()
            {
                pidfd.wait_exit(Duration::from_secs(u64::MAX / 4));
            }
        }
        let code = match code {
            Some(code) => code,
            None => {
                let _ = recover::reconcile(&store, &id);
                store
                    .record(&id)
                    .map_err(|_| LifecycleError::NoSuch(query.to_owned()))?
                    .exit_code
                    .unwrap_or(0)
            }
        };
        println!("{code}");
        Ok(())
    })
}

/// Apply `act` to every container named, as docker does: each is tried,
/// each failure is one line on stderr, and the status is 1 if any failed
/// (a single container's failure keeps its own status).
pub fn each(
    queries: &[String],
    mut act: impl FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    if let [only] = queries {
        return act(only);
    }
    let mut failed = false;
    for query in queries {
        if let Err(err) = act(query) {
            eprintln!(
                "{}: {}",
                stage01_uts::cli::program(),
                stage01_uts::cli::Untrusted(&err.to_string())
            );
            failed = true;
        }
    }
    if failed {
        Err(Error::Reported(1))
    } else {
        Ok(())
    }
}

/// A signal by name (`TERM`, `SIGTERM`, case aside) or number.
pub fn parse_signal(text: &str) -> Result<Signal, Error> {
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper.clone()
    } else {
        format!("SIG{upper}")
    };
    let parsed = match text.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => named.parse::<Signal>().ok(),
    };
    parsed.ok_or_else(|| {
        Error::from(LifecycleError::Io {
            what: "signal",
            path: text.to_owned(),
            why: "not a signal; give a name such as TERM or KILL, or a number".into(),
        })
    })
}

/// The signal `stop` sends the container of `spec`: its image's StopSignal,
/// else SIGTERM.
fn stop_signal(spec: &Spec) -> Signal {
    spec::annotation(spec, stage07_image::config::STOP_SIGNAL)
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(Signal::SIGTERM)
}

/// Wait until the container's monitor has recorded its end (at most a
/// while: a monitor stuck in I/O must not hang `stop`).
fn wait_for_monitor(store: &Store, id: &ContainerId, state: Option<crate::state::State>) {
    if let Some(pidfd) = state.and_then(|s| s.monitor.open()) {
        pidfd.wait_exit(Duration::from_secs(10));
    }
    let _ = recover::reconcile(store, id);
}

/// `stop`.
// ANCHOR: stop
pub fn stop(args: &StopArgs, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    each(&args.targets.containers, |query| {
        stop_one(&store, query, args.time)?;
        println!("{query}");
        Ok(())
    })
}

fn stop_one(store: &Store, query: &str, grace: u32) -> Result<(), Error> {
    let (id, _, status) = observe(store, query)?;
    if !matches!(status, Status::Running | Status::Paused) {
        // Stopping a stopped container does nothing, as with docker.
        return Ok(());
    }
    let state = store.state(&id);
    if status == Status::Paused {
        // A frozen process handles no signal: thaw it first.
        freeze(store, &id, false)?;
    }
    let signal = stop_signal(&store.spec(&id)?);
    if let Some(pidfd) = state.as_ref().and_then(|s| s.pid.open()) {
        let _ = pidfd.signal(signal);
        if !pidfd.wait_exit(Duration::from_secs(grace.into())) {
            let _ = pidfd.signal(Signal::SIGKILL);
            pidfd.wait_exit(Duration::from_secs(10));
        }
    }
    wait_for_monitor(store, &id, state);
    Ok(())
}
// ANCHOR_END: stop

/// `kill`.
pub fn kill(args: &KillArgs, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    let signal = parse_signal(&args.signal)?;
    each(&args.targets.containers, |query| {
        let (id, _, status) = observe(&store, query)?;
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(LifecycleError::NotRunning(query.to_owned()).into());
        }
        let pidfd = store
            .state(&id)
            .and_then(|s| s.pid.open())
            .ok_or_else(|| LifecycleError::NotRunning(query.to_owned()))?;
        pidfd
            .signal(signal)
            .map_err(|e| Error::syscall(format!("pidfd_send_signal({signal})"), "signalling", e))?;
        println!("{query}");
        Ok(())
    })
}

/// `restart`: stop (if it runs), then start.
pub fn restart(args: &StopArgs, store_args: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store_args)?;
    each(&args.targets.containers, |query| {
        stop_one(&store, query, args.time)?;
        let (id, record, status) = observe(&store, query)?;
        if status == Status::Exited {
            relaunch(&store, &id, &record)?;
        }
        send_start(&store, &id)?;
        println!("{query}");
        Ok(())
    })
}

/// Ask the container's monitor to start it.
fn send_start(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let socket = store.run_dir(id).join(crate::state::SOCKET);
    match control::request(&socket, &Frame::Start) {
        Ok(Ok(())) => Ok(()),
        Ok(Err((code, message))) => Err(Error::Relayed { code, message }),
        Err(e) => Err(Error::syscall(
            "connect",
            "reaching the container's monitor",
            e,
        )),
    }
}

/// Freeze or thaw the container's cgroup, and record it.
fn freeze(store: &Store, id: &ContainerId, frozen: bool) -> Result<(), Error> {
    let spec = store.spec(id)?;
    let cgroup =
        stage05_cgroups::container_cgroup::locate(&spec, id.as_str()).ok_or_else(|| {
            LifecycleError::Io {
                what: "pause",
                path: id.short().into(),
                why: "it has no cgroup (rootless without a delegated one)".into(),
            }
        })?;
    cgroup.freeze(frozen).map_err(Error::primitive)?;
    let _lock = store.lock(id)?;
    if let Some(mut state) = store.state(id) {
        state.status = if frozen {
            Status::Paused
        } else {
            Status::Running
        };
        store.write_state(id, &state)?;
    }
    Ok(())
}

/// `pause` (`frozen`), `unpause`.
pub fn pause(args: &Targets, store: &StoreArgs, frozen: bool) -> Result<(), Error> {
    let (store, _) = open(store)?;
    each(&args.containers, |query| {
        let (id, _, status) = observe(&store, query)?;
        let refused = |e: LifecycleError| Err(e.into());
        match (frozen, status) {
            (true, Status::Running) | (false, Status::Paused) => freeze(&store, &id, frozen)?,
            (true, Status::Paused) => return refused(LifecycleError::Paused(query.to_owned())),
            (true, _) => return refused(LifecycleError::NotRunning(query.to_owned())),
            (false, _) => return refused(LifecycleError::NotPaused(query.to_owned())),
        }
        println!("{query}");
        Ok(())
    })
}

/// `rm`.
// ANCHOR: rm
pub fn rm(args: &RmArgs, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    each(&args.targets.containers, |query| {
        let (id, _, status) = observe(&store, query)?;
        match status {
            Status::Running | Status::Paused if !args.force => {
                return Err(LifecycleError::RemoveRunning(query.to_owned()).into());
            }
            Status::Exited => {}
            _ => {
                // Created (waiting for start), or forced: kill it, and let
                // its monitor record and undo.
                let state = store.state(&id);
                if status == Status::Paused {
                    let _ = freeze(&store, &id, false);
                }
                if let Some(pidfd) = state.as_ref().and_then(|s| s.pid.open()) {
                    let _ = pidfd.signal(Signal::SIGKILL);
                    pidfd.wait_exit(Duration::from_secs(10));
                }
                wait_for_monitor(&store, &id, state);
            }
        }
        let _lock = store.lock(&id);
        if store.dir(&id).exists() {
            store.remove(&id)?;
        }
        println!("{query}");
        Ok(())
    })
}
// ANCHOR_END: rm

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn exit_codes_stay_in_range() {
        assert_eq!(exit_status(3).code(), 3);
        assert_eq!(exit_status(255).code(), 255);
    }
}
