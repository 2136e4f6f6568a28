//! The files a container with a network of its own gets, as docker's do:
//! `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`, each a file of the
//! container's directory bind-mounted over the image's.
//!
//! - `resolv.conf` is the host's, except for nameservers on loopback: a
//!   local stub resolver (systemd-resolved's 127.0.0.53, dnsmasq's
//!   127.0.0.1) listens in the host's network namespace, where the
//!   container cannot reach it. They are dropped; with none left, public
//!   resolvers take their place, as docker does. `--dns`, `--dns-search`,
//!   `--dns-option` replace the host's lines.
//! - `hosts` has the loopback names, `--add-host` entries, the container's
//!   own address and, on a user-defined network, every other member's:
//!   containers there reach each other by name. The names are kept in step
//!   as members join and leave: each file is rewritten in place (a bind
//!   mount holds the inode, so a file renamed over it would go unseen).
//! - `hostname` is the container's hostname.

use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use stage01_uts::spec::{self, Spec};
use stage01_uts::{ContainerId, Context, Error, Phase, Primitive, explain};

/// The annotations `--dns`, `--dns-search`, `--dns-option` and
/// `--add-host` are kept in (comma-separated).
pub const DNS_ANNOTATION: &str = "run.myruntime.dns";
pub const SEARCH_ANNOTATION: &str = "run.myruntime.dns-search";
pub const OPTION_ANNOTATION: &str = "run.myruntime.dns-option";
pub const HOSTS_ANNOTATION: &str = "run.myruntime.add-host";

/// Used when the host has no nameserver a container can reach (docker's
/// choice too).
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The three files, by name in the container's directory and path inside.
pub const FILES: [(&str, &str); 3] = [
    ("resolv.conf", "/etc/resolv.conf"),
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
];

/// An `--add-host` entry: `NAME:ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub address: std::net::IpAddr,
}

impl std::str::FromStr for ExtraHost {
    type Err = stage01_uts::cli::InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || {
            stage01_uts::cli::InvalidValue::refuse(
                "add-host",
                text,
                "give NAME:ADDRESS, such as db:10.0.0.5",
            )
        };
        let Some((name, address)) = text.split_once(':') else {
            return refuse();
        };
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        match (name_ok, address.parse()) {
            (true, Ok(address)) => Ok(ExtraHost {
                name: name.to_owned(),
                address,
            }),
            _ => refuse(),
        }
    }
}

impl std::fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.address)
    }
}

/// The container's `resolv.conf`, from the host's text.
// ANCHOR: resolv_conf
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    let mut servers = Vec::new();
    let mut searches = Vec::new();
    let mut opts = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(server) = words.next() {
                    let address: Option<std::net::IpAddr> = server.parse().ok();
                    // Loopback is the host's own, which a namespace of the
                    // container's own does not have.
                    if !address.is_some_and(|a| a.is_loopback()) {
                        servers.push(server.to_owned());
                    }
                }
            }
            Some("search") | Some("domain") => searches = words.map(str::to_owned).collect(),
            Some("options") => opts.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    if !dns.is_empty() {
        servers = dns.to_vec();
    } else if servers.is_empty() {
        servers = FALLBACK.iter().map(|s| (*s).to_owned()).collect();
    }
    if !search.is_empty() {
        searches = search.to_vec();
    }
    if !options.is_empty() {
        opts = options.to_vec();
    }
    let mut text = String::new();
    for server in servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !searches.is_empty() {
        text.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !opts.is_empty() {
        text.push_str(&format!("options {}\n", opts.join(" ")));
    }
    text
}
// ANCHOR_END: resolv_conf

/// The start of every container's `hosts`: loopback, then `--add-host`.
pub fn hosts_base(extra: &[ExtraHost]) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for host in extra {
        text.push_str(&format!("{}\t{}\n", host.address, host.name));
    }
    text
}

/// A member's line in `hosts`: its address, then its names (hostname,
/// name, short id; each once). The short id ends it: that is how the line
/// is found again when the member leaves.
pub fn member_line(address: Ipv4Addr, names: &[&str], id: &ContainerId) -> String {
    let mut all: Vec<&str> = Vec::new();
    for name in names.iter().copied().chain([id.short()]) {
        if !name.is_empty() && !all.contains(&name) {
            all.push(name);
        }
    }
    if all.last() != Some(&id.short()) {
        all.retain(|n| *n != id.short());
        all.push(id.short());
    }
    format!("{address}\t{}\n", all.join(" "))
}

/// Whether `line` is the member line of container `id`.
fn is_member_line(line: &str, id: &ContainerId) -> bool {
    line.split_whitespace().last() == Some(id.short())
        && line
            .split_whitespace()
            .next()
            .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok())
}

/// The container's directory, where its files are.
pub fn container_dir(root: &Path, id: &ContainerId) -> PathBuf {
    stage08_lifecycle::state::Store::new(root).dir(id)
}

/// Rewrite `path` in place with `change` (never by rename: the container
/// sees the inode its bind mount holds). Never through a symlink.
fn rewrite(path: &Path, change: impl FnOnce(&str) -> String) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let new = change(&text);
    file.rewind()?;
    file.write_all(new.as_bytes())?;
    file.set_len(new.len() as u64)?;
    Ok(())
}

/// Container `id` joins a network at `address`, named `names`: its line
/// goes into its own `hosts` and, with `peers` (members already on a
/// user-defined network: (id, line)), theirs into its and its into theirs.
/// Called with the networks' lock held, so two joining at once both see
/// each other.
pub fn join(root: &Path, id: &ContainerId, own: &str, peers: &[(ContainerId, String)]) {
    let path = container_dir(root, id).join("hosts");
    let _ = rewrite(&path, |text| {
        let mut text: String = text
            .lines()
            .filter(|l| !peers.iter().any(|(p, _)| is_member_line(l, p)) && !is_member_line(l, id))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(own);
        for (_, line) in peers {
            text.push_str(line);
        }
        text
    });
    for (peer, _) in peers {
        let path = container_dir(root, peer).join("hosts");
        let _ = rewrite(&path, |text| {
            let mut text = without(text, id);
            text.push_str(own);
            text
        });
    }
}

/// Container `id` leaves: its line goes from every other member's `hosts`.
pub fn leave(root: &Path, id: &ContainerId, peers: &[ContainerId]) {
    for peer in peers {
        let path = container_dir(root, peer).join("hosts");
        let _ = rewrite(&path, |text| without(text, id));
    }
}

fn without(text: &str, id: &ContainerId) -> String {
    text.lines()
        .filter(|l| !is_member_line(l, id))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The bind mounts of the three files, added to the spec (after every
/// other mount; one the user asked for at the same path wins).
// ANCHOR: mounts
pub fn add_mounts(spec: &mut Spec, container: &Path) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (file, inside) in FILES {
        if mounts.iter().any(|m| m.destination() == Path::new(inside)) {
            continue;
        }
        let mount = serde_json::from_value(serde_json::json!({
            "destination": inside,
            "type": "bind",
            "source": container.join(file),
            "options": ["rbind", "rprivate"],
        }))
        .expect("a mount is valid");
        mounts.push(mount);
    }
    spec.set_mounts(Some(mounts));
}
// ANCHOR_END: mounts

/// A comma-separated annotation, as a list.
fn list(spec: &Spec, key: &str) -> Vec<String> {
    spec::annotation(spec, key)
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The stage 09 primitive that writes the three files, on the host, before
/// the mounts are prepared (their sources must exist by then).
pub struct DnsFiles {
    dir: PathBuf,
    resolv: String,
    hosts: String,
    hostname: String,
}

impl DnsFiles {
    pub fn new(spec: &Spec, root: &Path, id: &ContainerId) -> Self {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let extra: Vec<ExtraHost> = list(spec, HOSTS_ANNOTATION)
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        DnsFiles {
            dir: container_dir(root, id),
            resolv: resolv_conf(
                &host,
                &list(spec, DNS_ANNOTATION),
                &list(spec, SEARCH_ANNOTATION),
                &list(spec, OPTION_ANNOTATION),
            ),
            hosts: hosts_base(&extra),
            hostname: spec.hostname().clone().unwrap_or_default(),
        }
    }
}

impl Primitive for DnsFiles {
    fn name(&self) -> &'static str {
        "dns files"
    }

    fn phase(&self) -> Phase {
        Phase::Rootfs
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        for (file, text) in [
            ("resolv.conf", &self.resolv),
            ("hostname", &format!("{}\n", self.hostname)),
        ] {
            write_new(&self.dir.join(file), text)?;
        }
        // `hosts` is written in place when it exists (a restart): a member
        // that holds it open (through a bind mount) keeps seeing it.
        let hosts = self.dir.join("hosts");
        if rewrite(&hosts, |_| self.hosts.clone()).is_err() {
            write_new(&hosts, &self.hosts)?;
        }
        explain!(
            "write resolv.conf, hosts, hostname" => "ok",
            "the container's own name files, bind-mounted over the image's /etc"
        );
        Ok(())
    }
}

/// Write `path` whole (aside, then renamed).
fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    let aside = path.with_extension(format!("new-{}", std::process::id()));
    let done = std::fs::write(&aside, text).and_then(|()| std::fs::rename(&aside, path));
    done.map_err(|e| {
        let _ = std::fs::remove_file(&aside);
        crate::refused(crate::ipam::io("write", path)(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_dropped_and_the_flags_win() {
        let host =
            "# made by resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        assert_eq!(
            resolv_conf(host, &[], &[], &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\noptions edns0 trust-ad\n"
        );
        let host = "nameserver 192.168.1.1\nnameserver ::1\nnameserver 127.0.0.1\n";
        assert_eq!(resolv_conf(host, &[], &[], &[]), "nameserver 192.168.1.1\n");
        assert_eq!(
            resolv_conf(
                host,
                &["1.1.1.1".into()],
                &["corp".into()],
                &["ndots:2".into()]
            ),
            "nameserver 1.1.1.1\nsearch corp\noptions ndots:2\n"
        );
    }

    #[test]
    fn add_host_is_checked() {
        let h: ExtraHost = "db:10.0.0.5".parse().unwrap();
        assert_eq!(h.to_string(), "db:10.0.0.5");
        assert!("db:fe80::1".parse::<ExtraHost>().is_ok());
        for bad in ["db", ":10.0.0.5", "db:", "db:x", "d b:10.0.0.5"] {
            assert!(bad.parse::<ExtraHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn members_come_and_go_by_their_line() {
        let id: ContainerId = "a".repeat(64).parse().unwrap();
        let other: ContainerId = "b".repeat(64).parse().unwrap();
        let line = member_line(Ipv4Addr::new(10, 100, 0, 2), &["web", "web"], &id);
        assert_eq!(line, format!("10.100.0.2\tweb {}\n", id.short()));
        let text = format!(
            "{}{line}{}",
            hosts_base(&[]),
            member_line(Ipv4Addr::new(10, 100, 0, 3), &["db"], &other)
        );
        let left = without(&text, &id);
        assert!(!left.contains("web"), "{left}");
        assert!(left.contains("db"), "{left}");
        assert!(left.starts_with("127.0.0.1\tlocalhost\n"));
    }
}
