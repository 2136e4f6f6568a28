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
    fn verb(&self, rt: &Runtime, verb: &str) -> Run {
        rt.verb(verb)
            .env("MYRUNTIME_ROOT", self.store.path().to_str().unwrap())
            .through(&["nsenter", &format!("--net=/run/netns/{}", self.name)])
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
            .args(["-p", "8080:80"])
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
        let ports = host::names_in(&net.store.path().join("networks/bridge/ports"));
        second.expect_refused(&["8080", "published by container"]);
        bad.expect_refused(&["published port"]);
        without_bridge.expect_refused(&["-p", "bridge"]);
        harness::expect_eq!(while_running, 2, "prerouting and output, while it runs");
        harness::expect_eq!(after, 0, "its rules go with it");
        harness::expect_eq!(ports, Vec::<String>::new(), "and its port is free");
    }
}
