//! The process's environment and working directory.
//!
//! From this stage on the container no longer inherits the runtime's
//! environment: it gets a small default one (PATH, HOME, TERM, HOSTNAME), as
//! with docker, and `-e` on top.

use std::ffi::OsString;
use std::path::PathBuf;

use stage01_uts::exec::DEFAULT_PATH;
use stage01_uts::{Context, Error, Primitive, explain};

use crate::cli::EnvVar;

/// A working directory for when `-w` is not given (an image's WorkingDir,
/// stage 07), told through the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultWorkdir(pub PathBuf);

/// The environment and working directory of COMMAND.
// ANCHOR: environment
pub struct Environment {
    vars: Vec<EnvVar>,
    workdir: Option<PathBuf>,
    hostname: String,
    /// The container's root filesystem, where a missing working directory is
    /// created; `None` for the host's root, where it is not.
    rootfs: Option<PathBuf>,
    /// The rootfs is mounted inside the container: make the working
    /// directory there.
    create_inside: bool,
}

impl Environment {
    pub fn new(
        vars: &[EnvVar],
        workdir: Option<PathBuf>,
        hostname: String,
        rootfs: Option<PathBuf>,
    ) -> Self {
        Environment {
            vars: vars.to_vec(),
            workdir,
            hostname,
            rootfs,
            create_inside: false,
        }
    }
}

impl Primitive for Environment {
    fn name(&self) -> &'static str {
        "environment"
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let defaults = [
            ("PATH", DEFAULT_PATH.to_owned()),
            ("HOME", "/root".to_owned()),
            ("TERM", term),
            ("HOSTNAME", self.hostname.clone()),
        ];
        ctx.process.env = Some(merge(&defaults, &self.vars, |key| std::env::var(key).ok()));
        if ctx.fact::<crate::mount::MountedRootfs>().is_some() {
            // The rootfs exists only inside: `setup` makes the directory.
            self.create_inside = true;
        } else if let (Some(root), Some(dir)) = (&self.rootfs, &self.workdir) {
            // A missing working directory is made in the rootfs, on the host,
            // as docker does (inside, the container's user may not be able to).
            crate::volume::mountpoint(root, dir, true)?;
        }
        Ok(())
    }

    /// In the container, after pivot_root: the working directory.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let given = ctx.fact::<DefaultWorkdir>().map(|d| &d.0);
        let Some(dir) = self.workdir.as_ref().or(given) else {
            return Ok(());
        };
        if self.create_inside || self.workdir.is_none() {
            std::fs::create_dir_all(dir).map_err(|e| crate::dev::io_error("mkdir", dir, e))?;
        }
        nix::unistd::chdir(dir.as_path()).map_err(|errno| {
            Error::syscall(
                format!("chdir({:?})", dir.display().to_string()),
                "entering the working directory",
                errno,
            )
        })?;
        explain!(
            "chdir({dir:?})" => "ok",
            "-w: COMMAND starts in its working directory"
        );
        Ok(())
    }
}
// ANCHOR_END: environment

/// Defaults, then `-e` in order; a later value for a key replaces the
/// earlier one in place. `-e KEY` takes the runtime's value, or drops KEY if
/// the runtime has none.
fn merge(
    defaults: &[(&str, String)],
    vars: &[EnvVar],
    runtime: impl Fn(&str) -> Option<String>,
) -> Vec<OsString> {
    let mut env: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    for var in vars {
        let value = var.value.clone().or_else(|| runtime(&var.key));
        let existing = env.iter().position(|(k, _)| *k == var.key);
        match (value, existing) {
            (Some(v), Some(i)) => env[i].1 = v,
            (Some(v), None) => env.push((var.key.clone(), v)),
            (None, Some(i)) => {
                env.remove(i);
            }
            (None, None) => {}
        }
    }
    env.into_iter()
        .map(|(k, v)| OsString::from(format!("{k}={v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(spec: &str) -> EnvVar {
        spec.parse().unwrap()
    }

    #[test]
    fn defaults_then_user_values_in_place() {
        let defaults = [("PATH", "/bin".to_owned()), ("HOME", "/root".to_owned())];
        let env = merge(
            &defaults,
            &[
                var("HOME=/srv"),
                var("APP=1"),
                var("FROM_HOST"),
                var("UNSET"),
            ],
            |k| (k == "FROM_HOST").then(|| "yes".to_owned()),
        );
        assert_eq!(env, ["PATH=/bin", "HOME=/srv", "APP=1", "FROM_HOST=yes"]);
    }

    #[test]
    fn a_bare_key_the_runtime_lacks_removes_the_default() {
        let defaults = [("TERM", "xterm".to_owned())];
        assert!(merge(&defaults, &[var("TERM")], |_| None).is_empty());
    }
}
