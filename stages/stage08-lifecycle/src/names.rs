//! Container names: unique in a data directory, chosen or made up.

use crate::state::LifecycleError;

const ADJECTIVES: [&str; 40] = [
    "agile", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "fancy",
    "gentle", "glad", "grand", "happy", "jolly", "keen", "kind", "lively", "lucid", "merry",
    "mighty", "nimble", "noble", "patient", "polite", "proud", "quick", "quiet", "rapid", "serene",
    "sharp", "shy", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty",
];

const NOUNS: [&str; 40] = [
    "badger", "beaver", "bison", "condor", "crane", "dolphin", "eagle", "falcon", "ferret",
    "finch", "gecko", "heron", "ibis", "jaguar", "koala", "lemur", "lynx", "magpie", "marmot",
    "marten", "mole", "newt", "ocelot", "otter", "owl", "panda", "puffin", "quail", "raven",
    "robin", "salmon", "seal", "shrew", "stork", "swan", "tapir", "toucan", "walrus", "wombat",
    "yak",
];

/// A readable random name, `adjective_animal`, not among `taken`.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    let mut bytes = [0u8; 4];
    for attempt in 0.. {
        // SAFETY: getrandom fills the buffer it is given.
        unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        let a = ADJECTIVES[bytes[0] as usize % ADJECTIVES.len()];
        let n = NOUNS[bytes[1] as usize % NOUNS.len()];
        let name = if attempt < 20 {
            format!("{a}_{n}")
        } else {
            format!("{a}_{n}{}", u16::from_le_bytes([bytes[2], bytes[3]]))
        };
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns")
}

/// A name given with `--name`: docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`,
/// at most 128 characters.
pub fn check(name: &str) -> Result<(), LifecycleError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && (2..=128).contains(&name.len()) {
        Ok(())
    } else {
        Err(LifecycleError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        for good in ["web", "web-1", "a.b_c", "db2"] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "w",
            "-web",
            "we b",
            "web/1",
            "../x",
            "wéb",
            &"x".repeat(129),
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let name = generate(|_| false);
        assert!(check(&name).is_ok(), "{name}");
        let other = generate(|n| n == name || !n.chars().any(|c| c.is_ascii_digit()));
        assert_ne!(other, name);
    }
}
