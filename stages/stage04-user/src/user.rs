//! `--user`: who COMMAND runs as.

use std::ffi::OsString;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use stage01_uts::{Context, Error, Primitive, explain};

use crate::passwd::{Identity, UserSpec, resolve};

/// A user for when `--user` is not given (an image's User, stage 07), told
/// through the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultUser(pub UserSpec);

/// The container's user, set last, just before exec.
// ANCHOR: user
pub struct User {
    spec: Option<UserSpec>,
    /// `-e HOME=...` was given: leave HOME alone.
    home_given: bool,
}

impl User {
    pub fn new(spec: Option<UserSpec>, home_given: bool) -> Self {
        User { spec, home_given }
    }
}

impl Primitive for User {
    fn name(&self) -> &'static str {
        "user"
    }

    /// In the container, the last step before exec: look the user up in the
    /// container's own /etc/passwd and /etc/group (its root is `/` by now,
    /// whatever made it: a directory, an overlay, an image), then become it.
    /// After this the process may have lost the privileges every other step
    /// needed.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let default = ctx.fact::<DefaultUser>().map(|u| u.0.clone());
        let Some(spec) = self.spec.clone().or(default) else {
            return Ok(());
        };
        let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
        let id =
            resolve(&spec, &read("/etc/passwd"), &read("/etc/group")).map_err(Error::primitive)?;
        if let (Some(home), false, Some(env)) = (&id.home, self.home_given, &mut ctx.process.env) {
            env.retain(|kv| !kv.to_string_lossy().starts_with("HOME="));
            env.push(OsString::from(format!("HOME={home}")));
        }
        fn not_mapped(what: &'static str, n: u32) -> impl FnOnce(Errno) -> Error {
            move |errno| match errno {
                Errno::EINVAL => Error::primitive(NotMapped { what, id: n }),
                errno => Error::syscall(
                    format!("set{what}({n})"),
                    "switching to the container's user",
                    errno,
                ),
            }
        }
        if crate::userns::setgroups_allowed() {
            let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
            nix::unistd::setgroups(&groups).map_err(not_mapped("groups", id.gid))?;
        }
        let gid = Gid::from_raw(id.gid);
        nix::unistd::setresgid(gid, gid, gid).map_err(not_mapped("gid", id.gid))?;
        let uid = Uid::from_raw(id.uid);
        nix::unistd::setresuid(uid, uid, uid).map_err(not_mapped("uid", id.uid))?;
        verify(&id).map_err(Error::primitive)?;
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
