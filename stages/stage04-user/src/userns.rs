//! The user namespace: the container's ids, mapped to the host's.
//!
//! A user namespace has its own uids and gids. Each is meaningful on the
//! host only through the namespace's maps (`/proc/PID/uid_map`, `gid_map`):
//! `0 100000 65536` makes uid 0 inside uid 100000 outside. Capabilities held
//! in the namespace act only on what it owns, so root inside is root for the
//! container's own namespaces, mounts and files, and nobody for the host.
//!
//! Who may write which map:
//!
//! - the host's root, any map (`--uidmap`, `--userns`);
//! - an ordinary user, one line mapping its own uid, and for gid_map only
//!   after writing `deny` to `/proc/PID/setgroups` (otherwise it could drop
//!   a group that the host uses to *deny* it access);
//! - anything more for an ordinary user goes through the setuid helpers
//!   newuidmap and newgidmap, which check /etc/subuid and /etc/subgid.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Pid, Uid};
use stage01_uts::spec::{self, LinuxIdMapping, LinuxNamespaceType, Spec};
use stage01_uts::{Context, Error, Phase, Primitive, explain};

use crate::ids::{IdMap, subordinate_ranges};

/// What was asked on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub uidmap: Vec<IdMap>,
    pub gidmap: Vec<IdMap>,
    /// `--userns`: map root to the subordinate ids.
    pub auto: bool,
}

/// The facts about the host that decide the maps.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    /// The runtime user's name, for /etc/subuid.
    pub name: String,
    pub subuid: String,
    pub subgid: String,
    /// newuidmap and newgidmap, if installed.
    pub helpers: Option<(PathBuf, PathBuf)>,
}

impl Host {
    /// This machine, as the runtime's user sees it.
    pub fn current() -> Host {
        let uid = Uid::effective().as_raw();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Host {
            uid,
            gid: Gid::effective().as_raw(),
            name: crate::passwd::name_of(&passwd, uid).unwrap_or_else(|| uid.to_string()),
            subuid: std::fs::read_to_string("/etc/subuid").unwrap_or_default(),
            subgid: std::fs::read_to_string("/etc/subgid").unwrap_or_default(),
            // Root writes any map itself: the helpers are an ordinary user's.
            helpers: (uid != 0)
                .then(|| find_in_path("newuidmap").zip(find_in_path("newgidmap")))
                .flatten(),
        }
    }
}

/// How the maps get written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The runtime is root: it writes any map itself.
    Root,
    /// An ordinary user mapping only its own ids: writes them itself, after
    /// denying setgroups.
    Own,
    /// An ordinary user with subordinate ids: newuidmap and newgidmap.
    Helpers,
}

/// The maps the container gets, and who writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
    pub writer: Writer,
}

/// Why no user namespace can be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNsError {
    #[error("--gidmap needs --uidmap too")]
    GidmapAlone,
    #[error(
        "--userns: {user} has no subordinate ids in /etc/{file}; add a line such as \
         {user}:100000:65536 to /etc/subuid and /etc/subgid"
    )]
    NoSubordinateIds { user: String, file: &'static str },
    #[error(
        "rootless: --{which} {map} maps host ids that are not yours; an ordinary user may map \
         only its own id ({own}) and its subordinate ids from /etc/sub{file}"
    )]
    NotYours {
        which: &'static str,
        map: String,
        own: u32,
        file: &'static str,
    },
    #[error(
        "rootless: mapping more than your own id needs newuidmap and newgidmap; \
         install them (apt-get install uidmap)"
    )]
    NoHelpers,
}

/// Decide the maps. `None`: no user namespace (the host's ids are kept, as
/// docker does for root without `--userns-remap`).
// ANCHOR: plan
pub fn plan(request: &Request, host: &Host) -> Result<Option<Plan>, UserNsError> {
    if request.uidmap.is_empty() && !request.gidmap.is_empty() {
        return Err(UserNsError::GidmapAlone);
    }
    let explicit = !request.uidmap.is_empty();
    let gidmap = |uidmap: &Vec<IdMap>| {
        if request.gidmap.is_empty() {
            uidmap.clone()
        } else {
            request.gidmap.clone()
        }
    };
    let subuids = subordinate_ranges(&host.subuid, &host.name, host.uid);
    let subgids = subordinate_ranges(&host.subgid, &host.name, host.uid);

    if host.uid == 0 {
        if explicit {
            let uid = request.uidmap.clone();
            return Ok(Some(Plan {
                gid: gidmap(&uid),
                uid,
                writer: Writer::Root,
            }));
        }
        if !request.auto {
            return Ok(None);
        }
        let first = |ranges: &[(u32, u32)], file| {
            ranges
                .first()
                .copied()
                .ok_or(UserNsError::NoSubordinateIds {
                    user: host.name.clone(),
                    file,
                })
        };
        let (u, uc) = first(&subuids, "subuid")?;
        let (g, gc) = first(&subgids, "subgid")?;
        return Ok(Some(Plan {
            uid: vec![IdMap {
                container: 0,
                host: u,
                size: uc,
            }],
            gid: vec![IdMap {
                container: 0,
                host: g,
                size: gc,
            }],
            writer: Writer::Root,
        }));
    }

    // Rootless: always a user namespace; the runtime's user is root inside.
    let own = |id| IdMap {
        container: 0,
        host: id,
        size: 1,
    };
    if explicit {
        let gid = gidmap(&request.uidmap);
        let writer = writer_for(&request.uidmap, &gid, host)?;
        return Ok(Some(Plan {
            uid: request.uidmap.clone(),
            gid,
            writer,
        }));
    }
    match (subuids.first(), subgids.first(), &host.helpers) {
        // As podman does: your id is root, your subordinate ids are 1 and up.
        (Some(&(u, uc)), Some(&(g, gc)), Some(_)) => Ok(Some(Plan {
            uid: vec![
                own(host.uid),
                IdMap {
                    container: 1,
                    host: u,
                    size: uc,
                },
            ],
            gid: vec![
                own(host.gid),
                IdMap {
                    container: 1,
                    host: g,
                    size: gc,
                },
            ],
            writer: Writer::Helpers,
        })),
        // Only your own id: root inside, nothing else mapped.
        _ if !request.auto => Ok(Some(Plan {
            uid: vec![own(host.uid)],
            gid: vec![own(host.gid)],
            writer: Writer::Own,
        })),
        (None, _, _) => Err(UserNsError::NoSubordinateIds {
            user: host.name.clone(),
            file: "subuid",
        }),
        (_, None, _) => Err(UserNsError::NoSubordinateIds {
            user: host.name.clone(),
            file: "subgid",
        }),
        (_, _, None) => Err(UserNsError::NoHelpers),
    }
}
// ANCHOR_END: plan

/// The host ids of the container's uid 0 and gid 0 (`None`: not mapped):
/// whom the files it must own belong to (stage 06's upper directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerRoot {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The spec's id maps.
pub fn maps(spec: &Spec) -> (Vec<IdMap>, Vec<IdMap>) {
    let convert = |maps: Option<&Vec<LinuxIdMapping>>| -> Vec<IdMap> {
        maps.into_iter()
            .flatten()
            .map(|m| IdMap {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    let linux = spec.linux().as_ref();
    (
        convert(linux.and_then(|l| l.uid_mappings().as_ref())),
        convert(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

/// Who the container's root is on the host, if the spec gives it a user
/// namespace.
pub fn container_root(spec: &Spec) -> Option<ContainerRoot> {
    if !spec::has_namespace(spec, LinuxNamespaceType::User) {
        return None;
    }
    let (uid, gid) = maps(spec);
    Some(ContainerRoot {
        uid: IdMap::host_of(&uid, 0),
        gid: IdMap::host_of(&gid, 0),
    })
}

/// Put the planned maps, and a user namespace, into the spec.
pub fn write_into(spec: &mut Spec, plan: &Plan) {
    let convert = |maps: &[IdMap]| -> Vec<LinuxIdMapping> {
        maps.iter()
            .map(|m| {
                oci_spec::runtime::LinuxIdMappingBuilder::default()
                    .container_id(m.container)
                    .host_id(m.host)
                    .size(m.size)
                    .build()
                    .expect("an id map is valid")
            })
            .collect()
    };
    let linux = spec::linux_mut(spec);
    linux.set_uid_mappings(Some(convert(&plan.uid)));
    linux.set_gid_mappings(Some(convert(&plan.gid)));
    spec::add_namespace(spec, LinuxNamespaceType::User);
}

/// Who may write these maps for the runtime's user (a spec from a bundle
/// brings maps the runtime did not plan): root any; an ordinary user its own
/// ids directly, its subordinate ids through the helpers, nothing else.
pub fn writer_for(uid: &[IdMap], gid: &[IdMap], host: &Host) -> Result<Writer, UserNsError> {
    if host.uid == 0 {
        return Ok(Writer::Root);
    }
    let subuids = subordinate_ranges(&host.subuid, &host.name, host.uid);
    let subgids = subordinate_ranges(&host.subgid, &host.name, host.uid);
    let check = |maps: &[IdMap], own_id: u32, ranges: &[(u32, u32)], which, file| {
        for m in maps {
            let mine = m.host == own_id && m.size == 1;
            if !mine && !m.host_within(ranges) {
                return Err(UserNsError::NotYours {
                    which,
                    map: format!("{}:{}:{}", m.container, m.host, m.size),
                    own: own_id,
                    file,
                });
            }
        }
        Ok(())
    };
    check(uid, host.uid, &subuids, "uidmap", "uid")?;
    check(gid, host.gid, &subgids, "gidmap", "gid")?;
    let only_own =
        uid.len() == 1 && gid.len() == 1 && uid[0].host == host.uid && gid[0].host == host.gid;
    if only_own {
        Ok(Writer::Own)
    } else if host.helpers.is_some() {
        Ok(Writer::Helpers)
    } else {
        Err(UserNsError::NoHelpers)
    }
}

/// The stage 04 primitive.
// ANCHOR: userns
pub struct UserNs {
    uid: Vec<IdMap>,
    gid: Vec<IdMap>,
    plan: Option<Plan>,
}

impl UserNs {
    /// The user namespace and maps the spec asks for.
    pub fn from_spec(spec: &Spec) -> Self {
        let (uid, gid) = maps(spec);
        UserNs {
            uid,
            gid,
            plan: None,
        }
    }
}

impl Primitive for UserNs {
    fn name(&self) -> &'static str {
        "userns"
    }

    fn phase(&self) -> Phase {
        Phase::UserNamespace
    }

    /// Decided before clone, from the spec and who the runtime is: how the
    /// maps get written.
    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let writer =
            writer_for(&self.uid, &self.gid, &Host::current()).map_err(Error::primitive)?;
        self.plan = Some(Plan {
            uid: self.uid.clone(),
            gid: self.gid.clone(),
            writer,
        });
        Ok(())
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUSER
    }

    /// On the host, while the child waits: write its maps.
    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        match &self.plan {
            Some(plan) => write_maps(child, plan),
            None => Ok(()),
        }
    }

    /// In the container, before any other step: become root of the new
    /// namespace (its uid 0, if mapped), with no stray host groups.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        if IdMap::host_of(&plan.gid, 0).is_some() {
            let root = Gid::from_raw(0);
            nix::unistd::setresgid(root, root, root).map_err(|e| {
                Error::syscall(
                    "setresgid(0, 0, 0)",
                    "becoming root of the user namespace",
                    e,
                )
            })?;
        }
        if setgroups_allowed() {
            nix::unistd::setgroups(&[])
                .map_err(|e| Error::syscall("setgroups([])", "dropping the host's groups", e))?;
        }
        if IdMap::host_of(&plan.uid, 0).is_some() {
            let root = Uid::from_raw(0);
            nix::unistd::setresuid(root, root, root).map_err(|e| {
                Error::syscall(
                    "setresuid(0, 0, 0)",
                    "becoming root of the user namespace",
                    e,
                )
            })?;
            explain!(
                "setresuid(0, 0, 0)" => "ok",
                "root of the user namespace: all capabilities over what it owns, none over the host"
            );
        }
        Ok(())
    }
}
// ANCHOR_END: userns

/// Whether this process may call setgroups(2): not after `deny` was written
/// to its setgroups file (a rootless container mapping only its own id).
pub fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

// ANCHOR: write_maps
fn write_maps(child: Pid, plan: &Plan) -> Result<(), Error> {
    let proc = PathBuf::from(format!("/proc/{child}"));
    match plan.writer {
        Writer::Root => {
            write_proc(&proc.join("uid_map"), &plan.uid)?;
            write_proc(&proc.join("gid_map"), &plan.gid)?;
        }
        Writer::Own => {
            // Without this, the kernel refuses an unprivileged gid_map.
            write_file(&proc.join("setgroups"), "deny")?;
            write_proc(&proc.join("uid_map"), &plan.uid)?;
            write_proc(&proc.join("gid_map"), &plan.gid)?;
        }
        Writer::Helpers => {
            let (newuidmap, newgidmap) = Host::current()
                .helpers
                .ok_or_else(|| Error::primitive(UserNsError::NoHelpers))?;
            helper(&newuidmap, child, &plan.uid)?;
            helper(&newgidmap, child, &plan.gid)?;
        }
    }
    Ok(())
}
// ANCHOR_END: write_maps

fn write_proc(path: &Path, maps: &[IdMap]) -> Result<(), Error> {
    // The kernel takes a map in one write(2) only.
    let text: String = maps.iter().map(|m| format!("{m}\n")).collect();
    write_file(path, &text)?;
    let shown = text.trim_end().replace('\n', ", ");
    explain!(
        "write({path:?}, \"{shown}\")" => "ok",
        "container ids on the left, host ids in the middle, how many on the right"
    );
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            Error::syscall(
                format!("write({:?})", path.display().to_string()),
                "writing the user namespace's id map",
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })
}

fn helper(program: &Path, child: Pid, maps: &[IdMap]) -> Result<(), Error> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(child.to_string());
    for m in maps {
        cmd.args([
            m.container.to_string(),
            m.host.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::syscall(
            format!("{}", program.display()),
            "running the id map helper",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr)
            .trim()
            .replace('\n', "; ");
        return Err(Error::primitive(HelperFailed {
            program: program.display().to_string(),
            why,
        }));
    }
    let shown: Vec<String> = maps.iter().map(ToString::to_string).collect();
    let name = program.display();
    let shown = shown.join(", ");
    explain!(
        "{name} {child} {shown}" => "ok",
        "the setuid helper checks /etc/subuid (or subgid) and writes the map an ordinary user may not"
    );
    Ok(())
}

/// newuidmap or newgidmap said no.
#[derive(Debug, thiserror::Error)]
#[error("{program} refused: {why}")]
struct HelperFailed {
    program: String,
    why: String,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| stage01_uts::exec::DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> IdMap {
        s.parse().unwrap()
    }

    fn host(uid: u32) -> Host {
        Host {
            uid,
            gid: uid,
            name: if uid == 0 {
                "root".into()
            } else {
                "alice".into()
            },
            subuid: "root:200000:65536\nalice:100000:65536\n".into(),
            subgid: "root:200000:65536\nalice:100000:65536\n".into(),
            helpers: Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into())),
        }
    }

    #[test]
    fn root_without_options_keeps_the_hosts_ids() {
        assert_eq!(plan(&Request::default(), &host(0)).unwrap(), None);
    }

    #[test]
    fn root_with_a_uidmap_uses_it_for_gids_too() {
        let req = Request {
            uidmap: vec![map("0:100000:65536")],
            ..Request::default()
        };
        let p = plan(&req, &host(0)).unwrap().unwrap();
        assert_eq!(
            (p.uid.clone(), p.gid, p.writer),
            (p.uid, vec![map("0:100000:65536")], Writer::Root)
        );
    }

    #[test]
    fn root_with_userns_takes_its_subordinate_ids() {
        let req = Request {
            auto: true,
            ..Request::default()
        };
        let p = plan(&req, &host(0)).unwrap().unwrap();
        assert_eq!(p.uid, vec![map("0:200000:65536")]);
        let mut bare = host(0);
        bare.subuid.clear();
        insta::assert_snapshot!(plan(&req, &bare).unwrap_err().to_string(), @"--userns: root has no subordinate ids in /etc/subuid; add a line such as root:100000:65536 to /etc/subuid and /etc/subgid");
    }

    #[test]
    fn rootless_maps_the_user_to_root_and_subordinates_above() {
        let p = plan(&Request::default(), &host(1000)).unwrap().unwrap();
        assert_eq!(p.uid, vec![map("0:1000:1"), map("1:100000:65536")]);
        assert_eq!(p.writer, Writer::Helpers);
    }

    #[test]
    fn rootless_without_helpers_or_subordinates_maps_only_the_user() {
        let mut h = host(1000);
        h.helpers = None;
        let p = plan(&Request::default(), &h).unwrap().unwrap();
        assert_eq!((p.uid, p.writer), (vec![map("0:1000:1")], Writer::Own));
        let mut h = host(1000);
        h.subuid.clear();
        assert_eq!(
            plan(&Request::default(), &h).unwrap().unwrap().writer,
            Writer::Own
        );
    }

    #[test]
    fn rootless_may_not_map_what_is_not_its_own() {
        let req = Request {
            uidmap: vec![map("0:0:1")],
            ..Request::default()
        };
        insta::assert_snapshot!(plan(&req, &host(1000)).unwrap_err().to_string(), @"rootless: --uidmap 0:0:1 maps host ids that are not yours; an ordinary user may map only its own id (1000) and its subordinate ids from /etc/subuid");
        let req = Request {
            uidmap: vec![map("0:1000:1")],
            ..Request::default()
        };
        assert_eq!(
            plan(&req, &host(1000)).unwrap().unwrap().writer,
            Writer::Own
        );
    }

    #[test]
    fn gidmap_alone_is_refused() {
        let req = Request {
            gidmap: vec![map("0:1:1")],
            ..Request::default()
        };
        assert_eq!(plan(&req, &host(0)), Err(UserNsError::GidmapAlone));
    }
}
