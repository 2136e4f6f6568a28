//! Running the runtime under test: with a deadline, with its output
//! captured, and with every process it started killed afterwards.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use assert_cmd::assert::{Assert, OutputAssertExt};

use crate::host;

/// How long any single run may take before the test calls it hung.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A command line for the runtime under test, being built.
#[derive(Debug, Clone)]
pub struct Run {
    bin: PathBuf,
    args: Vec<OsString>,
    stdin: Vec<u8>,
    /// The probe's path as the container sees it.
    probe: PathBuf,
    envs: Vec<(OsString, OsString)>,
    /// Run the runtime as this uid and gid.
    user: Option<(u32, u32)>,
    /// Paths the runtime is started with open, on these descriptor numbers
    /// (not close-on-exec): what a careless caller leaves behind.
    open_fds: Vec<(i32, PathBuf)>,
}

impl Run {
    pub fn new(bin: &Path) -> Run {
        crate::report::install();
        Run {
            bin: bin.to_path_buf(),
            args: Vec::new(),
            stdin: Vec::new(),
            probe: crate::probe().to_path_buf(),
            // Tests always use a data directory of their own, and the
            // stages' defaults (crate::STAGE_DEFAULTS).
            envs: [(
                "MYRUNTIME_ROOT",
                crate::store_root().to_str().unwrap_or_default(),
            )]
            .into_iter()
            .chain(crate::STAGE_DEFAULTS)
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
            user: None,
            open_fds: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Run {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `-- COMMAND ARGS...`: everything after is the container's command.
    pub fn command<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(self, command: I) -> Run {
        self.arg("--").args(command)
    }

    /// `--rootfs DIR`; the probe is then `/probe` inside.
    pub fn rootfs(self, rootfs: &crate::Rootfs) -> Run {
        self.rootfs_path(rootfs.path())
    }

    /// `--rootfs PATH`, whatever PATH is.
    pub fn rootfs_path(mut self, path: &Path) -> Run {
        self.probe = PathBuf::from(crate::rootfs::PROBE_INSIDE);
        self.arg("--rootfs").arg(path)
    }

    /// Start the runtime as `user`, with a clean environment, from a copy of
    /// the binary that any user may run.
    pub fn as_user(mut self, user: &crate::host::TempUser) -> Run {
        self.bin = crate::runnable_by_anyone(&self.bin);
        self.user = Some((user.uid, user.gid));
        self.envs = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), "/".into()),
            ("USER".into(), user.name.clone().into()),
            // The user's own: an ordinary user cannot write the suite's.
            (
                "MYRUNTIME_ROOT".into(),
                crate::store_root_for(user.uid).into(),
            ),
        ];
        self.envs
            .extend(crate::STAGE_DEFAULTS.map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Start the runtime through `prefix` (a command that ends by executing
    /// the runtime with its arguments, such as `sh -c '...; exec "$@"' sh`).
    pub fn through(mut self, prefix: &[&str]) -> Run {
        self.bin = crate::runnable_by_anyone(&self.bin);
        let mut args: Vec<OsString> = prefix[1..].iter().map(OsString::from).collect();
        args.push(std::mem::replace(&mut self.bin, PathBuf::from(prefix[0])).into());
        args.append(&mut self.args);
        self.args = args;
        self
    }

    /// [`Run::through`] for a runtime started [`Run::as_user`]: `prefix`
    /// runs as root (`nsenter` needs it) and switches to the user last,
    /// with `setpriv`, just before the runtime.
    pub fn through_as_user(mut self, prefix: &[&str]) -> Run {
        let Some((uid, gid)) = self.user.take() else {
            return self.through(prefix);
        };
        let (uid, gid) = (uid.to_string(), gid.to_string());
        let mut all: Vec<&str> = prefix.to_vec();
        all.extend([
            "setpriv",
            "--reuid",
            &uid,
            "--regid",
            &gid,
            "--clear-groups",
            "env",
            "-i",
        ]);
        // `env -i` then the user's variables: nothing of root's goes on.
        let vars: Vec<String> = std::mem::take(&mut self.envs)
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        all.extend(vars.iter().map(String::as_str));
        self.through(&all)
    }

    /// Start the runtime with `path` open on descriptor `fd`, inherited as a
    /// careless caller would leave it (a directory here can reach any host
    /// file through /proc/self/fd/N/...).
    pub fn with_open_fd(mut self, fd: i32, path: &Path) -> Run {
        self.open_fds.push((fd, path.to_path_buf()));
        self
    }

    /// Set a variable in the runtime's own environment.
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// `-- PROBE MODE ARGS...`
    pub fn probe(self, mode: &[&str]) -> Run {
        let probe = self.probe.clone();
        self.arg("--").arg(probe).args(mode)
    }

    /// Bytes for the runtime's stdin (default: none, and stdin closed).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.stdin = bytes.into();
        self
    }

    /// The command line, as a learner would type it.
    pub fn shown(&self) -> String {
        std::iter::once(self.bin.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command_for(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args);
        if let Some((uid, gid)) = self.user {
            // Clears the supplementary groups too.
            cmd.uid(uid).gid(gid).env_clear().current_dir("/");
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        // Its own process group, so that a test can signal the runtime alone
        // and the terminal's signals never reach it.
        cmd.process_group(0);
        let opened: Vec<(i32, std::fs::File)> = self
            .open_fds
            .iter()
            .map(|(fd, path)| {
                let file = std::fs::File::open(path)
                    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                (*fd, file)
            })
            .collect();
        if !opened.is_empty() {
            // SAFETY: dup2 is async-signal-safe; the files outlive the
            // closure (moved into it), which runs in the forked child only.
            unsafe {
                cmd.pre_exec(move || {
                    for (fd, file) in &opened {
                        if libc::dup2(std::os::fd::AsRawFd::as_raw_fd(file), *fd) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Start it; stdout is a pipe the test can read line by line.
    pub fn spawn(&self) -> Running {
        let mut cmd = self.command_for();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // ETXTBSY: another thread's fork copied a descriptor of a binary
        // this process was writing (a copy for [`Run::as_user`]), which it
        // holds until it executes; it goes within moments. Bounded.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("cannot start `{}`: {e}", self.shown()),
            }
        };
        let mut stdin = child.stdin.take().expect("piped");
        let bytes = self.stdin.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
        let stdout = Stream::new(child.stdout.take().expect("piped"));
        let stderr = Stream::new(child.stderr.take().expect("piped"));
        Running {
            shown: self.shown(),
            group: Group(child.id() as i32),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Run it to the end (or the deadline) and collect what it printed.
    pub fn output(&self) -> Outcome {
        self.spawn().finish()
    }

    /// [`Run::output`], with the largest resident set the runtime reached,
    /// in KiB. Measured by the probe as the runtime's parent: `wait4`'s
    /// peak survives exec, and a runtime forked straight from this (large,
    /// many-threaded) test process would report the test's own size.
    pub fn output_with_peak_memory(&self) -> (Outcome, u64) {
        let report = tempfile::NamedTempFile::new().expect("a file for the measurement");
        let mut measured = self.clone();
        let probe = crate::probe().to_path_buf();
        let mut args: Vec<OsString> = vec![
            "measure".into(),
            report.path().into(),
            std::mem::replace(&mut measured.bin, probe).into(),
        ];
        args.append(&mut measured.args);
        measured.args = args;
        let outcome = measured.output();
        let text = std::fs::read_to_string(report.path()).unwrap_or_default();
        let peak: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!(
                "the probe measured nothing ({text:?})\n{}",
                outcome.describe()
            )
        });
        (outcome, peak["maxrss_kb"].as_u64().unwrap_or(u64::MAX))
    }

    /// Run it with stdin, stdout and stderr on a new pseudo-terminal, and
    /// return what appeared on the terminal.
    pub fn on_terminal(&self) -> Outcome {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut cmd = self.command_for();
        let tty = std::fs::File::from(pty.slave);
        cmd.stdin(tty.try_clone().expect("dup"))
            .stdout(tty.try_clone().expect("dup"))
            .stderr(tty);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.shown()));
        drop(cmd); // closes the parent's copies of the terminal's slave side
        // Reads end with EIO once every copy of the slave side is closed.
        let master = std::fs::File::from(pty.master);
        let running = Running {
            shown: self.shown(),
            group: Group(child.id() as i32),
            child: Some(child),
            stdout: Stream::new(master),
            stderr: Stream::closed(),
        };
        running.finish()
    }
}

/// The runtime's process group: the runtime is started as its leader, and
/// whatever it starts stays in it unless it moves out on purpose. Dropping it
/// kills whatever is left in the group, so that nothing a test started
/// outlives the test, passed or failed.
#[derive(Debug, Default)]
struct Group(i32);

impl Group {
    fn take(&mut self) -> Group {
        Group(std::mem::take(&mut self.0))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.0 > 0 {
            // ESRCH: the group is empty already, which is the usual case.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The runtime, started and not yet finished. Dropping it kills the runtime
/// and everything it started, and reaps the runtime: a failing test leaves
/// nothing.
pub struct Running {
    shown: String,
    group: Group,
    child: Option<Child>,
    stdout: Stream,
    stderr: Stream,
}

/// One of the runtime's output streams, read by a thread, so that a test can
/// wait for a line with a deadline, and stop reading when a process the
/// runtime left behind keeps the stream open.
struct Stream {
    chunks: Receiver<Vec<u8>>,
    buffer: Vec<u8>,
}

impl Stream {
    fn new(mut source: impl Read + Send + 'static) -> Stream {
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = source.read(&mut chunk) {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Stream {
            chunks,
            buffer: Vec::new(),
        }
    }

    fn closed() -> Stream {
        let (_, chunks) = mpsc::channel();
        Stream {
            chunks,
            buffer: Vec::new(),
        }
    }

    /// The next line, or `None` at end of stream or deadline.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.buffer.extend(chunk),
                Err(_) => return None,
            }
        }
    }

    /// Everything up to end of stream, or what came by `deadline`.
    fn rest(&mut self, deadline: Instant) -> Vec<u8> {
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.buffer.extend(chunk),
                Err(RecvTimeoutError::Disconnected) | Err(RecvTimeoutError::Timeout) => break,
            }
        }
        std::mem::take(&mut self.buffer)
    }
}

impl Running {
    /// The runtime's pid (on the host).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// The container's first process: the runtime's child, once it exists.
    #[track_caller]
    pub fn container_pid(&mut self) -> i32 {
        let pid = self.pid();
        let mut found = 0;
        self.wait_for(
            "to start a process for the container (hint: does it clone a child?)",
            || match host::children(pid).first() {
                Some(&child) => {
                    found = child;
                    true
                }
                None => false,
            },
        );
        found
    }

    /// The container's first process once it has executed COMMAND (its
    /// program is no longer the runtime's): what a signal from the host must
    /// hit to test how COMMAND's end is reported, not the setup's.
    #[track_caller]
    pub fn command_pid(&mut self) -> i32 {
        let pid = self.container_pid();
        let runtime = std::fs::read_link(format!("/proc/{}/exe", self.pid())).ok();
        self.wait_for(
            "to execute COMMAND in the container's first process",
            || {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                exe.is_some() && exe != runtime
            },
        );
        pid
    }

    /// Poll `ready` until it holds. Fails at once, with the runtime's output,
    /// if the runtime exits first, and at the deadline if it never holds.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ready() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited {
                let outcome = self.finish_ref();
                panic!(
                    "waited for `{}` {what}, but it exited first.\n{}",
                    outcome.shown,
                    outcome.describe()
                );
            }
            if Instant::now() > deadline {
                self.kill_everything();
                panic!(
                    "waited {DEADLINE:?} for `{}` {what}; it was killed.",
                    self.shown
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next line on the runtime's stdout (without the newline). Panics,
    /// with what the runtime printed, if there is none.
    #[track_caller]
    pub fn read_line(&mut self) -> String {
        match self.stdout.line(Instant::now() + DEADLINE) {
            Some(line) => line,
            None => {
                let outcome = self.finish_ref();
                panic!(
                    "expected a line on stdout from `{}`, got none.\n{}",
                    outcome.shown,
                    outcome.describe()
                )
            }
        }
    }

    /// Send `signal` to the runtime.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal the runtime");
    }

    /// Wait for the runtime to exit (killing it at the deadline), and return
    /// everything it printed.
    #[track_caller]
    pub fn finish(mut self) -> Outcome {
        self.finish_ref()
    }

    #[track_caller]
    fn finish_ref(&mut self) -> Outcome {
        let status = self.wait();
        // The runtime has exited; its output ends when the last copy of the
        // pipe closes. Something it left running may hold a copy: that is for
        // the test to find, so do not wait for it long.
        let grace = Instant::now() + Duration::from_secs(2);
        let stdout = self.stdout.rest(grace);
        let stderr = self.stderr.rest(grace);
        let outcome = Outcome {
            shown: self.shown.clone(),
            output: Output {
                status,
                stdout,
                stderr,
            },
            _group: self.group.take(),
        };
        crate::report::remember(outcome.describe());
        outcome
    }

    #[track_caller]
    fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the runtime") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                self.kill_everything();
                panic!(
                    "`{}` did not finish within {DEADLINE:?}; it was killed.\n\
                     hint: does your runtime wait for the container's process and then exit?",
                    self.shown
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill_everything(&mut self) {
        if let Some(mut child) = self.child.take() {
            host::kill_tree(child.id() as i32);
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_everything();
    }
}

/// What a finished run left: its status and output. Whatever the run left
/// running in its process group is killed when this is dropped, so a test can
/// first check that nothing was left.
#[derive(Debug)]
pub struct Outcome {
    pub shown: String,
    pub output: Output,
    _group: Group,
}

impl Outcome {
    /// assert_cmd's assertions on this output.
    pub fn assert(&self) -> Assert {
        self.output.clone().assert()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit status as a shell shows it: the code, or 128+N for signal N.
    pub fn code(&self) -> i32 {
        let status = self.output.status;
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }

    /// A readable account of the run, for failure messages.
    pub fn describe(&self) -> String {
        let status = self.output.status;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "ended".into(),
        };
        format!(
            "  ran:    {}\n  it {how}\n  stdout: {}\n  stderr: {}",
            self.shown,
            quote_block(&self.stdout()),
            quote_block(&self.stderr()),
        )
    }

    /// Assert a refusal, as the project's standard for bad input asks: a
    /// non-zero status, nothing on stdout (nothing started), and one line on
    /// stderr that names each of `names`.
    #[track_caller]
    pub fn expect_refused(&self, names: &[&str]) -> &Self {
        let problem = if self.code() == 0 {
            "it must be refused (a non-zero status)".to_owned()
        } else if !self.stdout().is_empty() {
            "nothing may start: stdout must stay empty".to_owned()
        } else if self.stderr().trim_end().lines().count() != 1 {
            "the error must be one line on stderr".to_owned()
        } else if let Some(missing) = names.iter().find(|n| !self.stderr().contains(*n)) {
            format!("the message must name {missing:?}")
        } else {
            return self;
        };
        panic!("{problem}\n{}", self.describe());
    }

    /// Assert the runtime exited with `code`, with an account if not.
    #[track_caller]
    pub fn expect_code(&self, code: i32, why: &str) -> &Self {
        if self.code() != code {
            panic!(
                "expected exit status {code}, got {}: {why}\n{}",
                self.code(),
                self.describe()
            );
        }
        self
    }

    /// The probe's JSON report, from the runtime's stdout.
    #[track_caller]
    pub fn report(&self) -> probe::Report {
        self.json()
    }

    /// A JSON value the probe printed as the last line of stdout.
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        let stdout = self.stdout();
        let Some(line) = stdout.lines().rev().find(|l| !l.trim().is_empty()) else {
            panic!(
                "expected the probe's JSON report on stdout, got nothing.\n{}\n\
                 hint: does your runtime run COMMAND (everything after `--`) and pass its stdout through?",
                self.describe()
            );
        };
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "expected the probe's JSON report as the last line of stdout, but it does not parse ({e}).\n{}\n\
                 hint: the runtime must not print to stdout itself; its own messages belong on stderr.",
                self.describe()
            )
        })
    }
}

fn quote_block(text: &str) -> String {
    if text.trim().is_empty() {
        return "(nothing)".into();
    }
    let lines: Vec<String> = text.trim_end().lines().map(shorten).collect();
    if lines.len() == 1 {
        lines[0].clone()
    } else {
        format!("\n    {}", lines.join("\n    "))
    }
}

/// The longest line an account shows whole.
const LONGEST_LINE: usize = 240;

/// A line as an account shows it: the probe's JSON report (kilobytes, with
/// the whole environment) is left out, since the assertion above names the
/// field that matters; any other long line is cut.
fn shorten(line: &str) -> String {
    if line.len() <= LONGEST_LINE {
        return line.to_owned();
    }
    if line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok() {
        return format!(
            "(a JSON report of {} bytes, left out: the message above names what was wrong in it)",
            line.len()
        );
    }
    let mut end = LONGEST_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &line[..end], line.len() - end)
}

/// `arg` as a shell reads it back: bare when it is safe, else in quotes.
pub(crate) fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
