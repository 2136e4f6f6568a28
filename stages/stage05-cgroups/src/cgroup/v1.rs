//! Limits on cgroup v1 (and hybrid hosts): one directory per controller.

use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;

use super::{Cgroup, CgroupError, Stats, keyed, read_number, write};
use crate::limits::{Limits, Swap};
use stage01_uts::error::chain;

fn failed(flag: &'static str) -> impl Fn(cgroups_rs::fs::error::Error) -> CgroupError {
    move |e| CgroupError::Limit {
        flag,
        why: chain(&e),
    }
}

// ANCHOR: apply
pub fn apply(cg: &Cgroup, limits: &Limits) -> Result<(), CgroupError> {
    let group = cg.inner();
    if let Some(memory) = limits.memory {
        let mem: &MemController = group
            .controller_of()
            .ok_or_else(|| missing("--memory", "memory"))?;
        mem.set_limit(memory as i64).map_err(failed("--memory"))?;
        // memory.memsw.* exists only with swap accounting on. A default
        // (twice --memory) may be skipped where it does not; a --memory-swap
        // the user gave may not.
        let memsw = cg
            .file("memory", "memory.memsw.limit_in_bytes")
            .filter(|f| f.exists());
        match (limits.swap, memsw.is_some()) {
            (Some(Swap::Total(total)), true) => mem
                .set_memswap_limit(total as i64)
                .map_err(failed("--memory-swap"))?,
            (Some(Swap::Unlimited), true) => {
                mem.set_memswap_limit(-1).map_err(failed("--memory-swap"))?
            }
            _ => {}
        }
    }
    if let Some((quota, period)) = limits.cpu_quota {
        let cpu: &CpuController = group
            .controller_of()
            .ok_or_else(|| missing("--cpus", "cpu"))?;
        cpu.set_cfs_period(period).map_err(failed("--cpus"))?;
        cpu.set_cfs_quota(quota as i64).map_err(failed("--cpus"))?;
    }
    if let Some(shares) = limits.cpu_shares {
        let cpu: &CpuController = group
            .controller_of()
            .ok_or_else(|| missing("--cpu-shares", "cpu"))?;
        cpu.set_shares(shares).map_err(failed("--cpu-shares"))?;
    }
    if let Some(max) = limits.pids {
        let pids: &PidController = group
            .controller_of()
            .ok_or_else(|| missing("--pids-limit", "pids"))?;
        let max = max.map_or(MaxValue::Max, |n| MaxValue::Value(n as i64));
        pids.set_pid_max(max).map_err(failed("--pids-limit"))?;
    }
    if let Some(weight) = limits.io_weight {
        // blkio.weight belonged to the CFQ scheduler, gone since 5.0; BFQ
        // has blkio.bfq.weight. cgroups-rs writes only the first.
        let file = ["blkio.bfq.weight", "blkio.weight"]
            .iter()
            .filter_map(|name| cg.file("blkio", name))
            .find(|f| f.exists());
        if file.is_none() {
            return Err(CgroupError::Limit {
                flag: "--io-weight",
                why: "this kernel's I/O schedulers take no weight on cgroup v1 (it needs BFQ)"
                    .into(),
            });
        }
        write(file, &weight.to_string(), "--io-weight")?;
    }
    let blkio = || -> Result<&BlkIoController, CgroupError> {
        group
            .controller_of()
            .ok_or_else(|| missing("device limits", "blkio"))
    };
    for d in &limits.read_bps {
        blkio()?
            .throttle_read_bps_for_device(d.major, d.minor, d.rate)
            .map_err(failed("--device-read-bps"))?;
    }
    for d in &limits.write_bps {
        blkio()?
            .throttle_write_bps_for_device(d.major, d.minor, d.rate)
            .map_err(failed("--device-write-bps"))?;
    }
    for d in &limits.read_iops {
        blkio()?
            .throttle_read_iops_for_device(d.major, d.minor, d.rate)
            .map_err(failed("--device-read-iops"))?;
    }
    for d in &limits.write_iops {
        blkio()?
            .throttle_write_iops_for_device(d.major, d.minor, d.rate)
            .map_err(failed("--device-write-iops"))?;
    }
    Ok(())
}
// ANCHOR_END: apply

fn missing(flag: &'static str, controller: &str) -> CgroupError {
    CgroupError::Limit {
        flag,
        why: format!("the {controller} controller is not mounted on this host"),
    }
}

pub fn stats(cg: &Cgroup) -> Stats {
    let read = |controller: &str, file: &str| {
        cg.file(controller, file)
            .and_then(|f| std::fs::read_to_string(f).ok())
    };
    // "8:0 Read 4096" lines, per device, then "Total N".
    let io = read("blkio", "blkio.throttle.io_service_bytes_recursive");
    let io_sum = |op: &str| -> Option<u64> {
        let text = io.as_ref()?;
        Some(
            text.lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace();
                    let (_, what, n) = (words.next()?, words.next()?, words.next()?);
                    (what == op).then(|| n.parse::<u64>().ok())?
                })
                .sum(),
        )
    };
    // v1 has no "unlimited": it writes the largest page-aligned number.
    let limit = read_number(cg.file("memory", "memory.limit_in_bytes")).filter(|&l| l < (1 << 62));
    Stats {
        memory_bytes: read_number(cg.file("memory", "memory.usage_in_bytes")),
        memory_peak_bytes: read_number(cg.file("memory", "memory.max_usage_in_bytes")),
        memory_limit_bytes: limit,
        memory_reclaimable_bytes: read("memory", "memory.stat")
            .and_then(|t| keyed(&t, "total_inactive_file")),
        // cpuacct.usage is in nanoseconds.
        cpu_usec: read_number(cg.file("cpuacct", "cpuacct.usage")).map(|ns| ns / 1000),
        pids: read_number(cg.file("pids", "pids.current")),
        pids_limit: read_number(cg.file("pids", "pids.max")),
        io_read_bytes: io_sum("Read"),
        io_write_bytes: io_sum("Write"),
    }
}
