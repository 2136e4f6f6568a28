//! `pull`: index → manifest → config + layers, into the store.
//!
//! ```text
//!   alpine:3.20 ──► index (a manifest per platform) ──► manifest (linux/amd64)
//!                                                        ├─► config   (Entrypoint, Cmd, Env, ...)
//!                                                        └─► layers   sha256:… sha256:… (lowest first)
//! ```
//!
//! Everything the registry sends is checked before it is used: documents
//! bounded and parsed strictly ([`crate::manifest`]), every digest parsed
//! and verified (sha256, sha384 and sha512 alike; none is taken on the
//! registry's word), every blob held to the size its descriptor gives, every
//! layer unpacked within bounds ([`crate::unpack`]).
//!
//! The registry client runs on a tokio runtime made here, in the `pull`
//! process only: `run` pulls a missing image through a child process
//! (`pull`), so the process that clones never has a thread.

use std::io::IsTerminal;
use std::path::Path;

use stage01_uts::cli::count;

use crate::auth;
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Document, ImageManifest, ManifestError};
use crate::progress::Progress;
use crate::reference::{Reference, plain_http, repository, short};
use crate::registry::{Registry, RegistryError, header_digest};
use crate::store::{ImageRecord, Store, StoreError};
use crate::unpack::{Bounds, UnpackError, unpack};

/// The platform to pull from an index: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This host's: linux and the architecture the runtime was built for.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = stage01_uts::cli::InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => stage01_uts::cli::InvalidValue::refuse(
                "platform",
                s,
                "write it as OS/ARCH[/VARIANT], e.g. linux/arm64",
            ),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What can go wrong in a pull, each in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("image not found: {0}; check the name and tag (the registry has no such manifest)")]
    NotFound(String),
    #[error("cannot reach the registry {registry}: {why}; is it up, and is the address right?")]
    Unreachable { registry: String, why: String },
    #[error("the registry {registry} refused the credentials for {image}; check them in {config}")]
    Unauthorized {
        registry: String,
        image: String,
        config: String,
    },
    #[error("the registry {registry} refused to serve {image}: {why}")]
    Refused {
        registry: String,
        image: String,
        why: String,
    },
    #[error(
        "{what} of {image} does not match its digest {digest}: the registry sent corrupt data; nothing was stored"
    )]
    DigestMismatch {
        image: String,
        what: String,
        digest: String,
    },
    #[error(
        "the registry {registry} sent {what} for {image} that is not what it should be: {why}; nothing was stored"
    )]
    Lied {
        registry: String,
        image: String,
        what: String,
        why: String,
    },
    #[error("the manifest of {image} cannot be used: {why}")]
    Malformed { image: String, why: String },
    #[error(
        "{image} has no manifest for {platform} (it has: {available}); choose one with --platform"
    )]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error("layer {digest} of {image}: {source}")]
    Layer {
        image: String,
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

/// How to reach registries, and how far a layer may go.
#[derive(Debug, Clone)]
pub struct Options {
    pub platform: Option<Platform>,
    /// `--insecure-registry HOST:PORT`: plain HTTP for these too.
    pub insecure: Vec<String>,
    /// `--max-unpacked-size`: the most a layer may unpack to.
    pub max_unpacked: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: None,
            insecure: Vec::new(),
            max_unpacked: crate::unpack::DEFAULT_MAX_UNPACKED,
        }
    }
}

/// One pull: the image as users read it, and where errors come from.
struct Pull<'a> {
    store: &'a Store,
    image: String,
    registry_name: String,
    options: &'a Options,
}

impl Pull<'_> {
    /// A registry's failure, in the words of [`PullError`].
    fn failed(&self, e: RegistryError, what: &str) -> PullError {
        let registry = self.registry_name.clone();
        let image = self.image.clone();
        match e {
            RegistryError::Unreachable(why) => PullError::Unreachable { registry, why },
            RegistryError::NotFound => PullError::NotFound(image),
            RegistryError::Unauthorized => PullError::Unauthorized {
                registry,
                image,
                config: auth::config_path().display().to_string(),
            },
            RegistryError::Refused(why) => PullError::Refused {
                registry,
                image,
                why,
            },
            RegistryError::Mismatch(digest) => PullError::DigestMismatch {
                image,
                what: what.to_owned(),
                digest,
            },
            RegistryError::Write(io) if io.raw_os_error() == Some(libc::ENOSPC) => self.no_space(),
            RegistryError::Write(source) => PullError::Store(StoreError::Io {
                what: "writing",
                path: self.store.root().join("tmp").display().to_string(),
                source,
            }),
            lie @ (RegistryError::TooLarge { .. }
            | RegistryError::Overlong { .. }
            | RegistryError::Short { .. }) => PullError::Lied {
                registry,
                image,
                what: what.to_owned(),
                why: lie.to_string(),
            },
        }
    }

    /// The store's disk is full: said once, whichever write found it.
    fn no_space(&self) -> PullError {
        StoreError::NoSpace {
            path: self.store.root().display().to_string(),
        }
        .into()
    }

    fn malformed(&self, why: impl std::fmt::Display) -> PullError {
        PullError::Malformed {
            image: self.image.clone(),
            why: why.to_string(),
        }
    }
}

/// Pull `reference` into `store`; returns what was listed.
// ANCHOR: pull
pub fn pull(
    store: &Store,
    reference: &Reference,
    options: &Options,
) -> Result<ImageRecord, PullError> {
    store.clean_tmp();
    let pulling = store.using()?;
    let result = pull_holding(store, reference, options);
    drop(pulling);
    if result.is_err() {
        // A refused pull leaves the store as it found it: what it verified
        // and stored before it was refused goes, unless another pull or a
        // starting container holds the store (then the next collection
        // takes it).
        if let Some(gc) = store.idle() {
            let _ = store.collect_garbage(&gc);
        }
    }
    result
}
// ANCHOR_END: pull

fn pull_holding(
    store: &Store,
    reference: &Reference,
    options: &Options,
) -> Result<ImageRecord, PullError> {
    let pull = Pull {
        store,
        image: short(reference),
        registry_name: reference.registry().to_owned(),
        options,
    };
    let credentials = auth::credentials(reference.registry())?;
    let insecure = plain_http(reference.registry(), &options.insecure);
    let mut registry = Registry::new(reference, credentials, insecure)
        .map_err(|e| pull.failed(e, "the connection"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Io {
            what: "starting",
            path: "the registry client".into(),
            source: e,
        })?;
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    runtime.block_on(async {
        let (manifest, digest) = image_manifest(&pull, &mut registry, reference, &platform).await?;
        let config = registry
            .small_blob(&manifest.config)
            .await
            .map_err(|e| pull.failed(e, "the config"))?;
        crate::config::ImageConfig::parse(&config).map_err(|e| pull.malformed(e))?;
        store.write_blob(&manifest.config.digest, &config)?;
        let progress = Progress::new(std::io::stderr().is_terminal());
        let mut size = 0;
        for layer in &manifest.layers {
            size += fetch_layer(&pull, &mut registry, layer, &progress).await?;
        }
        let record = ImageRecord {
            repository: repository(reference),
            tag: if reference.digest().is_some() {
                String::new()
            } else {
                reference.tag().unwrap_or("latest").to_owned()
            },
            digest,
            config: manifest.config.digest.clone(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            size,
        };
        store.add(record.clone())?;
        progress.line(format_args!(
            "pulled {} ({}, {})",
            pull.image,
            record.id(),
            count(record.layers.len(), "layer")
        ));
        Ok(record)
    })
}

/// The image manifest for `platform`, following an index if the reference
/// names one; the manifest's own bytes are kept in the store. Its digest is
/// the reference's, else the registry's header, checked against the bytes,
/// else the bytes' own.
// ANCHOR: image_manifest
async fn image_manifest(
    pull: &Pull<'_>,
    registry: &mut Registry,
    reference: &Reference,
    platform: &Platform,
) -> Result<(ImageManifest, Digest), PullError> {
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, tag) => tag.unwrap_or("latest").to_owned(),
    };
    let fetched = registry
        .manifest(&wanted)
        .await
        .map_err(|e| pull.failed(e, "the manifest"))?;
    let digest = match (reference.digest(), &fetched.digest_header) {
        (Some(digest), _) if digest.matches(&fetched.bytes) => digest.clone(),
        (Some(digest), _) => {
            return Err(pull.failed(RegistryError::Mismatch(digest.to_string()), "the manifest"));
        }
        (None, Some(header)) => {
            header_digest(header, &fetched.bytes).map_err(|e| pull.failed(e, "the manifest"))?
        }
        (None, None) => Digest::sha256_of(&fetched.bytes),
    };
    let document = manifest::parse(&fetched.bytes, fetched.content_type.as_deref())
        .map_err(|e| pull.malformed(e))?;
    let index = match document {
        Document::Image(manifest) => {
            pull.store.write_blob(&digest, &fetched.bytes)?;
            return Ok((manifest, digest));
        }
        Document::Index(index) => index,
    };
    let chosen = index.manifests.iter().find(|m| {
        m.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.arch
                && (platform.variant.is_none() || p.variant == platform.variant)
        })
    });
    let Some(entry) = chosen else {
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
            .collect();
        return Err(PullError::NoPlatform {
            image: pull.image.clone(),
            platform: platform.to_string(),
            available: available.join(", "),
        });
    };
    if !matches!(
        entry.media_type.as_str(),
        manifest::OCI_MANIFEST | manifest::DOCKER_MANIFEST
    ) {
        return Err(pull.malformed(format!(
            "its index points to {:?}, not an image manifest",
            entry.media_type
        )));
    }
    let fetched = registry
        .manifest(&entry.digest.to_string())
        .await
        .map_err(|e| pull.failed(e, "the platform's manifest"))?;
    if !entry.digest.matches(&fetched.bytes) {
        let mismatch = RegistryError::Mismatch(entry.digest.to_string());
        return Err(pull.failed(mismatch, "the platform's manifest"));
    }
    match manifest::parse(&fetched.bytes, fetched.content_type.as_deref()) {
        Ok(Document::Image(manifest)) => {
            pull.store.write_blob(&entry.digest, &fetched.bytes)?;
            Ok((manifest, entry.digest.clone()))
        }
        Ok(Document::Index(_)) => Err(pull.malformed(ManifestError::Contradicts {
            said: entry.media_type.clone(),
            is: "an index",
        })),
        Err(e) => Err(pull.malformed(e)),
    }
}
// ANCHOR_END: image_manifest

/// Download a layer to tmp/ (streamed, held to its size, its digest checked
/// as the bytes go by, so memory stays flat however large the layer is),
/// store it, unpack it under tmp/ within bounds and move it into place.
/// Returns its unpacked size.
// ANCHOR: fetch_layer
async fn fetch_layer(
    pull: &Pull<'_>,
    registry: &mut Registry,
    layer: &Descriptor,
    progress: &Progress,
) -> Result<u64, PullError> {
    let (store, digest) = (pull.store, &layer.digest);
    if store.has_layer(digest) {
        progress.line(format_args!("{}: already here", digest.short()));
        return Ok(layer_size(&store.layer_path(digest)));
    }
    if !store.has_blob(digest) {
        store.check_space(layer.size)?;
        let tmp = store.tmp_path();
        let mut file = std::fs::File::create(&tmp).map_err(|e| StoreError::Io {
            what: "writing",
            path: tmp.display().to_string(),
            source: e,
        })?;
        let bar = progress.bar(digest.short(), layer.size);
        let result = registry.blob(layer, &mut file, |n| bar.advance(n)).await;
        if let Err(e) = result {
            bar.abandon();
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(pull.failed(e, "a layer"));
        }
        bar.finish();
        store.commit_blob(&tmp, digest)?;
    }
    let tmp = store.tmp_path();
    // The layer's root: 0755 unless its `./` entry says otherwise (the
    // container's users must pass through it; the store above keeps
    // everyone else out).
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
        .create(&tmp)
        .map_err(|e| StoreError::Io {
            what: "making",
            path: tmp.display().to_string(),
            source: e,
        })?;
    let bounds = Bounds::new(pull.options.max_unpacked, store.root());
    match unpack(&store.blob_path(digest), &tmp, &bounds) {
        Ok(done) => {
            store.commit_layer(&tmp, digest)?;
            progress.line(format_args!(
                "{}: unpacked, {}, {}",
                digest.short(),
                count(done.entries as usize, "entry"),
                count(done.whiteouts as usize, "whiteout")
            ));
            Ok(done.bytes)
        }
        Err(source) => {
            let _ = std::fs::remove_dir_all(&tmp);
            let full = matches!(&source, UnpackError::NoSpace)
                || matches!(&source, UnpackError::Io { source: io, .. } if io.raw_os_error() == Some(libc::ENOSPC));
            if full {
                return Err(pull.no_space());
            }
            Err(PullError::Layer {
                image: pull.image.clone(),
                digest: digest.to_string(),
                source,
            })
        }
    }
}
// ANCHOR_END: fetch_layer

fn layer_size(dir: &Path) -> u64 {
    let mut size = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => size += m.len(),
                _ => {}
            }
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_print() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
