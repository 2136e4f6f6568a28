//! The command line of stage 07 (and of `myruntime`): `run`, `pull`,
//! `images`, `rmi`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use stage01_uts::cli::{self, Binary, GlobalArgs};
use stage06_overlay::cli::StoreArgs;

use crate::pull::Platform;

/// `stage07-image [--explain] [--root DIR] VERB ...`
#[derive(Debug, Parser)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub verb: Verb,
}

/// The verbs.
// ANCHOR: verbs
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run a container from an image (IMAGE [COMMAND...]), or from --rootfs
    /// or --layer (COMMAND...)
    Run(Box<RunArgs>),
    #[command(flatten)]
    Image(ImageVerb),
}

/// The verbs on images (later stages have them too).
#[derive(Debug, Subcommand)]
pub enum ImageVerb {
    /// Pull an image from its registry into the store
    Pull(PullArgs),
    /// List the images in the store
    Images,
    /// Remove images, and the layers no other image uses
    Rmi(RmiArgs),
}
// ANCHOR_END: verbs

impl ImageVerb {
    /// Do it.
    pub fn run(&self, store: &StoreArgs) -> Result<(), stage01_uts::Error> {
        match self {
            ImageVerb::Pull(args) => crate::pull_verb(args, store),
            ImageVerb::Images => crate::images(store),
            ImageVerb::Rmi(args) => crate::rmi(args, store),
        }
    }
}

/// `run`'s arguments at stage 07.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub base: stage06_overlay::cli::RunArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How images are fetched.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct RegistryArgs {
    /// The platform to pull from a multi-platform image [default: this host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    /// Reach this registry over plain HTTP (loopback ones always are)
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
    /// The most a layer may unpack to (its files, and 512 bytes for each
    /// entry); past it the pull stops [default: 32g]
    #[arg(
        long = "max-unpacked-size",
        value_name = "SIZE",
        env = "MYRUNTIME_MAX_UNPACKED_SIZE"
    )]
    pub max_unpacked: Option<stage05_cgroups::cli::Bytes>,
}

/// `pull`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image: NAME[:TAG] or NAME@DIGEST (alpine, alpine:3.20,
    /// ghcr.io/org/img:tag, localhost:5000/name@sha256:...)
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `rmi`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RmiArgs {
    /// The images to remove
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// The whole `main` of a binary with the stage 07 verbs.
// ANCHOR: main
pub fn main(binary: Binary) -> ExitCode {
    let command = Cli::command()
        .name(binary.name)
        .bin_name(binary.name)
        .version(binary.version)
        .about(binary.about);
    let cli: Cli = cli::parse_as(command);
    stage01_uts::explain::init(cli.global.explain);
    let done = |r: Result<(), stage01_uts::Error>| r.map(|()| stage01_uts::ExitStatus::Exited(0));
    cli::exit(match cli.verb {
        Verb::Run(args) => crate::run(&args, &cli.store),
        Verb::Image(verb) => done(verb.run(&cli.store)),
    })
}
// ANCHOR_END: main
