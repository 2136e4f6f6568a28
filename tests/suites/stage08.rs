//! Stage 08 suite: containers that outlive the command.
//!
//! Runs `$RUNTIME_BIN` (default: stage08-lifecycle) with docker's verbs:
//! `run [-d] [--name N] [--rm] [-i] [-t]`, `create`, `start [-a]`, `attach`,
//! `exec`, `logs`, `ps`, `inspect`, `stats`, `top`, `wait`, `stop`, `kill`,
//! `restart`, `pause`, `unpause`, `rm`. Every test has a data directory
//! (`MYRUNTIME_ROOT`) and a cgroup parent of its own, and leaves neither a
//! container, a monitor, a cgroup nor a file behind, passed or failed. As
//! root:
//!
//! ```sh
//! make test-stage STAGE=08 [BIN=/path/to/yours]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::registry::{Compression, ImageSpec, Layer, Layout, Registry};
use harness::{Outcome, Rootfs, Run, Runtime, host};
use rstest::{fixture, rstest};
use serde_json::Value;

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage08-lifecycle").with_rootfs()
}

/// A test's own data directory and cgroup parent, and what it started.
struct Lab {
    rt: Runtime,
    store: tempfile::TempDir,
    parent: host::CgroupParent,
}

impl Lab {
    fn new(rt: Runtime) -> Lab {
        Lab {
            rt,
            store: tempfile::tempdir().unwrap(),
            parent: host::CgroupParent::new(),
        }
    }

    fn root(&self) -> &str {
        self.store.path().to_str().unwrap()
    }

    /// `BIN VERB` on this lab's data directory.
    fn verb(&self, verb: &str) -> Run {
        Run::new(&self.rt.bin)
            .env("MYRUNTIME_ROOT", self.root())
            .arg(verb)
    }

    /// `BIN run|create --cgroup-parent P --rootfs R` (options follow).
    fn make(&self, verb: &str) -> Run {
        self.verb(verb)
            .args(["--cgroup-parent", &self.parent.0])
            .rootfs(Rootfs::shared())
    }

    /// `run -d ARGS -- /probe MODE...`: the id it prints.
    fn detached(&self, args: &[&str], mode: &[&str]) -> String {
        let out = self.make("run").arg("-d").args(args).probe(mode).output();
        out.expect_code(0, "run -d starts the container and returns");
        let id = out.stdout().trim().to_owned();
        assert!(
            is_id(&id),
            "run -d prints the full id: {id:?}\n{}",
            out.describe()
        );
        id
    }

    /// `run -d ARGS -- sh -c SCRIPT`.
    fn detached_sh(&self, args: &[&str], script: &str) -> String {
        let out = self
            .make("run")
            .arg("-d")
            .args(args)
            .command(["sh", "-c", script])
            .output();
        out.expect_code(0, "run -d starts the container and returns");
        out.stdout().trim().to_owned()
    }

    fn ok(&self, verb: &str, args: &[&str]) -> Outcome {
        let out = self.verb(verb).args(args).output();
        out.expect_code(0, &format!("{verb} {}", args.join(" ")));
        out
    }

    fn inspect(&self, container: &str) -> Value {
        let all = whole_json(&self.ok("inspect", &[container]));
        all[0].clone()
    }

    fn status(&self, container: &str) -> String {
        self.inspect(container)["State"]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Poll until `ready` holds (10 s at most).
    fn until(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < deadline, "waited 10 s for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self, container: &str) -> Outcome {
        self.ok("logs", &[container])
    }

    /// The processes that have this lab's data directory in their
    /// environment: its runtimes and monitors (the containers' own
    /// processes get an environment of their own).
    fn processes(&self) -> Vec<i32> {
        let wanted = format!("MYRUNTIME_ROOT={}", self.root());
        let me = std::process::id() as i32;
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
                    .unwrap_or(false)
            })
            .filter(|pid| !zombie(*pid))
            .collect()
    }

    /// Everything a container could leave: entries of the data directory's
    /// containers/, runtime directories of its containers, cgroups under the
    /// lab's parent, runtimes and monitors, mounts under the data directory.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let containers = self.store.path().join("containers");
        for entry in std::fs::read_dir(&containers)
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("file {}", entry.path().display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            if Path::new("/run/myruntime/containers").join(&name).exists() {
                left.push(format!("runtime dir of {name}"));
            }
        }
        for controller in ["pids", "memory", "cpu", "freezer", ""] {
            for cgroup in self.parent.children(controller) {
                left.push(format!("cgroup {controller}:{cgroup}"));
            }
        }
        for pid in self.processes() {
            left.push(format!("process {pid}"));
        }
        for mount in host::mounts_under(self.store.path()) {
            left.push(format!("mount {mount}"));
        }
        left.sort();
        left.dedup();
        left
    }

    /// `rm -f` every container, then nothing may be left.
    fn remove_all_and_check(&self) {
        let ids = self.ok("ps", &["-aq"]).stdout();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["-f"];
            args.extend(ids);
            self.ok("rm", &args);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.leftovers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        harness::expect_eq!(
            self.leftovers(),
            Vec::<String>::new(),
            "rm -f of every container left these"
        );
    }
}

impl Drop for Lab {
    /// Whatever a failed test left: removed the runtime's way, then by force.
    fn drop(&mut self) {
        let ids = self.verb("ps").arg("-aq").output().stdout();
        for id in ids.split_whitespace() {
            let _ = self.verb("rm").args(["-f", id]).output();
        }
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs its closure when dropped: cleanup that a failed assertion must not
/// skip.
struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

/// All of stdout as one JSON document (`inspect`, `--dry-run`).
fn whole_json(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", out.describe()))
}

fn is_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Milestone 08.1: a container is data: the command line becomes an OCI
/// runtime spec, made (create) without running, and started by another
/// process.
mod m1_spec {
    use super::*;

    #[rstest]
    fn dry_run_prints_the_spec_the_flags_make_and_makes_nothing(rt: Runtime) {
        let lab = Lab::new(rt);
        let out = lab
            .make("run")
            .args([
                "--dry-run",
                "--hostname",
                "web",
                "-m",
                "64m",
                "--pids-limit",
                "20",
            ])
            .args(["-e", "APP=1", "-w", "/srv"])
            .probe(&["report"])
            .output();
        out.expect_code(0, "--dry-run prints the spec");
        let spec = whole_json(&out);
        harness::expect_eq!(
            spec["ociVersion"].as_str().map(|v| v.starts_with("1.")),
            Some(true)
        );
        harness::expect_eq!(spec["hostname"], "web");
        harness::expect_eq!(spec["process"]["cwd"], "/srv");
        harness::expect_eq!(spec["process"]["args"][1], "report");
        assert!(
            spec["process"]["env"]
                .as_array()
                .unwrap()
                .contains(&Value::from("APP=1")),
            "{spec}"
        );
        harness::expect_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        harness::expect_eq!(spec["linux"]["resources"]["pids"]["limit"], 20);
        let namespaces: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for ns in ["pid", "mount", "uts", "ipc", "cgroup"] {
            assert!(namespaces.contains(&ns), "{ns} in {namespaces:?}");
        }
        let mounts: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert!(mounts.starts_with(&["/proc", "/sys", "/dev"]), "{mounts:?}");
        assert!(spec["linux"]["maskedPaths"].as_array().unwrap().len() > 3);
        harness::expect_eq!(
            lab.leftovers(),
            Vec::<String>::new(),
            "--dry-run made nothing"
        );
    }

    #[rstest]
    fn create_makes_it_without_running_it_and_start_runs_it(rt: Runtime) {
        let lab = Lab::new(rt);
        let out = lab
            .make("create")
            .args(["--name", "later"])
            .probe(&["write", "/ran"])
            .output();
        out.expect_code(0, "create makes the container");
        let id = out.stdout().trim().to_owned();
        assert!(is_id(&id), "create prints the id: {id:?}");
        harness::expect_eq!(lab.status("later"), "created");
        let upper = lab.store.path().join("containers").join(&id).join("upper");
        assert!(
            !upper.join("ran").exists(),
            "created, COMMAND has not run yet"
        );
        let ps = lab.ok("ps", &["-a"]).stdout();
        assert!(ps.contains("Created") && ps.contains("later"), "{ps}");
        // Started from another process: the spec and state are on disk.
        lab.ok("start", &["later"]);
        lab.until("COMMAND to run", || upper.join("ran").exists());
        lab.until("it to exit", || lab.status("later") == "exited");
        harness::expect_eq!(lab.inspect("later")["State"]["ExitCode"], 0);
        let spec: Value = serde_json::from_slice(
            &std::fs::read(upper.parent().unwrap().join("config.json")).unwrap(),
        )
        .unwrap();
        harness::expect_eq!(
            spec["process"]["args"][1],
            "write",
            "the spec it ran is kept"
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn start_attached_returns_its_status_and_a_stopped_one_starts_again_with_its_files(
        rt: Runtime,
    ) {
        let lab = Lab::new(rt);
        lab.make("create")
            .args(["--name", "count"])
            .command(["sh", "-c", "echo x >> /counter; wc -l < /counter; exit 3"])
            .output()
            .expect_code(0, "created");
        let first = lab.verb("start").args(["-a", "count"]).output();
        first.expect_code(3, "start -a exits with the container's status");
        harness::expect_eq!(first.stdout().trim(), "1");
        let second = lab.verb("start").args(["-a", "count"]).output();
        second.expect_code(3, "a stopped container starts again");
        harness::expect_eq!(second.stdout().trim(), "2", "its writes were kept");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn a_running_container_cannot_be_started_again(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "busy"], &["sleep", "60"]);
        let out = lab.verb("start").arg("busy").output();
        out.expect_code(1, "start of a running container is refused");
        out.expect_refused(&["busy", "already running"]);
        lab.remove_all_and_check();
    }
}

/// Milestone 08.2: detached containers outlive the command and its
/// terminal; names, ids and prefixes find them; `--rm`.
mod m2_detach {
    use super::*;

    #[rstest]
    fn run_d_returns_at_once_and_the_container_keeps_running(rt: Runtime) {
        let lab = Lab::new(rt);
        let started = Instant::now();
        let id = lab.detached(&["--name", "web"], &["sleep", "60"]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "run -d returned, and its caller was not kept reading its output"
        );
        let state = &lab.inspect("web")["State"];
        harness::expect_eq!(state["Status"], "running");
        let pid = state["Pid"].as_i64().unwrap() as i32;
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "PID 1 runs");
        harness::expect_eq!(
            lab.inspect(&id[..10])["Id"],
            id.as_str(),
            "found by an id prefix"
        );
        harness::expect_eq!(lab.inspect(&id)["Name"], "web", "found by its id");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn it_survives_the_terminal_it_was_started_from(rt: Runtime) {
        let lab = Lab::new(rt);
        let out = lab
            .make("run")
            .args(["-d", "--name", "nohup"])
            .probe(&["sleep", "60"])
            .on_terminal();
        out.expect_code(0, "run -d from a terminal");
        // The terminal is closed now (its master went with on_terminal).
        std::thread::sleep(Duration::from_millis(300));
        harness::expect_eq!(
            lab.status("nohup"),
            "running",
            "the terminal's end did not stop it"
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn names_are_unique_and_made_up_when_not_given(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "db"], &["sleep", "60"]);
        let taken = lab
            .make("run")
            .args(["-d", "--name", "db"])
            .probe(&["exit", "0"])
            .output();
        taken.expect_code(1, "a name in use is refused");
        taken.expect_refused(&["db", "already in use"]);
        let bad = lab
            .make("run")
            .args(["-d", "--name", "no/slash"])
            .probe(&["exit", "0"])
            .output();
        bad.expect_code(1, "a name docker would refuse is refused");
        let id = lab.detached(&[], &["sleep", "60"]);
        let name = lab.inspect(&id)["Name"].as_str().unwrap().to_owned();
        assert!(
            name.contains('_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a readable made-up name: {name:?}"
        );
        harness::expect_eq!(
            lab.ok("ps", &["-q"]).stdout().lines().count(),
            2,
            "the refused ones made nothing"
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn unknown_and_ambiguous_names_are_one_line_and_exit_1(rt: Runtime) {
        let lab = Lab::new(rt);
        let out = lab.verb("stop").arg("nosuch").output();
        out.expect_code(1, "no such container");
        out.expect_refused(&["no such container", "nosuch"]);
        // Seventeen containers: two share a first hex digit.
        for _ in 0..17 {
            lab.make("create")
                .probe(&["exit", "0"])
                .output()
                .expect_code(0, "created");
        }
        let ids = lab.ok("ps", &["-aq"]).stdout();
        let mut firsts: Vec<char> = ids.lines().filter_map(|l| l.chars().next()).collect();
        firsts.sort_unstable();
        let shared = firsts.windows(2).find(|w| w[0] == w[1]).unwrap()[0];
        let out = lab.verb("rm").arg(shared.to_string()).output();
        out.expect_code(1, "an ambiguous prefix");
        out.expect_refused(&["matches", "containers"]);
        lab.remove_all_and_check();
    }

    #[rstest]
    fn rm_flag_removes_it_when_it_exits(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--rm", "--name", "once"], &["exit", "0"]);
        lab.until("--rm to remove it", || {
            !lab.ok("ps", &["-a"]).stdout().contains("once")
        });
        harness::expect_eq!(lab.leftovers(), Vec::<String>::new());
    }

    #[rstest]
    fn an_ordinary_user_has_detached_containers_with_state_of_its_own(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = Rootfs::private_owned_by(user.uid, user.gid);
        let verb = |v: &str| Run::new(&rt.bin).as_user(user).arg(v);
        // Passed or failed: its containers, then the user's runtime
        // directory, which the runtime made for it.
        let run_dir = PathBuf::from(format!("/tmp/myruntime-{}", user.uid));
        let _cleanup = Finally(|| {
            let ids = verb("ps").arg("-aq").output().stdout();
            for id in ids.split_whitespace() {
                let _ = verb("rm").args(["-f", id]).output();
            }
            let _ = std::fs::remove_dir_all(&run_dir);
        });
        let out = verb("run")
            .args(["-d", "--name", "mine"])
            .rootfs(&rootfs)
            .command(["sh", "-c", "echo hi; sleep 60"])
            .output();
        out.expect_code(0, "an ordinary user runs a detached container");
        let id = out.stdout().trim().to_owned();
        // Without XDG_RUNTIME_DIR, a directory of the user's own in /tmp.
        let state = PathBuf::from(format!("/tmp/myruntime-{}/containers/{id}", user.uid));
        assert!(state.join("state.json").exists(), "{}", state.display());
        assert!(!Path::new("/run/myruntime/containers").join(&id).exists());
        let deadline = Instant::now() + Duration::from_secs(10);
        while verb("logs").arg("mine").output().stdout() != "hi\n" {
            assert!(Instant::now() < deadline, "its output");
            std::thread::sleep(Duration::from_millis(50));
        }
        let exec = verb("exec").args(["mine", "id", "-u"]).output();
        exec.expect_code(0, "exec as an ordinary user");
        harness::expect_eq!(exec.stdout().trim(), "0", "root inside its user namespace");
        verb("rm")
            .args(["-f", "mine"])
            .output()
            .expect_code(0, "rm -f");
        assert!(!state.exists(), "its state went with it");
        let data = harness::store_root_for(user.uid)
            .join("containers")
            .join(&id);
        assert!(!data.exists(), "and its files");
    }

    #[rstest]
    fn a_foreground_run_is_listed_while_it_runs_and_removed_after(rt: Runtime) {
        let lab = Lab::new(rt);
        let mut running = lab
            .make("run")
            .args(["--name", "fg"])
            .probe(&["signals"])
            .spawn();
        harness::expect_eq!(running.read_line(), "ready");
        harness::expect_eq!(lab.status("fg"), "running");
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish().expect_code(0, "the probe ends on SIGTERM");
        assert!(!lab.ok("ps", &["-a"]).stdout().contains("fg"));
        harness::expect_eq!(lab.leftovers(), Vec::<String>::new());
    }
}

/// Milestone 08.3: output kept, stdout and stderr apart, after the
/// container exits, capped in size.
mod m3_logs {
    use super::*;

    #[rstest]
    fn streams_stay_apart_and_are_kept_after_exit(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached_sh(
            &["--name", "talk"],
            "echo out1; echo err1 >&2; echo out2; printf partial",
        );
        lab.until("it to exit", || lab.status("talk") == "exited");
        let out = lab.logs("talk");
        harness::expect_eq!(out.stdout(), "out1\nout2\npartial");
        harness::expect_eq!(out.stderr(), "err1\n");
        let tail = lab.ok("logs", &["--tail", "1", "talk"]);
        harness::expect_eq!(tail.stdout(), "partial");
        let stamped = lab.ok("logs", &["-t", "talk"]).stdout();
        let first = stamped.lines().next().unwrap();
        let (time, rest) = first.split_once(' ').unwrap();
        harness::expect_eq!(rest, "out1");
        assert!(
            time.ends_with('Z') && time.contains('T'),
            "an RFC 3339 time: {time}"
        );
        let none = lab.ok("logs", &["--since", "2099-01-01T00:00:00Z", "talk"]);
        harness::expect_eq!(none.stdout(), "");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn follow_prints_what_comes_and_ends_with_the_container(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached_sh(
            &["--name", "tick"],
            "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done",
        );
        let out = lab.verb("logs").args(["-f", "tick"]).output();
        out.expect_code(0, "logs -f ends when the container does");
        harness::expect_eq!(
            lines(&out.stdout()),
            (1..=5).map(|i| format!("tick {i}")).collect::<Vec<_>>()
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn the_log_is_capped_and_rotated(rt: Runtime) {
        let lab = Lab::new(rt);
        let id = lab.detached_sh(
            &["--log-opt", "max-size=8k", "--log-opt", "max-file=2"],
            "i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
        );
        lab.until("it to exit", || lab.status(&id) == "exited");
        let dir = lab.store.path().join("containers").join(&id);
        let logs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("container.log")
            })
            .collect();
        harness::expect_eq!(logs.len(), 2, "max-file=2: {logs:?}");
        let total: u64 = logs.iter().map(|p| p.metadata().unwrap().len()).sum();
        assert!(total <= 2 * 8192 + 1024, "capped: {total} bytes");
        let kept = lab.logs(&id).stdout();
        assert!(
            kept.ends_with("line-1999-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
            "the newest is kept"
        );
        assert!(!kept.contains("line-0-"), "the oldest went");
        let bad = lab
            .make("run")
            .args(["-d", "--log-opt", "max-size=lots"])
            .probe(&["exit", "0"])
            .output();
        bad.expect_code(125, "a bad log option is a usage error");
        lab.remove_all_and_check();
    }
}

/// Milestone 08.4: `exec` joins every namespace, the cgroup and the root of
/// a running container.
mod m4_exec {
    use super::*;

    #[rstest]
    fn exec_lands_in_every_namespace_and_the_cgroup_of_the_container(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "box", "--hostname", "boxed"], &["sleep", "60"]);
        let pid = lab.inspect("box")["State"]["Pid"].as_i64().unwrap();
        let ns = |name: &str| {
            std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
                .unwrap()
                .to_string_lossy()
                .trim_start_matches(&format!("{name}:["))
                .trim_end_matches(']')
                .parse::<u64>()
                .unwrap()
        };
        let out = lab.verb("exec").args(["box", "/probe", "report"]).output();
        out.expect_code(0, "exec runs");
        let report = out.report();
        for name in ["pid", "mnt", "uts", "ipc", "cgroup"] {
            harness::expect_eq!(
                report.namespaces[name],
                ns(name),
                "exec is in the container's {name} namespace"
            );
        }
        harness::expect_eq!(report.hostname, "boxed");
        assert!(report.pid > 1, "a process of the container, not its PID 1");
        assert!(
            report.visible_pids.contains(&1),
            "it sees the container's PID 1"
        );
        let mine = host::cgroup_of(pid as i32, "pids").unwrap();
        assert!(
            report
                .cgroup
                .iter()
                .any(|l| l.ends_with(":/") || l.ends_with("::/")),
            "in the container's cgroup namespace: {:?}",
            report.cgroup
        );
        assert!(mine.contains(&lab.parent.0), "{mine}");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn exec_takes_env_workdir_and_user_and_returns_the_status(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "ex", "-e", "BASE=1"], &["sleep", "60"]);
        let out = lab
            .verb("exec")
            .args([
                "-e", "EXTRA=2", "-w", "/tmp", "-u", "nobody", "ex", "/probe", "report",
            ])
            .output();
        out.expect_code(0, "exec runs");
        let report = out.report();
        harness::expect_eq!(report.cwd, "/tmp");
        harness::expect_eq!(report.env.get("EXTRA").map(String::as_str), Some("2"));
        harness::expect_eq!(
            report.env.get("BASE").map(String::as_str),
            Some("1"),
            "the container's environment"
        );
        harness::expect_eq!(
            report.uid,
            65534,
            "nobody, from the container's /etc/passwd"
        );
        lab.verb("exec")
            .args(["ex", "/probe", "exit", "7"])
            .output()
            .expect_code(7, "exec exits with COMMAND's status");
        lab.verb("exec")
            .args(["ex", "/no/such"])
            .output()
            .expect_code(127, "a command not found is 127, as with run");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn exec_t_gives_a_terminal_and_exec_d_runs_in_the_background(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "tty"], &["sleep", "60"]);
        let out = lab
            .verb("exec")
            .args(["-t", "tty", "/probe", "report"])
            .on_terminal();
        out.expect_code(0, "exec -t runs");
        assert!(
            out.stdout().contains("\"isatty\":[true,true,true]"),
            "{}",
            out.stdout()
        );
        let tag = host::unique_tag("execd");
        lab.ok("exec", &["-d", "tty", "/probe", "sleep", "60", &tag]);
        lab.until("exec -d to run", || !host::processes_with(&tag).is_empty());
        lab.remove_all_and_check();
        assert!(
            host::processes_with(&tag).is_empty(),
            "rm -f took exec -d's process with it"
        );
    }

    #[rstest]
    fn exec_into_a_stopped_container_is_refused(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.make("create")
            .args(["--name", "idle"])
            .probe(&["exit", "0"])
            .output()
            .expect_code(0, "created");
        let out = lab.verb("exec").args(["idle", "/probe", "report"]).output();
        out.expect_code(1, "exec into a container that is not running");
        out.expect_refused(&["idle", "not running"]);
        lab.remove_all_and_check();
    }
}

/// Milestone 08.5: stop, kill, restart, pause, unpause, rm, wait.
mod m5_control {
    use super::*;

    #[rstest]
    fn stop_sends_sigterm_then_sigkill_after_the_grace_time(rt: Runtime) {
        let lab = Lab::new(rt);
        // The probe handles SIGTERM (exits 0); sleep as PID 1 ignores it.
        lab.detached(&["--name", "polite"], &["signals"]);
        lab.detached(&["--name", "stubborn"], &["sleep", "60"]);
        lab.until("the probe to be ready", || {
            lab.logs("polite").stdout().contains("ready")
        });
        lab.ok("stop", &["polite"]);
        harness::expect_eq!(
            lab.inspect("polite")["State"]["ExitCode"],
            0,
            "SIGTERM handled"
        );
        let started = Instant::now();
        lab.ok("stop", &["-t", "1", "stubborn"]);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "it waited the grace time"
        );
        let state = &lab.inspect("stubborn")["State"];
        harness::expect_eq!(state["ExitCode"], 137, "then SIGKILL");
        harness::expect_eq!(state["Status"], "exited");
        // Stopping a stopped container is nothing, as with docker.
        lab.ok("stop", &["stubborn"]);
        lab.remove_all_and_check();
    }

    #[rstest]
    fn stop_sends_the_images_stop_signal(rt: Runtime) {
        let lab = Lab::new(rt);
        let registry = Registry::start();
        let spec = ImageSpec::new(serde_json::json!({
            "Cmd": ["/probe", "signals"], "StopSignal": "SIGUSR1"
        }))
        .layer(Layer::from_dir(Rootfs::shared().path()), Compression::Gzip);
        let layout = Layout::new();
        layout.tag(&spec, "latest");
        registry.push(&layout, "latest", "tests/stopsig:latest");
        let image = registry.name("tests/stopsig");
        let out = lab
            .verb("run")
            .args([
                "-d",
                "--name",
                "usr1",
                "--cgroup-parent",
                &lab.parent.0,
                &image,
            ])
            .output();
        out.expect_code(0, "run -d of the image");
        lab.until("the probe to be ready", || {
            lab.logs("usr1").stdout().contains("ready")
        });
        lab.ok("stop", &["-t", "5", "usr1"]);
        let logs = lab.logs("usr1").stdout();
        assert!(
            logs.contains("SIGUSR1"),
            "the image's StopSignal was sent: {logs}"
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn kill_sends_a_signal_and_wait_prints_the_status(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "kk"], &["sleep", "60"]);
        let waiter = lab.verb("wait").arg("kk").spawn();
        lab.ok("kill", &["-s", "KILL", "kk"]);
        let waited = waiter.finish();
        waited.expect_code(0, "wait returns once it exits");
        harness::expect_eq!(waited.stdout().trim(), "137");
        let out = lab.verb("kill").arg("kk").output();
        out.expect_code(1, "kill of a stopped container");
        out.expect_refused(&["not running"]);
        lab.remove_all_and_check();
    }

    #[rstest]
    fn pause_freezes_every_process_and_unpause_thaws_them(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached_sh(
            &["--name", "ticker"],
            "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done",
        );
        lab.until("output", || !lab.logs("ticker").stdout().is_empty());
        lab.ok("pause", &["ticker"]);
        harness::expect_eq!(lab.status("ticker"), "paused");
        assert!(lab.ok("ps", &[]).stdout().contains("(Paused)"));
        let before = lab.logs("ticker").stdout().lines().count();
        std::thread::sleep(Duration::from_millis(500));
        harness::expect_eq!(
            lab.logs("ticker").stdout().lines().count(),
            before,
            "frozen: no output"
        );
        let out = lab.verb("exec").args(["ticker", "true"]).output();
        out.expect_code(1, "exec into a paused container");
        lab.ok("unpause", &["ticker"]);
        lab.until("output again", || {
            lab.logs("ticker").stdout().lines().count() > before
        });
        let out = lab.verb("unpause").arg("ticker").output();
        out.expect_code(1, "unpause of a running container");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn restart_runs_it_again(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached_sh(&["--name", "again"], "echo run; sleep 60");
        lab.until("the first run", || lab.logs("again").stdout() == "run\n");
        let first = lab.inspect("again")["State"]["Pid"].clone();
        lab.ok("restart", &["-t", "1", "again"]);
        lab.until("the second run", || {
            lab.logs("again").stdout() == "run\nrun\n"
        });
        harness::expect_eq!(lab.status("again"), "running");
        harness::expect_ne!(lab.inspect("again")["State"]["Pid"], first);
        lab.remove_all_and_check();
    }

    #[rstest]
    fn rm_refuses_a_running_container_without_f(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "live"], &["sleep", "60"]);
        let out = lab.verb("rm").arg("live").output();
        out.expect_code(1, "rm of a running container");
        out.expect_refused(&["running", "-f"]);
        harness::expect_eq!(lab.status("live"), "running", "refused: nothing was done");
        lab.ok("rm", &["-f", "live"]);
        harness::expect_eq!(lab.leftovers(), Vec::<String>::new());
    }
}

/// Milestone 08.6: `ps`, `inspect`, `stats` and `top` say what the kernel
/// says.
mod m6_inspect {
    use super::*;

    #[rstest]
    fn ps_lists_running_ones_and_all_with_a(rt: Runtime) {
        let lab = Lab::new(rt);
        let up = lab.detached(&["--name", "up"], &["sleep", "60"]);
        lab.detached(&["--name", "down"], &["exit", "3"]);
        lab.until("down to exit", || lab.status("down") == "exited");
        let ps = lab.ok("ps", &[]).stdout();
        assert!(ps.starts_with("CONTAINER ID"), "{ps}");
        assert!(ps.contains("up") && !ps.contains("down"), "{ps}");
        let all = lab.ok("ps", &["-a"]).stdout();
        assert!(all.contains("Exited (3)"), "{all}");
        harness::expect_eq!(lab.ok("ps", &["-q"]).stdout().trim(), &up[..12]);
        let json: Vec<Value> = lab
            .ok("ps", &["-a", "--format", "json"])
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        harness::expect_eq!(json.len(), 2);
        assert!(
            json.iter()
                .any(|c| c["Names"] == "up" && c["State"] == "running")
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn inspect_shows_state_times_spec_and_cgroup(rt: Runtime) {
        let lab = Lab::new(rt);
        let id = lab.detached(&["--name", "seen", "-m", "32m"], &["alloc", "100"]);
        lab.until("the OOM kill", || lab.status("seen") == "exited");
        let c = lab.inspect("seen");
        harness::expect_eq!(c["Id"], id.as_str());
        harness::expect_eq!(c["State"]["OOMKilled"], true, "{c}");
        harness::expect_eq!(c["State"]["ExitCode"], 137);
        for time in ["StartedAt", "FinishedAt"] {
            assert!(c["State"][time].as_str().unwrap().ends_with('Z'), "{time}");
        }
        harness::expect_eq!(
            c["Config"]["linux"]["resources"]["memory"]["limit"],
            32 << 20
        );
        assert!(c["CgroupPath"].as_str().unwrap().contains(&lab.parent.0));
        assert!(
            c["Mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/proc")
        );
        lab.remove_all_and_check();
    }

    #[rstest]
    fn stats_and_top_read_the_containers_cgroup(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(
            &["--name", "busy", "-m", "64m", "--pids-limit", "30"],
            &["burn", "30"],
        );
        let out = lab.ok("stats", &["--no-stream", "--format", "json", "busy"]);
        let stats: Value = serde_json::from_str(out.stdout().lines().next().unwrap()).unwrap();
        harness::expect_eq!(stats["Name"], "busy");
        harness::expect_eq!(stats["MemLimitBytes"], 64 << 20);
        assert!(stats["PIDs"].as_u64().unwrap() >= 1);
        let cpu: f64 = stats["CPUPerc"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(cpu > 20.0, "a busy loop shows as CPU use: {cpu}");
        let table = lab.ok("stats", &["--no-stream"]).stdout();
        assert!(
            table.contains("MEM USAGE / LIMIT") && table.contains("64.00MiB"),
            "{table}"
        );
        let top = lab.ok("top", &["busy"]).stdout();
        assert!(top.contains("/probe burn 30"), "{top}");
        lab.remove_all_and_check();
    }
}

/// Milestone 08.7: the monitor, the runtime or PID 1 killed at any moment:
/// the next command reconciles, and nothing is left.
mod m7_recovery {
    use super::*;

    fn kill(pid: i64) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    #[rstest]
    fn a_killed_monitor_takes_its_container_and_ps_says_so(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "orphan"], &["sleep", "60"]);
        let state = lab.inspect("orphan")["State"].clone();
        kill(state["MonitorPid"].as_i64().unwrap());
        let pid = state["Pid"].as_i64().unwrap();
        lab.until("PID 1 to die with its monitor", || zombie(pid as i32));
        let ps = lab.ok("ps", &["-a"]).stdout();
        assert!(ps.contains("Exited (255)"), "{ps}");
        harness::expect_eq!(lab.inspect("orphan")["State"]["Status"], "exited");
        harness::expect_eq!(
            lab.parent.children("pids"),
            Vec::<String>::new(),
            "its cgroup went"
        );
        // Its files stay until rm, and it can start again.
        lab.ok("start", &["orphan"]);
        harness::expect_eq!(lab.status("orphan"), "running");
        lab.remove_all_and_check();
    }

    #[rstest]
    fn a_killed_pid_1_is_recorded_by_its_monitor(rt: Runtime) {
        let lab = Lab::new(rt);
        lab.detached(&["--name", "victim"], &["sleep", "60"]);
        kill(lab.inspect("victim")["State"]["Pid"].as_i64().unwrap());
        lab.until("the monitor to record it", || {
            lab.status("victim") == "exited"
        });
        harness::expect_eq!(lab.inspect("victim")["State"]["ExitCode"], 137);
        lab.remove_all_and_check();
    }

    /// The runtime and the monitors killed at spread-out moments of create,
    /// start, stop and rm; then one `ps -a`, `rm -f` of what it lists, and
    /// nothing may be left.
    #[rstest]
    fn kills_at_any_point_of_the_life_cycle_leave_nothing(rt: Runtime) {
        let lab = Lab::new(rt);
        for round in 0..40u64 {
            let name = format!("f{round}");
            let verb = match round % 4 {
                0 => lab
                    .make("create")
                    .args(["--name", &name])
                    .probe(&["sleep", "60"]),
                1 => lab
                    .make("run")
                    .args(["-d", "--name", &name])
                    .probe(&["sleep", "60"]),
                2 => lab
                    .verb("stop")
                    .args(["-t", "0", &format!("f{}", round - 1)]),
                _ => lab.verb("rm").args(["-f", &format!("f{}", round - 2)]),
            };
            let running = verb.spawn();
            std::thread::sleep(Duration::from_micros((round * 7919) % 60_000));
            running.signal(nix::sys::signal::Signal::SIGKILL);
            drop(running);
            // Now and then a monitor too.
            if round % 5 == 4 {
                let ids = lab.verb("ps").arg("-q").output().stdout();
                if let Some(id) = ids.split_whitespace().next() {
                    let out = lab.verb("inspect").arg(id).output();
                    if out.code() == 0 {
                        let c = whole_json(&out);
                        if let Some(m) = c[0]["State"]["MonitorPid"].as_i64().filter(|&m| m > 0) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(m as i32),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                    }
                }
            }
        }
        let ps = lab.verb("ps").arg("-a").output();
        ps.expect_code(0, "ps after the kills");
        for line in ps.stdout().lines().skip(1) {
            assert!(
                line.contains("Up") || line.contains("Exited") || line.contains("Created"),
                "every container has a state: {line}"
            );
        }
        lab.remove_all_and_check();
    }
}

/// Milestone 08.8: fifty containers at once: a fork bomb and a memory hog
/// held by their limits, the others finish; `rm -f` leaves nothing.
mod m8_stress {
    use super::*;

    #[rstest]
    fn fifty_detached_containers(rt: Runtime) {
        let lab = Lab::new(rt);
        let bomb = lab.detached(
            &["--name", "bomb", "--pids-limit", "20"],
            &["forkbomb", "3"],
        );
        let hog = lab.detached(&["--name", "hog", "-m", "32m"], &["alloc", "200"]);
        let mut others = Vec::new();
        for n in 0..48 {
            others.push(lab.detached(&["--name", &format!("n{n}")], &["burn", "0.2"]));
        }
        lab.until("all fifty to end", || {
            lab.ok("ps", &["-q"]).stdout().trim().is_empty()
        });
        for id in &others {
            let state = &lab.inspect(id)["State"];
            harness::expect_eq!(state["ExitCode"], 0, "{id}: {state}");
        }
        harness::expect_eq!(
            lab.inspect(&hog)["State"]["OOMKilled"],
            true,
            "the hog met its limit"
        );
        let bomb_logs = lab.logs(&bomb).stdout();
        let bombed: Value = serde_json::from_str(bomb_logs.trim()).unwrap();
        assert!(
            bombed["refused"].as_u64().unwrap() > 0,
            "forks were refused: {bombed}"
        );
        assert!(
            bombed["forked"].as_u64().unwrap() < 20,
            "at most the limit: {bombed}"
        );
        lab.remove_all_and_check();
    }
}
