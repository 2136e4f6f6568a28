//! IPAM: which container holds which address of a network's subnet.
//!
//! A lease is a file, `leases/<address>`, holding the id of the container
//! that holds the address. It is written whole under a temporary name and
//! then hard-linked to its final name: `link(2)` fails with EEXIST when the
//! name is taken, so two runtimes starting containers at the same moment can
//! never get the same address, with no lock, and a runtime killed at any
//! point leaves either no lease or a whole one (a temporary file at worst,
//! which the next allocation removes). A lease whose container is gone is
//! released by whoever notices: the container's own cleanup, `rm`, or the
//! next command's recovery.

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Errors of address management.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: {1}")]
    Subnet(String, &'static str),
    #[error(
        "no address is free in {subnet}: {held} containers hold them all; remove one, or use a network with a larger subnet"
    )]
    Exhausted { subnet: Subnet, held: usize },
    #[error("the address {address} is not one {subnet} can give a container")]
    OutOfRange { address: Ipv4Addr, subnet: Subnet },
    #[error("the address {address} is in use by container {holder}")]
    Taken { address: Ipv4Addr, holder: String },
    #[error("cannot {what} {path}: {why}")]
    Io {
        what: &'static str,
        path: String,
        why: String,
    },
}

/// An IPv4 subnet: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The gateway: the subnet's first address, the bridge's own.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// Whether a container may hold `address`: inside the subnet, and not
    /// its network address, its gateway or its broadcast address.
    pub fn assignable(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.network)
            && address != self.network
            && address != self.gateway()
            && address != self.broadcast()
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// Every address a container may hold, lowest first.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;

    /// `10.99.0.0/16`. From /8 to /30: a /31 or /32 has no room for a
    /// gateway and a container.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why| IpamError::Subnet(text.to_owned(), why);
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("write it as ADDRESS/PREFIX, such as 10.99.0.0/16"))?;
        let network: Ipv4Addr = address
            .parse()
            .map_err(|_| bad("the address is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| bad("the prefix must be a number from 8 to 30"))?;
        let subnet = Subnet { network, prefix };
        if u32::from(network) & !subnet.mask() != 0 {
            return Err(bad(
                "the address has bits set past the prefix (give the network's first address)",
            ));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An I/O error on `path`, as an IPAM error.
pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IpamError {
    let path = path.display().to_string();
    move |e| IpamError::Io {
        what,
        path,
        why: e.to_string(),
    }
}

/// Named things containers hold (an address, a host port), one file each,
/// holding the holder's id: taken by hard-linking a whole file to the name,
/// which fails when another holder has it.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

impl Claims {
    pub fn new(dir: &Path) -> Claims {
        Claims {
            dir: dir.to_path_buf(),
        }
    }

    /// Run `body` with a whole claim file of `id`, under a temporary name,
    /// to link to the names it takes; removed after.
    fn with_temporary<T>(
        &self,
        id: &str,
        body: impl FnOnce(&Path) -> Result<T, IpamError>,
    ) -> Result<T, IpamError> {
        std::fs::create_dir_all(&self.dir).map_err(io("make", &self.dir))?;
        self.remove_stale_temporaries();
        // The claim, written whole before it gets its name.
        let temporary = self.dir.join(format!(".new-{}-{id}", std::process::id()));
        let mut file = std::fs::File::create(&temporary).map_err(io("write", &temporary))?;
        file.write_all(id.as_bytes())
            .map_err(io("write", &temporary))?;
        drop(file);
        let result = body(&temporary);
        let _ = std::fs::remove_file(&temporary);
        result
    }

    /// Link the claim to `name`: false when it is taken.
    fn link(&self, temporary: &Path, name: &str) -> Result<bool, IpamError> {
        let path = self.dir.join(name);
        match std::fs::hard_link(temporary, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("write", &path)(e)),
        }
    }

    /// Take `name` for `id`: false when another holds it.
    pub fn claim(&self, name: &str, id: &str) -> Result<bool, IpamError> {
        self.with_temporary(id, |temporary| self.link(temporary, name))
    }

    /// Claim files of runtimes that died before they finished.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(".new-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks whether the pid exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Who holds `name`.
    pub fn holder(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// Every claim: (name, holder), sorted.
    pub fn held(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut held: Vec<(String, String)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                if name.starts_with('.') {
                    return None;
                }
                Some((name, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        held.sort();
        held
    }

    /// Release every claim of `id` (only its own).
    pub fn release(&self, id: &str) {
        for (name, holder) in self.held() {
            if holder == id {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
    }
}

/// The leases of one network, in a directory of their own.
#[derive(Debug, Clone)]
pub struct Leases {
    claims: Claims,
}

impl Leases {
    pub fn new(dir: &Path) -> Leases {
        Leases {
            claims: Claims::new(dir),
        }
    }

    /// Give container `id` an address of `subnet`: `wanted`, or the lowest
    /// free one.
    // ANCHOR: allocate
    pub fn allocate(
        &self,
        subnet: &Subnet,
        id: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let claims = &self.claims;
        claims.with_temporary(id, |temporary| match wanted {
            Some(address) if !subnet.assignable(address) => Err(IpamError::OutOfRange {
                address,
                subnet: *subnet,
            }),
            Some(address) => match claims.link(temporary, &address.to_string())? {
                true => Ok(address),
                false => Err(IpamError::Taken {
                    address,
                    holder: self.holder(address).unwrap_or_default(),
                }),
            },
            None => {
                for address in subnet.hosts() {
                    if claims.link(temporary, &address.to_string())? {
                        return Ok(address);
                    }
                }
                Err(IpamError::Exhausted {
                    subnet: *subnet,
                    held: self.held().len(),
                })
            }
        })
    }
    // ANCHOR_END: allocate

    /// Who holds `address`.
    pub fn holder(&self, address: Ipv4Addr) -> Option<String> {
        self.claims.holder(&address.to_string())
    }

    /// Every lease: (address, container id).
    pub fn held(&self) -> Vec<(Ipv4Addr, String)> {
        self.claims
            .held()
            .into_iter()
            .filter_map(|(name, holder)| Some((name.parse().ok()?, holder)))
            .collect()
    }

    /// Release every address container `id` holds (only its own: a lease
    /// another container took since is left alone).
    pub fn release(&self, id: &str) {
        self.claims.release(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    #[test]
    fn subnets_are_checked() {
        assert_eq!(subnet("10.99.0.0/16").to_string(), "10.99.0.0/16");
        assert_eq!(
            subnet("10.99.0.0/16").gateway(),
            Ipv4Addr::new(10, 99, 0, 1)
        );
        assert!(subnet("10.99.0.0/16").overlaps(&subnet("10.99.3.0/24")));
        assert!(subnet("10.99.3.0/24").overlaps(&subnet("10.99.0.0/16")));
        assert!(!subnet("10.99.0.0/16").overlaps(&subnet("10.100.0.0/24")));
        for bad in [
            "10.99.0.0",
            "10.99.0.0/31",
            "10.99.0.0/7",
            "10.99.0.1/16",
            "x/16",
            "10.99.0.0/x",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_slash_29_has_five_addresses_for_containers() {
        let s = subnet("192.168.7.8/29");
        let hosts: Vec<Ipv4Addr> = s.hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(192, 168, 7, 10)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(192, 168, 7, 14)));
        assert_eq!(hosts.len(), 5);
        assert!(!s.assignable(Ipv4Addr::new(192, 168, 7, 9)), "the gateway");
        assert!(
            !s.assignable(Ipv4Addr::new(192, 168, 7, 15)),
            "the broadcast"
        );
        assert!(!s.assignable(Ipv4Addr::new(192, 168, 7, 16)), "outside");
    }

    #[test]
    fn addresses_are_unique_reused_after_release_and_run_out_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let leases = Leases::new(dir.path());
        let s = subnet("192.168.7.8/29");
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| leases.allocate(&s, &format!("c{i}"), None).unwrap())
            .collect();
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        let err = leases.allocate(&s, "c5", None).unwrap_err();
        assert!(err.to_string().contains("no address is free"), "{err}");
        leases.release("c2");
        assert_eq!(leases.allocate(&s, "c6", None).unwrap(), got[2]);
        assert_eq!(leases.holder(got[2]).as_deref(), Some("c6"));
        let taken = leases.allocate(&s, "c7", Some(got[0])).unwrap_err();
        assert!(
            taken.to_string().contains("in use by container c0"),
            "{taken}"
        );
        let outside = leases
            .allocate(&s, "c7", Some(Ipv4Addr::new(10, 0, 0, 2)))
            .unwrap_err();
        assert!(outside.to_string().contains("not one"), "{outside}");
        // Nothing but leases is left: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let s = subnet("10.1.0.0/24");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let leases = Leases::new(dir.path());
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| leases.allocate(&s, &format!("t{t}-{i}"), None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "an address was given twice");
    }
}
