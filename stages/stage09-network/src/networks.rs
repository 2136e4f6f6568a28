//! Networks by name, as `docker network` has them: the default `bridge`
//! (the bridge `myruntime0`, made on first use) and user-defined ones
//! (`network create NAME`, a bridge `myruntimeN` and a subnet each).
//!
//! A network is a directory, `<root>/networks/<name>/`, holding its
//! `network.json` (bridge, subnet) and its leases. Every change to the set
//! of networks, and every container joining or leaving one, holds the lock
//! of `<root>/networks` (a flock on the directory, which never goes): so
//! `network rm` never removes a network a container is joining, and two
//! containers joining at once both see each other's names.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stage01_uts::{ContainerId, Error};
use stage08_lifecycle::state::DirLock;

use crate::ipam::{IpamError, Leases, Subnet, io};

/// The default network's name, bridge and subnet.
pub const DEFAULT: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "myruntime0";
pub const DEFAULT_SUBNET: &str = "10.99.0.0/16";
/// The default network's subnet when it is first used, if set.
pub const SUBNET_ENV: &str = "MYRUNTIME_BRIDGE_SUBNET";
/// Where user-defined networks' subnets come from when `--subnet` is not
/// given: the first /24 of 10.100.0.0/16 no network has.
const POOL: (u8, u8) = (10, 100);

/// What can go wrong with a network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "no network is named {0:?}; list them with `network ls`, make one with `network create {0}`"
    )]
    Unknown(String),
    #[error("a network named {0:?} exists already; choose another name, or remove it first")]
    Exists(String),
    #[error(
        "invalid network name {0:?}: use 2 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("{0:?} is a network the runtime has by itself; it cannot be made or removed")]
    Predefined(String),
    #[error(
        "the subnet {subnet} overlaps {other} of network {network}; choose another with --subnet"
    )]
    Overlaps {
        subnet: Subnet,
        other: Subnet,
        network: String,
    },
    #[error("no /24 of 10.100.0.0/16 is free for a new network; give one with --subnet")]
    NoSubnet,
    #[error("network {name} is in use by container {holder}; remove it first (rm -f {holder})")]
    InUse { name: String, holder: String },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("network {name}: {why}")]
    Link { name: String, why: String },
    #[error(transparent)]
    Firewall(#[from] crate::firewall::FirewallError),
}

/// A network: its name, id, bridge and subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    pub name: String,
    pub id: String,
    pub bridge: String,
    #[serde(with = "as_text")]
    pub subnet: Subnet,
    pub created: String,
}

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &crate::ipam::Subnet, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(&s.to_string())
    }

    pub fn deserialize<'d, D: Deserializer<'d>>(from: D) -> Result<crate::ipam::Subnet, D::Error> {
        String::deserialize(from)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `<root>/networks`.
fn dir(root: &Path) -> PathBuf {
    root.join("networks")
}

/// The lock every change of networks and their members holds.
pub fn lock(root: &Path) -> Result<DirLock, Error> {
    let dir = dir(root);
    std::fs::create_dir_all(&dir)
        .map_err(io("make", &dir))
        .map_err(crate::refused)?;
    DirLock::take(&dir).map_err(crate::refused)
}

/// A name `network create` takes: docker's grammar for names, and none of
/// the networks the runtime has by itself.
pub fn check_name(name: &str) -> Result<(), NetworkError> {
    if matches!(name, DEFAULT | "host" | "none" | "pasta") || name.starts_with("container:") {
        return Err(NetworkError::Predefined(name.to_owned()));
    }
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first && rest && (2..=64).contains(&name.len()) {
        Ok(())
    } else {
        Err(NetworkError::BadName(name.to_owned()))
    }
}

impl Net {
    fn dir(&self, root: &Path) -> PathBuf {
        dir(root).join(&self.name)
    }

    /// Its leases: which container holds which of its addresses.
    pub fn leases(&self, root: &Path) -> Leases {
        Leases::new(&self.dir(root).join("leases"))
    }

    /// The network called `name`, if it exists. The name is checked
    /// first: it becomes a path.
    pub fn load(root: &Path, name: &str) -> Option<Net> {
        if name != DEFAULT && check_name(name).is_err() {
            return None;
        }
        let bytes = std::fs::read(dir(root).join(name).join("network.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every network that exists (the default one once it has been used),
    /// by name.
    pub fn all(root: &Path) -> Vec<Net> {
        let Ok(entries) = std::fs::read_dir(dir(root)) else {
            return Vec::new();
        };
        let mut all: Vec<Net> = entries
            .flatten()
            .filter_map(|e| Net::load(root, e.file_name().to_str()?))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Write its `network.json` (aside, then renamed into a directory made
    /// the same way): a network exists whole or not at all.
    fn save(&self, root: &Path) -> Result<(), NetworkError> {
        let final_dir = self.dir(root);
        let aside = dir(root).join(format!(".{}.{}.new", self.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::create_dir_all(&aside).map_err(io("make", &aside))?;
        let json = serde_json::to_vec_pretty(self).expect("networks serialize");
        let file = aside.join("network.json");
        std::fs::write(&file, json).map_err(io("write", &file))?;
        std::fs::rename(&aside, &final_dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&aside);
            io("make", &final_dir)(e).into()
        })
    }

    /// Its bridge, with the gateway's address, and the rules of every
    /// network (one transaction: this one's added to the others').
    pub fn ensure(&self, root: &Path) -> Result<(), NetworkError> {
        crate::bridge::ensure_bridge(&self.bridge, self.subnet.gateway(), self.subnet.prefix())
            .map_err(|e| NetworkError::Link {
                name: self.name.clone(),
                why: e.to_string(),
            })?;
        crate::firewall::ensure(&Net::all(root))?;
        Ok(())
    }

    /// The members of the network: (container id, address).
    pub fn members(&self, root: &Path) -> Vec<(ContainerId, Ipv4Addr)> {
        self.leases(root)
            .held()
            .into_iter()
            .filter_map(|(address, holder)| Some((holder.parse().ok()?, address)))
            .collect()
    }
}

/// The network a container on `name` joins: the default one (made on first
/// use, with `MYRUNTIME_BRIDGE_SUBNET` or 10.99.0.0/16), or a user-defined
/// one that must exist. Called with the lock held.
pub fn resolve(root: &Path, name: &str) -> Result<Net, NetworkError> {
    if let Some(net) = Net::load(root, name) {
        return Ok(net);
    }
    if name != DEFAULT {
        return Err(NetworkError::Unknown(name.to_owned()));
    }
    let text = std::env::var(SUBNET_ENV).unwrap_or_else(|_| DEFAULT_SUBNET.to_owned());
    let net = Net {
        name: DEFAULT.to_owned(),
        id: ContainerId::generate().to_string(),
        bridge: DEFAULT_BRIDGE.to_owned(),
        subnet: text.parse()?,
        created: stage08_lifecycle::time::Time::now().rfc3339(),
    };
    net.save(root)?;
    Ok(net)
}

/// The subnet the default network has, or will have when first used.
fn default_subnet(root: &Path) -> Option<Subnet> {
    match Net::load(root, DEFAULT) {
        Some(net) => Some(net.subnet),
        None => std::env::var(SUBNET_ENV)
            .unwrap_or_else(|_| DEFAULT_SUBNET.to_owned())
            .parse()
            .ok(),
    }
}

/// `network create [--subnet SUBNET] NAME`: the network, its bridge (up,
/// with the gateway's address) and its rules; undone whole if a step fails.
// ANCHOR: create
pub fn create(root: &Path, name: &str, subnet: Option<Subnet>) -> Result<Net, Error> {
    check_name(name).map_err(crate::refused)?;
    let _lock = lock(root)?;
    let made = (|| {
        if Net::load(root, name).is_some() {
            return Err(NetworkError::Exists(name.to_owned()));
        }
        let mut taken: Vec<(String, Subnet)> = Net::all(root)
            .into_iter()
            .filter(|n| n.name != DEFAULT)
            .map(|n| (n.name, n.subnet))
            .collect();
        if let Some(default) = default_subnet(root) {
            taken.push((DEFAULT.to_owned(), default));
        }
        let subnet = match subnet {
            Some(subnet) => {
                if let Some((network, other)) = taken.iter().find(|(_, s)| s.overlaps(&subnet)) {
                    return Err(NetworkError::Overlaps {
                        subnet,
                        other: *other,
                        network: network.clone(),
                    });
                }
                subnet
            }
            None => (0..=255u8)
                .map(|third| {
                    format!("{}.{}.{third}.0/24", POOL.0, POOL.1)
                        .parse::<Subnet>()
                        .expect("a valid /24")
                })
                .find(|s| !taken.iter().any(|(_, t)| t.overlaps(s)))
                .ok_or(NetworkError::NoSubnet)?,
        };
        // myruntime1, myruntime2, ...: the lowest number no network has.
        let bridges: Vec<String> = Net::all(root).into_iter().map(|n| n.bridge).collect();
        let bridge = (1..)
            .map(|n| format!("myruntime{n}"))
            .find(|b| !bridges.contains(b))
            .expect("a free bridge name");
        let net = Net {
            name: name.to_owned(),
            id: ContainerId::generate().to_string(),
            bridge,
            subnet,
            created: stage08_lifecycle::time::Time::now().rfc3339(),
        };
        net.save(root)?;
        if let Err(err) = net.ensure(root) {
            let _ = remove_unlocked(root, &net);
            return Err(err);
        }
        Ok(net)
    })();
    made.map_err(crate::refused)
}
// ANCHOR_END: create

/// `network rm NAME`: refused while a container is on it; else its bridge,
/// its rules and its directory go (the whole table with the last network).
pub fn remove(root: &Path, name: &str) -> Result<(), Error> {
    if matches!(name, DEFAULT | "host" | "none" | "pasta") {
        return Err(crate::refused(NetworkError::Predefined(name.to_owned())));
    }
    let _lock = lock(root)?;
    let net = Net::load(root, name)
        .ok_or_else(|| crate::refused(NetworkError::Unknown(name.to_owned())))?;
    // A member now, or a stopped container that would join it when
    // started again (docker refuses both too).
    let store = stage08_lifecycle::state::Store::new(root);
    let on_it = |id: &ContainerId| {
        store.spec(id).is_ok_and(|spec| {
            stage01_uts::spec::annotation(&spec, crate::cli::NETWORK_ANNOTATION) == Some(name)
        })
    };
    let holder = net
        .members(root)
        .into_iter()
        .map(|(id, _)| id)
        .next()
        .or_else(|| store.ids().into_iter().find(on_it));
    if let Some(holder) = holder {
        return Err(crate::refused(NetworkError::InUse {
            name: name.to_owned(),
            holder: holder.short().to_owned(),
        }));
    }
    remove_unlocked(root, &net).map_err(crate::refused)
}

fn remove_unlocked(root: &Path, net: &Net) -> Result<(), NetworkError> {
    let dir = net.dir(root);
    // The directory first: from here on the network is gone for every
    // command, and its rules are no longer written.
    std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    let _ = crate::bridge::delete(&net.bridge);
    crate::firewall::ensure(&Net::all(root))?;
    Ok(())
}

/// `network inspect`: docker's shape.
pub fn inspect(root: &Path, net: &Net) -> serde_json::Value {
    let store = stage08_lifecycle::state::Store::new(root);
    let mut containers = serde_json::Map::new();
    for (id, address) in net.members(root) {
        let name = store.record(&id).map(|r| r.name).unwrap_or_default();
        containers.insert(
            id.to_string(),
            serde_json::json!({
                "Name": name,
                "IPv4Address": format!("{address}/{}", net.subnet.prefix()),
            }),
        );
    }
    serde_json::json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Driver": "bridge",
        "IPAM": {"Config": [{
            "Subnet": net.subnet.to_string(),
            "Gateway": net.subnet.gateway().to_string(),
        }]},
        "Options": {"bridge.name": net.bridge},
        "Containers": containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_predefined_ones_are_not_made() {
        for good in ["app", "my-net.2", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(NetworkError::BadName(_))),
                "{bad}"
            );
        }
        for predefined in ["bridge", "host", "none", "container:web"] {
            assert!(
                matches!(check_name(predefined), Err(NetworkError::Predefined(_))),
                "{predefined}"
            );
        }
    }

    #[test]
    fn a_network_is_saved_whole_and_listed() {
        let root = tempfile::tempdir().unwrap();
        let net = Net {
            name: "app".into(),
            id: "x".into(),
            bridge: "myruntime1".into(),
            subnet: "10.100.0.0/24".parse().unwrap(),
            created: "now".into(),
        };
        net.save(root.path()).unwrap();
        assert_eq!(Net::load(root.path(), "app"), Some(net.clone()));
        assert_eq!(Net::all(root.path()), vec![net]);
        assert_eq!(Net::load(root.path(), "../app"), None);
        // Nothing aside is left.
        assert_eq!(
            std::fs::read_dir(root.path().join("networks"))
                .unwrap()
                .count(),
            1
        );
    }
}
