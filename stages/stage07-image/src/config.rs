//! An image's configuration, applied to the container that runs it.
//!
//! The config blob says what to run and how: `Entrypoint` and `Cmd` (a
//! command given on the command line replaces `Cmd`, as with docker), `Env`
//! (under `-e`), `WorkingDir` (unless `-w`), `User` (unless `--user`).

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;
use stage01_uts::{Context, Error, Primitive, explain};
use stage03_mount::env::DefaultWorkdir;
use stage04_user::passwd::UserSpec;
use stage04_user::user::DefaultUser;

/// The parts of an OCI image config the runtime uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub config: RunConfig,
}

/// `config` in an image config blob (docker's names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// An image config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("its config is not an image config: {0}")]
    Unparsable(String),
    #[error("its config's {field} holds a NUL byte")]
    Nul { field: &'static str },
    #[error("its config's Env entry {0:?} is not KEY=VALUE")]
    Env(String),
    #[error("its config's User: {0}")]
    User(stage01_uts::cli::InvalidValue),
}

impl ImageConfig {
    /// Parse a config blob (untrusted: from a registry, or from the store,
    /// checked against its digest), and check what will reach the kernel:
    /// strings without NUL bytes, `KEY=VALUE` variables, a valid User.
    // ANCHOR: parse
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let unparsable = |e: serde_json::Error| ConfigError::Unparsable(e.to_string());
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(unparsable)?;
        if !value.is_object() {
            return Err(ConfigError::Unparsable("it is not a JSON object".into()));
        }
        let config: ImageConfig = serde_json::from_value(value).map_err(unparsable)?;
        let run = &config.config;
        let lists = [
            ("Entrypoint", &run.entrypoint),
            ("Cmd", &run.cmd),
            ("Env", &run.env),
        ];
        for (field, list) in lists {
            if list.iter().flatten().any(|s| s.contains('\0')) {
                return Err(ConfigError::Nul { field });
            }
        }
        for (field, value) in [("WorkingDir", &run.working_dir), ("User", &run.user)] {
            if value.as_ref().is_some_and(|s| s.contains('\0')) {
                return Err(ConfigError::Nul { field });
            }
        }
        for var in run.env.iter().flatten() {
            if var.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(ConfigError::Env(var.clone()));
            }
        }
        if let Some(user) = run.user.as_ref().filter(|u| !u.is_empty()) {
            user.parse::<UserSpec>().map_err(ConfigError::User)?;
        }
        Ok(config)
    }
    // ANCHOR_END: parse
}

/// What was given on the command line, which the image's config does not
/// override.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// COMMAND [ARG...] after the image reference (replaces Cmd).
    pub command: Vec<OsString>,
    /// Keys given with `-e`.
    pub env_keys: Vec<String>,
    pub workdir: bool,
    pub user: bool,
}

/// Nothing to run.
#[derive(Debug, thiserror::Error)]
#[error("the image {0} has no Entrypoint or Cmd: give the command to run after its name")]
pub struct NoCommand(String);

/// Applies an image's configuration.
// ANCHOR: apply
pub struct Apply {
    image: String,
    config: RunConfig,
    given: Given,
}

impl Apply {
    pub fn new(image: String, config: ImageConfig, given: Given) -> Self {
        Apply {
            image,
            config: config.config,
            given,
        }
    }
}

impl Primitive for Apply {
    fn name(&self) -> &'static str {
        "image config"
    }

    /// After stage 03 made the environment (defaults, then `-e`).
    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let entrypoint = self.config.entrypoint.clone().unwrap_or_default();
        let command: Vec<OsString> = if self.given.command.is_empty() {
            self.config
                .cmd
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(OsString::from)
                .collect()
        } else {
            self.given.command.clone()
        };
        let args: Vec<OsString> = entrypoint
            .into_iter()
            .map(OsString::from)
            .chain(command)
            .collect();
        if args.is_empty() {
            return Err(Error::primitive(NoCommand(self.image.clone())));
        }
        ctx.process.args = args;

        // Image variables replace the defaults, never what -e gave.
        let env = ctx.process.env.get_or_insert_with(Vec::new);
        for var in self.config.env.iter().flatten() {
            let key = var.split_once('=').map_or(var.as_str(), |(k, _)| k);
            if self.given.env_keys.iter().any(|k| k == key) {
                continue;
            }
            env.retain(|kv| kv.to_string_lossy().split_once('=').map(|(k, _)| k) != Some(key));
            env.push(OsString::from(var));
        }
        if let (false, Some(dir)) = (
            self.given.workdir,
            self.config.working_dir.as_ref().filter(|d| !d.is_empty()),
        ) {
            ctx.tell(DefaultWorkdir(PathBuf::from(dir)));
        }
        let user = self.config.user.as_ref().filter(|u| !u.is_empty());
        if let (false, Some(user)) = (self.given.user, user) {
            let spec: UserSpec = user.parse().map_err(Error::primitive)?;
            ctx.tell(DefaultUser(spec));
        }
        let image = &self.image;
        let shown: Vec<String> = ctx
            .process
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        explain!(
            "(image config of {image})" => "{shown:?}",
            "Entrypoint + Cmd (or the command given), Env under -e, WorkingDir, User"
        );
        Ok(())
    }
}
// ANCHOR_END: apply

#[cfg(test)]
mod tests {
    use super::*;
    use stage01_uts::Process;

    fn config(json: &str) -> ImageConfig {
        serde_json::from_str(json).unwrap()
    }

    fn applied(json: &str, given: Given) -> Context {
        let mut ctx = Context::new(Process::new(vec!["alpine".into()]));
        ctx.process.env = Some(vec![
            "PATH=/bin".into(),
            "HOME=/root".into(),
            "MODE=cli".into(),
        ]);
        Apply::new("alpine".into(), config(json), given)
            .prepare(&mut ctx)
            .unwrap();
        ctx
    }

    const NGINX: &str = r#"{"config": {"Entrypoint": ["/entry.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/usr/sbin:/usr/bin", "MODE=image", "NGINX=1.27"], "WorkingDir": "/srv", "User": "101:101"}}"#;

    #[test]
    fn entrypoint_then_cmd_or_the_command_given() {
        let ctx = applied(NGINX, Given::default());
        assert_eq!(
            ctx.process.args,
            ["/entry.sh", "nginx", "-g", "daemon off;"]
        );
        let ctx = applied(
            NGINX,
            Given {
                command: vec!["sh".into()],
                ..Given::default()
            },
        );
        assert_eq!(ctx.process.args, ["/entry.sh", "sh"]);
    }

    #[test]
    fn image_env_over_defaults_under_dash_e() {
        let given = Given {
            env_keys: vec!["MODE".into()],
            ..Given::default()
        };
        let ctx = applied(NGINX, given);
        let env: Vec<String> = ctx
            .process
            .env
            .unwrap()
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        assert!(env.contains(&"PATH=/usr/sbin:/usr/bin".into()), "{env:?}");
        assert!(env.contains(&"MODE=cli".into()), "-e wins: {env:?}");
        assert!(env.contains(&"NGINX=1.27".into()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }

    #[test]
    fn workdir_and_user_unless_given() {
        let ctx = applied(NGINX, Given::default());
        assert_eq!(
            ctx.fact::<DefaultWorkdir>(),
            Some(&DefaultWorkdir("/srv".into()))
        );
        assert_eq!(ctx.fact::<DefaultUser>().unwrap().0.user, "101");
        let ctx = applied(
            NGINX,
            Given {
                workdir: true,
                user: true,
                ..Given::default()
            },
        );
        assert!(ctx.fact::<DefaultWorkdir>().is_none() && ctx.fact::<DefaultUser>().is_none());
    }

    #[test]
    fn what_would_reach_the_kernel_is_checked() {
        assert!(ImageConfig::parse(NGINX.as_bytes()).is_ok());
        for bad in [
            r#"{"config": {"Cmd": ["a\u0000b"]}}"#,
            r#"{"config": {"Env": ["NOEQUALS"]}}"#,
            r#"{"config": {"Env": ["=x"]}}"#,
            r#"{"config": {"User": "4294967295"}}"#,
            r#"{"config": {"WorkingDir": "/a\u0000"}}"#,
            r#"{"config": {"Cmd": "not a list"}}"#,
            "[]",
        ] {
            assert!(ImageConfig::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_to_run_is_refused() {
        let mut ctx = Context::new(Process::new(vec![]));
        let err = Apply::new("scratch".into(), config("{}"), Given::default())
            .prepare(&mut ctx)
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"the image scratch has no Entrypoint or Cmd: give the command to run after its name");
    }
}
