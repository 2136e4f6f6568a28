//! An image's configuration, written into the spec of the container that
//! runs it (the engine's part, before the runtime: containerd's
//! `WithImageConfig`).
//!
//! The config blob says what to run and how: `Entrypoint` and `Cmd` (a
//! command given on the command line replaces `Cmd`, as with docker), `Env`
//! (under `-e`), `WorkingDir` (unless `-w`), `User` (unless `--user`).

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;
use stage01_uts::spec::{self, Spec};
use stage01_uts::{Error, explain};
use stage03_mount::path::RootFiles;
use stage04_user::passwd::UserSpec;

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
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `{"80/tcp": {}}`: the ports the image says it serves (`-P`
    /// publishes them, stage 09).
    #[serde(default)]
    pub exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// An ExposedPorts key, checked: `PORT[/tcp|/udp]`, as `PORT/PROTO`; None
/// for anything else (an image's word is untrusted: a key that is not a
/// port is left out, never passed on).
pub fn exposed_port(key: &str) -> Option<String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    matches!(proto, "tcp" | "udp").then(|| format!("{port}/{proto}"))
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
        let strings = [
            ("WorkingDir", &run.working_dir),
            ("User", &run.user),
            ("StopSignal", &run.stop_signal),
        ];
        for (field, value) in strings {
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
pub struct Overrides {
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

/// Write an image's configuration into the spec a command line made, as
/// docker does: Entrypoint + (the command given, else Cmd) as the process's
/// args; the image's Env over the defaults but under `-e`; WorkingDir unless
/// `-w`; User unless `--user`, resolved against the image's own files.
// ANCHOR: apply
pub fn apply(
    spec: &mut Spec,
    image: &str,
    config: &ImageConfig,
    overrides: &Overrides,
    files: &dyn RootFiles,
) -> Result<(), Error> {
    let config = &config.config;
    let command = if overrides.command.is_empty() {
        config.cmd.clone().unwrap_or_default()
    } else {
        stage01_uts::cli::utf8("COMMAND", &overrides.command)?
    };
    let args: Vec<String> = (config.entrypoint.iter().flatten().cloned())
        .chain(command)
        .collect();
    if args.is_empty() {
        return Err(Error::primitive(NoCommand(image.to_owned())));
    }
    spec::process_mut(spec).set_args(Some(args));

    for var in config.env.iter().flatten() {
        let (key, value) = var.split_once('=').unwrap_or((var, ""));
        if !overrides.env_keys.iter().any(|k| k == key) {
            spec::set_env(spec, key, value);
        }
    }
    if let (false, Some(dir)) = (
        overrides.workdir,
        config.working_dir.as_ref().filter(|d| !d.is_empty()),
    ) {
        spec::process_mut(spec).set_cwd(PathBuf::from(dir));
    }
    let user = config.user.as_ref().filter(|u| !u.is_empty());
    if let (false, Some(user)) = (overrides.user, user) {
        let user: UserSpec = user.parse().map_err(Error::primitive)?;
        // HOME from the user's entry only if neither -e nor the image set it.
        let home_given = overrides.env_keys.iter().any(|k| k == "HOME")
            || config.env.iter().flatten().any(|v| v.starts_with("HOME="));
        stage04_user::user::apply(spec, &user, files, home_given)?;
    }
    if let Some(signal) = config.stop_signal.as_ref().filter(|s| !s.is_empty()) {
        spec::set_annotation(spec, STOP_SIGNAL, signal);
    }
    let exposed: Vec<String> = config
        .exposed_ports
        .iter()
        .flatten()
        .filter_map(|(key, _)| exposed_port(key))
        .collect();
    if !exposed.is_empty() {
        spec::set_annotation(spec, EXPOSED_PORTS, &exposed.join(","));
    }
    let shown = spec.process().as_ref().and_then(|p| p.args().clone());
    explain!(
        "(image config of {image})" => "{shown:?}",
        "Entrypoint + Cmd (or the command given), Env under -e, WorkingDir, User"
    );
    Ok(())
}
// ANCHOR_END: apply

/// The annotation that carries the image's StopSignal to `stop` (stage 08),
/// under the name containerd gives it.
pub const STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";

/// The annotation that carries the image's ExposedPorts to `-P` (stage
/// 09): `80/tcp,53/udp`.
pub const EXPOSED_PORTS: &str = "run.myruntime.image.exposed-ports";

#[cfg(test)]
mod tests {
    use super::*;
    use stage03_mount::path::RootDir;
    use std::path::Path;

    fn config(json: &str) -> ImageConfig {
        ImageConfig::parse(json.as_bytes()).unwrap()
    }

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/var/cache/nginx:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "nginx:x:101:\nwww:x:33:nginx\n",
        )
        .unwrap();
        dir
    }

    fn applied(json: &str, given: Overrides) -> Spec {
        let mut spec = spec::minimal(
            vec!["alpine".into()],
            vec!["PATH=/bin".into(), "HOME=/root".into(), "MODE=cli".into()],
        );
        let root = rootfs();
        apply(
            &mut spec,
            "nginx",
            &config(json),
            &given,
            &RootDir(root.path()),
        )
        .unwrap();
        spec
    }

    fn args(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().args().clone().unwrap()
    }

    const NGINX: &str = r#"{"config": {"Entrypoint": ["/entry.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/usr/sbin:/usr/bin", "MODE=image", "NGINX=1.27"], "WorkingDir": "/srv",
        "User": "nginx", "StopSignal": "SIGQUIT"}}"#;

    #[test]
    fn entrypoint_then_cmd_or_the_command_given() {
        let spec = applied(NGINX, Overrides::default());
        assert_eq!(args(&spec), ["/entry.sh", "nginx", "-g", "daemon off;"]);
        let given = Overrides {
            command: vec!["sh".into()],
            ..Overrides::default()
        };
        assert_eq!(args(&applied(NGINX, given)), ["/entry.sh", "sh"]);
    }

    #[test]
    fn image_env_over_defaults_under_dash_e() {
        let given = Overrides {
            env_keys: vec!["MODE".into()],
            ..Overrides::default()
        };
        let spec = applied(NGINX, given);
        let env = spec::env(&spec);
        assert!(env.contains(&"PATH=/usr/sbin:/usr/bin".into()), "{env:?}");
        assert!(env.contains(&"MODE=cli".into()), "-e wins: {env:?}");
        assert!(env.contains(&"NGINX=1.27".into()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }

    #[test]
    fn exposed_ports_are_checked() {
        assert_eq!(exposed_port("80/tcp").as_deref(), Some("80/tcp"));
        assert_eq!(exposed_port("53/udp").as_deref(), Some("53/udp"));
        assert_eq!(exposed_port("8080").as_deref(), Some("8080/tcp"));
        for bad in ["0/tcp", "x/tcp", "80/sctp", "65536", "80/tcp/x", "../80"] {
            assert_eq!(exposed_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn workdir_user_and_stop_signal_unless_given() {
        let spec = applied(NGINX, Overrides::default());
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.cwd(), Path::new("/srv"));
        let user = process.user();
        assert_eq!((user.uid(), user.gid()), (101, 101));
        assert_eq!(user.additional_gids().as_deref(), Some(&[101, 33][..]));
        assert_eq!(spec::get_env(&spec, "HOME"), Some("/var/cache/nginx"));
        assert_eq!(spec::annotation(&spec, STOP_SIGNAL), Some("SIGQUIT"));
        let given = Overrides {
            workdir: true,
            user: true,
            ..Overrides::default()
        };
        let spec = applied(NGINX, given);
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!(process.user().uid(), 0);
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
            r#"{"config": {"StopSignal": "TERM\u0000"}}"#,
            r#"{"config": {"Cmd": "not a list"}}"#,
            "[]",
        ] {
            assert!(ImageConfig::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_to_run_is_refused() {
        let mut spec = spec::minimal(vec![], vec![]);
        let root = rootfs();
        let err = apply(
            &mut spec,
            "scratch",
            &config("{}"),
            &Overrides::default(),
            &RootDir(root.path()),
        )
        .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"the image scratch has no Entrypoint or Cmd: give the command to run after its name");
    }
}
