//! `--sysctl`: kernel settings of the container's own namespaces.
//!
//! Most of `/proc/sys` is the whole machine's; a few settings belong to a
//! namespace, and a container may set those of its own: `net.*` (its
//! network namespace; not with `--network host`, where they are the
//! host's) and the IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
//! `fs.mqueue.*`), as docker allows. They are written by the container's
//! process on itself before its mounts are made (stage 03 then mounts
//! `/proc/sys` read-only): `/proc/sys/net` shows the namespace of whoever
//! opens it, so the host's `/proc`, still there at that point, reaches the
//! container's own settings. Each is read back.

use std::str::FromStr;

use nix::sched::CloneFlags;
use stage01_uts::cli::InvalidValue;
use stage01_uts::spec::{LinuxNamespaceType, Spec};
use stage01_uts::{Context, Error, Phase, Primitive, explain};

/// The IPC namespace's settings (besides `fs.mqueue.*`).
const IPC: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `--sysctl KEY=VALUE`, its key checked against its grammar (it becomes a
/// path) and against the settings a namespace owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

/// Which namespace a setting belongs to, if any.
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else {
        None
    }
}

impl FromStr for Sysctl {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |why| InvalidValue::refuse("sysctl", text, why);
        let Some((key, value)) = text.split_once('=') else {
            return refuse("give KEY=VALUE, such as net.core.somaxconn=1024");
        };
        let words_ok = !key.is_empty()
            && key.split('.').all(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            });
        if !words_ok {
            return refuse("the key is dot-separated words of letters, digits, '_' and '-'");
        }
        if namespace_of(key).is_none() {
            return refuse(
                "only settings of the container's own namespaces may be set: net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*",
            );
        }
        if value.is_empty() || value.contains(['\n', '\0']) {
            return refuse("the value is one line, not empty");
        }
        Ok(Sysctl {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// Refused: a `net.*` setting without a network namespace of the
/// container's own.
#[derive(Debug, thiserror::Error)]
#[error(
    "--sysctl {0}: with --network host, net.* settings are the host's; give the container a network of its own"
)]
pub struct HostNetwork(pub String);

/// Write them into the spec (`linux.sysctl`).
pub fn write(spec: &mut Spec, sysctls: &[Sysctl]) -> Result<(), Error> {
    if sysctls.is_empty() {
        return Ok(());
    }
    for s in sysctls {
        let ns = namespace_of(&s.key).expect("checked when parsed");
        if !stage01_uts::spec::has_namespace(spec, ns) {
            return Err(crate::refused(HostNetwork(s.key.clone())));
        }
    }
    let linux = stage01_uts::spec::linux_mut(spec);
    let mut all = linux.sysctl().clone().unwrap_or_default();
    for s in sysctls {
        all.insert(s.key.clone(), s.value.clone());
    }
    linux.set_sysctl(Some(all));
    Ok(())
}

/// A setting that did not take.
#[derive(Debug, thiserror::Error)]
#[error("sysctl {key}: {why}")]
pub struct SysctlError {
    key: String,
    why: String,
}

/// The spec's sysctls, set by the container's process before its mounts.
// ANCHOR: primitive
pub struct Sysctls(pub Vec<(String, String)>);

impl Sysctls {
    /// From the spec (`linux.sysctl`), each key checked again: a spec may
    /// come from elsewhere, and the key becomes a path.
    pub fn of(spec: &Spec) -> Result<Option<Sysctls>, InvalidValue> {
        let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
            return Ok(None);
        };
        let mut all = Vec::new();
        for (key, value) in map {
            let s: Sysctl = format!("{key}={value}").parse()?;
            all.push((s.key, s.value));
        }
        all.sort();
        Ok(Some(Sysctls(all)))
    }
}

impl Primitive for Sysctls {
    fn name(&self) -> &'static str {
        "sysctl"
    }

    fn phase(&self) -> Phase {
        Phase::Rootfs
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        for (key, value) in &self.0 {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let fail = |why: String| {
                Error::primitive(SysctlError {
                    key: key.clone(),
                    why,
                })
            };
            std::fs::write(&path, value).map_err(|e| fail(format!("cannot write {path}: {e}")))?;
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            let words = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            if words(&now) != words(value) {
                return Err(fail(format!(
                    "{path} reads {:?} after writing {value:?}",
                    now.trim()
                )));
            }
        }
        let count = self.0.len();
        explain!(
            "write /proc/sys/... × {count}" => "ok",
            "settings of the container's own network and IPC namespaces, before /proc/sys is made read-only"
        );
        Ok(())
    }
}
// ANCHOR_END: primitive

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_settings_with_sound_keys() {
        for good in [
            "net.core.somaxconn=1024",
            "kernel.shmmax=1000",
            "fs.mqueue.msg_max=20",
            "net.ipv4.ip_local_port_range=1024 65000",
        ] {
            assert!(good.parse::<Sysctl>().is_ok(), "{good}");
        }
        for bad in [
            "kernel.panic=1",
            "vm.swappiness=10",
            "net..x=1",
            "net/../../x=1",
            "net.core.somaxconn",
            "net.core.somaxconn=",
            "kernel.hostname=x",
        ] {
            assert!(bad.parse::<Sysctl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn net_settings_need_a_network_namespace() {
        let mut spec = stage01_uts::spec::minimal(vec!["true".into()], vec![]);
        let s: Sysctl = "net.core.somaxconn=1024".parse().unwrap();
        assert!(write(&mut spec, std::slice::from_ref(&s)).is_err());
        stage01_uts::spec::add_namespace(&mut spec, LinuxNamespaceType::Network);
        write(&mut spec, &[s]).unwrap();
        let read = Sysctls::of(&spec).unwrap().unwrap();
        assert_eq!(
            read.0,
            [("net.core.somaxconn".to_owned(), "1024".to_owned())]
        );
    }
}
