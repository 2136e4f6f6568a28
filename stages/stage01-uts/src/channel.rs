//! Descriptors from the runtime to the container's process, over a
//! socketpair.
//!
//! A pipe carries bytes; a Unix socket can also carry open files
//! (`SCM_RIGHTS`): the kernel installs a copy of each descriptor in the
//! receiving process. The runtime uses this when the container's process
//! must act on something it could not open itself: stage 06 opens the
//! overlay's layers and directories as the host sees them, and the child,
//! root of its user namespace but an ordinary uid on the host, mounts them
//! through the descriptors without ever walking the host's directories.
//!
//! The socket is `SOCK_SEQPACKET` (each send is one message, never merged
//! with the next) and close-on-exec on both sides; descriptors arrive
//! close-on-exec too (`MSG_CMSG_CLOEXEC`), so none can reach COMMAND.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

/// The most descriptors one message may carry (the kernel's `SCM_MAX_FD`
/// is 253).
const PER_MESSAGE: usize = 250;

/// One end of the runtime ↔ container socket.
#[derive(Debug)]
pub struct Channel(OwnedFd);

/// A socketpair: (the runtime's end, the container's end).
pub fn pair() -> Result<(Channel, Channel), Errno> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    /// Send `fds` (any number, in as many messages as needed).
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
        for chunk in fds.chunks(PER_MESSAGE) {
            let raw: Vec<RawFd> = chunk.iter().map(AsRawFd::as_raw_fd).collect();
            // The count travels as the message's one byte of data.
            let count = [chunk.len() as u8];
            let iov = [IoSlice::new(&count)];
            let cmsg = [ControlMessage::ScmRights(&raw)];
            sendmsg::<()>(self.0.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
        }
        Ok(())
    }

    /// Receive exactly `count` descriptors, in the order they were sent.
    pub fn recv_fds(&self, count: usize) -> Result<Vec<OwnedFd>, Errno> {
        let mut received = Vec::with_capacity(count);
        while received.len() < count {
            let mut byte = [0u8; 1];
            let mut iov = [IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; PER_MESSAGE]);
            let msg = recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            if msg.bytes == 0 {
                // The runtime closed its end: it died, or sent too few.
                return Err(Errno::EPIPE);
            }
            for cmsg in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    // SAFETY: the kernel just installed these descriptors in
                    // this process; nothing else owns them.
                    received.extend(
                        fds.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        if received.len() != count {
            return Err(Errno::EPROTO);
        }
        Ok(received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_cross_in_order_and_arrive_close_on_exec() {
        let (host, child) = pair().unwrap();
        let files: Vec<std::fs::File> = (0..300)
            .map(|n| {
                let mut f = tempfile::tempfile().unwrap();
                write!(f, "{n}").unwrap();
                f
            })
            .collect();
        let fds: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
        host.send_fds(&fds).unwrap();
        let got = child.recv_fds(300).unwrap();
        assert_eq!(got.len(), 300);
        for (n, fd) in got.into_iter().enumerate() {
            let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0, "close-on-exec");
            let mut file = std::fs::File::from(fd);
            file.rewind().unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            assert_eq!(text, n.to_string());
        }
    }

    #[test]
    fn a_runtime_that_went_away_is_an_error_not_a_hang() {
        let (host, child) = pair().unwrap();
        drop(host);
        assert_eq!(child.recv_fds(1).unwrap_err(), Errno::EPIPE);
    }
}
