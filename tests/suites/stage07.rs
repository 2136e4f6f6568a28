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

use harness::registry::{Compression, ImageSpec, Layer, Layout, Registry, Written};
use harness::{Rootfs, Run, Runtime};
use rstest::{fixture, rstest};
use serde_json::json;

#[fixture]
fn rt() -> Runtime {
    // The containers of this suite run images, never a --rootfs.
    Runtime::for_suite("stage07-image").without_rootfs()
}

/// A test's own store and registry.
struct World {
    rt: Runtime,
    registry: Registry,
    store: tempfile::TempDir,
}

impl World {
    fn new(rt: Runtime) -> World {
        World::with(rt, Registry::start())
    }

    fn with(rt: Runtime, registry: Registry) -> World {
        World {
            rt,
            registry,
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

    fn images(&self) -> String {
        let out = self.verb("images").output();
        out.expect_code(0, "images lists the store");
        out.stdout()
    }

    /// What the store holds: its image list, blobs and layers (to check that
    /// a failed pull left it as it was).
    fn contents(&self) -> (String, Vec<String>, Vec<String>) {
        let list = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.store.path().join(dir))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        let index =
            std::fs::read_to_string(self.store.path().join("images.json")).unwrap_or_default();
        (index, list("blobs/sha256"), list("layers"))
    }

    fn layer_dirs(&self) -> usize {
        self.contents().2.len()
    }

    fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.store.path().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
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
        assert_eq!(
            report.argv.get(1).map(String::as_str),
            Some("report"),
            "Entrypoint then Cmd"
        );
        assert_eq!(
            report.env.get("FROM_IMAGE").map(String::as_str),
            Some("yes"),
            "the image's Env"
        );
        assert_eq!(report.cwd, "/work", "the image's WorkingDir");
        assert_eq!(report.uid, 65534, "the image's User");

        let out = world
            .verb("run")
            .args(["-e", "FROM_IMAGE=cli", "-w", "/tmp", "--user", "0"])
            .arg(&image)
            .output();
        let report = out.report();
        assert_eq!(
            report.env.get("FROM_IMAGE").map(String::as_str),
            Some("cli"),
            "-e wins"
        );
        assert_eq!(
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
        assert_ne!(
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
        assert_eq!(
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
        assert_eq!(
            out.json::<serde_json::Value>()["bytes"],
            5,
            "{}",
            out.describe()
        );
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
        assert_eq!(
            (
                tool["mode"].clone(),
                tool["uid"].clone(),
                tool["gid"].clone()
            ),
            (json!(0o4751), json!(123), json!(456))
        );
        assert_eq!(stat(&world, &image, "/srv/link")["kind"], "symlink");
        assert_eq!(
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
        assert_eq!(
            tagged["xattrs"]["user.myruntime.note"], "kept",
            "the layer's xattr is on the file: {tagged}"
        );
        let null = stat(&world, &image, "/srv/null");
        assert_eq!(
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
        assert_eq!(
            one.layers[0], two.layers[0],
            "the test built the same base layer twice"
        );
        world
            .pull(&world.registry.name("tests/shared:1"))
            .expect_code(0, "first image");
        world
            .pull(&world.registry.name("tests/shared:2"))
            .expect_code(0, "second image");
        assert_eq!(
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
        assert_eq!(out.stdout(), "amd64", "{}", out.describe());
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
        assert_eq!(out.stdout(), "arm64", "{}", out.describe());
        let none = world
            .verb("pull")
            .args(["--platform", "linux/s390x", &image])
            .output();
        assert_ne!(none.code(), 0);
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
        assert_ne!(out.code(), 0, "must fail\n{}", out.describe());
        assert!(
            out.stderr().contains(what),
            "the message must say {what:?}\n{}",
            out.describe()
        );
        assert_eq!(
            out.stderr()
                .trim_end()
                .lines()
                .last()
                .map(|l| l.contains(what)),
            Some(true)
        );
        let after = world.contents();
        assert_eq!(before.0, after.0, "the image list changed");
        assert_eq!(world.tmp_entries(), 0, "half-written files were left");
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
        assert_eq!(world.layer_dirs(), 0, "a half-unpacked layer was kept");
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
        assert_eq!(world.layer_dirs(), 2);
        world
            .verb("rmi")
            .arg(world.registry.name("tests/rmi:a"))
            .output()
            .expect_code(0, "rmi a");
        assert_eq!(
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
        assert_eq!(
            world.contents(),
            (world.contents().0, vec![], vec![]),
            "nothing left"
        );
        let unknown = world.verb("rmi").arg("tests/never-pulled").output();
        assert_ne!(unknown.code(), 0);
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
        assert_eq!(running.read_line(), "ready");
        let refused = world.verb("rmi").arg(&image).output();
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish();
        assert_ne!(refused.code(), 0, "{}", refused.describe());
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
        assert_eq!(world.tmp_entries(), 0, "what the killed pull left is gone");
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
        assert_eq!(world.layer_dirs(), 1, "one copy of the layer");
        assert_eq!(
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
