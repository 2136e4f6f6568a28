//! The runtime and the container's process talk over a socketpair, in
//! typed messages.
//!
//! ```text
//!   runtime (parent)                            container's process (child)
//!   ────────────────                            ───────────────────────────
//!   prepare each primitive
//!   socketpair, clone ────────────────────────► waits for Released
//!   attach each primitive (uid maps, cgroup)
//!     Fds ────────────────────────────────────► kept for setup (stage 06's layers)
//!   Released ─────────────────────────────────► setup each primitive, in phase order
//!   waits for Ready ◄──────────────────────────  Ready            (or Failed, then exit)
//!   "created": the state says so; the child waits
//!   Start ────────────────────────────────────► close-on-exec sweep, execve(COMMAND)
//!   waits for end-of-file ◄────────────────────  (the socket is close-on-exec: EOF = COMMAND runs)
//!                          ◄────────────────────  Failed { 127, "command not found: …" }, exit
//! ```
//!
//! The socket is `SOCK_SEQPACKET`: each send is one message, never merged
//! with the next. It can carry open files (`SCM_RIGHTS`): the kernel
//! installs a copy of each descriptor in the receiving process, so the
//! runtime can hand the child what it could not open itself. Both ends, and
//! every descriptor received, are close-on-exec: nothing crosses into
//! COMMAND.
//!
//! Every wait names what it waits for, and says what came instead (another
//! message, or the other side going away) when that is not it.

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
/// The longest message on the socket (an error's text is cut to fit).
const MESSAGE_MAX: usize = 4096;

/// What the runtime and the container's process say to each other.
// ANCHOR: message
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Runtime → child: descriptors follow in this message, for a
    /// primitive's setup to take.
    Fds,
    /// Runtime → child: attached (maps written, cgroup joined): set up.
    Released,
    /// Child → runtime: set up; waiting to be started.
    Ready,
    /// Runtime → child: execute COMMAND.
    Start,
    /// Child → runtime: a step failed; the exit status it maps to, and why.
    Failed { code: u8, message: String },
}
// ANCHOR_END: message

impl Message {
    /// Its name, for "waited for X, got Y".
    pub fn name(&self) -> &'static str {
        match self {
            Message::Fds => "Fds",
            Message::Released => "Released",
            Message::Ready => "Ready",
            Message::Start => "Start",
            Message::Failed { .. } => "Failed",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Fds => vec![b'F'],
            Message::Released => vec![b'R'],
            Message::Ready => vec![b'Y'],
            Message::Start => vec![b'S'],
            Message::Failed { code, message } => {
                let mut bytes = vec![b'X', *code];
                let mut cut = message.len().min(MESSAGE_MAX - 2);
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                bytes.extend_from_slice(&message.as_bytes()[..cut]);
                bytes
            }
        }
    }

    fn decode(bytes: &[u8]) -> Option<Message> {
        Some(match bytes {
            [b'F'] => Message::Fds,
            [b'R'] => Message::Released,
            [b'Y'] => Message::Ready,
            [b'S'] => Message::Start,
            [b'X', code, message @ ..] => Message::Failed {
                code: *code,
                message: String::from_utf8_lossy(message).into_owned(),
            },
            _ => return None,
        })
    }
}

/// A wait that did not get what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("waiting for {expected}, the other side went away")]
    Closed { expected: &'static str },
    #[error("waiting for {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("waiting for {expected}, got a message that is none of the protocol's")]
    Garbled { expected: &'static str },
    #[error("{call} failed: {errno}")]
    Socket { call: &'static str, errno: Errno },
}

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
    /// Send `message`; [`Message::Fds`] carries `fds` (in as many messages
    /// as needed).
    pub fn send(&self, message: &Message) -> Result<(), SyncError> {
        self.send_with(message, &[])
    }

    /// Send descriptors (one [`Message::Fds`] per 250 of them).
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), SyncError> {
        for chunk in fds.chunks(PER_MESSAGE) {
            self.send_with(&Message::Fds, chunk)?;
        }
        Ok(())
    }

    fn send_with(&self, message: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), SyncError> {
        let bytes = message.encode();
        let iov = [IoSlice::new(&bytes)];
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
        // MSG_NOSIGNAL: a peer that died is an error to report, not a
        // SIGPIPE to die of.
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(|_| ())
        .map_err(|errno| SyncError::Socket {
            call: "sendmsg",
            errno,
        })
    }

    /// The next message, with the descriptors it carried; `None` at end of
    /// file (the other side closed its end, exited or executed a program).
    pub fn recv(&self) -> Result<Option<(Message, Vec<OwnedFd>)>, SyncError> {
        let mut buf = [0u8; MESSAGE_MAX];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; PER_MESSAGE]);
        let msg = loop {
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                other => {
                    break other.map_err(|errno| SyncError::Socket {
                        call: "recvmsg",
                        errno,
                    })?;
                }
            }
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(|errno| SyncError::Socket {
            call: "recvmsg",
            errno,
        })? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in
                // this process; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let len = msg.bytes;
        if len == 0 {
            return Ok(None);
        }
        let bytes = iov[0].get(..len).unwrap_or_default().to_vec();
        match Message::decode(&bytes) {
            Some(message) => Ok(Some((message, fds))),
            None => Err(SyncError::Garbled {
                expected: "a message",
            }),
        }
    }

    /// Wait for `expected`. Descriptors sent before it ([`Message::Fds`])
    /// are added to `fds`; anything else, or the end of file, is an error
    /// that says what came instead.
    pub fn expect(
        &self,
        expected: &'static str,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Message, SyncError> {
        loop {
            match self.recv() {
                Ok(Some((Message::Fds, received))) => fds.extend(received),
                Ok(Some((message, _))) if message.name() == expected => return Ok(message),
                Ok(Some((Message::Failed { code, message }, _))) => {
                    return Ok(Message::Failed { code, message });
                }
                Ok(Some((other, _))) => {
                    return Err(SyncError::Unexpected {
                        expected,
                        got: other.name(),
                    });
                }
                Ok(None) => return Err(SyncError::Closed { expected }),
                Err(SyncError::Garbled { .. }) => return Err(SyncError::Garbled { expected }),
                Err(e) => return Err(e),
            }
        }
    }

    /// The raw descriptor, for poll(2).
    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for message in [
            Message::Released,
            Message::Ready,
            Message::Start,
            Message::Failed {
                code: 127,
                message: "command not found: \"x\"".into(),
            },
        ] {
            a.send(&message).unwrap();
            assert_eq!(b.recv().unwrap().unwrap().0, message);
        }
    }

    #[test]
    fn descriptors_cross_in_order_before_the_message_waited_for() {
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
        host.send(&Message::Released).unwrap();
        let mut got = Vec::new();
        assert_eq!(
            child.expect("Released", &mut got).unwrap(),
            Message::Released
        );
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
    fn a_wait_says_what_it_waited_for_and_what_came() {
        let (host, child) = pair().unwrap();
        child.send(&Message::Start).unwrap();
        let err = host.expect("Ready", &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "waiting for Ready, got Start");
        drop(child);
        let err = host.expect("Ready", &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "waiting for Ready, the other side went away"
        );
    }

    #[test]
    fn a_failure_is_delivered_whatever_was_waited_for() {
        let (host, child) = pair().unwrap();
        let failed = Message::Failed {
            code: 126,
            message: "é".repeat(3000),
        };
        child.send(&failed).unwrap();
        match host.expect("Ready", &mut Vec::new()).unwrap() {
            Message::Failed { code, message } => {
                assert_eq!(code, 126);
                assert!(message.len() <= MESSAGE_MAX && message.starts_with('é'));
            }
            other => panic!("{other:?}"),
        }
    }
}
