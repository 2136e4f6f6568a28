//! Capabilities: what root inside the container may still do.
//!
//! Root's power is split into some forty capabilities (`CAP_SYS_ADMIN`:
//! mount and much else; `CAP_SYS_MODULE`: load kernel modules;
//! `CAP_SYS_TIME`: set the clock…). A process has five sets of them: the
//! **bounding** set caps what it can ever gain (through a setuid binary
//! too); **permitted** is what it holds; **effective** is what the kernel
//! checks; **inheritable** and **ambient** are what passes through
//! `execve`. The spec lists the five (`process.capabilities`), as runc
//! applies them; the docker-style command line writes docker's default set
//! there, with `--cap-add`, `--cap-drop` and `--privileged`.
//!
//! Two steps, because the switch to the container's user (stage 04's
//! `Credentials`) sits between them: **before** it, while the process is
//! still root with every capability, the bounding set is dropped to the
//! spec's and `PR_SET_KEEPCAPS` is set, so that a switch to a non-zero uid
//! keeps the permitted set; **after** it, the other four sets are set and
//! `PR_SET_KEEPCAPS` cleared. Each is read back: a set that did not take
//! stops the start, it never fails open.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use nix::sched::CloneFlags;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, explain};

/// docker's default set: what a container's root keeps unless told
/// otherwise (moby's `oci/caps/defaults.go`).
// ANCHOR: default
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
// ANCHOR_END: default

/// A capability name that is none.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown capability {0:?}: give a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL (capabilities(7) lists them)"
)]
pub struct UnknownCapability(pub String);

/// `NET_ADMIN`, `cap_net_admin`, `CAP_NET_ADMIN`: the capability. `ALL`
/// is not one (the caller handles it).
pub fn parse(name: &str) -> Result<Capability, UnknownCapability> {
    let upper = name.to_ascii_uppercase();
    let canonical = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    canonical
        .parse()
        .map_err(|_| UnknownCapability(name.to_owned()))
}

/// Every capability the runtime can give: known to the running kernel
/// (`/proc/sys/kernel/cap_last_cap`) and in its own bounding set (a host
/// may withhold some from root itself: this one lacks CAP_SYS_RESOURCE).
/// `ALL` and `--privileged` mean these.
pub fn supported() -> CapsHashSet {
    let last: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(40);
    let held = caps::read(None, CapSet::Bounding).unwrap_or_else(|_| caps::all());
    caps::all()
        .into_iter()
        .filter(|c| c.index() <= last && held.contains(c))
        .collect()
}

/// The set docker's command line gives: its default set, or every one
/// (`--privileged`, or `ALL` added), less what is dropped (`ALL` drops
/// every one), plus what is added. Adds win over drops, as docker's do.
// ANCHOR: compute
pub fn compute(
    default: &[Capability],
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<CapsHashSet, UnknownCapability> {
    let is_all = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("ALL"));
    let named = |names: &[String]| -> Result<CapsHashSet, UnknownCapability> {
        names
            .iter()
            .filter(|n| !n.eq_ignore_ascii_case("ALL"))
            .map(|n| parse(n))
            .collect()
    };
    let (added, dropped) = (named(add)?, named(drop)?);
    if privileged || is_all(add) {
        return Ok(supported());
    }
    let mut set: CapsHashSet = if is_all(drop) {
        HashSet::new()
    } else {
        default.iter().copied().collect()
    };
    set.retain(|c| !dropped.contains(c));
    set.extend(added);
    Ok(set)
}
// ANCHOR_END: compute

/// Write `set` into the spec as docker does: bounding, effective and
/// permitted; inheritable and ambient empty (so a non-root user in the
/// container holds none after `execve`, and a file capability cannot
/// bring one back through the inheritable set).
pub fn write(spec: &mut Spec, set: &CapsHashSet) {
    let mut names: Vec<String> = set.iter().map(ToString::to_string).collect();
    names.sort();
    let value = serde_json::json!({
        "bounding": names, "effective": names, "permitted": names,
        "inheritable": [], "ambient": [],
    });
    let capabilities = serde_json::from_value(value).expect("capability names are valid");
    stage01_uts::spec::process_mut(spec).set_capabilities(Some(capabilities));
}

/// The five sets a spec asks for, or None when it says nothing (runc then
/// leaves the process's as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Sets {
    /// From the spec. A name the kernel or this runtime does not know is
    /// an error: dropping it silently would grant more than asked.
    pub fn of(spec: &Spec) -> Result<Option<Sets>, UnknownCapability> {
        let Some(caps) = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
        else {
            return Ok(None);
        };
        let value = serde_json::to_value(&caps).unwrap_or_default();
        let set = |key: &str| -> Result<CapsHashSet, UnknownCapability> {
            value[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .map(parse)
                .collect()
        };
        Ok(Some(Sets {
            bounding: set("bounding")?,
            effective: set("effective")?,
            permitted: set("permitted")?,
            inheritable: set("inheritable")?,
            ambient: set("ambient")?,
        }))
    }
}

/// A capability step that did not take.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}: {why}; the container does not start with capabilities other than its spec's (ALL and --privileged mean those the runtime holds)"
)]
pub struct CapsError {
    what: String,
    why: String,
}

fn failed(what: impl Into<String>) -> impl FnOnce(caps::errors::CapsError) -> Error {
    let what = what.into();
    move |e| {
        Error::primitive(CapsError {
            what,
            why: e.to_string(),
        })
    }
}

fn check(set: &str, wanted: &CapsHashSet, now: CapsHashSet) -> Result<(), Error> {
    if &now == wanted {
        return Ok(());
    }
    let mut extra: Vec<String> = now.difference(wanted).map(ToString::to_string).collect();
    extra.sort();
    Err(Error::primitive(CapsError {
        what: format!("the {set} set"),
        why: format!(
            "read back as {} capabilities, with {extra:?} too many",
            now.len()
        ),
    }))
}

/// Step one, before the switch to the container's user: the bounding set,
/// and `PR_SET_KEEPCAPS`.
// ANCHOR: bounding
pub struct Bounding(pub Sets);

impl Primitive for Bounding {
    fn name(&self) -> &'static str {
        "capabilities (bounding)"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let wanted = &self.0.bounding;
        for cap in caps::read(None, CapSet::Bounding).map_err(failed("reading the bounding set"))? {
            if !wanted.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(failed(format!("prctl(PR_CAPBSET_DROP, {cap})")))?;
            }
        }
        let now = caps::read(None, CapSet::Bounding).map_err(failed("reading the bounding set"))?;
        check(
            "bounding",
            &now.intersection(wanted).copied().collect(),
            now.clone(),
        )?;
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(Error::syscall(
                "prctl(PR_SET_KEEPCAPS, 1)",
                "keeping capabilities across the switch of user",
                nix::errno::Errno::last(),
            ));
        }
        let count = now.len();
        explain!(
            "prctl(PR_CAPBSET_DROP, …) to {count} capabilities" => "ok",
            "the bounding set: what no process of the container can ever gain, setuid binaries included"
        );
        Ok(())
    }
}
// ANCHOR_END: bounding

/// Step two, after it: effective, permitted, inheritable, ambient; each
/// read back.
// ANCHOR: sets
pub struct Capabilities(pub Sets);

impl Primitive for Capabilities {
    fn name(&self) -> &'static str {
        "capabilities"
    }

    fn phase(&self) -> Phase {
        Phase::Seal
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let s = &self.0;
        // capset(2) takes the three at once: the effective set may only
        // hold what the permitted set does, and it shrinks first.
        caps::set(None, CapSet::Inheritable, &s.inheritable)
            .map_err(failed("capset(inheritable)"))?;
        caps::set(
            None,
            CapSet::Effective,
            &s.effective.intersection(&s.permitted).copied().collect(),
        )
        .map_err(failed("capset(effective)"))?;
        caps::set(None, CapSet::Permitted, &s.permitted).map_err(failed("capset(permitted)"))?;
        caps::set(None, CapSet::Effective, &s.effective).map_err(failed("capset(effective)"))?;
        caps::clear(None, CapSet::Ambient).map_err(failed("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"))?;
        for cap in &s.ambient {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(failed(format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})")))?;
        }
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        for (name, set, wanted) in [
            ("effective", CapSet::Effective, &s.effective),
            ("permitted", CapSet::Permitted, &s.permitted),
            ("inheritable", CapSet::Inheritable, &s.inheritable),
            ("ambient", CapSet::Ambient, &s.ambient),
        ] {
            check(
                name,
                wanted,
                caps::read(None, set).map_err(failed("capget"))?,
            )?;
        }
        let count = s.effective.len();
        explain!(
            "capset(effective, permitted, inheritable), ambient" => "{count} effective",
            "root inside keeps only these; without CAP_SYS_ADMIN it cannot mount, without CAP_SYS_MODULE load a module"
        );
        Ok(())
    }
}
// ANCHOR_END: sets

/// `no_new_privs`: from here on, `execve` never grants a privilege (a
/// setuid bit, a file capability) the process does not hold.
pub struct NoNewPrivileges;

impl Primitive for NoNewPrivileges {
    fn name(&self) -> &'static str {
        "no_new_privs"
    }

    fn phase(&self) -> Phase {
        Phase::Seal
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        // SAFETY: prctl with integer arguments only.
        let set = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        // SAFETY: as above.
        let now = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
        if set != 0 || now != 1 {
            return Err(Error::syscall(
                "prctl(PR_SET_NO_NEW_PRIVS, 1)",
                "forbidding privileges gained through execve",
                nix::errno::Errno::last(),
            ));
        }
        explain!(
            "prctl(PR_SET_NO_NEW_PRIVS, 1)" => "ok",
            "a setuid binary in the container no longer makes its caller root"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Vec<Capability> {
        DOCKER_DEFAULT.iter().map(|n| parse(n).unwrap()).collect()
    }

    fn names(set: &CapsHashSet) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(ToString::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn names_parse_with_or_without_cap_and_in_any_case() {
        for name in ["NET_ADMIN", "cap_net_admin", "CAP_NET_ADMIN", "net_admin"] {
            assert_eq!(parse(name).unwrap(), Capability::CAP_NET_ADMIN, "{name}");
        }
        for bad in ["", "NET", "CAP_", "ALL", "net admin"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_and_drop_work_on_dockers_default() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let set = compute(&default(), &[], &[], false).unwrap();
        assert_eq!(set.len(), 14);
        assert!(!set.contains(&Capability::CAP_SYS_ADMIN));
        let set = compute(&default(), &s(&["sys_admin"]), &s(&["NET_RAW"]), false).unwrap();
        assert!(set.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!set.contains(&Capability::CAP_NET_RAW));
        let set = compute(&default(), &s(&["CHOWN"]), &s(&["ALL"]), false).unwrap();
        assert_eq!(names(&set), ["CAP_CHOWN"]);
        let all = compute(&default(), &[], &s(&["ALL"]), true).unwrap();
        assert_eq!(all, supported());
        assert!(compute(&default(), &s(&["BOGUS"]), &[], false).is_err());
    }

    #[test]
    fn the_spec_carries_the_five_sets() {
        let mut spec = stage01_uts::spec::minimal(vec!["true".into()], vec![]);
        assert_eq!(Sets::of(&spec).unwrap(), None);
        let set = compute(&default(), &[], &[], false).unwrap();
        write(&mut spec, &set);
        let sets = Sets::of(&spec).unwrap().unwrap();
        assert_eq!(sets.bounding, set);
        assert_eq!(sets.effective, set);
        assert_eq!(sets.permitted, set);
        assert!(sets.inheritable.is_empty() && sets.ambient.is_empty());
    }
}
