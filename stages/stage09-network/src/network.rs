//! The bridge network: a container on the bridge `myruntime0`, with an
//! address of the bridge's subnet, a default route through the bridge, and
//! its loopback.
//!
//! - `prepare` (host, before clone): the bridge, made if missing, with the
//!   gateway's address; its NAT and forwarding rules; an address leased for
//!   the container (IPAM);
//! - `attach` (host, after clone, while the child waits): a veth pair, one
//!   end on the bridge and up, the other moved into the child's network
//!   namespace;
//! - `setup` (the child, inside its namespace): `lo` up; the veth end
//!   renamed `eth0`, given its address, up; the default route;
//! - `cleanup` (host): the host's end deleted (the peer goes with it; when
//!   the namespace dies first, both are gone already), the lease released.
//!
//! What a killed monitor could not clean up, the next command does
//! ([`reclaim`]): the lease, and the host's end if it is still there.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use stage01_uts::{ContainerId, Context, Error, Phase, Primitive, explain};

use crate::bridge;
use crate::iface;
use crate::ipam::{Claims, IpamError, Leases, Subnet};
use crate::ports::Port;

/// The default bridge.
pub const BRIDGE: &str = "myruntime0";
/// Its subnet unless `MYRUNTIME_BRIDGE_SUBNET` says otherwise when it is
/// first used with a data directory.
pub const DEFAULT_SUBNET: &str = "10.99.0.0/16";
pub const SUBNET_ENV: &str = "MYRUNTIME_BRIDGE_SUBNET";

/// The bridge network's files under the data directory.
fn dir(root: &Path) -> PathBuf {
    root.join("networks").join("bridge")
}

/// The leases of the bridge network.
pub fn leases(root: &Path) -> Leases {
    Leases::new(&dir(root).join("leases"))
}

/// The host ports containers of the bridge network publish.
pub fn published_ports(root: &Path) -> Claims {
    Claims::new(&dir(root).join("ports"))
}

/// The bridge network's subnet: recorded with the data directory the first
/// time it is used, from `MYRUNTIME_BRIDGE_SUBNET` or the default.
pub fn subnet(root: &Path) -> Result<Subnet, Error> {
    let path = dir(root).join("subnet");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text.trim().parse().map_err(crate::refused);
    }
    let text = std::env::var(SUBNET_ENV).unwrap_or_else(|_| DEFAULT_SUBNET.to_owned());
    let subnet: Subnet = text.parse().map_err(crate::refused)?;
    let io = |e: std::io::Error| {
        crate::refused(IpamError::Io {
            what: "record the subnet in",
            path: path.display().to_string(),
            why: e.to_string(),
        })
    };
    std::fs::create_dir_all(dir(root)).map_err(io)?;
    let aside = path.with_extension(format!("new-{}", std::process::id()));
    std::fs::write(&aside, format!("{subnet}\n")).map_err(io)?;
    std::fs::rename(&aside, &path).map_err(io)?;
    Ok(subnet)
}

/// The names of a container's veth pair on the host: `mr` (the bridge's
/// end) and `mp` (the peer, until it is `eth0` inside), with the id's first
/// twelve digits: within IFNAMSIZ, unique per container.
pub fn veth_names(id: &ContainerId) -> (String, String) {
    let short = &id.as_str()[..12];
    (format!("mr{short}"), format!("mp{short}"))
}

/// `--network bridge` run by an ordinary user.
#[derive(Debug, thiserror::Error)]
#[error(
    "the bridge network needs root: an ordinary user cannot make links in the host's network namespace; use --network none or host"
)]
pub struct RootlessBridge;

/// The stage 09 primitive for `--network bridge`.
// ANCHOR: bridge_network
pub struct BridgeNetwork {
    root: PathBuf,
    id: ContainerId,
    wanted: Option<Ipv4Addr>,
    ports: Vec<Port>,
    subnet: Option<Subnet>,
    address: Option<Ipv4Addr>,
}

impl BridgeNetwork {
    pub fn new(root: &Path, id: &ContainerId, wanted: Option<Ipv4Addr>, ports: Vec<Port>) -> Self {
        BridgeNetwork {
            root: root.to_path_buf(),
            id: id.clone(),
            wanted,
            ports,
            subnet: None,
            address: None,
        }
    }
}

/// A host port another container publishes already.
#[derive(Debug, thiserror::Error)]
#[error(
    "the host port {port}/{proto} is published by container {holder} already; choose another with -p"
)]
pub struct PortTaken {
    pub port: u16,
    pub proto: crate::ports::Proto,
    pub holder: String,
}

impl Primitive for BridgeNetwork {
    fn name(&self) -> &'static str {
        "network"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNET
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        // A bridge and veth pairs are links of the host's namespace, which
        // only its root may make.
        if !nix::unistd::geteuid().is_root() {
            return Err(crate::refused(RootlessBridge));
        }
        let subnet = subnet(&self.root)?;
        bridge::ensure_bridge(BRIDGE, subnet.gateway(), subnet.prefix()).map_err(crate::refused)?;
        let (gateway, prefix) = (subnet.gateway(), subnet.prefix());
        explain!(
            "RTM_NEWLINK {BRIDGE} (bridge), RTM_NEWADDR {gateway}/{prefix}" => "ok",
            "the bridge is the containers' switch, and its address their gateway"
        );
        crate::firewall::ensure(BRIDGE, &subnet).map_err(crate::refused)?;
        explain!(
            "nft -f - (table inet myruntime), net.ipv4.ip_forward=1" => "ok",
            "the containers' traffic out is masqueraded behind the host's address, and forwarded"
        );
        let address = leases(&self.root)
            .allocate(&subnet, self.id.as_str(), self.wanted)
            .map_err(crate::refused)?;
        explain!(
            "lease {address}" => "ok",
            "an address of the bridge's subnet, held by a file no other container can take"
        );
        self.subnet = Some(subnet);
        self.address = Some(address);
        // From here on the lease is held: cleanup (or recovery) releases
        // the ports and rules too.
        let claims = published_ports(&self.root);
        for port in &self.ports {
            if !claims
                .claim(&port.claim_name(), self.id.as_str())
                .map_err(crate::refused)?
            {
                let holder = claims.holder(&port.claim_name()).unwrap_or_default();
                return Err(crate::refused(PortTaken {
                    port: port.host,
                    proto: port.proto,
                    holder: holder.chars().take(12).collect(),
                }));
            }
        }
        crate::firewall::publish(self.id.as_str(), address, &self.ports).map_err(crate::refused)?;
        if !self.ports.is_empty() {
            let count = self.ports.len();
            explain!(
                "nft add rule ... dnat ip to {address}:PORT ({count} ports)" => "ok",
                "a published port: what comes to the host's port goes to the container's"
            );
        }
        Ok(())
    }

    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        let (host, peer) = veth_names(&self.id);
        bridge::add_veth(&host, &peer, BRIDGE, child.as_raw() as u32).map_err(crate::refused)?;
        explain!(
            "RTM_NEWLINK {host}/{peer} (veth), {host} on {BRIDGE}, {peer} into pid {child}'s namespace" => "ok",
            "a virtual cable: one end on the bridge, the other in the container"
        );
        Ok(())
    }

    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let (Some(subnet), Some(address)) = (self.subnet, self.address) else {
            return Ok(());
        };
        // Its loopback first, as on `--network none`.
        crate::loopback::Loopback.setup(ctx)?;
        let (_, peer) = veth_names(&self.id);
        let step = |call: &str, result: Result<(), Errno>| {
            result.map_err(|errno| {
                Error::syscall(call.to_owned(), "setting up the container's network", errno)
            })
        };
        step("ioctl(SIOCSIFNAME, eth0)", iface::rename(&peer, "eth0"))?;
        step(
            "ioctl(SIOCSIFADDR, eth0)",
            iface::address("eth0", address, subnet.prefix()),
        )?;
        step("ioctl(SIOCSIFFLAGS, \"eth0\", IFF_UP)", iface::up("eth0"))?;
        step(
            "ioctl(SIOCADDRT, default)",
            iface::default_route(subnet.gateway()),
        )?;
        let (prefix, gateway) = (subnet.prefix(), subnet.gateway());
        explain!(
            "eth0 {address}/{prefix}, default via {gateway}" => "ok",
            "configured from inside: a veth moved into a namespace arrives down, with no address"
        );
        Ok(())
    }

    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        reclaim(&self.root, &self.id);
        Ok(())
    }
}
// ANCHOR_END: bridge_network

/// What a container held on the bridge network, given back: its lease, and
/// the host's end of its veth pair if it is still there.
///
/// The veth goes before the lease: a container that holds no lease has no
/// veth left either, and costs no netlink call (every `rm` and every
/// foreground `run` comes here, on any network).
pub fn reclaim(root: &Path, id: &ContainerId) {
    let leases = leases(root);
    if !leases
        .held()
        .iter()
        .any(|(_, holder)| holder == id.as_str())
    {
        return;
    }
    // Its rules are added only once its ports are claimed, and the claims
    // go after the rules: no claim, no rule, and no nft to run.
    let ports = published_ports(root);
    if ports.held().iter().any(|(_, holder)| holder == id.as_str()) {
        let _ = crate::firewall::unpublish(id.as_str());
        ports.release(id.as_str());
    }
    let (host, _) = veth_names(id);
    let _ = bridge::delete(&host);
    leases.release(id.as_str());
}

/// `inspect`'s `NetworkSettings`, docker's shape: the network, and on the
/// bridge the address the container holds, its gateway and its ports.
pub fn settings(root: &Path, id: &ContainerId, spec: &stage01_uts::Spec) -> serde_json::Value {
    let mode = crate::cli::Mode::of(spec);
    let mut ports = serde_json::Map::new();
    for p in crate::cli::published(spec) {
        let host_ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
        let entry = ports
            .entry(format!("{}/{}", p.container, p.proto))
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(serde_json::json!({"HostIp": host_ip, "HostPort": p.host.to_string()}));
        }
    }
    let mut networks = serde_json::Map::new();
    if mode == crate::cli::Mode::Bridge {
        let address = leases(root)
            .held()
            .into_iter()
            .find(|(_, holder)| holder == id.as_str())
            .map(|(address, _)| address.to_string())
            .unwrap_or_default();
        let subnet = std::fs::read_to_string(dir(root).join("subnet"))
            .ok()
            .and_then(|t| t.trim().parse::<Subnet>().ok());
        networks.insert(
            "bridge".into(),
            serde_json::json!({
                "IPAddress": address,
                "IPPrefixLen": subnet.map(|s| s.prefix()),
                "Gateway": subnet.map(|s| s.gateway().to_string()),
                "Bridge": BRIDGE,
            }),
        );
    } else {
        networks.insert(mode.to_string(), serde_json::json!({}));
    }
    serde_json::json!({ "Networks": networks, "Ports": ports })
}
