//! A bridge network (the default `bridge`, or one `network create` made):
//! a container on its bridge, with an address of its subnet, a default
//! route through the bridge, and its loopback.
//!
//! - `prepare` (host, before clone): the bridge, made if missing, with the
//!   gateway's address; the NAT and forwarding rules; an address leased for
//!   the container (IPAM); its published ports; its name in the `hosts` of
//!   the other members (and theirs in its own);
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
use crate::ipam::Claims;
use crate::networks::Net;
use crate::ports::Port;

/// The host ports containers publish, whatever their network: a host
/// port is the host's, one container's at a time.
pub fn published_ports(root: &Path) -> Claims {
    Claims::new(&root.join("ports"))
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
    network: String,
    names: Vec<String>,
    wanted: Option<Ipv4Addr>,
    ports: Vec<Port>,
    net: Option<Net>,
    address: Option<Ipv4Addr>,
}

impl BridgeNetwork {
    /// Container `id` (called `names`: hostname, name) on the network
    /// called `network`.
    pub fn new(
        root: &Path,
        id: &ContainerId,
        network: &str,
        names: Vec<String>,
        wanted: Option<Ipv4Addr>,
        ports: Vec<Port>,
    ) -> Self {
        BridgeNetwork {
            root: root.to_path_buf(),
            id: id.clone(),
            network: network.to_owned(),
            names,
            wanted,
            ports,
            net: None,
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
        // Held to the end of prepare: the network cannot go meanwhile, and
        // a member joining at the same moment sees this one's name.
        let _lock = crate::networks::lock(&self.root)?;
        let net = crate::networks::resolve(&self.root, &self.network).map_err(crate::refused)?;
        net.ensure(&self.root).map_err(crate::refused)?;
        let (bridge, gateway, prefix) = (&net.bridge, net.subnet.gateway(), net.subnet.prefix());
        explain!(
            "RTM_NEWLINK {bridge} (bridge), RTM_NEWADDR {gateway}/{prefix}" => "ok",
            "the bridge is the containers' switch, and its address their gateway"
        );
        explain!(
            "nft -f - (table inet myruntime), net.ipv4.ip_forward=1" => "ok",
            "the containers' traffic out is masqueraded behind the host's address, and forwarded"
        );
        let address = net
            .leases(&self.root)
            .allocate(&net.subnet, self.id.as_str(), self.wanted)
            .map_err(crate::refused)?;
        explain!(
            "lease {address}" => "ok",
            "an address of the network's subnet, held by a file no other container can take"
        );
        self.net = Some(net.clone());
        self.address = Some(address);
        // From here on the lease is held: cleanup (or recovery) releases
        // the ports, rules and names too.
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
        self.join(&net, address);
        Ok(())
    }

    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        let Some(net) = &self.net else {
            return Ok(());
        };
        let (host, peer) = veth_names(&self.id);
        let bridge = &net.bridge;
        bridge::add_veth(&host, &peer, bridge, child.as_raw() as u32).map_err(crate::refused)?;
        explain!(
            "RTM_NEWLINK {host}/{peer} (veth), {host} on {bridge}, {peer} into pid {child}'s namespace" => "ok",
            "a virtual cable: one end on the bridge, the other in the container"
        );
        Ok(())
    }

    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let (Some(net), Some(address)) = (&self.net, self.address) else {
            return Ok(());
        };
        let subnet = net.subnet;
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

impl BridgeNetwork {
    /// Its name into the other members' `hosts`, theirs into its own. On
    /// the default network only its own line: as on docker's default
    /// bridge, containers there do not know each other by name.
    fn join(&self, net: &Net, address: Ipv4Addr) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let own = crate::dns::member_line(address, &names, &self.id);
        let peers: Vec<(ContainerId, String)> = if net.name == crate::networks::DEFAULT {
            Vec::new()
        } else {
            net.members(&self.root)
                .into_iter()
                .filter(|(id, _)| id != &self.id)
                .map(|(id, address)| {
                    let names = member_names(&self.root, &id);
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let line = crate::dns::member_line(address, &names, &id);
                    (id, line)
                })
                .collect()
        };
        crate::dns::join(&self.root, &self.id, &own, &peers);
    }
}

/// A member's names: its hostname and its name, from its record and spec.
fn member_names(root: &Path, id: &ContainerId) -> Vec<String> {
    let store = stage08_lifecycle::state::Store::new(root);
    let mut names = Vec::new();
    if let Ok(spec) = store.spec(id)
        && let Some(hostname) = spec.hostname()
    {
        names.push(hostname.clone());
    }
    if let Ok(record) = store.record(id) {
        names.push(record.name);
    }
    names
}

/// What a container held on its network, given back: its published ports
/// and their rules, its name in the other members' `hosts`, the host's end
/// of its veth pair if it is still there, and its lease.
///
/// The lease goes last: a container that holds no lease has nothing else
/// left either, and costs no lock, nft or netlink call (every `rm` and
/// every foreground `run` comes here, on any network).
// ANCHOR: reclaim
pub fn reclaim(root: &Path, id: &ContainerId) {
    let holds = |net: &Net| net.members(root).iter().any(|(m, _)| m == id);
    if !Net::all(root).iter().any(holds) {
        return;
    }
    let Ok(_lock) = crate::networks::lock(root) else {
        return;
    };
    let Some(net) = Net::all(root).into_iter().find(holds) else {
        return;
    };
    // Its rules are added only once its ports are claimed, and the claims
    // go after the rules: no claim, no rule, and no nft to run.
    let ports = published_ports(root);
    if ports.held().iter().any(|(_, holder)| holder == id.as_str()) {
        let _ = crate::firewall::unpublish(id.as_str());
        ports.release(id.as_str());
    }
    let peers: Vec<ContainerId> = net
        .members(root)
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m != id)
        .collect();
    crate::dns::leave(root, id, &peers);
    let (host, _) = veth_names(id);
    let _ = bridge::delete(&host);
    net.leases(root).release(id.as_str());
}
// ANCHOR_END: reclaim

/// `inspect`'s `NetworkSettings`, docker's shape: the network, and on a
/// bridge network the address the container holds, its gateway and its
/// ports.
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
    match &mode {
        crate::cli::Mode::Network(name) => {
            let net = Net::load(root, name);
            let address = net
                .as_ref()
                .and_then(|net| net.members(root).into_iter().find(|(m, _)| m == id))
                .map(|(_, address)| address.to_string())
                .unwrap_or_default();
            networks.insert(
                name.clone(),
                serde_json::json!({
                    "IPAddress": address,
                    "IPPrefixLen": net.as_ref().map(|n| n.subnet.prefix()),
                    "Gateway": net.as_ref().map(|n| n.subnet.gateway().to_string()),
                    "Bridge": net.as_ref().map(|n| n.bridge.clone()),
                    "NetworkID": net.as_ref().map(|n| n.id.clone()),
                }),
            );
        }
        other => {
            networks.insert(other.to_string(), serde_json::json!({}));
        }
    }
    let files: serde_json::Map<String, serde_json::Value> = if mode.has_namespace() {
        let dir = crate::dns::container_dir(root, id);
        [
            ("ResolvConfPath", "resolv.conf"),
            ("HostsPath", "hosts"),
            ("HostnamePath", "hostname"),
        ]
        .into_iter()
        .map(|(key, file)| (key.to_owned(), dir.join(file).display().to_string().into()))
        .collect()
    } else {
        serde_json::Map::new()
    };
    let mut settings = serde_json::json!({ "Networks": networks, "Ports": ports });
    if let Some(map) = settings.as_object_mut() {
        map.extend(files);
    }
    settings
}
