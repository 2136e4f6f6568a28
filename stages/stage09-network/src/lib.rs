//! Stage 09 — a network of the container's own.
//!
//! Stage 08 as a library, plus the network namespace: its own interfaces,
//! addresses, routes, ports and firewall. So far this stage gives a
//! container one of two networks, as `docker run --network` does:
//!
//! - `none`: a network namespace of its own holding only its loopback, up
//!   (a new namespace's `lo` starts down: 127.0.0.1 would not even answer);
//! - `host`: the host's namespace, shared, as every earlier stage did.
//!
//! - [`cli`]: `--network`, written into the spec (`linux.namespaces`);
//! - [`loopback`]: the primitive: the namespace (one clone flag) and `lo`
//!   brought up from inside it.

pub mod cli;
pub mod loopback;

use stage01_uts::spec::{LinuxNamespaceType, Spec, has_namespace};
use stage01_uts::{ContainerId, Error, Primitive};

/// What stage 09 adds to every container made from a spec.
pub struct Network;

/// The extension stage 09's binary (and `myruntime`) give stage 08.
pub static NETWORK: Network = Network;

// ANCHOR: extension
impl stage08_lifecycle::Extension for Network {
    fn primitives(&self, spec: &Spec, _: &ContainerId) -> Result<Vec<Box<dyn Primitive>>, Error> {
        Ok(if has_namespace(spec, LinuxNamespaceType::Network) {
            vec![Box::new(loopback::Loopback)]
        } else {
            Vec::new()
        })
    }
}
// ANCHOR_END: extension
