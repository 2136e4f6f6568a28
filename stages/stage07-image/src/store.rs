//! The image store, under the runtime's data directory.
//!
//! ```text
//!   <root>/                  0700 when the runtime makes it; every directory below is
//!                            0700: nothing is reachable by other host users
//!     blobs/sha256/<hex>     manifests, configs and compressed layers, by digest
//!     layers/<hex>/          each layer unpacked, named by its blob's digest:
//!                            one copy, however many images share it
//!     images.json            name:tag → manifest, config and layers
//!     containers/<id>/       each container's overlay (stage 06), and its lock
//!     tmp/<pid>-<n>          downloads and unpacks under way
//!     images.lock, gc.lock   flock(2) files
//! ```
//!
//! Every path below is made from a [`Digest`], never from a string a
//! registry sent: a digest that is not `algorithm:hex` of the right length
//! cannot be held in one, so it can never name a path outside the store.
//!
//! Nothing half-made is ever in use: a blob is written under tmp/ and
//! renamed into blobs/ once its digest checked out; a layer is unpacked
//! under tmp/ and renamed into layers/; an image is listed only once all its
//! parts are there, by rewriting images.json aside and renaming it over the
//! old one. A pull that is killed leaves files in tmp/ (removed by the next
//! one) and complete blobs and layers, which the next pull of the same image
//! reuses.
//!
//! Pulls hold gc.lock shared, and so does `run IMAGE` from the moment it
//! looks its image up until its container's layers are recorded (stage
//! 06); `rmi` holds it exclusive. So `rmi` never removes what a pull is
//! about to list, nor a layer a starting container has chosen.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `docker.io/library/alpine`.
    pub repository: String,
    /// `latest`; empty for an image pulled by digest only.
    pub tag: String,
    /// The image manifest's digest.
    pub digest: Digest,
    /// The config blob's digest: the image's id.
    pub config: Digest,
    /// Layer blob digests, lowest first.
    pub layers: Vec<Digest>,
    /// Bytes of the unpacked layers' files.
    pub size: u64,
}

impl ImageRecord {
    /// The image id as `images` shows it: 12 hex digits of the config digest.
    pub fn id(&self) -> &str {
        &self.config.hex()[..12]
    }

    /// Whether a reference (repository, tag, digest) names this image: by
    /// digest if it has one, else by tag (`latest` if none).
    pub fn named_by(&self, repository: &str, tag: Option<&str>, digest: Option<&Digest>) -> bool {
        self.repository == repository
            && match (digest, tag) {
                (Some(d), _) => &self.digest == d,
                (None, Some(t)) => self.tag == t,
                (None, None) => self.tag == "latest",
            }
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
    /// Open (and if need be make) the store under `root`; its directories
    /// are root-only (stage 06's data directory).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        stage06_overlay::datadir::prepare(
            root,
            &["blobs", "blobs/sha256", "layers", "tmp", "containers"],
        )
        .map_err(io_error("making", root))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    pub fn layer_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("layers").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn has_layer(&self, digest: &Digest) -> bool {
        self.layer_path(digest).is_dir()
    }

    /// Refuse a download of `size` bytes that would take the store's disk
    /// below its reserve (the registry says the size; the download is then
    /// held to it).
    pub fn check_space(&self, size: u64) -> Result<(), StoreError> {
        let no_space = || StoreError::NoSpace {
            path: self.root.display().to_string(),
        };
        if crate::unpack::below_reserve(&self.root) {
            return Err(no_space());
        }
        match nix::sys::statvfs::statvfs(&self.root) {
            Ok(fs) if fs.blocks_available().saturating_mul(fs.fragment_size()) < size => {
                Err(no_space())
            }
            _ => Ok(()),
        }
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
    pub fn commit_blob(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let target = self.blob_path(digest);
        if let Some(dir) = target.parent() {
            stage06_overlay::datadir::prepare(dir, &[]).map_err(io_error("making", dir))?;
        }
        if target.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        fs::rename(tmp, &target).map_err(io_error("storing the blob", &target))
    }

    /// Move an unpacked layer into place.
    pub fn commit_layer(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
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
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.tmp_path();
        fs::write(&tmp, bytes).map_err(io_error("writing", &tmp))?;
        self.commit_blob(&tmp, digest)
    }

    /// A small blob (a config), whole, refused past `max` bytes and checked
    /// against its digest: the store is on disk, and disks change.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let damaged = |why: &str| StoreError::Damaged {
            path: path.display().to_string(),
            why: why.to_owned(),
        };
        let file = File::open(&path).map_err(io_error("reading", &path))?;
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes)
            .map_err(io_error("reading", &path))?;
        if bytes.len() as u64 > max {
            return Err(damaged("it is larger than it may be"));
        }
        if !digest.matches(&bytes) {
            return Err(damaged("it does not match its digest"));
        }
        Ok(bytes)
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

    /// Held by a pull for its whole length, and by `run IMAGE` until its
    /// container's layers are recorded: no garbage collection meanwhile.
    pub fn using(&self) -> Result<Lock, StoreError> {
        self.lock("gc.lock", libc::LOCK_SH)
    }

    /// The store for garbage collection, if nothing uses it right now (no
    /// pull under way, no container choosing its layers).
    pub fn idle(&self) -> Option<Lock> {
        self.lock("gc.lock", libc::LOCK_EX | libc::LOCK_NB).ok()
    }

    /// Remove every blob and layer no listed image names: what `rmi` leaves
    /// unreferenced, and what a refused pull had verified and stored before
    /// it was refused. Only under the exclusive gc lock (`_gc`).
    // ANCHOR: collect_garbage
    pub fn collect_garbage(&self, _gc: &Lock) -> Result<usize, StoreError> {
        let index = self.read_index()?;
        let kept: std::collections::HashSet<String> = index
            .images
            .iter()
            .flat_map(|i| i.layers.iter().chain([&i.config, &i.digest]))
            .map(|d| d.hex().to_owned())
            .collect();
        let mut removed = 0;
        let blobs = fs::read_dir(self.root.join("blobs"))
            .into_iter()
            .flatten()
            .flatten();
        let dirs = blobs
            .map(|algorithm| algorithm.path())
            .chain([self.root.join("layers")]);
        for dir in dirs {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if kept.contains(&name) {
                    continue;
                }
                let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(entry.path())
                } else {
                    fs::remove_file(entry.path())
                };
                removed += usize::from(gone.is_ok());
            }
        }
        Ok(removed)
    }
    // ANCHOR_END: collect_garbage

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
        digest: Option<&Digest>,
    ) -> Result<Option<ImageRecord>, StoreError> {
        Ok(self
            .images()?
            .into_iter()
            .find(|i| i.named_by(repository, tag, digest)))
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
        digest: Option<&Digest>,
        shown: &str,
    ) -> Result<ImageRecord, StoreError> {
        let gc = self.lock("gc.lock", libc::LOCK_EX)?;
        let _lock = self.lock("images.lock", libc::LOCK_EX)?;
        let mut index = self.read_index()?;
        let position = index
            .images
            .iter()
            .position(|i| i.named_by(repository, tag, digest))
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
        self.collect_garbage(&gc)?;
        Ok(removed)
    }
    // ANCHOR_END: remove

    /// A live container (its runtime holds its lock) whose overlay stacks
    /// one of the image's layers; dead runtimes' containers are reclaimed
    /// first, so they never keep an image.
    fn container_using(&self, image: &ImageRecord) -> Option<String> {
        let layers: Vec<PathBuf> = image
            .layers
            .iter()
            .filter_map(|d| fs::canonicalize(self.layer_path(d)).ok())
            .collect();
        stage06_overlay::overlay::lowers_in_use(&self.root)
            .into_iter()
            .find(|(_, lowers)| lowers.iter().any(|l| layers.contains(l)))
            .map(|(id, _)| id.chars().take(12).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest made from a name, for tests.
    fn d(name: &str) -> Digest {
        Digest::sha256_of(name.as_bytes())
    }

    fn record(tag: &str, layers: &[&str]) -> ImageRecord {
        ImageRecord {
            repository: "docker.io/library/alpine".into(),
            tag: tag.into(),
            digest: d(&format!("manifest {tag}")),
            config: d(&format!("config {tag}")),
            layers: layers.iter().map(|l| d(l)).collect(),
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
        let by_digest = d("manifest 3.20");
        assert_eq!(
            store
                .find(repo, None, Some(&by_digest))
                .unwrap()
                .unwrap()
                .tag,
            "3.20"
        );
        assert!(store.find(repo, Some("edge"), None).unwrap().is_none());
        assert_eq!(record("3.20", &[]).id(), &d("config 3.20").hex()[..12]);
    }

    #[test]
    fn a_re_pull_replaces_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add(record("latest", &["a"])).unwrap();
        let mut newer = record("latest", &["b"]);
        newer.digest = d("newer");
        store.add(newer).unwrap();
        assert_eq!(store.images().unwrap().len(), 1);
    }

    #[test]
    fn rmi_removes_only_what_no_other_image_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for layer in ["shared", "own"] {
            store.write_blob(&d(layer), b"x").unwrap();
            fs::create_dir_all(store.layer_path(&d(layer))).unwrap();
        }
        store.add(record("one", &["shared", "own"])).unwrap();
        store.add(record("two", &["shared"])).unwrap();
        let repo = "docker.io/library/alpine";
        store.remove(repo, Some("one"), None, "alpine:one").unwrap();
        assert!(store.has_layer(&d("shared")) && store.has_blob(&d("shared")));
        assert!(!store.has_layer(&d("own")) && !store.has_blob(&d("own")));
        let err = store
            .remove(repo, Some("one"), None, "alpine:one")
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"no such image: alpine:one; `images` lists those in the store");
    }

    #[test]
    fn an_image_in_use_by_a_live_container_is_not_removed_a_dead_ones_is() {
        use stage01_uts::{ContainerId, Context, Primitive, Process};
        use stage06_overlay::overlay::{Layers, Overlay};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::create_dir_all(store.layer_path(&d("a"))).unwrap();
        store.add(record("latest", &["a"])).unwrap();
        let mut ctx = Context::new(
            ContainerId::generate(),
            Process::new(vec!["x".into()], vec![]),
        );
        let layers = Layers {
            lowers: vec![store.layer_path(&d("a"))],
            store: dir.path().into(),
            hold: None,
            keep: false,
            volatile: true,
        };
        let spec = stage01_uts::spec::minimal(vec![], vec![]);
        let mut overlay = Overlay::from_spec(&spec, layers);
        overlay.prepare(&mut ctx).unwrap();
        let err = store
            .remove("docker.io/library/alpine", None, None, "alpine")
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InUse { ref container, .. } if container == &ctx.id.as_str()[..12]),
            "{err}"
        );
        // Its runtime is gone (what SIGKILL leaves: the directory, no lock).
        drop(overlay);
        store
            .remove("docker.io/library/alpine", None, None, "alpine")
            .unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("containers")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_blob_read_back_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"{}");
        store.write_blob(&digest, b"{}").unwrap();
        assert_eq!(store.read_blob(&digest, 10).unwrap(), b"{}");
        assert!(matches!(
            store.read_blob(&digest, 1),
            Err(StoreError::Damaged { .. })
        ));
        fs::write(store.blob_path(&digest), "{ }").unwrap();
        assert!(matches!(
            store.read_blob(&digest, 10),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn the_store_is_root_only() {
        use std::os::unix::fs::MetadataExt;
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("store");
        Store::open(&root).unwrap();
        for dir in ["", "blobs", "blobs/sha256", "layers", "tmp", "containers"] {
            let mode = fs::metadata(root.join(dir)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{dir}");
        }
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
