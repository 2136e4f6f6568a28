//! NAT and forwarding for the bridge network, in a table of myruntime's
//! own: `inet myruntime`.
//!
//! Why nftables through `nft -f -`: one script is one atomic transaction (a
//! reader, or a second runtime, never sees half a ruleset); the text is the
//! same as a user types and reads back with `nft list table inet myruntime`,
//! which makes it teachable; and it is what netavark (podman's network
//! stack) does too, through the `nftables` crate's JSON. Netlink directly
//! (libnftnl's messages) would save a process per change, at the price of
//! a binary encoding nobody can read. The cost: the `nftables` package.
//!
//! The table is the runtime's alone: it never flushes, reorders or touches
//! another table, so docker's iptables rules, firewalld's or the host's own
//! stay as they are. Each chain is rewritten whole (flushed and filled in
//! the same transaction) whenever a bridge network is set up, which makes
//! setting it up idempotent and safe under concurrent starts.

use std::io::Write;
use std::process::{Command, Stdio};

use std::net::Ipv4Addr;

use crate::ipam::Subnet;
use crate::ports::Port;

/// The table every rule of the runtime lives in.
pub const TABLE: &str = "myruntime";

/// A firewall change that failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(
        "cannot run nft(8), which sets up the bridge network's NAT: {0}; install the nftables package (apt-get install nftables)"
    )]
    Missing(String),
    #[error("nft refused the bridge network's rules: {0}")]
    Refused(String),
}

/// The ruleset of the bridge `bridge` with subnet `subnet`: outbound
/// traffic of its containers masqueraded behind the host's address (the
/// outside never needs a route to the subnet), and forwarded: out from the
/// bridge, and back in for connections the containers opened.
// ANCHOR: ruleset
pub fn ruleset(bridge: &str, subnet: &Subnet) -> String {
    format!(
        "add table inet {TABLE}
add chain inet {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain inet {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain inet {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain inet {TABLE} postrouting
flush chain inet {TABLE} forward
add rule inet {TABLE} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade comment \"{bridge}: containers out\"
add rule inet {TABLE} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade comment \"{bridge}: published ports, from the host's loopback\"
add rule inet {TABLE} postrouting ct status dnat ip saddr {subnet} oifname \"{bridge}\" masquerade comment \"{bridge}: published ports, from a container (hairpin)\"
add rule inet {TABLE} forward iifname \"{bridge}\" accept comment \"{bridge}: from containers\"
add rule inet {TABLE} forward oifname \"{bridge}\" ct state established,related accept comment \"{bridge}: replies to containers\"
add rule inet {TABLE} forward oifname \"{bridge}\" ct status dnat accept comment \"{bridge}: published ports\"
"
    )
}
// ANCHOR_END: ruleset

/// Run an nft script, as one transaction; its output.
fn nft(args: &[&str], script: &str) -> Result<String, FirewallError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FirewallError::Missing(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| FirewallError::Missing(e.to_string()))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let line = why
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        return Err(FirewallError::Refused(line.trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Load the bridge network's rules (atomically), and let this namespace
/// forward: without `net.ipv4.ip_forward`, the kernel drops what the
/// containers send past the bridge, whatever the rules say. And let the
/// bridge carry packets from 127.0.0.1 (`route_localnet`): a port published
/// to the host's loopback is DNATed before routing, with that source.
pub fn ensure(bridge: &str, subnet: &Subnet) -> Result<(), FirewallError> {
    nft(&["-f", "-"], &ruleset(bridge, subnet))?;
    // /proc/sys/net is the namespace of whoever opens it: this one's.
    for (file, what) in [
        (
            "/proc/sys/net/ipv4/ip_forward".to_owned(),
            "net.ipv4.ip_forward",
        ),
        (
            format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
            "route_localnet",
        ),
    ] {
        std::fs::write(&file, "1").map_err(|e| FirewallError::Refused(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// The rules that publish `ports` of the container `id` at `address`:
/// DNAT for what comes in (prerouting) and for what the host itself sends
/// (output), to any of the host's addresses or the one given. Each carries
/// the container's id as its comment: that is how they are found again.
// ANCHOR: port_rules
pub fn port_rules(id: &str, address: Ipv4Addr, ports: &[Port]) -> String {
    let mut script = String::new();
    for port in ports {
        let to = match port.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            None => "fib daddr type local".to_owned(),
        };
        for chain in ["prerouting", "output"] {
            script.push_str(&format!(
                "add rule inet {TABLE} {chain} {to} {proto} dport {host} dnat ip to {address}:{ctr} comment \"{id}\"\n",
                proto = port.proto,
                host = port.host,
                ctr = port.container,
            ));
        }
    }
    script
}
// ANCHOR_END: port_rules

/// Publish `ports` of container `id`.
pub fn publish(id: &str, address: Ipv4Addr, ports: &[Port]) -> Result<(), FirewallError> {
    if ports.is_empty() {
        return Ok(());
    }
    nft(&["-f", "-"], &port_rules(id, address, ports)).map(|_| ())
}

/// Remove every rule of container `id` (found by its comment, deleted by
/// handle, in one transaction). Nothing to remove is no error.
pub fn unpublish(id: &str) -> Result<(), FirewallError> {
    let mut script = String::new();
    for chain in ["prerouting", "output"] {
        let Ok(listed) = nft(&["-a", "list", "chain", "inet", TABLE, chain], "") else {
            continue;
        };
        for line in listed.lines() {
            if !line.contains(&format!("comment \"{id}\"")) {
                continue;
            }
            if let Some(handle) = line.rsplit_once("# handle ").map(|(_, h)| h.trim()) {
                script.push_str(&format!(
                    "delete rule inet {TABLE} {chain} handle {handle}\n"
                ));
            }
        }
    }
    if script.is_empty() {
        return Ok(());
    }
    nft(&["-f", "-"], &script).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_stays_in_its_own_table_and_names_the_bridge() {
        let rules = ruleset("myruntime0", &"10.99.0.0/16".parse().unwrap());
        for line in rules.lines() {
            assert!(line.contains("inet myruntime"), "{line}");
            assert!(
                !line.starts_with("flush ruleset") && !line.starts_with("delete"),
                "{line}"
            );
        }
        assert!(rules.contains("ip saddr 10.99.0.0/16 oifname != \"myruntime0\" masquerade"));
        assert!(rules.contains("ct state established,related accept"));
    }

    #[test]
    fn a_published_port_is_dnat_in_and_from_the_host_tagged_with_its_container() {
        let ports = "8080:80".parse::<crate::ports::Publish>().unwrap().0;
        let rules = port_rules("abc", Ipv4Addr::new(10, 99, 0, 2), &ports);
        assert_eq!(rules.lines().count(), 2);
        assert!(rules.contains(
            "add rule inet myruntime prerouting fib daddr type local tcp dport 8080 dnat ip to 10.99.0.2:80 comment \"abc\""
        ));
        assert!(rules.contains("output fib daddr type local tcp dport 8080"));
    }
}
