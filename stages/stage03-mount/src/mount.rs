//! The stage 03 primitive: a mount namespace, and the container's own root
//! filesystem in it.
//!
//! The whole sequence runs in the container's process, in its new mount
//! namespace, before COMMAND: see [`Mount::setup`]. Everything it mounts
//! lives in that namespace only, so when the container ends, the kernel
//! drops all of it: there is nothing to unmount on the host, even after a
//! failure halfway.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use stage01_uts::{Context, Error, Primitive, explain};

use crate::cli::Volume;
use crate::sys::{Linux, MountSys};
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

/// The mount namespace and root filesystem.
// ANCHOR: mount
pub struct Mount {
    /// `None`: keep the host's root (only `myruntime` allows this).
    rootfs: Option<PathBuf>,
    volumes: Vec<Volume>,
    sys: Box<dyn MountSys>,
    /// Made by `prepare` (or by `setup` for a rootfs mounted inside):
    /// where everything goes.
    plan: Option<Plan>,
    /// The rootfs an earlier step mounts inside the container.
    mounted: Option<PathBuf>,
}

/// The mount points, resolved inside the rootfs and created.
struct Plan {
    root: PathBuf,
    proc: PathBuf,
    sys: PathBuf,
    dev: PathBuf,
    volumes: Vec<(Volume, PathBuf)>,
}

impl Plan {
    /// Resolve and create every mount point inside `root`; every check comes
    /// before the first mount point is made, so that refused input leaves the
    /// rootfs as it was.
    fn make(root: PathBuf, volumes: &[Volume]) -> Result<Plan, Error> {
        let targets = volumes
            .iter()
            .map(|v| volume::check(&root, v))
            .collect::<Result<Vec<_>, _>>()?;
        let dir = |path: &str| volume::mountpoint(&root, Path::new(path), true);
        Ok(Plan {
            proc: dir("/proc")?,
            sys: dir("/sys")?,
            dev: dir("/dev")?,
            volumes: volumes
                .iter()
                .zip(targets)
                .map(|(v, target)| {
                    volume::mountpoint(&root, &v.target, v.source.is_dir())?;
                    Ok((v.clone(), target))
                })
                .collect::<Result<_, Error>>()?,
            root,
        })
    }
}

/// The rootfs is mounted at this path by an earlier step, inside the
/// container's mount namespace (stage 06's overlay); the host side has
/// nothing of it. Told through the context; when it is, the mount points
/// are made in `setup`, inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedRootfs(pub PathBuf);

impl Mount {
    pub fn new(rootfs: Option<PathBuf>, volumes: Vec<Volume>) -> Self {
        Mount {
            rootfs,
            volumes,
            sys: Box::new(Linux),
            plan: None,
            mounted: None,
        }
    }

    /// Make the mount calls through `sys` (unit tests pass a recorder).
    pub fn with_sys(mut self, sys: impl MountSys + 'static) -> Self {
        self.sys = Box::new(sys);
        self
    }
}

impl Primitive for Mount {
    fn name(&self) -> &'static str {
        "mount"
    }

    /// Asked after `prepare`: a rootfs of its own, from the command line or
    /// mounted by an earlier step, means a mount namespace.
    fn clone_flags(&self) -> CloneFlags {
        match (&self.plan, &self.mounted) {
            (None, None) => CloneFlags::empty(),
            _ => CloneFlags::CLONE_NEWNS,
        }
    }

    /// On the host, before anything starts: refuse what cannot work, then
    /// make the mount points.
    fn prepare(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if let Some(MountedRootfs(root)) = ctx.fact::<MountedRootfs>() {
            // The rootfs exists only inside the container's mount namespace:
            // the mount points are made there, in `setup`.
            for v in &self.volumes {
                volume::check_source(v)?;
            }
            self.mounted = Some(root.clone());
            return Ok(());
        }
        let Some(rootfs) = &self.rootfs else {
            if !self.volumes.is_empty() {
                return Err(MountError::VolumesWithoutRootfs.into());
            }
            return Ok(());
        };
        let shown = rootfs.display().to_string();
        let meta = std::fs::metadata(rootfs).map_err(|_| MountError::RootfsMissing {
            path: shown.clone(),
        })?;
        if !meta.is_dir() {
            return Err(MountError::RootfsNotADirectory { path: shown }.into());
        }
        // Absolute from here on: the container's process changes directory.
        let root =
            std::fs::canonicalize(rootfs).map_err(|_| MountError::RootfsMissing { path: shown })?;
        self.plan = Some(Plan::make(root, &self.volumes)?);
        Ok(())
    }

    /// In the container's process: build its mount table and enter it.
    fn setup(&mut self, ctx: &mut Context) -> Result<(), Error> {
        if let Some(told) = self.mounted.take() {
            // Where the earlier step says the rootfs is now, as this process
            // reaches it (stage 06 tells it again from inside: a path
            // through its directory's descriptor).
            let root = ctx.fact::<MountedRootfs>().map_or(told, |m| m.0.clone());
            self.plan = Some(Plan::make(root, &self.volumes)?);
        }
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        let sys = self.sys.as_ref();
        // Files and directories made below get the modes they ask for,
        // whatever umask the runtime was started with.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

        rootfs::make_private(sys)?;
        rootfs::bind_onto_itself(sys, &plan.root)?;
        pseudofs::mount_proc(sys, &plan.proc)?;
        pseudofs::mount_sys(sys, &plan.sys)?;
        dev::mount_dev(sys, &plan.dev)?;
        volume::mount_all(sys, &plan.volumes)?;
        rootfs::pivot_root(sys, &plan.root)?;
        masked::mask_paths(sys)?;
        masked::read_only_paths(sys)?;
        explain!(
            "(mount table ready)" => "ok",
            "the container now sees only its root filesystem and what was mounted into it"
        );
        Ok(())
    }
}
// ANCHOR_END: mount

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Recorder;
    use nix::errno::Errno;
    use stage01_uts::Process;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["proc", "sys", "dev", "etc"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        dir
    }

    fn prepared(dir: &tempfile::TempDir, volumes: Vec<Volume>, sys: Recorder) -> (Mount, Context) {
        let mut mount = Mount::new(Some(dir.path().into()), volumes).with_sys(sys);
        let mut ctx = context();
        mount.prepare(&mut ctx).unwrap();
        (mount, ctx)
    }

    fn context() -> Context {
        Context::new(Process::new(vec!["x".into()]))
    }

    #[test]
    fn the_sequence_makes_propagation_private_first_and_pivots_last_before_masking() {
        let dir = rootfs();
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let (mut mount, mut ctx) = prepared(&dir, vec![], sys);
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
        let (mut mount, mut ctx) = prepared(&dir, vec![], sys);
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
        let (mut mount, mut ctx) = prepared(&dir, vec![], sys);
        let err = mount.setup(&mut ctx).unwrap_err();
        assert!(err.to_string().contains("sysfs"), "{err}");
        assert!(calls.borrow().last().unwrap().contains("sysfs"));
    }

    #[test]
    fn bad_rootfs_is_refused_before_anything_starts() {
        let mut ctx = context();
        let err = Mount::new(Some("/no/such/rootfs".into()), vec![])
            .prepare(&mut ctx)
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"the root filesystem /no/such/rootfs does not exist; give a directory holding the container's files (scripts/setup-test-env.sh makes one)");
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Mount::new(Some(file.path().into()), vec![])
            .prepare(&mut ctx)
            .unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn volumes_without_a_rootfs_are_refused() {
        let v: Volume = "/tmp:/data".parse().unwrap();
        let err = Mount::new(None, vec![v])
            .prepare(&mut context())
            .unwrap_err();
        assert!(err.to_string().contains("--rootfs"), "{err}");
    }

    #[test]
    fn the_hosts_root_needs_no_mount_namespace() {
        let mut host_root = Mount::new(None, vec![]);
        host_root.prepare(&mut context()).unwrap();
        assert_eq!(host_root.clone_flags(), CloneFlags::empty());
        let dir = rootfs();
        let (own_root, _) = prepared(&dir, vec![], Recorder::default());
        assert_eq!(own_root.clone_flags(), CloneFlags::CLONE_NEWNS);
    }

    #[test]
    fn a_rootfs_mounted_inside_gets_its_mount_points_there() {
        let dir = rootfs();
        let merged = dir.path().join("merged");
        std::fs::create_dir(&merged).unwrap();
        let mut ctx = context();
        ctx.tell(MountedRootfs(merged.clone()));
        let sys = Recorder::default();
        let calls = sys.calls.clone();
        let mut mount = Mount::new(None, vec![]).with_sys(sys);
        mount.prepare(&mut ctx).unwrap();
        assert_eq!(mount.clone_flags(), CloneFlags::CLONE_NEWNS);
        assert!(
            !merged.join("proc").exists(),
            "nothing is made on the host side"
        );
        mount.setup(&mut ctx).unwrap();
        assert!(merged.join("proc").is_dir(), "made in setup, inside");
        assert!(calls.borrow().iter().any(|c| c.starts_with("pivot_root")));
    }
}
