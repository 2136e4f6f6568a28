//! docker's defaults, written into the spec by stage 03's generator: the
//! mounts every container gets, the kernel files it must not read or write,
//! and the environment it starts with. A spec from a bundle (final stage)
//! brings its own instead.

use std::path::Path;

use stage01_uts::exec::DEFAULT_PATH;
use stage01_uts::spec::{self, LinuxNamespaceType, Mount, Spec};

use crate::cli::Volume;
use crate::masked::{MASKED, READ_ONLY};

/// The mounts of every container, in the order they are made: what docker
/// (and `runc spec`) write into a spec.
// ANCHOR: mounts
pub const MOUNTS: [(&str, &str, &str, &[&str]); 6] = [
    // destination, type, source, options
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
];
// ANCHOR_END: mounts

/// docker's mounts, masked and read-only paths, and the volumes (as bind
/// mounts, after them), in a mount namespace of the container's own.
pub fn mounts(spec: &mut Spec, volumes: &[Volume]) {
    let mount = |destination: &str, typ: &str, source: &str, options: Vec<String>| -> Mount {
        serde_json::from_value(serde_json::json!({
            "destination": destination, "type": typ, "source": source, "options": options,
        }))
        .expect("a mount is valid")
    };
    let mut all: Vec<Mount> = MOUNTS
        .iter()
        .map(|(d, t, s, o)| mount(d, t, s, o.iter().map(|w| (*w).to_owned()).collect()))
        .collect();
    for v in volumes {
        let mut options = vec!["rbind".to_owned()];
        if v.read_only {
            options.push("ro".into());
        }
        all.push(mount(
            &v.target.display().to_string(),
            "bind",
            &v.source.display().to_string(),
            options,
        ));
    }
    spec.set_mounts(Some(all));
    let linux = spec::linux_mut(spec);
    linux.set_masked_paths(Some(MASKED.iter().map(|p| (*p).to_owned()).collect()));
    linux.set_readonly_paths(Some(READ_ONLY.iter().map(|p| (*p).to_owned()).collect()));
    spec::add_namespace(spec, LinuxNamespaceType::Mount);
}

/// The root filesystem, as the spec names it.
pub fn root(spec: &mut Spec, path: &Path) {
    let root = serde_json::from_value(serde_json::json!({"path": path, "readonly": false}))
        .expect("a root is valid");
    spec.set_root(Some(root));
}

/// The environment every container starts with, before `-e`: what docker
/// sets.
// ANCHOR: env
pub fn env(hostname: &str) -> [(&'static str, String); 4] {
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
    [
        ("PATH", DEFAULT_PATH.to_owned()),
        ("HOME", "/root".to_owned()),
        ("TERM", term),
        ("HOSTNAME", hostname.to_owned()),
    ]
}
// ANCHOR_END: env
