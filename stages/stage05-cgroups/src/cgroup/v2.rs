//! Limits on cgroup v2: one directory, one file per limit.
//!
//! Three values mean something else here than on v1, and cgroups-rs writes
//! them unconverted, so they are converted here:
//! - swap: v1's memory.memsw.limit_in_bytes counts memory *plus* swap, v2's
//!   memory.swap.max counts swap alone;
//! - `--cpu-shares` (v1's 2 to 262144) becomes cpu.weight (1 to 10000);
//! - `--io-weight` (docker's 10 to 1000) becomes io.weight (1 to 10000),
//!   written as `default N`; cgroups-rs would write io.bfq.weight.

use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;

use super::{Cgroup, CgroupError, Stats, keyed, read_number, write};
use crate::limits::{Limits, Swap, cpu_weight, io_weight_v2};
use stage01_uts::error::chain;

fn failed(flag: &'static str) -> impl Fn(cgroups_rs::fs::error::Error) -> CgroupError {
    move |e| CgroupError::Limit {
        flag,
        why: chain(&e),
    }
}

fn missing(flag: &'static str, controller: &str) -> CgroupError {
    CgroupError::Limit {
        flag,
        why: format!("the {controller} controller is not enabled for this cgroup (not delegated?)"),
    }
}

// ANCHOR: apply
pub fn apply(cg: &Cgroup, limits: &Limits) -> Result<(), CgroupError> {
    let group = cg.inner();
    let has = |file: &str| cg.file("", file).is_some_and(|f| f.exists());
    if let Some(memory) = limits.memory {
        let mem: &MemController = group
            .controller_of()
            .filter(|_| has("memory.max"))
            .ok_or_else(|| missing("--memory", "memory"))?;
        mem.set_limit(memory as i64).map_err(failed("--memory"))?;
        // memory.swap.max is swap alone; absent without swap support.
        let swap = match limits.swap {
            Some(Swap::Total(total)) => Some((total.saturating_sub(memory)).to_string()),
            Some(Swap::Unlimited) => Some("max".to_owned()),
            None => None,
        };
        if let (Some(swap), true) = (swap, has("memory.swap.max")) {
            write(cg.file("memory", "memory.swap.max"), &swap, "--memory-swap")?;
        }
    }
    if let Some((quota, period)) = limits.cpu_quota {
        let cpu: &CpuController = group
            .controller_of()
            .filter(|_| has("cpu.max"))
            .ok_or_else(|| missing("--cpus", "cpu"))?;
        cpu.set_cfs_quota_and_period(Some(quota as i64), Some(period))
            .map_err(failed("--cpus"))?;
    }
    if let Some(shares) = limits.cpu_shares {
        let cpu: &CpuController = group
            .controller_of()
            .filter(|_| has("cpu.weight"))
            .ok_or_else(|| missing("--cpu-shares", "cpu"))?;
        cpu.set_shares(cpu_weight(shares))
            .map_err(failed("--cpu-shares"))?;
    }
    if let Some(max) = limits.pids {
        let pids: &PidController = group
            .controller_of()
            .filter(|_| has("pids.max"))
            .ok_or_else(|| missing("--pids-limit", "pids"))?;
        let max = max.map_or(MaxValue::Max, |n| MaxValue::Value(n as i64));
        pids.set_pid_max(max).map_err(failed("--pids-limit"))?;
    }
    if let Some(weight) = limits.io_weight {
        if !has("io.weight") {
            return Err(missing("--io-weight", "io"));
        }
        write(
            cg.file("io", "io.weight"),
            &format!("default {}", io_weight_v2(weight)),
            "--io-weight",
        )?;
    }
    let any_device_limit = !(limits.read_bps.is_empty()
        && limits.write_bps.is_empty()
        && limits.read_iops.is_empty()
        && limits.write_iops.is_empty());
    if any_device_limit {
        let io: &BlkIoController = group
            .controller_of()
            .filter(|_| has("io.max"))
            .ok_or_else(|| missing("device limits", "io"))?;
        for d in &limits.read_bps {
            io.throttle_read_bps_for_device(d.major, d.minor, d.rate)
                .map_err(failed("--device-read-bps"))?;
        }
        for d in &limits.write_bps {
            io.throttle_write_bps_for_device(d.major, d.minor, d.rate)
                .map_err(failed("--device-write-bps"))?;
        }
        for d in &limits.read_iops {
            io.throttle_read_iops_for_device(d.major, d.minor, d.rate)
                .map_err(failed("--device-read-iops"))?;
        }
        for d in &limits.write_iops {
            io.throttle_write_iops_for_device(d.major, d.minor, d.rate)
                .map_err(failed("--device-write-iops"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: apply

pub fn stats(cg: &Cgroup) -> Stats {
    let read = |controller: &str, file: &str| {
        cg.file(controller, file)
            .and_then(|f| std::fs::read_to_string(f).ok())
    };
    let io = read("io", "io.stat").unwrap_or_default();
    let io_sum = |key: &str| -> Option<u64> {
        let values: Vec<u64> = io
            .lines()
            .flat_map(|l| l.split_whitespace())
            .filter_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .collect();
        (!io.is_empty()).then(|| values.iter().sum())
    };
    Stats {
        memory_bytes: read_number(cg.file("memory", "memory.current")),
        // memory.peak arrived in Linux 5.19.
        memory_peak_bytes: read_number(cg.file("memory", "memory.peak")),
        memory_limit_bytes: read_number(cg.file("memory", "memory.max")),
        memory_reclaimable_bytes: read("memory", "memory.stat")
            .and_then(|t| keyed(&t, "inactive_file")),
        cpu_usec: read("cpu", "cpu.stat").and_then(|t| keyed(&t, "usage_usec")),
        pids: read_number(cg.file("pids", "pids.current")),
        pids_limit: read_number(cg.file("pids", "pids.max")),
        io_read_bytes: io_sum("rbytes"),
        io_write_bytes: io_sum("wbytes"),
    }
}
