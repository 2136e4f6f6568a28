//! `--network`: which network a container gets, written into its spec.

use std::fmt;
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;
use stage01_uts::spec::{self, LinuxNamespaceType, Spec};
use stage01_uts::{ContainerId, Error};
use std::path::Path;

use stage06_overlay::cli::StoreArgs;
use stage08_lifecycle::cli::Flags;

/// The flags stage 09 adds to `run` and `create`.
// ANCHOR: flags
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct NetworkFlags {
    /// The container's network: bridge (eth0 on the bridge myruntime0, an
    /// address of its own), NAME (a network `network create` made), none (a
    /// namespace of its own with only its loopback), host (the host's,
    /// shared), pasta (an ordinary user's: carried by pasta) or
    /// container:NAME (another container's) [default: bridge for root,
    /// else pasta, or none without it; MYRUNTIME_NETWORK sets another]
    #[arg(long = "network", visible_alias = "net", value_name = "NETWORK")]
    pub network: Option<Mode>,

    /// The container's address on its network [default: the lowest free
    /// one]
    #[arg(long = "ip", value_name = "ADDRESS")]
    pub ip: Option<std::net::Ipv4Addr>,

    /// Publish a container port on the host (repeatable; bridge networks,
    /// pasta):
    /// [IP:]HOST:CONTAINER[/tcp|/udp], ranges such as 8080-8081:80-81
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<crate::ports::Publish>,

    /// Publish every port the image exposes on a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,

    /// A nameserver for the container's resolv.conf (repeatable) [default:
    /// the host's, without those on loopback]
    #[arg(long = "dns", value_name = "ADDRESS")]
    pub dns: Vec<std::net::IpAddr>,

    /// A search domain for the container's resolv.conf (repeatable)
    #[arg(long = "dns-search", value_name = "DOMAIN", value_parser = domain)]
    pub dns_search: Vec<String>,

    /// An option for the container's resolv.conf, such as ndots:2
    /// (repeatable)
    #[arg(long = "dns-option", value_name = "OPTION", value_parser = domain)]
    pub dns_option: Vec<String>,

    /// A line for the container's /etc/hosts (repeatable)
    #[arg(long = "add-host", value_name = "NAME:ADDRESS")]
    pub add_host: Vec<crate::dns::ExtraHost>,
}

/// A word of resolv.conf: no space, comma or newline can break a line.
fn domain(text: &str) -> Result<String, InvalidValue> {
    if text.is_empty()
        || text.len() > 253
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return InvalidValue::refuse(
            "dns-search/dns-option",
            text,
            "give a domain such as example.com, or an option such as ndots:2",
        );
    }
    Ok(text.to_owned())
}

/// The annotation that says which network a container is on.
pub const NETWORK_ANNOTATION: &str = "run.myruntime.network";
/// The annotation that holds the address asked for with `--ip`.
pub const IP_ANNOTATION: &str = "run.myruntime.network.ip";
/// The annotation that holds the published ports, comma-separated.
pub const PORTS_ANNOTATION: &str = "run.myruntime.network.ports";
/// What gives the default network when `--network` is not given.
pub const NETWORK_ENV: &str = "MYRUNTIME_NETWORK";

/// `--ip` or `-p` without a bridge network.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} needs a bridge network (--network bridge or NAME; -p also pasta): only they give addresses and publish ports"
)]
pub struct NeedsBridge(&'static str);

/// `--dns` and its friends on the host's network.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} needs a network of the container's own: with --network host it shares the host's files"
)]
pub struct NeedsNamespace(&'static str);
// ANCHOR_END: flags

/// A network, as `--network` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace of its own, with only `lo`.
    None,
    /// A namespace with `lo` and `eth0` on a bridge network: the default
    /// one (`bridge`) or one `network create` made.
    Network(String),
    /// The host's network namespace.
    Host,
    /// A namespace with `lo` and a tap device pasta carries: an ordinary
    /// user's network.
    Pasta,
    /// Another container's network namespace, shared (by name or id
    /// prefix on the command line; by full id in the spec).
    Container(String),
}

impl FromStr for Mode {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Mode::None),
            "host" => Ok(Mode::Host),
            "pasta" => Ok(Mode::Pasta),
            _ if text.starts_with("container:") => {
                let target = &text["container:".len()..];
                let ok = !target.is_empty()
                    && target.len() <= 128
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if ok {
                    Ok(Mode::Container(target.to_owned()))
                } else {
                    InvalidValue::refuse(
                        "network",
                        text,
                        "give container:NAME or container:ID of a running container",
                    )
                }
            }
            crate::networks::DEFAULT => Ok(Mode::Network(text.to_owned())),
            _ if crate::networks::check_name(text).is_ok() => Ok(Mode::Network(text.to_owned())),
            _ => InvalidValue::refuse(
                "network",
                text,
                "give none, bridge, host, pasta, container:NAME or the name of a network (network ls lists them)",
            ),
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
            Some("pasta") => Mode::Pasta,
            Some(other) if other.starts_with("container:") => {
                Mode::Container(other["container:".len()..].to_owned())
            }
            Some(name) => Mode::Network(name.to_owned()),
            None => Mode::None,
        }
    }

    /// The network a container gets when `--network` is not given:
    /// `MYRUNTIME_NETWORK` if set (as podman's `containers.conf` sets its
    /// `netns`), else the default bridge for root, as docker; pasta for an
    /// ordinary user, who may not make links on the host, as rootless
    /// podman; `none`, said in one line, when pasta is not installed or
    /// the host has no route out for it.
    // ANCHOR: default
    pub fn default_for_caller() -> Result<Mode, Error> {
        if let Ok(text) = std::env::var(NETWORK_ENV)
            && !text.is_empty()
        {
            return text.parse().map_err(|e: InvalidValue| crate::refused(e));
        }
        if nix::unistd::geteuid().is_root() {
            return Ok(Mode::Network(crate::networks::DEFAULT.to_owned()));
        }
        if !crate::pasta::available() {
            eprintln!(
                "myruntime: pasta is not installed (apt-get install passt): the container gets --network none"
            );
        } else if !crate::pasta::has_default_route() {
            eprintln!(
                "myruntime: this host has no default route for pasta to carry traffic through: the container gets --network none"
            );
        } else {
            return Ok(Mode::Pasta);
        }
        Ok(Mode::None)
    }
    // ANCHOR_END: default

    /// Whether the container gets a network namespace of its own.
    pub fn has_namespace(&self) -> bool {
        *self != Mode::Host
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
            Mode::Network(name) => name,
            Mode::Host => "host",
            Mode::Pasta => "pasta",
            Mode::Container(id) => return write!(f, "container:{id}"),
        })
    }
}

// ANCHOR: write
impl Flags for NetworkFlags {
    type Verbs = crate::verbs::NetworkVerb;

    /// `none` and bridge networks are a network namespace in the spec (a
    /// bridge network with an annotation naming it, and `--ip`'s address,
    /// `-p`'s ports), with the container's own resolv.conf, hosts and
    /// hostname; `host` is the namespace's absence.
    fn write(&self, spec: &mut Spec, root: &Path, id: &ContainerId) -> Result<(), Error> {
        let mode = match &self.network {
            Some(mode) => mode.clone(),
            None => Mode::default_for_caller()?,
        };
        if let Mode::Container(query) = &mode {
            return self.join(spec, root, query);
        }
        if !matches!(mode, Mode::Network(_)) && self.ip.is_some() {
            return Err(crate::refused(NeedsBridge("--ip")));
        }
        if !matches!(mode, Mode::Network(_) | Mode::Pasta) {
            if !self.publish.is_empty() {
                return Err(crate::refused(NeedsBridge("-p")));
            }
            if self.publish_all {
                return Err(crate::refused(NeedsBridge("-P")));
            }
        }
        if !mode.has_namespace() {
            for (given, flag) in [
                (!self.dns.is_empty(), "--dns"),
                (!self.dns_search.is_empty(), "--dns-search"),
                (!self.dns_option.is_empty(), "--dns-option"),
                (!self.add_host.is_empty(), "--add-host"),
            ] {
                if given {
                    return Err(crate::refused(NeedsNamespace(flag)));
                }
            }
            return Ok(());
        }
        // A network that does not exist is refused now, before the
        // container is (docker's "network not found"); the default one is
        // made on first use.
        if let Mode::Network(name) = &mode
            && name != crate::networks::DEFAULT
            && crate::networks::Net::load(root, name).is_none()
        {
            return Err(crate::refused(crate::networks::NetworkError::Unknown(
                name.clone(),
            )));
        }
        spec::add_namespace(spec, LinuxNamespaceType::Network);
        let joined = |items: Vec<String>| items.join(",");
        for (key, value) in [
            (
                crate::dns::DNS_ANNOTATION,
                joined(self.dns.iter().map(ToString::to_string).collect()),
            ),
            (
                crate::dns::SEARCH_ANNOTATION,
                joined(self.dns_search.clone()),
            ),
            (
                crate::dns::OPTION_ANNOTATION,
                joined(self.dns_option.clone()),
            ),
            (
                crate::dns::HOSTS_ANNOTATION,
                joined(self.add_host.iter().map(ToString::to_string).collect()),
            ),
        ] {
            if !value.is_empty() {
                spec::set_annotation(spec, key, &value);
            }
        }
        crate::dns::add_mounts(spec, &crate::dns::container_dir(root, id));
        if let Mode::Network(_) | Mode::Pasta = &mode {
            spec::set_annotation(spec, NETWORK_ANNOTATION, &mode.to_string());
            if let Some(ip) = self.ip {
                spec::set_annotation(spec, IP_ANNOTATION, &ip.to_string());
            }
            let mut ports: Vec<crate::ports::Port> =
                self.publish.iter().flat_map(|p| p.0.clone()).collect();
            if self.publish_all {
                let exposed: Vec<String> =
                    spec::annotation(spec, stage07_image::config::EXPOSED_PORTS)
                        .map(|t| t.split(',').map(str::to_owned).collect())
                        .unwrap_or_default();
                let claims = crate::network::published_ports(root);
                let more = crate::ports::publish_all(&exposed, &ports, &claims);
                ports.extend(more);
            }
            let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
            if !ports.is_empty() {
                spec::set_annotation(spec, PORTS_ANNOTATION, &ports.join(","));
            }
        }
        Ok(())
    }

    fn run(verb: &Self::Verbs, store: &StoreArgs) -> Result<(), Error> {
        verb.run(store)
    }
}

/// A flag `--network container:` cannot take: the network is the other
/// container's, as it is.
#[derive(Debug, thiserror::Error)]
#[error("{0} cannot be given with --network container:, whose network is the other container's")]
pub struct Conflicting(&'static str);

impl NetworkFlags {
    /// `--network container:NAME`: the other container by full id (a
    /// name could name another container later), a network namespace
    /// entry (so `exec` joins it too) and its name files.
    fn join(&self, spec: &mut Spec, root: &Path, query: &str) -> Result<(), Error> {
        for (given, flag) in [
            (self.ip.is_some(), "--ip"),
            (!self.publish.is_empty(), "-p"),
            (self.publish_all, "-P"),
            (!self.dns.is_empty(), "--dns"),
            (!self.dns_search.is_empty(), "--dns-search"),
            (!self.dns_option.is_empty(), "--dns-option"),
            (!self.add_host.is_empty(), "--add-host"),
        ] {
            if given {
                return Err(crate::refused(Conflicting(flag)));
            }
        }
        let target = crate::join::resolve(root, query)?;
        spec::add_namespace(spec, LinuxNamespaceType::Network);
        spec::set_annotation(
            spec,
            NETWORK_ANNOTATION,
            &Mode::Container(target.to_string()).to_string(),
        );
        crate::dns::add_mounts(spec, &crate::dns::container_dir(root, &target));
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
        assert_eq!(
            "bridge".parse::<Mode>().unwrap(),
            Mode::Network("bridge".into())
        );
        assert_eq!("app".parse::<Mode>().unwrap(), Mode::Network("app".into()));
        assert_eq!(
            "container:web".parse::<Mode>().unwrap(),
            Mode::Container("web".into())
        );
        for bad in ["", "x", "a/b", "../x", "container:", "container:a/b"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn none_puts_a_network_namespace_in_the_spec() {
        let with = |network: Mode, ip, ports: &[&str]| {
            let mut spec = spec::minimal(vec!["true".into()], vec![]);
            NetworkFlags {
                network: Some(network),
                ip,
                publish: ports.iter().map(|p| p.parse().unwrap()).collect(),
                ..NetworkFlags::default()
            }
            .write(&mut spec, Path::new("/r"), &ContainerId::generate())
            .map(|()| spec)
        };
        let bridge = Mode::Network("bridge".into());
        for mode in [Mode::None, bridge.clone(), Mode::Host] {
            let spec = with(mode.clone(), None, &[]).unwrap();
            assert_eq!(Mode::of(&spec), mode);
            // Its own name files, with a namespace of its own only.
            let mounts = spec.mounts().clone().unwrap_or_default();
            let hosts = mounts
                .iter()
                .find(|m| m.destination() == Path::new("/etc/hosts"));
            assert_eq!(hosts.is_some(), mode.has_namespace(), "{mode}");
        }
        let ip = Some(std::net::Ipv4Addr::new(10, 99, 0, 9));
        let bridge = with(bridge, ip, &["8080:80", "53:53/udp"]).unwrap();
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
