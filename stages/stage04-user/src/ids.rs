//! Id maps (`/proc/PID/uid_map` lines) and subordinate ids (`/etc/subuid`).

use std::fmt;
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;

/// One line of a uid or gid map: `size` ids from `container` inside are
/// `host` ... on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl FromStr for IdMap {
    type Err = InvalidValue;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("id map", spec, reason);
        let parts: Vec<&str> = spec.split(':').collect();
        let [container, host, size] = parts.as_slice() else {
            return refuse("write it as CONTAINER:HOST:SIZE, e.g. 0:100000:65536");
        };
        let (Ok(container), Ok(host), Ok(size)) =
            (container.parse(), host.parse(), size.parse::<u32>())
        else {
            return refuse("the three fields must be numbers");
        };
        if size == 0 {
            return refuse("the size must be at least 1");
        }
        if u32::MAX - size < container || u32::MAX - size < host {
            return refuse("the range runs past the largest id");
        }
        Ok(IdMap {
            container,
            host,
            size,
        })
    }
}

impl fmt::Display for IdMap {
    /// As the kernel reads it in uid_map: `container host size`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.container, self.host, self.size)
    }
}

impl IdMap {
    /// The host id that container id `id` maps to, if it is mapped.
    pub fn host_of(maps: &[IdMap], id: u32) -> Option<u32> {
        maps.iter()
            .find(|m| id >= m.container && id - m.container < m.size)
            .map(|m| m.host + (id - m.container))
    }

    /// Whether the host ids of this map lie inside `ranges` (as subordinate
    /// id ranges: start, count).
    pub fn host_within(&self, ranges: &[(u32, u32)]) -> bool {
        ranges
            .iter()
            .any(|&(start, count)| self.host >= start && self.host - start + self.size <= count)
    }
}

/// The ranges `/etc/subuid` or `/etc/subgid` (their text: `text`) grant to
/// the user `name` (or numeric `id`): (start, count) pairs, in file order.
pub fn subordinate_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            (owner == name || owner == id).then_some((start, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn maps_parse_and_print_as_the_kernel_reads_them() {
        let m: IdMap = "0:100000:65536".parse().unwrap();
        assert_eq!(m.to_string(), "0 100000 65536");
        assert_eq!(IdMap::host_of(&[m], 0), Some(100000));
        assert_eq!(IdMap::host_of(&[m], 65535), Some(165535));
        assert_eq!(IdMap::host_of(&[m], 65536), None);
    }

    #[rstest]
    #[case("0:100000", "CONTAINER:HOST:SIZE")]
    #[case("a:b:c", "numbers")]
    #[case("0:1:0", "at least 1")]
    #[case("4294967295:0:2", "past the largest")]
    fn bad_maps_say_why(#[case] spec: &str, #[case] reason: &str) {
        let err = spec.parse::<IdMap>().unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\nbob:165536:65536\n1001:231072:1000\nalice:300000:10\n";
        assert_eq!(
            subordinate_ranges(text, "alice", 1000),
            [(100000, 65536), (300000, 10)]
        );
        assert_eq!(subordinate_ranges(text, "carol", 1001), [(231072, 1000)]);
        assert!(subordinate_ranges(text, "dave", 1002).is_empty());
    }

    #[test]
    fn a_map_must_lie_inside_the_granted_ranges() {
        let granted = [(100000, 65536)];
        assert!(
            "1:100000:65536"
                .parse::<IdMap>()
                .unwrap()
                .host_within(&granted)
        );
        assert!(
            !"1:100000:65537"
                .parse::<IdMap>()
                .unwrap()
                .host_within(&granted)
        );
        assert!(!"0:0:1".parse::<IdMap>().unwrap().host_within(&granted));
    }
}
