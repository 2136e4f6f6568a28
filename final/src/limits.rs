//! The container's process limits and root: `--ulimit` (rlimits),
//! `--oom-score-adj`, `--read-only` and `--tmpfs`, as docker has them, each
//! written into the spec (`process.rlimits`, `process.oomScoreAdj`,
//! `root.readonly`, `mounts`) and applied from it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sched::CloneFlags;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::Pid;
use stage01_uts::cli::InvalidValue;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, explain};

/// The rlimits `--ulimit` names, as docker (and the spec, upper-cased
/// with `RLIMIT_`) names them.
const RLIMITS: [(&str, Resource); 15] = [
    ("as", Resource::RLIMIT_AS),
    ("core", Resource::RLIMIT_CORE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("locks", Resource::RLIMIT_LOCKS),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("rss", Resource::RLIMIT_RSS),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("rttime", Resource::RLIMIT_RTTIME),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
];

fn resource(name: &str) -> Option<Resource> {
    let name = name.to_ascii_lowercase();
    let name = name.strip_prefix("rlimit_").unwrap_or(&name);
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// `--ulimit NAME=SOFT[:HARD]` (a number, or -1 / unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

impl FromStr for Ulimit {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |why| InvalidValue::refuse("ulimit", text, why);
        let Some((name, values)) = text.split_once('=') else {
            return refuse("give NAME=SOFT[:HARD], such as nofile=1024:2048");
        };
        let Some(&(name, _)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            return refuse(
                "the name is one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending",
            );
        };
        let number = |v: &str| match v {
            "-1" | "unlimited" => Some(u64::MAX),
            _ => v.parse::<u64>().ok(),
        };
        let (soft, hard) = values.split_once(':').unwrap_or((values, values));
        let (Some(soft), Some(hard)) = (number(soft), number(hard)) else {
            return refuse("the limits are numbers, or -1 for unlimited");
        };
        if soft > hard {
            return refuse("the soft limit cannot be above the hard one");
        }
        Ok(Ulimit { name, soft, hard })
    }
}

/// `--tmpfs PATH[:OPTIONS]`: a tmpfs at PATH, `nosuid,nodev,noexec` unless
/// the options say otherwise, as docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub path: PathBuf,
    pub options: Vec<String>,
}

impl FromStr for Tmpfs {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |why| InvalidValue::refuse("tmpfs", text, why);
        let (path, options) = text.split_once(':').unwrap_or((text, ""));
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
            return refuse("the path inside is absolute, without '..', such as /run");
        }
        if path == Path::new("/") || stage03_mount::cli::covers_kernel_filesystem(&path) {
            return refuse(
                "the runtime mounts / and the kernel's file systems itself; choose another path",
            );
        }
        let mut all: Vec<String> = ["nosuid", "nodev", "noexec"].map(str::to_owned).to_vec();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            let ok = match key {
                "size" | "nr_inodes" | "nr_blocks" => {
                    !value.is_empty()
                        && value
                            .trim_end_matches(['k', 'm', 'g', '%'])
                            .parse::<u64>()
                            .is_ok()
                }
                "mode" => u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777),
                "uid" | "gid" => value.parse::<u32>().is_ok(),
                "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev" | "ro" | "rw" => {
                    value.is_empty()
                }
                _ => false,
            };
            if !ok {
                return refuse(
                    "the options are size=, nr_inodes=, mode= (octal), uid=, gid=, ro, rw, exec, suid, dev and their no- forms",
                );
            }
            // A later word wins: exec undoes the default noexec.
            let opposite = match option {
                "exec" => Some("noexec"),
                "suid" => Some("nosuid"),
                "dev" => Some("nodev"),
                _ => None,
            };
            if let Some(opposite) = opposite {
                all.retain(|o| o != opposite);
            }
            all.push(option.to_owned());
        }
        Ok(Tmpfs { path, options: all })
    }
}

/// Write them into the spec.
// ANCHOR: write
pub fn write(
    spec: &mut Spec,
    ulimits: &[Ulimit],
    oom_score_adj: Option<i32>,
    read_only: bool,
    tmpfs: &[Tmpfs],
) {
    let process = stage01_uts::spec::process_mut(spec);
    if !ulimits.is_empty() {
        let value: Vec<serde_json::Value> = ulimits
            .iter()
            .map(|u| {
                serde_json::json!({
                    "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                    "soft": u.soft, "hard": u.hard,
                })
            })
            .collect();
        let rlimits =
            serde_json::from_value(serde_json::Value::Array(value)).expect("rlimits are valid");
        process.set_rlimits(Some(rlimits));
    }
    if let Some(adj) = oom_score_adj {
        process.set_oom_score_adj(Some(adj));
    }
    if read_only && let Some(root) = spec.root_mut() {
        root.set_readonly(Some(true));
    }
    if !tmpfs.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for t in tmpfs {
            mounts.retain(|m| m.destination() != &t.path);
            let mount = serde_json::from_value(serde_json::json!({
                "destination": t.path, "type": "tmpfs", "source": "tmpfs",
                "options": t.options,
            }))
            .expect("a mount is valid");
            mounts.push(mount);
        }
        spec.set_mounts(Some(mounts));
    }
}
// ANCHOR_END: write

/// A limit that did not take.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitError(String);

/// The spec's rlimits, set in the container's process (and read back),
/// before anything of the container runs.
// ANCHOR: rlimits
pub struct Rlimits(pub Vec<(Resource, String, u64, u64)>);

impl Rlimits {
    /// From the spec: a type the kernel (or this runtime) does not know is
    /// an error, not a limit silently left out.
    pub fn of(spec: &Spec) -> Result<Option<Rlimits>, LimitError> {
        let Some(list) = spec.process().as_ref().and_then(|p| p.rlimits().clone()) else {
            return Ok(None);
        };
        let value = serde_json::to_value(&list).unwrap_or_default();
        let mut all = Vec::new();
        for r in value.as_array().into_iter().flatten() {
            let name = r["type"].as_str().unwrap_or_default().to_owned();
            let resource =
                resource(&name).ok_or_else(|| LimitError(format!("unknown rlimit {name:?}")))?;
            let (soft, hard) = (
                r["soft"].as_u64().unwrap_or(0),
                r["hard"].as_u64().unwrap_or(0),
            );
            all.push((resource, name, soft, hard));
        }
        Ok(Some(Rlimits(all)))
    }
}

impl Primitive for Rlimits {
    fn name(&self) -> &'static str {
        "rlimits"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        for (resource, name, soft, hard) in &self.0 {
            setrlimit(*resource, *soft, *hard).map_err(|errno| {
                let why = if errno == nix::errno::Errno::EPERM {
                    "a hard limit above the runtime's own needs CAP_SYS_RESOURCE (ulimit -H shows the runtime's)"
                } else {
                    "setting the container's limits"
                };
                Error::syscall(format!("setrlimit({name}, {soft}, {hard})"), why, errno)
            })?;
            if getrlimit(*resource).ok() != Some((*soft, *hard)) {
                return Err(Error::primitive(LimitError(format!(
                    "{name} did not take: the container does not start without it"
                ))));
            }
        }
        let count = self.0.len();
        explain!(
            "setrlimit(...) × {count}" => "ok",
            "limits the container's processes inherit, and cannot raise past the hard ones"
        );
        Ok(())
    }
}
// ANCHOR_END: rlimits

/// `process.oomScoreAdj`: written for the child by the runtime, while it
/// waits (`/proc/PID/oom_score_adj`), and read back.
pub struct OomScoreAdj(pub i32);

impl Primitive for OomScoreAdj {
    fn name(&self) -> &'static str {
        "oom_score_adj"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        let path = format!("/proc/{child}/oom_score_adj");
        let value = self.0;
        std::fs::write(&path, value.to_string())
            .map_err(|e| {
                Error::primitive(LimitError(format!(
                    "cannot write {value} to {path}: {e} (below the current value needs CAP_SYS_RESOURCE)"
                )))
            })?;
        let now = std::fs::read_to_string(&path).unwrap_or_default();
        if now.trim() != value.to_string() {
            return Err(Error::primitive(LimitError(format!(
                "{path} reads {} after writing {value}",
                now.trim()
            ))));
        }
        explain!(
            "write {path} {value}" => "ok",
            "how readily the OOM killer picks the container's processes"
        );
        Ok(())
    }
}

/// `root.readonly`: the root remounted read-only once it is the root
/// (after stage 03's pivot_root), keeping the flags it had: in a user
/// namespace the kernel refuses to drop a locked one (nosuid, nodev).
// ANCHOR: readonly
pub struct ReadOnlyRoot;

impl Primitive for ReadOnlyRoot {
    fn name(&self) -> &'static str {
        "read-only root"
    }

    fn phase(&self) -> Phase {
        Phase::Mounts
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        use nix::mount::MsFlags;
        use nix::sys::statvfs::{FsFlags, statvfs};
        let fail =
            |call: &str, errno| Error::syscall(call.to_owned(), "making the root read-only", errno);
        let now = statvfs("/").map_err(|e| fail("statvfs(\"/\")", e))?.flags();
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        for (had, keep) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if now.contains(had) {
                flags |= keep;
            }
        }
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| fail("mount(\"/\", MS_REMOUNT|MS_BIND|MS_RDONLY)", e))?;
        let after = statvfs("/").map_err(|e| fail("statvfs(\"/\")", e))?.flags();
        if !after.contains(FsFlags::ST_RDONLY) {
            return Err(Error::primitive(LimitError(
                "the root is still writable after its remount".into(),
            )));
        }
        explain!(
            "mount(\"/\", MS_REMOUNT|MS_BIND|MS_RDONLY)" => "ok",
            "the root read-only; what is mounted on it (volumes, --tmpfs, /etc/hosts) keeps its own"
        );
        Ok(())
    }
}
// ANCHOR_END: readonly

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_writes_them() {
        let u: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!((u.name, u.soft, u.hard), ("nofile", 1024, 2048));
        let u: Ulimit = "core=0".parse().unwrap();
        assert_eq!((u.soft, u.hard), (0, 0));
        let u: Ulimit = "memlock=-1:-1".parse().unwrap();
        assert_eq!(u.hard, u64::MAX);
        for bad in ["nofile", "bogus=1", "nofile=x", "nofile=2048:1024", "=1"] {
            assert!(bad.parse::<Ulimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs_paths_and_options_are_checked() {
        let t: Tmpfs = "/run:size=64m,mode=1777".parse().unwrap();
        assert_eq!(t.path, Path::new("/run"));
        assert_eq!(
            t.options,
            ["nosuid", "nodev", "noexec", "size=64m", "mode=1777"]
        );
        let t: Tmpfs = "/tmp:exec".parse().unwrap();
        assert_eq!(t.options, ["nosuid", "nodev", "exec"]);
        for bad in [
            "run",
            "/",
            "/proc/x",
            "/a/../b",
            "/run:size=",
            "/run:mode=999",
            "/run:foo",
        ] {
            assert!(bad.parse::<Tmpfs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_spec_carries_them() {
        let mut spec = stage01_uts::spec::minimal(vec!["true".into()], vec![]);
        let u: Ulimit = "nofile=100:200".parse().unwrap();
        write(
            &mut spec,
            &[u],
            Some(500),
            false,
            &["/run".parse().unwrap()],
        );
        let limits = Rlimits::of(&spec).unwrap().unwrap();
        assert_eq!(limits.0[0].1, "RLIMIT_NOFILE");
        assert_eq!((limits.0[0].2, limits.0[0].3), (100, 200));
        assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(500));
        assert!(
            spec.mounts()
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.destination() == Path::new("/run"))
        );
    }
}
