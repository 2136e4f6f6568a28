//! The registry's HTTP API (the OCI distribution spec), with every
//! response bounded.
//!
//! ```text
//!   GET /v2/<repo>/manifests/<tag|digest>   Accept: manifest and index types
//!     401 WWW-Authenticate: Bearer realm=…,service=…   → GET realm?scope=repository:<repo>:pull
//!                                                         (basic credentials, if any) → token
//!     200 the manifest (at most 4 MiB)
//!   GET /v2/<repo>/blobs/<digest>           (redirects followed, credentials not carried over)
//!     200 the blob, streamed: never more than the descriptor's size, hashed as it goes
//! ```
//!
//! A registry is not trusted to be honest: a body is never read whole
//! without a limit (manifests, tokens, error messages), a blob may not run
//! past the size its descriptor gives, a token service named by the
//! registry gets the user's credentials only over HTTPS (or the same plain
//! HTTP the registry itself was reached by), and what the registry says in
//! an error is shown escaped.

use std::io::Write;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use stage01_uts::cli::Untrusted;

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::manifest::{ACCEPTED, Descriptor, MANIFEST_MAX};
use crate::reference::Reference;

/// The most read of a token service's answer.
const TOKEN_MAX: u64 = 1 << 20;
/// The most read of an error response, for its message.
const ERROR_MAX: u64 = 64 << 10;
/// How long a connection may take to open, and a read to deliver anything.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Unreachable(String),
    #[error("not found")]
    NotFound,
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Refused(String),
    #[error("it sent more than the {max} bytes {what} may be")]
    TooLarge { what: &'static str, max: u64 },
    #[error("it sent more than the {size} bytes the manifest gives for {digest}")]
    Overlong { digest: String, size: u64 },
    #[error("it sent {got} bytes of the {size} the manifest gives for {digest}")]
    Short { digest: String, size: u64, got: u64 },
    #[error("the content does not match its digest {0}")]
    Mismatch(String),
    /// Writing what arrived failed (a full disk, say).
    #[error("writing: {0}")]
    Write(#[source] std::io::Error),
}

/// A manifest as it arrived.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The registry's Content-Type, if it was a plain header value.
    pub content_type: Option<String>,
    /// The registry's Docker-Content-Digest, as sent (checked by the caller).
    pub digest_header: Option<String>,
}

/// One repository of one registry, with the authorization got so far.
pub struct Registry {
    http: reqwest::Client,
    /// `https://registry-1.docker.io`.
    base: String,
    plain_http: bool,
    repository: String,
    credentials: Credentials,
    authorization: Option<String>,
}

impl Registry {
    /// The registry of `reference`, reached over plain HTTP when
    /// `plain_http` (loopback and `--insecure-registry`), else HTTPS.
    pub fn new(
        reference: &Reference,
        credentials: Credentials,
        plain_http: bool,
    ) -> Result<Registry, RegistryError> {
        // reqwest is built without a crypto provider of its own: ring's is
        // the process's (an Err means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("myruntime/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Unreachable(root_cause(&e)))?;
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Registry {
            http,
            base: format!("{scheme}://{}", reference.resolve_registry()),
            plain_http,
            repository: reference.repository().to_owned(),
            credentials,
            authorization: None,
        })
    }

    /// The manifest (or index) `tag_or_digest` names.
    // ANCHOR: manifest
    pub async fn manifest(&mut self, tag_or_digest: &str) -> Result<Fetched, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base, self.repository
        );
        let mut response = self.get(&url, Some(&ACCEPTED.join(", "))).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 256)
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let digest_header = header("docker-content-digest");
        let bytes = read_bounded(&mut response, MANIFEST_MAX, "a manifest").await?;
        Ok(Fetched {
            bytes,
            content_type,
            digest_header,
        })
    }
    // ANCHOR_END: manifest

    /// A small blob (a config), whole, checked against its descriptor.
    pub async fn small_blob(&mut self, blob: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = Vec::new();
        self.blob(blob, &mut bytes, |_| {}).await?;
        Ok(bytes)
    }

    /// The blob `blob` describes, streamed into `out`: never more bytes than
    /// its size, and its digest checked as they go by. `arrived` is told
    /// each chunk's length (a progress bar).
    // ANCHOR: blob
    pub async fn blob(
        &mut self,
        blob: &Descriptor,
        out: &mut impl Write,
        mut arrived: impl FnMut(u64),
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repository, blob.digest);
        let mut response = self.get(&url, None).await?;
        let shown = || blob.digest.to_string();
        if content_length(&response).is_some_and(|n| n > blob.size) {
            return Err(RegistryError::Overlong {
                digest: shown(),
                size: blob.size,
            });
        }
        let mut verifier = blob.digest.verifier();
        let mut got: u64 = 0;
        while let Some(chunk) = response.chunk().await.map_err(read_error)? {
            got += chunk.len() as u64;
            if got > blob.size {
                return Err(RegistryError::Overlong {
                    digest: shown(),
                    size: blob.size,
                });
            }
            verifier.update(&chunk);
            out.write_all(&chunk).map_err(RegistryError::Write)?;
            arrived(chunk.len() as u64);
        }
        if got < blob.size {
            return Err(RegistryError::Short {
                digest: shown(),
                size: blob.size,
                got,
            });
        }
        if !verifier.verify() {
            return Err(RegistryError::Mismatch(shown()));
        }
        Ok(())
    }
    // ANCHOR_END: blob

    /// GET `url`; on 401, answer the registry's challenge once and retry.
    async fn get(
        &mut self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        for attempt in 0..2 {
            let mut request = self.http.get(url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(authorization) = &self.authorization {
                request = request.header(AUTHORIZATION, authorization);
            }
            let mut response = request.send().await.map_err(read_error)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.authorize(challenge.as_deref()).await?;
                continue;
            }
            return Err(status_error(status, &mut response).await);
        }
        Err(RegistryError::Unauthorized)
    }

    /// Answer a `WWW-Authenticate` challenge: a bearer token from the
    /// registry's token service, or basic credentials.
    // ANCHOR: authorize
    async fn authorize(&mut self, challenge: Option<&str>) -> Result<(), RegistryError> {
        let Some((scheme, params)) = challenge.and_then(parse_challenge) else {
            return Err(RegistryError::Unauthorized);
        };
        let basic = match &self.credentials {
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        let authorization = if scheme.eq_ignore_ascii_case("basic") {
            basic.ok_or(RegistryError::Unauthorized)?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            match &self.credentials {
                Credentials::Bearer(token) => format!("Bearer {token}"),
                _ => format!("Bearer {}", self.token(&params, basic).await?),
            }
        } else {
            return Err(RegistryError::Unauthorized);
        };
        if self.authorization.as_deref() == Some(authorization.as_str()) {
            // The same answer was refused already.
            return Err(RegistryError::Unauthorized);
        }
        // A header value may not hold control characters: a token service
        // cannot smuggle a second header in.
        reqwest::header::HeaderValue::from_str(&authorization).map_err(|_| {
            RegistryError::Refused("the token service sent an unusable token".into())
        })?;
        self.authorization = Some(authorization);
        Ok(())
    }
    // ANCHOR_END: authorize

    /// A pull token from the token service the challenge names.
    async fn token(
        &self,
        params: &[(String, String)],
        basic: Option<String>,
    ) -> Result<String, RegistryError> {
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let realm = param("realm").ok_or(RegistryError::Unauthorized)?;
        let url = reqwest::Url::parse(realm).map_err(|_| {
            RegistryError::Refused(format!(
                "its token service {:?} is not a URL",
                Untrusted(realm).to_string()
            ))
        })?;
        // The user's credentials go to the token service only as safely as
        // they would go to the registry.
        let allowed = url.scheme() == "https" || (self.plain_http && url.scheme() == "http");
        if !allowed {
            return Err(RegistryError::Refused(format!(
                "its token service {} is not HTTPS; credentials are not sent there",
                Untrusted(realm)
            )));
        }
        let scope = format!("repository:{}:pull", self.repository);
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        let mut request = self.http.get(url).query(&query);
        if let Some(basic) = basic {
            request = request.header(AUTHORIZATION, basic);
        }
        let mut response = request.send().await.map_err(read_error)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized);
        }
        if !status.is_success() {
            return Err(status_error(status, &mut response).await);
        }
        let body = read_bounded(&mut response, TOKEN_MAX, "a token").await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body).map_err(|_| {
            RegistryError::Refused(
                "its token service answered with something other than a token".into(),
            )
        })?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or(RegistryError::Unauthorized)
    }
}

fn content_length(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body, refused past `max` bytes (told by Content-Length, or found
/// while reading: a registry may leave the length out or lie).
async fn read_bounded(
    response: &mut reqwest::Response,
    max: u64,
    what: &'static str,
) -> Result<Vec<u8>, RegistryError> {
    if content_length(response).is_some_and(|n| n > max) {
        return Err(RegistryError::TooLarge { what, max });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(read_error)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(RegistryError::TooLarge { what, max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A response that is not a success, in words: the registry's own error
/// codes where it sent the OCI error envelope.
async fn status_error(status: StatusCode, response: &mut reqwest::Response) -> RegistryError {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = read_bounded(response, ERROR_MAX, "an error message")
        .await
        .unwrap_or_default();
    let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
    let codes: Vec<&str> = envelope
        .iter()
        .flat_map(|e| e.errors.iter().map(|e| e.code.as_str()))
        .collect();
    if status == StatusCode::NOT_FOUND
        || codes
            .iter()
            .any(|c| matches!(*c, "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN"))
    {
        return RegistryError::NotFound;
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || codes
            .iter()
            .any(|c| matches!(*c, "UNAUTHORIZED" | "DENIED"))
    {
        return RegistryError::Unauthorized;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return RegistryError::Refused("too many requests (HTTP 429); wait, and try again".into());
    }
    let message: Vec<String> = envelope
        .iter()
        .flat_map(|e| e.errors.iter())
        .map(|e| e.message.chars().take(200).collect())
        .collect();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("").to_owned()
    } else {
        message.join("; ")
    };
    RegistryError::Refused(format!("HTTP {}: {}", status.as_u16(), Untrusted(&message)))
}

/// A transport error, as a user reads it: the innermost cause.
fn read_error(e: reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        return RegistryError::Unreachable("it stopped answering (timed out)".into());
    }
    RegistryError::Unreachable(root_cause(&e))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let cause = stage01_uts::error::innermost(e);
    // An OS error reads best by its kind ("connection refused").
    if let Some(io) = cause.downcast_ref::<std::io::Error>()
        && io.raw_os_error().is_some()
    {
        return io.kind().to_string();
    }
    Untrusted(&cause.to_string()).to_string()
}

/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`
/// → ("Bearer", [("realm", …), ("service", …)]). Quoted values may hold
/// commas and backslash escapes (RFC 9110 auth-params).
// ANCHOR: challenge
pub fn parse_challenge(header: &str) -> Option<(String, Vec<(String, String)>)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.trim().is_empty() {
            break;
        }
        chars.next_if_eq(&'=')?;
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            value
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>()
        };
        params.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Some((scheme.to_owned(), params))
}
// ANCHOR_END: challenge

/// The digest a registry's `Docker-Content-Digest` header gives, checked:
/// it must be a digest, and the manifest's bytes must hash to it.
pub fn header_digest(header: &str, bytes: &[u8]) -> Result<Digest, RegistryError> {
    let digest: Digest = header.parse().map_err(|e: crate::digest::BadDigest| {
        RegistryError::Refused(format!("its Docker-Content-Digest header is {e}"))
    })?;
    if digest.matches(bytes) {
        Ok(digest)
    } else {
        Err(RegistryError::Mismatch(digest.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_docker_hub_and_distribution_send_them() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            [
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                ("scope".into(), "repository:library/alpine:pull".into())
            ]
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="my \"registry\", here""#).unwrap();
        assert_eq!(scheme, "Basic");
        assert_eq!(params[0].1, r#"my "registry", here"#);
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
        assert!(parse_challenge("").is_none());
        assert_eq!(parse_challenge("Bearer").unwrap().1, []);
    }

    #[test]
    fn a_header_digest_must_be_a_digest_and_match() {
        let body = b"{}";
        let good = Digest::sha256_of(body).to_string();
        assert!(header_digest(&good, body).is_ok());
        assert!(matches!(
            header_digest(&good, b"{ }"),
            Err(RegistryError::Mismatch(_))
        ));
        let err = header_digest("sha256:../../../etc/passwd", body).unwrap_err();
        assert!(err.to_string().contains("is not a digest"), "{err}");
    }
}
