//! Transcripts of the real binaries for the book: what `--explain` prints,
//! made by running them, never pasted. `make transcripts` writes them under
//! `book/src/transcripts/`; the `repo` suite runs the binaries again and
//! fails when a chapter shows something they no longer print.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Rootfs;

/// One command whose output a chapter shows.
pub struct Transcript {
    /// `book/src/transcripts/NAME.console`.
    pub name: &'static str,
    pub bin: &'static str,
    /// `$R` stands for a scratch copy of the test rootfs.
    pub args: &'static [&'static str],
}

/// Every transcript the book includes.
pub const TRANSCRIPTS: &[Transcript] = &[
    Transcript {
        name: "stage01-explain",
        bin: "stage01-uts",
        args: &["--explain", "run", "--hostname", "web", "--", "true"],
    },
    Transcript {
        name: "stage02-explain-init",
        bin: "stage02-pid",
        args: &[
            "--explain",
            "run",
            "--init",
            "--hostname",
            "web",
            "--",
            "sh",
            "-c",
            "echo $$",
        ],
    },
    Transcript {
        name: "stage03-explain",
        bin: "stage03-mount",
        args: &[
            "--explain",
            "run",
            "--hostname",
            "web",
            "--rootfs",
            "$R",
            "--",
            "true",
        ],
    },
    Transcript {
        name: "stage09-none",
        bin: "stage09-network",
        args: &[
            "run",
            "--network",
            "none",
            "--rootfs",
            "$R",
            "--",
            "ip",
            "addr",
        ],
    },
];

/// The directory the transcripts live in.
pub fn dir() -> PathBuf {
    crate::workspace_root().join("book/src/transcripts")
}

/// Run `t` with the binaries in `bins` (as root, from `/`, with a small
/// fixed environment) and return what a reader of the book sees: the
/// command as typed, then its stdout and stderr as they came, with what
/// changes from run to run (pids, the scratch rootfs's path) made constant.
pub fn render(t: &Transcript, bins: &Path) -> String {
    // A scratch copy of the test rootfs, for the transcripts that use one.
    let rootfs = t.args.contains(&"$R").then(Rootfs::private);
    let rootfs_path = rootfs
        .as_ref()
        .map(|r| r.path().display().to_string())
        .unwrap_or_else(|| "$R".to_owned());
    let args: Vec<String> = t
        .args
        .iter()
        .map(|a| a.replace("$R", &rootfs_path))
        .collect();
    // One pipe for both streams, so that the lines keep their order.
    let (reader, writer) = nix::unistd::pipe().expect("a pipe");
    let (reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let mut child = Command::new(bins.join(t.bin))
        .args(&args)
        .current_dir("/")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("TERM", "xterm")
        // A data directory of the test process's own (removed at its exit),
        // never the default /var/lib/myruntime.
        .env("MYRUNTIME_ROOT", crate::store_root())
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("dup"))
        .stderr(writer)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", t.bin));
    let mut output = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut output).expect("read the output");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{} {:?} failed: {output}", t.bin, t.args);
    let typed: Vec<String> = t.args.iter().map(|a| shell_word(a)).collect();
    let mut text = format!("$ sudo bin/{} {}\n", t.bin, typed.join(" "));
    for line in output.lines() {
        text.push_str(&constant(&line.replace(&rootfs_path, "$R")));
        text.push('\n');
    }
    text
}

/// A line with the pids the kernel chose replaced by 4242.
fn constant(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = ["pid ", "waitpid("]
        .iter()
        .filter_map(|p| rest.find(p).map(|i| i + p.len()))
        .min()
    {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        // pid 1 and 2 are a namespace's own: they are the point.
        if digits > 0 && &rest[..digits] != "1" && &rest[..digits] != "2" {
            out.push_str("4242");
        } else {
            out.push_str(&rest[..digits]);
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A word as typed; `$R` stays a variable.
fn shell_word(arg: &str) -> String {
    crate::run::shell_quote(arg).replace("'$R'", "$R")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_become_constant_but_a_namespaces_own_stay() {
        assert_eq!(
            constant("clone(X) → pid 29092: a; waitpid(29092) → 0"),
            "clone(X) → pid 4242: a; waitpid(4242) → 0"
        );
        assert_eq!(constant("fork() → pid 2: b"), "fork() → pid 2: b");
        assert_eq!(constant("no pids here"), "no pids here");
    }

    #[test]
    fn words_are_quoted_as_a_shell_needs() {
        assert_eq!(shell_word("echo $$"), "'echo $$'");
        assert_eq!(shell_word("--rootfs"), "--rootfs");
        assert_eq!(shell_word("$R"), "$R");
    }
}
