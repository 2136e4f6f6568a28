//! The limits asked for, checked, in the units the kernel takes.

use oci_spec::runtime::LinuxResources;

use crate::cli::{Bytes, DeviceRate, RunArgs, SwapLimit};

/// A JSON object without its null members (a limit not asked for is
/// absent from the spec, not null).
fn strip_nulls(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

/// docker's floor: below this a container cannot even start its runtime's
/// own pages, and the kernel OOM-kills it before COMMAND runs.
pub const MIN_MEMORY: u64 = 6 << 20;

/// The CFS period for `--cpus`, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Memory plus swap, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// Memory plus swap may not exceed this many bytes.
    Total(u64),
    Unlimited,
}

/// Every limit of one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub swap: Option<Swap>,
    /// (quota, period) in microseconds.
    pub cpu_quota: Option<(u64, u64)>,
    pub cpu_shares: Option<u64>,
    /// `None`: no limit asked; `Some(None)`: explicitly unlimited (-1).
    pub pids: Option<Option<u64>>,
    pub io_weight: Option<u16>,
    pub read_bps: Vec<DeviceRate>,
    pub write_bps: Vec<DeviceRate>,
    pub read_iops: Vec<DeviceRate>,
    pub write_iops: Vec<DeviceRate>,
}

/// A limit that cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("--memory {0} is below the minimum of 6m a container needs to start")]
    MemoryTooLow(Bytes),
    #[error("--memory-swap {swap} is below --memory {memory}; it counts memory plus swap")]
    SwapBelowMemory { swap: Bytes, memory: Bytes },
}

impl Limits {
    /// Check the command line's limits against each other.
    // ANCHOR: from_args
    pub fn from_args(args: &RunArgs) -> Result<Limits, LimitError> {
        if let Some(memory) = args.memory
            && memory.0 < MIN_MEMORY
        {
            return Err(LimitError::MemoryTooLow(memory));
        }
        let swap = match (args.memory, args.memory_swap) {
            (Some(memory), Some(SwapLimit::Total(total))) if total < memory => {
                return Err(LimitError::SwapBelowMemory {
                    swap: total,
                    memory,
                });
            }
            (_, Some(SwapLimit::Total(total))) => Some(Swap::Total(total.0)),
            (_, Some(SwapLimit::Unlimited)) => Some(Swap::Unlimited),
            // As docker: as much swap as memory, unless said otherwise.
            (Some(memory), None) => Some(Swap::Total(memory.0.saturating_mul(2))),
            (None, None) => None,
        };
        Ok(Limits {
            memory: args.memory.map(|m| m.0),
            swap,
            cpu_quota: args
                .cpus
                .map(|c| ((c.0 * CPU_PERIOD_US as f64).round() as u64, CPU_PERIOD_US)),
            cpu_shares: args.cpu_shares,
            pids: args.pids_limit.map(|n| u64::try_from(n).ok()),
            io_weight: args.io_weight,
            read_bps: args.device_read_bps.clone(),
            write_bps: args.device_write_bps.clone(),
            read_iops: args.device_read_iops.clone(),
            write_iops: args.device_write_iops.clone(),
        })
    }
    // ANCHOR_END: from_args

    /// The limits as the spec writes them (`linux.resources`): memory and
    /// memory+swap in bytes (-1: unlimited swap), the CFS quota and period,
    /// shares, pids (-1: unlimited), and block I/O.
    // ANCHOR: to_spec
    pub fn to_spec(&self) -> LinuxResources {
        let devices = |rates: &[DeviceRate]| -> Vec<serde_json::Value> {
            rates
                .iter()
                .map(|r| serde_json::json!({"major": r.major, "minor": r.minor, "rate": r.rate}))
                .collect()
        };
        let mut resources = serde_json::json!({});
        let memory = serde_json::json!({
            "limit": self.memory,
            "swap": self.swap.map(|s| match s {
                Swap::Total(total) => total as i64,
                Swap::Unlimited => -1,
            }),
        });
        if self.memory.is_some() || self.swap.is_some() {
            resources["memory"] = memory;
        }
        if self.cpu_quota.is_some() || self.cpu_shares.is_some() {
            resources["cpu"] = serde_json::json!({
                "quota": self.cpu_quota.map(|(q, _)| q),
                "period": self.cpu_quota.map(|(_, p)| p),
                "shares": self.cpu_shares,
            });
        }
        if let Some(pids) = self.pids {
            resources["pids"] = serde_json::json!({"limit": pids.map_or(-1, |n| n as i64)});
        }
        let io = [
            ("throttleReadBpsDevice", &self.read_bps),
            ("throttleWriteBpsDevice", &self.write_bps),
            ("throttleReadIOPSDevice", &self.read_iops),
            ("throttleWriteIOPSDevice", &self.write_iops),
        ];
        if self.io_weight.is_some() || io.iter().any(|(_, r)| !r.is_empty()) {
            let mut block = serde_json::json!({"weight": self.io_weight});
            for (key, rates) in io {
                if !rates.is_empty() {
                    block[key] = serde_json::Value::Array(devices(rates));
                }
            }
            resources["blockIO"] = block;
        }
        strip_nulls(&mut resources);
        serde_json::from_value(resources).expect("resources are valid")
    }
    // ANCHOR_END: to_spec

    /// The limits a spec's `linux.resources` asks for.
    pub fn from_spec(resources: &LinuxResources) -> Limits {
        let memory = resources.memory().as_ref();
        let cpu = resources.cpu().as_ref();
        let block = resources.block_io().as_ref();
        let rates =
            |devices: Option<&Vec<oci_spec::runtime::LinuxThrottleDevice>>| -> Vec<DeviceRate> {
                devices
                    .into_iter()
                    .flatten()
                    .map(|d| DeviceRate {
                        device: format!("{}:{}", d.major(), d.minor()).into(),
                        major: d.major() as u64,
                        minor: d.minor() as u64,
                        rate: d.rate(),
                    })
                    .collect()
            };
        Limits {
            memory: memory
                .and_then(|m| m.limit())
                .and_then(|l| u64::try_from(l).ok()),
            swap: memory
                .and_then(|m| m.swap())
                .map(|s| match u64::try_from(s) {
                    Ok(total) => Swap::Total(total),
                    Err(_) => Swap::Unlimited,
                }),
            cpu_quota: cpu.and_then(|c| {
                let quota = u64::try_from(c.quota()?).ok()?;
                Some((quota, c.period().unwrap_or(CPU_PERIOD_US)))
            }),
            cpu_shares: cpu.and_then(|c| c.shares()),
            pids: resources
                .pids()
                .as_ref()
                .map(|p| u64::try_from(p.limit()).ok().filter(|&n| n > 0)),
            io_weight: block.and_then(|b| b.weight()),
            read_bps: rates(block.and_then(|b| b.throttle_read_bps_device().as_ref())),
            write_bps: rates(block.and_then(|b| b.throttle_write_bps_device().as_ref())),
            read_iops: rates(block.and_then(|b| b.throttle_read_iops_device().as_ref())),
            write_iops: rates(block.and_then(|b| b.throttle_write_iops_device().as_ref())),
        }
    }

    /// The options that asked for a limit, for messages about limits that
    /// could not be applied.
    pub fn asked(&self) -> Vec<&'static str> {
        let mut asked = Vec::new();
        let mut note = |set: bool, flag| {
            if set {
                asked.push(flag);
            }
        };
        note(self.memory.is_some(), "--memory");
        note(self.cpu_quota.is_some(), "--cpus");
        note(self.cpu_shares.is_some(), "--cpu-shares");
        note(self.pids.is_some(), "--pids-limit");
        note(self.io_weight.is_some(), "--io-weight");
        note(!self.read_bps.is_empty(), "--device-read-bps");
        note(!self.write_bps.is_empty(), "--device-write-bps");
        note(!self.read_iops.is_empty(), "--device-read-iops");
        note(!self.write_iops.is_empty(), "--device-write-iops");
        asked
    }
}

/// cgroup v1's `cpu.shares` (2 to 262144, default 1024) as cgroup v2's
/// `cpu.weight` (1 to 10000, default 100), with the formula runc and crun use
/// so that a value means the same under every runtime. cgroups-rs writes the
/// number it is given as it is.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// docker's `--blkio-weight` range (10 to 1000) as cgroup v2's `io.weight`
/// (1 to 10000), as crun converts it.
pub fn io_weight_v2(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunArgs,
    }

    fn limits(extra: &[&str]) -> Result<Limits, LimitError> {
        let mut argv = vec!["x", "--rootfs", "/"];
        argv.extend(extra);
        argv.push("true");
        Limits::from_args(&Cli::try_parse_from(argv).unwrap().args)
    }

    #[test]
    fn cpu_weight_matches_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
    }

    #[test]
    fn io_weight_spans_the_v2_range() {
        assert_eq!(io_weight_v2(10), 1);
        assert_eq!(io_weight_v2(500), 4950);
        assert_eq!(io_weight_v2(1000), 10_000);
    }

    #[test]
    fn cpus_become_a_quota_over_the_period() {
        assert_eq!(
            limits(&["--cpus", "0.5"]).unwrap().cpu_quota,
            Some((50_000, 100_000))
        );
        assert_eq!(
            limits(&["--cpus", "1.25"]).unwrap().cpu_quota,
            Some((125_000, 100_000))
        );
    }

    #[test]
    fn swap_defaults_to_as_much_again_as_memory() {
        let l = limits(&["--memory", "64m"]).unwrap();
        assert_eq!(
            (l.memory, l.swap),
            (Some(64 << 20), Some(Swap::Total(128 << 20)))
        );
        let l = limits(&["--memory", "64m", "--memory-swap", "-1"]).unwrap();
        assert_eq!(l.swap, Some(Swap::Unlimited));
    }

    #[test]
    fn limits_that_cannot_be_met_are_refused() {
        insta::assert_snapshot!(limits(&["--memory", "1m"]).unwrap_err().to_string(), @"--memory 1m is below the minimum of 6m a container needs to start");
        insta::assert_snapshot!(limits(&["--memory", "64m", "--memory-swap", "32m"]).unwrap_err().to_string(), @"--memory-swap 32m is below --memory 64m; it counts memory plus swap");
    }

    #[test]
    fn limits_go_through_the_spec_and_back_unchanged() {
        let l = limits(&[
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "10",
            "--io-weight",
            "300",
        ])
        .unwrap();
        let spec = l.to_spec();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["memory"]["limit"], 64 << 20);
        assert_eq!(
            json["memory"]["swap"],
            128 << 20,
            "memory plus swap, as docker's --memory-swap"
        );
        assert_eq!(json["cpu"]["quota"], 50_000);
        assert_eq!(json["pids"]["limit"], 10);
        assert_eq!(Limits::from_spec(&spec), l);
        let unlimited = limits(&[
            "--pids-limit",
            "-1",
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
        ])
        .unwrap();
        assert_eq!(Limits::from_spec(&unlimited.to_spec()), unlimited);
        assert_eq!(
            serde_json::to_value(limits(&[]).unwrap().to_spec()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn unlimited_pids_is_a_limit_asked_for() {
        let l = limits(&["--pids-limit", "-1"]).unwrap();
        assert_eq!(l.pids, Some(None));
        assert_eq!(l.asked(), ["--pids-limit"]);
        assert!(limits(&[]).unwrap().asked().is_empty());
    }
}
