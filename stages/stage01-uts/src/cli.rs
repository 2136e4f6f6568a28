//! Command-line plumbing shared by every stage binary and by `myruntime`:
//! the arguments stage 01 introduces, one-line errors, and exit statuses.
//!
//! Later stages extend [`RunArgs`] by flattening it into their own (clap's
//! `#[command(flatten)]`), so each stage's `run` accepts everything the stage
//! before accepted, plus its own options.

use std::ffi::OsString;
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::container::{Container, ExitStatus};
use crate::error::{EXIT_RUNTIME, Error};
use crate::uts::Hostname;

/// A command-line value that was refused, and why: `invalid WHAT "VALUE":
/// REASON`. Every option that parses its value (`--hostname`, `-v`, `-e`,
/// `--user`, `--uidmap`, ...) refuses with this, so the messages read alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl InvalidValue {
    /// `Err(InvalidValue)`, for `FromStr` implementations.
    pub fn refuse<T>(what: &'static str, value: &str, reason: &'static str) -> Result<T, Self> {
        Err(InvalidValue {
            what,
            value: value.to_owned(),
            reason,
        })
    }
}

/// Options every binary accepts, before or after its subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalArgs {
    /// Narrate each kernel step on stderr: the call, its result, and why
    #[arg(long, global = true)]
    pub explain: bool,
}

/// `run`'s arguments at stage 01.
// ANCHOR: run_args
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct RunArgs {
    /// Hostname inside the container [default: the container's short id]
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub hostname: Option<Hostname>,

    /// The command to run in the container, and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}
// ANCHOR_END: run_args

/// What a stage binary says about itself in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub name: &'static str,
    pub version: &'static str,
    /// The binary's one-line description.
    pub about: &'static str,
    /// What its `run` does, in one line.
    pub run_about: &'static str,
    /// `run` options that this binary requires though the arguments type
    /// makes them optional (`rootfs` for the stage binaries from stage 03;
    /// `myruntime` can also run in the host's root).
    pub required: &'static [&'static str],
}

/// The command line of a binary whose one verb is `run`: global options
/// (those every binary has, and a stage's own, `G`), then `run` with
/// arguments `A` (each stage's `RunArgs`).
#[derive(Debug, Parser)]
pub struct RunOnly<A: clap::Args, G: clap::Args> {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub stage_global: G,
    #[command(subcommand)]
    pub verb: RunVerb<A>,
}

/// No global options of a stage's own (stages 01 to 05).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoGlobals {}

#[derive(Debug, Subcommand)]
pub enum RunVerb<A: clap::Args> {
    Run(A),
}

/// The whole `main` of a stage binary whose one verb is `run`: parse the
/// command line, turn `--explain` on, build the stage's container, run it,
/// and exit with COMMAND's status.
// ANCHOR: run_main
pub fn run_main<A: clap::Args>(
    binary: Binary,
    container: impl FnOnce(&A) -> Result<Container, Error>,
) -> ExitCode {
    run_main_with::<A, NoGlobals>(binary, |args, _| container(args))
}
// ANCHOR_END: run_main

/// [`run_main`], for a stage with global options of its own (`G`; stage
/// 06's `--root`), which its container also gets.
pub fn run_main_with<A: clap::Args, G: clap::Args>(
    binary: Binary,
    container: impl FnOnce(&A, &G) -> Result<Container, Error>,
) -> ExitCode {
    let command = RunOnly::<A, G>::command()
        .name(binary.name)
        .bin_name(binary.name)
        .version(binary.version)
        .about(binary.about)
        .mut_subcommand("run", |run| {
            binary
                .required
                .iter()
                .fold(run.about(binary.run_about), |run, id| {
                    run.mut_arg(*id, |arg| arg.required(true))
                })
        });
    let cli: RunOnly<A, G> = parse_as(command);
    crate::explain::init(cli.global.explain);
    let RunVerb::Run(args) = cli.verb;
    exit(container(&args, &cli.stage_global).and_then(Container::run))
}

static PROGRAM: OnceLock<String> = OnceLock::new();

/// The name messages start with (the binary's name).
pub fn program() -> &'static str {
    PROGRAM.get().map_or("myruntime", String::as_str)
}

/// Parse the command line. A usage error is one line and exit status 125,
/// as docker does; `--help` and `--version` print and exit 0.
pub fn parse<C: Parser>() -> C {
    parse_as(C::command())
}

/// [`parse`], with the command's description given at run time (its name,
/// version and help texts).
pub fn parse_as<C: FromArgMatches>(command: clap::Command) -> C {
    let _ = PROGRAM.set(command.get_name().to_owned());
    match command
        .try_get_matches()
        .and_then(|matches| C::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => err.exit(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = err.print();
                std::process::exit(EXIT_RUNTIME.into())
            }
            _ => {
                eprintln!("{}: {}", program(), usage_error_line(&err));
                std::process::exit(EXIT_RUNTIME.into())
            }
        },
    }
}

/// Clap's error in one line: its first paragraph, without the `error:`
/// prefix, and a pointer to `--help`.
fn usage_error_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
        .collect();
    let line = first_paragraph.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    format!("{line}; see '{} --help'", program())
}

/// Turn the outcome of a run into the process's exit: COMMAND's status, or
/// the error on one line and its status.
pub fn exit(result: Result<ExitStatus, Error>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            if !matches!(err, Error::Reported(_)) {
                eprintln!("{}: {}", program(), Untrusted(&err.to_string()));
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// Command-line words as UTF-8 strings: a spec is JSON, which holds no
/// other kind. `what` names them in the refusal.
pub fn utf8(what: &'static str, words: &[OsString]) -> Result<Vec<String>, Error> {
    words
        .iter()
        .map(|w| {
            w.to_str().map(str::to_owned).ok_or_else(|| {
                Error::primitive(InvalidValue {
                    what,
                    value: w.to_string_lossy().into_owned(),
                    reason: "it is not UTF-8 (a container's spec is JSON, which holds only UTF-8)",
                })
            })
        })
        .collect()
}

/// A line on stderr about what happened to the container (an OOM kill,
/// say): not an error of the runtime, but something the user must know.
pub fn note(message: impl Display) {
    eprintln!("{}: {}", program(), Untrusted(&message.to_string()));
}

/// A warning line on stderr: something went wrong that did not stop the run
/// (a cleanup that failed, say).
pub fn warn(message: impl Display) {
    eprintln!(
        "{}: warning: {}",
        program(),
        Untrusted(&message.to_string())
    );
}

/// Text that came from outside the runtime (a registry, a layer's entry
/// names, an image's config), shown so that it cannot act on the terminal:
/// control characters (a newline, ESC starting a colour or cursor sequence)
/// and the invisible format characters that reorder or hide text (bidi
/// overrides, zero-width marks) are written as escapes, `\u{1b}`. Every
/// line the runtime prints goes through this too, as a last line of defence
/// for the one-line rule.
// ANCHOR: untrusted
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if needs_escape(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space and joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line and paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{feff}'              // zero-width no-break space
            | '\u{fff9}'..='\u{fffb}') // interlinear annotation
}
// ANCHOR_END: untrusted

/// Bytes from outside (a layer's entry name need not be UTF-8), shown as
/// [`Untrusted`] text; bytes that are not UTF-8 show as U+FFFD.
pub fn untrusted_bytes(bytes: &[u8]) -> String {
    Untrusted(&String::from_utf8_lossy(bytes)).to_string()
}

/// `n` things in words: "1 layer", "3 layers", "1 entry", "2 entries".
pub fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_act_on_the_terminal() {
        let hostile = "etc/\u{1b}[2J\u{1b}]0;owned\u{7}\nfake line\r\u{202e}txt.exe\u{200b}";
        let shown = Untrusted(hostile).to_string();
        assert!(!shown.chars().any(needs_escape), "{shown:?}");
        assert_eq!(
            shown,
            r"etc/\u{1b}[2J\u{1b}]0;owned\u{7}\u{a}fake line\u{d}\u{202e}txt.exe\u{200b}"
        );
        assert_eq!(
            Untrusted("café/bin").to_string(),
            "café/bin",
            "printable text stays"
        );
        assert_eq!(untrusted_bytes(b"a\xffb\x1b"), "a\u{fffd}b\\u{1b}");
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "layer"), "1 layer");
        assert_eq!(count(3, "layer"), "3 layers");
        assert_eq!(count(0, "entry"), "0 entries");
        assert_eq!(count(1, "entry"), "1 entry");
    }

    #[derive(Debug, Parser)]
    #[command(name = "stage01-uts")]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        Run(RunArgs),
    }

    fn run(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let Cmd::Run(args) = Cli::try_parse_from(args)?.command;
        Ok(args)
    }

    #[test]
    fn command_and_its_flags_are_taken_verbatim() {
        let args = run(&["x", "run", "--hostname", "web", "ls", "-la", "--color"]).unwrap();
        assert_eq!(args.hostname.unwrap().as_str(), "web");
        assert_eq!(args.command, ["ls", "-la", "--color"]);
    }

    #[test]
    fn double_dash_separates_options_from_command() {
        let args = run(&["x", "run", "--", "--hostname", "y"]).unwrap();
        assert!(args.hostname.is_none());
        assert_eq!(args.command, ["--hostname", "y"]);
    }

    #[test]
    fn a_bad_hostname_is_a_usage_error_on_one_line() {
        let err = run(&["x", "run", "--hostname", "a_b", "true"]).unwrap_err();
        let line = usage_error_line(&err);
        assert!(!line.contains('\n'));
        insta::assert_snapshot!(line, @r#"invalid value 'a_b' for '--hostname <NAME>': invalid hostname "a_b": use only letters, digits, '-' and '.'; see 'myruntime --help'"#);
    }

    #[test]
    fn a_missing_command_is_one_line_too() {
        let err = run(&["x", "run"]).unwrap_err();
        insta::assert_snapshot!(usage_error_line(&err), @"the following required arguments were not provided: <COMMAND>...; see 'myruntime --help'");
    }
}
