//! Image references as users write them, and which registries are reached
//! over plain HTTP.
//!
//! `alpine` is `docker.io/library/alpine:latest`; `alpine:3.20`,
//! `library/alpine`, `ghcr.io/org/img:tag`, `host:port/name@sha256:…` mean
//! what docker makes of them.

use std::net::IpAddr;

use stage01_uts::cli::InvalidValue;

use crate::digest::Digest;

/// An image reference, every part checked against docker's grammar: the
/// registry, the repository (its path there), and a tag, a digest or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry as written (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to connect to: Docker Hub's API is at registry-1.docker.io.
    pub fn resolve_registry(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" => "registry-1.docker.io",
            other => other,
        }
    }

    /// `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
}

/// Parse a reference; a bad one is refused in docker's words.
pub fn parse(text: &str) -> Result<Reference, InvalidValue> {
    split(text).ok_or_else(|| InvalidValue {
        what: "image reference",
        value: text.to_owned(),
        reason: "write it as NAME[:TAG] or NAME@sha256:DIGEST, e.g. alpine:3.20 \
                 (a registry's port is 1 to 65535)",
    })
}

/// The longest name docker accepts (domain and path).
const NAME_MAX: usize = 255;

/// docker's reference grammar (distribution/reference), by hand. oci-spec
/// parses it with one large regular expression, whose compilation alone
/// took some 30 ms: too much for every `run IMAGE`.
///
/// ```text
/// reference := name [ ":" tag ] [ "@" digest ]
/// name      := [ domain "/" ] path-component ( "/" path-component )*
/// domain    := host [ ":" port ]     (a first part with "." or ":", "localhost", or [v6])
/// ```
fn split(text: &str) -> Option<Reference> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest.parse::<Digest>().ok()?)),
        None => (text, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a
    // port).
    let last = rest.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match rest[last..].rfind(':') {
        Some(colon) => (&rest[..last + colon], Some(&rest[last + colon + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) || name.len() > NAME_MAX {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            (first, path)
        }
        _ => ("docker.io", name),
    };
    if !is_domain(domain) || !path.split('/').all(is_path_component) {
        return None;
    }
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let repository = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    Some(Reference {
        registry: domain.to_owned(),
        repository,
        tag,
        digest,
    })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or dashes.
fn is_path_component(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    part.starts_with(alnum)
        && part.ends_with(alnum)
        && part
            .split(alnum)
            .filter(|separator| !separator.is_empty())
            .all(|separator| {
                matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
            })
}

/// A host (DNS labels of letters, digits and inner dashes, or `[IPv6]`)
/// with an optional `:port`.
fn is_domain(domain: &str) -> bool {
    let is_port = |p: &str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    };
    if let Some(v6) = domain.strip_prefix('[') {
        let Some((address, rest)) = v6.split_once(']') else {
            return false;
        };
        let address_ok =
            !address.is_empty() && address.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        return address_ok && (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port));
    }
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label) && port.is_none_or(is_port)
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    tag.len() <= 128
        && tag.starts_with(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// The name a user reads: `alpine:latest` rather than
/// `docker.io/library/alpine:latest`.
pub fn short(reference: &Reference) -> String {
    let name = format!("{}/{}", reference.registry(), reference.repository());
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(&name)
        .to_owned();
    match (reference.tag(), reference.digest()) {
        (_, Some(digest)) => format!("{name}@{digest}"),
        (Some(tag), None) => format!("{name}:{tag}"),
        (None, None) => format!("{name}:latest"),
    }
}

/// The repository as stored: registry and path (`docker.io/library/alpine`).
pub fn repository(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// Whether a registry is reached over plain HTTP: loopback ones (as docker
/// does: 127.0.0.0/8, localhost, ::1), and those the user named with
/// `--insecure-registry`.
// ANCHOR: plain_http
pub fn plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|r| r == registry) {
        return true;
    }
    let host = match registry.strip_prefix('[') {
        // [::1]:5000
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                registry
            }
        }),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
// ANCHOR_END: plain_http

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("alpine", "docker.io", "library/alpine", Some("latest"))]
    #[case("alpine:3.20", "docker.io", "library/alpine", Some("3.20"))]
    #[case("library/alpine", "docker.io", "library/alpine", Some("latest"))]
    #[case("ghcr.io/org/img:tag", "ghcr.io", "org/img", Some("tag"))]
    #[case("127.0.0.1:5000/name", "127.0.0.1:5000", "name", Some("latest"))]
    fn references_as_docker_reads_them(
        #[case] text: &str,
        #[case] registry: &str,
        #[case] repository: &str,
        #[case] tag: Option<&str>,
    ) {
        let r = parse(text).unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            (registry, repository, tag)
        );
    }

    #[test]
    fn digests_and_short_names() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("localhost:5000/x/y@{digest}")).unwrap();
        assert_eq!(r.digest().map(ToString::to_string), Some(digest.clone()));
        assert_eq!(short(&r), format!("localhost:5000/x/y@{digest}"));
        assert_eq!(short(&parse("alpine").unwrap()), "alpine:latest");
        assert_eq!(
            short(&parse("bitnami/redis").unwrap()),
            "bitnami/redis:latest"
        );
    }

    #[test]
    fn bad_references_are_refused() {
        let err = parse("UPPER/Case").unwrap_err();
        assert!(err.to_string().contains("NAME[:TAG]"), "{err}");
    }

    /// The hand-written grammar reads references as oci-spec's regular
    /// expression does (where that follows docker).
    #[rstest]
    #[case("busybox")]
    #[case("test.com:tag")]
    #[case("test.com:5000")]
    #[case("test.com/repo:tag")]
    #[case("test:5000/repo")]
    #[case("test:5000/repo:tag")]
    #[case(
        "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    )]
    #[case(
        "test:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    )]
    #[case("lowercase:Uppercase")]
    #[case("sub-dom1.foo.com/bar/baz/quux:some-long-tag")]
    #[case("b.gcr.io/test.example.com/my-app:test.example.com")]
    #[case("xn--n3h.com/myimage:xn--n3h.com")]
    #[case("foo_bar.com:8080")]
    #[case("foo/foo_bar.com:8080")]
    #[case("opensuse/leap:15.3")]
    #[case("index.docker.io/alpine")]
    #[case("docker.io/library/alpine:3.20")]
    #[case("localhost/x")]
    #[case("localhost:5000/a/b/c:v1")]
    #[case("a__b/c--d/e.f_g:x")]
    #[case("a---b")]
    #[case("")]
    #[case(":justtag")]
    #[case("@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")]
    #[case("repo@sha256:ffffffffffffffffffffffffffffffffff")]
    #[case(
        "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    )]
    #[case("Uppercase:tag")]
    #[case("test:5000/Uppercase/lowercase:tag")]
    #[case("aa/asdf$$^/aa")]
    #[case("a..b")]
    #[case("a___b")]
    #[case("-a")]
    #[case("a-")]
    #[case("a/")]
    #[case("/a")]
    #[case("a//b")]
    #[case("host:port/x")]
    #[case("-host.com/x")]
    #[case("a:-tag")]
    #[case("a:")]
    fn reads_references_as_oci_spec_does(#[case] text: &str) {
        let ours = split(text);
        let theirs = text.parse::<oci_spec::distribution::Reference>().ok();
        assert_eq!(
            ours.as_ref().map(|r| (
                r.registry().to_owned(),
                r.repository().to_owned(),
                r.tag().map(str::to_owned),
                r.digest().map(ToString::to_string)
            )),
            theirs.as_ref().map(|r| (
                r.registry().to_owned(),
                r.repository().to_owned(),
                r.tag().map(str::to_owned),
                r.digest().map(str::to_owned)
            )),
            "{text:?}"
        );
    }

    #[test]
    fn where_docker_is_stricter_or_newer_than_oci_spec() {
        // An upper-case first part without '.' or ':' is a path, which must be
        // lower case (oci-spec lets it through).
        assert!(split("Uppercase/lowercase:tag").is_none());
        // IPv6 registries, as docker reads them now.
        let r = split("[::1]:5000/x:1").unwrap();
        assert_eq!((r.registry(), r.repository()), ("[::1]:5000", "x"));
        assert!(split("[fe80::g]/x").is_none());
        assert!(split("[::1]x/y").is_none());
        assert!(split("[::1]:/y").is_none());
        // Tags are ASCII.
        assert!(split("alpine:é").is_none());
        // A port the network has; digests as the store takes them.
        assert!(split("localhost:99999/x").is_none());
        assert!(split("localhost:0/x").is_none());
        assert!(split("localhost:65535/x").is_some());
        assert!(split(&format!("a@sha256:{}", "F".repeat(64))).is_none());
        assert!(split(&format!("a:{}", "t".repeat(129))).is_none());
        assert!(split(&format!("{}/x", "a".repeat(300))).is_none());
    }

    #[rstest]
    #[case("127.0.0.1:5000", true)]
    #[case("127.8.9.1:443", true)]
    #[case("localhost:5000", true)]
    #[case("localhost", true)]
    #[case("[::1]:5000", true)]
    #[case("docker.io", false)]
    #[case("10.0.0.1:5000", false)]
    #[case("registry.example:5000", false)]
    fn loopback_registries_are_plain_http(#[case] registry: &str, #[case] http: bool) {
        assert_eq!(plain_http(registry, &[]), http);
    }

    #[test]
    fn insecure_registries_are_plain_http_when_named() {
        assert!(plain_http("10.0.0.1:5000", &["10.0.0.1:5000".into()]));
    }
}
