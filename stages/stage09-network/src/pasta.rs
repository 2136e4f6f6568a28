//! A network for an ordinary user's container: pasta (Debian's `passt`).
//!
//! An ordinary user may not make links in the host's namespace, so no
//! bridge and no veth. pasta does it from user space instead: it joins the
//! container's user and network namespaces (which the user owns), makes a
//! tap device there with a copy of the host's address and routes, and
//! carries what the container sends through ordinary sockets of the host's
//! namespace (so the outside sees the host, as with NAT). `-p` ports are
//! sockets pasta listens on in the host's namespace. It is started while
//! the child waits (`attach`) and forks into the background once the
//! namespace is configured. It does not exit when the container does: it
//! is in the container's network namespace itself, which it keeps alive
//! (it only watches a namespace named by a path). So it writes its pid to
//! the container's directory, and the container's cleanup, or the next
//! command's recovery, stops it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use stage01_uts::{ContainerId, Context, Error, Phase, Primitive, explain};

use crate::ports::{Port, Proto};

/// pasta is not installed, or failed.
#[derive(Debug, thiserror::Error)]
pub enum PastaError {
    #[error(
        "cannot run pasta, which gives an ordinary user's container its network: {0}; install the passt package (apt-get install passt), or use --network none"
    )]
    Missing(String),
    #[error("pasta could not give the container its network: {0}")]
    Failed(String),
}

/// Whether pasta is on `PATH`.
pub fn available() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join("pasta")).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether the host has a default route (IPv4 or IPv6): pasta copies the
/// interface it goes through into the container, and refuses to start
/// without one ("External interface not usable"), as on a machine with no
/// network at all.
pub fn has_default_route() -> bool {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    v4.lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
        || v6.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some("00000000000000000000000000000000")
                && f.next() == Some("00")
                && l.split_whitespace().nth(9) != Some("lo")
        })
}

/// pasta's arguments for a container whose first process is `child`,
/// publishing `ports`.
// ANCHOR: args
pub fn args(ports: &[Port], child: Pid, pid_file: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config-net",
        "--quiet",
        "--no-map-gw",
        "-T",
        "none",
        "-U",
        "none",
    ]
    .map(str::to_owned)
    .to_vec();
    for proto in [Proto::Tcp, Proto::Udp] {
        let specs: Vec<String> = ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| match p.host_ip {
                Some(ip) => format!("{ip}/{}:{}", p.host, p.container),
                None => format!("{}:{}", p.host, p.container),
            })
            .collect();
        let flag = if proto == Proto::Tcp { "-t" } else { "-u" };
        if specs.is_empty() {
            args.extend([flag.to_owned(), "none".to_owned()]);
        }
        for spec in specs {
            args.extend([flag.to_owned(), spec]);
        }
    }
    args.push("--pid".to_owned());
    args.push(pid_file.display().to_string());
    args.push(child.to_string());
    args
}
// ANCHOR_END: args

/// The file pasta writes its pid to: in the container's directory.
pub fn pid_file(root: &Path, id: &ContainerId) -> PathBuf {
    crate::dns::container_dir(root, id).join("pasta.pid")
}

/// Stop the pasta of container `id`, if one runs: the pid from its file,
/// and only if that process is a pasta started with this very file (a pid
/// reused since is left alone).
// ANCHOR: stop
pub fn stop(root: &Path, id: &ContainerId) {
    let file = pid_file(root, id);
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = words.first().is_some_and(|w| w.ends_with(b"pasta"))
        && words
            .iter()
            .any(|w| *w == file.as_os_str().as_encoded_bytes());
    if ours {
        // SIGKILL: it runs as PID 1 of a PID namespace of its own and blocks
        // SIGTERM; it keeps no state worth a clean exit.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(&file);
}
// ANCHOR_END: stop

/// The stage 09 primitive for `--network pasta`.
pub struct Pasta {
    root: PathBuf,
    id: ContainerId,
    ports: Vec<Port>,
}

impl Pasta {
    pub fn new(root: &Path, id: &ContainerId, ports: Vec<Port>) -> Self {
        Pasta {
            root: root.to_path_buf(),
            id: id.clone(),
            ports,
        }
    }
}

impl Primitive for Pasta {
    fn name(&self) -> &'static str {
        "network"
    }

    fn phase(&self) -> Phase {
        Phase::Namespaces
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNET
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        if !available() {
            return Err(crate::refused(PastaError::Missing(
                "it is not on PATH".into(),
            )));
        }
        Ok(())
    }

    fn attach(&mut self, _ctx: &mut Context, child: Pid) -> Result<(), Error> {
        // One that a killed runtime left for this container goes first.
        stop(&self.root, &self.id);
        let args = args(&self.ports, child, &pid_file(&self.root, &self.id));
        // It forks into the background once the namespace is ready, and
        // the background copy closes its standard streams: this returns
        // then, with what the first copy said.
        let out = Command::new("pasta")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| crate::refused(PastaError::Missing(e.to_string())))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            // Its last line says why; syslog complaints are noise.
            let why = said
                .lines()
                .rfind(|l| !l.trim().is_empty() && !l.contains("syslog"))
                .unwrap_or("no reason given")
                .trim()
                .to_owned();
            return Err(crate::refused(PastaError::Failed(why)));
        }
        let shown = args.join(" ");
        explain!(
            "pasta {shown}" => "ok",
            "a tap device in the container's namespace, carried through the host's sockets by a process of the user's"
        );
        Ok(())
    }

    fn cleanup(&mut self, _ctx: &mut Context) -> Result<(), Error> {
        stop(&self.root, &self.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_become_pastas_forwards() {
        let ports: Vec<Port> = ["8080:80", "127.0.0.1:53:53/udp"]
            .iter()
            .flat_map(|p| p.parse::<crate::ports::Publish>().unwrap().0)
            .collect();
        assert_eq!(
            args(&ports, Pid::from_raw(42), Path::new("/c/pasta.pid")).join(" "),
            "--config-net --quiet --no-map-gw -T none -U none -t 8080:80 -u 127.0.0.1/53:53 --pid /c/pasta.pid 42"
        );
        assert_eq!(
            args(&[], Pid::from_raw(7), Path::new("/c/pasta.pid")).join(" "),
            "--config-net --quiet --no-map-gw -T none -U none -t none -u none --pid /c/pasta.pid 7"
        );
    }
}
