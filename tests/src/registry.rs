//! A real registry server for the image suites, and images built by the
//! suite itself.
//!
//! The server is Debian's `docker-registry` (the CNCF distribution
//! registry), started on 127.0.0.1 on a free port with a storage directory
//! of its own, and killed when dropped. Images are written as OCI image
//! layouts (tar layers, gzip, zstd or none; config; manifest; index) and
//! pushed with `skopeo copy`, a client from outside the project.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A registry server on loopback.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `(user, password)` when it asks for them (htpasswd).
    pub credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that asks for HTTP basic credentials.
    pub fn start_with_credentials(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user.to_owned(), password.to_owned())))
    }

    fn launch(credentials: Option<(String, String)>) -> Registry {
        let dir = tempfile::tempdir().expect("a directory for the registry");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is missing: run scripts/setup-test-env.sh (apache2-utils)");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: myruntime-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("docker-registry is missing: run scripts/setup-test-env.sh");
        let registry = Registry {
            addr,
            credentials,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start on {}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// `127.0.0.1:PORT/NAME`.
    pub fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// Push an image layout's tag `tag` as `name` (`repo:tag`), all its
    /// platforms.
    pub fn push(&self, layout: &Layout, tag: &str, name: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "copy",
            "--all",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ]);
        if let Some((user, password)) = &self.credentials {
            cmd.arg(format!("--dest-creds={user}:{password}"));
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.dir.path().display()))
            .arg(format!("docker://{}/{name}", self.addr))
            .output()
            .expect("skopeo is missing: run scripts/setup-test-env.sh");
        assert!(
            out.status.success(),
            "skopeo could not push {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Overwrite the stored bytes of a blob (same length): the registry then
    /// serves content that does not match its digest.
    pub fn corrupt_blob(&self, digest: &str) {
        let hex = digest.trim_start_matches("sha256:");
        let path = self
            .dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        let mut bytes = std::fs::read(&path).expect("the stored blob");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        bytes[last / 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// A layer's uncompressed tar, built entry by entry (names written as given,
/// `..` included: the escape tests need what a hostile image would hold).
#[derive(Debug, Clone, Default)]
pub struct Layer {
    tar: Vec<u8>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer::default()
    }

    /// Every file of a directory (a rootfs), under `/`.
    pub fn from_dir(dir: &Path) -> Layer {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder.append_dir_all(".", dir).expect("tar the directory");
        let mut tar = builder.into_inner().unwrap();
        // The two zero blocks that end an archive are added when the layer is
        // finished, after any other entries.
        tar.truncate(tar.len().saturating_sub(1024));
        Layer { tar }
    }

    #[allow(clippy::too_many_arguments)]
    fn raw(
        mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Layer {
        let mut header = tar::Header::new_gnu();
        {
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        self.tar.extend_from_slice(header.as_bytes());
        self.tar.extend_from_slice(data);
        self.tar.resize(self.tar.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(self, name: &str, data: &str) -> Layer {
        self.file_bytes(name, data.as_bytes())
    }

    pub fn file_bytes(self, name: &str, data: &[u8]) -> Layer {
        self.raw(name, tar::EntryType::Regular, "", data, 0o644, 0, 0)
    }

    pub fn file_owned(self, name: &str, data: &str, mode: u32, uid: u64, gid: u64) -> Layer {
        self.raw(
            name,
            tar::EntryType::Regular,
            "",
            data.as_bytes(),
            mode,
            uid,
            gid,
        )
    }

    pub fn dir(self, name: &str) -> Layer {
        self.raw(name, tar::EntryType::Directory, "", b"", 0o755, 0, 0)
    }

    pub fn dir_owned(self, name: &str, mode: u32, uid: u64, gid: u64) -> Layer {
        self.raw(name, tar::EntryType::Directory, "", b"", mode, uid, gid)
    }

    pub fn file_bytes_owned(self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Layer {
        self.raw(name, tar::EntryType::Regular, "", data, mode, uid, gid)
    }

    /// A block device node `major:minor`, mode 0666.
    pub fn block_device(mut self, name: &str, major: u32, minor: u32) -> Layer {
        self = self.raw(name, tar::EntryType::Block, "", b"", 0o666, 0, 0);
        self.set_device(major, minor)
    }

    /// A PAX extended header that claims `size` bytes of records, and has
    /// none: a reader that reads extension records whole waits for (or
    /// allocates) all of them.
    pub fn pax_header_claiming(mut self, size: u64) -> Layer {
        self = self.raw(
            "PaxHeaders/bomb",
            tar::EntryType::XHeader,
            "",
            b"",
            0o644,
            0,
            0,
        );
        let at = self.tar.len() - 512;
        let mut header = tar::Header::new_gnu();
        header.as_mut_bytes().copy_from_slice(&self.tar[at..]);
        header.set_size(size);
        header.set_cksum();
        self.tar[at..].copy_from_slice(header.as_bytes());
        self
    }

    fn set_device(mut self, major: u32, minor: u32) -> Layer {
        let at = self.tar.len() - 512;
        let mut header = tar::Header::new_gnu();
        header.as_mut_bytes().copy_from_slice(&self.tar[at..]);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_cksum();
        self.tar[at..].copy_from_slice(header.as_bytes());
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Layer {
        self.raw(name, tar::EntryType::Symlink, target, b"", 0o777, 0, 0)
    }

    /// A character device node `major:minor`, mode 0666.
    pub fn char_device(mut self, name: &str, major: u32, minor: u32) -> Layer {
        self = self.raw(name, tar::EntryType::Char, "", b"", 0o666, 0, 0);
        // The device numbers live in the header just written.
        self.set_device(major, minor)
    }

    /// A file carrying the extended attribute `key=value`, as GNU tar and
    /// docker write it: a PAX header with `SCHILY.xattr.KEY` before the entry.
    pub fn file_with_xattr(self, name: &str, data: &str, key: &str, value: &str) -> Layer {
        self.file_bytes_with_xattr(name, data.as_bytes(), key, value.as_bytes())
    }

    /// [`Layer::file_with_xattr`], with any bytes for data and value.
    pub fn file_bytes_with_xattr(
        mut self,
        name: &str,
        data: &[u8],
        key: &str,
        value: &[u8],
    ) -> Layer {
        let mut body = format!("SCHILY.xattr.{key}=").into_bytes();
        body.extend_from_slice(value);
        body.push(b'\n');
        // A PAX record's length counts its own digits.
        let mut len = body.len() + 2;
        while format!("{len} ").len() + body.len() != len {
            len += 1;
        }
        let mut record = format!("{len} ").into_bytes();
        record.extend_from_slice(&body);
        self = self.raw(
            "PaxHeaders/x",
            tar::EntryType::XHeader,
            "",
            &record,
            0o644,
            0,
            0,
        );
        self.file_bytes(name, data)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Layer {
        self.raw(name, tar::EntryType::Link, target, b"", 0o644, 0, 0)
    }

    /// An OCI whiteout: `dir/.wh.name` deletes `dir/name` of lower layers.
    pub fn whiteout(self, path: &str) -> Layer {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let entry = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&entry, "")
    }

    /// An opaque directory: lower layers' contents of `dir` are hidden.
    pub fn opaque(self, dir: &str) -> Layer {
        self.file(&format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), "")
    }

    fn finish(&self) -> Vec<u8> {
        let mut tar = self.tar.clone();
        tar.extend_from_slice(&[0; 1024]);
        tar
    }

    /// The layer as a gzip-compressed tar archive (a blob a registry serves).
    pub fn gzip(&self) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&self.finish()).unwrap();
        enc.finish().unwrap()
    }
}

/// What an image built here holds.
pub struct ImageSpec {
    pub layers: Vec<(Layer, Compression)>,
    /// The image config's `config` object (Cmd, Entrypoint, Env, ...).
    pub config: Value,
    pub architecture: String,
}

impl ImageSpec {
    pub fn new(config: Value) -> ImageSpec {
        ImageSpec {
            layers: Vec::new(),
            config,
            architecture: "amd64".into(),
        }
    }

    pub fn layer(mut self, layer: Layer, compression: Compression) -> ImageSpec {
        self.layers.push((layer, compression));
        self
    }

    pub fn architecture(mut self, arch: &str) -> ImageSpec {
        self.architecture = arch.into();
        self
    }
}

/// An OCI image layout on disk, holding one or more images.
pub struct Layout {
    dir: tempfile::TempDir,
}

/// Digests of an image written into a layout.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().expect("a layout directory");
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    fn blob(&self, bytes: &[u8]) -> String {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(self.dir.path().join("blobs/sha256").join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    }

    /// Write an image (blobs and manifest), without tagging it.
    pub fn image(&self, spec: &ImageSpec) -> (Value, Written) {
        let mut diff_ids = Vec::new();
        let mut layers = Vec::new();
        let mut digests = Vec::new();
        for (layer, compression) in &spec.layers {
            let tar = layer.finish();
            diff_ids.push(format!("sha256:{:x}", Sha256::digest(&tar)));
            let (bytes, media) = match compression {
                Compression::Gzip => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(&tar).unwrap();
                    (
                        enc.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Compression::Zstd => (
                    ruzstd::encoding::compress_to_vec(
                        &tar[..],
                        ruzstd::encoding::CompressionLevel::Fastest,
                    ),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
                Compression::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
            };
            let digest = self.blob(&bytes);
            layers.push(json!({"mediaType": media, "digest": digest, "size": bytes.len()}));
            digests.push(digest);
        }
        let config = serde_json::to_vec(&json!({
            "architecture": spec.architecture, "os": "linux", "config": spec.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = self.blob(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let manifest_digest = self.blob(&manifest);
        let descriptor = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "platform": {"os": "linux", "architecture": spec.architecture},
        });
        (
            descriptor,
            Written {
                manifest: manifest_digest,
                config: config_digest,
                layers: digests,
            },
        )
    }

    /// Tag one image.
    pub fn tag(&self, spec: &ImageSpec, tag: &str) -> Written {
        let (mut descriptor, written) = self.image(spec);
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.set_index(vec![descriptor]);
        written
    }

    /// Tag several images (one per platform) together: a multi-platform
    /// image index.
    pub fn tag_index(&self, specs: &[ImageSpec], tag: &str) -> Vec<Written> {
        let mut entries = Vec::new();
        let mut written = Vec::new();
        for spec in specs {
            let (descriptor, w) = self.image(spec);
            entries.push(descriptor);
            written.push(w);
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries,
        }))
        .unwrap();
        let index_digest = self.blob(&index);
        self.set_index(vec![json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        })]);
        written
    }

    fn set_index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}
