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
use std::path::Path;
use std::process::{Command, Stdio};

use std::net::Ipv4Addr;

use crate::networks::Net;
use crate::ports::Port;

/// The table every rule of the runtime lives in.
pub const TABLE: &str = "myruntime";
/// Every bridge of the runtime, as an nft interface name pattern.
const BRIDGES: &str = "myruntime*";

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

/// The ruleset of every network: for each, outbound traffic of its
/// containers masqueraded behind the host's address (the outside never
/// needs a route to the subnet), and forwarded: out from its bridge, and
/// back in for connections the containers opened or ports they publish.
/// First, for each, that nothing goes from its bridge to another of the
/// runtime's bridges: networks are isolated from each other, as docker's
/// are (its DOCKER-ISOLATION chains); only a port another network's
/// container publishes on the host is reached, as from anywhere.
// ANCHOR: ruleset
pub fn ruleset(nets: &[Net]) -> String {
    let mut script = format!(
        "add table inet {TABLE}
add chain inet {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain inet {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain inet {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain inet {TABLE} postrouting
flush chain inet {TABLE} forward
"
    );
    for Net { bridge, .. } in nets {
        script.push_str(&format!(
            "add rule inet {TABLE} forward iifname \"{bridge}\" oifname \"{BRIDGES}\" oifname != \"{bridge}\" ct status & dnat == 0 drop comment \"{bridge}: no other network, but published ports\"\n"
        ));
    }
    for Net { bridge, subnet, .. } in nets {
        script.push_str(&format!(
            "add rule inet {TABLE} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade comment \"{bridge}: containers out\"
add rule inet {TABLE} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade comment \"{bridge}: published ports, from the host's loopback\"
add rule inet {TABLE} postrouting ct status dnat ip saddr {subnet} oifname \"{bridge}\" masquerade comment \"{bridge}: published ports, from a container (hairpin)\"
add rule inet {TABLE} forward iifname \"{bridge}\" accept comment \"{bridge}: from containers\"
add rule inet {TABLE} forward oifname \"{bridge}\" ct state established,related accept comment \"{bridge}: replies to containers\"
add rule inet {TABLE} forward oifname \"{bridge}\" ct status dnat accept comment \"{bridge}: published ports\"
"
        ));
    }
    script
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

/// Load the rules of every network (atomically), and let this namespace
/// forward: without `net.ipv4.ip_forward`, the kernel drops what the
/// containers send past their bridge, whatever the rules say. And let each
/// bridge carry packets from 127.0.0.1 (`route_localnet`): a port published
/// to the host's loopback is DNATed before routing, with that source. With
/// no network left, the table goes.
pub fn ensure(nets: &[Net]) -> Result<(), FirewallError> {
    if nets.is_empty() {
        // Absent already is no error: `nft delete` of a missing table is.
        if nft(&["list", "table", "inet", TABLE], "").is_ok() {
            nft(&["delete", "table", "inet", TABLE], "")?;
        }
        iptables_forward(&[])?;
        return Ok(());
    }
    nft(&["-f", "-"], &ruleset(nets))?;
    let bridges: Vec<&str> = nets.iter().map(|n| n.bridge.as_str()).collect();
    iptables_forward(&bridges)?;
    // /proc/sys/net is the namespace of whoever opens it: this one's.
    let mut knobs = vec![(
        "/proc/sys/net/ipv4/ip_forward".to_owned(),
        "net.ipv4.ip_forward",
    )];
    for net in nets {
        // Only bridges that exist (a network whose bridge a reboot took is
        // made again when a container joins it).
        let file = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
        if Path::new(&file).exists() {
            knobs.push((file, "route_localnet"));
        }
    }
    for (file, what) in knobs {
        std::fs::write(&file, "1").map_err(|e| FirewallError::Refused(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// The chain of the runtime's own in iptables' `filter` table.
const IPTABLES_CHAIN: &str = "MYRUNTIME-FORWARD";

/// Coexisting with a host whose iptables `FORWARD` policy is DROP, as
/// docker leaves it (and many firewalls). A packet is forwarded only if
/// every base chain on the forward hook accepts it: an accept in
/// `inet myruntime` cannot overrule a drop in `ip filter`. So, on such a
/// host only, the bridges' accepts are repeated there, in a chain of the
/// runtime's own (`MYRUNTIME-FORWARD`) jumped to first from `FORWARD`, as
/// netavark does with its iptables driver; it goes with the last network.
/// Through `iptables`, whichever backend it has (legacy or nft): its rules
/// are only visible to it. A host without iptables has no such policy.
// ANCHOR: iptables
fn iptables_forward(bridges: &[&str]) -> Result<(), FirewallError> {
    let run = |args: &[&str]| {
        Command::new("iptables")
            .args(["-w", "5"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    let Ok(listed) = run(&["-S", "FORWARD"]) else {
        return Ok(());
    };
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let jumps = listed.contains(&format!("-j {IPTABLES_CHAIN}"));
    let wanted = !bridges.is_empty() && listed.lines().any(|l| l == "-P FORWARD DROP");
    let refused = |what: &str| FirewallError::Refused(format!("iptables: {what}"));
    if !wanted {
        if jumps {
            let _ = run(&["-D", "FORWARD", "-j", IPTABLES_CHAIN]);
            let _ = run(&["-F", IPTABLES_CHAIN]);
            let _ = run(&["-X", IPTABLES_CHAIN]);
        }
        return Ok(());
    }
    // The chain made if missing, then emptied and filled: the same rules
    // whoever set it up last.
    let _ = run(&["-N", IPTABLES_CHAIN]);
    let ok = |args: &[&str]| run(args).is_ok_and(|o| o.status.success());
    if !ok(&["-F", IPTABLES_CHAIN]) {
        return Err(refused("cannot empty its chain MYRUNTIME-FORWARD"));
    }
    for bridge in bridges {
        // From the bridge; back to it, for connections made from it and
        // for published ports.
        let mut rules = vec![vec!["-i", bridge, "-j", "ACCEPT"]];
        for state in ["RELATED,ESTABLISHED", "DNAT"] {
            rules.push(vec![
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                state,
                "-j",
                "ACCEPT",
            ]);
        }
        for rule in rules {
            let mut args = vec!["-A", IPTABLES_CHAIN];
            args.extend(rule);
            if !ok(&args) {
                return Err(refused("cannot add a rule to its chain MYRUNTIME-FORWARD"));
            }
        }
    }
    if !jumps && !ok(&["-I", "FORWARD", "1", "-j", IPTABLES_CHAIN]) {
        return Err(refused("cannot jump to its chain from FORWARD"));
    }
    Ok(())
}
// ANCHOR_END: iptables

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
        let net = |name: &str, bridge: &str, subnet: &str| Net {
            name: name.into(),
            id: String::new(),
            bridge: bridge.into(),
            subnet: subnet.parse().unwrap(),
            created: String::new(),
        };
        let rules = ruleset(&[
            net("bridge", "myruntime0", "10.99.0.0/16"),
            net("app", "myruntime1", "10.100.0.0/24"),
        ]);
        for line in rules.lines() {
            assert!(line.contains("inet myruntime"), "{line}");
            assert!(
                !line.starts_with("flush ruleset") && !line.starts_with("delete"),
                "{line}"
            );
        }
        assert!(rules.contains("ip saddr 10.99.0.0/16 oifname != \"myruntime0\" masquerade"));
        assert!(rules.contains("ct state established,related accept"));
        assert!(rules.contains("ip saddr 10.100.0.0/24 oifname != \"myruntime1\" masquerade"));
        // Isolation comes before any accept.
        let drop = rules
            .find("oifname != \"myruntime1\" ct status & dnat == 0 drop")
            .unwrap();
        assert!(drop < rules.find("accept comment").unwrap());
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
