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
