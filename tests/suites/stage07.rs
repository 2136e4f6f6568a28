//! Stage 07 suite: images from a real registry.
//!
//! Runs `$RUNTIME_BIN` (default: stage07-image) as `BIN pull IMAGE`,
//! `BIN images`, `BIN rmi IMAGE`, `BIN run IMAGE [COMMAND...]`, against
//! Debian's `docker-registry` on 127.0.0.1, started by each test on a free
//! port and filled with images the test builds (and pushes with skopeo).
//! Every test has a store of its own (`MYRUNTIME_ROOT`). As root:
//!
//! ```sh
//! make test-stage STAGE=07 [BIN=/path/to/yours]
//! ```

use std::path::Path;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use harness::hostile::{self, Hostile, Response};
use harness::registry::{Compression, ImageSpec, Layer, Layout, Registry, Written};
use harness::{Rootfs, Run, Runtime, host};
use rstest::{fixture, rstest};
use serde_json::json;

#[fixture]
fn rt() -> Runtime {
    // The containers of this suite run images, never a --rootfs.
    Runtime::for_suite("stage07-image").without_rootfs()
}

/// The runtime under test, with a store of the test's own.
struct Client {
    rt: Runtime,
    store: tempfile::TempDir,
}

impl Client {
    fn new(rt: Runtime) -> Client {
        Client {
            rt,
            store: tempfile::tempdir().unwrap(),
        }
    }

    fn verb(&self, verb: &str) -> Run {
        self.rt
            .verb(verb)
            .env("MYRUNTIME_ROOT", &self.store.path().to_string_lossy())
    }

    fn pull(&self, image: &str) -> harness::Outcome {
        self.verb("pull").arg(image).output()
    }
}

/// A test's own store and registry.
struct World {
    client: Client,
    registry: Registry,
}

impl std::ops::Deref for World {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl World {
    fn new(rt: Runtime) -> World {
        World::with(rt, Registry::start())
    }

    fn with(rt: Runtime, registry: Registry) -> World {
        World {
            client: Client::new(rt),
            registry,
        }
    }

    fn images(&self) -> String {
        let out = self.verb("images").output();
        out.expect_code(0, "images lists the store");
        out.stdout()
    }

    /// What the store holds: its image list, blobs and layers (to check that
    /// a failed pull left it as it was).
    fn contents(&self) -> (String, Vec<String>, Vec<String>) {
        let (index, blobs, layers, _) = store_contents(self.store.path());
        (index, blobs, layers)
    }

    fn layer_dirs(&self) -> usize {
        self.contents().2.len()
    }

    /// What is under the store's containers/ (directories and their locks).
    fn containers(&self) -> Vec<String> {
        store_contents(self.store.path()).3
    }

    fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.store.path().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A store's image list, blobs, layers and containers/ entries.
fn store_contents(store: &Path) -> (String, Vec<String>, Vec<String>, Vec<String>) {
    let list = |dir: &str| host::names_in(&store.join(dir));
    let index = std::fs::read_to_string(store.join("images.json")).unwrap_or_default();
    (
        index,
        list("blobs/sha256"),
        list("layers"),
        list("containers"),
    )
}

/// The test rootfs (busybox or Alpine, with the probe at /probe) as one layer.
fn base_layer() -> Layer {
    Layer::from_dir(Rootfs::shared().path())
}

fn base_image(config: serde_json::Value) -> ImageSpec {
    ImageSpec::new(config).layer(base_layer(), Compression::Gzip)
}

/// Build and push `spec` as `name:tag`; returns its digests.
fn push(world: &World, spec: &ImageSpec, name: &str, tag: &str) -> Written {
    let layout = Layout::new();
    let written = layout.tag(spec, tag);
    world.registry.push(&layout, tag, &format!("{name}:{tag}"));
    written
}

/// Push `spec` as `name:latest` and pull it; returns the image to run.
fn pulled(world: &World, spec: &ImageSpec, name: &str) -> String {
    push(world, spec, name, "latest");
    let image = world.registry.name(name);
    world.pull(&image).expect_code(0, "the image pulls");
    image
}

/// `/probe stat PATH` in a container of `image`.
fn stat(world: &World, image: &str, path: &str) -> serde_json::Value {
    world
        .verb("run")
        .args([image, "/probe", "stat", path])
        .output()
        .json()
}

/// Milestone 07.1: pull from a registry, list, run with the image's config.
mod m1_pull_and_run {
    use super::*;

    #[rstest]
    fn a_pulled_image_is_listed_and_runs(rt: Runtime) {
        let world = World::new(rt);
        let written = push(
            &world,
            &base_image(json!({"Cmd": ["/probe", "exit", "0"]})),
            "tests/base",
            "1.0",
        );
        let image = world.registry.name("tests/base:1.0");
        world.pull(&image).expect_code(0, "the image pulls");
        let listed = world.images();
        let id = &written.config.trim_start_matches("sha256:")[..12];
        assert!(
            listed.contains("tests/base") && listed.contains("1.0") && listed.contains(id),
            "images must list the repository, tag and id ({id}):\n{listed}"
        );
        world
            .verb("run")
            .arg(&image)
            .output()
            .expect_code(0, "the image's Cmd runs");
        let by_digest = format!("{}@{}", world.registry.name("tests/base"), written.manifest);
        world
            .pull(&by_digest)
            .expect_code(0, "an image pulls by digest too");
    }

    #[rstest]
    fn run_applies_entrypoint_cmd_env_workdir_and_user(rt: Runtime) {
        let world = World::new(rt);
        let config = json!({
            "Entrypoint": ["/probe"], "Cmd": ["report"],
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes"],
            "WorkingDir": "/work", "User": "nobody",
        });
        let image = pulled(&world, &base_image(config), "tests/configured");
        let report = world.verb("run").arg(&image).output().report();
        harness::expect_eq!(
            report.argv.get(1).map(String::as_str),
            Some("report"),
            "Entrypoint then Cmd"
        );
        harness::expect_eq!(
            report.env.get("FROM_IMAGE").map(String::as_str),
            Some("yes"),
            "the image's Env"
        );
        harness::expect_eq!(report.cwd, "/work", "the image's WorkingDir");
        harness::expect_eq!(report.uid, 65534, "the image's User");

        let out = world
            .verb("run")
            .args(["-e", "FROM_IMAGE=cli", "-w", "/tmp", "--user", "0"])
            .arg(&image)
            .output();
        let report = out.report();
        harness::expect_eq!(
            report.env.get("FROM_IMAGE").map(String::as_str),
            Some("cli"),
            "-e wins"
        );
        harness::expect_eq!(
            (report.cwd.as_str(), report.uid),
            ("/tmp", 0),
            "-w and --user win"
        );

        world
            .verb("run")
            .args([&image, "exit", "7"])
            .output()
            .expect_code(7, "a command given replaces Cmd (the Entrypoint stays)");
    }

    #[rstest]
    fn run_pulls_an_image_it_does_not_have(rt: Runtime) {
        let world = World::new(rt);
        push(
            &world,
            &base_image(json!({"Cmd": ["/probe", "exit", "3"]})),
            "tests/lazy",
            "latest",
        );
        world
            .verb("run")
            .arg(world.registry.name("tests/lazy"))
            .output()
            .expect_code(3, "run pulls the missing image, then runs it");
        assert!(world.images().contains("tests/lazy"));
    }

    #[rstest]
    fn credentials_come_from_the_docker_config(rt: Runtime) {
        let world = World::with(rt, Registry::start_with_credentials("tester", "s3cret"));
        push(
            &world,
            &base_image(json!({"Cmd": ["/probe", "exit", "0"]})),
            "tests/private",
            "latest",
        );
        let image = world.registry.name("tests/private");
        let docker = tempfile::tempdir().unwrap();
        let config = |password: &str| {
            use base64::Engine;
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("tester:{password}"));
            let file = json!({"auths": {world.registry.addr.clone(): {"auth": auth}}});
            std::fs::write(docker.path().join("config.json"), file.to_string()).unwrap();
        };
        let dir = docker.path().to_string_lossy().into_owned();
        let none = world
            .verb("pull")
            .env("DOCKER_CONFIG", &dir)
            .arg(&image)
            .output();
        harness::expect_ne!(
            none.code(),
            0,
            "without credentials the registry refuses\n{}",
            none.describe()
        );
        config("wrong");
        let wrong = world
            .verb("pull")
            .env("DOCKER_CONFIG", &dir)
            .arg(&image)
            .output();
        wrong.expect_refused(&["credentials"]);
        config("s3cret");
        world
            .verb("pull")
            .env("DOCKER_CONFIG", &dir)
            .arg(&image)
            .output()
            .expect_code(0, "with the right credentials the image pulls");
    }
}

/// Milestone 07.2: layers: whiteouts, compressions, metadata, shared once.
mod m2_layers {
    use super::*;

    #[rstest]
    fn whiteouts_and_opaque_directories_apply(rt: Runtime) {
        let world = World::new(rt);
        let lower = Layer::new()
            .dir("data/")
            .file("data/old", "old")
            .dir("etc/")
            .file("etc/removed", "x")
            .file("etc/kept", "x");
        let upper = Layer::new()
            .whiteout("etc/removed")
            .dir("data/")
            .opaque("data")
            .file("data/new", "new");
        let spec = base_image(json!({"Cmd": ["/probe", "ls", "/data"]}))
            .layer(lower, Compression::Gzip)
            .layer(upper, Compression::Gzip);
        let image = pulled(&world, &spec, "tests/whiteouts");
        let data = world.verb("run").arg(&image).output();
        harness::expect_eq!(
            data.json::<serde_json::Value>()["entries"],
            json!(["new"]),
            "an opaque /data hides the lower one"
        );
        let etc = world
            .verb("run")
            .args([&image, "/probe", "ls", "/etc"])
            .output();
        let entries = etc.json::<serde_json::Value>()["entries"].clone();
        assert!(entries.as_array().unwrap().iter().any(|e| e == "kept"));
        assert!(
            !entries.as_array().unwrap().iter().any(|e| e == "removed"),
            "a whiteout hides /etc/removed: {entries}"
        );
    }

    #[rstest]
    #[case::zstd(Compression::Zstd)]
    #[case::uncompressed(Compression::None)]
    fn zstd_and_uncompressed_layers(rt: Runtime, #[case] compression: Compression) {
        let world = World::new(rt);
        let spec = ImageSpec::new(json!({"Cmd": ["/probe", "read", "/marker"]}))
            .layer(base_layer(), compression)
            .layer(Layer::new().file("marker", "12345"), compression);
        let image = pulled(&world, &spec, "tests/compressed");
        let out = world.verb("run").arg(&image).output();
        harness::expect_eq!(out.json::<serde_json::Value>()["bytes"], 5);
    }

    #[rstest]
    fn modes_owners_symlinks_and_hardlinks_survive(rt: Runtime) {
        let world = World::new(rt);
        let extra = Layer::new()
            .dir("srv/")
            .file_owned("srv/tool", "#!/bin/sh\n", 0o4751, 123, 456)
            .symlink("srv/link", "/srv/tool")
            .hardlink("srv/hard", "srv/tool");
        let spec = base_image(json!({"Cmd": ["true"]})).layer(extra, Compression::Gzip);
        let image = pulled(&world, &spec, "tests/meta");
        let tool = stat(&world, &image, "/srv/tool");
        harness::expect_eq!(
            (
                tool["mode"].clone(),
                tool["uid"].clone(),
                tool["gid"].clone()
            ),
            (json!(0o4751), json!(123), json!(456))
        );
        harness::expect_eq!(stat(&world, &image, "/srv/link")["kind"], "symlink");
        harness::expect_eq!(
            stat(&world, &image, "/srv/hard")["mode"],
            json!(0o4751),
            "a hard link is the same file"
        );
    }

    #[rstest]
    fn xattrs_and_device_nodes_survive(rt: Runtime) {
        let world = World::new(rt);
        let extra = Layer::new()
            .dir("srv/")
            .file_with_xattr("srv/tagged", "x", "user.myruntime.note", "kept")
            .char_device("srv/null", 1, 3);
        let spec = base_image(json!({"Cmd": ["true"]})).layer(extra, Compression::Gzip);
        let image = pulled(&world, &spec, "tests/xattrs");
        let tagged = stat(&world, &image, "/srv/tagged");
        harness::expect_eq!(
            tagged["xattrs"]["user.myruntime.note"],
            "kept",
            "the layer's xattr is on the file: {tagged}"
        );
        let null = stat(&world, &image, "/srv/null");
        harness::expect_eq!(
            (
                null["kind"].clone(),
                null["rdev_major"].clone(),
                null["rdev_minor"].clone()
            ),
            (json!("char"), json!(1), json!(3)),
            "{null}"
        );
    }

    #[rstest]
    fn a_layer_shared_by_two_images_is_stored_once(rt: Runtime) {
        let world = World::new(rt);
        let layout = Layout::new();
        let one = layout.tag(
            &base_image(json!({"Cmd": ["true"]}))
                .layer(Layer::new().file("one", "1"), Compression::Gzip),
            "1",
        );
        world.registry.push(&layout, "1", "tests/shared:1");
        let two = layout.tag(
            &base_image(json!({"Cmd": ["true"]}))
                .layer(Layer::new().file("two", "2"), Compression::Gzip),
            "2",
        );
        world.registry.push(&layout, "2", "tests/shared:2");
        harness::expect_eq!(
            one.layers[0],
            two.layers[0],
            "the test built the same base layer twice"
        );
        world
            .pull(&world.registry.name("tests/shared:1"))
            .expect_code(0, "first image");
        world
            .pull(&world.registry.name("tests/shared:2"))
            .expect_code(0, "second image");
        harness::expect_eq!(
            world.layer_dirs(),
            3,
            "two own layers and one shared, stored once"
        );
    }
}

/// Milestone 07.3: indexes resolve to the host's platform, or `--platform`.
mod m3_platforms {
    use super::*;

    fn multi(world: &World) -> String {
        let layout = Layout::new();
        let specs: Vec<ImageSpec> = ["amd64", "arm64"]
            .iter()
            .map(|arch| {
                base_image(json!({"Cmd": ["cat", "/arch"]}))
                    .layer(Layer::new().file("arch", arch), Compression::Gzip)
                    .architecture(arch)
            })
            .collect();
        layout.tag_index(&specs, "latest");
        world.registry.push(&layout, "latest", "tests/multi:latest");
        world.registry.name("tests/multi")
    }

    #[rstest]
    fn an_index_resolves_to_this_hosts_platform(rt: Runtime) {
        let world = World::new(rt);
        let image = multi(&world);
        world.pull(&image).expect_code(0, "the index pulls");
        let out = world.verb("run").arg(&image).output();
        harness::expect_eq!(out.stdout(), "amd64");
    }

    #[rstest]
    fn platform_chooses_another(rt: Runtime) {
        let world = World::new(rt);
        let image = multi(&world);
        world
            .verb("pull")
            .args(["--platform", "linux/arm64", &image])
            .output()
            .expect_code(0, "arm64 pulls");
        // The shared base layer is amd64 busybox, so `cat` still runs here.
        let out = world.verb("run").arg(&image).output();
        harness::expect_eq!(out.stdout(), "arm64");
        let none = world
            .verb("pull")
            .args(["--platform", "linux/s390x", &image])
            .output();
        harness::expect_ne!(none.code(), 0);
        assert!(
            none.stderr().contains("linux/s390x") && none.stderr().contains("linux/arm64"),
            "the message must say what the index has\n{}",
            none.describe()
        );
    }
}

/// Milestone 07.4: what a registry or an image does wrong is reported in one
/// line, and the store is left as it was; nothing is written outside a layer.
mod m4_bad_images {
    use super::*;

    fn refused(world: &World, image: &str, what: &str) {
        let before = world.contents();
        let out = world.pull(image);
        harness::expect_ne!(out.code(), 0, "must fail\n{}", out.describe());
        assert!(
            out.stderr().contains(what),
            "the message must say {what:?}\n{}",
            out.describe()
        );
        harness::expect_eq!(
            out.stderr()
                .trim_end()
                .lines()
                .last()
                .map(|l| l.contains(what)),
            Some(true)
        );
        let after = world.contents();
        harness::expect_eq!(before.0, after.0, "the image list changed");
        harness::expect_eq!(world.tmp_entries(), 0, "half-written files were left");
    }

    #[rstest]
    fn an_unknown_image_or_tag(rt: Runtime) {
        let world = World::new(rt);
        push(
            &world,
            &base_image(json!({"Cmd": ["true"]})),
            "tests/known",
            "1",
        );
        refused(&world, &world.registry.name("tests/unknown"), "not found");
        refused(&world, &world.registry.name("tests/known:2"), "not found");
    }

    #[rstest]
    fn a_registry_that_is_down(rt: Runtime) {
        let world = World::new(rt);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        refused(&world, &format!("127.0.0.1:{port}/tests/x"), "cannot reach");
    }

    /// A store on a full disk: the download (random bytes, which do not
    /// compress) or the unpacking (zeros, which do) runs out of space.
    #[rstest]
    #[case::downloading(false)]
    #[case::unpacking(true)]
    fn a_disk_that_fills_up(rt: Runtime, #[case] compressible: bool) {
        let world = World::new(rt);
        let layer = if compressible {
            Layer::new().file_bytes("zeros", &vec![0; 4 << 20])
        } else {
            m6_robust_pulls::big_layer(4)
        };
        let spec = ImageSpec::new(json!({"Cmd": ["true"]})).layer(layer, Compression::Gzip);
        push(&world, &spec, "tests/big", "latest");
        let _full = harness::host::HostTmpfs::with_size(world.store.path(), "2m");
        refused(&world, &world.registry.name("tests/big"), "no space left");
        harness::expect_eq!(world.layer_dirs(), 0, "a half-unpacked layer was kept");
    }

    #[rstest]
    fn a_layer_that_does_not_match_its_digest(rt: Runtime) {
        let world = World::new(rt);
        let written = push(
            &world,
            &base_image(json!({"Cmd": ["true"]})),
            "tests/corrupt",
            "latest",
        );
        world.registry.corrupt_blob(&written.layers[0]);
        refused(&world, &world.registry.name("tests/corrupt"), "digest");
        assert!(
            !world
                .contents()
                .1
                .contains(&written.layers[0].trim_start_matches("sha256:").to_owned())
        );
    }

    #[rstest]
    fn a_layer_that_tries_to_escape(rt: Runtime) {
        let world = World::new(rt);
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().display().to_string();
        let hostile = Layer::new()
            .symlink("escape", &target)
            .file("escape/planted-through-symlink", "x")
            .file("../../../../../../../tmp/planted-by-dotdot", "x");
        let spec = base_image(json!({"Cmd": ["true"]})).layer(hostile, Compression::Gzip);
        push(&world, &spec, "tests/hostile", "latest");
        refused(&world, &world.registry.name("tests/hostile"), "outside");
        assert!(
            !outside.path().join("planted-through-symlink").exists(),
            "a layer wrote outside its directory"
        );
        assert!(
            !Path::new("/tmp/planted-by-dotdot").exists(),
            "a layer wrote outside its directory"
        );
    }
}

/// Milestone 07.5: rmi removes what no other image uses.
mod m5_rmi {
    use super::*;

    #[rstest]
    fn rmi_keeps_shared_layers_and_refuses_unknown_images(rt: Runtime) {
        let world = World::new(rt);
        let layout = Layout::new();
        layout.tag(
            &base_image(json!({"Cmd": ["true"]}))
                .layer(Layer::new().file("a", "a"), Compression::Gzip),
            "a",
        );
        world.registry.push(&layout, "a", "tests/rmi:a");
        layout.tag(&base_image(json!({"Cmd": ["true"]})), "b");
        world.registry.push(&layout, "b", "tests/rmi:b");
        world
            .pull(&world.registry.name("tests/rmi:a"))
            .expect_code(0, "a");
        world
            .pull(&world.registry.name("tests/rmi:b"))
            .expect_code(0, "b");
        harness::expect_eq!(world.layer_dirs(), 2);
        world
            .verb("rmi")
            .arg(world.registry.name("tests/rmi:a"))
            .output()
            .expect_code(0, "rmi a");
        harness::expect_eq!(
            world.layer_dirs(),
            1,
            "the base layer stays for tests/rmi:b"
        );
        assert!(!world.images().contains(" a "));
        world
            .verb("rmi")
            .arg(world.registry.name("tests/rmi:b"))
            .output()
            .expect_code(0, "rmi b");
        harness::expect_eq!(
            world.contents(),
            (world.contents().0, vec![], vec![]),
            "nothing left"
        );
        let unknown = world.verb("rmi").arg("tests/never-pulled").output();
        harness::expect_ne!(unknown.code(), 0);
        assert!(
            unknown.stderr().contains("no such image"),
            "{}",
            unknown.describe()
        );
    }

    #[rstest]
    fn an_image_in_use_is_not_removed(rt: Runtime) {
        let world = World::new(rt);
        push(
            &world,
            &base_image(json!({"Cmd": ["/probe", "signals"]})),
            "tests/busy",
            "latest",
        );
        let image = world.registry.name("tests/busy");
        world.pull(&image).expect_code(0, "pulled");
        let mut running = world.verb("run").arg(&image).spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let refused = world.verb("rmi").arg(&image).output();
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish();
        harness::expect_ne!(refused.code(), 0);
        assert!(
            refused.stderr().contains("in use"),
            "{}",
            refused.describe()
        );
        world
            .verb("rmi")
            .arg(&image)
            .output()
            .expect_code(0, "once the container is gone");
    }

    /// Under load: `rmi` racing `run IMAGE`, hundreds of times.
    /// `run` holds the store from the moment it looks its image up until its
    /// container's layers are recorded, so each race ends one of two ways:
    /// `rmi` first (the run pulls the image again) or the run first (`rmi`
    /// refuses: in use). Never a container on missing or emptied layers.
    #[rstest]
    fn rmi_never_removes_what_a_starting_container_chose(rt: Runtime) {
        let world = World::new(rt);
        let spec = base_image(json!({"Cmd": ["/probe", "read", "/marker"]}))
            .layer(Layer::new().file("marker", "12345"), Compression::Gzip);
        let image = pulled(&world, &spec, "tests/race");
        let (mut removed, mut in_use) = (0, 0);
        for round in 0..200u64 {
            let run = world.verb("run").arg(&image).spawn();
            // rmi from at once to 15 ms later: before, during and after the
            // run chooses its layers.
            std::thread::sleep(std::time::Duration::from_micros((round * 761) % 15_000));
            let rmi = world.verb("rmi").arg(&image).output();
            let ran = run.finish();
            ran.expect_code(0, "the container runs, whichever came first");
            harness::expect_eq!(
                ran.json::<serde_json::Value>()["bytes"],
                5,
                "the container's image was not whole\n{}",
                ran.describe()
            );
            if rmi.code() == 0 {
                removed += 1;
            } else if rmi.stderr().contains("no such image") {
                // The last round's rmi won, and this run had not pulled
                // the image back yet.
                rmi.expect_refused(&["no such image"]);
            } else {
                rmi.expect_refused(&["in use"]);
                in_use += 1;
            }
        }
        eprintln!("rmi won {removed} races, was refused {in_use} times");
        harness::expect_eq!(
            world.containers(),
            Vec::<String>::new(),
            "containers were left"
        );
    }
}

/// Milestone 07.6: pulls survive being killed, run side by side, and stream.
mod m6_robust_pulls {
    use super::*;

    /// A layer of `mb` mebibytes that does not compress.
    /// `mb` MiB of bytes that do not compress.
    pub(super) fn big_layer(mb: usize) -> Layer {
        let mut data = Vec::with_capacity(mb << 20);
        let mut x: u64 = 0x9e3779b97f4a7c15;
        while data.len() < mb << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        Layer::new().file_bytes("big", &data)
    }

    #[rstest]
    fn a_killed_pull_lists_nothing_and_the_next_one_finishes(rt: Runtime) {
        let world = World::new(rt);
        let spec = base_image(json!({"Cmd": ["/probe", "exit", "0"]}))
            .layer(big_layer(96), Compression::None);
        push(&world, &spec, "tests/killed", "latest");
        let image = world.registry.name("tests/killed");
        let mut running = world.verb("pull").arg(&image).spawn();
        let tmp = world.store.path().join("tmp");
        running.wait_for("to start writing the layer", || {
            std::fs::read_dir(&tmp)
                .map(|d| d.count() > 0)
                .unwrap_or(false)
        });
        running.signal(nix::sys::signal::Signal::SIGKILL);
        drop(running);
        assert!(
            !world.images().contains("tests/killed"),
            "a killed pull listed its image"
        );
        world
            .pull(&image)
            .expect_code(0, "pulling again finishes the job");
        harness::expect_eq!(world.tmp_entries(), 0, "what the killed pull left is gone");
        world
            .verb("run")
            .arg(&image)
            .output()
            .expect_code(0, "and the image runs");
    }

    #[rstest]
    fn concurrent_pulls_of_one_image(rt: Runtime) {
        let world = World::new(rt);
        push(
            &world,
            &base_image(json!({"Cmd": ["true"]})),
            "tests/concurrent",
            "latest",
        );
        let image = world.registry.name("tests/concurrent");
        let pulls: Vec<_> = (0..3)
            .map(|_| world.verb("pull").arg(&image).spawn())
            .collect();
        for pull in pulls {
            pull.finish()
                .expect_code(0, "every concurrent pull succeeds");
        }
        harness::expect_eq!(world.layer_dirs(), 1, "one copy of the layer");
        harness::expect_eq!(
            world.images().matches("tests/concurrent").count(),
            1,
            "listed once"
        );
    }

    #[rstest]
    fn memory_stays_flat_as_layers_grow(rt: Runtime) {
        let world = World::new(rt);
        let small = base_image(json!({"Cmd": ["true"]})).layer(big_layer(4), Compression::None);
        let large = base_image(json!({"Cmd": ["true"]})).layer(big_layer(128), Compression::None);
        push(&world, &small, "tests/small", "latest");
        push(&world, &large, "tests/large", "latest");
        let peak = |image: &str| -> u64 {
            let out = world
                .verb("pull")
                .arg(world.registry.name(image))
                .output_with_peak_memory();
            out.0.expect_code(0, "the pull succeeds");
            out.1
        };
        let (small_kb, large_kb) = (peak("tests/small"), peak("tests/large"));
        assert!(
            large_kb < small_kb + 48 * 1024,
            "pulling a 128 MiB layer peaked at {large_kb} KiB, a 4 MiB one at {small_kb} KiB: \
             the layer is held in memory instead of streamed"
        );
    }
}

/// A registry that lies, and a store of the test's own holding a good image
/// from it: after every refusal the store must be as it was, and the good
/// image must still run.
struct Lab {
    client: Client,
    hostile: Hostile,
    good: String,
}

impl std::ops::Deref for Lab {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// The test rootfs as a gzip blob, made once per test process.
fn base_blob() -> &'static [u8] {
    static BLOB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOB.get_or_init(|| base_layer().gzip())
}

impl Lab {
    fn new(rt: Runtime) -> Lab {
        let lab = Lab {
            client: Client::new(rt),
            hostile: Hostile::start(),
            good: String::new(),
        };
        let (config, base) = parts();
        lab.serve(
            "tests/good",
            &hostile::manifest(&config, &[&base]),
            vec![config, base],
        );
        let good = lab.hostile.name("tests/good");
        lab.pull(&good)
            .expect_code(0, "a good image pulls from the same registry");
        Lab { good, ..lab }
    }

    /// Serve `manifest` as `repo:latest`, and `blobs` by their own digests.
    fn serve(&self, repo: &str, manifest: &serde_json::Value, blobs: Vec<Vec<u8>>) {
        let blobs: Vec<(String, Vec<u8>)> = blobs
            .into_iter()
            .map(|b| (hostile::sha256(&b), b))
            .collect();
        let refs: Vec<(&str, Vec<u8>)> =
            blobs.iter().map(|(d, b)| (d.as_str(), b.clone())).collect();
        self.hostile.image(repo, "latest", manifest, &refs);
    }

    /// [`Lab::refused`] for `repo` of this registry, pulled as it is.
    #[track_caller]
    fn refuses(&self, repo: &str, says: &[&str]) -> harness::Outcome {
        self.refused(&self.hostile.name(repo), &[], says)
    }

    /// Pull `image`: refused in one line naming each of `says`, with no
    /// control character on it; the store as it was; the good image runs.
    #[track_caller]
    fn refused(&self, image: &str, extra: &[&str], says: &[&str]) -> harness::Outcome {
        let before = store_contents(self.store.path());
        let out = self.verb("pull").args(extra).arg(image).output();
        refused_on_the_last_line(&out, says);
        assert!(
            !out.output.stderr.iter().any(|&b| b < 0x20 && b != b'\n'),
            "the message holds raw control characters\n{}",
            out.describe()
        );
        harness::expect_eq!(
            store_contents(self.store.path()),
            before,
            "a refused pull changed the store"
        );
        harness::expect_eq!(
            std::fs::read_dir(self.store.path().join("tmp"))
                .map(|d| d.count())
                .ok(),
            Some(0),
            "a refused pull left files in the store's tmp/"
        );
        self.verb("run")
            .arg(&self.good)
            .output()
            .expect_code(0, "the store's other images still run");
        out
    }
}

/// Refused, as the bad-input standard asks of a pull (whose progress lines
/// may come first): a non-zero status, nothing on stdout, the last line of
/// stderr naming each of `says`.
#[track_caller]
fn refused_on_the_last_line(out: &harness::Outcome, says: &[&str]) {
    let stderr = out.stderr();
    let last = stderr.trim_end().lines().last().unwrap_or("");
    let missing = says.iter().find(|s| !last.contains(*s));
    if out.code() == 0 || !out.stdout().is_empty() || missing.is_some() {
        panic!(
            "must be refused with a last line naming {missing:?}\n{}",
            out.describe()
        );
    }
}

/// The good image's parts: a config running `/probe exit 0`, and the base
/// layer; tests change what they lie about.
fn parts() -> (Vec<u8>, Vec<u8>) {
    (
        hostile::config(&["/probe", "exit", "0"]),
        base_blob().to_vec(),
    )
}

/// A digest that climbs out of the store, padded to look like one.
fn climbing_digest(to: &Path) -> String {
    format!("sha256:../../../../../../../..{}", to.display())
}

/// A host directory with a file in it: what a hostile image must not reach.
fn host_sentinel() -> (
    tempfile::TempDir,
    std::collections::BTreeMap<String, String>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/file"), "host").unwrap();
    let seen = tree(dir.path());
    (dir, seen)
}

/// Every path under `dir` with its mode, owner and content.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut all = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        let content = std::fs::read(&d).unwrap_or_default();
        all.insert(
            d.display().to_string(),
            format!(
                "{:o} {}:{} {content:?}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ),
        );
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()));
        }
    }
    all
}

/// Milestone 07.7: a registry that lies is refused in one line, and nothing
/// it sent reaches a path outside the store.
mod m7_hostile_registry {
    use super::*;

    #[rstest]
    fn digests_that_name_paths_are_refused_before_any_use(rt: Runtime) {
        let lab = Lab::new(rt);
        let (host, before) = host_sentinel();
        let (config, base) = parts();
        let mut m = hostile::manifest(&config, &[&base]);
        m["layers"][0]["digest"] = climbing_digest(&host.path().join("data")).into();
        lab.serve("tests/layer-path", &m, vec![config.clone(), base.clone()]);
        lab.refuses("tests/layer-path", &["is not a digest"]);
        let mut m = hostile::manifest(&config, &[&base]);
        m["config"]["digest"] = climbing_digest(&host.path().join("data/file")).into();
        lab.serve("tests/config-path", &m, vec![config, base]);
        lab.refuses("tests/config-path", &["is not a digest"]);
        harness::expect_eq!(tree(host.path()), before, "a host directory was touched");
        // rmi and run of such a name are refused by the reference grammar.
        let run = lab
            .verb("rmi")
            .arg(format!("{}@sha256:../../x", lab.hostile.name("tests/x")))
            .output();
        run.expect_refused(&["image reference"]);
    }

    #[rstest]
    fn a_digest_header_that_lies_is_refused(rt: Runtime) {
        let lab = Lab::new(rt);
        let (config, base) = parts();
        let m = hostile::manifest(&config, &[&base]);
        lab.serve("tests/lying-header", &m, vec![config.clone(), base.clone()]);
        let bytes = serde_json::to_vec(&m).unwrap();
        let path = "/v2/tests/lying-header/manifests/latest";
        for (header, says) in [
            (
                hostile::sha256(b"something else"),
                "does not match its digest",
            ),
            ("sha256:../../../../etc".to_owned(), "is not a digest"),
        ] {
            lab.hostile.route(
                path,
                Response::ok(bytes.clone(), "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", &header),
            );
            lab.refuses("tests/lying-header", &[says]);
        }
    }

    #[rstest]
    fn every_algorithm_is_verified(rt: Runtime) {
        use sha2::Digest as _;
        let lab = Lab::new(rt);
        let (config, base) = parts();
        let mut m = hostile::manifest(&config, &[&base]);
        // A sha512 digest of other bytes: checked all the same.
        let wrong = format!("sha512:{:x}", sha2::Sha512::digest(b"not the layer"));
        m["layers"][0]["digest"] = wrong.clone().into();
        lab.serve("tests/sha512", &m, vec![config]);
        lab.hostile.route(
            &format!("/v2/tests/sha512/blobs/{wrong}"),
            Response::ok(base, "application/octet-stream"),
        );
        lab.refuses("tests/sha512", &["does not match its digest"]);
    }

    #[rstest]
    fn bodies_past_their_bounds_are_refused_and_memory_stays_flat(rt: Runtime) {
        let lab = Lab::new(rt);
        let (config, base) = parts();
        let image = |repo: &str| lab.hostile.name(repo);
        // A manifest that never ends.
        lab.hostile
            .route("/v2/tests/endless/manifests/latest", Response::endless(200));
        // A config the manifest says is 1.5 GB: refused before it is asked for.
        let mut m = hostile::manifest(&config, &[&base]);
        m["config"]["size"] = 1_500_000_000u64.into();
        lab.serve("tests/big-config", &m, vec![config.clone(), base.clone()]);
        // A config that runs past the size the manifest gives.
        let m = hostile::manifest(&config, &[&base]);
        lab.serve("tests/long-config", &m, vec![base.clone()]);
        lab.hostile.route(
            &format!("/v2/tests/long-config/blobs/{}", hostile::sha256(&config)),
            Response::endless(200),
        );
        // A layer that runs past its size.
        let own = Layer::new().file("own", "layer").gzip();
        let long = hostile::manifest(&config, &[&own]);
        lab.serve("tests/long-layer", &long, vec![config.clone()]);
        lab.hostile.route(
            &format!("/v2/tests/long-layer/blobs/{}", hostile::sha256(&own)),
            Response::endless(200),
        );
        // An error whose message never ends.
        lab.hostile.route(
            "/v2/tests/endless-error/manifests/latest",
            Response::endless(500),
        );
        let cases = [
            (
                "tests/endless",
                "more than the 4194304 bytes a manifest may be",
            ),
            (
                "tests/big-config",
                "more than the 8388608 bytes a config may be",
            ),
            ("tests/long-config", "more than the"),
            ("tests/long-layer", "bytes the manifest gives"),
            ("tests/endless-error", "HTTP 500"),
        ];
        for (repo, says) in cases {
            let (out, peak) = lab.verb("pull").arg(image(repo)).output_with_peak_memory();
            refused_on_the_last_line(&out, &[says]);
            assert!(
                peak < 96 * 1024,
                "{repo}: the pull peaked at {peak} KiB: a body was read whole"
            );
        }
        let asked = lab.hostile.requests();
        assert!(
            !asked
                .iter()
                .any(|p| p.starts_with("/v2/tests/big-config/blobs/")),
            "a config larger than the limit was fetched: {asked:?}"
        );
        lab.refused(
            &image("tests/long-layer"),
            &[],
            &["bytes the manifest gives"],
        );
    }

    #[rstest]
    fn what_is_not_a_container_image_is_refused_by_name(rt: Runtime) {
        let lab = Lab::new(rt);
        let (config, base) = parts();
        let mut chart = hostile::manifest(&config, &[&base]);
        chart["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json".into();
        lab.serve("tests/chart", &chart, vec![config.clone(), base.clone()]);
        lab.refuses("tests/chart", &["not a container image"]);
        let mut odd = hostile::manifest(&config, &[&base]);
        odd["layers"][0]["mediaType"] = "application/x-\u{1b}[31mevil".into();
        lab.serve("tests/odd-layer", &odd, vec![config, base]);
        lab.refuses("tests/odd-layer", &["not a layer the runtime can unpack"]);
    }

    #[rstest]
    fn a_token_service_gets_credentials_only_as_safely_as_the_registry(rt: Runtime) {
        let lab = Lab::new(rt);
        let (config, base) = parts();
        let m = hostile::manifest(&config, &[&base]);
        let token_at = format!("http://{}/token", lab.hostile.addr);
        let challenge = format!(r#"Bearer realm="{token_at}",service="tests""#);
        let bytes = serde_json::to_vec(&m).unwrap();
        // The bearer flow Docker Hub uses: 401, a token, the manifest.
        lab.serve("tests/token", &m, vec![config.clone(), base.clone()]);
        for path in [
            "/v2/tests/token/manifests/latest".to_owned(),
            format!("/v2/tests/token/blobs/{}", hostile::sha256(&config)),
            format!("/v2/tests/token/blobs/{}", hostile::sha256(&base)),
        ] {
            let body = if path.ends_with("latest") {
                bytes.clone()
            } else if path.ends_with(&hostile::sha256(&config)) {
                config.clone()
            } else {
                base.clone()
            };
            lab.hostile.route(
                &path,
                Response::ok(body, "application/vnd.oci.image.manifest.v1+json")
                    .requiring("Bearer t0k3n", &challenge),
            );
        }
        lab.hostile.route(
            "/token",
            Response::ok(r#"{"token": "t0k3n"}"#, "application/json"),
        );
        lab.pull(&lab.hostile.name("tests/token"))
            .expect_code(0, "a bearer token from the registry's token service");
        // A token service that never stops talking.
        lab.hostile.route("/token", Response::endless(200));
        lab.hostile.route(
            "/v2/tests/token2/manifests/latest",
            Response::ok(bytes.clone(), "application/json").requiring("Bearer x", &challenge),
        );
        lab.refuses("tests/token2", &["a token may be"]);
        // A realm that is not HTTP(S): no credentials go there.
        lab.hostile.route(
            "/v2/tests/token3/manifests/latest",
            Response::ok(bytes, "application/json")
                .requiring("Bearer x", r#"Bearer realm="file:///etc/shadow""#),
        );
        lab.refuses("tests/token3", &["credentials are not sent there"]);
    }

    #[rstest]
    fn a_port_no_network_has_is_a_bad_reference(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.refused(
            "127.0.0.1:99999/tests/x",
            &[],
            &["image reference", "1 to 65535"],
        );
    }
}

/// Milestone 07.8: a layer that lies is refused or kept inside its
/// directory; no metadata call follows a link; bombs stop at their bound;
/// what it holds is out of other host users' reach.
mod m8_hostile_layers {
    use super::*;

    /// Serve the good base and `layer` on top of it as `repo`.
    fn over_base(lab: &Lab, repo: &str, layer: Layer) -> String {
        let config = hostile::config(&["/probe", "exit", "0"]);
        let (base, top) = (base_blob().to_vec(), layer.gzip());
        let m = hostile::manifest(&config, &[&base, &top]);
        lab.serve(repo, &m, vec![config, base, top]);
        lab.hostile.name(repo)
    }

    #[rstest]
    fn metadata_never_goes_through_a_symlink(rt: Runtime) {
        use std::os::unix::fs::PermissionsExt;
        let lab = Lab::new(rt);
        let (host, _) = host_sentinel();
        let host_dir = host.path().join("data");
        std::fs::set_permissions(&host_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let host_file = host_dir.join("file");
        std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = tree(host.path());
        // A symlink to a host directory, then a directory entry of the same
        // name (mode, owner); a symlink to a host file, then a file entry.
        let layer = Layer::new()
            .symlink("v", &host_dir.display().to_string())
            .dir_owned("v/", 0o777, 123, 456)
            .symlink("f", &host_file.display().to_string())
            .file_owned("f", "layer", 0o4777, 123, 456);
        let image = over_base(&lab, "tests/symlink-metadata", layer);
        lab.pull(&image).expect_code(0, "the layer unpacks, inside");
        harness::expect_eq!(
            tree(host.path()),
            before,
            "a host directory or file changed"
        );
        let v = lab
            .verb("run")
            .args([&image, "/probe", "stat", "/v"])
            .output()
            .json::<serde_json::Value>();
        harness::expect_eq!(
            (v["kind"].clone(), v["mode"].clone()),
            (json!("dir"), json!(0o777)),
            "{v}"
        );
    }

    #[rstest]
    fn whiteouts_that_name_no_file_are_refused(rt: Runtime) {
        let lab = Lab::new(rt);
        for (n, name) in [".wh...", ".wh..", ".wh.", "etc/.wh..."].iter().enumerate() {
            let image = over_base(
                &lab,
                &format!("tests/whiteout{n}"),
                Layer::new().file(name, ""),
            );
            lab.refused(&image, &[], &["names no file"]);
            assert!(
                lab.store.path().join("tmp").is_dir(),
                "the store's tmp/ is gone"
            );
        }
    }

    #[rstest]
    fn an_expansion_bomb_stops_at_the_bound_and_leaves_nothing(rt: Runtime) {
        let lab = Lab::new(rt);
        let bomb = Layer::new().file_bytes("zeros", &vec![0u8; 256 << 20]);
        let image = over_base(&lab, "tests/bomb", bomb);
        lab.refused(
            &image,
            &["--max-unpacked-size", "64m"],
            &["more than 67108864 bytes", "--max-unpacked-size"],
        );
        let out = lab
            .verb("pull")
            .env("MYRUNTIME_MAX_UNPACKED_SIZE", "64m")
            .arg(&image)
            .output();
        refused_on_the_last_line(&out, &["more than 67108864 bytes"]);
    }

    #[rstest]
    fn an_extension_header_that_claims_gigabytes_is_refused_unread(rt: Runtime) {
        let lab = Lab::new(rt);
        let image = over_base(
            &lab,
            "tests/pax-bomb",
            Layer::new().pax_header_claiming((8 << 30) - 1),
        );
        let (out, peak) = lab.verb("pull").arg(&image).output_with_peak_memory();
        refused_on_the_last_line(&out, &["more than the 1048576 bytes"]);
        assert!(peak < 96 * 1024, "the pull peaked at {peak} KiB");
    }

    #[rstest]
    fn names_with_terminal_escapes_are_shown_escaped(rt: Runtime) {
        let lab = Lab::new(rt);
        let hostile_name = "../\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}gpj.exe";
        let image = over_base(&lab, "tests/escapes", Layer::new().file(hostile_name, "x"));
        let out = lab.refused(&image, &[], &["outside its directory"]);
        assert!(out.stderr().contains(r"\u{1b}[2J"), "{}", out.describe());
    }

    #[rstest]
    fn overlayfs_attributes_never_come_from_a_layer(rt: Runtime) {
        let lab = Lab::new(rt);
        let layer = Layer::new()
            .file_with_xattr("redirected", "x", "user.overlay.redirect", "/etc")
            .file_with_xattr("noted", "x", "user.note", "kept");
        let image = over_base(&lab, "tests/overlay-xattrs", layer);
        lab.pull(&image).expect_code(0, "pulled");
        let redirected = lab
            .verb("run")
            .args([&image, "/probe", "stat", "/redirected"])
            .output();
        let noted = lab
            .verb("run")
            .args([&image, "/probe", "stat", "/noted"])
            .output();
        let (r, n): (serde_json::Value, serde_json::Value) = (redirected.json(), noted.json());
        harness::expect_eq!(n["xattrs"]["user.note"], "kept", "{n}");
        assert!(r["xattrs"].get("user.overlay.redirect").is_none(), "{r}");
    }

    /// A device node from a layer: in a user-namespaced container it cannot
    /// be opened (overlayfs mounted in a user namespace is nodev); a root
    /// container can, until the device cgroup (final) closes that too.
    #[rstest]
    fn a_layers_device_node_is_dead_in_a_user_namespace(rt: Runtime) {
        let lab = Lab::new(rt);
        let disk = host::LoopDevice::create();
        let numbers = disk.numbers();
        let (major, minor) = numbers.split_once(':').unwrap();
        let layer =
            Layer::new().block_device("disk", major.parse().unwrap(), minor.parse().unwrap());
        let image = over_base(&lab, "tests/device", layer);
        lab.pull(&image).expect_code(0, "pulled");
        let open = |extra: &[&str]| -> serde_json::Value {
            lab.verb("run")
                .args(extra)
                .args([&image, "/probe", "open", "/disk"])
                .output()
                .json()
        };
        harness::expect_eq!(
            open(&[])["ok"],
            true,
            "a root container opens it (the test can fail)"
        );
        let confined = open(&["--uidmap", "0:100000:65536"]);
        harness::expect_eq!(
            confined["ok"],
            false,
            "a user-namespaced container opened a host disk: {confined}"
        );
    }

    /// Set-id programs and files with capabilities stay in images, as they
    /// must, but no host user can reach them by their path in the store.
    #[rstest]
    fn set_id_and_capability_files_are_out_of_host_users_reach(rt: Runtime) {
        use std::os::unix::fs::MetadataExt;
        let lab = Lab::new(rt);
        let probe = std::fs::read(harness::probe()).unwrap();
        // struct vfs_cap_data, version 2: CAP_NET_RAW permitted.
        let cap: &[u8] = &[
            2, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let layer = Layer::new()
            .file_bytes_owned("suid-probe", &probe, 0o4755, 0, 0)
            .file_bytes_with_xattr("cap-probe", &probe, "security.capability", cap);
        let image = over_base(&lab, "tests/setid", layer);
        lab.pull(&image).expect_code(0, "pulled");
        let layers: Vec<PathBuf> = std::fs::read_dir(lab.store.path().join("layers"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let suid = layers
            .iter()
            .map(|l| l.join("suid-probe"))
            .find(|p| p.exists())
            .unwrap();
        harness::expect_eq!(
            std::fs::metadata(&suid).unwrap().mode() & 0o7777,
            0o4755,
            "kept in the image"
        );
        // The data directory was the test's (it keeps its mode, as `--root
        // /srv/data` would); the runtime's own directories in it are 0700.
        for dir in [
            lab.store.path().join("layers"),
            lab.store.path().join("blobs"),
        ] {
            harness::expect_eq!(
                std::fs::metadata(&dir).unwrap().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
        }
        // As another host user: the path leads nowhere.
        let nobody = host::nobody();
        let as_nobody = |path: &Path| -> serde_json::Value {
            let out = std::process::Command::new(harness::probe())
                .args(["stat", path.to_str().unwrap()])
                .uid(nobody.uid)
                .gid(nobody.gid)
                .output()
                .unwrap();
            serde_json::from_slice(&out.stdout).unwrap()
        };
        harness::expect_eq!(
            as_nobody(&suid)["errno"],
            "EACCES",
            "a host user reached a set-uid program"
        );
        harness::expect_eq!(
            as_nobody(&suid.with_file_name("cap-probe"))["errno"],
            "EACCES"
        );
        // And what a running container writes (its upper directory).
        let mut running = lab
            .verb("run")
            .args([
                &image,
                "sh",
                "-c",
                "cp /probe /mine && chmod 4755 /mine && echo ready && exec sleep 30",
            ])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        let containers = lab.store.path().join("containers");
        let upper = std::fs::read_dir(&containers)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("upper/mine"))
            .find(|p| p.exists())
            .expect("the container's file in its upper directory");
        harness::expect_eq!(
            as_nobody(&upper)["errno"],
            "EACCES",
            "a host user reached a container's set-uid file"
        );
        drop(running);
    }
}
