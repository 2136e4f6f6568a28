//! Credentials, from docker's own file: `$DOCKER_CONFIG/config.json`, or
//! `~/.docker/config.json`.
//!
//! ```json
//! { "auths": { "registry.example:5000": { "auth": "base64(user:password)" },
//!              "ghcr.io": { "registrytoken": "a bearer token" } } }
//! ```
//!
//! Docker Hub's entry is keyed `https://index.docker.io/v1/`. Without an
//! entry the pull is anonymous (Docker Hub then hands out an anonymous
//! token, which the pull asks its token service for).

use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

/// What a pull presents to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing (Docker Hub then hands out an anonymous token).
    Anonymous,
    /// A user and password, sent as HTTP basic authentication, to the
    /// registry or to the token service it names.
    Basic { user: String, password: String },
    /// A token given as it is (`registrytoken`).
    Bearer(String),
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
}

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path} is not valid JSON: {why}; fix or remove it")]
    Malformed { path: String, why: String },
    #[error("the credentials for {registry} in {path} are not base64 of user:password")]
    BadAuth { registry: String, path: String },
}

/// The docker config file this user's pulls read.
pub fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
            .join(".docker/config.json"),
    }
}

/// The credentials for `registry` (as the reference names it).
// ANCHOR: credentials
pub fn credentials(registry: &str) -> Result<Credentials, AuthError> {
    let path = config_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Credentials::Anonymous);
    };
    let file: ConfigFile = serde_json::from_str(&text).map_err(|e| AuthError::Malformed {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    let keys: Vec<String> = if registry == "docker.io" || registry == "index.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_owned(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    let Some(entry) = keys.iter().find_map(|k| file.auths.get(k)) else {
        return Ok(Credentials::Anonymous);
    };
    if let Some(token) = &entry.registrytoken {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic {
            user: user.clone(),
            password: password.clone(),
        });
    }
    if let Some(auth) = &entry.auth {
        let bad = || AuthError::BadAuth {
            registry: registry.to_owned(),
            path: path.display().to_string(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    Ok(Credentials::Anonymous)
}
// ANCHOR_END: credentials

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests that set DOCKER_CONFIG run one at a time.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn with_config<T>(json: &str, f: impl FnOnce() -> T) -> T {
        let _lock = ENV.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        // SAFETY: the only thread touching the environment, under the lock.
        unsafe { std::env::set_var("DOCKER_CONFIG", dir.path()) };
        let out = f();
        // SAFETY: as above.
        unsafe { std::env::remove_var("DOCKER_CONFIG") };
        out
    }

    #[test]
    fn basic_bearer_and_anonymous() {
        let json = r#"{"auths": {
            "127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"},
            "ghcr.io": {"registrytoken": "tok"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}}}"#;
        with_config(json, || {
            assert!(
                matches!(credentials("127.0.0.1:5000").unwrap(), Credentials::Basic { user, password } if user == "user" && password == "pass")
            );
            assert!(
                matches!(credentials("ghcr.io").unwrap(), Credentials::Bearer(t) if t == "tok")
            );
            assert!(
                matches!(credentials("docker.io").unwrap(), Credentials::Basic { user, .. } if user == "hub")
            );
            assert!(matches!(
                credentials("quay.io").unwrap(),
                Credentials::Anonymous
            ));
        });
    }

    #[test]
    fn a_broken_file_is_reported() {
        with_config("{not json", || {
            assert!(matches!(credentials("x"), Err(AuthError::Malformed { .. })));
        });
        with_config(r#"{"auths": {"x": {"auth": "%%%"}}}"#, || {
            assert!(matches!(credentials("x"), Err(AuthError::BadAuth { .. })));
        });
    }
}
