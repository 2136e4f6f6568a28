//! Container identity: a random 256-bit id, written as 64 hex digits, of which
//! the first 12 name the container where a short name is needed (its default
//! hostname), as docker does.

use std::fmt;

/// A container's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// A fresh random id from the kernel's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        ContainerId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// All 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::str::FromStr for ContainerId {
    type Err = crate::cli::InvalidValue;

    /// A stored id (a directory's name, a state file's field): exactly 64
    /// lower-case hex digits, so that it is safe as a path component.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
        if s.len() != 64 || !s.bytes().all(hex) {
            return crate::cli::InvalidValue::refuse(
                "container id",
                s,
                "an id is 64 lower-case hex digits",
            );
        }
        Ok(ContainerId(s.to_owned()))
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a valid writable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            // getrandom(2) cannot fail for short reads from the urandom pool
            // once the kernel is up; fall back to something unique anyway.
            let fallback = format!("{}{:?}", std::process::id(), std::time::SystemTime::now());
            for (b, f) in rest.iter_mut().zip(fallback.bytes().cycle()) {
                *b ^= f;
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lower_hex_digits_and_differ() {
        let a = ContainerId::generate();
        let b = ContainerId::generate();
        assert_eq!(a.as_str().len(), 64);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }

    #[test]
    fn only_full_lower_case_ids_parse() {
        let id = ContainerId::generate();
        assert_eq!(id.as_str().parse::<ContainerId>().unwrap(), id);
        for bad in [
            "",
            "abc",
            "../etc",
            &id.as_str().to_uppercase(),
            &format!("{id}0"),
        ] {
            assert!(bad.parse::<ContainerId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn short_form_is_the_first_twelve_digits() {
        let id = ContainerId::from_bytes(&[0xab; 32]);
        assert_eq!(id.short(), "abababababab");
    }
}
