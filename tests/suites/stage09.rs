//! Stage 09 suite: a network of the container's own.
//!
//! Runs `$RUNTIME_BIN` (default: stage09-network) as
//! `BIN run --rootfs DIR [--network none|host] -- COMMAND`, and `run -d` +
//! `exec` for a detached one. Nothing here sends a packet beyond loopback:
//! a container with `--network none` has no other interface, and one on
//! `host` only talks to 127.0.0.1. As root:
//!
//! ```sh
//! make test-stage STAGE=09 [BIN=/path/to/yours]
//! ```

use harness::{Runtime, host};
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
