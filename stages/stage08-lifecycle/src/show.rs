//! The verbs that look: `ps`, `inspect`, `logs`, `stats`, `top`.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use stage01_uts::cli::Untrusted;
use stage01_uts::{ContainerId, Error};
use stage05_cgroups::cgroup::Stats;
use stage06_overlay::cli::StoreArgs;

use crate::cli::{Format, LogsArgs, PsArgs, StatsArgs, Target, Targets};
use crate::logs::{self, Filter, Stream};
use crate::recover::{self, observe};
use crate::state::{Record, Status, Store};
use crate::time::Time;
use crate::verbs::open;

/// The command a record runs, as `ps` shows it.
fn command_of(store: &Store, id: &ContainerId) -> String {
    store
        .spec(id)
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.args().clone()))
        .unwrap_or_default()
        .join(" ")
}

/// Rows in columns as wide as their widest cell, three spaces apart (docker's
/// tabwriter); every cell shown as untrusted text.
pub fn table(rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| Untrusted(c).to_string()).collect())
        .collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// The record, with when it started from the live state if the record
/// does not have it yet (a foreground container's never does).
fn with_start(store: &Store, id: &ContainerId, mut record: Record) -> Record {
    if record.started.is_none() {
        record.started = store.state(id).and_then(|s| s.started);
    }
    record
}

/// `ps`.
// ANCHOR: ps
pub fn ps(args: &PsArgs, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    recover::reconcile_all(&store);
    let now = Time::now();
    let mut rows = Vec::new();
    for id in store.ids() {
        let Ok(record) = store.record(&id) else {
            continue;
        };
        let status = store.status(&id, &record);
        if !args.all && !matches!(status, Status::Running | Status::Paused) {
            continue;
        }
        let record = with_start(&store, &id, record);
        rows.push((id, record, status));
    }
    rows.sort_by(|a, b| b.1.created.cmp(&a.1.created));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (id, _, _) in &rows {
            let _ = writeln!(out, "{}", id.short());
        }
        return Ok(());
    }
    // A later stage's ports (stage 09's -p), for the PORTS column.
    let ports = |id: &ContainerId| -> Option<String> {
        let extension = crate::extension()?;
        Some(
            store
                .spec(id)
                .map(|s| extension.ports(&s))
                .unwrap_or_default(),
        )
    };
    if args.format == Format::Json {
        for (id, record, status) in &rows {
            let mut line = json!({
                "ID": id.short(),
                "Image": record.image,
                "Command": command_of(&store, id),
                "CreatedAt": record.created,
                "State": status.as_str(),
                "Status": record.shown_status(*status, now),
                "Names": record.name,
            });
            if let Some(ports) = ports(id) {
                line["Ports"] = json!(ports);
            }
            let _ = writeln!(out, "{line}");
        }
        return Ok(());
    }
    let with_ports = crate::extension().is_some();
    let mut header: Vec<String> = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS"]
        .map(String::from)
        .to_vec();
    if with_ports {
        header.push("PORTS".into());
    }
    header.push("NAMES".into());
    let mut lines = vec![header];
    for (id, record, status) in &rows {
        let created = Time::parse_rfc3339(&record.created)
            .map(|t| format!("{} ago", crate::time::human(now.since(t))))
            .unwrap_or_default();
        let mut line = vec![
            id.short().to_owned(),
            truncate(&record.image, 30),
            format!("\"{}\"", truncate(&command_of(&store, id), 20)),
            created,
            record.shown_status(*status, now),
        ];
        if with_ports {
            line.push(ports(id).unwrap_or_default());
        }
        line.push(record.name.clone());
        lines.push(line);
    }
    let _ = out.write_all(table(&lines).as_bytes());
    Ok(())
}
// ANCHOR_END: ps

/// `inspect`: a JSON array, one object per container, docker's field names.
pub fn inspect(args: &Targets, store: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store)?;
    let mut all = Vec::new();
    let found = crate::verbs::each(&args.containers, |query| {
        let (id, record, status) = observe(&store, query)?;
        let record = with_start(&store, &id, record);
        let spec = store.spec(&id)?;
        let state = store.state(&id).filter(|_| status != Status::Exited);
        let process = spec.process().as_ref();
        all.push(json!({
            "Id": id.as_str(),
            "Name": record.name,
            "Created": record.created,
            "Path": process.and_then(|p| p.args().as_ref()).and_then(|a| a.first()),
            "Args": process.and_then(|p| p.args().as_ref()).map(|a| a.iter().skip(1).collect::<Vec<_>>()),
            "State": {
                "Status": status.as_str(),
                "Running": matches!(status, Status::Running | Status::Paused),
                "Paused": status == Status::Paused,
                "Pid": state.as_ref().map_or(0, |s| s.pid.pid),
                "MonitorPid": state.as_ref().map_or(0, |s| s.monitor.pid),
                "ExitCode": record.exit_code.unwrap_or(0),
                "OOMKilled": record.oom_killed,
                "Error": record.error.clone().unwrap_or_default(),
                "StartedAt": record.started,
                "FinishedAt": record.finished,
            },
            "Image": record.image,
            "Rootfs": record.rootfs,
            "Layers": record.lowers,
            "LogPath": store.dir(&id).join(logs::LOG),
            "CgroupPath": record.cgroup,
            "NetworkSettings": crate::extension()
                .map(|e| e.settings(&store.root, &id, &spec))
                .unwrap_or(serde_json::Value::Null),
            "Mounts": spec.mounts(),
            "Config": spec,
            "HostConfig": {
                "AutoRemove": record.remove_on_exit,
                "Tty": record.tty,
                "OpenStdin": record.interactive,
                "LogConfig": {"max-size": record.log.max_size, "max-file": record.log.max_files},
            },
        }));
        Ok(())
    });
    // What was found is printed, whatever was not.
    let text = serde_json::to_string_pretty(&all).expect("JSON");
    println!("{text}");
    found
}

/// `logs`.
// ANCHOR: logs
pub fn logs(args: &LogsArgs, store_args: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store_args)?;
    let (id, _, _) = observe(&store, &args.target.container)?;
    let since = match &args.since {
        Some(text) => Some(Time::parse_since(text, Time::now()).ok_or_else(|| {
            crate::state::LifecycleError::Io {
                what: "--since",
                path: text.clone(),
                why: "give a time (2026-11-30T16:00:00Z, or seconds since the epoch) or a \
                      duration (10m, 1h30m)"
                    .into(),
            }
        })?),
        None => None,
    };
    let filter = Filter {
        tail: args.tail.and_then(|t| t.0),
        since,
        timestamps: args.timestamps,
    };
    let dir = store.dir(&id);
    // Where following starts is taken before the reading: nothing written
    // in between is lost (at worst a line shows twice).
    let mut follower = args.follow.then(|| logs::Follower::at_end(&dir));
    for (stream, line) in logs::read_all(&dir, &filter) {
        emit(stream, &line);
    }
    let Some(follower) = &mut follower else {
        return Ok(());
    };
    let mut printer = logs::Printer::new(Filter {
        tail: None,
        ..filter
    });
    loop {
        let alive = store
            .record(&id)
            .map(|r| store.status(&id, &r) != Status::Exited)
            .unwrap_or(false);
        for record in follower.poll() {
            if let Some((stream, line)) = printer.feed(record) {
                emit(stream, &line);
            }
        }
        if !alive {
            for (stream, rest) in printer.rest() {
                emit(stream, &rest);
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
// ANCHOR_END: logs

fn emit(stream: Stream, bytes: &[u8]) {
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(bytes),
        Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
}

/// One reading of a container's cgroup.
struct Reading {
    at: Instant,
    stats: Stats,
}

fn read(store: &Store, id: &ContainerId) -> Option<Reading> {
    let spec = store.spec(id).ok()?;
    let cgroup = stage05_cgroups::container_cgroup::locate(&spec, id.as_str())?;
    Some(Reading {
        at: Instant::now(),
        stats: cgroup.stats(),
    })
}

fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// 1.5MiB, as docker stats shows sizes.
fn binary(bytes: u64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    units.iter().find(|(size, _)| bytes >= *size).map_or_else(
        || format!("{bytes}B"),
        |(size, unit)| format!("{:.2}{unit}", bytes as f64 / *size as f64),
    )
}

/// 1.500MB, as docker stats shows I/O.
fn decimal(bytes: u64) -> String {
    stage05_cgroups::cli::decimal(bytes, 3)
}

/// `stats`: CPU (the share of one CPU, as docker shows it: 200% is two),
/// memory (page cache the kernel can take back left out, as docker does),
/// processes, block I/O; refreshed every second until interrupted, or once
/// with `--no-stream`.
// ANCHOR: stats
pub fn stats(args: &StatsArgs, store_args: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store_args)?;
    let chosen: Vec<(ContainerId, Record)> = if args.containers.is_empty() {
        recover::reconcile_all(&store);
        store
            .ids()
            .into_iter()
            .filter_map(|id| {
                let record = store.record(&id).ok()?;
                matches!(store.status(&id, &record), Status::Running | Status::Paused)
                    .then_some((id, record))
            })
            .collect()
    } else {
        let mut chosen = Vec::new();
        for query in &args.containers {
            let (id, record, _) = observe(&store, query)?;
            chosen.push((id, record));
        }
        chosen
    };
    let total = host_memory();
    let tty = nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
    let mut before: Vec<Option<Reading>> = chosen.iter().map(|(id, _)| read(&store, id)).collect();
    loop {
        std::thread::sleep(Duration::from_millis(if args.no_stream {
            500
        } else {
            1000
        }));
        let now: Vec<Option<Reading>> = chosen.iter().map(|(id, _)| read(&store, id)).collect();
        let mut out = String::new();
        let mut lines = vec![
            [
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "PIDS",
                "BLOCK I/O",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for (((id, record), old), new) in chosen.iter().zip(&before).zip(&now) {
            let running = store.status(id, record) != Status::Exited;
            let (cpu, stats) = match (old, new) {
                (Some(old), Some(new)) if running => {
                    let used = new
                        .stats
                        .cpu_usec
                        .unwrap_or(0)
                        .saturating_sub(old.stats.cpu_usec.unwrap_or(0));
                    let wall = new.at.duration_since(old.at).as_micros().max(1) as f64;
                    (used as f64 / wall * 100.0, new.stats)
                }
                _ => (0.0, Stats::default()),
            };
            let used = stats
                .memory_bytes
                .unwrap_or(0)
                .saturating_sub(stats.memory_reclaimable_bytes.unwrap_or(0));
            let limit = stats.memory_limit_bytes.or(total).unwrap_or(0);
            let percent = if limit > 0 {
                used as f64 / limit as f64 * 100.0
            } else {
                0.0
            };
            let (read_b, write_b) = (
                stats.io_read_bytes.unwrap_or(0),
                stats.io_write_bytes.unwrap_or(0),
            );
            if args.format == Format::Json {
                let line = json!({
                    "ID": id.short(),
                    "Name": record.name,
                    "CPUPerc": format!("{cpu:.2}%"),
                    "MemUsage": format!("{} / {}", binary(used), binary(limit)),
                    "MemPerc": format!("{percent:.2}%"),
                    "MemBytes": used,
                    "MemLimitBytes": limit,
                    "PIDs": stats.pids.unwrap_or(0),
                    "BlockIO": format!("{} / {}", decimal(read_b), decimal(write_b)),
                    "BlockReadBytes": read_b,
                    "BlockWriteBytes": write_b,
                    "CPUUsec": stats.cpu_usec.unwrap_or(0),
                });
                out.push_str(&format!("{line}\n"));
            } else {
                lines.push(vec![
                    id.short().to_owned(),
                    truncate(&record.name, 30),
                    format!("{cpu:.2}%"),
                    format!("{} / {}", binary(used), binary(limit)),
                    format!("{percent:.2}%"),
                    stats.pids.unwrap_or(0).to_string(),
                    format!("{} / {}", decimal(read_b), decimal(write_b)),
                ]);
            }
        }
        if args.format == Format::Table {
            if tty && !args.no_stream {
                out.push_str("\x1b[2J\x1b[H");
            }
            out.push_str(&table(&lines));
        }
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
            || args.no_stream
        {
            return Ok(());
        }
        before = now;
    }
}
// ANCHOR_END: stats

/// `top`: the container's processes, from its cgroup.
pub fn top(args: &Target, store_args: &StoreArgs) -> Result<(), Error> {
    let (store, _) = open(store_args)?;
    let (id, _, status) = observe(&store, &args.container)?;
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(crate::state::LifecycleError::NotRunning(args.container.clone()).into());
    }
    let spec = store.spec(&id)?;
    let procs = stage05_cgroups::container_cgroup::locate(&spec, id.as_str())
        .map(|c| c.procs())
        .unwrap_or_default();
    let ticks = crate::proc::ticks_per_second();
    let mut lines = vec![
        ["UID", "PID", "PPID", "TIME", "CMD"]
            .map(String::from)
            .to_vec(),
    ];
    for pid in procs {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ppid = fields.get(1).copied().unwrap_or("0").to_owned();
        let cpu: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let secs = cpu / ticks;
        let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|u| u.split_whitespace().next().map(str::to_owned))
            })
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cmd = match cmd.trim_end() {
            "" => format!("[{}]", &stat[stat.find('(').map_or(0, |i| i + 1)..close]),
            cmd => cmd.to_owned(),
        };
        lines.push(vec![uid, pid.to_string(), ppid, time, cmd]);
    }
    let _ = std::io::stdout().lock().write_all(table(&lines).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_shows_them() {
        assert_eq!(binary(512), "512B");
        assert_eq!(binary(64 << 20), "64.00MiB");
        assert_eq!(decimal(1_500_000), "1.500MB");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
