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

use crate::ipam::Subnet;

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
add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain inet {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain inet {TABLE} postrouting
flush chain inet {TABLE} forward
add rule inet {TABLE} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade comment \"{bridge}: containers out\"
add rule inet {TABLE} forward iifname \"{bridge}\" accept comment \"{bridge}: from containers\"
add rule inet {TABLE} forward oifname \"{bridge}\" ct state established,related accept comment \"{bridge}: replies to containers\"
"
    )
}
// ANCHOR_END: ruleset

/// Load the bridge network's rules (atomically), and let this namespace
/// forward: without `net.ipv4.ip_forward`, the kernel drops what the
/// containers send past the bridge, whatever the rules say.
pub fn ensure(bridge: &str, subnet: &Subnet) -> Result<(), FirewallError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FirewallError::Missing(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(ruleset(bridge, subnet).as_bytes());
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
    // /proc/sys/net is the namespace of whoever opens it: this one's.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| FirewallError::Refused(format!("net.ipv4.ip_forward: {e}")))
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
}
