//! Stage 09 — a network of the container's own.
//!
//! Stage 08 as a library, plus the network namespace: its own interfaces,
//! addresses, routes, ports and firewall. A container gets one of these,
//! as `docker run --network` gives:
//!
//! - a bridge network (`bridge`, the default for root, or one `network
//!   create` made): `eth0` on the network's bridge with an address of its
//!   own, NAT out, published ports in, and its members' names;
//! - `none`: a network namespace of its own holding only its loopback, up
//!   (a new namespace's `lo` starts down: 127.0.0.1 would not even answer);
//! - `host`: the host's namespace, shared, as every earlier stage did;
//! - `pasta`: an ordinary user's (the default for one): pasta carries it;
//! - `container:NAME`: another container's, joined.
//!
//! - [`cli`]: the flags, written into the spec; [`verbs`]: `network ...`;
//! - [`loopback`]: the namespace (one clone flag) and `lo` brought up;
//! - [`network`]: a bridge network's primitive; [`networks`], networks by
//!   name; [`bridge`], the host's side (rtnetlink); [`iface`], the
//!   container's side (ioctls); [`ipam`], the addresses; [`firewall`], NAT,
//!   forwarding, isolation and published ports (nftables); [`ports`], `-p`
//!   and `-P`; [`dns`], resolv.conf, hosts and hostname;
//! - [`pasta`]: the rootless network; [`join`]: `container:NAME`.

pub mod bridge;
pub mod cli;
pub mod dns;
pub mod firewall;
pub mod iface;
pub mod ipam;
pub mod join;
pub mod loopback;
pub mod network;
pub mod networks;
pub mod pasta;
pub mod ports;
pub mod verbs;

use std::path::Path;

use stage01_uts::spec::{LinuxNamespaceType, Spec, has_namespace};
use stage01_uts::{ContainerId, Error, Primitive};

/// A network error, as the runtime's own failure (status 125).
pub(crate) fn refused(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::WithCode {
        code: stage01_uts::error::EXIT_RUNTIME,
        source: Box::new(e),
    }
}

/// What stage 09 adds to every container made from a spec.
pub struct Network;

/// The extension stage 09's binary (and `myruntime`) give stage 08.
pub static NETWORK: Network = Network;

// ANCHOR: extension
impl stage08_lifecycle::Extension for Network {
    fn primitives(
        &self,
        spec: &Spec,
        id: &ContainerId,
        root: &Path,
    ) -> Result<Vec<Box<dyn Primitive>>, Error> {
        if !has_namespace(spec, LinuxNamespaceType::Network) {
            return Ok(Vec::new());
        }
        let mode = cli::Mode::of(spec);
        if let cli::Mode::Container(target) = &mode {
            // Nothing of its own: the other's namespace and files.
            let target = target.parse().map_err(|_| {
                refused(join::JoinError::Target(
                    target.clone(),
                    "not a container id".into(),
                ))
            })?;
            return Ok(vec![Box::new(join::JoinNetwork::new(root, target))]);
        }
        let files: Box<dyn Primitive> = Box::new(dns::DnsFiles::new(spec, root, id));
        let network: Box<dyn Primitive> = match mode {
            cli::Mode::Network(name) => {
                let mut names: Vec<String> = spec.hostname().iter().cloned().collect();
                if let Ok(record) = stage08_lifecycle::state::Store::new(root).record(id) {
                    names.push(record.name);
                }
                Box::new(network::BridgeNetwork::new(
                    root,
                    id,
                    &name,
                    names,
                    cli::wanted_address(spec),
                    cli::published(spec),
                ))
            }
            cli::Mode::Pasta => Box::new(pasta::Pasta::new(root, id, cli::published(spec))),
            _ => Box::new(loopback::Loopback),
        };
        Ok(vec![files, network])
    }

    fn reclaim(&self, root: &Path, id: &ContainerId) {
        network::reclaim(root, id);
        pasta::stop(root, id);
    }

    fn settings(&self, root: &Path, id: &ContainerId, spec: &Spec) -> serde_json::Value {
        network::settings(root, id, spec)
    }

    fn ports(&self, spec: &Spec) -> String {
        cli::published(spec)
            .iter()
            .map(|p| {
                let ip = p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                format!("{ip}:{}->{}/{}", p.host, p.container, p.proto)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
// ANCHOR_END: extension
