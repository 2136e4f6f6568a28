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
        crate::iface::up("lo").map_err(|errno| {
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
