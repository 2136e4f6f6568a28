//! `myruntime`: the full runtime, composed from the workbook's stages, and
//! hardened.
//!
//! Each stage's crate owns one primitive; `myruntime` composes them and
//! adds what makes a container contained: [`caps`] (the five capability
//! sets, docker's default on the docker-style command line) and
//! `no_new_privs`; [`limits`]: rlimits, the OOM score, a read-only root,
//! tmpfs mounts; [`sysctl`]: settings of its own namespaces; all written
//! into the spec by [`security`]'s flags.

pub mod caps;
pub mod limits;
pub mod security;
pub mod sysctl;

use std::path::Path;

use stage01_uts::spec::Spec;
use stage01_uts::{ContainerId, Error, Primitive};

/// A hardening error, as the runtime's own failure (status 125).
pub(crate) fn refused(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::WithCode {
        code: stage01_uts::error::EXIT_RUNTIME,
        source: Box::new(e),
    }
}

/// What the final runtime adds to every container made from a spec:
/// stage 09's network, then the hardening the spec asks for.
pub struct Final;

pub static FINAL: Final = Final;

// ANCHOR: extension
impl stage08_lifecycle::Extension for Final {
    fn primitives(
        &self,
        spec: &Spec,
        id: &ContainerId,
        root: &Path,
    ) -> Result<Vec<Box<dyn Primitive>>, Error> {
        let mut all = stage09_network::NETWORK.primitives(spec, id, root)?;
        all.extend(self.process_primitives(spec)?);
        if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
            all.push(Box::new(limits::OomScoreAdj(adj)));
        }
        if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            all.push(Box::new(limits::ReadOnlyRoot));
        }
        if let Some(sysctls) = sysctl::Sysctls::of(spec).map_err(refused)? {
            all.push(Box::new(sysctls));
        }
        Ok(all)
    }

    /// The rlimits, the capabilities and `no_new_privs`, for the first
    /// process and for every one `exec` starts.
    fn process_primitives(&self, spec: &Spec) -> Result<Vec<Box<dyn Primitive>>, Error> {
        let mut all: Vec<Box<dyn Primitive>> = Vec::new();
        if let Some(rlimits) = limits::Rlimits::of(spec).map_err(refused)? {
            all.push(Box::new(rlimits));
        }
        if let Some(sets) = caps::Sets::of(spec).map_err(refused)? {
            all.push(Box::new(caps::Bounding(sets.clone())));
            all.push(Box::new(caps::Capabilities(sets)));
        }
        let nnp = spec.process().as_ref().and_then(|p| p.no_new_privileges());
        if nnp == Some(true) {
            all.push(Box::new(caps::NoNewPrivileges));
        }
        Ok(all)
    }

    fn reclaim(&self, root: &Path, id: &ContainerId) {
        stage09_network::NETWORK.reclaim(root, id);
    }

    fn settings(&self, root: &Path, id: &ContainerId, spec: &Spec) -> serde_json::Value {
        stage09_network::NETWORK.settings(root, id, spec)
    }

    fn ports(&self, spec: &Spec) -> String {
        stage09_network::NETWORK.ports(spec)
    }
}
// ANCHOR_END: extension
