//! The probe: what a process inside a container sees, as data.
//!
//! The test suites run the probe binary inside containers and read its JSON
//! report instead of parsing the output of shell tools, which differ between
//! busybox, Alpine and the host. The report type lives here, in the library,
//! so the suites deserialize exactly what the binary serializes.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// Everything the probe reports about the process it runs as.
// ANCHOR: report
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// getpid(): 1 when the probe is PID 1 of its namespace.
    pub pid: i32,
    /// getppid(): 0 when the parent is outside the PID namespace.
    pub ppid: i32,
    /// gethostname().
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Namespace name → inode number, from /proc/self/ns/* (e.g. "uts").
    pub namespaces: BTreeMap<String, u64>,
    /// /proc/self/mountinfo, parsed.
    pub mounts: Vec<Mount>,
    /// /proc/self/cgroup, one entry per line.
    pub cgroup: Vec<String>,
    /// Capability sets from /proc/self/status, as the hex masks shown there.
    pub capabilities: BTreeMap<String, String>,
    /// Resource limits (soft, hard); `None` stands for unlimited.
    pub limits: BTreeMap<String, (Option<u64>, Option<u64>)>,
    /// The working directory.
    pub cwd: String,
    /// The probe's own arguments.
    pub argv: Vec<String>,
    /// The environment.
    pub env: BTreeMap<String, String>,
    /// The pids in /proc that this process can see.
    pub visible_pids: Vec<i32>,
    /// Whether stdin, stdout and stderr are terminals.
    pub isatty: [bool; 3],
    /// /proc/self/uid_map and gid_map, as the kernel prints them.
    pub uid_map: String,
    pub gid_map: String,
}
// ANCHOR_END: report

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub mount_point: String,
    pub root: String,
    pub fs_type: String,
    pub source: String,
    /// Per-mount options (rw/ro, nosuid, …).
    pub options: String,
    /// Optional fields: propagation (`shared:N`, `master:N`).
    pub propagation: String,
}

impl Report {
    /// Look at the calling process.
    pub fn collect() -> Report {
        // SAFETY: these calls take no arguments and cannot fail.
        let (pid, ppid, uid, gid, euid, egid) = unsafe {
            (
                libc::getpid(),
                libc::getppid(),
                libc::getuid(),
                libc::getgid(),
                libc::geteuid(),
                libc::getegid(),
            )
        };
        Report {
            pid,
            ppid,
            hostname: hostname(),
            uid,
            gid,
            euid,
            egid,
            groups: groups(),
            namespaces: namespaces("/proc/self/ns"),
            mounts: fs::read_to_string("/proc/self/mountinfo")
                .map(|text| parse_mountinfo(&text))
                .unwrap_or_default(),
            cgroup: fs::read_to_string("/proc/self/cgroup")
                .map(|t| t.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            capabilities: fs::read_to_string("/proc/self/status")
                .map(|t| capabilities(&t))
                .unwrap_or_default(),
            limits: limits(),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            argv: std::env::args().collect(),
            env: std::env::vars().collect(),
            visible_pids: visible_pids(),
            // SAFETY: isatty only inspects the descriptor.
            isatty: [0, 1, 2].map(|fd| unsafe { libc::isatty(fd) } == 1),
            uid_map: fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
            gid_map: fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it for names up to HOST_NAME_MAX.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn groups() -> Vec<u32> {
    let mut list = vec![0 as libc::gid_t; 1024];
    // SAFETY: the buffer holds `list.len()` gids.
    let n = unsafe { libc::getgroups(list.len() as libc::c_int, list.as_mut_ptr()) };
    list.truncate(n.max(0) as usize);
    list
}

/// Namespace inode numbers from a /proc/PID/ns directory.
pub fn namespaces(dir: &str) -> BTreeMap<String, u64> {
    let mut map = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return map;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(inode) = fs::read_link(entry.path())
            .ok()
            .and_then(|t| ns_inode(&t.to_string_lossy()))
        {
            map.insert(name, inode);
        }
    }
    map
}

/// `uts:[4026531838]` → 4026531838.
pub fn ns_inode(link: &str) -> Option<u64> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// Parse /proc/PID/mountinfo (see proc(5)).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let rest: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape(fields.get(3)?),
                mount_point: unescape(fields.get(4)?),
                options: fields.get(5)?.to_string(),
                propagation: fields.get(6..).map(|f| f.join(" ")).unwrap_or_default(),
                fs_type: rest.first()?.to_string(),
                source: unescape(rest.get(1)?),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn capabilities(status: &str) -> BTreeMap<String, String> {
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(":\t")?;
            let set = match key {
                "CapInh" => "inheritable",
                "CapPrm" => "permitted",
                "CapEff" => "effective",
                "CapBnd" => "bounding",
                "CapAmb" => "ambient",
                _ => return None,
            };
            Some((set.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn limits() -> BTreeMap<String, (Option<u64>, Option<u64>)> {
    let resources = [
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
        ("core", libc::RLIMIT_CORE),
        ("memlock", libc::RLIMIT_MEMLOCK),
        ("stack", libc::RLIMIT_STACK),
    ];
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    resources
        .into_iter()
        .filter_map(|(name, resource)| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `limit` is a valid rlimit to fill in.
            let rc = unsafe { libc::getrlimit(resource, &mut limit) };
            (rc == 0).then(|| {
                (
                    name.to_owned(),
                    (finite(limit.rlim_cur), finite(limit.rlim_max)),
                )
            })
        })
        .collect()
}

fn visible_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Zombies among the processes in the caller's own PID namespace, read from
/// /proc (which, before stage 03 mounts a fresh one, is the host's: hence the
/// namespace check).
pub fn zombies_in_my_pid_namespace() -> Vec<i32> {
    let mine = fs::read_link("/proc/self/ns/pid").ok();
    visible_pids()
        .into_iter()
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == mine)
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(") ")
                        .map(|(_, rest)| rest.starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The keys of the System V IPC objects of one kind (`msg`, `shm`, `sem`)
/// in the caller's IPC namespace, from /proc/sysvipc.
pub fn sysv_keys(kind: &str) -> Vec<i64> {
    fs::read_to_string(format!("/proc/sysvipc/{kind}"))
        .map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    22 1 0:21 / /proc rw,nosuid - proc proc rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].mount_point, "/mnt two");
        assert_eq!(mounts[0].root, "/mnt1");
        assert_eq!(mounts[0].propagation, "master:1");
        assert_eq!(mounts[0].fs_type, "ext3");
        assert_eq!(mounts[1].propagation, "");
        assert_eq!(mounts[1].fs_type, "proc");
    }

    #[test]
    fn reads_namespace_links() {
        assert_eq!(ns_inode("uts:[4026531838]"), Some(4026531838));
        assert_eq!(ns_inode("garbage"), None);
    }

    #[test]
    fn reports_on_itself() {
        let report = Report::collect();
        assert_eq!(report.pid as u32, std::process::id());
        assert!(report.namespaces.contains_key("uts"));
        assert!(report.mounts.iter().any(|m| m.mount_point == "/"));
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }
}
