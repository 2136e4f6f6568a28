//! What the host sees: its hostname, its namespaces, its processes.

use std::collections::BTreeMap;
use std::fs;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The host's hostname, as the test process sees it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}

/// The test process's own namespaces (those of the host).
pub fn namespaces() -> BTreeMap<String, u64> {
    probe::namespaces("/proc/self/ns")
}

/// The direct children of `pid`, from /proc.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// `pid` and all its descendants, parents first.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let kids = children(all[i]);
        all.extend(kids);
        i += 1;
    }
    all
}

/// SIGKILL `pid` and all its descendants.
pub fn kill_tree(pid: i32) {
    // Stop the whole tree first so that nothing forks while we walk it.
    let all = tree(pid);
    for &p in &all {
        let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
    }
    for &p in tree(pid).iter().chain(&all) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// Host pids of live processes whose command line contains `tag`.
pub fn processes_with(tag: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(|arg| arg == tag.as_bytes()))
                .unwrap_or(false)
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

/// A tag unique to one test run, to find its processes on the host.
pub fn unique_tag(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host's mount table (the test process's mount namespace).
pub fn mounts() -> Vec<probe::Mount> {
    probe::parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Host mount points at or below `path`: a test's own files must never
/// appear there, or a container's mount leaked to the host.
pub fn mounts_under(path: &std::path::Path) -> Vec<String> {
    let path = path.to_string_lossy();
    mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p == &*path || p.starts_with(&format!("{path}/")))
        .collect()
}

/// A tmpfs mounted on the host for the length of a test, and unmounted when
/// dropped (lazily, so that a failing test cannot leave it busy).
#[derive(Debug)]
pub struct HostTmpfs(std::path::PathBuf);

impl HostTmpfs {
    /// A tmpfs of 1 MiB.
    pub fn mount(path: &std::path::Path) -> HostTmpfs {
        HostTmpfs::with_size(path, "1m")
    }

    /// A tmpfs of `size` (`2m`, `512k`): a disk that fills up.
    pub fn with_size(path: &std::path::Path, size: &str) -> HostTmpfs {
        fs::create_dir_all(path).expect("make the tmpfs mount point");
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount a tmpfs on the host");
        HostTmpfs(path.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A user made for the rootless tests, and deleted when the test process
/// exits.
#[derive(Debug)]
pub struct TempUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// `nobody`, an unprivileged user every system has (no subordinate ids, no
/// home): for rootless tests that need no user of their own.
pub fn nobody() -> TempUser {
    TempUser {
        name: "nobody".into(),
        uid: 65534,
        gid: 65534,
    }
}

/// A user with subordinate ids (`useradd` gives a normal user a range in
/// /etc/subuid and /etc/subgid).
pub fn rootless_user() -> &'static TempUser {
    static USER: std::sync::OnceLock<TempUser> = std::sync::OnceLock::new();
    USER.get_or_init(|| TempUser::create("u", &[]))
}

/// A system user, which gets no subordinate ids: only its own id can be
/// mapped.
pub fn system_user() -> &'static TempUser {
    static USER: std::sync::OnceLock<TempUser> = std::sync::OnceLock::new();
    USER.get_or_init(|| TempUser::create("s", &["--system"]))
}

static USERS_MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
/// The subordinate id files that did not exist before the first useradd
/// (which creates them): removed again at exit if left empty.
static SUBID_FILES_ABSENT: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

impl TempUser {
    fn create(kind: &str, extra: &[&str]) -> TempUser {
        remove_stale_users();
        let name = format!("mrt{kind}{}", std::process::id());
        // useradd gives a new user subordinate ids only when the files exist.
        let _files = subid_files();
        let status = std::process::Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", "--user-group"])
            .args(extra)
            .arg(&name)
            .status()
            .expect("useradd is missing: run scripts/setup-test-env.sh");
        assert!(status.success(), "useradd {name} failed");
        USERS_MADE.lock().unwrap().push(name.clone());
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .expect("the user just made");
        TempUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// Its range in /etc/subuid, if it has one.
    pub fn subordinate_uids(&self) -> Option<(u32, u32)> {
        subordinate(&self.name, "/etc/subuid")
    }
}

fn subordinate(name: &str, file: &str) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// Lock the subordinate id files for this process, creating them if they do
/// not exist (and removing them again at exit, if they are then empty).
fn subid_files() -> std::sync::MutexGuard<'static, ()> {
    let lock = SUBID_FILES.lock().unwrap_or_else(|p| p.into_inner());
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    CLEANUP.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(delete_users_at_exit) };
    });
    let mut absent = SUBID_FILES_ABSENT.lock().unwrap_or_else(|p| p.into_inner());
    for file in ["/etc/subuid", "/etc/subgid"] {
        if !std::path::Path::new(file).exists() {
            fs::write(file, "").expect("create the subordinate id file");
            absent.push(file);
        }
    }
    lock
}

extern "C" fn delete_users_at_exit() {
    if let Ok(made) = USERS_MADE.lock() {
        for name in made.iter() {
            // The runtime directory the runtime made for the user (rootless:
            // /tmp/myruntime-UID without an XDG_RUNTIME_DIR) goes with it.
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                let _ = fs::remove_dir_all(format!("/tmp/myruntime-{}", user.uid));
            }
            let _ = std::process::Command::new("userdel").arg(name).status();
        }
    }
    if let Ok(absent) = SUBID_FILES_ABSENT.lock() {
        for file in absent.iter() {
            if fs::read_to_string(file).is_ok_and(|t| t.trim().is_empty()) {
                let _ = fs::remove_file(file);
            }
        }
    }
}

/// Users an earlier, killed test process made (`mrt[us]PID` with PID gone).
fn remove_stale_users() {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let name = line.split(':').next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("mrtu")
            .or_else(|| name.strip_prefix("mrts"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::process::Command::new("userdel").arg(name).status();
        }
    }
}

/// Subordinate ids for root in /etc/subuid and /etc/subgid, for the length
/// of a test; the line is removed again when dropped.
#[derive(Debug)]
pub struct RootSubIds {
    pub start: u32,
    line: String,
}

static SUBID_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl RootSubIds {
    pub fn ensure() -> RootSubIds {
        let _lock = subid_files();
        let start = 400_000;
        let line = format!("root:{start}:65536");
        for file in ["/etc/subuid", "/etc/subgid"] {
            let mut text = fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            fs::write(file, text).expect("write the subordinate id file");
        }
        RootSubIds { start, line }
    }
}

impl Drop for RootSubIds {
    fn drop(&mut self) {
        let _lock = SUBID_FILES.lock().unwrap_or_else(|p| p.into_inner());
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = fs::read_to_string(file) {
                let kept: String = text
                    .lines()
                    .filter(|l| *l != self.line)
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = fs::write(file, kept);
            }
        }
    }
}

/// Owner uid and gid of a host path.
pub fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// Whether this host's cgroups are v2 (unified); otherwise the limits live
/// in v1 hierarchies (legacy or hybrid).
pub fn cgroup_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The host directory of cgroup `path` (as /proc/PID/cgroup shows it) for
/// `controller`: /sys/fs/cgroup/PATH on v2, /sys/fs/cgroup/CONTROLLER/PATH on v1.
pub fn cgroup_dir(controller: &str, path: &str) -> std::path::PathBuf {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let path = path.trim_start_matches('/');
    if cgroup_v2() {
        root.join(path)
    } else {
        root.join(controller).join(path)
    }
}

/// The cgroup of process `pid` for `controller` (v1), or its one cgroup (v2),
/// from /proc/PID/cgroup.
pub fn cgroup_of(pid: i32, controller: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let wanted = if cgroup_v2() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        wanted.then(|| path.to_owned())
    })
}

/// A cgroup parent of a test's own (`--cgroup-parent`), so that the test can
/// see exactly which cgroups its containers made; removed when dropped.
#[derive(Debug)]
pub struct CgroupParent(pub String);

impl CgroupParent {
    pub fn new() -> CgroupParent {
        CgroupParent(unique_tag("mrt-test"))
    }

    /// The cgroups below it, for `controller`.
    pub fn children(&self, controller: &str) -> Vec<String> {
        fs::read_dir(cgroup_dir(controller, &self.0))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for CgroupParent {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        remove_cgroup_everywhere(&self.0);
    }
}

/// rmdir the cgroup `path` (and, first, what is left below it) in every
/// hierarchy.
pub fn remove_cgroup_everywhere(path: &str) {
    remove_cgroup(path, true);
}

fn remove_cgroup(path: &str, with_children: bool) {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(path)];
    if let Ok(hierarchies) = fs::read_dir(root) {
        dirs.extend(hierarchies.flatten().map(|h| h.path().join(path)));
    }
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        if !with_children {
            let _ = fs::remove_dir(dir);
            continue;
        }
        if let Ok(children) = fs::read_dir(dir) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = fs::remove_dir(child.path());
            }
        }
        let _ = fs::remove_dir(dir);
    }
}

/// What a runtime leaves for all its containers, like docker's `docker`
/// cgroup: the default cgroup parent and the runtime directory. Removed when
/// the test process exits, if no container is using them.
///
/// It also puts the host's hostname back if a run changed it: a runtime
/// under test that calls sethostname(2) without a UTS namespace of its own
/// (or a "runtime" that only executes COMMAND, in `make test-can-fail`)
/// renames the host, and a suite must leave the machine as it found it.
pub fn remove_runtime_leftovers_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    extern "C" fn cleanup() {
        if let Some(before) = HOSTNAME.get()
            && hostname() != *before
        {
            eprintln!(
                "the host's hostname was changed to {:?} by a run of the runtime under test; \
                 it is {before:?} again",
                hostname()
            );
            let _ = nix::unistd::sethostname(before);
        }
        // Only if empty: a container may still be using it.
        remove_cgroup("myruntime", false);
        // Root's runtime directory, and nobody's (the unprivileged tests
        // run as nobody): each only if nothing is left in it.
        for dir in ["/run/myruntime", "/tmp/myruntime-65534"] {
            for sub in ["cgroups", "containers"] {
                let _ = fs::remove_dir(format!("{dir}/{sub}"));
            }
            let _ = fs::remove_dir(dir);
        }
    }
    ONCE.call_once(|| {
        let _ = HOSTNAME.set(hostname());
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(cleanup) };
    });
}

/// A loop device over a small file, for the I/O limit tests (a block device
/// of the test's own, on any host); detached when dropped.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: std::path::PathBuf,
    backing: tempfile::NamedTempFile,
}

impl LoopDevice {
    pub fn create() -> LoopDevice {
        let backing = tempfile::NamedTempFile::new().expect("a backing file");
        backing
            .as_file()
            .set_len(8 << 20)
            .expect("size the backing file");
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing.path())
            .output()
            .expect("losetup is missing (apt-get install mount)");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().into();
        LoopDevice { path, backing }
    }

    /// MAJOR:MINOR.
    pub fn numbers(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let rdev = fs::metadata(&self.path)
            .expect("stat the loop device")
            .rdev();
        format!("{}:{}", libc::major(rdev), libc::minor(rdev))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.path)
            .status();
        let _ = &self.backing;
    }
}

/// A cgroup v2 subtree delegated to `uid`, as systemd delegates
/// user@UID.service: the directory and its cgroup.procs, cgroup.threads and
/// cgroup.subtree_control belong to the user, and processes start in a leaf
/// below it (`launch`), since a cgroup with processes cannot hand
/// controllers down. Removed when dropped.
#[derive(Debug)]
pub struct DelegatedCgroup {
    pub name: String,
}

impl DelegatedCgroup {
    pub fn new(uid: u32, gid: u32) -> DelegatedCgroup {
        let name = unique_tag("mrt-delegated");
        let root = std::path::Path::new("/sys/fs/cgroup");
        // The root hands its controllers down to its children.
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        for c in controllers.split_whitespace() {
            let _ = fs::write(root.join("cgroup.subtree_control"), format!("+{c}"));
        }
        let dir = root.join(&name);
        fs::create_dir_all(dir.join("launch")).expect("make the delegated cgroup");
        let chown = |p: &std::path::Path| {
            let _ = nix::unistd::chown(
                p,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        };
        for p in [dir.clone(), dir.join("launch")] {
            chown(&p);
            for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
                chown(&p.join(f));
            }
        }
        DelegatedCgroup { name }
    }

    /// Where a process must be written to start in the delegated subtree.
    pub fn launch_procs(&self) -> std::path::PathBuf {
        std::path::Path::new("/sys/fs/cgroup")
            .join(&self.name)
            .join("launch/cgroup.procs")
    }
}

impl Drop for DelegatedCgroup {
    fn drop(&mut self) {
        // Depth first: myruntime/<id>, myruntime, launch, then the subtree.
        let root = std::path::Path::new("/sys/fs/cgroup").join(&self.name);
        let mut dirs = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// The names of the entries of `dir`, sorted; none if it cannot be read.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
