//! The container as data: an OCI runtime spec, the `config.json` that runc,
//! crun, youki, podman and containerd share.
//!
//! Each stage's command line is a spec *generator*: its flags (and, from
//! stage 07, an image's config) become fields of a [`Spec`], the way `runc
//! spec`, podman and containerd build one. The primitives are then built
//! from the spec, each reading only its part of it (`hostname`,
//! `linux.namespaces`, `mounts`, `process.user`, `linux.resources`, ...).
//! So a container is the same thing however it was asked for: by flags, or
//! (final stage) by a bundle's `config.json`.
//!
//! Stage 01's part: `process.args`, `process.env` (the runtime's own: stage
//! 01 shares the host's filesystem), `hostname` and the `uts` namespace.

use std::collections::HashMap;

pub use oci_spec::runtime::{
    LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Mount, Process as ProcessSpec, Spec, User,
};

/// The OCI runtime spec version these specs follow.
pub const OCI_VERSION: &str = "1.2.0";

/// A spec that runs `args` with `env` as root in `/`, and nothing more: no
/// root filesystem, no mounts, no namespaces. Each stage adds its part.
// ANCHOR: minimal
pub fn minimal(args: Vec<String>, env: Vec<String>) -> Spec {
    let skeleton = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "args": args,
            "env": env,
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
        },
        "linux": {"namespaces": []},
    });
    serde_json::from_value(skeleton).expect("a skeleton spec is valid")
}
// ANCHOR_END: minimal

/// The spec's process (made if it has none).
pub fn process_mut(spec: &mut Spec) -> &mut ProcessSpec {
    spec.process_mut().get_or_insert_with(|| {
        serde_json::from_value(serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}}))
            .expect("a skeleton process is valid")
    })
}

/// The spec's `linux` section (made if it has none).
pub fn linux_mut(spec: &mut Spec) -> &mut oci_spec::runtime::Linux {
    spec.linux_mut().get_or_insert_with(|| {
        serde_json::from_value(serde_json::json!({})).expect("an empty linux section is valid")
    })
}

/// Ask for a new namespace of `typ` (once).
pub fn add_namespace(spec: &mut Spec, typ: LinuxNamespaceType) {
    if has_namespace(spec, typ) {
        return;
    }
    let namespace = oci_spec::runtime::LinuxNamespaceBuilder::default()
        .typ(typ)
        .build()
        .expect("a namespace of a known type is valid");
    linux_mut(spec)
        .namespaces_mut()
        .get_or_insert_with(Vec::new)
        .push(namespace);
}

/// Whether the spec asks for a namespace of `typ`.
pub fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec).any(|n| n.typ() == typ)
}

fn namespaces(spec: &Spec) -> impl Iterator<Item = &LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
}

/// The spec's annotation `key`, if set: where the runtime keeps what the
/// spec has no field for (`run.myruntime.init`).
pub fn annotation<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    spec.annotations().as_ref()?.get(key).map(String::as_str)
}

pub fn set_annotation(spec: &mut Spec, key: &str, value: &str) {
    spec.annotations_mut()
        .get_or_insert_with(HashMap::new)
        .insert(key.to_owned(), value.to_owned());
}

/// The process's environment, as `KEY=VALUE` entries.
pub fn env(spec: &Spec) -> &[String] {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().as_deref())
        .unwrap_or_default()
}

/// Set `KEY=VALUE` in the process's environment, replacing an earlier value
/// of KEY in place.
pub fn set_env(spec: &mut Spec, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    let env = process_mut(spec).env_mut().get_or_insert_with(Vec::new);
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Remove KEY from the process's environment.
pub fn unset_env(spec: &mut Spec, key: &str) {
    if let Some(env) = process_mut(spec).env_mut() {
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
    }
}

/// The value of KEY in the process's environment.
pub fn get_env<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    env(spec)
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

/// The spec as `config.json` holds it (pretty, for people).
pub fn to_json(spec: &Spec) -> String {
    serde_json::to_string_pretty(spec).expect("a spec serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_spec_is_the_process_alone() {
        let spec = minimal(vec!["true".into()], vec!["A=1".into()]);
        let json: serde_json::Value = serde_json::from_str(&to_json(&spec)).unwrap();
        assert_eq!(json["process"]["args"], serde_json::json!(["true"]));
        assert_eq!(json["linux"]["namespaces"], serde_json::json!([]));
        assert!(json.get("mounts").is_none() && json.get("root").is_none());
        assert!(json["process"].get("capabilities").is_none());
    }

    #[test]
    fn namespaces_env_and_annotations() {
        let mut spec = minimal(vec!["x".into()], vec!["A=1".into(), "B=2".into()]);
        add_namespace(&mut spec, LinuxNamespaceType::Uts);
        add_namespace(&mut spec, LinuxNamespaceType::Uts);
        add_namespace(&mut spec, LinuxNamespaceType::Mount);
        assert!(to_json(&spec).contains(r#""type": "mount""#));
        assert!(has_namespace(&spec, LinuxNamespaceType::Uts));
        assert!(!has_namespace(&spec, LinuxNamespaceType::Pid));
        assert_eq!(namespaces(&spec).count(), 2);
        set_env(&mut spec, "A", "3");
        set_env(&mut spec, "C", "4");
        unset_env(&mut spec, "B");
        assert_eq!(env(&spec), ["A=3", "C=4"]);
        assert_eq!(get_env(&spec, "C"), Some("4"));
        set_annotation(&mut spec, "run.myruntime.init", "true");
        assert_eq!(annotation(&spec, "run.myruntime.init"), Some("true"));
    }
}
