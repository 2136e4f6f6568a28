//! The network namespace, and its loopback brought up.
//!
//! `CLONE_NEWNET` gives the child a network stack of its own: no interface
//! but `lo`, no route, no firewall rule, its own port numbers. Its `lo`
//! starts **down**: until it is up, even 127.0.0.1 is unreachable
//! (`connect` fails with ENETUNREACH), and many programs that talk to
//! themselves over loopback (databases, language servers, test suites)
//! break in confusing ways. So the child sets `IFF_UP` on it from inside,
//! where it is root of the namespace (also rootless: the namespace belongs
//! to the user namespace made in the same clone).
//!
//! `ioctl(SIOCSIFFLAGS)` on any socket of the namespace is enough for one
//! flag; the addresses (127.0.0.1/8, ::1) come with the interface, and the
//! kernel adds their local routes once it is up.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use stage01_uts::{Context, Error, Phase, Primitive, explain};

/// The stage 09 primitive: a network namespace with its loopback up.
// ANCHOR: loopback
pub struct Loopback;

impl Primitive for Loopback {
    fn name(&self) -> &'static str {
        "network"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNET
    }

    /// In the child, inside its new network namespace.
    fn setup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        up("lo").map_err(|errno| {
            Error::syscall(
                "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)",
                "bringing the container's loopback up",
                errno,
            )
        })?;
        explain!(
            "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)" => "ok",
            "a new network namespace's loopback starts down; up, 127.0.0.1 answers"
        );
        Ok(())
    }
}
// ANCHOR_END: loopback

/// Set `IFF_UP` on the interface `name` of this process's namespace.
pub fn up(name: &str) -> Result<(), Errno> {
    let mut request: libc::ifreq = unsafe_zeroed_ifreq();
    if name.len() >= request.ifr_name.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned
    // below and closed on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(Errno::last());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(raw, libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

fn unsafe_zeroed_ifreq() -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_too_long_for_the_kernel_is_refused_before_any_call() {
        assert_eq!(up("a-name-longer-than-sixteen"), Err(Errno::ENAMETOOLONG));
    }
}
