//! Users and groups, from the container's /etc/passwd and /etc/group.

use std::fmt;
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;

/// `--user USER[:GROUP]`: names or numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

impl FromStr for UserSpec {
    type Err = InvalidValue;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let bad = |s: &str| s.is_empty() || s.contains([':', '\n', '\0']);
        if bad(user) || group.is_some_and(bad) {
            return InvalidValue::refuse(
                "user",
                spec,
                "write it as USER or USER:GROUP (names or numbers)",
            );
        }
        let numeric = |s: &str| {
            s.strip_prefix('-')
                .unwrap_or(s)
                .bytes()
                .all(|b| b.is_ascii_digit())
        };
        let in_range = |s: &str| s.parse::<u32>().is_ok_and(|id| id <= MAX_ID);
        if [Some(user), group]
            .into_iter()
            .flatten()
            .any(|s| numeric(s) && !in_range(s))
        {
            return InvalidValue::refuse("user", spec, ID_RANGE);
        }
        Ok(UserSpec {
            user: user.to_owned(),
            group: group.map(str::to_owned),
        })
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)?;
        if let Some(g) = &self.group {
            write!(f, ":{g}")?;
        }
        Ok(())
    }
}

/// The largest uid or gid a container may ask for, as docker allows. The
/// kernel's ids are 32 bits, but `(uid_t)-1` (4294967295) means "leave
/// unchanged" to setresuid(2): asked for as a user, it would keep COMMAND
/// root. Ids above 2^31-1 are refused wherever they come from: the command
/// line, an image's User, the container's /etc/passwd and /etc/group.
// ANCHOR: max_id
pub const MAX_ID: u32 = i32::MAX as u32;
// ANCHOR_END: max_id

const ID_RANGE: &str = "uids and gids must be in the range 0-2147483647";

/// Who COMMAND runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary one and every group of
    /// /etc/group that lists the user, as initgroups(3) makes them.
    pub groups: Vec<u32>,
    /// The home directory from /etc/passwd, if the user has an entry.
    pub home: Option<String>,
}

/// Why a `--user` cannot be resolved in this rootfs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownUser {
    #[error("user {0:?} is not in the container's /etc/passwd; give a name it lists, or a uid")]
    User(String),
    #[error("group {0:?} is not in the container's /etc/group; give a name it lists, or a gid")]
    Group(String),
    #[error(
        "the container's /etc/{file} gives {name:?} the id {id}: uids and gids must be in the range 0-2147483647"
    )]
    OutOfRange {
        file: &'static str,
        name: String,
        id: u32,
    },
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

/// (name, gid, members) of each /etc/group line.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

/// Resolve `spec` against the text of /etc/passwd and /etc/group (either
/// may be empty: numbers need no entry, as with docker).
// ANCHOR: resolve
pub fn resolve(spec: &UserSpec, passwd: &str, group: &str) -> Result<Identity, UnknownUser> {
    let entry = match spec.user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == spec.user)
                .ok_or_else(|| UnknownUser::User(spec.user.clone()))?,
        ),
    };
    let uid = match &entry {
        Some(e) => e.uid,
        None => spec.user.parse().expect("numeric when there is no entry"),
    };
    let gid = match &spec.group {
        None => entry.as_ref().map_or(0, |e| e.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|(name, _, _)| name == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| UnknownUser::Group(g.clone()))?,
        },
    };
    let out_of_range = |file, name: &str, id| UnknownUser::OutOfRange {
        file,
        name: name.to_owned(),
        id,
    };
    if let Some(e) = &entry {
        if e.uid > MAX_ID || e.gid > MAX_ID {
            return Err(out_of_range("passwd", e.name, e.uid.max(e.gid)));
        }
    }
    if gid > MAX_ID {
        return Err(out_of_range(
            "group",
            spec.group.as_deref().unwrap_or(""),
            gid,
        ));
    }
    let mut groups = vec![gid];
    if let Some(e) = &entry {
        for (name, g, members) in group_entries(group) {
            if members.contains(&e.name) && !groups.contains(&g) {
                if g > MAX_ID {
                    return Err(out_of_range("group", name, g));
                }
                groups.push(g);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home: entry.map(|e| e.home.to_owned()).filter(|h| !h.is_empty()),
    })
}
// ANCHOR_END: resolve

/// The name of host uid `uid` in the host's /etc/passwd text, if it has one.
pub fn name_of(passwd: &str, uid: u32) -> Option<String> {
    passwd_entries(passwd)
        .find(|e| e.uid == uid)
        .map(|e| e.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1234:1234:App:/home/app:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app,bob\napp:x:1234:\naudio:x:29:app\n";

    fn spec(s: &str) -> UserSpec {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_gets_its_ids_home_and_groups() {
        let id = resolve(&spec("app"), PASSWD, GROUP).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 1234,
                gid: 1234,
                groups: vec![1234, 50, 29],
                home: Some("/home/app".into())
            }
        );
    }

    #[test]
    fn numbers_need_no_entry() {
        let id = resolve(&spec("1000:1000"), PASSWD, GROUP).unwrap();
        assert_eq!(
            (id.uid, id.gid, id.groups, id.home),
            (1000, 1000, vec![1000], None)
        );
        assert_eq!(
            resolve(&spec("1000"), "", "").unwrap().gid,
            0,
            "no entry: group 0, as docker"
        );
        assert_eq!(
            resolve(&spec("65534"), PASSWD, GROUP)
                .unwrap()
                .home
                .as_deref(),
            Some("/nonexistent")
        );
    }

    #[test]
    fn a_group_by_name() {
        assert_eq!(resolve(&spec("app:staff"), PASSWD, GROUP).unwrap().gid, 50);
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = resolve(&spec("nosuch"), PASSWD, GROUP).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"user "nosuch" is not in the container's /etc/passwd; give a name it lists, or a uid"#);
        assert!(matches!(
            resolve(&spec("app:nogroup"), PASSWD, GROUP),
            Err(UnknownUser::Group(_))
        ));
    }

    #[test]
    fn ids_that_setresuid_would_not_switch_to_are_refused() {
        for spec in [
            "4294967295",
            "-1",
            "0:4294967295",
            "2147483648",
            "99999999999",
        ] {
            let err = spec.parse::<UserSpec>().unwrap_err();
            assert!(err.to_string().contains("0-2147483647"), "{spec}: {err}");
        }
        assert!("2147483647:0".parse::<UserSpec>().is_ok());
        assert!(
            "nobody:-5".parse::<UserSpec>().is_err(),
            "a negative group too"
        );
    }

    #[test]
    fn an_image_cannot_smuggle_them_in_through_its_files() {
        let passwd =
            "evil:x:4294967295:0::/:/bin/sh\nok:x:5:4294967295::/:/bin/sh\nfine:x:6:6::/:/bin/sh\n";
        let group = "wheel:x:4294967295:fine\n";
        for user in ["evil", "ok", "fine"] {
            let err = resolve(&spec(user), passwd, group).unwrap_err();
            assert!(
                matches!(err, UnknownUser::OutOfRange { .. }),
                "{user}: {err}"
            );
        }
        insta::assert_snapshot!(resolve(&spec("evil"), passwd, "").unwrap_err().to_string(), @r#"the container's /etc/passwd gives "evil" the id 4294967295: uids and gids must be in the range 0-2147483647"#);
    }

    #[test]
    fn specs_parse() {
        assert_eq!(spec("1000:50").group.as_deref(), Some("50"));
        assert!("".parse::<UserSpec>().is_err());
        assert!("a:".parse::<UserSpec>().is_err());
        assert!("a:b:c".parse::<UserSpec>().is_err());
    }
}
