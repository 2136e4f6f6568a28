//! `run`'s arguments at stage 05: stage 04's, plus resource limits.

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;

/// `run`'s arguments at stage 05.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage04_user::cli::RunArgs,

    /// Memory limit (bytes, or with b, k, m, g): past it the kernel's OOM
    /// killer ends the container
    #[arg(short = 'm', long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<Bytes>,

    /// Memory plus swap limit, -1 for unlimited swap [default: twice --memory]
    #[arg(
        long,
        value_name = "SIZE",
        allow_hyphen_values = true,
        requires = "memory"
    )]
    pub memory_swap: Option<SwapLimit>,

    /// CPUs the container may use, as a fraction: 0.5 is half of one CPU's time
    #[arg(long, value_name = "FLOAT", allow_hyphen_values = true)]
    pub cpus: Option<Cpus>,

    /// CPU weight relative to other containers (2 to 262144; 1024 is the default)
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=262144))]
    pub cpu_shares: Option<u64>,

    /// Most processes (and threads) the container may have at once; -1 for no limit
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = pids_limit)]
    pub pids_limit: Option<i64>,

    /// Block I/O weight relative to other containers (10 to 1000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(10..=1000))]
    pub io_weight: Option<u16>,

    /// Read rate limit on a block device, in bytes per second
    #[arg(long, value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<DeviceRate>,

    /// Write rate limit on a block device, in bytes per second
    #[arg(long, value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<DeviceRate>,

    /// Read rate limit on a block device, in operations per second
    #[arg(long, value_name = "DEVICE:RATE", value_parser = DeviceRate::parse_iops)]
    pub device_read_iops: Vec<DeviceRate>,

    /// Write rate limit on a block device, in operations per second
    #[arg(long, value_name = "DEVICE:RATE", value_parser = DeviceRate::parse_iops)]
    pub device_write_iops: Vec<DeviceRate>,

    /// The cgroup to create the container's cgroup in [default: myruntime]
    #[arg(long, value_name = "PATH", value_parser = cgroup_parent)]
    pub cgroup_parent: Option<PathBuf>,
}
// ANCHOR_END: run_args

/// `bytes` in decimal units, as docker prints image sizes (`7.8MB`) and I/O
/// (`1.500MB`), with `digits` after the point.
pub fn decimal(bytes: u64, digits: usize) -> String {
    let units = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    units
        .iter()
        .find(|(size, _)| bytes as f64 >= *size)
        .map_or_else(
            || format!("{bytes}B"),
            |(size, unit)| format!("{:.digits$}{unit}", bytes as f64 / size),
        )
}

/// A size in bytes, written as docker writes them: `64m`, `1.5g`, `512k`,
/// `1048576` (units are powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl FromStr for Bytes {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("size", s, reason);
        let lower = s.trim().to_ascii_lowercase();
        if lower.starts_with('-') {
            return refuse("a size cannot be negative; give one such as 64m");
        }
        let digits_end = lower
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(digits_end);
        let Ok(number) = number.parse::<f64>() else {
            return refuse("write a number with an optional unit: 512k, 64m, 1.5g");
        };
        let unit = unit.trim_end_matches("ib").trim_end_matches('b');
        let scale: u64 = match unit {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            "t" => 1 << 40,
            _ => return refuse("the unit must be b, k, m, g or t"),
        };
        let bytes = number * scale as f64;
        // The kernel and docker read sizes as signed 64-bit numbers.
        if !bytes.is_finite() || bytes > i64::MAX as f64 {
            return refuse("it is too large: sizes go up to 2^63-1 bytes");
        }
        if bytes < 1.0 {
            return refuse("it must be at least one byte");
        }
        Ok(Bytes(bytes as u64))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(1u64 << 30, "g"), (1 << 20, "m"), (1 << 10, "k")];
        match units
            .iter()
            .find(|(size, _)| self.0 >= *size && self.0 % size == 0)
        {
            Some((size, unit)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapLimit {
    Total(Bytes),
    Unlimited,
}

impl FromStr for SwapLimit {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "-1" {
            return Ok(SwapLimit::Unlimited);
        }
        s.parse()
            .map(SwapLimit::Total)
            .map_err(|e: InvalidValue| InvalidValue {
                what: "memory+swap size",
                ..e
            })
    }
}

/// `--cpus`: a share of CPU time, to a hundredth of a CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

impl FromStr for Cpus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("number of CPUs", s, reason);
        let Ok(cpus) = s.trim().parse::<f64>() else {
            return refuse("write a number such as 0.5 or 2");
        };
        if !cpus.is_finite() || cpus < 0.01 {
            return refuse("it must be at least 0.01");
        }
        let online = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if cpus > online {
            return refuse("it is more than the CPUs this machine has");
        }
        Ok(Cpus(cpus))
    }
}

/// `--device-read-bps /dev/sda:1m`: a block device and a rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRate {
    pub device: PathBuf,
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
}

impl DeviceRate {
    fn parse(spec: &str, iops: bool) -> Result<Self, InvalidValue> {
        let refuse = |reason| InvalidValue::refuse("device rate", spec, reason);
        let Some((device, rate)) = spec.rsplit_once(':') else {
            return refuse("write it as DEVICE:RATE, e.g. /dev/sda:1m");
        };
        let rate = if iops {
            match rate.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return refuse("the rate must be a whole number of operations per second"),
            }
        } else {
            match rate.parse::<Bytes>() {
                Ok(b) => b.0,
                Err(_) => return refuse("the rate must be a size per second, e.g. 1m"),
            }
        };
        let Ok(meta) = std::fs::metadata(device) else {
            return refuse("no such device");
        };
        if !meta.file_type().is_block_device() {
            return refuse("it is not a block device");
        }
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        Ok(DeviceRate {
            device: device.into(),
            major: libc::major(rdev) as u64,
            minor: libc::minor(rdev) as u64,
            rate,
        })
    }

    /// `DEVICE:OPERATIONS`.
    pub fn parse_iops(spec: &str) -> Result<Self, InvalidValue> {
        Self::parse(spec, true)
    }
}

impl FromStr for DeviceRate {
    type Err = InvalidValue;

    /// `DEVICE:BYTES`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec, false)
    }
}

fn pids_limit(s: &str) -> Result<i64, InvalidValue> {
    match s.parse::<i64>() {
        Ok(-1) => Ok(-1),
        Ok(n) if n > 0 => Ok(n),
        _ => InvalidValue::refuse(
            "pids limit",
            s,
            "give a positive number, or -1 for no limit",
        ),
    }
}

fn cgroup_parent(s: &str) -> Result<PathBuf, InvalidValue> {
    let path = Path::new(s.trim_start_matches('/'));
    let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
    if s.is_empty() || path.as_os_str().is_empty() || !normal {
        return InvalidValue::refuse(
            "cgroup parent",
            s,
            "give a path of names below the cgroup root, such as myruntime or batch/jobs",
        );
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1024", 1024)]
    #[case("512k", 512 << 10)]
    #[case("64m", 64 << 20)]
    #[case("64M", 64 << 20)]
    #[case("64mb", 64 << 20)]
    #[case("1.5g", 3 << 29)]
    #[case("2GiB", 2 << 30)]
    fn sizes_read_as_docker_reads_them(#[case] s: &str, #[case] bytes: u64) {
        assert_eq!(s.parse::<Bytes>().unwrap(), Bytes(bytes));
    }

    #[rstest]
    #[case("")]
    #[case("m")]
    #[case("12x")]
    #[case("0")]
    #[case("-5m")]
    fn bad_sizes_are_refused(#[case] s: &str) {
        assert!(s.parse::<Bytes>().is_err(), "{s}");
    }

    #[test]
    fn each_refusal_says_what_is_wrong() {
        let why = |s: &str| s.parse::<Bytes>().unwrap_err().reason;
        assert_eq!(why("-1"), "a size cannot be negative; give one such as 64m");
        assert_eq!(
            why("99999999999999999999"),
            "it is too large: sizes go up to 2^63-1 bytes"
        );
        assert_eq!(why("0.1"), "it must be at least one byte");
        assert!(
            "-1".parse::<Cpus>()
                .unwrap_err()
                .reason
                .contains("at least 0.01")
        );
    }

    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        assert_eq!(Bytes(64 << 20).to_string(), "64m");
        assert_eq!(Bytes(1536).to_string(), "1536");
        assert_eq!(Bytes(2 << 30).to_string(), "2g");
    }

    #[test]
    fn swap_may_be_unlimited() {
        assert_eq!("-1".parse::<SwapLimit>().unwrap(), SwapLimit::Unlimited);
        assert_eq!(
            "1g".parse::<SwapLimit>().unwrap(),
            SwapLimit::Total(Bytes(1 << 30))
        );
    }

    #[test]
    fn cpus_within_the_machine() {
        assert_eq!("0.5".parse::<Cpus>().unwrap(), Cpus(0.5));
        assert!("0".parse::<Cpus>().is_err());
        insta::assert_snapshot!("1000".parse::<Cpus>().unwrap_err().to_string(), @r#"invalid number of CPUs "1000": it is more than the CPUs this machine has"#);
    }

    #[test]
    fn device_rates_need_a_block_device() {
        let err = "/dev/null:1m".parse::<DeviceRate>().unwrap_err();
        insta::assert_snapshot!(err.to_string(), @r#"invalid device rate "/dev/null:1m": it is not a block device"#);
        assert!("/no/such/device:1m".parse::<DeviceRate>().is_err());
        assert!(DeviceRate::parse_iops("/dev/null:x").is_err());
    }

    #[test]
    fn pids_limits() {
        assert_eq!(pids_limit("100"), Ok(100));
        assert_eq!(pids_limit("-1"), Ok(-1));
        assert!(pids_limit("0").is_err());
    }

    #[test]
    fn cgroup_parents_stay_below_the_root() {
        assert_eq!(
            cgroup_parent("/batch/jobs").unwrap(),
            PathBuf::from("batch/jobs")
        );
        assert!(cgroup_parent("../x").is_err());
        assert!(cgroup_parent("/").is_err());
    }
}
