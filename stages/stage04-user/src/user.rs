//! `--user`: who COMMAND runs as.

use std::ffi::OsString;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use stage01_uts::{Context, Error, Primitive, explain};

use crate::passwd::{UserSpec, resolve};

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
        let (u, g, groups) = (id.uid, id.gid, &id.groups);
        explain!(
            "setresuid({u}), setresgid({g}), setgroups({groups:?})" => "ok",
            "COMMAND runs as this user; a non-zero uid loses every capability"
        );
        Ok(())
    }
}
// ANCHOR_END: user

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
