//! Crash recovery: what the next command does about a container whose
//! monitor died (SIGKILL, the OOM killer, a reboot).
//!
//! The container died with its monitor: its first process has the monitor
//! as parent and a parent-death signal (stage 01), and PID 1's death takes
//! its whole PID namespace, and with it every mount of its mount namespace.
//! What stays: its cgroup (empty), the overlay's directory, the files of
//! its record. So a container recorded as alive that nothing answers for
//! any more (its monitor's lock is free, the command that made it is gone)
//! is recorded as exited, status 255 as docker reports a container it lost,
//! and its cgroup goes; its directory stays until `rm`, unless it was to be
//! removed on exit. Logs and images are never touched.

use stage01_uts::ContainerId;
use stage05_cgroups::container_cgroup::locate;

use crate::state::{LifecycleError, Status, Store};
use crate::time::Time;

/// The status docker gives a container whose end it did not see.
pub const LOST: i32 = 255;

/// Put right what dead monitors left, for every container; then what dead
/// runtimes of the earlier stages left (stale cgroups, unkept container
/// directories). Returns how many containers were reconciled.
// ANCHOR: reconcile_all
pub fn reconcile_all(store: &Store) -> usize {
    let reconciled = reconcile_containers(store);
    stage05_cgroups::container_cgroup::reap();
    stage06_overlay::overlay::reap(&store.containers);
    reconciled
}

/// [`reconcile_all`] but for the earlier stages' leftovers, which a start
/// reaps anyway (stage 05's and stage 06's `prepare`).
pub fn reconcile_containers(store: &Store) -> usize {
    let mut reconciled = 0;
    for id in store.ids() {
        if matches!(reconcile(store, &id), Ok(true)) {
            reconciled += 1;
        }
    }
    sweep_runtime_dirs(store);
    reconciled
}

/// The runtime directory is shared by every data directory: a container's
/// there whose monitor is dead is left over, whichever data directory it
/// belonged to (its record there, if any, still says it ran).
fn sweep_runtime_dirs(store: &Store) {
    let Ok(entries) = std::fs::read_dir(&store.run) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<ContainerId>().ok())
        else {
            continue;
        };
        let dead = match store.state(&id) {
            Some(state) => state.boot != crate::state::boot() || !state.monitor.alive(),
            // Being made (no state yet), or not ours to judge.
            None => false,
        };
        if dead && !store.monitored(&id) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
// ANCHOR_END: reconcile_all

/// Reconcile one container, if it needs it: true if it did.
// ANCHOR: reconcile
pub fn reconcile(store: &Store, id: &ContainerId) -> Result<bool, LifecycleError> {
    let Ok(record) = store.record(id) else {
        return Ok(false);
    };
    if store.alive(id, &record) {
        return Ok(false);
    }
    let ran = store.state(id).is_some() || (record.started.is_some() && record.finished.is_none());
    if !ran && !record.remove_on_exit {
        return Ok(false);
    }
    let _lock = store.lock(id)?;
    // Checked again under the lock: another command may have done it.
    let Ok(mut record) = store.record(id) else {
        return Ok(false);
    };
    if store.alive(id, &record) {
        return Ok(false);
    }
    if let Ok(spec) = store.spec(id)
        && let Some(cgroup) = locate(&spec, id.as_str())
        && cgroup.dirs().iter().any(|d| d.exists())
    {
        cgroup.kill_all();
        let _ = cgroup.remove();
    }
    crate::reclaim(&store.root, id);
    if record.started.is_none() {
        record.started = store.state(id).and_then(|s| s.started);
    }
    let _ = std::fs::remove_dir_all(store.run_dir(id));
    if record.remove_on_exit {
        store.remove(id)?;
        return Ok(true);
    }
    if record.finished.is_none() && record.started.is_some() {
        record.finished = Some(Time::now().rfc3339());
        record.exit_code = Some(LOST);
        record.error = Some(
            "its monitor died before it did (killed, or the host restarted): its end was not seen"
                .into(),
        );
    }
    record.owner = None;
    store.write_record(&record)?;
    Ok(true)
}
// ANCHOR_END: reconcile

/// The status of `id` after reconciling it: what every verb acts on.
pub fn observe(
    store: &Store,
    query: &str,
) -> Result<(ContainerId, crate::state::Record, Status), LifecycleError> {
    let (id, _) = store.find(query)?;
    reconcile(store, &id)?;
    let record = store
        .record(&id)
        .map_err(|_| LifecycleError::NoSuch(query.to_owned()))?;
    let status = store.status(&id, &record);
    Ok((id, record, status))
}
