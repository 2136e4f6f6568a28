//! The IPC namespace: System V IPC objects (message queues, semaphores,
//! shared memory segments, found by numeric key) and POSIX message queues
//! of the container's own.
//!
//! Without it, a container could attach to the host's shared memory by
//! guessing its key. The primitive is one clone flag; stage 03 already
//! mounts /dev/mqueue, which from here shows the container's queues only.

use nix::sched::CloneFlags;
use stage01_uts::{Phase, Primitive};

// ANCHOR: ipc
pub struct Ipc;

impl Primitive for Ipc {
    fn name(&self) -> &'static str {
        "ipc"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWIPC
    }
}
// ANCHOR_END: ipc
