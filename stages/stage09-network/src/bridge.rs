//! The host's side of a bridge network, through rtnetlink: the bridge with
//! its gateway address, and a veth pair per container (one end on the
//! bridge, the other moved into the container's network namespace).
//!
//! rtnetlink is asynchronous: each call here runs a current-thread tokio
//! runtime for the length of the call. No thread is made, and the runtime
//! made its clone before any of this runs (a runtime with threads must
//! never clone: the child would inherit locks held by threads it has not).

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth};

/// A netlink request that failed, with what it was for.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {why}")]
pub struct NetlinkError {
    pub what: String,
    pub why: String,
}

fn failed(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |e| NetlinkError {
        what,
        why: match &e {
            rtnetlink::Error::NetlinkError(m) => m
                .to_io()
                .raw_os_error()
                .map(|n| nix::errno::Errno::from_raw(n).desc().to_lowercase())
                .unwrap_or_else(|| e.to_string()),
            _ => e.to_string(),
        },
    }
}

/// Run `body` with a netlink handle of this thread's network namespace.
fn with_handle<T>(
    body: impl AsyncFnOnce(Handle) -> Result<T, NetlinkError>,
) -> Result<T, NetlinkError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetlinkError {
            what: "starting the netlink client".into(),
            why: e.to_string(),
        })?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| NetlinkError {
            what: "opening a netlink socket".into(),
            why: e.to_string(),
        })?;
        tokio::spawn(connection);
        body(handle).await
    })
}

/// The index of the link `name`, if there is one.
async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, NetlinkError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(m))
            if m.to_io().raw_os_error() == Some(libc::ENODEV) =>
        {
            Ok(None)
        }
        Err(e) => Err(failed(format!("looking up the link {name}"))(e)),
    }
}

/// The bridge `name`, made if it is missing, with `gateway/prefix` as its
/// address, up. Two runtimes may race to make it: the loser finds it made.
// ANCHOR: ensure_bridge
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
    with_handle(async |handle: Handle| {
        let index = match index_of(&handle, name).await? {
            Some(index) => index,
            None => {
                let made = handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await;
                match made {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(m))
                        if m.to_io().raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(failed(format!("making the bridge {name}"))(e)),
                }
                index_of(&handle, name).await?.ok_or_else(|| NetlinkError {
                    what: format!("making the bridge {name}"),
                    why: "it is gone again".into(),
                })?
            }
        };
        let added = handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .execute()
            .await;
        match added {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(m))
                if m.to_io().raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(failed(format!(
                    "giving {name} the address {gateway}/{prefix}"
                ))(e));
            }
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(failed(format!("bringing {name} up")))
    })
}
// ANCHOR_END: ensure_bridge

/// A veth pair: `host` on `bridge`, up; `peer` moved into the network
/// namespace of process `pid` (it arrives there down, with no address: the
/// container's process configures it from inside).
// ANCHOR: veth
pub fn add_veth(host: &str, peer: &str, bridge: &str, pid: u32) -> Result<(), NetlinkError> {
    with_handle(async |handle: Handle| {
        let bridge_index = index_of(&handle, bridge)
            .await?
            .ok_or_else(|| NetlinkError {
                what: format!("attaching to the bridge {bridge}"),
                why: "it does not exist".into(),
            })?;
        handle
            .link()
            .add(LinkVeth::new(host, peer).build())
            .execute()
            .await
            .map_err(failed(format!("making the veth pair {host}/{peer}")))?;
        let host_index = index_of(&handle, host).await?.unwrap_or_default();
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(host_index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(failed(format!("putting {host} on {bridge}")))?;
        let peer_index = index_of(&handle, peer).await?.unwrap_or_default();
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(peer_index)
                    .setns_by_pid(pid)
                    .build(),
            )
            .execute()
            .await
            .map_err(failed(format!(
                "moving {peer} into the container's namespace"
            )))
    })
}
// ANCHOR_END: veth

/// Delete the link `name` if it exists (a veth's peer goes with it).
pub fn delete(name: &str) -> Result<(), NetlinkError> {
    with_handle(async |handle: Handle| {
        let Some(index) = index_of(&handle, name).await? else {
            return Ok(());
        };
        match handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m))
                if m.to_io().raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(())
            }
            Err(e) => Err(failed(format!("deleting {name}"))(e)),
        }
    })
}
