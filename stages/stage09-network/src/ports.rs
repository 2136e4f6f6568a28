//! Published ports: `-p [IP:]HOST:CTR[/tcp|/udp]`, ranges included
//! (`8080-8081:80-81`), as docker writes them.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use stage01_uts::cli::InvalidValue;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub proto: Proto,
    /// Only connections to this host address; `None`: any of the host's.
    pub host_ip: Option<Ipv4Addr>,
    pub host: u16,
    pub container: u16,
}

impl Port {
    /// The name of its claim: a host port is published once per protocol.
    pub fn claim_name(&self) -> String {
        format!("{}-{}", self.proto, self.host)
    }
}

/// `-p`'s value: one or more ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish(pub Vec<Port>);

fn range(text: &str) -> Option<(u16, u16)> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let (first, last): (u16, u16) = (first.parse().ok()?, last.parse().ok()?);
    (first > 0 && first <= last).then_some((first, last))
}

impl FromStr for Publish {
    type Err = InvalidValue;

    // ANCHOR: publish
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| InvalidValue::refuse("published port", text, reason);
        let (spec, proto) = match text.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Proto::Tcp),
            Some((spec, "udp")) => (spec, Proto::Udp),
            Some(_) => return refuse("the protocol after '/' must be tcp or udp"),
            None => (text, Proto::Tcp),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [host, container] => (None, *host, *container),
            [ip, host, container] => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => (Some(ip), *host, *container),
                Err(_) => {
                    return refuse("the address before the host port must be an IPv4 address");
                }
            },
            _ => return refuse("write it as [IP:]HOST:CONTAINER[/tcp|/udp], such as 8080:80"),
        };
        let (Some((h1, h2)), Some((c1, c2))) = (range(host), range(container)) else {
            return refuse("ports are numbers from 1 to 65535 (or ranges such as 8080-8081)");
        };
        if h2 - h1 != c2 - c1 {
            return refuse("the host and container ranges must be as long as each other");
        }
        Ok(Publish(
            (0..=h2 - h1)
                .map(|i| Port {
                    proto,
                    host_ip,
                    host: h1 + i,
                    container: c1 + i,
                })
                .collect(),
        ))
    }
    // ANCHOR_END: publish
}

impl fmt::Display for Port {
    /// As the spec's annotation holds it: `tcp/0.0.0.0/8080/80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.proto,
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host,
            self.container
        )
    }
}

impl FromStr for Port {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let mut parts = text.split('/');
        let proto = match parts.next() {
            Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            _ => return Err(()),
        };
        let ip: Ipv4Addr = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let host = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let container = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        Ok(Port {
            proto,
            host_ip: (!ip.is_unspecified()).then_some(ip),
            host,
            container,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(text: &str) -> Vec<Port> {
        text.parse::<Publish>().unwrap().0
    }

    #[test]
    fn docker_s_forms() {
        let p = ports("8080:80");
        assert_eq!(
            p,
            [Port {
                proto: Proto::Tcp,
                host_ip: None,
                host: 8080,
                container: 80
            }]
        );
        let p = ports("127.0.0.1:5353:53/udp");
        assert_eq!(p[0].proto, Proto::Udp);
        assert_eq!(p[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        let p = ports("8080-8082:80-82");
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].host, p[2].container), (8082, 82));
    }

    #[test]
    fn bad_ones_are_refused() {
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "a:80",
            "8080:80/sctp",
            "x:8080:80",
            "8080-8081:80",
            "8081-8080:80-81",
            "1:2:3:4",
        ] {
            assert!(bad.parse::<Publish>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_port_survives_the_spec() {
        for port in ports("127.0.0.1:5353:53/udp")
            .into_iter()
            .chain(ports("8080:80"))
        {
            assert_eq!(port.to_string().parse::<Port>(), Ok(port));
        }
    }
}

/// `-P`: a host port for each port the image exposes (`80/tcp`) that `-p`
/// did not publish already: a free one of the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), as docker picks, neither claimed by a
/// container nor bound by any process of the host now.
// ANCHOR: publish_all
pub fn publish_all(exposed: &[String], given: &[Port], claims: &crate::ipam::Claims) -> Vec<Port> {
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut words = t.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((words.next()??, words.next()??))
        })
        .filter(|(low, high)| low <= high)
        .unwrap_or((32768, 60999));
    let span = u32::from(high - low) + 1;
    // Not always the lowest: two runtimes picking at once rarely collide
    // (and the claim at start settles it if they do).
    let start = std::process::id() % span;
    let mut ports: Vec<Port> = Vec::new();
    for entry in exposed {
        let Some((port, proto)) = entry.split_once('/') else {
            continue;
        };
        let (Ok(container), Some(proto)) = (
            port.parse::<u16>(),
            match proto {
                "tcp" => Some(Proto::Tcp),
                "udp" => Some(Proto::Udp),
                _ => None,
            },
        ) else {
            continue;
        };
        let published = |p: &Port| p.container == container && p.proto == proto;
        if given.iter().any(published) || ports.iter().any(published) {
            continue;
        }
        let free = (0..span)
            .map(|i| low + ((start + i) % span) as u16)
            .map(|host| Port {
                proto,
                host_ip: None,
                host,
                container,
            })
            .find(|p| {
                let taken = |q: &Port| q.proto == p.proto && q.host == p.host;
                !given.iter().any(taken)
                    && !ports.iter().any(taken)
                    && claims.holder(&p.claim_name()).is_none()
                    && bindable(p)
            });
        ports.extend(free);
    }
    ports
}
// ANCHOR_END: publish_all

/// Whether a process could listen on the host port now.
fn bindable(port: &Port) -> bool {
    let address = (Ipv4Addr::UNSPECIFIED, port.host);
    match port.proto {
        Proto::Tcp => std::net::TcpListener::bind(address).is_ok(),
        Proto::Udp => std::net::UdpSocket::bind(address).is_ok(),
    }
}

#[cfg(test)]
mod publish_all_tests {
    use super::*;

    #[test]
    fn every_exposed_port_gets_a_free_host_port_once() {
        let dir = tempfile::tempdir().unwrap();
        let claims = crate::ipam::Claims::new(dir.path());
        let given: Vec<Port> = "8080:80".parse::<Publish>().unwrap().0;
        let exposed: Vec<String> = ["80/tcp", "443/tcp", "53/udp", "bad", "9/sctp"]
            .map(str::to_owned)
            .to_vec();
        let ports = publish_all(&exposed, &given, &claims);
        let shown: Vec<(u16, Proto)> = ports.iter().map(|p| (p.container, p.proto)).collect();
        assert_eq!(
            shown,
            [(443, Proto::Tcp), (53, Proto::Udp)],
            "80 was given with -p"
        );
        assert!(ports.iter().all(|p| p.host >= 1024 && p.host != 8080));
    }
}
