//! The command line of stage 08 (and of `myruntime`): stage 07's verbs,
//! and a container's life, docker-style.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{CommandFactory, Parser, Subcommand};
use stage01_uts::cli::{self, Binary, GlobalArgs, InvalidValue};
use stage03_mount::cli::EnvVar;
use stage04_user::passwd::UserSpec;
use stage06_overlay::cli::StoreArgs;
use stage07_image::cli::ImageVerb;

use crate::state::LogOptions;

/// `stage08-lifecycle [--explain] [--root DIR] VERB ...`
#[derive(Debug, Parser)]
pub struct Cli<X: Flags> {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub verb: Verb<X>,
}

/// What a later stage adds to the command line (stage 09: the network):
/// flags on `run` and `create`, and how they go into the spec; verbs of
/// its own (`network ...`). Stage 08 adds none.
pub trait Flags: clap::Args + Clone + std::fmt::Debug {
    /// The verbs the stage adds.
    type Verbs: clap::Subcommand + std::fmt::Debug;

    /// Write what the flags ask for into the spec `create` makes for the
    /// container `id` of the data directory `root` (its directory, where
    /// files the runtime gives it live, is made once the spec is written).
    fn write(
        &self,
        spec: &mut stage01_uts::spec::Spec,
        root: &std::path::Path,
        id: &stage01_uts::ContainerId,
    ) -> Result<(), stage01_uts::Error>;

    /// Run one of the stage's verbs.
    fn run(verb: &Self::Verbs, store: &StoreArgs) -> Result<(), stage01_uts::Error>;
}

/// Stage 08's own: no flags beyond its own.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoFlags {}

/// Stage 08's own: no verbs beyond its own.
#[derive(Debug, Clone, Subcommand)]
pub enum NoVerbs {}

impl Flags for NoFlags {
    type Verbs = NoVerbs;

    fn write(
        &self,
        _: &mut stage01_uts::spec::Spec,
        _: &std::path::Path,
        _: &stage01_uts::ContainerId,
    ) -> Result<(), stage01_uts::Error> {
        Ok(())
    }

    fn run(verb: &NoVerbs, _: &StoreArgs) -> Result<(), stage01_uts::Error> {
        match *verb {}
    }
}

/// The verbs.
// ANCHOR: verbs
#[derive(Debug, Subcommand)]
pub enum Verb<X: Flags> {
    /// Run a container: in the foreground (removed when it ends), or
    /// detached with -d (kept until rm, unless --rm)
    Run(Box<RunArgs<X>>),
    /// Create a container, ready to start; print its id
    Create(Box<CreateArgs<X>>),
    /// Start created or stopped containers
    Start(StartArgs),
    /// Attach to a running container's input and output
    Attach(AttachArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// List containers
    Ps(PsArgs),
    /// Show containers as JSON: state, spec, mounts, cgroup
    Inspect(Targets),
    /// Show a container's output
    Logs(LogsArgs),
    /// Show containers' use of CPU, memory, processes and I/O, live
    Stats(StatsArgs),
    /// Show a container's processes
    Top(Target),
    /// Wait until containers exit; print their exit statuses
    Wait(Targets),
    /// Stop containers: their stop signal, then SIGKILL after a grace time
    Stop(StopArgs),
    /// Send containers a signal
    Kill(KillArgs),
    /// Stop and start containers again
    Restart(StopArgs),
    /// Freeze every process of containers
    Pause(Targets),
    /// Thaw paused containers
    Unpause(Targets),
    /// Remove containers, with their files and logs
    Rm(RmArgs),
    #[command(flatten)]
    Image(ImageVerb),
    #[command(flatten)]
    More(X::Verbs),
}
// ANCHOR_END: verbs

/// `create`'s arguments: stage 07's `run`, and a container's life.
// ANCHOR: create_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct CreateArgs<X: Flags> {
    #[command(flatten)]
    pub image: stage07_image::cli::RunArgs,

    #[command(flatten)]
    pub more: X,

    /// A name for the container (unique) [default: a readable random one]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,

    /// Keep its standard input open (for attach)
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Give it a terminal
    #[arg(short = 't', long)]
    pub tty: bool,

    /// How much output to keep: max-size=SIZE (default 10m), max-file=N
    /// (default 3) (repeatable)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<LogOpt>,

    /// Print the container's spec (config.json) instead of making it
    #[arg(long)]
    pub dry_run: bool,
}
// ANCHOR_END: create_args

/// `run`'s arguments: `create`'s, and whether to detach.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs<X: Flags> {
    #[command(flatten)]
    pub create: CreateArgs<X>,

    /// Run in the background: print the id and return
    #[arg(short = 'd', long)]
    pub detach: bool,
}

impl<X: Flags> CreateArgs<X> {
    pub fn log_options(&self) -> LogOptions {
        let mut options = LogOptions::default();
        for opt in &self.log_opts {
            match opt {
                LogOpt::MaxSize(n) => options.max_size = *n,
                LogOpt::MaxFile(n) => options.max_files = *n,
            }
        }
        options
    }
}

/// One `--log-opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOpt {
    MaxSize(u64),
    MaxFile(u32),
}

impl FromStr for LogOpt {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn refuse(s: &str, reason: &'static str) -> Result<LogOpt, InvalidValue> {
            InvalidValue::refuse("log option", s, reason)
        }
        match s.split_once('=') {
            Some(("max-size", size)) => match size.parse::<stage05_cgroups::cli::Bytes>() {
                Ok(size) if size.0 >= 4096 => Ok(LogOpt::MaxSize(size.0)),
                Ok(_) => refuse(s, "max-size must be at least 4k"),
                Err(_) => refuse(s, "max-size takes a size such as 10m"),
            },
            Some(("max-file", n)) => match n.parse::<u32>() {
                Ok(n @ 1..=100) => Ok(LogOpt::MaxFile(n)),
                _ => refuse(s, "max-file takes a number from 1 to 100"),
            },
            _ => refuse(s, "the log options are max-size=SIZE and max-file=N"),
        }
    }
}

/// One container.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The container: its name, id, or a unique prefix of its id
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Containers.
#[derive(Debug, Clone, clap::Args)]
pub struct Targets {
    /// The containers: names, ids, or unique prefixes of ids
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Attach its output, and exit with its status
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach its input too
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// Do not send this terminal's input
    #[arg(long)]
    pub no_stdin: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Keep its standard input open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give it a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run it in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
    /// Its working directory [default: the container's]
    #[arg(short = 'w', long, value_name = "DIR", value_parser = stage03_mount::cli::absolute_path)]
    pub workdir: Option<PathBuf>,
    /// Run it as USER[:GROUP] (names from the container's files, or ids)
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<UserSpec>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command, and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// All containers (by default only those running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only their ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// table, or json (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: Format,
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Keep printing what it writes, until it exits
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (or all)
    #[arg(long, value_name = "N", value_parser = tail)]
    pub tail: Option<Tail>,
    /// Each line after its time
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only what it wrote since a time (RFC 3339, or seconds since the epoch)
    /// or for a while (10m, 1h30m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// `--tail N` or `--tail all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail(pub Option<usize>);

fn tail(s: &str) -> Result<Tail, String> {
    match s {
        "all" => Ok(Tail(None)),
        n => n
            .parse()
            .map(|n| Tail(Some(n)))
            .map_err(|_| format!("{s:?} is not a number of lines (or all)")),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// One reading, then exit
    #[arg(long)]
    pub no_stream: bool,
    /// table, or json (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: Format,
    /// The containers [default: every running one]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub time: u32,
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KillArgs {
    /// The signal: a name (TERM, SIGHUP) or a number
    #[arg(short = 's', long, value_name = "SIGNAL", default_value = "KILL")]
    pub signal: String,
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RmArgs {
    /// Kill it first if it runs
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub targets: Targets,
}

/// The whole `main` of a binary with the stage 08 verbs.
pub fn main(binary: Binary) -> ExitCode {
    main_with::<NoFlags>(binary, None)
}

/// [`main`], with a later stage's flags and primitives (stage 09's network).
// ANCHOR: main
pub fn main_with<X: Flags>(
    binary: Binary,
    extension: Option<&'static dyn crate::Extension>,
) -> ExitCode {
    if let Some(extension) = extension {
        crate::extend(extension);
    }
    let command = Cli::<X>::command()
        .name(binary.name)
        .bin_name(binary.name)
        .version(binary.version)
        .about(binary.about);
    let cli: Cli<X> = cli::parse_as(command);
    stage01_uts::explain::init(cli.global.explain);
    let done = |r: Result<(), stage01_uts::Error>| r.map(|()| stage01_uts::ExitStatus::Exited(0));
    let store = &cli.store;
    use crate::{show, verbs};
    cli::exit(match cli.verb {
        Verb::Run(args) => verbs::run(&args, store),
        Verb::Create(args) => done(verbs::create(&args, store)),
        Verb::Start(args) => verbs::start(&args, store),
        Verb::Attach(args) => verbs::attach(&args, store),
        Verb::Exec(args) => verbs::exec(&args, store),
        Verb::Ps(args) => done(show::ps(&args, store)),
        Verb::Inspect(args) => done(show::inspect(&args, store)),
        Verb::Logs(args) => done(show::logs(&args, store)),
        Verb::Stats(args) => done(show::stats(&args, store)),
        Verb::Top(args) => done(show::top(&args, store)),
        Verb::Wait(args) => done(verbs::wait(&args, store)),
        Verb::Stop(args) => done(verbs::stop(&args, store)),
        Verb::Kill(args) => done(verbs::kill(&args, store)),
        Verb::Restart(args) => done(verbs::restart(&args, store)),
        Verb::Pause(args) => done(verbs::pause(&args, store, true)),
        Verb::Unpause(args) => done(verbs::pause(&args, store, false)),
        Verb::Rm(args) => done(verbs::rm(&args, store)),
        Verb::Image(verb) => done(verb.run(store)),
        Verb::More(verb) => done(X::run(&verb, store)),
    })
}
// ANCHOR_END: main

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options_are_checked() {
        assert_eq!(
            "max-size=10m".parse::<LogOpt>(),
            Ok(LogOpt::MaxSize(10 << 20))
        );
        assert_eq!("max-file=5".parse::<LogOpt>(), Ok(LogOpt::MaxFile(5)));
        for bad in [
            "max-size=1",
            "max-file=0",
            "max-file=x",
            "color=red",
            "max-size",
        ] {
            assert!(bad.parse::<LogOpt>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_parses() {
        Cli::<NoFlags>::command().debug_assert();
    }
}
