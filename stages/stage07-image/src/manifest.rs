//! Manifests and indexes, as a registry sends them, read strictly.
//!
//! ```text
//!   index (a manifest per platform) ──► manifest ──► config   (mediaType, digest, size)
//!                                                 └─► layers  (mediaType, digest, size) …
//! ```
//!
//! Everything here came from a registry, which may lie. Each descriptor's
//! digest is a [`Digest`] (parsed, never a string); its size is a
//! non-negative number; its media type is one the runtime knows how to use,
//! or the pull stops with a line that says what it is. Documents are
//! bounded before they are parsed (see [`MANIFEST_MAX`]), and printed
//! strings (platforms) are escaped where they are shown.

use serde::Deserialize;

use crate::digest::Digest;

/// The largest manifest or index read, as the distribution registry
/// refuses to store larger ones: 4 MiB.
// ANCHOR: limits
pub const MANIFEST_MAX: u64 = 4 << 20;
/// The largest image config read: 8 MiB (a real one is a few KiB; its
/// history grows with its layers, and 500 layers stay far below this).
pub const CONFIG_MAX: u64 = 8 << 20;
// ANCHOR_END: limits

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a pull asks for, in the `Accept` header.
pub const ACCEPTED: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const LAYER_TYPES: [&str; 7] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    // Deprecated, but still found: the same content, marked as not to be
    // pushed elsewhere.
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// A reference to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Where a foreign layer must be fetched from instead (Windows base
    /// layers): refused.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    /// `linux/arm64/v8`, escaped: the registry chose these strings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use stage01_uts::cli::Untrusted;
        write!(
            f,
            "{}/{}",
            Untrusted(&self.os),
            Untrusted(&self.architecture)
        )?;
        if let Some(v) = &self.variant {
            write!(f, "/{}", Untrusted(v))?;
        }
        Ok(())
    }
}

/// An image manifest: one config, layers lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An index (docker: a manifest list): a manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Image(ImageManifest),
    Index(Index),
}

/// Why a document cannot be used; each in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("it is not a manifest the runtime reads: {0}")]
    Unparsable(String),
    #[error("its schemaVersion is {0}; only version 2 manifests are read")]
    Schema(u32),
    #[error("its media type {0:?} is not an image manifest or index")]
    MediaType(String),
    #[error("it says it is {said:?} but its content is {is}")]
    Contradicts { said: String, is: &'static str },
    #[error(
        "it is not a container image: its config is {0:?} (an artifact such as a chart or a signature?)"
    )]
    NotAnImage(String),
    #[error(
        "layer {digest} has the media type {media_type:?}, which is not a layer the runtime can unpack"
    )]
    LayerType { digest: String, media_type: String },
    #[error("layer {0} is a foreign layer, to be fetched from elsewhere (a Windows base layer?)")]
    Foreign(String),
    #[error("its config is {size} bytes, more than the {max} bytes a config may be")]
    ConfigTooLarge { size: u64, max: u64 },
    #[error("it has {count} layers; overlayfs stacks at most {max}")]
    TooManyLayers { count: usize, max: usize },
}

/// Parse a manifest document. `content_type` is the registry's header, if
/// it sent one; the document's own `mediaType` wins, and the two, and the
/// shape of the content, must agree.
// ANCHOR: parse
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        layers: Option<serde::de::IgnoredAny>,
    }
    let unparsable = |e: serde_json::Error| ManifestError::Unparsable(e.to_string());
    let probe: Probe = serde_json::from_slice(bytes).map_err(unparsable)?;
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let said = probe.media_type.clone().or_else(|| {
        content_type
            .filter(|c| ACCEPTED.contains(c))
            .map(str::to_owned)
    });
    let is_index = match said.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => return Err(ManifestError::MediaType(other.to_owned())),
        // Neither says: the shape does (an OCI document may omit both).
        None => probe.manifests.is_some(),
    };
    let shape_index = probe.manifests.is_some() && probe.layers.is_none();
    if is_index != shape_index {
        return Err(ManifestError::Contradicts {
            said: said.unwrap_or_default(),
            is: if shape_index {
                "an index"
            } else {
                "a manifest"
            },
        });
    }
    let document = if is_index {
        let index: Index = serde_json::from_slice(bytes).map_err(unparsable)?;
        if index.schema_version != 2 {
            return Err(ManifestError::Schema(index.schema_version));
        }
        Document::Index(index)
    } else {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(unparsable)?;
        if manifest.schema_version != 2 {
            return Err(ManifestError::Schema(manifest.schema_version));
        }
        check_image(&manifest)?;
        Document::Image(manifest)
    };
    Ok(document)
}
// ANCHOR_END: parse

/// An image manifest the runtime can pull: a container image config and
/// layers of types it can unpack, within the limits.
fn check_image(manifest: &ImageManifest) -> Result<(), ManifestError> {
    let config = &manifest.config;
    if !CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Err(ManifestError::NotAnImage(config.media_type.clone()));
    }
    if config.size > CONFIG_MAX {
        return Err(ManifestError::ConfigTooLarge {
            size: config.size,
            max: CONFIG_MAX,
        });
    }
    let max = stage06_overlay::overlay::MAX_LAYERS;
    if manifest.layers.len() > max {
        return Err(ManifestError::TooManyLayers {
            count: manifest.layers.len(),
            max,
        });
    }
    for layer in &manifest.layers {
        if layer.urls.as_ref().is_some_and(|u| !u.is_empty())
            || layer.media_type.contains(".foreign.")
        {
            return Err(ManifestError::Foreign(layer.digest.to_string()));
        }
        if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
            return Err(ManifestError::LayerType {
                digest: layer.digest.to_string(),
                media_type: layer.media_type.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest(layer_digest: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}",
              "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "{}", "size": 10}},
              "layers": [{{"mediaType": "{layer_type}", "digest": "{layer_digest}", "size": 20}}]}}"#,
            digest('c')
        )
    }

    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    #[test]
    fn a_good_manifest_parses() {
        let doc = parse(manifest(&digest('a'), GZIP).as_bytes(), None).unwrap();
        let Document::Image(m) = doc else {
            panic!("a manifest")
        };
        assert_eq!(m.layers[0].size, 20);
    }

    #[test]
    fn a_digest_that_would_climb_out_of_the_store_is_refused() {
        let traversal = format!("sha256:../../../../../../{}", "a".repeat(46));
        let err = parse(manifest(&traversal, GZIP).as_bytes(), None).unwrap_err();
        assert!(
            matches!(err, ManifestError::Unparsable(ref why) if why.contains("not a digest")),
            "{err}"
        );
    }

    #[test]
    fn sizes_are_not_negative() {
        let text = manifest(&digest('a'), GZIP).replace("\"size\": 20", "\"size\": -1");
        assert!(parse(text.as_bytes(), None).is_err());
    }

    #[test]
    fn unknown_layer_types_and_artifacts_are_refused_with_their_names() {
        let err = parse(
            manifest(&digest('a'), "application/x-evil").as_bytes(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ManifestError::LayerType { .. }), "{err}");
        let chart = manifest(&digest('a'), GZIP).replace(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.cncf.helm.config.v1+json",
        );
        let err = parse(chart.as_bytes(), None).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"it is not a container image: its config is "application/vnd.cncf.helm.config.v1+json" (an artifact such as a chart or a signature?)"#);
    }

    #[test]
    fn a_document_that_contradicts_itself_is_refused() {
        let text = manifest(&digest('a'), GZIP).replace(OCI_MANIFEST, OCI_INDEX);
        let err = parse(text.as_bytes(), None).unwrap_err();
        assert!(matches!(err, ManifestError::Contradicts { .. }), "{err}");
        let err = parse(
            br#"{"schemaVersion": 1, "fsLayers": []}"#,
            Some(DOCKER_MANIFEST),
        )
        .unwrap_err();
        assert!(
            matches!(err, ManifestError::Unparsable(_) | ManifestError::Schema(1)),
            "{err}"
        );
    }

    #[test]
    fn an_index_parses_and_its_platforms_print_escaped() {
        let text = format!(
            r#"{{"schemaVersion": 2, "manifests": [{{"mediaType": "{OCI_MANIFEST}", "digest": "{}", "size": 5,
               "platform": {{"os": "linux", "architecture": "arm\u001b[2J"}}}}]}}"#,
            digest('b')
        );
        let Document::Index(index) = parse(text.as_bytes(), Some(OCI_INDEX)).unwrap() else {
            panic!("an index")
        };
        let shown = index.manifests[0].platform.as_ref().unwrap().to_string();
        assert_eq!(shown, r"linux/arm\u{1b}[2J");
    }

    #[test]
    fn a_config_larger_than_the_limit_is_refused_before_it_is_fetched() {
        let text = manifest(&digest('a'), GZIP).replace("\"size\": 10", "\"size\": 1500000000");
        let err = parse(text.as_bytes(), None).unwrap_err();
        assert!(matches!(err, ManifestError::ConfigTooLarge { .. }), "{err}");
    }
}
