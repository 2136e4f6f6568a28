//! The docker-style hardening flags, written into the spec: capabilities
//! (`--cap-add`, `--cap-drop`, `--privileged`) and `no_new_privs`
//! (`--security-opt no-new-privileges`).

use std::path::Path;

use stage01_uts::spec::{self, Spec};
use stage01_uts::{ContainerId, Error};
use stage06_overlay::cli::StoreArgs;
use stage08_lifecycle::cli::Flags;

/// What gives the default capability set when the flags do not:
/// `MYRUNTIME_DEFAULT_CAPABILITIES` (names, comma-separated, or `ALL`),
/// as `default_capabilities` in podman's containers.conf.
pub const CAPS_ENV: &str = "MYRUNTIME_DEFAULT_CAPABILITIES";

/// The flags the final runtime adds to stage 09's.
// ANCHOR: flags
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct SecurityFlags {
    /// Give the container's root a capability beyond docker's default set
    /// (repeatable; ALL for every one), such as NET_ADMIN
    #[arg(long = "cap-add", value_name = "CAPABILITY")]
    pub cap_add: Vec<String>,

    /// Take a capability of docker's default set away (repeatable; ALL)
    #[arg(long = "cap-drop", value_name = "CAPABILITY")]
    pub cap_drop: Vec<String>,

    /// Every capability, and no masked or read-only paths: the container's
    /// root is the host's root (for what must manage the host)
    #[arg(long)]
    pub privileged: bool,

    /// no-new-privileges: execve never grants a privilege (a setuid bit,
    /// a file capability) (repeatable)
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<SecurityOpt>,
    /// A limit for the container's processes, NAME=SOFT[:HARD] (repeatable),
    /// such as nofile=1024:2048
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<crate::limits::Ulimit>,

    /// How readily the OOM killer picks the container, -1000 to 1000
    #[arg(long = "oom-score-adj", value_name = "N", allow_hyphen_values = true,
          value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub oom_score_adj: Option<i32>,

    /// Mount the container's root read-only
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// A tmpfs at PATH inside, PATH[:OPTIONS] (repeatable), such as
    /// /run:size=64m
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<crate::limits::Tmpfs>,
    /// A kernel setting of the container's own namespaces, KEY=VALUE
    /// (repeatable): net.* (not with --network host), kernel.msg*,
    /// kernel.sem, kernel.shm*, fs.mqueue.*
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctl: Vec<crate::sysctl::Sysctl>,
}
// ANCHOR_END: flags

/// A `--security-opt` the runtime knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityOpt {
    NoNewPrivileges,
}

impl std::str::FromStr for SecurityOpt {
    type Err = stage01_uts::cli::InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                Ok(SecurityOpt::NoNewPrivileges)
            }
            _ => stage01_uts::cli::InvalidValue::refuse(
                "security-opt",
                text,
                "give no-new-privileges (seccomp= and apparmor= are not supported yet)",
            ),
        }
    }
}

/// The final runtime's flags: stage 09's and its own.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct FinalFlags {
    #[command(flatten)]
    pub network: stage09_network::cli::NetworkFlags,
    #[command(flatten)]
    pub security: SecurityFlags,
}

// ANCHOR: write
impl Flags for FinalFlags {
    type Verbs = stage09_network::verbs::NetworkVerb;

    fn write(&self, spec: &mut Spec, root: &Path, id: &ContainerId) -> Result<(), Error> {
        self.network.write(spec, root, id)?;
        let s = &self.security;
        let default: Vec<caps::Capability> = match std::env::var(CAPS_ENV) {
            Ok(text) if text.eq_ignore_ascii_case("ALL") => {
                crate::caps::supported().into_iter().collect()
            }
            Ok(text) if !text.is_empty() => text
                .split(',')
                .map(crate::caps::parse)
                .collect::<Result<_, _>>()
                .map_err(crate::refused)?,
            _ => crate::caps::DOCKER_DEFAULT
                .iter()
                .map(|n| crate::caps::parse(n).expect("docker's names are known"))
                .collect(),
        };
        let set = crate::caps::compute(&default, &s.cap_add, &s.cap_drop, s.privileged)
            .map_err(crate::refused)?;
        crate::caps::write(spec, &set);
        if s.privileged {
            // docker's --privileged: nothing masked, nothing read-only.
            let linux = spec::linux_mut(spec);
            linux.set_masked_paths(Some(Vec::new()));
            linux.set_readonly_paths(Some(Vec::new()));
        }
        if s.security_opt.contains(&SecurityOpt::NoNewPrivileges) {
            spec::process_mut(spec).set_no_new_privileges(Some(true));
        }
        crate::limits::write(spec, &s.ulimit, s.oom_score_adj, s.read_only, &s.tmpfs);
        crate::sysctl::write(spec, &s.sysctl)
    }

    fn run(verb: &Self::Verbs, store: &StoreArgs) -> Result<(), Error> {
        verb.run(store)
    }
}
// ANCHOR_END: write
