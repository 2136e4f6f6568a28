//! Stage 09 suite: a network of the container's own.
//!
//! Runs `$RUNTIME_BIN` (default: stage09-network) as
//! `BIN run --rootfs DIR [--network none|bridge|host] [--ip A] -- COMMAND`,
//! and `run -d` + `exec` for a detached one.
//!
//! Safety first: every test that makes links (the bridge, veth pairs) runs
//! the runtime inside a network namespace the test itself creates
//! ([`TestNet`]), so the host's links, addresses, routes and firewall are
//! never touched, and deletes it when it ends, passed or failed. No packet
//! goes anywhere but between namespaces the test made, or to loopback. As
//! root:
//!
//! ```sh
//! make test-stage STAGE=09 [BIN=/path/to/yours]
//! ```

use std::path::{Path, PathBuf};

use harness::{Run, Runtime, host};
use rstest::{fixture, rstest};

#[fixture]
fn rt() -> Runtime {
    Runtime::for_suite("stage09-network").with_rootfs()
}

fn json(out: &harness::Outcome) -> serde_json::Value {
    out.json()
}

/// The names of the interfaces the probe listed, and which are up.
fn interfaces(out: &harness::Outcome) -> Vec<(String, bool)> {
    json(out)["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("the probe listed no interfaces: {}", out.stdout()))
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_owned(),
                i["up"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Milestone 09.1: `--network none` is a network namespace of its own with
/// its loopback up; `host` shares the host's.
mod m1_loopback {
    use super::*;

    #[rstest]
    fn none_is_a_namespace_of_its_own_with_only_lo_and_lo_is_up(rt: Runtime) {
        let out = rt
            .run()
            .args(["--network", "none"])
            .probe(&["interfaces"])
            .output();
        out.expect_code(0, "the probe lists the interfaces");
        harness::expect_eq!(
            interfaces(&out),
            [("lo".to_owned(), true)],
            "only lo, and up: a new network namespace's loopback starts down"
        );
        let report = rt
            .run()
            .args(["--network", "none"])
            .probe(&["report"])
            .output()
            .report();
        harness::expect_ne!(
            report.namespaces.get("net"),
            host::namespaces().get("net"),
            "a network namespace of its own (CLONE_NEWNET)"
        );
    }

    #[rstest]
    fn on_none_127_0_0_1_answers(rt: Runtime) {
        let out = rt
            .run()
            .args(["--network", "none"])
            .probe(&["loopback"])
            .output();
        out.expect_code(0, "the probe talks to itself");
        harness::expect_eq!(
            json(&out),
            serde_json::json!({"ok": true}),
            "TCP over 127.0.0.1 inside the container (ENETUNREACH: lo is down)"
        );
    }

    #[rstest]
    fn host_shares_the_hosts_namespace(rt: Runtime) {
        for args in [&["--network", "host"][..], &[][..]] {
            let report = rt.run().args(args).probe(&["report"]).output().report();
            harness::expect_eq!(
                report.namespaces.get("net"),
                host::namespaces().get("net"),
                "--network host (so far also the default) is the host's namespace"
            );
        }
    }

    /// Rootless: the namespace belongs to the user namespace made with it,
    /// in which the container's root may bring `lo` up.
    #[rstest]
    fn an_ordinary_user_gets_its_loopback_up_too(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = harness::Rootfs::private_owned_by(user.uid, user.gid);
        let out = rt
            .run_in(&rootfs)
            .as_user(user)
            .args(["--network", "none"])
            .probe(&["loopback"])
            .output();
        out.expect_code(0, "a rootless container with --network none runs");
        harness::expect_eq!(json(&out), serde_json::json!({"ok": true}));
    }

    /// `exec` joins the container's network namespace: a process started
    /// later sees the same interfaces.
    #[rstest]
    fn exec_lands_in_the_containers_network_namespace(rt: Runtime) {
        let name = format!("net-{}", std::process::id());
        let started = rt
            .verb("run")
            .args(["-d", "--name", &name, "--network", "none"])
            .probe(&["sleep", "30"])
            .output();
        started.expect_code(0, "run -d starts the container");
        let inside = rt
            .verb("exec")
            .args([&name, harness::rootfs::PROBE_INSIDE, "report"])
            .output();
        let pid1 = rt
            .verb("exec")
            .args([&name, "cat", "/proc/1/net/dev"])
            .output();
        rt.verb("rm").args(["-f", &name]).output();
        inside.expect_code(0, "exec runs");
        harness::expect_ne!(
            inside.report().namespaces.get("net"),
            host::namespaces().get("net"),
            "exec must join the container's network namespace"
        );
        assert!(
            pid1.stdout().contains("lo:") && !pid1.stdout().contains("eth"),
            "{}",
            pid1.describe()
        );
    }

    #[rstest]
    #[case::unknown("bogus")]
    #[case::empty("")]
    fn an_unknown_network_is_refused_in_one_line(rt: Runtime, #[case] network: &str) {
        // A runtime that refuses --network itself, as an unknown flag, has
        // not met the milestone.
        rt.run()
            .args(["--network", "none"])
            .probe(&["exit", "0"])
            .output()
            .expect_code(0, "--network none is a network the runtime must take");
        rt.run()
            .args(["--network", network])
            .probe(&["report"])
            .output()
            .expect_refused(&["network"]);
    }
}

/// A network namespace of the test's own (`ip netns add`), deleted when
/// dropped; the runtime runs in it through `nsenter --net`, which changes
/// nothing else (unlike `ip netns exec`, which also remounts /sys). With a
/// data directory of its own, so its leases are the test's alone.
struct TestNet {
    name: String,
    store: tempfile::TempDir,
    rt: Runtime,
}

impl TestNet {
    fn new(rt: &Runtime) -> TestNet {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "myrt-s09-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let status = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip(8) is missing (apt-get install iproute2)");
        assert!(status.success(), "cannot make the network namespace {name}");
        // A host's loopback is up: a new namespace's is not.
        let _ = std::process::Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status();
        TestNet {
            name,
            store: tempfile::tempdir().expect("a data directory"),
            rt: rt.clone(),
        }
    }

    /// `BIN VERB ...` inside the namespace, with the test's data directory.
    /// With the runtime's own default network (the harness gives every
    /// other test the host's): here, in a namespace of the test's, a
    /// default bridge touches nothing of the host's.
    fn verb(&self, rt: &Runtime, verb: &str) -> Run {
        self.env(rt.verb(verb))
            .through(&["nsenter", &format!("--net=/run/netns/{}", self.name)])
    }

    fn env(&self, run: Run) -> Run {
        run.env("MYRUNTIME_ROOT", self.store.path().to_str().unwrap())
            .env("MYRUNTIME_NETWORK", "")
    }

    /// [`TestNet::verb`], with `resolv` as the host's /etc/resolv.conf:
    /// bind-mounted over it in a mount namespace of the command's own, so
    /// the host's file is never touched.
    fn verb_with_resolv(&self, rt: &Runtime, verb: &str, resolv: &Path) -> Run {
        let mount = format!(
            "mount --bind {} /etc/resolv.conf && exec \"$@\"",
            resolv.display()
        );
        self.env(rt.verb(verb)).through(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &mount,
            "sh",
            "nsenter",
            &format!("--net=/run/netns/{}", self.name),
        ])
    }

    /// `nft ARGS` inside the namespace, its output.
    fn nft(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, "nft"])
            .args(args)
            .output()
            .expect("nft is missing (apt-get install nftables)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip ARGS` inside the namespace, its output.
    fn ip(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The links of the namespace, by name.
    fn links(&self) -> Vec<String> {
        let mut links: Vec<String> = self
            .ip(&["-br", "link"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect();
        links.sort();
        links
    }

    fn leases(&self) -> Vec<String> {
        host::names_in(&self.store.path().join("networks/bridge/leases"))
    }

    /// `rm -f` every container of the test's data directory.
    fn remove_all(&self, rt: &Runtime) {
        let ps = self.verb(rt, "ps").args(["-a", "-q"]).output();
        for id in ps.stdout().split_whitespace() {
            self.verb(rt, "rm").args(["-f", id]).output();
        }
    }
}

impl Drop for TestNet {
    /// Passed or failed: every container of the test goes (its monitor,
    /// its state, its address), then the namespace with the links in it.
    fn drop(&mut self) {
        let rt = self.rt.clone();
        self.remove_all(&rt);
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// "The outside world" of a [`TestNet`]: another namespace the test makes,
/// joined to it by a veth pair (192.0.2.1 on the test's side, 192.0.2.2 on
/// this one, addresses reserved for documentation), with the test's
/// namespace routing everything there, and an HTTP server on 192.0.2.2:8000
/// serving a marker. It has no route back to the containers' subnet: only
/// NAT gets a reply to them. Removed (server, namespace) when dropped.
struct Outside {
    name: String,
    server: Option<std::process::Child>,
    log: PathBuf,
    files: tempfile::TempDir,
}

impl Outside {
    fn new(net: &TestNet) -> Outside {
        let name = format!("{}-out", net.name);
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("run ip");
            assert!(status.success(), "ip {args:?} failed");
        };
        ip(&["netns", "add", &name]);
        // From here on, dropping it deletes the namespace: a failed set-up
        // leaves nothing either.
        let files = tempfile::tempdir().unwrap();
        let mut this = Outside {
            name: name.clone(),
            server: None,
            log: files.path().join("server.log"),
            files,
        };
        ip(&[
            "link", "add", "up0", "netns", &net.name, "type", "veth", "peer", "name", "o0",
            "netns", &name,
        ]);
        ip(&["-n", &net.name, "addr", "add", "192.0.2.1/24", "dev", "up0"]);
        ip(&["-n", &name, "addr", "add", "192.0.2.2/24", "dev", "o0"]);
        ip(&["-n", &net.name, "link", "set", "up0", "up"]);
        ip(&["-n", &name, "link", "set", "o0", "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &net.name,
            "route",
            "add",
            "default",
            "via",
            "192.0.2.2",
        ]);
        std::fs::write(this.files.path().join("marker"), "from-the-outside").unwrap();
        let server = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "python3",
                "-m",
                "http.server",
                "8000",
            ])
            .args(["--bind", "192.0.2.2"])
            .current_dir(this.files.path())
            .stdout(std::fs::File::create(&this.log).unwrap())
            .stderr(std::fs::File::create(this.files.path().join("server.err")).unwrap())
            .spawn()
            .expect("python3 is missing (apt-get install python3)");
        this.server = Some(server);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(&this.log)
            .unwrap_or_default()
            .contains("Serving HTTP")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the outside's server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        this
    }

    /// The clients the server saw, from its access log.
    fn clients(&self) -> Vec<String> {
        let err = self.log.with_file_name("server.err");
        std::fs::read_to_string(err)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_mut() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The IPv4 address of eth0, from `ip -4 -o addr show eth0` inside.
fn eth0_address(text: &str) -> Option<String> {
    let after = text.split("inet ").nth(1)?;
    Some(after.split('/').next()?.to_owned())
}

/// Milestone 09.2: the bridge network: a bridge, a veth pair per container,
/// an address of its own for each (IPAM), released when it ends.
mod m2_bridge {
    use super::*;

    /// As docker's, root's containers are on the bridge unless they ask
    /// for another network.
    #[rstest]
    fn the_bridge_is_roots_default(rt: Runtime) {
        harness::require_root();
        let net = TestNet::new(&rt);
        let out = net
            .verb(&rt, "run")
            .command(["ip", "-4", "-o", "addr", "show", "eth0"])
            .output();
        out.expect_code(0, "a container with no --network");
        assert!(
            eth0_address(&out.stdout()).is_some_and(|a| a.starts_with("10.99.0.")),
            "with no --network, root's container is on the bridge\n{}",
            out.describe()
        );
    }

    #[rstest]
    fn eth0_gets_an_address_a_route_and_reaches_the_gateway(rt: Runtime) {
        let net = TestNet::new(&rt);
        let out = net
            .verb(&rt, "run")
            .args(["--network", "bridge"])
            .command([
                "sh",
                "-c",
                "ip -4 -o addr show eth0; ip route; ping -c1 -W2 10.99.0.1 >/dev/null && echo gateway-ok",
            ])
            .output();
        out.expect_code(0, "the container reaches its gateway");
        let text = out.stdout();
        assert!(
            eth0_address(&text).is_some_and(|a| a.starts_with("10.99.0.")),
            "eth0 must have an address of the bridge's subnet (default 10.99.0.0/16)\n{}",
            out.describe()
        );
        assert!(text.contains("default via 10.99.0.1"), "{}", out.describe());
        assert!(text.contains("gateway-ok"), "{}", out.describe());
        harness::expect_eq!(
            net.links(),
            ["lo", "myruntime0"],
            "after the container, only the bridge is left: its veth pair went with it"
        );
        harness::expect_eq!(
            net.leases(),
            Vec::<String>::new(),
            "its address is released"
        );
    }

    #[rstest]
    fn two_containers_get_their_own_addresses_and_reach_each_other(rt: Runtime) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args(["-d", "--name", "first", "--network", "bridge"])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d");
        let first = net
            .verb(&rt, "exec")
            .args(["first", "ip", "-4", "-o", "addr", "show", "eth0"])
            .output();
        let Some(address) = eth0_address(&first.stdout()) else {
            net.remove_all(&rt);
            panic!("the first container has no address\n{}", first.describe());
        };
        let second = net
            .verb(&rt, "run")
            .args(["--network", "bridge"])
            .command([
                "sh",
                "-c",
                &format!(
                    "ip -4 -o addr show eth0; ping -c1 -W2 {address} >/dev/null && echo reached"
                ),
            ])
            .output();
        net.remove_all(&rt);
        second.expect_code(0, "the second container pings the first");
        harness::expect_ne!(
            eth0_address(&second.stdout()),
            Some(address.clone()),
            "two containers, two addresses"
        );
        assert!(second.stdout().contains("reached"), "{}", second.describe());
        harness::expect_eq!(net.leases(), Vec::<String>::new());
        harness::expect_eq!(net.links(), ["lo", "myruntime0"]);
    }

    /// A /29 has five addresses for containers: the sixth is refused in
    /// one line, and one removed makes room again.
    #[rstest]
    fn addresses_run_out_clearly_and_come_back(rt: Runtime) {
        let net = TestNet::new(&rt);
        let run = |name: &str| {
            net.verb(&rt, "run")
                .env("MYRUNTIME_BRIDGE_SUBNET", "10.123.0.8/29")
                .args(["-d", "--name", name, "--network", "bridge"])
                .command(["sleep", "60"])
                .output()
        };
        let started: Vec<i32> = (0..5).map(|i| run(&format!("c{i}")).code()).collect();
        let sixth = run("c5");
        let leases = net.leases();
        net.verb(&rt, "rm").args(["-f", "c2"]).output();
        let again = run("c6");
        let after = net.leases();
        net.remove_all(&rt);
        harness::expect_eq!(started, [0, 0, 0, 0, 0], "five containers fit in a /29");
        harness::expect_eq!(
            leases,
            [
                "10.123.0.10",
                "10.123.0.11",
                "10.123.0.12",
                "10.123.0.13",
                "10.123.0.14"
            ]
        );
        sixth.expect_refused(&["no address is free", "10.123.0.8/29"]);
        again.expect_code(0, "a removed container's address is free again");
        harness::expect_eq!(after.len(), 5);
        harness::expect_eq!(net.leases(), Vec::<String>::new());
        harness::expect_eq!(net.links(), ["lo", "myruntime0"]);
    }

    #[rstest]
    fn ip_asks_for_an_address_and_one_in_use_is_refused(rt: Runtime) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args([
                "-d",
                "--name",
                "fixed",
                "--network",
                "bridge",
                "--ip",
                "10.99.0.42",
            ])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d --ip");
        let shown = net
            .verb(&rt, "exec")
            .args(["fixed", "ip", "-4", "-o", "addr", "show", "eth0"])
            .output();
        let taken = net
            .verb(&rt, "run")
            .args(["--network", "bridge", "--ip", "10.99.0.42"])
            .command(["true"])
            .output();
        let outside = net
            .verb(&rt, "run")
            .args(["--network", "bridge", "--ip", "192.168.1.1"])
            .command(["true"])
            .output();
        let without = net
            .verb(&rt, "run")
            .args(["--network", "none", "--ip", "10.99.0.43"])
            .command(["true"])
            .output();
        net.remove_all(&rt);
        harness::expect_eq!(eth0_address(&shown.stdout()), Some("10.99.0.42".to_owned()));
        taken.expect_refused(&["10.99.0.42", "in use"]);
        outside.expect_refused(&["192.168.1.1"]);
        without.expect_refused(&["--ip", "bridge"]);
        harness::expect_eq!(net.leases(), Vec::<String>::new());
    }

    /// A monitor killed with SIGKILL cannot release its container's
    /// address: the next command does.
    #[rstest]
    fn a_dead_monitors_address_is_released_by_the_next_command(rt: Runtime) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args(["-d", "--name", "orphan", "--network", "bridge"])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d");
        let inspect = net.verb(&rt, "inspect").arg("orphan").output();
        let shown: serde_json::Value = serde_json::from_str(&inspect.stdout())
            .unwrap_or_else(|e| panic!("inspect prints JSON ({e})\n{}", inspect.describe()));
        let state = shown[0]["State"].clone();
        let monitor = state["MonitorPid"].as_i64().expect("a monitor pid") as i32;
        let held = net.leases();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(monitor),
            nix::sys::signal::Signal::SIGKILL,
        );
        let pid = state["Pid"].as_i64().unwrap_or_default() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ps = net.verb(&rt, "ps").args(["-a"]).output();
        let after = net.leases();
        let links = net.links();
        net.remove_all(&rt);
        harness::expect_eq!(held.len(), 1, "the container held an address");
        assert!(ps.stdout().contains("Exited (255)"), "{}", ps.describe());
        harness::expect_eq!(after, Vec::<String>::new(), "the next command released it");
        harness::expect_eq!(links, ["lo", "myruntime0"], "and its veth pair is gone");
    }

    /// An ordinary user may not make links in the host's namespace: the
    /// bridge is refused, clearly, and nothing is left.
    #[rstest]
    fn the_bridge_is_refused_to_an_ordinary_user_in_one_line(rt: Runtime) {
        let user = host::rootless_user();
        let rootfs = harness::Rootfs::private_owned_by(user.uid, user.gid);
        rt.run_in(&rootfs)
            .as_user(user)
            .args(["--network", "bridge"])
            .probe(&["report"])
            .output()
            .expect_refused(&["bridge", "root"]);
    }
}

/// Milestone 09.3: NAT: a container reaches the outside, masqueraded behind
/// the host's address, through rules in a table of the runtime's own.
mod m3_nat {
    use super::*;

    #[rstest]
    fn a_container_reaches_the_outside_masqueraded(rt: Runtime) {
        let net = TestNet::new(&rt);
        let outside = Outside::new(&net);
        let out = net
            .verb(&rt, "run")
            .args(["--network", "bridge"])
            .probe(&["http", "192.0.2.2:8000", "/marker"])
            .output();
        out.expect_code(0, "the probe asks the outside's server");
        harness::expect_eq!(
            json(&out),
            serde_json::json!({"status": 200, "body": "from-the-outside"}),
            "the outside has no route to the containers' subnet: only NAT brings the answer back"
        );
        harness::expect_eq!(
            outside.clients(),
            ["192.0.2.1"],
            "the outside sees the host's address, not the container's (masquerade)"
        );
    }

    /// The runtime's rules live in `inet myruntime` and nowhere else: a
    /// table some other software has is left exactly as it was.
    #[rstest]
    fn the_rules_are_in_a_table_of_its_own_and_others_are_untouched(rt: Runtime) {
        let net = TestNet::new(&rt);
        let nft = |script: &str| {
            let mut child = std::process::Command::new("ip")
                .args(["netns", "exec", &net.name, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("nft is missing (apt-get install nftables)");
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success(), "nft -f: {script}");
        };
        nft("add table ip someone_else\n\
             add chain ip someone_else input { type filter hook input priority 0; policy accept; }\n\
             add rule ip someone_else input tcp dport 9999 counter accept comment \"theirs\"\n");
        let list = |what: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &net.name, "nft"])
                .args(what)
                .output()
                .expect("run nft");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let theirs = list(&["list", "table", "ip", "someone_else"]);
        net.verb(&rt, "run")
            .args(["--network", "bridge"])
            .command(["true"])
            .output()
            .expect_code(0, "a bridge container runs");
        let tables = list(&["list", "tables"]);
        let ours = list(&["list", "table", "inet", "myruntime"]);
        harness::expect_eq!(
            list(&["list", "table", "ip", "someone_else"]),
            theirs,
            "another table must be left exactly as it was"
        );
        harness::expect_eq!(
            tables.lines().map(str::trim).collect::<Vec<_>>(),
            ["table ip someone_else", "table inet myruntime"]
        );
        assert!(
            ours.contains("ip saddr 10.99.0.0/16 oifname != \"myruntime0\" masquerade"),
            "{ours}"
        );
    }

    /// A host whose iptables FORWARD policy is DROP, as docker leaves it:
    /// the containers still get out, the host's own rules stay, and what
    /// the runtime added there goes with its last network.
    #[rstest]
    fn a_forward_policy_of_drop_is_coexisted_with(rt: Runtime) {
        let net = TestNet::new(&rt);
        let outside = Outside::new(&net);
        let iptables = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &net.name, "iptables", "-w", "5"])
                .args(args)
                .output()
                .expect("iptables is missing (apt-get install iptables)");
            assert!(out.status.success(), "iptables {args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        iptables(&["-P", "FORWARD", "DROP"]);
        iptables(&["-A", "FORWARD", "-i", "theirs0", "-j", "ACCEPT"]);
        let before = iptables(&["-S"]);
        net.verb(&rt, "network")
            .args(["create", "app"])
            .output()
            .expect_code(0, "network create app");
        let out = net
            .verb(&rt, "run")
            .args(["--network", "app"])
            .probe(&["http", "192.0.2.2:8000", "/marker"])
            .output();
        let during = iptables(&["-S"]);
        net.verb(&rt, "network").args(["rm", "app"]).output();
        let after = iptables(&["-S"]);
        drop(outside);
        out.expect_code(0, "the probe asks the outside's server");
        harness::expect_eq!(
            json(&out),
            serde_json::json!({"status": 200, "body": "from-the-outside"}),
            "forwarded, though FORWARD's policy is DROP"
        );
        assert!(
            during.contains("-P FORWARD DROP")
                && during.contains("-A FORWARD -i theirs0 -j ACCEPT"),
            "the host's policy and rules stay as they were\n{during}"
        );
        harness::expect_eq!(
            after,
            before,
            "and after the last network, exactly as before"
        );
    }
}

/// `curl` of `url` from inside the namespace `netns`: the body, or None.
fn curl_in(netns: &str, url: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-s", "-m", "3", url])
        .output()
        .expect("curl is missing (apt-get install curl)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Milestone 09.4: published ports, reachable from outside the host, from
/// the host's own loopback and from another container (hairpin); a port
/// taken is refused; the rules and the port go with the container.
mod m4_ports {
    use super::*;

    /// A detached container on the bridge serving `text` on port 80,
    /// published as `publish`; waits (bounded) until the outside gets it.
    fn serving(net: &TestNet, rt: &Runtime, name: &str, publish: &str, text: &str) {
        net.verb(rt, "run")
            .args(["-d", "--name", name, "--network", "bridge", "-p", publish])
            .probe(&["serve", "80", text])
            .output()
            .expect_code(0, "run -d -p");
    }

    fn until_answered(netns: &str, url: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(body) = curl_in(netns, url) {
                return Some(body);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[rstest]
    fn a_port_answers_from_outside_from_the_hosts_loopback_and_from_a_container(rt: Runtime) {
        let net = TestNet::new(&rt);
        let outside = Outside::new(&net);
        serving(&net, &rt, "web", "8080:80", "hello-web");
        let from_outside = until_answered(&outside.name, "http://192.0.2.1:8080/");
        let from_loopback = curl_in(&net.name, "http://127.0.0.1:8080/");
        let hairpin = net
            .verb(&rt, "run")
            .args(["--network", "bridge"])
            .probe(&["http", "192.0.2.1:8080", "/"])
            .output();
        let ps = net.verb(&rt, "ps").output();
        let inspect = net.verb(&rt, "inspect").arg("web").output();
        let shown: serde_json::Value =
            serde_json::from_str(&inspect.stdout()).unwrap_or(serde_json::Value::Null);
        let settings = &shown[0]["NetworkSettings"];
        assert!(
            ps.stdout().contains("0.0.0.0:8080->80/tcp"),
            "ps shows the published port\n{}",
            ps.describe()
        );
        assert!(
            settings["Networks"]["bridge"]["IPAddress"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.99.0.")),
            "inspect shows the address: {settings}"
        );
        harness::expect_eq!(
            settings["Ports"]["80/tcp"][0]["HostPort"],
            "8080",
            "inspect shows the port"
        );
        harness::expect_eq!(
            from_outside.as_deref(),
            Some("hello-web"),
            "from outside the host (DNAT in prerouting)"
        );
        harness::expect_eq!(
            from_loopback.as_deref(),
            Some("hello-web"),
            "from the host's own 127.0.0.1 (DNAT in output, route_localnet, masquerade)"
        );
        harness::expect_eq!(
            json(&hairpin),
            serde_json::json!({"status": 200, "body": "hello-web"}),
            "from another container, through the host's address (hairpin)"
        );
    }

    /// `-P`: every port the image's config exposes, on a free host port
    /// (a key that is no port is left out). The image is pulled from the
    /// suite's registry on the host's loopback, then run in the test's
    /// namespace from the same data directory.
    #[rstest]
    fn publish_all_publishes_the_images_exposed_ports(rt: Runtime) {
        use harness::registry::{Compression, ImageSpec, Layer, Layout, Registry};
        let net = TestNet::new(&rt);
        let registry = Registry::start();
        let spec = ImageSpec::new(serde_json::json!({
            "Cmd": ["/probe", "serve", "80", "hello-exposed"],
            "ExposedPorts": {"80/tcp": {}, "not-a-port/tcp": {}},
        }))
        .layer(
            Layer::from_dir(harness::Rootfs::shared().path()),
            Compression::Gzip,
        );
        let layout = Layout::new();
        layout.tag(&spec, "latest");
        registry.push(&layout, "latest", "tests/exposed:latest");
        let image = registry.name("tests/exposed:latest");
        rt.verb("pull")
            .env("MYRUNTIME_ROOT", net.store.path().to_str().unwrap())
            .arg(&image)
            .output()
            .expect_code(0, "the image pulls (on the host's loopback)");
        let created = net
            .verb(&rt, "create")
            .args(["--name", "exposed", "-P", &image])
            .output();
        created.expect_code(0, "create -P IMAGE");
        net.verb(&rt, "start")
            .arg("exposed")
            .output()
            .expect_code(0, "start");
        let inspect = net.verb(&rt, "inspect").arg("exposed").output();
        let shown: serde_json::Value =
            serde_json::from_str(&inspect.stdout()).unwrap_or(serde_json::Value::Null);
        let ports = shown[0]["NetworkSettings"]["Ports"].clone();
        let host_port = ports["80/tcp"][0]["HostPort"]
            .as_str()
            .and_then(|p| p.parse::<u16>().ok());
        let page = host_port
            .and_then(|port| until_answered(&net.name, &format!("http://127.0.0.1:{port}/")));
        net.remove_all(&rt);
        assert!(
            host_port.is_some_and(|p| p >= 1024),
            "80/tcp is published on a host port of the ephemeral range: {ports}"
        );
        harness::expect_eq!(
            ports.as_object().map(|p| p.len()),
            Some(1),
            "only the exposed port that is a port"
        );
        harness::expect_eq!(
            page.as_deref(),
            Some("hello-exposed"),
            "the page, through it"
        );
    }

    #[rstest]
    fn a_taken_port_is_refused_and_the_rules_go_with_the_container(rt: Runtime) {
        let net = TestNet::new(&rt);
        serving(&net, &rt, "first", "8080:80", "first");
        let second = net
            .verb(&rt, "run")
            .args(["--network", "bridge", "-p", "8080:81"])
            .command(["true"])
            .output();
        let bad = net
            .verb(&rt, "run")
            .args(["--network", "bridge", "-p", "8080"])
            .command(["true"])
            .output();
        let without_bridge = net
            .verb(&rt, "run")
            .args(["--network", "none", "-p", "8080:80"])
            .command(["true"])
            .output();
        let rules = |net: &TestNet| {
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &net.name,
                    "nft",
                    "list",
                    "table",
                    "inet",
                    "myruntime",
                ])
                .output()
                .expect("run nft");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("dport 8080"))
                .count()
        };
        let while_running = rules(&net);
        net.verb(&rt, "rm").args(["-f", "first"]).output();
        let after = rules(&net);
        let ports = host::names_in(&net.store.path().join("ports"));
        second.expect_refused(&["8080", "published by container"]);
        bad.expect_refused(&["published port"]);
        without_bridge.expect_refused(&["-p", "bridge"]);
        harness::expect_eq!(while_running, 2, "prerouting and output, while it runs");
        harness::expect_eq!(after, 0, "its rules go with it");
        harness::expect_eq!(ports, Vec::<String>::new(), "and its port is free");
    }
}

/// Milestone 09.5: the container's own resolv.conf, hosts and hostname.
mod m5_dns {
    use super::*;

    /// What `cat FILE` shows inside a container started with `flags`, the
    /// host's resolv.conf being `resolv`.
    fn files(net: &TestNet, rt: &Runtime, resolv: &str, flags: &[&str]) -> harness::Outcome {
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), resolv).unwrap();
        net.verb_with_resolv(rt, "run", host.path())
            .args(flags)
            .command([
                "sh",
                "-c",
                "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; cat /etc/hostname",
            ])
            .output()
    }

    #[rstest]
    #[case::bridge("bridge")]
    #[case::none("none")]
    fn loopback_nameservers_are_replaced_and_the_rest_kept(rt: Runtime, #[case] network: &str) {
        let net = TestNet::new(&rt);
        let out = files(
            &net,
            &rt,
            "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n",
            &["--network", network, "--hostname", "box"],
        );
        out.expect_code(0, "a container with its own name files");
        let text = out.stdout();
        let parts: Vec<&str> = text.split("---\n").collect();
        let [resolv, hosts, hostname] = parts[..] else {
            panic!("three files expected\n{}", out.describe());
        };
        assert!(
            !resolv.contains("127.0.0.53"),
            "a stub resolver on the host's loopback cannot answer from the container's namespace\n{}",
            out.describe()
        );
        assert!(
            resolv.lines().any(|l| l.starts_with("nameserver ")),
            "with none left, working nameservers take their place\n{}",
            out.describe()
        );
        assert!(resolv.contains("search corp.example"), "{}", out.describe());
        assert!(
            resolv.contains("options edns0 trust-ad"),
            "{}",
            out.describe()
        );
        assert!(
            hosts
                .lines()
                .any(|l| l.split_whitespace().eq(["127.0.0.1", "localhost"])),
            "{}",
            out.describe()
        );
        harness::expect_eq!(
            hostname,
            "box\n",
            "/etc/hostname is the container's hostname"
        );
        if network == "bridge" {
            assert!(
                hosts
                    .lines()
                    .any(|l| l.ends_with("box") || l.contains(" box ") || l.contains("\tbox")),
                "its own address and name are in its /etc/hosts\n{}",
                out.describe()
            );
        }
    }

    #[rstest]
    fn dns_flags_and_add_host_are_written(rt: Runtime) {
        let net = TestNet::new(&rt);
        let out = files(
            &net,
            &rt,
            "nameserver 192.0.2.53\nsearch lan\n",
            &[
                "--network",
                "none",
                "--dns",
                "198.51.100.1",
                "--dns-search",
                "example.org",
                "--dns-option",
                "ndots:2",
                "--add-host",
                "db:192.0.2.10",
            ],
        );
        out.expect_code(0, "run with --dns, --dns-search, --dns-option, --add-host");
        let text = out.stdout();
        let resolv = text.split("---\n").next().unwrap_or_default();
        harness::expect_eq!(
            resolv,
            "nameserver 198.51.100.1\nsearch example.org\noptions ndots:2\n",
            "the flags replace the host's lines"
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["192.0.2.10", "db"])),
            "--add-host is a line of /etc/hosts\n{}",
            out.describe()
        );
        let untouched = files(
            &net,
            &rt,
            "nameserver 192.0.2.53\nsearch lan\n",
            &["--network", "none"],
        );
        assert!(
            untouched
                .stdout()
                .starts_with("nameserver 192.0.2.53\nsearch lan\n"),
            "without flags, the host's reachable nameservers are kept\n{}",
            untouched.describe()
        );
    }

    #[rstest]
    #[case::dns(&["--dns", "198.51.100.1"], "--dns")]
    #[case::add_host(&["--add-host", "db:192.0.2.10"], "--add-host")]
    fn on_the_hosts_network_the_files_are_the_hosts(
        rt: Runtime,
        #[case] flags: &[&str],
        #[case] named: &str,
    ) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args(["--network", "host"])
            .args(flags)
            .command(["true"])
            .output()
            .expect_refused(&[named, "host"]);
        net.verb(&rt, "run")
            .args(["--network", "none", "--add-host", "db"])
            .command(["true"])
            .output()
            .expect_refused(&["add-host", "NAME:ADDRESS"]);
        harness::expect_eq!(net.verb(&rt, "ps").args(["-a", "-q"]).output().stdout(), "");
    }
}

/// Milestone 09.6: user-defined networks: made, listed, inspected and
/// removed; their members reach each other by name; networks are isolated
/// from each other; nothing is left after them.
mod m6_networks {
    use super::*;

    fn network(net: &TestNet, rt: &Runtime, args: &[&str]) -> harness::Outcome {
        net.verb(rt, "network").args(args).output()
    }

    /// Whether container `from` reaches `to` (a name or an address) with
    /// one ping.
    fn reaches(net: &TestNet, rt: &Runtime, from: &str, to: &str) -> bool {
        net.verb(rt, "exec")
            .args([from, "ping", "-c1", "-W2", to])
            .output()
            .code()
            == 0
    }

    #[rstest]
    fn members_reach_each_other_by_name_and_nothing_is_left(rt: Runtime) {
        let net = TestNet::new(&rt);
        let before = (net.nft(&["list", "ruleset"]), net.links());
        network(&net, &rt, &["create", "app"]).expect_code(0, "network create app");
        let ls = network(&net, &rt, &["ls"]);
        let run = |name: &str, extra: &[&str]| {
            net.verb(&rt, "run")
                .args(["-d", "--name", name, "--network", "app"])
                .args(extra)
                .probe(&["serve", "80", &format!("hello-{name}")])
                .output()
                .expect_code(0, "run -d --network app");
        };
        run("web", &["-p", "8080:80"]);
        run("db", &[]);
        // Both directions, and `web` learned of `db`, which came later.
        let web_to_db = reaches(&net, &rt, "web", "db");
        let db_to_web = reaches(&net, &rt, "db", "web");
        let page = (0..100).find_map(|_| {
            curl_in(&net.name, "http://127.0.0.1:8080/").or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        });
        let inspect = network(&net, &rt, &["inspect", "app"]);
        let shown: serde_json::Value =
            serde_json::from_str(&inspect.stdout()).unwrap_or(serde_json::Value::Null);
        let in_use = network(&net, &rt, &["rm", "app"]);
        net.remove_all(&rt);
        // `db` went: `web`'s file no longer names it (checked before web
        // goes, through a fresh container on the network).
        network(&net, &rt, &["rm", "app"]).expect_code(0, "network rm app, once empty");
        let after = (net.nft(&["list", "ruleset"]), net.links());
        assert!(
            ls.stdout().lines().any(|l| l.contains(" app ")),
            "{}",
            ls.describe()
        );
        harness::expect_eq!(
            shown[0]["Containers"].as_object().map(|c| c.len()),
            Some(2),
            "network inspect shows its two members"
        );
        assert!(web_to_db, "web reaches db by name (db started later)");
        assert!(db_to_web, "db reaches web by name");
        harness::expect_eq!(
            page.as_deref(),
            Some("hello-web"),
            "-p 8080:80 on a user network"
        );
        in_use.expect_refused(&["app", "in use"]);
        harness::expect_eq!(
            after,
            before,
            "after rm -f of both and network rm, the ruleset and the links are as before"
        );
        harness::expect_eq!(
            host::names_in(&net.store.path().join("networks")),
            Vec::<String>::new(),
            "no network and no lease is left"
        );
    }

    #[rstest]
    fn a_member_that_leaves_is_forgotten(rt: Runtime) {
        let net = TestNet::new(&rt);
        network(&net, &rt, &["create", "app"]).expect_code(0, "network create app");
        for name in ["first", "second"] {
            net.verb(&rt, "run")
                .args(["-d", "--name", name, "--network", "app"])
                .command(["sleep", "60"])
                .output()
                .expect_code(0, "run -d");
        }
        let hosts = |name: &str| {
            net.verb(&rt, "exec")
                .args([name, "cat", "/etc/hosts"])
                .output()
                .stdout()
        };
        let while_both = hosts("first");
        net.verb(&rt, "rm").args(["-f", "second"]).output();
        let after = hosts("first");
        net.remove_all(&rt);
        network(&net, &rt, &["rm", "app"]);
        assert!(while_both.contains("second"), "{while_both}");
        assert!(
            !after.contains("second"),
            "a removed member's name goes from the others' /etc/hosts\n{after}"
        );
        assert!(after.contains("first"), "{after}");
    }

    #[rstest]
    fn networks_are_isolated_from_each_other(rt: Runtime) {
        let net = TestNet::new(&rt);
        network(&net, &rt, &["create", "one"]).expect_code(0, "network create one");
        network(&net, &rt, &["create", "--subnet", "10.77.0.0/24", "two"])
            .expect_code(0, "network create --subnet");
        net.verb(&rt, "run")
            .args(["-d", "--name", "in-one", "--network", "one"])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d on one");
        net.verb(&rt, "run")
            .args([
                "-d",
                "--name",
                "in-two",
                "--network",
                "two",
                "--ip",
                "10.77.0.9",
            ])
            .command(["sleep", "60"])
            .output()
            .expect_code(0, "run -d on two");
        let across = reaches(&net, &rt, "in-one", "10.77.0.9");
        let by_name = reaches(&net, &rt, "in-one", "in-two");
        let gateway = reaches(&net, &rt, "in-two", "10.77.0.1");
        net.remove_all(&rt);
        for name in ["one", "two"] {
            network(&net, &rt, &["rm", name]).expect_code(0, "network rm");
        }
        assert!(gateway, "a member reaches its own gateway");
        assert!(
            !across,
            "a container of one network must not reach another network's"
        );
        assert!(!by_name, "nor know its members' names");
    }

    #[rstest]
    fn bad_networks_are_refused_in_one_line_leaving_nothing(rt: Runtime) {
        let net = TestNet::new(&rt);
        let create = |args: &[&str]| network(&net, &rt, &[&["create"], args].concat());
        create(&["bridge"]).expect_refused(&["bridge"]);
        create(&["no/slash"]).expect_refused(&["no/slash"]);
        create(&["--subnet", "10.99.1.0/24", "clash"]).expect_refused(&["overlaps", "bridge"]);
        create(&["--subnet", "10.5.0.1/24", "bits"]).expect_refused(&["subnet"]);
        create(&["app"]).expect_code(0, "network create app");
        create(&["app"]).expect_refused(&["app", "exists"]);
        network(&net, &rt, &["rm", "ghost"]).expect_refused(&["ghost"]);
        network(&net, &rt, &["rm", "bridge"]).expect_refused(&["bridge"]);
        net.verb(&rt, "run")
            .args(["--network", "ghost"])
            .command(["true"])
            .output()
            .expect_refused(&["ghost", "network create"]);
        let containers = net.verb(&rt, "ps").args(["-a", "-q"]).output().stdout();
        // A container made on it but not running holds it too.
        net.verb(&rt, "create")
            .args(["--name", "idle", "--network", "app", "--rootfs"])
            .arg(harness::Rootfs::shared().path())
            .command(["true"])
            .output()
            .expect_code(0, "create --network app");
        let idle = network(&net, &rt, &["rm", "app"]);
        net.verb(&rt, "rm")
            .arg("idle")
            .output()
            .expect_code(0, "rm idle");
        idle.expect_refused(&["app", "in use"]);
        network(&net, &rt, &["rm", "app"]).expect_code(0, "network rm app");
        harness::expect_eq!(containers, "", "a refused run leaves no container");
        harness::expect_eq!(net.links(), ["lo"], "no bridge is left");
        harness::expect_eq!(net.nft(&["list", "ruleset"]), "", "no rule is left");
    }
}

/// Milestone 09.7: what a killed runtime held on the network (its lease,
/// its published port and rules, its veth) is reclaimed by the next
/// command.
mod m7_recovery {
    use super::*;

    #[rstest]
    fn a_killed_monitors_address_port_and_rules_are_reclaimed(rt: Runtime) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args(["-d", "--name", "web", "-p", "8080:80"])
            .probe(&["serve", "80", "hello"])
            .output()
            .expect_code(0, "run -d -p (the default network)");
        let inspect = net.verb(&rt, "inspect").arg("web").output();
        let shown: serde_json::Value =
            serde_json::from_str(&inspect.stdout()).unwrap_or(serde_json::Value::Null);
        let state = &shown[0]["State"];
        let pids: Vec<i32> = ["MonitorPid", "Pid"]
            .iter()
            .filter_map(|k| state[*k].as_i64())
            .map(|p| p as i32)
            .collect();
        assert_eq!(
            pids.len(),
            2,
            "inspect shows the monitor and the process\n{state}"
        );
        let held = (net.leases().len(), net.links().len());
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Bounded: both gone within 5 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The next command, whatever it is, reclaims.
        net.verb(&rt, "ps")
            .args(["-a"])
            .output()
            .expect_code(0, "ps -a");
        let rules = net
            .nft(&["list", "table", "inet", "myruntime"])
            .lines()
            .filter(|l| l.contains("dport 8080"))
            .count();
        let (leases, links) = (net.leases(), net.links());
        let ports = host::names_in(&net.store.path().join("ports"));
        let again = net
            .verb(&rt, "run")
            .args(["--network", "bridge", "-p", "8080:80"])
            .command(["true"])
            .output();
        net.remove_all(&rt);
        harness::expect_eq!(
            held,
            (1, 3),
            "while it ran: a lease, and lo, the bridge, its veth"
        );
        harness::expect_eq!(rules, 0, "its port rules are gone");
        harness::expect_eq!(leases, Vec::<String>::new(), "its address is free");
        harness::expect_eq!(ports, Vec::<String>::new(), "its port is free");
        harness::expect_eq!(links, ["lo", "myruntime0"], "its veth is gone");
        again.expect_code(0, "the port can be published again");
    }
}

/// Milestone 09.8: an ordinary user's containers get a network through
/// pasta, with published ports; without pasta, one line says so and the
/// container gets only its loopback.
mod m8_rootless {
    use super::*;

    /// `BIN run --rootfs ROOTFS ARGS` as the ordinary user, inside the
    /// test's namespace, with `env` in its environment.
    fn as_user(
        net: &TestNet,
        run: Run,
        user: &host::TempUser,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Run {
        let mut run = run.as_user(user).env("MYRUNTIME_NETWORK", "");
        for (key, value) in env {
            run = run.env(key, value);
        }
        run.through_as_user(&["nsenter", &format!("--net=/run/netns/{}", net.name)])
            .args(args)
    }

    #[rstest]
    fn pasta_carries_an_ordinary_users_container_out_and_its_ports_in(rt: Runtime) {
        harness::require_root();
        let user = host::rootless_user();
        let rootfs = harness::Rootfs::private_owned_by(user.uid, user.gid);
        let net = TestNet::new(&rt);
        let outside = Outside::new(&net);
        let out = as_user(&net, rt.run_in(&rootfs), user, &[], &[])
            .probe(&["http", "192.0.2.2:8000", "/marker"])
            .output();
        out.expect_code(0, "a rootless container on its default network (pasta)");
        let started = as_user(
            &net,
            rt.run_in(&rootfs),
            user,
            &[],
            &["-d", "--name", "rootless-web", "-p", "8080:80"],
        )
        .probe(&["serve", "80", "hello-rootless"])
        .output();
        let page = (0..100).find_map(|_| {
            curl_in(&net.name, "http://127.0.0.1:8080/").or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        });
        let from_outside = curl_in(&outside.name, "http://192.0.2.1:8080/");
        as_user(&net, rt.verb("rm"), user, &[], &["-f", "rootless-web"]).output();
        harness::expect_eq!(
            json(&out),
            serde_json::json!({"status": 200, "body": "from-the-outside"}),
            "the container reaches the outside through pasta"
        );
        started.expect_code(0, "run -d -p as an ordinary user");
        harness::expect_eq!(
            page.as_deref(),
            Some("hello-rootless"),
            "-p from the host's loopback"
        );
        harness::expect_eq!(
            from_outside.as_deref(),
            Some("hello-rootless"),
            "-p from outside"
        );
        harness::expect_eq!(
            net.links(),
            ["lo", "up0"],
            "no link of the runtime's is left"
        );
        // pasta holds the container's namespace itself: the runtime must
        // stop it. None of this user's is left.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let left = loop {
            let left = pastas_of(user.uid);
            if left.is_empty() || std::time::Instant::now() > deadline {
                break left;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        harness::expect_eq!(
            left,
            Vec::<i32>::new(),
            "no pasta is left after the containers"
        );
    }

    /// The live pasta processes of user `uid` (a zombie, killed and not
    /// yet reaped, has no command line: it is gone already).
    fn pastas_of(uid: u32) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let owner = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok());
                cmdline.starts_with(b"pasta\0") && owner == Some(uid)
            })
            .collect()
    }

    #[rstest]
    fn without_pasta_one_line_says_so_and_the_container_has_its_loopback(rt: Runtime) {
        harness::require_root();
        let user = host::rootless_user();
        let rootfs = harness::Rootfs::private_owned_by(user.uid, user.gid);
        let net = TestNet::new(&rt);
        // A PATH with nothing on it: no pasta.
        let empty = tempfile::tempdir().unwrap();
        let path = [("PATH", empty.path().to_str().unwrap())];
        let out = as_user(&net, rt.run_in(&rootfs), user, &path, &[])
            .probe(&["interfaces"])
            .output();
        out.expect_code(0, "the container runs, on --network none");
        let stderr = out.stderr();
        let said: Vec<&str> = stderr.lines().collect();
        assert!(
            said.len() == 1 && said[0].contains("pasta") && said[0].contains("none"),
            "one line names pasta and the network the container gets\n{}",
            out.describe()
        );
        harness::expect_eq!(
            json(&out),
            serde_json::json!({"interfaces": [{"name": "lo", "up": true}]}),
            "only its loopback, up"
        );
        as_user(
            &net,
            rt.run_in(&rootfs),
            user,
            &path,
            &["--network", "pasta"],
        )
        .probe(&["exit", "0"])
        .output()
        .expect_refused(&["pasta", "passt"]);
    }
}

/// Milestone 09.9: `--network container:NAME`: another running container's
/// network, shared.
mod m9_join {
    use super::*;

    #[rstest]
    fn a_container_joins_anothers_network(rt: Runtime) {
        let net = TestNet::new(&rt);
        net.verb(&rt, "run")
            .args(["-d", "--name", "web", "--network", "bridge"])
            .probe(&["serve", "80", "hello-shared"])
            .output()
            .expect_code(0, "run -d web");
        let web_hosts = net
            .verb(&rt, "exec")
            .args(["web", "cat", "/etc/hosts"])
            .output()
            .stdout();
        let joined = net
            .verb(&rt, "run")
            .args(["--network", "container:web"])
            .command(["sh", "-c", "ip -4 -o addr show eth0; cat /etc/hosts"])
            .output();
        let page = (0..100).find_map(|_| {
            let out = net
                .verb(&rt, "run")
                .args(["--network", "container:web"])
                .probe(&["http", "127.0.0.1:80", "/"])
                .output();
            (out.code() == 0).then(|| json(&out)).or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        });
        let web_address = net
            .verb(&rt, "exec")
            .args(["web", "ip", "-4", "-o", "addr", "show", "eth0"])
            .output()
            .stdout();
        let ghost = net
            .verb(&rt, "run")
            .args(["--network", "container:ghost"])
            .command(["true"])
            .output();
        let with_port = net
            .verb(&rt, "run")
            .args(["--network", "container:web", "-p", "8080:80"])
            .command(["true"])
            .output();
        net.remove_all(&rt);
        joined.expect_code(0, "run --network container:web");
        harness::expect_eq!(
            eth0_address(&joined.stdout()),
            eth0_address(&web_address),
            "the same eth0, the same address"
        );
        assert!(
            joined.stdout().ends_with(&web_hosts) && !web_hosts.is_empty(),
            "the other container's /etc/hosts\n{}",
            joined.describe()
        );
        harness::expect_eq!(
            page,
            Some(serde_json::json!({"status": 200, "body": "hello-shared"})),
            "the other's server, on the shared 127.0.0.1"
        );
        ghost.expect_refused(&["container:ghost"]);
        with_port.expect_refused(&["-p", "container:"]);
        harness::expect_eq!(net.leases(), Vec::<String>::new(), "nothing is held");
    }
}
