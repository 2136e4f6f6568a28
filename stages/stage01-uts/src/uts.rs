//! The UTS namespace: the container's own hostname.
//!
//! "UTS" is the `struct utsname` that uname(2) fills in; a UTS namespace gives
//! a process its own copy of the two writable fields, the hostname and the NIS
//! domain name. Cloning with `CLONE_NEWUTS` copies the host's values; the
//! child then calls sethostname(2), which changes only its copy.

use std::fmt;
use std::str::FromStr;

use nix::sched::CloneFlags;

use crate::cli::InvalidValue;
use crate::container::{Context, Phase, Primitive};
use crate::error::Error;
use crate::explain;
use crate::id::ContainerId;

/// The kernel's limit on a hostname (`HOST_NAME_MAX`, not counting the NUL).
// ANCHOR: hostname_rules
pub const HOST_NAME_MAX: usize = 64;

/// A hostname the kernel will take and resolvers will not choke on: labels of
/// letters, digits and `-` (RFC 1123), separated by dots.
///
/// Checked when the command line is parsed, so a bad name is refused before
/// anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    /// The default hostname: the container's short id, as docker does.
    pub fn from_id(id: &ContainerId) -> Self {
        Hostname(id.short().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = InvalidValue;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("hostname", name, reason);
        if name.is_empty() {
            return refuse("it is empty; give a name like web-1");
        }
        if name.len() > HOST_NAME_MAX {
            return refuse("it is longer than 64 characters, the kernel's limit");
        }
        for label in name.split('.') {
            if label.is_empty() {
                return refuse("it has an empty label (two dots in a row, or a dot at an end)");
            }
            if label.len() > 63 {
                return refuse("a dot-separated label is longer than 63 characters");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return refuse("use only letters, digits, '-' and '.'");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return refuse("a label may not start or end with '-'");
            }
        }
        Ok(Hostname(name.to_owned()))
    }
}
// ANCHOR_END: hostname_rules

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stage 01 primitive: a new UTS namespace and the hostname set in it.
// ANCHOR: uts
pub struct Uts {
    hostname: Hostname,
}

impl Uts {
    pub fn new(hostname: Hostname) -> Self {
        Uts { hostname }
    }
}

impl Primitive for Uts {
    fn name(&self) -> &'static str {
        "uts"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUTS
    }

    /// In the child, inside the new UTS namespace: only its copy changes.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        let name = self.hostname.as_str();
        ctx.sys.sethostname(name).map_err(|errno| {
            Error::syscall(
                format!("sethostname({name:?})"),
                "naming the container",
                errno,
            )
        })?;
        explain!(
            "sethostname({name:?})" => "ok",
            "the name changes in the container's UTS namespace only; the host keeps its own"
        );
        Ok(())
    }
}
// ANCHOR_END: uts

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("web")]
    #[case("web-1")]
    #[case("a")]
    #[case("db.internal.example")]
    #[case("0123456789ab")]
    #[case(&"a".repeat(63))]
    fn accepts_rfc1123_names(#[case] name: &str) {
        assert_eq!(name.parse::<Hostname>().unwrap().as_str(), name);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("foo_bar", "letters, digits")]
    #[case("-web", "start or end")]
    #[case("web-", "start or end")]
    #[case("a..b", "empty label")]
    #[case(".a", "empty label")]
    #[case("web 1", "letters, digits")]
    #[case("wéb", "letters, digits")]
    #[case(&"a".repeat(64 + 1), "longer than 64")]
    #[case(&format!("{}.b", "a".repeat(64)), "longer than 64")]
    #[case(&format!("{}.b", "a".repeat(62 + 2)), "longer than 64")]
    fn refuses_what_the_kernel_or_resolvers_would_not_take(
        #[case] name: &str,
        #[case] reason: &str,
    ) {
        let err = name.parse::<Hostname>().unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }

    #[test]
    fn a_label_over_63_characters_is_refused() {
        let name = format!("{}.b", "a".repeat(60 + 4)); // 64 + 2 > 64 total
        assert!(name.parse::<Hostname>().is_err());
        let label = "a".repeat(64);
        assert_eq!(label.len(), HOST_NAME_MAX);
        let err = label.parse::<Hostname>().unwrap_err();
        assert!(err.reason.contains("63"), "{err}");
    }

    #[test]
    fn refusal_reads_as_one_line() {
        let err = "foo_bar".parse::<Hostname>().unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"invalid hostname "foo_bar": use only letters, digits, '-' and '.'"#);
    }

    #[test]
    fn default_is_the_short_id() {
        let id = ContainerId::generate();
        assert_eq!(Hostname::from_id(&id).as_str(), id.short());
        assert!(Hostname::from_id(&id).as_str().parse::<Hostname>().is_ok());
    }
}
