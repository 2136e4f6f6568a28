//! Interfaces configured from inside the container's network namespace, by
//! its first process, before COMMAND runs: a few ioctls on a socket of that
//! namespace. (A netlink socket would do as well; what matters is that it is
//! made in there: a socket belongs to the namespace it was made in, not to
//! the one its process is in later.)

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// A datagram socket of this process's network namespace, for ioctls.
fn socket() -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ifreq naming `name`.
fn request(name: &str) -> Result<libc::ifreq, Errno> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= request.ifr_name.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    Ok(request)
}

fn ioctl(fd: &OwnedFd, op: libc::Ioctl, request: *mut libc::c_void) -> Result<(), Errno> {
    // SAFETY: every caller passes the structure `op` reads or writes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), op, request) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn sockaddr(address: Ipv4Addr) -> libc::sockaddr {
    let inet = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux; a
    // sockaddr is how the kernel takes either.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(inet) }
}

/// Set `IFF_UP` on `name`.
pub fn up(name: &str) -> Result<(), Errno> {
    let fd = socket()?;
    let mut req = request(name)?;
    ioctl(&fd, libc::SIOCGIFFLAGS, (&raw mut req).cast())?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(&fd, libc::SIOCSIFFLAGS, (&raw mut req).cast())
}

/// Rename `from` to `to` (it must be down).
pub fn rename(from: &str, to: &str) -> Result<(), Errno> {
    let fd = socket()?;
    let mut req = request(from)?;
    let new = request(to)?;
    req.ifr_ifru.ifru_newname = new.ifr_name;
    ioctl(&fd, libc::SIOCSIFNAME, (&raw mut req).cast())
}

/// Give `name` the address `address/prefix`.
pub fn address(name: &str, address: Ipv4Addr, prefix: u8) -> Result<(), Errno> {
    let fd = socket()?;
    let mut req = request(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(address);
    ioctl(&fd, libc::SIOCSIFADDR, (&raw mut req).cast())?;
    let mask = Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix)));
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(&fd, libc::SIOCSIFNETMASK, (&raw mut req).cast())
}

/// The default route, through `gateway`.
pub fn default_route(gateway: Ipv4Addr) -> Result<(), Errno> {
    let fd = socket()?;
    // SAFETY: rtentry is plain old data; all zeroes is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(&fd, libc::SIOCADDRT, (&raw mut route).cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_cannot_hold_are_refused_before_any_call() {
        assert_eq!(up("a-name-longer-than-sixteen"), Err(Errno::ENAMETOOLONG));
        assert_eq!(rename("lo", ""), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn an_address_is_in_network_order() {
        let raw = sockaddr(Ipv4Addr::new(10, 99, 0, 2));
        // SAFETY: made from a sockaddr_in just above.
        let inet: libc::sockaddr_in = unsafe { std::mem::transmute(raw) };
        assert_eq!(inet.sin_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(inet.sin_addr.s_addr.to_ne_bytes(), [10, 99, 0, 2]);
    }
}
