//! `--user`: who COMMAND runs as.

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use stage01_uts::spec::{self, Spec};
use stage01_uts::{Context, Error, Phase, Primitive, explain};
use stage03_mount::path::RootFiles;

use crate::passwd::{Identity, MAX_ID, UserSpec, resolve};

/// Resolve `user` (names or numbers) against the container's own
/// /etc/passwd and /etc/group, and write the ids into the spec
/// (`process.user`: uid, gid, and every group as `additionalGids`, as
/// initgroups(3) makes them), with HOME from the user's entry unless `-e
/// HOME` was given. Done by the generator, before the container exists:
/// the spec holds numbers, as the OCI spec requires.
// ANCHOR: apply
pub fn apply(
    spec: &mut Spec,
    user: &UserSpec,
    files: &dyn RootFiles,
    home_given: bool,
) -> Result<(), Error> {
    let read = |file: &str| files.read(file).unwrap_or_default();
    let id = resolve(user, &read("/etc/passwd"), &read("/etc/group")).map_err(Error::primitive)?;
    let process = spec::process_mut(spec);
    let mut ids = process.user().clone();
    ids.set_uid(id.uid);
    ids.set_gid(id.gid);
    ids.set_additional_gids(Some(id.groups.clone()));
    process.set_user(ids);
    if let (Some(home), false) = (&id.home, home_given) {
        spec::set_env(spec, "HOME", home);
    }
    Ok(())
}
// ANCHOR_END: apply

/// The container's user, set last, just before exec.
// ANCHOR: user
pub struct User {
    id: Identity,
}

impl User {
    /// The ids the spec's `process.user` gives.
    pub fn from_spec(spec: &Spec) -> Self {
        let user = spec.process().as_ref().map(|p| p.user().clone());
        let (uid, gid, groups) = user.map_or((0, 0, Vec::new()), |u| {
            (
                u.uid(),
                u.gid(),
                u.additional_gids().clone().unwrap_or_default(),
            )
        });
        User {
            id: Identity {
                uid,
                gid,
                groups,
                home: None,
            },
        }
    }
}

impl Primitive for User {
    fn name(&self) -> &'static str {
        "user"
    }

    fn phase(&self) -> Phase {
        Phase::Credentials
    }

    /// In the container, the last step that needs privilege: become the
    /// user. After this the process may have lost the privileges every
    /// other step needed.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        let id = &self.id;
        // Ids a spec from anywhere may hold: one the kernel reads as
        // "unchanged" must never reach setresuid.
        for n in std::iter::once(id.uid)
            .chain([id.gid])
            .chain(id.groups.iter().copied())
        {
            if n > MAX_ID {
                return Err(Error::primitive(OutOfRange(n)));
            }
        }
        fn not_mapped(
            call: &'static str,
            what: &'static str,
            n: u32,
        ) -> impl FnOnce(Errno) -> Error {
            move |errno| match errno {
                Errno::EINVAL => Error::primitive(NotMapped { what, id: n }),
                errno => Error::syscall(
                    format!("{call}({n})"),
                    "switching to the container's user",
                    errno,
                ),
            }
        }
        if crate::userns::setgroups_allowed() {
            let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
            nix::unistd::setgroups(&groups).map_err(not_mapped("setgroups", "group", id.gid))?;
        }
        let gid = Gid::from_raw(id.gid);
        nix::unistd::setresgid(gid, gid, gid).map_err(not_mapped("setresgid", "gid", id.gid))?;
        let uid = Uid::from_raw(id.uid);
        nix::unistd::setresuid(uid, uid, uid).map_err(not_mapped("setresuid", "uid", id.uid))?;
        verify(id).map_err(Error::primitive)?;
        let (u, g, groups) = (id.uid, id.gid, &id.groups);
        explain!(
            "setresuid({u}), setresgid({g}), setgroups({groups:?})" => "ok",
            "COMMAND runs as this user; a non-zero uid loses every capability"
        );
        Ok(())
    }
}
// ANCHOR_END: user

/// Read the process's ids back after the switch: every one of real,
/// effective and saved uid and gid must be the one asked for, and the
/// supplementary groups too (where setgroups is allowed). A switch that did
/// not take (an id the kernel reads as "unchanged", a call that succeeded
/// half-way) stops the start: COMMAND never runs with more than it was
/// given.
// ANCHOR: verify
fn verify(id: &Identity) -> Result<(), SwitchFailed> {
    let uids = nix::unistd::getresuid().map_err(|_| SwitchFailed::Unreadable)?;
    let gids = nix::unistd::getresgid().map_err(|_| SwitchFailed::Unreadable)?;
    let wanted_uid = Uid::from_raw(id.uid);
    let wanted_gid = Gid::from_raw(id.gid);
    if [uids.real, uids.effective, uids.saved] != [wanted_uid; 3] {
        return Err(SwitchFailed::Ids {
            what: "uid",
            asked: id.uid,
            got: format!("{}/{}/{}", uids.real, uids.effective, uids.saved),
        });
    }
    if [gids.real, gids.effective, gids.saved] != [wanted_gid; 3] {
        return Err(SwitchFailed::Ids {
            what: "gid",
            asked: id.gid,
            got: format!("{}/{}/{}", gids.real, gids.effective, gids.saved),
        });
    }
    if crate::userns::setgroups_allowed() {
        let mut got: Vec<u32> = nix::unistd::getgroups()
            .map_err(|_| SwitchFailed::Unreadable)?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        let mut asked = id.groups.clone();
        got.sort_unstable();
        asked.sort_unstable();
        if got != asked {
            return Err(SwitchFailed::Groups { asked, got });
        }
    }
    Ok(())
}
// ANCHOR_END: verify

/// The process's ids after the switch are not the ones asked for.
#[derive(Debug, thiserror::Error)]
enum SwitchFailed {
    #[error(
        "switching to {what} {asked} did not take (real/effective/saved are {got}); COMMAND was not run"
    )]
    Ids {
        what: &'static str,
        asked: u32,
        got: String,
    },
    #[error(
        "switching the supplementary groups to {asked:?} did not take (they are {got:?}); COMMAND was not run"
    )]
    Groups { asked: Vec<u32>, got: Vec<u32> },
    #[error("cannot read the process's ids back after switching to the container's user")]
    Unreadable,
}

/// An id the user namespace does not map.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {id} is not mapped in the container's user namespace; \
     map it with --uidmap/--gidmap (rootless: give your user subordinate ids in /etc/subuid \
     and /etc/subgid, and install newuidmap)"
)]
struct NotMapped {
    what: &'static str,
    id: u32,
}

/// An id no process may be switched to.
#[derive(Debug, thiserror::Error)]
#[error("the container's user has the id {0}: uids and gids must be in the range 0-2147483647")]
struct OutOfRange(u32);

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        let groups = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Identity {
            uid: Uid::current().as_raw(),
            gid: Gid::current().as_raw(),
            groups,
            home: None,
        }
    }

    #[test]
    fn the_ids_are_read_back_and_must_be_those_asked_for() {
        verify(&me()).unwrap();
        let other = Identity {
            uid: me().uid.wrapping_add(1),
            ..me()
        };
        let err = verify(&other).unwrap_err();
        assert!(err.to_string().contains("did not take"), "{err}");
        let other = Identity {
            gid: me().gid.wrapping_add(1),
            ..me()
        };
        assert!(matches!(
            verify(&other),
            Err(SwitchFailed::Ids { what: "gid", .. })
        ));
    }
}
