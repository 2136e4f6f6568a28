//! What the runtime knows of a container, on disk, so that every verb can
//! run in a process of its own, and the next command can put right what a
//! killed one left.
//!
//! ```text
//!   <root>/containers/<id>/          kept until `rm` (survives a reboot)
//!     kept                           stage 06's marker: reaping spares it
//!     config.json                    the spec it runs (OCI runtime spec)
//!     container.json                 the record: name, image, created, the
//!                                    last exit, and what to undo (cgroup,
//!                                    overlay directory)
//!     upper/ work/ merged/ lowers    stage 06's overlay
//!     container.log[.1 …]            its output (see `logs`)
//!   <root>/containers/<id>.lock      held by its monitor while it lives
//!   <rundir>/containers/<id>/        only while it lives (gone at reboot)
//!     state.json                     status, pid 1 and the monitor (each
//!                                    with its start time)
//!     ctl.sock                       the monitor's control socket
//! ```
//!
//! Every file is written aside and renamed over the old one, so a reader
//! sees the old or the new, never half; changes are made under an flock on
//! the container's directory. A container recorded as alive whose monitor
//! no longer holds its lock (it was killed, or the host restarted) is
//! *reconciled*: recorded as exited, its cgroup removed; its files stay
//! until `rm` (unless it was to be removed on exit).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stage01_uts::spec::Spec;
use stage01_uts::{ContainerId, Error};
use stage05_cgroups::rundir::{held, runtime_dir};
use stage06_overlay::overlay::KEPT;

use crate::proc::Process;
use crate::time::Time;

pub const RECORD: &str = "container.json";
pub const SPEC: &str = "config.json";
pub const STATE: &str = "state.json";
pub const SOCKET: &str = "ctl.sock";

/// What cannot be done with the containers asked for. Each is one line,
/// and exits 1 as docker's do.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no such container: {0}")]
    NoSuch(String),
    #[error("{query:?} matches {count} containers; give more of the id, or the name")]
    Ambiguous { query: String, count: usize },
    #[error(
        "the name {name:?} is already in use by container {id}; remove it (rm) or choose another name"
    )]
    NameInUse { name: String, id: String },
    #[error(
        "invalid container name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is paused; unpause it first")]
    Paused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("you cannot remove a running container {0}; stop it first, or remove it with rm -f")]
    RemoveRunning(String),
    #[error("{what} {path}: {why}")]
    Io {
        what: &'static str,
        path: String,
        why: String,
    },
}

impl From<LifecycleError> for Error {
    fn from(e: LifecycleError) -> Self {
        Error::WithCode {
            code: 1,
            source: Box::new(e),
        }
    }
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LifecycleError + 'a {
    move |e| LifecycleError::Io {
        what,
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// The persistent record of a container: what it is, its last exit, and
/// what its teardown must undo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image it runs, if any (else its `--rootfs`).
    pub image: String,
    /// Its layers, lowest first (stage 06), to start it again.
    pub lowers: Vec<PathBuf>,
    /// Removed when it exits (`--rm`, and every foreground `run`).
    pub remove_on_exit: bool,
    pub tty: bool,
    pub interactive: bool,
    pub log: LogOptions,
    /// Undo: the cgroup (below the hierarchy's root), and the overlay's
    /// directory.
    pub cgroup: Option<PathBuf>,
    pub rootfs: PathBuf,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Why it is not running, if it failed rather than ended.
    pub error: Option<String>,
    /// The process answerable for it until its monitor holds its lock (the
    /// command that registered it): while that lives, a container without a
    /// monitor yet is being made, not dead.
    pub owner: Option<Process>,
}

/// How much output a container keeps (`--log-opt max-size=…,max-file=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    pub max_size: u64,
    pub max_files: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_size: 10 << 20,
            max_files: 3,
        }
    }
}

/// What a live container's monitor says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's first process (PID 1 inside), on the host.
    pub pid: Process,
    /// Its monitor (the runtime itself, for a foreground `run`).
    pub monitor: Process,
    /// Which boot it was started in.
    #[serde(default)]
    pub boot: u64,
    /// When COMMAND started (the record has it too once it has ended).
    #[serde(default)]
    pub started: Option<String>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, waiting before `execve` for `start`.
    Created,
    Running,
    /// Frozen (`pause`).
    Paused,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
        }
    }
}

/// The data directory's containers, and the runtime directory's.
#[derive(Debug, Clone)]
pub struct Store {
    /// `<root>/containers`.
    pub containers: PathBuf,
    /// `<rundir>/containers`.
    pub run: PathBuf,
    /// `<root>`.
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            containers: root.join("containers"),
            run: runtime_dir().join("containers"),
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &ContainerId) -> PathBuf {
        self.containers.join(id.as_str())
    }

    pub fn run_dir(&self, id: &ContainerId) -> PathBuf {
        self.run.join(id.as_str())
    }

    pub fn lock_file(&self, id: &ContainerId) -> PathBuf {
        self.containers.join(format!("{id}.lock"))
    }

    /// Every container (a directory with a record), by id.
    pub fn ids(&self) -> Vec<ContainerId> {
        let Ok(entries) = std::fs::read_dir(&self.containers) else {
            return Vec::new();
        };
        let mut ids: Vec<ContainerId> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|id| self.dir(id).join(RECORD).is_file())
            .collect();
        ids.sort_by(|a: &ContainerId, b| a.as_str().cmp(b.as_str()));
        ids
    }

    pub fn record(&self, id: &ContainerId) -> Result<Record, LifecycleError> {
        read_json(&self.dir(id).join(RECORD))
    }

    pub fn spec(&self, id: &ContainerId) -> Result<Spec, LifecycleError> {
        read_json(&self.dir(id).join(SPEC))
    }

    pub fn state(&self, id: &ContainerId) -> Option<State> {
        read_json(&self.run_dir(id).join(STATE)).ok()
    }

    pub fn write_record(&self, record: &Record) -> Result<(), LifecycleError> {
        let id: ContainerId = record
            .id
            .parse()
            .map_err(|_| LifecycleError::NoSuch(record.id.clone()))?;
        write_json(&self.dir(&id), RECORD, record)
    }

    pub fn write_state(&self, id: &ContainerId, state: &State) -> Result<(), LifecycleError> {
        let dir = self.run_dir(id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io("making", &dir))?;
        write_json(&dir, STATE, state)
    }

    /// Whether the container's monitor is alive: it holds the lock on the
    /// container's directory for as long as it lives.
    pub fn monitored(&self, id: &ContainerId) -> bool {
        held(&self.lock_file(id))
    }

    /// Whether some live process answers for the container: its monitor
    /// (which holds its lock), or the command still making it.
    pub fn alive(&self, id: &ContainerId, record: &Record) -> bool {
        self.monitored(id) || record.owner.is_some_and(|o| o.alive())
    }

    /// Where the container is in its life, as the files and the kernel say.
    pub fn status(&self, id: &ContainerId, record: &Record) -> Status {
        if !self.alive(id, record) {
            return Status::Exited;
        }
        match self.state(id) {
            Some(state) if state.boot == boot() => state.status,
            // Being made: not started yet.
            _ => Status::Created,
        }
    }

    /// An exclusive lock on the container's directory, for changes to its
    /// files (held for milliseconds; a second changer waits).
    pub fn lock(&self, id: &ContainerId) -> Result<DirLock, LifecycleError> {
        DirLock::take(&self.dir(id))
    }

    /// The lock on the names: held while a name is checked and taken.
    pub fn names_lock(&self) -> Result<DirLock, LifecycleError> {
        DirLock::take(&self.containers)
    }

    /// Find the container `query` names: its full id, its name, or an
    /// unambiguous prefix of its id, in that order, as docker does.
    pub fn find(&self, query: &str) -> Result<(ContainerId, Record), LifecycleError> {
        let mut prefixed = Vec::new();
        let mut named = None;
        for id in self.ids() {
            if id.as_str() == query {
                let record = self.record(&id)?;
                return Ok((id, record));
            }
            let Ok(record) = self.record(&id) else {
                continue;
            };
            if record.name == query {
                named = Some((id.clone(), record.clone()));
            }
            if !query.is_empty() && id.as_str().starts_with(query) {
                prefixed.push((id, record));
            }
        }
        if let Some(found) = named {
            return Ok(found);
        }
        match prefixed.len() {
            1 => Ok(prefixed.remove(0)),
            0 => Err(LifecycleError::NoSuch(query.to_owned())),
            count => Err(LifecycleError::Ambiguous {
                query: query.to_owned(),
                count,
            }),
        }
    }

    /// The container already named `name`, if one is.
    pub fn named(&self, name: &str) -> Option<ContainerId> {
        self.ids()
            .into_iter()
            .find(|id| self.record(id).is_ok_and(|r| r.name == name))
    }

    /// Make the container's directory with its first files, all at once:
    /// made aside (`.ID.PID.new`, which reaping leaves to a live maker) and
    /// renamed into place, so no reader ever sees it half made.
    pub fn register(&self, record: &Record, spec: &Spec) -> Result<(), LifecycleError> {
        let id: ContainerId = record.id.parse().expect("a generated id");
        let aside = self
            .containers
            .join(format!(".{id}.{}.new", std::process::id()));
        let made = (|| {
            std::fs::DirBuilder::new()
                .mode(0o711)
                .create(&aside)
                .map_err(io("making", &aside))?;
            File::create(aside.join(KEPT)).map_err(io("making", &aside))?;
            // Written in place: the directory appears whole, by its rename.
            let json = |name: &str, bytes: Vec<u8>| {
                std::fs::write(aside.join(name), bytes).map_err(io("writing", &aside))
            };
            json(
                SPEC,
                serde_json::to_vec_pretty(spec).expect("specs serialize"),
            )?;
            json(
                RECORD,
                serde_json::to_vec_pretty(record).expect("records serialize"),
            )?;
            std::fs::rename(&aside, self.dir(&id)).map_err(io("making", &aside))
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&aside);
        }
        made
    }

    /// Remove every trace of the container: its directory (with its logs
    /// and writes), its lock, its runtime directory.
    pub fn remove(&self, id: &ContainerId) -> Result<(), LifecycleError> {
        let dir = self.dir(id);
        // The marker goes first: from here on stage 06's reaping takes the
        // directory as any other leftover, so a removal killed halfway is
        // finished by the next command. Then the record: the container is
        // no longer listed.
        let _ = std::fs::remove_file(dir.join(KEPT));
        let _ = std::fs::remove_file(dir.join(RECORD));
        crate::reclaim(&self.root, id);
        stage06_overlay::overlay::remove(&dir).map_err(io("removing", &dir))?;
        let _ = std::fs::remove_file(self.lock_file(id));
        let _ = std::fs::remove_dir_all(self.run_dir(id));
        Ok(())
    }
}

/// This boot, as a number (a hash of the kernel's boot id).
pub fn boot() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    crate::proc::boot_id().hash(&mut h);
    h.finish()
}

/// An exclusive flock on a directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _held: File,
}

impl DirLock {
    pub fn take(dir: &Path) -> Result<DirLock, LifecycleError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(io("opening", dir))?;
        loop {
            // SAFETY: flock(2) on a descriptor `file` owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock { _held: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io("locking", dir)(e));
            }
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LifecycleError> {
    let bytes = std::fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|e| LifecycleError::Io {
        what: "reading",
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

/// Write `value` as `dir/name`, aside then renamed.
fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), LifecycleError> {
    let path = dir.join(name);
    let aside = dir.join(format!(".{name}.{}.new", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&aside)?;
        file.write_all(&bytes)?;
        std::fs::rename(&aside, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.map_err(io("writing", &path))
}

impl Record {
    /// How `ps` shows its status: "Up 5 minutes", "Exited (0) 3 seconds ago".
    pub fn shown_status(&self, status: Status, now: Time) -> String {
        let ago = |t: &Option<String>| {
            t.as_deref()
                .and_then(Time::parse_rfc3339)
                .map(|t| crate::time::human(now.since(t)))
                .unwrap_or_default()
        };
        match status {
            Status::Created => "Created".into(),
            Status::Running => format!("Up {}", ago(&self.started)),
            Status::Paused => format!("Up {} (Paused)", ago(&self.started)),
            Status::Exited if self.started.is_none() && self.exit_code.is_none() => {
                "Created".into()
            }
            Status::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code.unwrap_or(255),
                ago(&self.finished)
            ),
        }
    }
}

/// The container's id as a path component, checked (a record is data).
pub fn id_of(record: &Record) -> Result<ContainerId, LifecycleError> {
    record
        .id
        .parse()
        .map_err(|_| LifecycleError::NoSuch(record.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(id: &ContainerId, name: &str) -> Record {
        Record {
            id: id.to_string(),
            name: name.into(),
            created: Time::now().rfc3339(),
            image: "alpine".into(),
            lowers: vec![],
            remove_on_exit: false,
            tty: false,
            interactive: false,
            log: LogOptions::default(),
            cgroup: None,
            rootfs: PathBuf::from("/x"),
            started: None,
            finished: None,
            exit_code: None,
            oom_killed: false,
            error: None,
            owner: None,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        store.run = dir.path().join("run");
        std::fs::create_dir_all(&store.containers).unwrap();
        (dir, store)
    }

    #[test]
    fn found_by_id_name_or_unique_prefix() {
        let (_dir, store) = store();
        let spec = stage01_uts::spec::minimal(vec!["sh".into()], vec![]);
        let a = ContainerId::generate();
        let b = ContainerId::generate();
        store.register(&record(&a, "web"), &spec).unwrap();
        store.register(&record(&b, "db"), &spec).unwrap();
        assert_eq!(store.find(a.as_str()).unwrap().0, a);
        assert_eq!(store.find("db").unwrap().0, b);
        assert_eq!(store.find(&a.as_str()[..12]).unwrap().0, a);
        assert!(matches!(
            store.find("nosuch"),
            Err(LifecycleError::NoSuch(_))
        ));
        assert!(matches!(store.find(""), Err(LifecycleError::NoSuch(_))));
        assert_eq!(store.named("web"), Some(a.clone()));
        assert!(store.dir(&a).join(KEPT).exists(), "registered as kept");
        store.remove(&a).unwrap();
        assert!(!store.dir(&a).exists());
        assert_eq!(store.ids(), vec![b]);
    }

    #[test]
    fn an_ambiguous_prefix_is_refused() {
        let (_dir, store) = store();
        let spec = stage01_uts::spec::minimal(vec!["sh".into()], vec![]);
        // Ids that share their first digit, as many do.
        let mut ids: Vec<ContainerId> = (0..40).map(|_| ContainerId::generate()).collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let pair = ids
            .windows(2)
            .find(|w| w[0].as_str()[..1] == w[1].as_str()[..1])
            .unwrap()
            .to_vec();
        for (n, id) in pair.iter().enumerate() {
            store
                .register(&record(id, &format!("c{n}")), &spec)
                .unwrap();
        }
        let err = store.find(&pair[0].as_str()[..1]).unwrap_err();
        assert!(
            matches!(err, LifecycleError::Ambiguous { count: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn without_a_live_monitor_a_container_has_exited() {
        let (_dir, store) = store();
        let id = ContainerId::generate();
        let me = Process::current();
        let state = State {
            status: Status::Running,
            pid: me,
            monitor: me,
            boot: boot(),
            started: None,
        };
        store.write_state(&id, &state).unwrap();
        let mut record = record(&id, "web");
        // No lock held, no owner: its monitor died.
        assert_eq!(store.status(&id, &record), Status::Exited);
        // Its maker still lives: being made.
        record.owner = Some(me);
        assert_eq!(store.status(&id, &record), Status::Running);
    }
}
