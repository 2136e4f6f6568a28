//! `--network`: which network a container gets, written into its spec.

use std::fmt;
use std::str::FromStr;

use stage01_uts::Error;
use stage01_uts::cli::InvalidValue;
use stage01_uts::spec::{self, LinuxNamespaceType, Spec};
use stage08_lifecycle::cli::Flags;

/// The flags stage 09 adds to `run` and `create`.
// ANCHOR: flags
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct NetworkFlags {
    /// The container's network: none (a namespace of its own with only its
    /// loopback) or host (the host's, shared)
    #[arg(
        long = "network",
        visible_alias = "net",
        value_name = "NETWORK",
        default_value_t
    )]
    pub network: Mode,
}
// ANCHOR_END: flags

/// A network, as `--network` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace of its own, with only `lo`.
    None,
    /// The host's network namespace.
    #[default]
    Host,
}

impl FromStr for Mode {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Mode::None),
            "host" => Ok(Mode::Host),
            _ => InvalidValue::refuse("network", text, "give none or host"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::None => "none",
            Mode::Host => "host",
        })
    }
}

// ANCHOR: write
impl Flags for NetworkFlags {
    /// `none` is a network namespace in the spec; `host` is its absence.
    fn write(&self, spec: &mut Spec) -> Result<(), Error> {
        if self.network == Mode::None {
            spec::add_namespace(spec, LinuxNamespaceType::Network);
        }
        Ok(())
    }
}
// ANCHOR_END: write

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_host_and_nothing_else() {
        assert_eq!("none".parse::<Mode>().unwrap(), Mode::None);
        assert_eq!("host".parse::<Mode>().unwrap(), Mode::Host);
        for bad in ["", "bridge0", "NONE", "container:x"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
        assert_eq!(Mode::default(), Mode::Host);
    }

    #[test]
    fn none_puts_a_network_namespace_in_the_spec() {
        let with = |network| {
            let mut spec = spec::minimal(vec!["true".into()], vec![]);
            NetworkFlags { network }.write(&mut spec).unwrap();
            spec::has_namespace(&spec, LinuxNamespaceType::Network)
        };
        assert!(with(Mode::None));
        assert!(!with(Mode::Host));
    }
}
