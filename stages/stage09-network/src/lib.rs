//! Stage 09 — a network of the container's own.
//!
//! Stage 08 as a library, plus the network namespace: its own interfaces,
//! addresses, routes, ports and firewall. So far this stage gives a
//! container one of three networks, as `docker run --network` does:
//!
//! - `none`: a network namespace of its own holding only its loopback, up
//!   (a new namespace's `lo` starts down: 127.0.0.1 would not even answer);
//! - `bridge`: that, plus `eth0` on the bridge `myruntime0`, with an address
//!   of its own and a route through the bridge;
//! - `host`: the host's namespace, shared, as every earlier stage did.
//!
//! - [`cli`]: `--network` and `--ip`, written into the spec;
//! - [`loopback`]: the namespace (one clone flag) and `lo` brought up;
//! - [`network`]: the bridge network's primitive; [`bridge`], its host side
//!   (rtnetlink); [`iface`], its container side (ioctls); [`ipam`], the
//!   addresses; [`firewall`], NAT, forwarding and published ports
//!   (nftables); [`ports`], `-p`.

pub mod bridge;
pub mod cli;
pub mod firewall;
pub mod iface;
pub mod ipam;
pub mod loopback;
pub mod network;
pub mod ports;

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
        Ok(match cli::Mode::of(spec) {
            cli::Mode::Bridge => vec![Box::new(network::BridgeNetwork::new(
                root,
                id,
                cli::wanted_address(spec),
                cli::published(spec),
            ))],
            _ => vec![Box::new(loopback::Loopback)],
        })
    }

    fn reclaim(&self, root: &Path, id: &ContainerId) {
        network::reclaim(root, id);
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
