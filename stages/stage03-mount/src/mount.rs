//! The stage 03 primitive: a mount namespace, and the container's own root
//! filesystem in it.
//!
//! The spec says what to mount (`mounts`: docker's defaults, /proc, /sys,
//! /dev and the rest, then the volumes) and what to hide (`maskedPaths`,
//! `readonlyPaths`); this primitive does it, in the container's process, in
//! its new mount namespace, before COMMAND: see [`Mount::setup`].
//! Everything it mounts lives in that namespace only, so when the container
//! ends the kernel drops all of it: there is nothing to unmount on the host,
//! even after a failure halfway.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use stage01_uts::spec::Spec;
use stage01_uts::{Context, Error, Phase, Primitive, Root, explain};

use crate::options::{self, Options};
use crate::path::resolve_in_root;
use crate::sys::{self, Linux, MountSys};
use crate::{dev, masked, pseudofs, rootfs, volume};

/// What the user asked for that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "the root filesystem {path} does not exist; give a directory holding the container's files \
         (scripts/setup-test-env.sh makes one)"
    )]
    RootfsMissing { path: String },
    #[error(
        "the root filesystem {path} is not a directory; give the directory holding the container's files"
    )]
    RootfsNotADirectory { path: String },
    #[error("volume {volume}: the host path {path} does not exist; create it first")]
    VolumeSourceMissing { volume: String, path: String },
    #[error("volume {volume}: {reason}")]
    VolumeTarget { volume: String, reason: String },
    #[error("volumes need a root filesystem of the container's own: give --rootfs")]
    VolumesWithoutRootfs,
    #[error("{what}: {reason}")]
    Path { what: String, reason: String },
}

impl From<MountError> for Error {
    fn from(e: MountError) -> Self {
        Error::primitive(e)
    }
}

/// One mount the spec asks for, its options sorted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub destination: PathBuf,
    /// `proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, `bind`, ...
    pub fstype: Option<String>,
    pub source: Option<PathBuf>,
    pub options: Options,
}

impl MountSpec {
    fn from_spec(m: &stage01_uts::spec::Mount) -> MountSpec {
        MountSpec {
            destination: m.destination().clone(),
            fstype: m.typ().clone(),
            source: m.source().clone(),
            options: options::parse(m.options().as_deref().unwrap_or_default()),
        }
    }

    fn is_bind(&self) -> bool {
        self.fstype.as_deref() == Some("bind") || self.options.bind.is_some()
    }

    /// A bind mount as a volume, for the volume checks and messages.
    fn as_volume(&self) -> Option<crate::cli::Volume> {
        self.is_bind().then(|| crate::cli::Volume {
            source: self.source.clone().unwrap_or_default(),
            target: self.destination.clone(),
            read_only: self.options.read_only,
        })
    }
}

/// The mount namespace and root filesystem.
// ANCHOR: mount
pub struct Mount {
    mounts: Vec<MountSpec>,
    masked: Vec<String>,
    read_only: Vec<String>,
    sys: Box<dyn MountSys>,
    /// Where everything goes, once known: on the host in `prepare` for a
    /// rootfs that is a host directory, inside in `setup` for one an earlier
    /// phase mounts (stage 06).
    root: Option<PathBuf>,
    /// A mount namespace of its own (a root of its own, or mounts).
    namespace: bool,
}

impl Mount {
    /// The mounts, masked and read-only paths a spec asks for.
    pub fn from_spec(spec: &Spec) -> Self {
        let linux = spec.linux().as_ref();
        let list = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
        Mount {
            mounts: spec
                .mounts()
                .iter()
                .flatten()
                .map(MountSpec::from_spec)
                .collect(),
            masked: list(linux.and_then(|l| l.masked_paths().as_ref())),
            read_only: list(linux.and_then(|l| l.readonly_paths().as_ref())),
            sys: Box::new(Linux),
            root: None,
            namespace: stage01_uts::spec::has_namespace(
                spec,
                stage01_uts::spec::LinuxNamespaceType::Mount,
            ),
        }
    }

    /// Make the mount calls through `sys` (unit tests pass a recorder).
    pub fn with_sys(mut self, sys: impl MountSys + 'static) -> Self {
        self.sys = Box::new(sys);
        self
    }

    /// The bind mounts, as volumes (checked on the host before anything
    /// starts: their sources are host paths).
    fn volumes(&self) -> impl Iterator<Item = crate::cli::Volume> + '_ {
        self.mounts.iter().filter_map(MountSpec::as_volume)
    }

    /// Whether `m` lies below an earlier mount of the list (`/dev/pts`
    /// below `/dev`): its mount point can only be made once that one is
    /// mounted.
    fn nested(&self, index: usize) -> bool {
        let destination = &self.mounts[index].destination;
        self.mounts[..index]
            .iter()
            .any(|earlier| destination.starts_with(&earlier.destination))
    }

    /// Check every volume, then make the mount points the rootfs itself
    /// holds: every check comes before the first mount point is made, so
    /// that refused input leaves the rootfs as it was.
    fn make_mount_points(&self, root: &Path) -> Result<(), Error> {
        for volume in self.volumes() {
            volume::check(root, &volume)?;
        }
        for (index, m) in self.mounts.iter().enumerate() {
            if !self.nested(index) {
                mount_point(root, m)?;
            }
        }
        Ok(())
    }
}

impl Primitive for Mount {
    fn name(&self) -> &'static str {
        "mount"
    }

    fn phase(&self) -> Phase {
        Phase::Mounts
    }

    fn clone_flags(&self) -> CloneFlags {
        if self.namespace {
            CloneFlags::CLONE_NEWNS
        } else {
            CloneFlags::empty()
        }
    }

    /// On the host, before anything starts: refuse what cannot work, then
    /// make the mount points (for a rootfs the host has).
    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        match &ctx.root {
            Root::Host => {
                if self.volumes().next().is_some() {
                    return Err(MountError::VolumesWithoutRootfs.into());
                }
                Ok(())
            }
            // Only inside the container's mount namespace: the mount points
            // are made there, in `setup`.
            Root::Inside(_) => {
                for volume in self.volumes() {
                    volume::check_source(&volume)?;
                }
                Ok(())
            }
            Root::Dir(rootfs) => {
                let shown = rootfs.display().to_string();
                let meta = std::fs::metadata(rootfs).map_err(|_| MountError::RootfsMissing {
                    path: shown.clone(),
                })?;
                if !meta.is_dir() {
                    return Err(MountError::RootfsNotADirectory { path: shown }.into());
                }
                // Absolute from here on: the container's process changes
                // directory.
                let root = std::fs::canonicalize(rootfs)
                    .map_err(|_| MountError::RootfsMissing { path: shown })?;
                self.make_mount_points(&root)?;
                ctx.root = Root::Dir(root.clone());
                self.root = Some(root);
                Ok(())
            }
        }
    }

    /// In the container's process: build its mount table and enter it.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if let Root::Inside(root) = &ctx.root {
            self.make_mount_points(root)?;
            self.root = Some(root.clone());
        }
        let Some(root) = self.root.clone() else {
            return Ok(());
        };
        let sys = self.sys.as_ref();
        // Files and directories made below get the modes they ask for,
        // whatever umask the runtime was started with.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

        rootfs::make_private(sys)?;
        rootfs::bind_onto_itself(sys, &root)?;
        for m in &self.mounts {
            mount_one(sys, &root, m)?;
        }
        rootfs::pivot_root(sys, &root)?;
        masked::mask_paths(sys, &self.masked)?;
        masked::read_only_paths(sys, &self.read_only)?;
        explain!(
            "(mount table ready)" => "ok",
            "the container now sees only its root filesystem and what was mounted into it"
        );
        Ok(())
    }
}
// ANCHOR_END: mount

/// The mount point of `m` inside `root`, resolved as the container will see
/// it and made if missing: a file for a bind of a file, else a directory.
fn mount_point(root: &Path, m: &MountSpec) -> Result<PathBuf, Error> {
    let file = m.is_bind() && m.source.as_ref().is_some_and(|s| s.is_file());
    volume::mountpoint(root, &m.destination, !file)
}

/// Perform one mount of the spec, at its destination as resolved now (an
/// earlier mount may have changed what it resolves to).
// ANCHOR: mount_one
fn mount_one(sys: &dyn MountSys, root: &Path, m: &MountSpec) -> Result<(), Error> {
    let target = mount_point(root, m)?;
    let flags = m.options.flags;
    let data = m.options.data();
    match m.fstype.as_deref() {
        _ if m.is_bind() => {
            let source = m.source.clone().unwrap_or_default();
            let recursive = m.options.bind != Some(options::Recursive::No);
            volume::bind(sys, &source, &target, recursive, m.options.read_only)?;
        }
        Some("sysfs") => pseudofs::mount_sys(sys, &target, flags)?,
        fstype => sys::mount(
            sys,
            m.source.as_deref(),
            &target,
            fstype,
            flags,
            data.as_deref(),
            why(&m.destination),
        )?,
    }
    if let Some(propagation) = m.options.propagation {
        sys::mount(
            sys,
            None,
            &target,
            None,
            propagation,
            None,
            "the propagation the spec asks for",
        )?;
    }
    // A /dev of the container's own gets the devices every container has.
    if m.destination == Path::new("/dev") && m.fstype.as_deref() == Some("tmpfs") {
        dev::make_devices(sys, &target)?;
    }
    Ok(())
}
// ANCHOR_END: mount_one

/// Why a mount of docker's defaults is made, for `--explain` and errors.
fn why(destination: &Path) -> &'static str {
    match destination.to_str() {
        Some("/proc") => {
            "a procfs mounted from the container's PID namespace shows only its processes"
        }
        Some("/dev") => "a /dev of the container's own, instead of the host's with all its disks",
        Some("/dev/pts") => "a new devpts instance: the container's terminals, not the host's",
        Some("/dev/shm") => "POSIX shared memory (shm_open) of the container's own",
        Some("/dev/mqueue") => "POSIX message queues of the container's IPC namespace",
        _ => "a mount the container's spec asks for",
    }
}

/// Where the path `path` (inside the container) is on the host, before
/// pivot_root: for errors and tests.
pub fn host_path(root: &Path, path: &Path) -> Result<PathBuf, Error> {
    resolve_in_root(root, path).map_err(|e| {
        MountError::Path {
            what: path.display().to_string(),
            reason: e.to_string(),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Recorder;
    use nix::errno::Errno;
    use stage01_uts::{ContainerId, Process};

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["proc", "sys", "dev", "etc"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        dir
    }

    fn spec(volumes: &[&str]) -> Spec {
        let mut spec = stage01_uts::spec::minimal(vec!["x".into()], vec![]);
        let volumes: Vec<crate::cli::Volume> = volumes.iter().map(|v| v.parse().unwrap()).collect();
        crate::defaults::mounts(&mut spec, &volumes);
        spec
    }

    fn context(root: Root) -> Context {
        let mut ctx = Context::new(ContainerId::generate(), Process::default());
        ctx.root = root;
        ctx
    }

    fn prepared(dir: &tempfile::TempDir, volumes: &[&str], sys: Recorder) -> (Mount, Context) {
        let mut mount = Mount::from_spec(&spec(volumes)).with_sys(sys);
        let mut ctx = context(Root::Dir(dir.path().into()));
        mount.prepare(&mut ctx).unwrap();
        (mount, ctx)
    }

    #[test]
    fn the_sequence_makes_propagation_private_first_and_pivots_last_before_masking() {
        let dir = rootfs();
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let (mut mount, mut ctx) = prepared(&dir, &[], sys);
        mount.setup(&mut ctx).unwrap();
        let calls = calls.borrow();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let r = root.display();
        assert_eq!(calls[0], "mount - / - MS_REC|MS_PRIVATE", "{calls:#?}");
        assert_eq!(calls[1], format!("mount {r} {r} - MS_BIND|MS_REC"));
        assert_eq!(
            calls[2],
            format!("mount proc {r}/proc proc MS_NOSUID|MS_NODEV|MS_NOEXEC")
        );
        assert!(
            calls[3].starts_with(&format!("mount sysfs {r}/sys sysfs MS_RDONLY")),
            "{}",
            calls[3]
        );
        let pivot = calls
            .iter()
            .position(|c| c.starts_with("pivot_root"))
            .unwrap();
        assert_eq!(calls[pivot - 1], format!("chdir {r}"));
        assert_eq!(calls[pivot], "pivot_root . .");
        assert_eq!(calls[pivot + 1], "umount .");
        assert!(
            calls[pivot + 2..]
                .iter()
                .any(|c| c == "mount /dev/null /proc/kcore - MS_BIND")
        );
        assert!(calls[pivot + 2..].iter().any(|c| c == "readonly /proc/sys"));
        assert!(calls[..pivot].iter().all(|c| !c.contains(" /proc/kcore")));
    }

    #[test]
    fn dev_gets_only_the_safe_devices() {
        let dir = rootfs();
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let (mut mount, mut ctx) = prepared(&dir, &[], sys);
        mount.setup(&mut ctx).unwrap();
        let nodes: Vec<String> = calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("mknod"))
            .map(|c| c.rsplit('/').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            nodes,
            [
                "null 1:3",
                "zero 1:5",
                "full 1:7",
                "random 1:8",
                "urandom 1:9",
                "tty 5:0"
            ]
        );
        let dev = std::fs::canonicalize(dir.path()).unwrap().join("dev");
        assert_eq!(
            std::fs::read_link(dev.join("ptmx")).unwrap(),
            PathBuf::from("pts/ptmx")
        );
        assert_eq!(
            std::fs::read_link(dev.join("stdout")).unwrap(),
            PathBuf::from("/proc/self/fd/1")
        );
        assert_eq!(
            std::fs::read_link(dev.join("fd")).unwrap(),
            PathBuf::from("/proc/self/fd")
        );
    }

    #[test]
    fn a_failing_step_stops_the_sequence_with_the_call_named() {
        let dir = rootfs();
        let sys = Recorder {
            fail_on: Some(("sysfs", Errno::EBUSY)),
            ..Recorder::default()
        };
        let calls = sys.calls.clone();
        let (mut mount, mut ctx) = prepared(&dir, &[], sys);
        let err = mount.setup(&mut ctx).unwrap_err();
        assert!(err.to_string().contains("sysfs"), "{err}");
        assert!(calls.borrow().last().unwrap().contains("sysfs"));
    }

    #[test]
    fn bad_rootfs_is_refused_before_anything_starts() {
        let mut ctx = context(Root::Dir("/no/such/rootfs".into()));
        let err = Mount::from_spec(&spec(&[])).prepare(&mut ctx).unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"the root filesystem /no/such/rootfs does not exist; give a directory holding the container's files (scripts/setup-test-env.sh makes one)");
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut ctx = context(Root::Dir(file.path().into()));
        let err = Mount::from_spec(&spec(&[])).prepare(&mut ctx).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn volumes_without_a_rootfs_are_refused() {
        let err = Mount::from_spec(&spec(&["/tmp:/data"]))
            .prepare(&mut context(Root::Host))
            .unwrap_err();
        assert!(err.to_string().contains("--rootfs"), "{err}");
    }

    #[test]
    fn nested_mount_points_wait_for_their_parent() {
        let dir = rootfs();
        let (mount, _) = prepared(&dir, &[], Recorder::default());
        assert!(dir.path().join("proc").is_dir());
        assert!(
            !dir.path().join("dev/pts").exists(),
            "made inside the /dev tmpfs, not in the rootfs"
        );
        let nested: Vec<_> = (0..mount.mounts.len())
            .filter(|&i| mount.nested(i))
            .collect();
        assert_eq!(nested.len(), 3, "pts, shm and mqueue");
    }

    #[test]
    fn a_rootfs_mounted_inside_gets_its_mount_points_there() {
        let dir = rootfs();
        let merged = dir.path().join("merged");
        std::fs::create_dir(&merged).unwrap();
        let mut ctx = context(Root::Inside(merged.clone()));
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let mut mount = Mount::from_spec(&spec(&[])).with_sys(sys);
        mount.prepare(&mut ctx).unwrap();
        assert!(
            !merged.join("proc").exists(),
            "nothing is made on the host side"
        );
        mount.setup(&mut ctx).unwrap();
        assert!(merged.join("proc").is_dir(), "made in setup, inside");
        assert!(calls.borrow().iter().any(|c| c.starts_with("pivot_root")));
    }
}
