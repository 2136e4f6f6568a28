//! The monitor's control socket (`<rundir>/containers/<id>/ctl.sock`): how
//! other commands reach a detached container's monitor. `SOCK_SEQPACKET`,
//! so each frame is one message; the first byte says what it is.
//!
//! | frame | from | meaning |
//! |---|---|---|
//! | `S` | client | start the container (it was created) |
//! | `K` | monitor | done |
//! | `F` code message | monitor | failed: the exit status, and why |
//! | `A` stdin | client | attach: send me its output (and take my input, if stdin is 1) |
//! | `W` | client | tell me when it exits |
//! | `1` data / `2` data | monitor | output on its stdout / stderr |
//! | `I` data | client | input for its stdin |
//! | `C` | client | its stdin is at end of file |
//! | `R` rows cols | client | the terminal's size (two u16, big-endian) |
//! | `X` code | monitor | it exited with this status (i32, big-endian) |
//!
//! The socket is in the runtime directory (0700, root's or the user's), so
//! only the runtime's user reaches a monitor.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, accept4, bind, connect, listen,
    recv, send, socket,
};

/// The longest frame: what a read from the container's output may fill.
pub const FRAME_MAX: usize = 32 * 1024 + 1;

/// One frame of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Start,
    Done,
    Failed { code: u8, message: String },
    Attach { stdin: bool },
    Wait,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Input(Vec<u8>),
    Close,
    Resize { rows: u16, cols: u16 },
    Exit(i32),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let with = |tag: u8, data: &[u8]| {
            let mut v = Vec::with_capacity(data.len() + 1);
            v.push(tag);
            v.extend_from_slice(data);
            v
        };
        match self {
            Frame::Start => vec![b'S'],
            Frame::Done => vec![b'K'],
            Frame::Failed { code, message } => {
                let mut v = vec![b'F', *code];
                v.extend_from_slice(&message.as_bytes()[..message.len().min(4000)]);
                v
            }
            Frame::Attach { stdin } => vec![b'A', u8::from(*stdin)],
            Frame::Wait => vec![b'W'],
            Frame::Stdout(d) => with(b'1', d),
            Frame::Stderr(d) => with(b'2', d),
            Frame::Input(d) => with(b'I', d),
            Frame::Close => vec![b'C'],
            Frame::Resize { rows, cols } => {
                let mut v = vec![b'R'];
                v.extend_from_slice(&rows.to_be_bytes());
                v.extend_from_slice(&cols.to_be_bytes());
                v
            }
            Frame::Exit(code) => with(b'X', &code.to_be_bytes()),
        }
    }

    /// A frame from its bytes; `None` for anything that is not one.
    pub fn decode(bytes: &[u8]) -> Option<Frame> {
        let (&tag, rest) = bytes.split_first()?;
        Some(match (tag, rest) {
            (b'S', []) => Frame::Start,
            (b'K', []) => Frame::Done,
            (b'F', [code, message @ ..]) => Frame::Failed {
                code: *code,
                message: String::from_utf8_lossy(message).into_owned(),
            },
            (b'A', [stdin]) => Frame::Attach { stdin: *stdin == 1 },
            (b'W', []) => Frame::Wait,
            (b'1', d) => Frame::Stdout(d.to_vec()),
            (b'2', d) => Frame::Stderr(d.to_vec()),
            (b'I', d) => Frame::Input(d.to_vec()),
            (b'C', []) => Frame::Close,
            (b'R', [a, b, c, d]) => Frame::Resize {
                rows: u16::from_be_bytes([*a, *b]),
                cols: u16::from_be_bytes([*c, *d]),
            },
            (b'X', [a, b, c, d]) => Frame::Exit(i32::from_be_bytes([*a, *b, *c, *d])),
            _ => return None,
        })
    }
}

/// A socket path may be longer than `sun_path` holds (108 bytes; a rootless
/// runtime directory with a 64-digit id is): bind and connect through the
/// directory's descriptor instead, `/proc/self/fd/N/ctl.sock`.
fn through_dir<T>(path: &Path, f: impl FnOnce(&UnixAddr) -> Result<T, Errno>) -> Result<T, Errno> {
    let dir = path.parent().ok_or(Errno::EINVAL)?;
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let dir = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    let addr = UnixAddr::new(&short)?;
    f(&addr)
}

/// The monitor's listening socket at `path`.
pub fn listen_at(path: &Path) -> Result<OwnedFd, Errno> {
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    through_dir(path, |addr| bind(fd.as_raw_fd(), addr))?;
    listen(&fd, Backlog::new(64)?)?;
    Ok(fd)
}

/// Take a waiting connection (non-blocking).
pub fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let fd = accept4(
        listener.as_raw_fd(),
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?;
    // SAFETY: accept4 just returned this descriptor.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Connect to the monitor listening at `path` (a blocking socket).
pub fn connect_to(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    through_dir(path, |addr| connect(fd.as_raw_fd(), addr))?;
    Ok(fd)
}

/// Send one frame. `MSG_NOSIGNAL`: a peer gone is an error, not SIGPIPE.
pub fn send_frame(fd: BorrowedFd<'_>, frame: &Frame, blocking: bool) -> Result<(), Errno> {
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if !blocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match send(fd.as_raw_fd(), &frame.encode(), flags) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// The next frame; `Ok(None)` at end of file.
pub fn recv_frame(fd: BorrowedFd<'_>) -> Result<Option<Frame>, Errno> {
    let mut buf = vec![0u8; FRAME_MAX + 8];
    let n = loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    Frame::decode(&buf[..n]).map(Some).ok_or(Errno::EBADMSG)
}

/// A request that expects one answer (`start`): `Ok(())` on `K`, the
/// failure on `F`.
pub fn request(path: &Path, frame: &Frame) -> Result<Result<(), (u8, String)>, Errno> {
    let fd = connect_to(path)?;
    send_frame(fd.as_fd(), frame, true)?;
    match recv_frame(fd.as_fd())? {
        Some(Frame::Done) => Ok(Ok(())),
        Some(Frame::Failed { code, message }) => Ok(Err((code, message))),
        _ => Err(Errno::EPROTO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for frame in [
            Frame::Start,
            Frame::Done,
            Frame::Failed {
                code: 127,
                message: "not found".into(),
            },
            Frame::Attach { stdin: true },
            Frame::Wait,
            Frame::Stdout(b"hi\n".to_vec()),
            Frame::Stderr(vec![]),
            Frame::Input(b"x".to_vec()),
            Frame::Close,
            Frame::Resize {
                rows: 50,
                cols: 132,
            },
            Frame::Exit(-1),
        ] {
            assert_eq!(
                Frame::decode(&frame.encode()),
                Some(frame.clone()),
                "{frame:?}"
            );
        }
        assert_eq!(Frame::decode(b""), None);
        assert_eq!(Frame::decode(b"Zjunk"), None);
        assert_eq!(Frame::decode(b"Xab"), None);
    }

    #[test]
    fn a_long_path_is_reached_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(100));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("ctl.sock");
        let listener = listen_at(&path).unwrap();
        let client = connect_to(&path).unwrap();
        send_frame(client.as_fd(), &Frame::Wait, true).unwrap();
        let served = loop {
            match accept(listener.as_fd()) {
                Ok(fd) => break fd,
                Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        };
        // The accepted socket is non-blocking; the frame is there already.
        assert_eq!(recv_frame(served.as_fd()).unwrap(), Some(Frame::Wait));
    }
}
