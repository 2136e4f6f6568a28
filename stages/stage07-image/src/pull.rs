//! `pull`: index → manifest → config + layers, into the store.
//!
//! ```text
//!   alpine:3.20 ──► index (a manifest per platform) ──► manifest (linux/amd64)
//!                                                        ├─► config   (Entrypoint, Cmd, Env, ...)
//!                                                        └─► layers   sha256:… sha256:… (lowest first)
//! ```
//!
//! The registry client (oci-client) runs on a tokio runtime made here, in
//! the `pull` process only: `run` pulls a missing image through a child
//! process (`pull`), so the process that clones never has a thread.

use std::io::IsTerminal;
use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use stage01_uts::cli::count;

use crate::auth;
use crate::progress::Progress;
use crate::reference::{plain_http, repository, short};
use crate::store::{ImageRecord, Store, StoreError};
use crate::unpack::{UnpackError, unpack};

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
    #[error("the manifest of {image} is malformed: {why}")]
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

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub platform: Option<Platform>,
    /// `--insecure-registry HOST:PORT`: plain HTTP for these too.
    pub insecure: Vec<String>,
}

/// Pull `reference` into `store`; returns what was listed.
// ANCHOR: pull
pub fn pull(
    store: &Store,
    reference: &Reference,
    options: &Options,
) -> Result<ImageRecord, PullError> {
    store.clean_tmp();
    let _pulling = store.pulling()?;
    let registry = reference.resolve_registry().to_owned();
    let auth = auth::credentials(reference.registry())?;
    let mut config = ClientConfig::default();
    if plain_http(reference.registry(), &options.insecure) {
        config.protocol =
            ClientProtocol::HttpsExcept(vec![registry.clone(), reference.registry().to_owned()]);
    }
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    let client = Client::new(config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Io {
            what: "starting",
            path: "the registry client".into(),
            source: e,
        })?;
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let image = short(reference);
    runtime.block_on(async {
        let (manifest, digest) =
            manifest(&client, reference, &auth, &platform, store, &image).await?;
        let config =
            blob_to_memory(&client, reference, &manifest.config, &image, "the config").await?;
        store.write_blob(&manifest.config.digest, &config)?;
        let progress = Progress::new(std::io::stderr().is_terminal());
        let mut size = 0;
        for layer in &manifest.layers {
            size += fetch_layer(&client, reference, layer, store, &image, &progress).await?;
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
            "pulled {image} ({}, {})",
            record.id(),
            count(record.layers.len(), "layer")
        ));
        Ok(record)
    })
}
// ANCHOR_END: pull

const MANIFEST_TYPES: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The image manifest for `platform`, following an index if the reference
/// names one; the manifest's own bytes are kept in the store.
async fn manifest(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    platform: &Platform,
    store: &Store,
    image: &str,
) -> Result<(OciImageManifest, String), PullError> {
    let (bytes, digest) = client
        .pull_manifest_raw(reference, auth, &MANIFEST_TYPES)
        .await
        .map_err(|e| explain(e, reference, image))?;
    check_digest(
        &bytes,
        reference.digest().unwrap_or(&digest),
        image,
        "the manifest",
    )?;
    let parsed: OciManifest = serde_json::from_slice(&bytes).map_err(|e| PullError::Malformed {
        image: image.to_owned(),
        why: e.to_string(),
    })?;
    match parsed {
        OciManifest::Image(manifest) => {
            store.write_blob(&digest, &bytes)?;
            Ok((manifest, digest))
        }
        OciManifest::ImageIndex(index) => {
            let wanted = platform.to_string();
            let describe = |p: &oci_client::manifest::Platform| {
                let mut s = format!("{}/{}", p.os, p.architecture);
                if let Some(v) = &p.variant {
                    s.push('/');
                    s.push_str(v);
                }
                s
            };
            let chosen = index.manifests.iter().find(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os.to_string() == platform.os
                        && p.architecture.to_string() == platform.arch
                        && (platform.variant.is_none() || p.variant == platform.variant)
                })
            });
            let Some(entry) = chosen else {
                let available: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(describe))
                    .collect();
                return Err(PullError::NoPlatform {
                    image: image.to_owned(),
                    platform: wanted,
                    available: available.join(", "),
                });
            };
            let by_digest = reference.clone_with_digest(entry.digest.clone());
            let (bytes, _) = client
                .pull_manifest_raw(&by_digest, auth, &MANIFEST_TYPES)
                .await
                .map_err(|e| explain(e, reference, image))?;
            check_digest(&bytes, &entry.digest, image, "the platform's manifest")?;
            let manifest: OciImageManifest =
                serde_json::from_slice(&bytes).map_err(|e| PullError::Malformed {
                    image: image.to_owned(),
                    why: e.to_string(),
                })?;
            store.write_blob(&entry.digest, &bytes)?;
            Ok((manifest, entry.digest.clone()))
        }
    }
}

fn check_digest(bytes: &[u8], digest: &str, image: &str, what: &str) -> Result<(), PullError> {
    let Some(expected) = digest.strip_prefix("sha256:") else {
        return Ok(()); // other algorithms: oci-client checked what it could
    };
    let actual = format!("{:x}", Sha256::digest(bytes));
    if actual == expected {
        Ok(())
    } else {
        Err(PullError::DigestMismatch {
            image: image.to_owned(),
            what: what.to_owned(),
            digest: digest.to_owned(),
        })
    }
}

async fn blob_to_memory(
    client: &Client,
    reference: &Reference,
    descriptor: &OciDescriptor,
    image: &str,
    what: &str,
) -> Result<Vec<u8>, PullError> {
    let mut bytes = Vec::new();
    client
        .pull_blob(reference, descriptor, &mut bytes)
        .await
        .map_err(|e| blob_error(e, reference, image, what, &descriptor.digest))?;
    Ok(bytes)
}

/// Download a layer to tmp/ (streamed: oci-client checks the digest as the
/// bytes go by, so memory stays flat however large the layer is), store it,
/// unpack it under tmp/ and move it into place. Returns its unpacked size.
// ANCHOR: fetch_layer
async fn fetch_layer(
    client: &Client,
    reference: &Reference,
    layer: &OciDescriptor,
    store: &Store,
    image: &str,
    progress: &Progress,
) -> Result<u64, PullError> {
    let digest = &layer.digest;
    if store.has_layer(digest) {
        progress.line(format_args!("{}: already here", short_digest(digest)));
        return Ok(layer_size(&store.layer_path(digest)));
    }
    if !store.has_blob(digest) {
        let tmp = store.tmp_path();
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| StoreError::Io {
                what: "writing",
                path: tmp.display().to_string(),
                source: e,
            })?;
        let bar = progress.bar(short_digest(digest), layer.size.max(0) as u64);
        let result = client.pull_blob(reference, layer, bar.writer(file)).await;
        if let Err(e) = result {
            bar.abandon();
            let _ = std::fs::remove_file(&tmp);
            if let OciDistributionError::IoError(io) = &e
                && let Some(full) = no_space(store, io)
            {
                return Err(full);
            }
            return Err(blob_error(e, reference, image, "a layer", digest));
        }
        bar.finish();
        store.commit_blob(&tmp, digest)?;
    }
    let tmp = store.tmp_path();
    std::fs::create_dir(&tmp).map_err(|e| StoreError::Io {
        what: "making",
        path: tmp.display().to_string(),
        source: e,
    })?;
    match unpack(&store.blob_path(digest), &tmp) {
        Ok(done) => {
            store.commit_layer(&tmp, digest)?;
            progress.line(format_args!(
                "{}: unpacked, {}, {}",
                short_digest(digest),
                count(done.entries as usize, "entry"),
                count(done.whiteouts as usize, "whiteout")
            ));
            Ok(done.bytes)
        }
        Err(source) => {
            let _ = std::fs::remove_dir_all(&tmp);
            if let UnpackError::Io { source: io, .. } = &source
                && let Some(full) = no_space(store, io)
            {
                return Err(full);
            }
            Err(PullError::Layer {
                image: image.to_owned(),
                digest: digest.clone(),
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

fn short_digest(digest: &str) -> String {
    let hex = crate::store::hex(digest);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// The store's disk is full: said once, whichever write found it.
fn no_space(store: &Store, io: &std::io::Error) -> Option<PullError> {
    (io.raw_os_error() == Some(libc::ENOSPC)).then(|| {
        StoreError::NoSpace {
            path: store.root().display().to_string(),
        }
        .into()
    })
}

fn blob_error(
    e: OciDistributionError,
    reference: &Reference,
    image: &str,
    what: &str,
    digest: &str,
) -> PullError {
    match e {
        OciDistributionError::DigestError(_) => PullError::DigestMismatch {
            image: image.to_owned(),
            what: what.to_owned(),
            digest: digest.to_owned(),
        },
        other => explain(other, reference, image),
    }
}

/// oci-client's errors, in words a user can act on.
fn explain(e: OciDistributionError, reference: &Reference, image: &str) -> PullError {
    let registry = reference.registry().to_owned();
    let refused = |why: String| PullError::Refused {
        registry: registry.clone(),
        image: image.to_owned(),
        why,
    };
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            PullError::NotFound(image.to_owned())
        }
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => PullError::Unauthorized {
            registry,
            image: image.to_owned(),
            config: auth::config_path().display().to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            use oci_client::errors::OciErrorCode as Code;
            let has = |wanted: &[Code]| envelope.errors.iter().any(|e| wanted.contains(&e.code));
            if has(&[Code::ManifestUnknown, Code::NameUnknown]) {
                PullError::NotFound(image.to_owned())
            } else if has(&[Code::Unauthorized, Code::Denied]) {
                PullError::Unauthorized {
                    registry,
                    image: image.to_owned(),
                    config: auth::config_path().display().to_string(),
                }
            } else {
                refused(
                    envelope
                        .errors
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            404 => PullError::NotFound(image.to_owned()),
            401 | 403 => PullError::Unauthorized {
                registry,
                image: image.to_owned(),
                config: auth::config_path().display().to_string(),
            },
            _ => refused(format!("HTTP {code} {message}")),
        },
        OciDistributionError::RequestError(e) => PullError::Unreachable {
            registry,
            why: root_cause(&e),
        },
        OciDistributionError::ManifestParsingError(why) => PullError::Malformed {
            image: image.to_owned(),
            why,
        },
        other => refused(root_cause(&other)),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
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

    #[test]
    fn manifest_digests_are_checked() {
        let digest = format!("sha256:{:x}", Sha256::digest(b"{}"));
        assert!(check_digest(b"{}", &digest, "x", "the manifest").is_ok());
        assert!(matches!(
            check_digest(b"{ }", &digest, "x", "the manifest"),
            Err(PullError::DigestMismatch { .. })
        ));
    }
}
