//! Errors of the start sequence, and the exit status each one maps to.
//!
//! The exit statuses follow docker and podman, so that scripts written for
//! them read ours the same way: 125 when the runtime itself failed, 126 when
//! COMMAND exists but cannot be executed, 127 when COMMAND is not found.
//! Anything else is COMMAND's own status.

use std::fmt;

use nix::errno::Errno;

// ANCHOR: exit_statuses
/// The runtime itself failed (bad input, a refused system call).
pub const EXIT_RUNTIME: u8 = 125;
/// COMMAND was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// COMMAND was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
// ANCHOR_END: exit_statuses

/// Everything that can stop a container from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused for lack of a privilege: say which, and what to do.
    #[error("{call} was refused: {action} needs {capability}; run as root (for example with sudo)")]
    Privilege {
        call: String,
        action: &'static str,
        capability: &'static str,
    },

    /// Any other failed system call.
    #[error("{call} failed: {why}: {source}")]
    Syscall {
        call: String,
        why: &'static str,
        #[source]
        source: Errno,
    },

    /// COMMAND is not in the container's PATH, or its path does not exist.
    #[error("command not found: {command:?}{searched}; check the name, or give its full path")]
    CommandNotFound { command: String, searched: Searched },

    /// COMMAND exists but the kernel will not execute it.
    #[error("cannot execute {command:?}: {source}{hint}")]
    CannotExecute {
        command: String,
        #[source]
        source: Errno,
        hint: &'static str,
    },

    /// The container's process went away before it could run COMMAND, without
    /// saying why.
    #[error("the container's process exited before it ran the command")]
    ChildVanished,

    /// The container's process was killed (from the host, or by the OOM
    /// killer) while it was being set up: reported as a shell would a
    /// killed command, 128 + the signal.
    #[error("the container's process was killed by {signal} before it ran the command")]
    KilledInSetup { signal: nix::sys::signal::Signal },

    /// An error that a verb reports with an exit status of its own (docker
    /// exits 1 for "no such container", say, where a failed start is 125).
    #[error("{source}")]
    WithCode {
        code: u8,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An error reported by the container's process, relayed to the host side
    /// (see [`crate::container`]: the child sends it as a Failed message).
    #[error("{message}")]
    Relayed { code: u8, message: String },

    /// The runtime and the container's process lost each other, or one
    /// said something out of turn ([`crate::sync`]).
    #[error("{step}: {source}")]
    Sync {
        step: &'static str,
        #[source]
        source: crate::sync::SyncError,
    },

    /// An error of a primitive added by a later stage.
    #[error(transparent)]
    Primitive(Box<dyn std::error::Error + Send + Sync>),

    /// An error a child process of the runtime (a `pull` that `run` started)
    /// already reported on stderr: only its exit status is left to give.
    #[error("")]
    Reported(u8),
}

impl Error {
    /// The exit status the runtime leaves with when this error stops it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CommandNotFound { .. } => EXIT_NOT_FOUND,
            Error::CannotExecute { .. } => EXIT_CANNOT_EXECUTE,
            Error::Relayed { code, .. } | Error::Reported(code) | Error::WithCode { code, .. } => {
                *code
            }
            Error::KilledInSetup { signal } => 128 + *signal as u8,
            _ => EXIT_RUNTIME,
        }
    }

    /// A failed system call, read the way a user needs it: a refusal for lack
    /// of privilege says which capability that call needs.
    pub fn syscall(call: impl Into<String>, why: &'static str, source: Errno) -> Self {
        let call = call.into();
        match (source, capability(&call)) {
            (Errno::EPERM, Some(capability)) => Error::Privilege {
                call,
                action: why,
                capability,
            },
            (source, _) => Error::Syscall { call, why, source },
        }
    }

    /// Wrap the error of a later stage's primitive.
    pub fn primitive(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Primitive(Box::new(err))
    }
}

/// The privilege a system call needs, by its name (the text a call is
/// reported with starts with it). Every EPERM is not CAP_SYS_ADMIN: a
/// refused setresuid wants CAP_SETUID, a refused mknod CAP_MKNOD, and an
/// ordinary user's uid_map wants newuidmap. `None`: not a call whose EPERM
/// is about a privilege (then the errno is reported as it is).
// ANCHOR: capability
pub fn capability(call: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        (
            "sethostname",
            "CAP_SYS_ADMIN in the container's user namespace",
        ),
        ("setresuid", "CAP_SETUID"),
        ("setuid", "CAP_SETUID"),
        ("setresgid", "CAP_SETGID"),
        ("setgroups", "CAP_SETGID"),
        ("mknod", "CAP_MKNOD"),
        ("chown", "CAP_CHOWN"),
        ("fchown", "CAP_CHOWN"),
        ("kill", "CAP_KILL (or the same user as the process)"),
        (
            "open(/proc/",
            "CAP_SYS_PTRACE (or the same user as the process)",
        ),
        (
            "write(\"/proc/",
            "root (an ordinary user maps other ids through newuidmap and newgidmap)",
        ),
        ("setns", "CAP_SYS_ADMIN in the namespace's user namespace"),
        ("clone", "CAP_SYS_ADMIN"),
        ("unshare", "CAP_SYS_ADMIN"),
        ("mount", "CAP_SYS_ADMIN"),
        ("umount", "CAP_SYS_ADMIN"),
        ("pivot_root", "CAP_SYS_ADMIN"),
        ("chroot", "CAP_SYS_CHROOT"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| call.starts_with(prefix))
        .map(|(_, capability)| *capability)
}
// ANCHOR_END: capability

/// Where COMMAND was looked for, for the "not found" message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    /// COMMAND held a `/`: it was taken as a path.
    Path,
    /// COMMAND was looked up in these PATH directories.
    Dirs(String),
    /// COMMAND was the empty string: nothing to look for.
    Empty,
}

impl fmt::Display for Searched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Searched::Path => f.write_str(" (no such file, or its interpreter is missing)"),
            Searched::Dirs(path) => write!(f, " (searched PATH={path})"),
            Searched::Empty => f.write_str(" (the command is empty)"),
        }
    }
}

/// Every message in an error's chain, outermost first, joined with `: `.
/// A library's own message often says only which operation failed; its
/// sources say why (cgroups-rs: "unable to write to a control group file",
/// then "EBUSY").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The innermost error of a chain: for transport errors, whose outer layers
/// repeat the request ("error sending request for url ...") and whose last
/// one says what happened ("connection refused").
pub fn innermost<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_docker() {
        let not_found = Error::CommandNotFound {
            command: "nope".into(),
            searched: Searched::Path,
        };
        assert_eq!(not_found.exit_code(), 127);
        let cannot = Error::CannotExecute {
            command: "/etc".into(),
            source: Errno::EACCES,
            hint: "",
        };
        assert_eq!(cannot.exit_code(), 126);
        assert_eq!(Error::ChildVanished.exit_code(), 125);
        let relayed = Error::Relayed {
            code: 127,
            message: "x".into(),
        };
        assert_eq!(relayed.exit_code(), 127);
    }

    #[test]
    fn eperm_names_the_missing_capability() {
        let err = Error::syscall(
            "clone(CLONE_NEWUTS|SIGCHLD)",
            "creating a namespace",
            Errno::EPERM,
        );
        insta::assert_snapshot!(err.to_string(), @"clone(CLONE_NEWUTS|SIGCHLD) was refused: creating a namespace needs CAP_SYS_ADMIN; run as root (for example with sudo)");
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn each_call_names_its_own_capability() {
        let cap = |call: &str| Error::syscall(call, "x", Errno::EPERM).to_string();
        assert!(cap("setresuid(1000)").contains("needs CAP_SETUID"));
        assert!(cap("setgroups([])").contains("needs CAP_SETGID"));
        assert!(cap("mknod(\"/dev/x\", 1:3)").contains("needs CAP_MKNOD"));
        assert!(cap("write(\"/proc/42/uid_map\")").contains("newuidmap"));
        assert!(cap("mount(proc)").contains("CAP_SYS_ADMIN"));
        // A call with no privilege to name keeps its errno.
        assert!(cap("read(config.json)").contains("EPERM"));
    }

    #[test]
    fn other_errnos_keep_their_cause() {
        let err = Error::syscall(
            "sethostname(\"web\")",
            "naming the container",
            Errno::EINVAL,
        );
        insta::assert_snapshot!(err.to_string(), @r#"sethostname("web") failed: naming the container: EINVAL: Invalid argument"#);
    }
}
