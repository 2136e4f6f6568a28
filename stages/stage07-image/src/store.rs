//! The image store, under the runtime's data directory.
//!
//! ```text
//!   <root>/
//!     blobs/sha256/<hex>     manifests, configs and compressed layers, by digest
//!     layers/<hex>/          each layer unpacked, named by its blob's digest:
//!                            one copy, however many images share it
//!     images.json            name:tag → manifest, config and layers
//!     containers/<id>/       each container's overlay (stage 06)
//!     tmp/<pid>-<n>          downloads and unpacks under way
//!     images.lock, gc.lock   flock(2) files
//! ```
//!
//! Nothing half-made is ever in use: a blob is written under tmp/ and
//! renamed into blobs/ once its digest checked out; a layer is unpacked
//! under tmp/ and renamed into layers/; an image is listed only once all its
//! parts are there, by rewriting images.json aside and renaming it over the
//! old one. A pull that is killed leaves files in tmp/ (removed by the next
//! one) and complete blobs and layers, which the next pull of the same image
//! reuses. Pulls hold gc.lock shared, `rmi` exclusive: its garbage
//! collection never removes what a pull is about to list.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `docker.io/library/alpine`.
    pub repository: String,
    /// `latest`; empty for an image pulled by digest only.
    pub tag: String,
    /// The image manifest's digest.
    pub digest: String,
    /// The config blob's digest: the image's id.
    pub config: String,
    /// Layer blob digests, lowest first.
    pub layers: Vec<String>,
    /// Bytes of the unpacked layers' files.
    pub size: u64,
}

impl ImageRecord {
    /// The image id as `images` shows it: 12 hex digits of the config digest.
    pub fn id(&self) -> &str {
        let hex = self.config.strip_prefix("sha256:").unwrap_or(&self.config);
        &hex[..hex.len().min(12)]
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<ImageRecord>,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no space left on the device of {path}; free some space (or `rmi` images) and try again"
    )]
    NoSpace { path: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is damaged ({why}); remove it, and pull the images again")]
    Damaged { path: String, why: String },
    #[error("no such image: {0}; `images` lists those in the store")]
    NotFound(String),
    #[error("the image {image} is in use by container {container}; stop it first")]
    InUse { image: String, container: String },
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            StoreError::NoSpace {
                path: path.display().to_string(),
            }
        } else {
            StoreError::Io {
                what,
                path: path.display().to_string(),
                source,
            }
        }
    }
}

/// The store at a data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An flock(2) held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Store {
    /// Open (and if need be make) the store under `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for dir in ["blobs/sha256", "layers", "tmp", "containers"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error("making", &path))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex(digest))
    }

    pub fn layer_path(&self, digest: &str) -> PathBuf {
        self.root.join("layers").join(hex(digest))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn has_layer(&self, digest: &str) -> bool {
        self.layer_path(digest).is_dir()
    }

    /// A fresh path under tmp/ (named after this process, so that the next
    /// pull can tell what a dead one left).
    pub fn tmp_path(&self) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        self.root.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Remove what pulls that died left in tmp/.
    pub fn clean_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
            }
        }
    }

    /// Move a verified blob into place (a blob already there is the same
    /// content: a concurrent pull got there first).
    pub fn commit_blob(&self, tmp: &Path, digest: &str) -> Result<(), StoreError> {
        let target = self.blob_path(digest);
        if target.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        fs::rename(tmp, &target).map_err(io_error("storing the blob", &target))
    }

    /// Move an unpacked layer into place.
    pub fn commit_layer(&self, tmp: &Path, digest: &str) -> Result<(), StoreError> {
        let target = self.layer_path(digest);
        match fs::rename(tmp, &target) {
            Ok(()) => Ok(()),
            // Another pull unpacked the same layer first.
            Err(_) if target.is_dir() => {
                let _ = fs::remove_dir_all(tmp);
                Ok(())
            }
            Err(e) => Err(io_error("storing the layer", &target)(e)),
        }
    }

    /// Write `bytes` as the blob `digest` (small blobs: manifests, configs).
    pub fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.tmp_path();
        fs::write(&tmp, bytes).map_err(io_error("writing", &tmp))?;
        self.commit_blob(&tmp, digest)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(io_error("reading", &path))
    }

    fn lock(&self, name: &str, how: libc::c_int) -> Result<Lock, StoreError> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        // SAFETY: flock on a descriptor the File owns.
        if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
            return Err(io_error("locking", &path)(io::Error::last_os_error()));
        }
        Ok(Lock { _file: file })
    }

    /// Held by a pull for its whole length: no garbage collection meanwhile.
    pub fn pulling(&self) -> Result<Lock, StoreError> {
        self.lock("gc.lock", libc::LOCK_SH)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Damaged {
                path: path.display().to_string(),
                why: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_error("reading", &path)(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.index_path();
        let tmp = self.tmp_path();
        let bytes = serde_json::to_vec_pretty(index).expect("an index serializes");
        let mut file = File::create(&tmp).map_err(io_error("writing", &tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("writing", &path))
    }

    /// Every image in the store.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self.read_index()?.images)
    }

    /// The image a reference names: by repository and digest, or by
    /// repository and tag.
    pub fn find(
        &self,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Option<ImageRecord>, StoreError> {
        Ok(self.images()?.into_iter().find(|i| {
            i.repository == repository
                && match (digest, tag) {
                    (Some(d), _) => i.digest == d,
                    (None, Some(t)) => i.tag == t,
                    (None, None) => i.tag == "latest",
                }
        }))
    }

    /// List an image, replacing one of the same name and tag.
    pub fn add(&self, record: ImageRecord) -> Result<(), StoreError> {
        let _lock = self.lock("images.lock", libc::LOCK_EX)?;
        let mut index = self.read_index()?;
        index.images.retain(|i| {
            !(i.repository == record.repository && i.tag == record.tag && !record.tag.is_empty())
        });
        index.images.retain(|i| {
            !(i.repository == record.repository && i.digest == record.digest && i.tag == record.tag)
        });
        index.images.push(record);
        self.write_index(&index)
    }

    /// Unlist an image and remove what no other image uses. Refused while a
    /// container runs on it.
    // ANCHOR: remove
    pub fn remove(
        &self,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        shown: &str,
    ) -> Result<ImageRecord, StoreError> {
        let _gc = self.lock("gc.lock", libc::LOCK_EX)?;
        let _lock = self.lock("images.lock", libc::LOCK_EX)?;
        let mut index = self.read_index()?;
        let position = index
            .images
            .iter()
            .position(|i| {
                i.repository == repository
                    && match (digest, tag) {
                        (Some(d), _) => i.digest == d,
                        (None, Some(t)) => i.tag == t,
                        (None, None) => i.tag == "latest",
                    }
            })
            .ok_or_else(|| StoreError::NotFound(shown.to_owned()))?;
        if let Some(container) = self.container_using(&index.images[position]) {
            return Err(StoreError::InUse {
                image: shown.to_owned(),
                container,
            });
        }
        let removed = index.images.remove(position);
        self.write_index(&index)?;
        // Garbage: what no remaining image names.
        let kept: std::collections::HashSet<&str> = index
            .images
            .iter()
            .flat_map(|i| i.layers.iter().chain([&i.config, &i.digest]))
            .map(String::as_str)
            .collect();
        for digest in removed
            .layers
            .iter()
            .chain([&removed.config, &removed.digest])
        {
            if !kept.contains(digest.as_str()) {
                let _ = fs::remove_file(self.blob_path(digest));
                let _ = fs::remove_dir_all(self.layer_path(digest));
            }
        }
        Ok(removed)
    }
    // ANCHOR_END: remove

    /// A container whose overlay stacks one of the image's layers.
    fn container_using(&self, image: &ImageRecord) -> Option<String> {
        let layers: Vec<PathBuf> = image.layers.iter().map(|d| self.layer_path(d)).collect();
        let containers = fs::read_dir(self.root.join("containers")).ok()?;
        for container in containers.flatten() {
            let Ok(links) = fs::read_dir(container.path().join("l")) else {
                continue;
            };
            for link in links.flatten() {
                if fs::read_link(link.path()).is_ok_and(|target| layers.contains(&target)) {
                    return Some(
                        container
                            .file_name()
                            .to_string_lossy()
                            .chars()
                            .take(12)
                            .collect(),
                    );
                }
            }
        }
        None
    }
}

/// `sha256:abcd…` → `abcd…`.
pub fn hex(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: &str, layers: &[&str]) -> ImageRecord {
        ImageRecord {
            repository: "docker.io/library/alpine".into(),
            tag: tag.into(),
            digest: format!("sha256:m{tag}"),
            config: format!("sha256:c{tag}0123456789"),
            layers: layers.iter().map(|l| format!("sha256:{l}")).collect(),
            size: 1,
        }
    }

    #[test]
    fn images_are_found_by_tag_or_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add(record("3.20", &["a"])).unwrap();
        store.add(record("latest", &["a", "b"])).unwrap();
        let repo = "docker.io/library/alpine";
        assert_eq!(
            store.find(repo, Some("3.20"), None).unwrap().unwrap().tag,
            "3.20"
        );
        assert_eq!(store.find(repo, None, None).unwrap().unwrap().tag, "latest");
        assert_eq!(
            store
                .find(repo, None, Some("sha256:m3.20"))
                .unwrap()
                .unwrap()
                .tag,
            "3.20"
        );
        assert!(store.find(repo, Some("edge"), None).unwrap().is_none());
        assert_eq!(record("3.20", &[]).id(), "c3.200123456");
    }

    #[test]
    fn a_re_pull_replaces_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add(record("latest", &["a"])).unwrap();
        let mut newer = record("latest", &["b"]);
        newer.digest = "sha256:newer".into();
        store.add(newer).unwrap();
        assert_eq!(store.images().unwrap().len(), 1);
    }

    #[test]
    fn rmi_removes_only_what_no_other_image_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for layer in ["shared", "own"] {
            store.write_blob(&format!("sha256:{layer}"), b"x").unwrap();
            fs::create_dir_all(store.layer_path(&format!("sha256:{layer}"))).unwrap();
        }
        store.add(record("one", &["shared", "own"])).unwrap();
        store.add(record("two", &["shared"])).unwrap();
        let repo = "docker.io/library/alpine";
        store.remove(repo, Some("one"), None, "alpine:one").unwrap();
        assert!(store.has_layer("sha256:shared") && store.has_blob("sha256:shared"));
        assert!(!store.has_layer("sha256:own") && !store.has_blob("sha256:own"));
        let err = store
            .remove(repo, Some("one"), None, "alpine:one")
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"no such image: alpine:one; `images` lists those in the store");
    }

    #[test]
    fn an_image_in_use_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::create_dir_all(store.layer_path("sha256:a")).unwrap();
        store.add(record("latest", &["a"])).unwrap();
        let links = dir.path().join("containers/0123456789abcdef/l");
        fs::create_dir_all(&links).unwrap();
        std::os::unix::fs::symlink(store.layer_path("sha256:a"), links.join("0")).unwrap();
        let err = store
            .remove("docker.io/library/alpine", None, None, "alpine")
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InUse { ref container, .. } if container == "0123456789ab"),
            "{err}"
        );
    }

    #[test]
    fn what_dead_pulls_left_in_tmp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let dead = dir.path().join("tmp/999999999-0");
        fs::write(&dead, "partial").unwrap();
        let mine = store.tmp_path();
        fs::write(&mine, "mine").unwrap();
        store.clean_tmp();
        assert!(!dead.exists());
        assert!(mine.exists(), "a live pull's files stay");
    }
}
