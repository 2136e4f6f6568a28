//! `run`'s arguments at stage 03: stage 02's, plus a root filesystem,
//! volumes, a working directory and environment variables.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;

/// `run`'s arguments at stage 03.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage02_pid::cli::RunArgs,

    /// The container's root filesystem: a directory holding its files
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Bind-mount a host path into the container (repeatable); `:ro` makes
    /// it read-only, submounts included
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<Volume>,

    /// The working directory inside the container (created if missing)
    #[arg(short = 'w', long, value_name = "DIR", value_parser = absolute_path)]
    pub workdir: Option<PathBuf>,

    /// Set an environment variable (repeatable); `-e KEY` alone passes the
    /// runtime's own value on
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
}
// ANCHOR_END: run_args

/// `-v HOST:CONTAINER[:ro|:rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

// ANCHOR: volume_rules
impl FromStr for Volume {
    type Err = InvalidValue;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("volume", spec, reason);
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [source, target] => (*source, *target, false),
            [source, target, "ro"] => (*source, *target, true),
            [source, target, "rw"] => (*source, *target, false),
            [_, _, _] => return refuse("the option after the second ':' must be ro or rw"),
            _ => return refuse("write it as HOST:CONTAINER or HOST:CONTAINER:ro"),
        };
        if !source.starts_with('/') {
            return refuse("the host path must be absolute (named volumes do not exist here)");
        }
        if !target.starts_with('/') {
            return refuse("the container path must be absolute");
        }
        if Path::new(target)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return refuse("the container path may not contain '..'");
        }
        if Path::new(target) == Path::new("/") {
            return refuse("the container path may not be / (use --rootfs for that)");
        }
        if covers_kernel_filesystem(Path::new(target)) {
            return refuse(
                "the container path covers /proc, /sys or /dev, which the runtime mounts itself; \
                 mount below /dev or /sys, or elsewhere",
            );
        }
        Ok(Volume {
            source: source.into(),
            target: target.into(),
            read_only,
        })
    }
}
// ANCHOR_END: volume_rules

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source.display(), self.target.display())?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// Whether a container path (absolute, relative to the container's root)
/// is `/proc` or below it, `/sys` or `/dev`: the kernel filesystems the
/// runtime mounts, which a volume would hide (docker and runc refuse them
/// too). Below /sys and /dev a volume is allowed (`-v /dev/snd:/dev/snd`);
/// below /proc nothing is, since /proc/self, /proc/sys and the masked paths
/// are what keep the container in its place.
// ANCHOR: kernel_filesystems
pub fn covers_kernel_filesystem(path: &Path) -> bool {
    let parts: Vec<Component> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    match parts.as_slice() {
        [first, ..] if first.as_os_str() == "proc" => true,
        [only] => only.as_os_str() == "sys" || only.as_os_str() == "dev",
        _ => false,
    }
}
// ANCHOR_END: kernel_filesystems

/// `-e KEY=VALUE`, or `-e KEY` to pass the runtime's own value on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    /// `None` for `-e KEY`.
    pub value: Option<String>,
}

impl FromStr for EnvVar {
    type Err = InvalidValue;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (key, value) = match spec.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (spec, None),
        };
        let refuse = |reason| InvalidValue::refuse("environment variable", spec, reason);
        if key.is_empty() {
            return refuse("the name before '=' is empty");
        }
        if key.contains('\0') || value.as_deref().is_some_and(|v| v.contains('\0')) {
            return refuse("it holds a NUL byte");
        }
        Ok(EnvVar {
            key: key.to_owned(),
            value,
        })
    }
}

/// A path that must be absolute (`-w`), as clap parses it.
pub fn absolute_path(path: &str) -> Result<PathBuf, String> {
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(format!("{path:?} is not absolute; give a path like /app"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/data:/data", "/data", "/data", false)]
    #[case("/srv/www:/usr/share/www:ro", "/srv/www", "/usr/share/www", true)]
    #[case("/a:/b:rw", "/a", "/b", false)]
    fn volumes_parse(
        #[case] spec: &str,
        #[case] source: &str,
        #[case] target: &str,
        #[case] read_only: bool,
    ) {
        let v: Volume = spec.parse().unwrap();
        assert_eq!(
            v,
            Volume {
                source: source.into(),
                target: target.into(),
                read_only
            }
        );
        assert_eq!(
            v.to_string().trim_end_matches(":rw"),
            spec.trim_end_matches(":rw")
        );
    }

    #[rstest]
    #[case("/data", "HOST:CONTAINER")]
    #[case("data:/data", "host path must be absolute")]
    #[case("/data:data", "container path must be absolute")]
    #[case("/data:/x/../../etc", "'..'")]
    #[case("/data:/", "may not be /")]
    #[case("/a:/b:rx", "ro or rw")]
    #[case("/a:/b:ro:z", "HOST:CONTAINER")]
    #[case("/a:/proc", "covers /proc")]
    #[case("/a://proc/", "covers /proc")]
    #[case("/a:/./proc/sys", "covers /proc")]
    #[case("/a:/sys", "covers /proc")]
    #[case("/a:/dev", "covers /proc")]
    fn bad_volumes_say_why(#[case] spec: &str, #[case] reason: &str) {
        let err = spec.parse::<Volume>().unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }

    #[test]
    fn volumes_below_sys_and_dev_are_allowed() {
        for spec in [
            "/a:/dev/snd",
            "/a:/sys/fs/cgroup:ro",
            "/a:/procedures",
            "/a:/devices",
        ] {
            assert!(spec.parse::<Volume>().is_ok(), "{spec}");
        }
    }

    #[test]
    fn env_vars_parse() {
        assert_eq!(
            "A=b=c".parse::<EnvVar>().unwrap(),
            EnvVar {
                key: "A".into(),
                value: Some("b=c".into())
            }
        );
        assert_eq!("TERM".parse::<EnvVar>().unwrap().value, None);
        assert_eq!("E=".parse::<EnvVar>().unwrap().value, Some(String::new()));
        insta::assert_snapshot!("=x".parse::<EnvVar>().unwrap_err().to_string(), @r#"invalid environment variable "=x": the name before '=' is empty"#);
    }
}
