//! The process's environment and working directory.
//!
//! From this stage on the container no longer inherits the runtime's
//! environment: it gets a small default one (PATH, HOME, TERM, HOSTNAME), as
//! with docker, and `-e` on top: the generator writes it into the spec
//! ([`merge`]). The working directory is the spec's `process.cwd`; the
//! primitive makes it when it is missing, as docker does (stage 01 enters
//! it, last).

use std::path::PathBuf;

use stage01_uts::{Context, Error, Phase, Primitive, Root, explain};

use crate::cli::EnvVar;

/// The working directory of COMMAND, made if missing.
// ANCHOR: environment
pub struct Environment {
    workdir: PathBuf,
}

impl Environment {
    pub fn new(workdir: PathBuf) -> Self {
        Environment { workdir }
    }
}

impl Primitive for Environment {
    fn name(&self) -> &'static str {
        "environment"
    }

    fn phase(&self) -> Phase {
        Phase::Process
    }

    /// A rootfs on the host: a missing working directory is made there, on
    /// the host, as docker does (inside, the container's user may not be
    /// able to).
    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if let Root::Dir(root) = &ctx.root {
            crate::volume::mountpoint(root, &self.workdir, true)?;
        }
        Ok(())
    }

    /// A rootfs made inside: the directory is made there, after pivot_root.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if !matches!(ctx.root, Root::Inside(_)) {
            return Ok(());
        }
        let dir = &self.workdir;
        std::fs::create_dir_all(dir).map_err(|e| crate::dev::io_error("mkdir", dir, e))?;
        explain!(
            "mkdir -p {dir:?}" => "ok",
            "the working directory exists before COMMAND starts in it"
        );
        Ok(())
    }
}
// ANCHOR_END: environment

// ANCHOR: env_rules
/// Defaults, then `-e` in order; a later value for a key replaces the
/// earlier one in place. `-e KEY` takes the runtime's value, or drops KEY if
/// the runtime has none.
pub fn merge(
    defaults: &[(&str, String)],
    vars: &[EnvVar],
    runtime: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
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
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}
// ANCHOR_END: env_rules

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
