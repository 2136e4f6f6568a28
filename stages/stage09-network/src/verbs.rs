//! `network create|ls|inspect|rm`: docker's verbs for networks.

use clap::Subcommand;
use stage01_uts::Error;
use stage06_overlay::cli::StoreArgs;

use crate::ipam::Subnet;
use crate::networks::{self, Net};

/// The verbs stage 09 adds.
#[derive(Debug, Clone, Subcommand)]
pub enum NetworkVerb {
    /// Manage networks: create, ls, inspect, rm
    #[command(subcommand)]
    Network(Network),
}

/// `network ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum Network {
    /// Make a bridge network; print its id
    Create {
        /// Its subnet, such as 10.100.7.0/24 [default: a free /24 of
        /// 10.100.0.0/16]
        #[arg(long, value_name = "SUBNET")]
        subnet: Option<Subnet>,
        /// Its name
        name: String,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Only their names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON: subnet, gateway, bridge, members
    Inspect {
        #[arg(required = true, value_name = "NETWORK")]
        names: Vec<String>,
    },
    /// Remove networks (refused while a container is on one)
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NETWORK")]
        names: Vec<String>,
    },
}

impl NetworkVerb {
    pub fn run(&self, store: &StoreArgs) -> Result<(), Error> {
        let NetworkVerb::Network(verb) = self;
        let (store, _) = stage08_lifecycle::verbs::open(store)?;
        let root = store.root.clone();
        // What dead runtimes left goes first: a dead container's lease
        // must not keep its network from being removed.
        stage08_lifecycle::recover::reconcile_containers(&store);
        match verb {
            Network::Create { subnet, name } => {
                let net = networks::create(&root, name, *subnet)?;
                println!("{}", net.id);
            }
            Network::Ls { quiet } => {
                let mut rows = vec![vec![
                    "NETWORK ID".to_owned(),
                    "NAME".into(),
                    "DRIVER".into(),
                    "SUBNET".into(),
                ]];
                let mut all = Net::all(&root);
                // The default network is listed before its first use too.
                if !all.iter().any(|n| n.name == networks::DEFAULT) {
                    rows.push(vec![
                        String::new(),
                        networks::DEFAULT.into(),
                        "bridge".into(),
                        String::new(),
                    ]);
                }
                all.sort_by_key(|n| n.name != networks::DEFAULT);
                for net in all {
                    rows.push(vec![
                        net.id.chars().take(12).collect(),
                        net.name,
                        "bridge".into(),
                        net.subnet.to_string(),
                    ]);
                }
                for name in ["host", "none"] {
                    rows.push(vec![String::new(), name.into(), name.into(), String::new()]);
                }
                if *quiet {
                    for row in &rows[1..] {
                        println!("{}", row[1]);
                    }
                } else {
                    print!("{}", stage08_lifecycle::show::table(&rows));
                }
            }
            Network::Inspect { names } => {
                let mut shown = Vec::new();
                for name in names {
                    let net = Net::load(&root, name).ok_or_else(|| {
                        crate::refused(networks::NetworkError::Unknown(name.clone()))
                    })?;
                    shown.push(networks::inspect(&root, &net));
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&shown).expect("JSON values serialize")
                );
            }
            Network::Rm { names } => {
                for name in names {
                    networks::remove(&root, name)?;
                    println!("{name}");
                }
            }
        }
        Ok(())
    }
}
