//! A spec's mount options, as the kernel takes them.
//!
//! A mount in `config.json` is a destination, a type, a source and a list of
//! options: `["nosuid", "noexec", "nodev"]`, `["rbind", "ro"]`,
//! `["nosuid", "strictatime", "mode=755", "size=65536k"]`. Some of them are
//! flags of mount(2) (`MS_NOSUID`); `bind` and `rbind` ask for a bind mount
//! (recursive or not); the propagation words are a second mount(2) call;
//! everything else is the filesystem's own data (`mode=755`), passed on as
//! it is.

use nix::mount::MsFlags;

/// One mount's options, sorted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// What the filesystem reads: `mode=755,size=65536k`.
    pub data: Vec<String>,
    /// `bind` or `rbind`: a bind mount (`recursive` for rbind).
    pub bind: Option<Recursive>,
    /// Read-only (`ro`): for a bind mount, applied to it and every mount
    /// below it after the bind (a bind ignores `MS_RDONLY`).
    pub read_only: bool,
    /// A propagation change (`rprivate`, `shared`, ...), made after the
    /// mount.
    pub propagation: Option<MsFlags>,
}

/// Whether a bind mount takes the mounts below its source along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recursive {
    Yes,
    No,
}

/// Sort `options` out.
// ANCHOR: parse
pub fn parse(options: &[String]) -> Options {
    let mut parsed = Options::default();
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => {
                parsed.read_only = true;
                (MsFlags::MS_RDONLY, MsFlags::empty())
            }
            "rw" => {
                parsed.read_only = false;
                (MsFlags::empty(), MsFlags::MS_RDONLY)
            }
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                parsed.bind = Some(Recursive::No);
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                parsed.bind = Some(Recursive::Yes);
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" => propagation(&mut parsed, MsFlags::MS_PRIVATE),
            "rprivate" => propagation(&mut parsed, MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => propagation(&mut parsed, MsFlags::MS_SHARED),
            "rshared" => propagation(&mut parsed, MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => propagation(&mut parsed, MsFlags::MS_SLAVE),
            "rslave" => propagation(&mut parsed, MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => propagation(&mut parsed, MsFlags::MS_UNBINDABLE),
            "runbindable" => propagation(&mut parsed, MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            other => {
                parsed.data.push(other.to_owned());
                (MsFlags::empty(), MsFlags::empty())
            }
        };
        parsed.flags = (parsed.flags | set) & !clear;
    }
    parsed
}
// ANCHOR_END: parse

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            data: Vec::new(),
            bind: None,
            read_only: false,
            propagation: None,
        }
    }
}

fn propagation(parsed: &mut Options, flags: MsFlags) -> (MsFlags, MsFlags) {
    parsed.propagation = Some(flags);
    (MsFlags::empty(), MsFlags::empty())
}

impl Options {
    /// The data string mount(2) takes, if any.
    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn flags_data_bind_and_propagation() {
        let o = parse(&words(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
        ]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        let o = parse(&words(&["rbind", "ro", "rprivate"]));
        assert_eq!(o.bind, Some(Recursive::Yes));
        assert!(o.read_only);
        assert_eq!(o.propagation, Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC));
        assert!(o.data().is_none());
    }

    #[test]
    fn a_later_word_undoes_an_earlier_one() {
        let o = parse(&words(&["ro", "rw", "noexec", "exec"]));
        assert!(!o.read_only);
        assert_eq!(o.flags, MsFlags::empty());
    }
}
