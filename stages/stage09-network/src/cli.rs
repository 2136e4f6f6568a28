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
    /// loopback), bridge (eth0 on the bridge myruntime0, an address of its
    /// own) or host (the host's, shared)
    #[arg(
        long = "network",
        visible_alias = "net",
        value_name = "NETWORK",
        default_value_t
    )]
    pub network: Mode,

    /// The container's address on the bridge network [default: the lowest
    /// free one]
    #[arg(long = "ip", value_name = "ADDRESS")]
    pub ip: Option<std::net::Ipv4Addr>,

    /// Publish a container port on the host (repeatable; bridge network):
    /// [IP:]HOST:CONTAINER[/tcp|/udp], ranges such as 8080-8081:80-81
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<crate::ports::Publish>,
}

/// The annotation that says which network a container is on.
pub const NETWORK_ANNOTATION: &str = "run.myruntime.network";
/// The annotation that holds the address asked for with `--ip`.
pub const IP_ANNOTATION: &str = "run.myruntime.network.ip";
/// The annotation that holds the published ports, comma-separated.
pub const PORTS_ANNOTATION: &str = "run.myruntime.network.ports";

/// `--ip` or `-p` without the bridge network.
#[derive(Debug, thiserror::Error)]
#[error("{0} needs --network bridge: only the bridge network gives addresses and publishes ports")]
pub struct NeedsBridge(&'static str);
// ANCHOR_END: flags

/// A network, as `--network` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace of its own, with only `lo`.
    None,
    /// A namespace with `lo` and `eth0` on the bridge.
    Bridge,
    /// The host's network namespace.
    #[default]
    Host,
}

impl FromStr for Mode {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Mode::None),
            "bridge" => Ok(Mode::Bridge),
            "host" => Ok(Mode::Host),
            _ => InvalidValue::refuse("network", text, "give none, bridge or host"),
        }
    }
}

impl Mode {
    /// The network a spec asks for.
    pub fn of(spec: &Spec) -> Mode {
        if !spec::has_namespace(spec, LinuxNamespaceType::Network) {
            return Mode::Host;
        }
        match spec::annotation(spec, NETWORK_ANNOTATION) {
            Some("bridge") => Mode::Bridge,
            _ => Mode::None,
        }
    }
}

/// The ports a spec publishes (`-p`).
pub fn published(spec: &Spec) -> Vec<crate::ports::Port> {
    spec::annotation(spec, PORTS_ANNOTATION)
        .map(|text| text.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The address a spec asks for (`--ip`), if any.
pub fn wanted_address(spec: &Spec) -> Option<std::net::Ipv4Addr> {
    spec::annotation(spec, IP_ANNOTATION)?.parse().ok()
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::None => "none",
            Mode::Bridge => "bridge",
            Mode::Host => "host",
        })
    }
}

// ANCHOR: write
impl Flags for NetworkFlags {
    /// `none` and `bridge` are a network namespace in the spec (`bridge`
    /// with an annotation naming it, and `--ip`'s address); `host` is its
    /// absence.
    fn write(&self, spec: &mut Spec) -> Result<(), Error> {
        if self.network != Mode::Bridge {
            if self.ip.is_some() {
                return Err(crate::refused(NeedsBridge("--ip")));
            }
            if !self.publish.is_empty() {
                return Err(crate::refused(NeedsBridge("-p")));
            }
        }
        if self.network != Mode::Host {
            spec::add_namespace(spec, LinuxNamespaceType::Network);
        }
        if self.network == Mode::Bridge {
            spec::set_annotation(spec, NETWORK_ANNOTATION, "bridge");
            if let Some(ip) = self.ip {
                spec::set_annotation(spec, IP_ANNOTATION, &ip.to_string());
            }
            let ports: Vec<String> = self
                .publish
                .iter()
                .flat_map(|p| p.0.iter().map(ToString::to_string))
                .collect();
            if !ports.is_empty() {
                spec::set_annotation(spec, PORTS_ANNOTATION, &ports.join(","));
            }
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
        assert_eq!("bridge".parse::<Mode>().unwrap(), Mode::Bridge);
        for bad in ["", "bridge0", "NONE", "container:x"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
        assert_eq!(Mode::default(), Mode::Host);
    }

    #[test]
    fn none_puts_a_network_namespace_in_the_spec() {
        let with = |network, ip, ports: &[&str]| {
            let mut spec = spec::minimal(vec!["true".into()], vec![]);
            NetworkFlags {
                network,
                ip,
                publish: ports.iter().map(|p| p.parse().unwrap()).collect(),
            }
            .write(&mut spec)
            .map(|()| spec)
        };
        for mode in [Mode::None, Mode::Bridge, Mode::Host] {
            assert_eq!(Mode::of(&with(mode, None, &[]).unwrap()), mode);
        }
        let ip = Some(std::net::Ipv4Addr::new(10, 99, 0, 9));
        let bridge = with(Mode::Bridge, ip, &["8080:80", "53:53/udp"]).unwrap();
        assert_eq!(wanted_address(&bridge), ip);
        assert_eq!(published(&bridge).len(), 2);
        assert!(
            with(Mode::None, ip, &[]).is_err(),
            "--ip without the bridge"
        );
        assert!(
            with(Mode::Host, None, &["8080:80"]).is_err(),
            "-p without the bridge"
        );
    }
}
