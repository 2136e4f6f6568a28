//! Image references as users write them, and which registries are reached
//! over plain HTTP.
//!
//! `alpine` is `docker.io/library/alpine:latest`; `alpine:3.20`,
//! `library/alpine`, `ghcr.io/org/img:tag`, `host:port/name@sha256:…` mean
//! what docker makes of them (the normalization is oci-spec's).

use std::net::IpAddr;

use oci_client::Reference;
use stage01_uts::cli::InvalidValue;

/// Parse a reference; a bad one is refused in docker's words.
pub fn parse(text: &str) -> Result<Reference, InvalidValue> {
    text.parse::<Reference>().map_err(|_| InvalidValue {
        what: "image reference",
        value: text.to_owned(),
        reason: "write it as NAME[:TAG] or NAME@sha256:DIGEST, e.g. alpine:3.20",
    })
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
        assert_eq!(r.digest(), Some(digest.as_str()));
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
