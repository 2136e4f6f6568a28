//! Fuzzing what comes from outside: references, digests, manifests,
//! configs, tar archives, and the unpacker.
//!
//! Property tests (proptest) rather than a coverage-guided fuzzer, because
//! they run on the stable toolchain, in `cargo test`, in CI. Each property
//! runs 256 cases by default (a few seconds); a longer run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release -p stage07-image --test fuzz
//! ```
//!
//! The properties: no input makes a parser panic; what a parser accepts
//! is what its grammar says (a digest is `algorithm:hex` of the exact
//! length, whatever the bytes); and no archive, however it is built, makes
//! the unpacker write, change or remove anything outside its directory.

use std::io::Read;
use std::path::Path;

use proptest::prelude::*;
use stage07_image::archive::Archive;
use stage07_image::config::ImageConfig;
use stage07_image::digest::Digest;
use stage07_image::manifest;
use stage07_image::reference;
use stage07_image::unpack::{Bounds, unpack};

proptest! {
    #[test]
    fn references_never_panic_and_round_trip(text in "\\PC{0,80}") {
        if let Ok(r) = reference::parse(&text) {
            let again = reference::parse(&reference::short(&r)).expect("a short name parses");
            prop_assert_eq!(again.repository(), r.repository());
            prop_assert_eq!(again.digest(), r.digest());
        }
    }

    #[test]
    fn reference_like_text_never_panics(text in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,60}") {
        let _ = reference::parse(&text);
    }

    #[test]
    fn a_digest_is_exactly_its_grammar(text in "(sha256|sha512|md5|SHA256)?:?[0-9a-fA-F./]{0,130}") {
        if let Ok(d) = text.parse::<Digest>() {
            let hex = d.hex();
            prop_assert!(hex.len() == 64 || hex.len() == 96 || hex.len() == 128);
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn manifests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = manifest::parse(&bytes, None);
        let _ = manifest::parse(&bytes, Some(manifest::OCI_INDEX));
        let _ = ImageConfig::parse(&bytes);
    }

    #[test]
    fn mutated_manifests_never_panic(flips in proptest::collection::vec((0usize..600, any::<u8>()), 1..8)) {
        let mut bytes = GOOD_MANIFEST.as_bytes().to_vec();
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let _ = manifest::parse(&bytes, None);
    }

    #[test]
    fn archives_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_all(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic(flips in proptest::collection::vec((0usize..3072, any::<u8>()), 1..16)) {
        let mut bytes = archive(&[
            Entry::Dir("etc"),
            Entry::File("etc/passwd", 40),
            Entry::Link("lib", "/usr/lib"),
        ]);
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        read_all(&bytes);
    }

    /// The property that matters most: whatever entries a layer holds, in
    /// whatever order, the unpacker writes nothing outside its directory,
    /// and changes and removes nothing there.
    #[test]
    fn nothing_outside_the_layer_is_ever_touched(entries in proptest::collection::vec(entries(), 1..8)) {
        let entries: Vec<Fuzzed> = entries.into_iter().flatten().collect();
        let top = tempfile::tempdir().unwrap();
        let layer = top.path().join("layer");
        let outside = top.path().join("outside");
        std::fs::create_dir(&layer).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("file"), "host").unwrap();
        let before = tree(top.path(), &layer);
        let blob = top.path().join("blob.tar");
        let entries: Vec<Entry> = entries.iter().map(|e| e.as_entry(&outside)).collect();
        std::fs::write(&blob, archive(&entries)).unwrap();
        let _ = unpack(&blob, &layer, &Bounds::new(1 << 20, top.path()));
        prop_assert_eq!(tree(top.path(), &layer), before);
    }
}

const GOOD_MANIFEST: &str = r#"{"schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "size": 10},
  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
    "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "size": 20}]}"#;

fn read_all(bytes: &[u8]) {
    let mut archive = Archive::new(bytes);
    let mut data = Vec::new();
    while let Ok(Some(_)) = archive.next_entry() {
        data.clear();
        let _ = archive.data().take(1 << 20).read_to_end(&mut data);
    }
}

/// An entry as the fuzzer builds it: names from a small alphabet that
/// includes every trick (`..`, absolute paths, links out, whiteouts).
#[derive(Debug, Clone)]
enum Fuzzed {
    File(String),
    Dir(String),
    Symlink(String, Target),
    Hardlink(String, String),
}

#[derive(Debug, Clone)]
enum Target {
    /// The test's "host" directory, absolute.
    Outside,
    Climbing,
    Inside(String),
}

#[derive(Debug, Clone)]
enum Entry {
    Dir(&'static str),
    File(&'static str, usize),
    Link(&'static str, &'static str),
    Owned(Kind, String, String),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
}

impl Fuzzed {
    fn as_entry(&self, outside: &Path) -> Entry {
        match self {
            Fuzzed::File(name) => Entry::Owned(Kind::File, name.clone(), String::new()),
            Fuzzed::Dir(name) => Entry::Owned(Kind::Dir, name.clone(), String::new()),
            Fuzzed::Symlink(name, target) => {
                let target = match target {
                    Target::Outside => outside.display().to_string(),
                    Target::Climbing => "../../../..".into(),
                    Target::Inside(t) => t.clone(),
                };
                Entry::Owned(Kind::Symlink, name.clone(), target)
            }
            Fuzzed::Hardlink(name, target) => {
                Entry::Owned(Kind::Hardlink, name.clone(), target.clone())
            }
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "a",
        "b",
        "..",
        ".",
        ".wh.a",
        ".wh..wh..opq",
        ".wh...",
        "/",
        "file"
    ];
    proptest::collection::vec(part, 1..4).prop_map(|parts| parts.join("/"))
}

/// One entry, or a symlink and then an entry at it or through it: the
/// shapes of the attacks (metadata through a link, a file through a link).
fn entries() -> impl Strategy<Value = Vec<Fuzzed>> {
    let target = prop_oneof![
        3 => Just(Target::Outside),
        1 => Just(Target::Climbing),
        1 => name().prop_map(Target::Inside),
    ];
    prop_oneof![
        entry().prop_map(|e| vec![e]),
        (name(), target, 0..5usize).prop_map(|(n, t, then)| {
            let follow = match then {
                0 => Fuzzed::Dir(n.clone()),
                1 => Fuzzed::File(n.clone()),
                2 => Fuzzed::File(format!("{n}/file")),
                3 => Fuzzed::Dir(format!("{n}/a")),
                _ => Fuzzed::Hardlink(format!("{n}/file"), "a".into()),
            };
            vec![Fuzzed::Symlink(n, t), follow]
        }),
    ]
}

fn entry() -> impl Strategy<Value = Fuzzed> {
    let target = prop_oneof![
        Just(Target::Outside),
        Just(Target::Climbing),
        name().prop_map(Target::Inside),
    ];
    prop_oneof![
        name().prop_map(Fuzzed::File),
        name().prop_map(Fuzzed::Dir),
        (name(), target).prop_map(|(n, t)| Fuzzed::Symlink(n, t)),
        (name(), name()).prop_map(|(n, t)| Fuzzed::Hardlink(n, t)),
    ]
}

/// A tar archive of `entries`, written header by header (names as given:
/// the `tar` crate's builder refuses the hostile ones).
fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut add = |name: &str, kind: tar::EntryType, link: &str, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        let raw = header.as_old_mut();
        let n = name.len().min(99);
        raw.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let l = link.len().min(99);
        raw.linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    };
    for entry in entries {
        match entry {
            Entry::Dir(name) => add(name, tar::EntryType::Directory, "", b"", 0o755),
            Entry::File(name, size) => {
                add(name, tar::EntryType::Regular, "", &vec![b'x'; *size], 0o644)
            }
            Entry::Link(name, to) => add(name, tar::EntryType::Symlink, to, b"", 0o777),
            Entry::Owned(kind, name, link) => match kind {
                Kind::File => add(name, tar::EntryType::Regular, "", b"data", 0o4777),
                Kind::Dir => add(name, tar::EntryType::Directory, "", b"", 0o777),
                Kind::Symlink => add(name, tar::EntryType::Symlink, link, b"", 0o777),
                Kind::Hardlink => add(name, tar::EntryType::Link, link, b"", 0o644),
            },
        }
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Everything under `top` but inside `layer`, with mode and content.
fn tree(top: &Path, layer: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut all = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path == layer || path.extension().is_some_and(|e| e == "tar") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            let content = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            all.push((
                path.display().to_string(),
                format!("{:o} {content:?}", meta.mode()),
            ));
        }
    }
    all.sort();
    all
}
