//! Content digests: `sha256:` and 64 lower-case hex digits.
//!
//! A digest names a blob in a registry and in the store; the store's paths
//! are made from it (`blobs/sha256/<hex>`, `layers/<hex>`). Every digest
//! comes from outside, from a manifest, an index or a registry's header,
//! so one is never used as a string: it is parsed into a [`Digest`] first,
//! against the grammar of the OCI image spec with the exact length of its
//! algorithm, and a store path can only be made from that type. A digest
//! such as `sha256:../../etc` cannot be written down as a `Digest`, so it
//! can never become a path.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// The hash algorithms the store verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Hex digits of a digest of this algorithm.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest.
// ANCHOR: digest
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// Lower-case hex, exactly `algorithm.hex_len()` digits.
    hex: String,
}

/// A string that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown:?} is not a digest: {reason}")]
pub struct BadDigest {
    /// The string, cut short (`{:?}` escapes what a terminal would act on).
    pub shown: String,
    pub reason: &'static str,
}

impl FromStr for Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| BadDigest {
            shown: s.chars().take(80).collect(),
            reason,
        };
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(refuse(
                "write it as ALGORITHM:HEX, e.g. sha256:<64 hex digits>",
            ));
        };
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(refuse("the algorithm must be sha256, sha384 or sha512")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(refuse(
                "the hex part has the wrong length for its algorithm",
            ));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refuse("the hex part must be lower-case hex digits"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}
// ANCHOR_END: digest

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits, safe as a file name (and unique across algorithms:
    /// their lengths differ).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// `sha256:0123456789ab`, for messages.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.name(), &self.hex[..12])
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: format!("{:x}", sha2::Sha256::digest(bytes)),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut verifier = self.verifier();
        verifier.update(bytes);
        verifier.verify()
    }

    /// A hasher that checks bytes against this digest as they stream by.
    pub fn verifier(&self) -> Verifier {
        let hasher = match self.algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        };
        Verifier {
            hasher,
            expected: self.hex.clone(),
        }
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

/// Hashes what goes by; [`Verifier::verify`] says whether it was the
/// content the digest names.
pub struct Verifier {
    hasher: Hasher,
    expected: String,
}

impl Verifier {
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn verify(self) -> bool {
        let actual = match self.hasher {
            Hasher::Sha256(h) => format!("{:x}", h.finalize()),
            Hasher::Sha384(h) => format!("{:x}", h.finalize()),
            Hasher::Sha512(h) => format!("{:x}", h.finalize()),
        };
        actual == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::traversal(format!("sha256:../../../../{}", "a".repeat(50)))]
    #[case::slash(format!("sha256:{}/{}", "a".repeat(31), "a".repeat(32)))]
    #[case::short("sha256:abc".to_owned())]
    #[case::long(format!("sha256:{}", "a".repeat(65)))]
    #[case::upper(format!("sha256:{}", "A".repeat(64)))]
    #[case::sha512_length_of_sha256(format!("sha512:{}", "a".repeat(64)))]
    #[case::unknown_algorithm(format!("md5:{}", "a".repeat(32)))]
    #[case::no_colon("a".repeat(64))]
    #[case::empty(String::new())]
    #[case::nul(format!("sha256:{}\0", "a".repeat(63)))]
    #[case::unicode_digit(format!("sha256:{}٣", "a".repeat(63)))]
    fn what_is_not_a_digest_never_becomes_one(#[case] text: String) {
        assert!(text.parse::<Digest>().is_err(), "{text:?}");
    }

    #[test]
    fn digests_parse_print_and_verify() {
        let d = Digest::sha256_of(b"hello");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.matches(b"hello") && !d.matches(b"hellO"));
        assert_eq!(d.short().len(), "sha256:".len() + 12);
        let long = format!("sha512:{:x}", sha2::Sha512::digest(b"x"));
        let d: Digest = long.parse().unwrap();
        assert!(
            d.matches(b"x") && !d.matches(b"y"),
            "sha512 is verified too"
        );
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>(r#""sha256:../x""#).is_err());
    }

    #[test]
    fn a_refusal_shows_the_string_escaped() {
        let err = format!("sha256:\u{1b}[31m{}", "a".repeat(59))
            .parse::<Digest>()
            .unwrap_err();
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
    }
}
